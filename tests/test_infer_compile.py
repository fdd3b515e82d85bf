"""test.compile / Predictor(compile=True): inference compiled by inductor with frozen weights
(pose.runtime.FrozenNetwork) gives the eager network's outputs, pads short batches to a compiled
size instead of compiling each size, and falls back to eager with one warning where inductor
cannot run."""

import warnings

import numpy as np
import pytest
import torch
from test_eval_tool import run_tool, workspace  # noqa: F401  (the module-scoped fixture)
from test_predictor_backends import BOXES, CFG, photo
from torch import nn
from torch.utils.data import DataLoader

from pose import runtime
from pose.config import load_config
from pose.data import codecs
from pose.engine import evaluator
from pose.keypoints import COCO17
from pose.models import build_model
from pose.predictor import Predictor


def inductor_or_skip():
    pytest.importorskip("torch._inductor")
    if runtime.compile_backend_error(torch.device("cpu")) is not None:
        pytest.skip("inductor cannot compile on this machine (no working C++ compiler)")


class PositionNet(nn.Module):
    """Convolutions with BatchNorm statistics away from (0, 1), so that folding BN into the convolution
    (what freezing does) is tested; the output depends on where things are in the image."""

    def __init__(self, joints: int = 3):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 6, 3, stride=2, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
                                  nn.Conv2d(6, 6, 3, stride=2, padding=1), nn.BatchNorm2d(6), nn.ReLU())
        self.head = nn.Conv2d(6, joints, 1)
        torch.manual_seed(0)
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.data.uniform_(0.5, 1.5)
                m.bias.data.uniform_(-0.2, 0.2)

    def forward(self, x):
        return self.head(self.body(x))


def test_power_of_two_sizes_and_padding_choice():
    assert runtime.power_of_two_sizes(1) == (1,)
    assert runtime.power_of_two_sizes(8) == (1, 2, 4, 8)
    assert runtime.power_of_two_sizes(12) == (1, 2, 4, 8, 12)
    assert runtime.power_of_two_sizes(128) == (4, 8, 16, 32, 64, 128)  # the predictor's default, doubled
    assert runtime.power_of_two_sizes(128, most=3) == (32, 64, 128)
    net = PositionNet().eval()
    frozen = runtime.FrozenNetwork(net, (8, 2, 4, 4))
    assert frozen.batch_sizes == (2, 4, 8)
    assert [frozen.padded_size(n) for n in (1, 2, 3, 5, 8)] == [2, 2, 4, 8, 8]
    with pytest.raises(ValueError, match="batch of 9 is more than the largest compiled batch size 8"):
        frozen.padded_size(9)
    with pytest.raises(ValueError, match="eval mode"):
        runtime.FrozenNetwork(PositionNet().train(), (2,))
    with pytest.raises(ValueError, match="positive"):
        runtime.FrozenNetwork(net, (0, 2))


def test_frozen_network_matches_eager_and_compiles_each_size_once(one_thread):
    inductor_or_skip()
    torch._dynamo.reset()
    net = PositionNet().eval()
    frozen = runtime.FrozenNetwork(net, (4,))
    x = torch.randn(4, 3, 32, 24, generator=torch.Generator().manual_seed(1))
    before = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    with torch.inference_mode():
        ref = net(x)
        for n in (4, 3, 1):  # 3 and 1 are padded to 4: the one graph serves them
            out = frozen(x[:n])
            assert out.shape == (n, 3, 8, 6)
            torch.testing.assert_close(out, ref[:n], rtol=1e-5, atol=1e-5)
        # channels_last input (what test.channels_last feeds) keeps its layout through the padding
        cl = frozen(x[:3].contiguous(memory_format=torch.channels_last))
        torch.testing.assert_close(cl, ref[:3], rtol=1e-5, atol=1e-5)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] - before == 2  # contiguous, channels_last


def test_frozen_network_slices_every_output_of_a_multi_output_network(one_thread):
    inductor_or_skip()

    class TwoOutputs(PositionNet):
        def forward(self, x):
            y = super().forward(x)
            return [y * 0.5, y]

    net = TwoOutputs().eval()
    x = torch.randn(3, 3, 32, 24, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        outs = runtime.FrozenNetwork(net, (4,))(x)
        ref = net(x)
    assert isinstance(outs, list) and [o.shape[0] for o in outs] == [3, 3]
    for a, b in zip(outs, ref):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_run_inference_compiled_pads_the_last_batch_and_matches_eager(one_thread):
    """5 crops in batches of 2, flip test on: the network sees 4, 4, then 2 padded to 4."""
    inductor_or_skip()
    codec = codecs.build_codec("gaussian", input_size=(24, 32), heatmap_size=(6, 8), sigma=1.0,
                               flip_index=COCO17.flip_index)
    gen = torch.Generator().manual_seed(3)
    items = [{"image": torch.randn(3, 32, 24, generator=gen), "center": torch.tensor([20.0, 30.0]),
              "scale": torch.tensor([0.4, 0.5]), "area": torch.tensor(100.0), "score": torch.tensor(1.0),
              "image_id": torch.tensor(i), "index": torch.tensor(i)} for i in range(5)]
    net = PositionNet(joints=17)
    loader = DataLoader(items, batch_size=2)
    common = dict(flip_test=True, shift_heatmap=True, refine="default", device="cpu")
    eager = evaluator.run_inference(net, loader, codec, **common)
    fast = evaluator.run_inference(net, loader, codec, compile=True, **common)
    np.testing.assert_allclose(fast.coords, eager.coords, atol=1e-4)
    np.testing.assert_allclose(fast.maxvals, eager.maxvals, rtol=1e-5, atol=1e-6)
    assert len(fast.coords) == 5


@pytest.mark.slow
def test_compiled_predictor_gives_the_eager_keypoints(tmp_path, one_thread):
    inductor_or_skip()
    cfg = load_config(CFG, ["test.compile=true"])
    torch.manual_seed(0)
    model = build_model(cfg, verbose=False)
    with torch.no_grad():
        model.final_layer.weight.mul_(300.0)  # spread heatmap values: no near-ties to flip
    weights = tmp_path / "tiny.pth"
    torch.save(model.state_dict(), weights)
    eager = Predictor.from_config(cfg, weights, compile=False).predict(photo(), BOXES)
    compiled = Predictor.from_config(cfg, weights)  # test.compile=true from the config
    assert isinstance(compiled._forward, runtime.FrozenNetwork)
    fast = compiled.predict(photo(), BOXES)
    for a, b in zip(eager, fast):
        np.testing.assert_allclose(b.keypoints, a.keypoints, atol=1e-3)
        np.testing.assert_allclose(b.scores, a.scores, rtol=1e-4, atol=1e-5)


def test_compile_is_a_torch_backend_option():
    with pytest.raises(ValueError, match="compile is an option of the torch backend"):
        Predictor("model.onnx", codecs.build_codec("gaussian", input_size=(48, 64), heatmap_size=(12, 16),
                                                   sigma=1.0), input_size=(48, 64), backend="onnxruntime",
                  compile=True)


def test_without_a_backend_test_compile_true_warns_once_and_runs_eagerly(monkeypatch, tmp_path):
    monkeypatch.setattr(runtime, "compile_backend_error", lambda device: "no C++ compiler (test)")
    cfg = load_config(CFG, ["test.compile=true"])
    weights = tmp_path / "tiny.pth"
    torch.save(build_model(cfg, verbose=False).state_dict(), weights)
    with pytest.warns(RuntimeWarning, match=r"no C\+\+ compiler \(test\)\): predicting eagerly") as caught:
        predictor = Predictor.from_config(cfg, weights)
    assert len(caught) == 1 and predictor._forward is predictor.model
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert Predictor.from_config(load_config(CFG, ["test.compile=auto"]), weights)._forward is not None


def test_tools_test_compiles_with_test_compile_true(workspace, monkeypatch):  # noqa: F811
    """The wiring of tools/test.py: test.compile=true evaluates through a FrozenNetwork sized for the
    flip-doubled test batch; 'auto' on a CPU and 'false' stay eager."""
    tmp, _, cfg_file, weights = workspace
    made = []

    class Spy(runtime.FrozenNetwork):
        def __init__(self, net, batch_sizes):
            made.append(tuple(batch_sizes))
            super().__init__(net, batch_sizes)
            self._compiled = net  # eager: the wiring is tested here, not inductor

    monkeypatch.setattr(runtime, "FrozenNetwork", Spy)
    monkeypatch.setattr(runtime, "compile_backend_error", lambda device: None)
    stats = {}
    for setting in ("true", "auto", "false"):
        rc, _ = run_tool("--cfg", cfg_file, "--weights", weights, "--quiet", f"output_dir={tmp / setting}",
                         f"test.compile={setting}")
        assert rc == 0
        stats[setting] = (tmp / setting / "results" / "stats_val2017.json").read_text()
    assert made == [(2 * load_config(cfg_file).test.batch_size,)]
    assert stats["true"] == stats["false"] == stats["auto"]


def test_a_size_that_fails_to_compile_warns_once_and_runs_eagerly():
    net = PositionNet().eval()
    frozen = runtime.FrozenNetwork(net, (2, 4))
    calls = []

    def broken(images):
        calls.append(len(images))
        if len(images) == 4:
            raise RuntimeError("C++ compile failed: missing header (test)\nmore lines")
        return net(images) + 1.0  # marks the compiled path's output

    frozen._compiled = broken
    x = torch.randn(4, 3, 32, 24, generator=torch.Generator().manual_seed(4))
    with torch.inference_mode():
        with pytest.warns(RuntimeWarning, match=r"batches of 4 failed \(RuntimeError: C\+\+ compile failed: "
                                                r"missing header \(test\)\); running it eagerly"):
            out = frozen(x[:3])
        torch.testing.assert_close(out, net(x[:3]))
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # once: the size now runs eagerly without trying again
            torch.testing.assert_close(frozen(x), net(x))
            torch.testing.assert_close(frozen(x[:2]), net(x[:2]) + 1.0)  # another size still compiled
    assert calls == [4, 2]


def test_an_error_of_a_size_that_ran_compiled_is_raised():
    net = PositionNet().eval()
    frozen = runtime.FrozenNetwork(net, (2,))
    outcomes = iter([None, ValueError("bad input (test)")])

    def flaky(images):
        error = next(outcomes)
        if error:
            raise error
        return net(images)

    frozen._compiled = flaky
    with torch.inference_mode():
        frozen(torch.randn(2, 3, 32, 24))
        with pytest.raises(ValueError, match="bad input"):
            frozen(torch.randn(2, 3, 32, 24))

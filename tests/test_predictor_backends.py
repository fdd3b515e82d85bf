"""The predictor's fast paths agree with eager float32: ONNX Runtime on the exported file, and bf16
autocast with channels_last; the stated tolerances are tested here.

- onnxruntime: the exported float32 graph; keypoints within 1e-3 image px of eager PyTorch.
- bf16 + channels_last: bf16 rounding moves heatmap values, so only a clear peak is a fair test:
  a network that pools the brightness of the crop (real convolutions, run in bf16) must put the
  keypoints within one heatmap pixel of float32's, and the person scores within 2%.
"""

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from pose.config import load_config
from pose.data import codecs
from pose.export import export_onnx
from pose.keypoints import COCO17
from pose.models import build_model
from pose.predictor import Predictor
from pose.runtime import FrozenNetwork

pytest.importorskip("onnxruntime")
CFG = "experiments/synthetic/tiny.yaml"
BOXES = [(10.5, 4.25, 70.0, 100.0), (80.0, 10.0, 60.0, 90.5)]


def photo() -> np.ndarray:
    """Blurred noise with a bright square in each box."""
    rng = np.random.default_rng(0)
    image = cv2.GaussianBlur(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8), (5, 5), 0)
    image[40:46, 30:36] = 255
    image[50:56, 110:116] = 255
    return image


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    cfg = load_config(CFG)
    torch.manual_seed(0)
    model = build_model(cfg, verbose=False)
    with torch.no_grad():
        model.final_layer.weight.mul_(300.0)  # a spread of heatmap values, not near-ties everywhere
    folder = tmp_path_factory.mktemp("onnx")
    weights = folder / "tiny.pth"
    torch.save(model.state_dict(), weights)
    onnx_file = export_onnx(model, folder / "tiny.onnx", input_size=tuple(cfg.data.input_size))
    return cfg, weights, onnx_file


@pytest.mark.parametrize("flip", [False, True])
def test_onnxruntime_matches_eager(tiny, flip):
    cfg, weights, onnx_file = tiny
    eager = Predictor.from_config(cfg, weights, flip_test=flip).predict(photo(), BOXES)
    fast = Predictor.from_config(cfg, onnx_file, flip_test=flip, backend="onnxruntime").predict(photo(), BOXES)
    for a, b in zip(eager, fast):
        np.testing.assert_allclose(b.keypoints, a.keypoints, atol=1e-3)
        np.testing.assert_allclose(b.scores, a.scores, rtol=1e-4, atol=1e-5)
        assert b.score == pytest.approx(a.score, rel=1e-4, abs=1e-6)


def test_onnxruntime_refuses_a_file_for_another_config(tiny, tmp_path):
    cfg, weights, onnx_file = tiny
    other = load_config(CFG, ["data.input_size=[64,64]", "data.heatmap_size=[16,16]"])
    with pytest.raises(ValueError, match=r"data.input_size 64x64"):
        Predictor.from_config(other, onnx_file, backend="onnxruntime")
    with pytest.raises(ValueError, match="torch backend"):
        Predictor.from_config(cfg, onnx_file, backend="onnxruntime", amp="bf16")
    with pytest.raises(ValueError, match="ONNX model"):
        Predictor.from_config(cfg, onnx_file)
    with pytest.raises(FileNotFoundError, match="export_onnx"):
        Predictor.from_config(cfg, tmp_path / "missing.onnx", backend="onnxruntime")
    with pytest.raises(ValueError, match="unknown backend"):
        Predictor.from_config(cfg, weights, backend="tensorrt")


class Brightness(nn.Module):
    """(N, 3, H, W) -> (N, K, H/4, W/4): a 4x4 stride-4 convolution averaging the brightness, a 3x3
    smoothing convolution, then (x - mean)^2-like peaking: the bright squares become clear peaks."""

    def __init__(self, num_joints: int = 17) -> None:
        super().__init__()
        self.pool = nn.Conv2d(3, 8, 4, stride=4, bias=False)
        self.smooth = nn.Conv2d(8, num_joints, 3, padding=1, bias=False)
        with torch.no_grad():
            self.pool.weight.fill_(1.0 / 48)
            self.smooth.weight.fill_(1.0 / 72)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.smooth(self.pool(x))
        return torch.relu(y - y.mean(dim=(2, 3), keepdim=True)) ** 2


@pytest.mark.parametrize("codec_name", ["gaussian", "udp"])
def test_bf16_channels_last_within_a_heatmap_pixel(codec_name):
    codec = codecs.build_codec(codec_name, input_size=(48, 64), heatmap_size=(12, 16), sigma=1.0,
                               flip_index=COCO17.flip_index)
    fp32 = Predictor(Brightness(), codec, input_size=(48, 64), flip_test=True)
    fast = Predictor(Brightness(), codec, input_size=(48, 64), flip_test=True, amp="bf16", channels_last=True)
    assert fast.amp == "bf16"
    image = photo()
    inputs, _, _ = fp32.preprocess(image, np.asarray(BOXES))
    assert not torch.equal(fast.heatmaps(inputs), fp32.heatmaps(inputs))  # the convolutions ran in bf16
    for a, b in zip(fp32.predict(image, BOXES), fast.predict(image, BOXES)):
        heatmap_px = max(a.box[3] * 1.25 / 16, a.box[2] * 1.25 / 12)  # image px per heatmap px (upper bound)
        assert np.abs(b.keypoints - a.keypoints).max() <= heatmap_px
        assert b.score == pytest.approx(a.score, rel=0.02)


def test_bench_infer_runs_and_holds_its_tolerances(capsys):
    import bench_infer

    args = bench_infer.get_args_parser().parse_args(
        ["--arch", "hrnet_tiny", "--input-size", "48", "64", "--batch", "4", "--rounds", "1", "--warmup", "0",
         "--threads", "1", "--no-compile"])
    assert bench_infer.main(args) == 0
    out = capsys.readouterr().out
    assert "eager bf16 + channels_last" in out and "onnxruntime" in out and "best:" in out
    assert "\ncompiled" not in out and "compiled in" not in out  # compiling takes too long for a test


def test_bench_infer_builds_compiled_backends_by_default(tmp_path):
    """Built, not run: each compiled backend's predictor runs a FrozenNetwork (compiling on first call)."""
    import bench_infer

    args = bench_infer.get_args_parser().parse_args(["--arch", "hrnet_tiny", "--input-size", "48", "64"])
    predictors = bench_infer.build_predictors(args, tmp_path)
    compiled = {n: p for n, p in predictors.items() if n.startswith("compiled")}
    assert list(compiled) == ["compiled fp32", "compiled bf16 + channels_last"]
    assert all(isinstance(p._forward, FrozenNetwork) for p in compiled.values())
    assert [(p.amp, p.channels_last) for p in compiled.values()] == [("none", False), ("bf16", True)]

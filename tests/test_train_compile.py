"""train.compile: the compiled run trains like the eager one (bf16 tolerance), compiles once,
saves the usual state_dict keys and resumes (on CPU bit for bit); where inductor cannot run, one
warning and eager training."""

import math

import pytest
import torch
import torch._inductor.config
from test_train_loop import make_cfg, weights
from torch import nn

from pose import runtime
from pose.config import ConfigError, load_config
from pose.engine import trainer
from pose.engine.checkpoint import load_checkpoint
from pose.engine.trainer import train


class TinyPoseNet(nn.Module):
    """Two stride-2 convolutions and a 1x1 head: the tiny config's 48x64 input -> 17 x 16x12 heatmaps.
    Small enough that inductor compiles its training step in seconds."""

    def __init__(self, num_joints: int = 17):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                  nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.head = nn.Conv2d(8, num_joints, 1)

    def forward(self, x):
        return self.head(self.body(x))


@pytest.fixture
def tiny_net(monkeypatch):
    monkeypatch.setattr(trainer, "build_model", lambda cfg, verbose=False: TinyPoseNet(cfg.model.num_joints))


def graphs_compiled() -> int:
    return torch._dynamo.utils.counters["stats"]["unique_graphs"]


def outputs(state_dict):
    net = TinyPoseNet()
    net.load_state_dict(state_dict)  # strict: the usual keys, no '_orig_mod.' prefix
    torch.manual_seed(1)
    return net.eval()(torch.randn(2, 3, 64, 48))


@pytest.mark.slow
def test_compiled_training_matches_eager_compiles_once_and_resumes(data_root, tmp_path, tiny_net):
    pytest.importorskip("torch._inductor")
    if runtime.compile_backend_error(torch.device("cpu")) is not None:
        pytest.skip("inductor cannot compile on this machine (no working C++ compiler)")
    eager = train(make_cfg(data_root, tmp_path / "eager"), verbose=False)
    torch._dynamo.reset()
    before = graphs_compiled()
    seen = {1: [], 2: []}  # graphs compiled so far, after each step of each run
    first = train(make_cfg(data_root, tmp_path / "compiled", "train.compile=true", "train.epochs=1"),
                  on_iteration=lambda info: seen[1].append(graphs_compiled()), verbose=False)
    assert "compiled (torch.compile, inductor)" in (tmp_path / "compiled" / "train.log").read_text()
    resumed = train(make_cfg(data_root, tmp_path / "compiled", "train.compile=true"),
                    on_iteration=lambda info: seen[2].append(graphs_compiled()), verbose=False)
    assert resumed["resumed_from"] and first["epochs"] == 1 and resumed["epochs"] == 2
    # compiled once per run: no graph is added after a run's first step (every batch has one shape)
    assert seen[1][0] > before and len(set(seen[1])) == 1 and seen[2] and len(set(seen[2])) == 1
    # the usual keys (the uncompiled module's), and the same training up to bf16 tolerance
    saved = load_checkpoint(tmp_path / "compiled" / "checkpoint.pth")["model"]
    assert saved.keys() == weights(tmp_path / "eager").keys()
    # on CPU the compiled run also resumes bit for bit (inductor's CPU kernels are deterministic here)
    whole = train(make_cfg(data_root, tmp_path / "whole", "train.compile=true"), verbose=False)
    a, b = weights(tmp_path / "whole"), weights(tmp_path / "compiled")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [h["loss"] for h in whole["history"]] == [h["loss"] for h in resumed["history"]]
    for a, b in zip(eager["history"], resumed["history"]):
        assert math.isclose(a["loss"], b["loss"], rel_tol=0.02)
    ref = outputs(weights(tmp_path / "eager"))
    got = outputs(weights(tmp_path / "compiled"))
    assert (got - ref).abs().max() <= 0.02 * ref.abs().max()


def test_without_a_cpp_compiler_one_warning_and_eager_training(data_root, tmp_path, tiny_net, monkeypatch):
    monkeypatch.setattr(torch._inductor.config.cpp, "cxx", ("/nonexistent/c++",))  # as on a machine without one
    torch._dynamo.reset()  # nothing compiled earlier in this process may stand in for the compiler
    fallback = train(make_cfg(data_root, tmp_path / "fallback", "train.compile=true", "train.epochs=1"), verbose=False)
    log = (tmp_path / "fallback" / "train.log").read_text()
    assert log.count("torch.compile cannot run on cpu here") == 1 and "C++ compiler" in log
    assert "training eagerly (uncompiled) instead" in log and "compiled (torch.compile" not in log
    eager = train(make_cfg(data_root, tmp_path / "eager", "train.epochs=1"), verbose=False)
    assert fallback["history"][0]["loss"] == eager["history"][0]["loss"]
    a, b = weights(tmp_path / "fallback"), weights(tmp_path / "eager")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_compile_auto_compiles_only_on_cuda_and_not_when_deterministic(monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")

    def must_not_probe(device):
        raise AssertionError("the backend was probed although no compilation was asked")

    monkeypatch.setattr(runtime, "compile_backend_error", must_not_probe)
    assert runtime.resolve_compile("false", cuda, deterministic=False)[0] is False
    assert runtime.resolve_compile("auto", cpu, deterministic=False) == (False, "train.compile=auto: eager on cpu")
    assert runtime.resolve_compile("auto", cuda, deterministic=True)[0] is False
    monkeypatch.setattr(runtime, "compile_backend_error", lambda device: None)
    assert runtime.resolve_compile("auto", cuda, deterministic=False)[0] is True
    assert runtime.resolve_compile("true", cpu, deterministic=True)[0] is True
    monkeypatch.setattr(runtime, "compile_backend_error", lambda device: "RuntimeError: no Triton")
    compiled, why = runtime.resolve_compile("auto", cuda, deterministic=False)
    assert not compiled and "no Triton" in why


def test_compile_setting_reads_yaml_booleans_and_names_bad_values():
    assert load_config(None, ["train.compile=true"]).train.compile == "true"
    assert load_config(None, ["train.compile=false"]).train.compile == "false"
    assert load_config(None, ["train.compile=auto"]).train.compile == "auto"
    with pytest.raises(ConfigError, match=r"train.compile='always' is not one of auto, true, false"):
        load_config(None, ["train.compile=always"])

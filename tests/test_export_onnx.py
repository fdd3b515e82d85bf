"""ONNX export with a dynamic batch size, checked against PyTorch with onnxruntime.

Skipped (with the reason shown by ``pytest -rs``) where onnx or onnxruntime is not installed:
``pip install onnx onnxruntime`` (the ``onnx`` extra of setup.cfg).
"""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from pose.export import check_onnx, export_onnx

ROOT = Path(__file__).resolve().parents[1]
NO_ORT = "onnxruntime not installed (pip install onnx onnxruntime)"


class TinyAttention(nn.Module):
    """Reshapes that read the batch size at run time, like PSA: the graph must keep N symbolic."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.q = nn.Conv2d(channels, 1, 1)
        self.v = nn.Conv2d(channels, channels // 2, 1)
        self.up = nn.Conv2d(channels // 2, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q = torch.softmax(self.q(x).reshape(b, 1, h * w), dim=-1)
        z = torch.matmul(self.v(x).reshape(b, c // 2, h * w), q.transpose(1, 2)).reshape(b, c // 2, 1, 1)
        return x * torch.sigmoid(self.up(z))


def tiny_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, stride=4, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         TinyAttention(8), nn.Conv2d(8, 17, 1))


def test_export_dynamic_batch_matches_pytorch(tmp_path):
    pytest.importorskip("onnx", reason="onnx not installed (pip install onnx onnxruntime)")
    ort = pytest.importorskip("onnxruntime", reason=NO_ORT)
    model = tiny_net()
    path = export_onnx(model, tmp_path / "m.onnx", input_size=(48, 64))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]  # no temp file left
    result = check_onnx(model, path, input_size=(48, 64), batch=2)
    assert result.ok and result.output_shape == (2, 17, 16, 12), result
    # Batch sizes other than the exported one (1) run too.
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((5, 3, 64, 48)).astype(np.float32)
    (out,) = session.run(None, {"images": x})
    with torch.inference_mode():
        expected = model.eval()(torch.from_numpy(x)).numpy()
    assert np.abs(out - expected).max() < 1e-4


def test_check_detects_a_mismatch(tmp_path):
    pytest.importorskip("onnxruntime", reason=NO_ORT)
    model = tiny_net()
    path = export_onnx(model, tmp_path / "m.onnx", input_size=(48, 64))
    with torch.no_grad():
        model[-1].bias.add_(0.01)
    result = check_onnx(model, path, input_size=(48, 64))
    assert not result.ok and result.max_abs_diff > 0.005


def test_unknown_exporter(tmp_path):
    with pytest.raises(ValueError, match="torchscript"):
        export_onnx(tiny_net(), tmp_path / "m.onnx", input_size=(48, 64), exporter="nope")


@pytest.mark.parametrize("psa, variant", [
    ("parallel", "paper"), ("sequential", "paper"), ("parallel", "official"), ("sequential", "official")])
def test_export_tool_with_psa(tmp_path, psa, variant):
    pytest.importorskip("onnxruntime", reason=NO_ORT)
    from pose.config import load_config
    from pose.models import build_model

    # init_std=0: PyTorch's default init, so outputs are O(1) and the 1e-4 check means something.
    overrides = ["model.arch=hrnet_tiny", f"model.psa={psa}", f"model.psa_variant={variant}",
                 "model.init_std=0", "data.input_size=[48,64]", "data.heatmap_size=[12,16]"]
    cfg = load_config(ROOT / "experiments/synthetic/tiny.yaml", overrides)
    weights = tmp_path / "w.pth"
    torch.manual_seed(0)
    torch.save(build_model(cfg).state_dict(), weights)
    out = tmp_path / "model.onnx"
    proc = subprocess.run([sys.executable, str(ROOT / "tools/export_onnx.py"), "--cfg",
                           str(ROOT / "experiments/synthetic/tiny.yaml"), "--weights", str(weights),
                           "--out", str(out), *overrides],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "onnxruntime check: OK" in proc.stdout and out.is_file()

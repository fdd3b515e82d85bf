"""ONNX export of a pose network with a dynamic batch size, and a numerical check with onnxruntime.

Exporter: PyTorch's TorchScript-based exporter (``torch.onnx.export(..., dynamo=False)`` with
``dynamic_axes``). Since PyTorch 2.9 the default is the ``torch.export``-based (dynamo) exporter,
which needs the extra package ``onnxscript``; the TorchScript path needs nothing beyond torch,
handles every network here (PSA's reshapes and softmaxes included: its sizes are read from the
tensors at run time, so the batch dimension stays symbolic) and is what the tests exercise.
Pass ``exporter='dynamo'`` to try the other path where ``onnxscript`` is installed.

The graph has one input ``images`` (N, 3, H, W) float32, normalised like the training data
(RGB or BGR per ``data.color_rgb``), and one output ``heatmaps`` (N, K, H/4, W/4); N is dynamic.
The keypoint set (joint names, skeleton, flip pairs, sigmas...) goes into the model's metadata
(``keypoint_set``, JSON), so the file says what its K channels are.
"""

import json
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from pose.atomic_io import default_file_mode
from pose.keypoints import KeypointSet, from_dict

EXPORTERS = ("torchscript", "dynamo")
METADATA_KEY = "keypoint_set"


@dataclass(frozen=True)
class OnnxCheck:
    """Outcome of :func:`check_onnx`: max |onnxruntime - PyTorch| over a random batch."""

    max_abs_diff: float
    max_abs_value: float  # of the PyTorch output, to judge the difference against
    atol: float
    batch: int
    output_shape: tuple[int, ...]

    @property
    def ok(self) -> bool:
        return bool(self.max_abs_diff < self.atol)


def export_onnx(model: nn.Module, path: str | os.PathLike, *, input_size: tuple[int, int],
                opset: int = 17, exporter: str = "torchscript", keypoints: KeypointSet | None = None) -> Path:
    """Export ``model`` (put in eval mode, on the CPU) to ``path`` with a dynamic batch size.

    Args:
        input_size: network input (width, height), as ``cfg.data.input_size``.
        opset: ONNX opset version.
        exporter: 'torchscript' (default, no extra dependency) or 'dynamo' (needs onnxscript).
        keypoints: the network's keypoint set, stored as JSON in the model's metadata under
            ``keypoint_set`` (read back with :func:`onnx_keypoints`; needs the onnx package).

    The file is written atomically (temporary file in the same folder, then renamed).
    """
    if exporter not in EXPORTERS:
        raise ValueError(f"unknown exporter {exporter!r}; valid: {', '.join(EXPORTERS)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.cpu().eval()
    width, height = int(input_size[0]), int(input_size[1])
    dummy = torch.randn(1, 3, height, width)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp.onnx")
    os.close(fd)
    try:
        os.chmod(tmp, default_file_mode())
        if exporter == "torchscript":
            with warnings.catch_warnings():
                # The deprecation notice of the TorchScript exporter; we chose it on purpose (see above).
                warnings.simplefilter("ignore", DeprecationWarning)
                torch.onnx.export(model, (dummy,), tmp, dynamo=False, opset_version=opset,
                                  input_names=["images"], output_names=["heatmaps"],
                                  dynamic_axes={"images": {0: "batch"}, "heatmaps": {0: "batch"}},
                                  do_constant_folding=True)
        else:
            try:
                import onnxscript  # noqa: F401
            except ImportError:
                raise RuntimeError("exporter 'dynamo' needs the package onnxscript "
                                   "(pip install onnxscript), or use exporter 'torchscript'") from None
            batch = torch.export.Dim("batch", min=1)
            program = torch.onnx.export(model, (dummy,), dynamo=True, opset_version=opset,
                                        input_names=["images"], output_names=["heatmaps"],
                                        dynamic_shapes=({0: batch},))
            program.save(tmp, external_data=False)
        if keypoints is not None:
            _add_metadata(tmp, {METADATA_KEY: json.dumps(keypoints.to_dict())})
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:
        import onnx
    except ImportError:
        return path
    onnx.checker.check_model(str(path))
    return path


def _add_metadata(path: str, entries: dict[str, str]) -> None:
    try:
        import onnx
    except ImportError:
        raise RuntimeError("storing the keypoint set in the ONNX file needs the onnx package "
                           "(pip install onnx)") from None
    proto = onnx.load(path)
    for key, value in entries.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.save(proto, path)


def onnx_keypoints(path: str | os.PathLike) -> KeypointSet | None:
    """The keypoint set stored in an exported file's metadata, or None (none stored)."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    for prop in proto.metadata_props:
        if prop.key == METADATA_KEY:
            return from_dict(json.loads(prop.value), source=f"{path}: metadata {METADATA_KEY!r}")
    return None


def onnxruntime_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def check_onnx(model: nn.Module, path: str | os.PathLike, *, input_size: tuple[int, int], batch: int = 2,
               atol: float = 1e-4, seed: int = 0) -> OnnxCheck | None:
    """Run the exported file with onnxruntime (CPU) and PyTorch on one random batch of ``batch``
    inputs (N, 3, H, W) and compare. Returns None when onnxruntime is not installed."""
    if not onnxruntime_available():
        return None
    import onnxruntime as ort

    width, height = int(input_size[0]), int(input_size[1])
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 3, height, width, generator=gen)
    model = model.cpu().eval()
    with torch.inference_mode():
        expected = model(x).float().numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(["heatmaps"], {"images": x.numpy()})
    if got.shape != expected.shape:
        raise RuntimeError(f"{path}: onnxruntime output shape {got.shape} != PyTorch {expected.shape} "
                           f"for a batch of {batch}")
    return OnnxCheck(max_abs_diff=float(np.abs(got - expected).max()),
                     max_abs_value=float(np.abs(expected).max()), atol=atol, batch=batch,
                     output_shape=tuple(got.shape))

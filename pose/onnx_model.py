"""A network exported by ``tools/export_onnx.py``, run by ONNX Runtime and called like the PyTorch one.

``OnnxModel(path)(images)`` takes a (N, 3, H, W) float32 tensor of normalised crops and returns
the (N, K, h, w) float32 heatmaps as a tensor, so the predictor's flip test, decoding and
rescoring (``pose.data.topdown``) run unchanged on top of it. The file's input must be
``images`` with a dynamic batch and the static (H, W) of the config's ``data.input_size``; a file
for another input size or joint count is refused with both sizes named.

ONNX Runtime is an optional dependency (``pip install -e .[onnx]``).
"""

import os
from pathlib import Path

import numpy as np
import torch

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}


def _import_onnxruntime():
    try:
        import onnxruntime
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError("the onnxruntime backend needs the onnxruntime package "
                                  "(pip install onnxruntime, or pip install -e .[onnx])", name=exc.name) from None
    return onnxruntime


class OnnxModel:
    """An exported pose network run by an ONNX Runtime session.

    Args:
        path: the ``.onnx`` file (``tools/export_onnx.py``: input ``images``, output ``heatmaps``).
        input_size: the network input (width, height) the caller feeds; checked against the file.
        num_joints: the heatmaps expected (checked against the file when its output shape says).
        device: 'cpu' or 'cuda' (ONNX Runtime's CUDA provider must be installed).
        threads: intra-op threads (None: ONNX Runtime's default, one per physical core).
    """

    def __init__(self, path: str | os.PathLike, *, input_size: tuple[int, int], num_joints: int,
                 device: str | torch.device = "cpu", threads: int | None = None) -> None:
        ort = _import_onnxruntime()
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"ONNX model not found: {self.path} (write one with tools/export_onnx.py)")
        device = torch.device(device)
        provider = PROVIDERS.get(device.type)
        if provider is None or provider not in ort.get_available_providers():
            raise ValueError(f"ONNX Runtime cannot run on {device}: available providers are "
                             f"{', '.join(ort.get_available_providers())}")
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = int(threads)
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=[provider])
        except Exception as exc:  # onnxruntime raises its own exception types for unreadable files
            raise ValueError(f"{self.path}: ONNX Runtime cannot load it ({exc})") from None
        self.device = device
        self._check(input_size, num_joints)

    def _check(self, input_size: tuple[int, int], num_joints: int) -> None:
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or inputs[0].name != "images" or len(outputs) != 1:
            raise ValueError(f"{self.path}: expected one input 'images' and one output (tools/export_onnx.py), "
                             f"got inputs {[i.name for i in inputs]} and outputs {[o.name for o in outputs]}")
        self.input_name, self.output_name = inputs[0].name, outputs[0].name
        shape = inputs[0].shape  # ['batch', 3, H, W]
        width, height = int(input_size[0]), int(input_size[1])
        if len(shape) != 4 or shape[1] != 3 or shape[2:] != [height, width]:
            raise ValueError(f"{self.path}: its input is {shape} (N, 3, H, W) but the config's data.input_size "
                             f"{width}x{height} needs (N, 3, {height}, {width}); export it with this config")
        out = outputs[0].shape
        if len(out) == 4 and isinstance(out[1], int) and out[1] != num_joints:
            raise ValueError(f"{self.path}: it outputs {out[1]} heatmaps but the config has "
                             f"model.num_joints={num_joints}")

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) float32 -> (N, K, h, w) float32 heatmaps, on the input's device."""
        array = np.ascontiguousarray(images.detach().cpu().float().numpy())
        (heatmaps,) = self.session.run([self.output_name], {self.input_name: array})
        return torch.from_numpy(heatmaps).to(images.device)

    def __repr__(self) -> str:
        return f"OnnxModel({str(self.path)!r}, device={self.device})"

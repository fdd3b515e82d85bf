"""Run a trained network on people's own images: image + boxes -> the keypoint set's joints per box.

Every step is the one ``tools/test.py`` runs (``pose.data.topdown``): box -> centre/scale with
the config's padding and pixel_std, the codec's crop matrix (rotation 0), crop + normalisation,
the forward pass with flip test, decoding by the codec and the official rescoring at
``test.kpt_score_thresh``. So for an image and a box the predictor returns the keypoints and
scores that ``tools/test.py`` writes for them (tested for every codec, flip test on and off).
All boxes of an image go through the network in one batch (flipped copies included).

Boxes are ``x, y, w, h`` in image pixels (COCO convention). Detection boxes can be read from a
COCO detection-results file (:class:`DetectionBoxes`).
"""

import math
import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from pose.config import Config, configured_keypoint_set
from pose.data.codecs import HeatmapCodec, build_codec_from_config
from pose.data.detections import read_detections
from pose.data.json_io import load_json
from pose.data.topdown import CropInput, decode_to_image, network_heatmaps, rescore
from pose.keypoint_source import resolve_run_keypoints
from pose.keypoints import KeypointSet
from pose.models import build_model, load_weights
from pose.onnx_model import OnnxModel
from pose.runtime import (
    FrozenNetwork,
    amp_autocast,
    configure_cpu_malloc,
    power_of_two_sizes,
    resolve_amp,
    resolve_compile,
    resolve_device,
)

BACKENDS = ("torch", "onnxruntime")


@dataclass
class PersonPose:
    """One person's prediction.

    keypoints: (K, 2) float32 image px (x, y).
    scores: (K,) float32 heatmap maxima (the official keypoint scores).
    box: (4,) float32 ``x, y, w, h`` image px, the box the crop was made from.
    box_score: the box's score (1 for boxes given without a score).
    score: the person score, the official rescoring (box score x mean of the keypoint scores
        above the predictor's ``kpt_score_thresh``), as ``tools/test.py`` writes it.
    heatmaps: (K, h, w) float32 network output (after flip averaging), only when requested.
    heatmap_to_image: (2, 3) affine matrix heatmap px -> image px (for ``pose.vis.overlay_heatmaps``),
        only when heatmaps were requested.
    """

    keypoints: np.ndarray
    scores: np.ndarray
    box: np.ndarray
    box_score: float
    score: float
    heatmaps: np.ndarray | None = None
    heatmap_to_image: np.ndarray | None = None

    def keypoints_with_scores(self) -> np.ndarray:
        """(K, 3) ``x, y, score``: the layout ``pose.vis.draw_skeleton`` and COCO results use."""
        return np.concatenate([self.keypoints, self.scores[:, None]], axis=1)

    def to_result(self, image_id: int) -> dict:
        """A COCO keypoint result entry (the ``tools/test.py`` format)."""
        return {"image_id": int(image_id), "category_id": 1,
                "keypoints": [round(float(v), 3) for v in self.keypoints_with_scores().ravel()],
                "score": round(self.score, 5), "bbox": [round(float(v), 2) for v in self.box]}


def check_box(box: Sequence[float], image_size_wh: tuple[int, int], index: int | None = None) -> np.ndarray:
    """Validate one ``x, y, w, h`` box against an image of ``(width, height)``; return it as (4,) float64.

    Raises ValueError naming the box when it has not 4 finite numbers, a non-positive width or
    height, or lies entirely outside the image. Boxes partly outside are fine (the crop pads).
    """
    name = f"box {index} " if index is not None else "box "
    try:
        arr = np.asarray(box, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise ValueError(f"{name}{box!r} is not 4 numbers x, y, w, h") from None
    if arr.size != 4:
        raise ValueError(f"{name}{arr.tolist()} must have 4 numbers x, y, w, h, got {arr.size} "
                         "(boxes are a list of boxes: [(x, y, w, h), ...])")
    pretty = "[" + ", ".join(f"{v:g}" for v in arr) + "]"
    if not np.isfinite(arr).all():
        raise ValueError(f"{name}{pretty} (x, y, w, h) has a NaN or infinite value")
    x, y, w, h = arr
    if w <= 0 or h <= 0:
        raise ValueError(f"{name}{pretty} (x, y, w, h) has zero or negative size")
    width, height = image_size_wh
    if x >= width or y >= height or x + w <= 0 or y + h <= 0:
        raise ValueError(f"{name}{pretty} (x, y, w, h) lies outside the {width}x{height} image")
    return arr


class Predictor:
    """Top-down pose prediction for one image at a time.

    Args:
        model: network mapping (N, 3, H, W) normalised images to (N, K, H/4, W/4) heatmaps.
        codec: heatmap codec (``pose.data.codecs``): crop_matrix, decode, to_image, flip_back.
        input_size: network input (width, height).
        color_rgb, mean, std, padding, pixel_std: as ``cfg.data`` (the dataset's preprocessing).
        device: torch device for the network ('cpu', 'cuda', 'cuda:1', ...; 'auto': CUDA when available).
        flip_test: also run the mirrored crops and average (official flip test).
        shift_heatmap: shift the flipped heatmaps one pixel right (official; gaussian codec).
        refine: decoding refinement ('default', 'dark', 'none').
        kpt_score_thresh: keypoint scores above this count in the person score (``test.kpt_score_thresh``).
        max_batch: crops per forward pass (a larger number of boxes is split into chunks).
        backend: 'torch' (``model`` is the network) or 'onnxruntime' (``model`` is the ``.onnx`` file
            ``tools/export_onnx.py`` wrote, or a :class:`pose.onnx_model.OnnxModel`).
        amp: torch backend: 'none' (float32), 'bf16', 'fp16' autocast, or 'auto' (bf16 where the
            device has bf16 units, else float32; with onnxruntime 'auto' means float32).
        channels_last: torch backend: run the network in channels_last memory format.
        compile: torch backend: run the network compiled by inductor with its weights frozen in
            (:class:`pose.runtime.FrozenNetwork`). Batches are padded to one of six sizes (2 x
            ``max_batch`` and the powers of two below it: see
            :func:`pose.runtime.power_of_two_sizes`), each compiled on first use: minutes per size
            for an HRNet on a CPU, repaid over many images. Weights changed afterwards are not seen.
    """

    def __init__(self, model: nn.Module | OnnxModel | str | os.PathLike, codec: HeatmapCodec, *,
                 input_size: tuple[int, int], color_rgb: bool = True,
                 mean: Sequence[float] = (0.485, 0.456, 0.406), std: Sequence[float] = (0.229, 0.224, 0.225),
                 padding: float = 1.25, pixel_std: float = 200.0, device: str | torch.device = "cpu",
                 flip_test: bool = True, shift_heatmap: bool = True, refine: str = "default",
                 kpt_score_thresh: float = 0.2, max_batch: int = 64, backend: str = "torch", amp: str = "none",
                 channels_last: bool = False, compile: bool = False) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; valid: {', '.join(BACKENDS)}")
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        if compile and backend != "torch":
            raise ValueError("compile is an option of the torch backend; ONNX Runtime optimises its own graph")
        self.device = resolve_device(device)
        self.codec = codec
        self.crop_input = CropInput(input_size=input_size, color_rgb=color_rgb, mean=mean, std=std,
                                    padding=padding, pixel_std=pixel_std)
        self.input_size = self.crop_input.input_size
        self.backend = backend
        self.amp = resolve_amp(amp, self.device) if backend == "torch" else _onnx_amp(amp)
        self.channels_last = bool(channels_last)
        self.model = self._network(model)
        # Both flip settings fit: flip_test is a public attribute that may change after this.
        self._forward = (FrozenNetwork(self.model, power_of_two_sizes(2 * int(max_batch)))
                         if compile else self.model)
        self.flip_test = bool(flip_test)
        self.shift_heatmap = bool(shift_heatmap)
        self.refine = refine
        self.kpt_score_thresh = float(kpt_score_thresh)
        self.max_batch = int(max_batch)
        # The joints the network predicts (names, skeleton, sides for drawing); set by from_config.
        self.keypoints: KeypointSet | None = None

    def _network(self, model) -> nn.Module | OnnxModel:
        if self.backend == "onnxruntime":
            if self.channels_last:
                raise ValueError("channels_last is an option of the torch backend; ONNX Runtime picks its own layout")
            if isinstance(model, OnnxModel):
                return model
            if isinstance(model, nn.Module):
                raise TypeError("backend 'onnxruntime' takes the .onnx file tools/export_onnx.py writes, "
                                "not a torch module")
            return OnnxModel(model, input_size=self.input_size, num_joints=len(self.codec.flip_index),
                             device=self.device)
        if not isinstance(model, nn.Module):
            raise TypeError(f"backend 'torch' takes a torch module, got {type(model).__name__} (for an .onnx "
                            "file use backend='onnxruntime')")
        model = model.to(self.device).eval()
        return model.to(memory_format=torch.channels_last) if self.channels_last else model

    @classmethod
    def from_config(cls, cfg: Config, weights: str | os.PathLike | None, device: str = "cpu",
                    flip_test: bool | None = None, backend: str = "torch", **kwargs) -> "Predictor":
        """Build the network of ``cfg.model``, load ``weights`` (strict; a mismatch raises the
        error of ``pose.models.load_weights`` naming the file and the keys) and take the
        preprocessing from ``cfg.data`` and the decoding, rescoring, ``amp``, ``channels_last`` and
        ``compile`` from ``cfg.test`` (keyword arguments override them; ``test.compile=true`` where
        inductor cannot run warns once and runs eagerly).

        ``backend='onnxruntime'``: ``weights`` is the ``.onnx`` file of ``tools/export_onnx.py``.
        ``weights=None`` keeps the freshly initialised network (for tests and smoke runs).
        ``device='auto'`` picks CUDA when available. ``flip_test=None`` uses ``cfg.test.flip_test``.
        The joints (``predictor.keypoints``): the config's set, else the one saved in the checkpoint
        (or the ONNX file's metadata), else COCO-17. ``cfg.cpu_malloc`` is applied to the process.
        """
        cfg = resolve_run_keypoints(cfg, weights)
        configure_cpu_malloc(cfg.cpu_malloc)  # process-wide, as tools/test.py does
        if backend == "onnxruntime":
            if weights is None:
                raise ValueError("backend 'onnxruntime' needs the .onnx file (tools/export_onnx.py) as weights")
            model = Path(weights)
        else:
            model = _load_network(cfg, weights)
        options = {"amp": cfg.test.amp, "channels_last": cfg.test.channels_last, **kwargs}
        if backend == "torch" and "compile" not in kwargs:
            options["compile"], why = resolve_compile(cfg.test.compile, resolve_device(device), deterministic=False,
                                                      key="test.compile")
            if not options["compile"] and cfg.test.compile == "true":
                warnings.warn(f"{why}: predicting eagerly (uncompiled) instead", RuntimeWarning, stacklevel=2)
        predictor = cls(model, build_codec_from_config(cfg), input_size=tuple(cfg.data.input_size),
                        color_rgb=cfg.data.color_rgb, mean=cfg.data.mean, std=cfg.data.std,
                        padding=cfg.data.padding, pixel_std=cfg.data.pixel_std, device=device,
                        flip_test=cfg.test.flip_test if flip_test is None else flip_test,
                        shift_heatmap=cfg.test.shift_heatmap, refine=cfg.test.refine,
                        kpt_score_thresh=cfg.test.kpt_score_thresh, backend=backend, **options)
        predictor.keypoints = configured_keypoint_set(cfg)
        return predictor

    def preprocess(self, image_bgr: np.ndarray,
                   boxes: np.ndarray) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
        """Crops for ``boxes`` (N, 4) xywh image px.

        Returns ``(inputs (N, 3, H, W) float32 normalised, centers (N, 2), scales (N, 2))``.
        """
        crops, centers, scales = [], [], []
        for box in boxes:
            center, scale = self.crop_input.center_scale(box)
            crops.append(self.crop_input(image_bgr, self.codec.crop_matrix(center, scale, 0.0)))
            centers.append(center)
            scales.append(scale)
        return torch.stack(crops), np.stack(centers), np.stack(scales)

    @torch.inference_mode()
    def heatmaps(self, inputs: torch.Tensor) -> torch.Tensor:
        """Heatmaps (N, K, h, w) on the CPU for (N, 3, H, W) inputs, flip-averaged when flip test is on."""
        outs = []
        with amp_autocast(self.device, self.amp):
            for start in range(0, len(inputs), self.max_batch):
                chunk = inputs[start:start + self.max_batch].to(self.device)
                outs.append(network_heatmaps(self._forward, chunk, self.codec, flip_test=self.flip_test,
                                             shift_heatmap=self.shift_heatmap, channels_last=self.channels_last).cpu())
        return torch.cat(outs)

    def predict(self, image_bgr: np.ndarray, boxes: Sequence | np.ndarray | None = None, *,
                box_scores: Sequence[float] | None = None,
                return_heatmaps: bool = False) -> list[PersonPose]:
        """Keypoints of each person box in an image.

        Args:
            image_bgr: (H, W, 3) uint8 BGR (as ``cv2.imread`` returns).
            boxes: (N, 4) ``x, y, w, h`` image px; None (or empty) uses the whole image as one box.
            box_scores: (N,) scores of the boxes (default 1).
            return_heatmaps: also return each person's heatmaps and heatmap->image matrix.

        Returns:
            One :class:`PersonPose` per box, in the order given.
        """
        if not isinstance(image_bgr, np.ndarray) or image_bgr.dtype != np.uint8 or image_bgr.ndim != 3 \
                or image_bgr.shape[2] != 3 or image_bgr.size == 0:
            got = f"{getattr(image_bgr, 'shape', type(image_bgr))} {getattr(image_bgr, 'dtype', '')}".rstrip()
            raise ValueError(f"image must be a non-empty uint8 BGR array of shape (H, W, 3), got {got}; "
                             "pose.data.image_io.read_image reads gray, RGBA and 16-bit files as uint8 BGR")
        height, width = image_bgr.shape[:2]
        if boxes is None or len(boxes) == 0:
            boxes = [(0.0, 0.0, float(width), float(height))]
            box_scores = None
        checked = np.stack([check_box(b, (width, height), i) for i, b in enumerate(boxes)])
        if box_scores is None:
            box_scores = [1.0] * len(checked)
        if len(box_scores) != len(checked):
            raise ValueError(f"{len(box_scores)} box scores for {len(checked)} boxes")
        box_scores = np.asarray(box_scores, np.float64).reshape(-1)
        inputs, centers, scales = self.preprocess(image_bgr, checked)
        heatmaps = self.heatmaps(inputs).numpy()
        image_coords, maxvals = decode_to_image(self.codec, heatmaps, centers, scales, self.refine)
        person_scores = rescore(maxvals, box_scores, self.kpt_score_thresh)
        people = []
        for i in range(len(checked)):
            person = PersonPose(keypoints=image_coords[i], scores=maxvals[i], box=checked[i].astype(np.float32),
                                box_score=float(box_scores[i]), score=float(person_scores[i]))
            if return_heatmaps:
                person.heatmaps = heatmaps[i]
                person.heatmap_to_image = self._heatmap_to_image(centers[i], scales[i])
            people.append(person)
        return people

    def _heatmap_to_image(self, center: np.ndarray, scale: np.ndarray) -> np.ndarray:
        """(2, 3) affine heatmap px -> image px, in the codec's own convention (via ``to_image``)."""
        src = np.array([[[0.0, 0.0], [8.0, 0.0], [0.0, 8.0]]], np.float32)
        dst = self.codec.to_image(src, center[None], scale[None])[0]
        return cv2.getAffineTransform(src[0], np.asarray(dst, np.float32))


def _load_network(cfg: Config, weights: str | os.PathLike | None) -> nn.Module:
    """The network of ``cfg.model`` with ``weights`` loaded strictly (None: freshly initialised)."""
    # Trained weights replace everything: the ImageNet backbone file is neither needed nor read.
    model = build_model(cfg, pretrained=weights is None, verbose=False)
    if weights is not None:
        path = Path(weights)
        if not path.is_file():
            raise FileNotFoundError(f"weights file not found: {path}")
        if path.suffix.lower() == ".onnx":
            raise ValueError(f"{path} is an ONNX model: use the onnxruntime backend for it")
        load_weights(model, path, strict=True)
    return model


def _onnx_amp(amp: str) -> str:
    """ONNX Runtime runs the exported float32 graph: 'auto' and 'none' mean float32."""
    if amp not in ("auto", "none"):
        raise ValueError(f"amp={amp!r} is an option of the torch backend; the onnxruntime backend runs the "
                         "exported float32 graph (use amp 'none' or 'auto')")
    return "none"


class DetectionBoxes:
    """Person boxes from a COCO detection-results file, read by ``pose.data.detections`` (the
    reader and checks of ``test.use_gt_bbox=false``).

    Args:
        path: the JSON file.
        score_thresh: boxes with a lower score are dropped.
        category_id: only this category is kept (1, person).
        gt_file: optional COCO annotation file, to look images up by file name.
    """

    def __init__(self, path: str | os.PathLike, *, score_thresh: float = 0.0, category_id: int = 1,
                 gt_file: str | os.PathLike | None = None) -> None:
        dets = read_detections(path, score_thresh=score_thresh, category_id=category_id)
        self.path = dets.path
        self.boxes: dict[int, list[tuple[np.ndarray, float]]] = {}
        for image_id, box, score in zip(dets.image_ids.tolist(), dets.boxes, dets.scores.tolist()):
            self.boxes.setdefault(image_id, []).append((box, score))
        self.file_to_id: dict[str, int] = {}
        if gt_file is not None:
            gt = load_json(gt_file, "annotation file")
            self.file_to_id = {Path(im["file_name"]).name: int(im["id"]) for im in gt.get("images", [])}

    def image_id_for(self, file_name: str | os.PathLike) -> int:
        """The image id of a file: from the annotation file when given, else the number in its
        name (COCO names files by id: ``000000397133.jpg`` -> 397133)."""
        name = Path(file_name).name
        if name in self.file_to_id:
            return self.file_to_id[name]
        if self.file_to_id:
            raise ValueError(f"image {name} is not in the annotation file given with the detections")
        digits = re.findall(r"\d+", Path(name).stem)
        if not digits:
            raise ValueError(f"cannot tell the image id of {name} for {self.path}: its name has no number "
                             "(pass the annotation file to map file names to ids)")
        return int(digits[-1])

    def for_image(self, image_id: int | None = None, *, file_name: str | os.PathLike | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
        """``(boxes (N, 4) xywh float64, scores (N,) float64)`` of one image, by id or file name (N may be 0)."""
        if (image_id is None) == (file_name is None):
            raise ValueError("give exactly one of image_id and file_name")
        if image_id is None:
            image_id = self.image_id_for(file_name)
        found = self.boxes.get(int(image_id), [])
        if not found:
            return np.zeros((0, 4), np.float64), np.zeros((0,), np.float64)
        return np.stack([b for b, _ in found]), np.array([s for _, s in found], np.float64)


def parse_box(text: str) -> tuple[float, float, float, float]:
    """``'x,y,w,h'`` -> 4 floats (for command lines); raises ValueError naming the text."""
    parts = [p for p in re.split(r"[,\s]+", text.strip()) if p]
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        raise ValueError(f"box {text!r} is not 4 numbers x,y,w,h") from None
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise ValueError(f"box {text!r} must be 4 finite numbers x,y,w,h")
    return values  # type: ignore[return-value]

"""MPII Human Pose in the official HRNet / SimpleBaseline format (``lib/dataset/mpii.py``).

Layout under ``root``::

    annot/{image_set}.json     a list of {image, center [x, y], scale, joints (16 x [x, y]), joints_vis (16)}
                               (train, valid; test.json has no joints / joints_vis)
    annot/gt_{image_set}.mat   head boxes and joints for PCKh (the official gt_valid.mat)
    images/{image}

Conventions of the official loader, followed here:

- ``scale`` is one number ``s`` (person height / 200); the crop's scale is ``[s, s]``, so the crop
  region is square whatever the network's aspect (the official MPII inputs are 256x256);
- where ``center[0] != -1``, the centre moves down by ``15 * s`` px and the scale is multiplied
  by 1.25 (the official "avoid cropping limbs" adjustment; ``data.padding`` is not used);
- coordinates are MATLAB's 1-based pixels: the centre and the joints are shifted by -1;
- ``joints_vis`` is each joint's target weight (0 or 1);
- joints follow the official order (``pose.keypoints.MPII16``).

Items are those of :class:`pose.data.coco.CocoKeypoints` (same crop, augmentation and targets);
``image_id`` is the person's index in the annotation list (MPII has no image ids), so evaluation
keeps one prediction per annotated person, in annotation order, as the official ``pred.mat``.
"""

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pose.config import AugmentConfig
from pose.data.coco import CocoKeypoints
from pose.data.codecs import HeatmapCodec
from pose.data.json_io import DatasetError, load_json
from pose.keypoints import MPII16

logger = logging.getLogger(__name__)

ENTRY_SCHEMA = ("{image: str, center: [x, y], scale: number > 0, joints: 16 x [x, y], "
                "joints_vis: 16 x 0/1}")
# The official loader's adjustments (lib/dataset/mpii.py).
CENTER_SHIFT_PER_SCALE = 15.0
SCALE_ENLARGEMENT = 1.25


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)


def _numbers(value: Any, shape: tuple[int, ...]) -> np.ndarray | None:
    """``value`` as a float64 array of ``shape`` when it is a nested list of finite numbers, else None."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if arr.shape != shape or not np.isfinite(arr).all() or isinstance(value, (str, bytes)):
        return None
    return arr


def official_center_scale(center: Sequence[float], scale: float) -> tuple[np.ndarray, np.ndarray]:
    """The official crop centre (0-based px) and scale ``[s, s]`` of an MPII annotation."""
    c = np.asarray(center, dtype=np.float64).copy()
    s = np.array([scale, scale], dtype=np.float64)
    if c[0] != -1:
        c[1] += CENTER_SHIFT_PER_SCALE * s[1]
        s *= SCALE_ENLARGEMENT
    return (c - 1.0).astype(np.float32), s.astype(np.float32)


class MpiiKeypoints(CocoKeypoints):
    """MPII person crops with heatmap targets (see the module docstring).

    Args:
        root: dataset root (``annot/`` and ``images/``).
        image_set: 'train', 'valid' or 'test' (``annot/{image_set}.json``).
        codec, train, aug, color_rgb, mean, std, pixel_std, skip_corrupt_images, cache_images: as
            :class:`pose.data.coco.CocoKeypoints`.
        reduced_decode: must be False (the reduced decode checks the image size the annotations give,
            and MPII's give none).

    Attributes: ``gt_file`` (``annot/gt_{image_set}.mat``, for PCKh), ``has_ground_truth``
    (the annotation entries carry joints).
    """

    protocol = "mpii"

    def __init__(self, *, root: str | os.PathLike, image_set: str, codec: HeatmapCodec, train: bool,
                 aug: AugmentConfig | None = None, color_rgb: bool = True,
                 mean: Sequence[float] = (0.485, 0.456, 0.406), std: Sequence[float] = (0.229, 0.224, 0.225),
                 pixel_std: float = 200.0, skip_corrupt_images: bool = False, reduced_decode: bool = False,
                 cache_images: bool = False) -> None:
        if reduced_decode:
            raise ValueError("data.reduced_decode needs each image's size from the annotations, which MPII's "
                             "do not carry; set data.reduced_decode=false for data.dataset=mpii")
        self.keypoints = MPII16
        self.has_ground_truth = False
        super().__init__(root=root, image_set=image_set, codec=codec, train=train, aug=aug, use_gt_bbox=True,
                         color_rgb=color_rgb, mean=mean, std=std, pixel_std=pixel_std,
                         skip_corrupt_images=skip_corrupt_images, keypoints=MPII16,
                         reduced_decode=reduced_decode, cache_images=cache_images)
        self.gt_file = self.root / "annot" / f"gt_{image_set}.mat"

    def _check_layout(self) -> None:
        if not self.root.is_dir():
            raise FileNotFoundError(f"MPII root not found: {self.root} (expected annot/ and images/ under it)")
        self.image_dir = self.root / "images"
        if not self.image_dir.is_dir():
            raise FileNotFoundError(f"image folder not found: {self.image_dir} (expected root/images/<image>)")

    def _load_records(self) -> list[dict]:
        path = self.root / "annot" / f"{self.image_set}.json"
        self.annotation_file, self.coco = path, None
        entries = load_json(path, "MPII annotation file")
        if not isinstance(entries, list):
            raise DatasetError(f"{path}: top level is {type(entries).__name__}; expected a list of {ENTRY_SCHEMA}")
        with_joints = sum(isinstance(e, dict) and "joints" in e for e in entries)
        if 0 < with_joints < len(entries):
            raise DatasetError(f"{path}: {with_joints} of {len(entries)} entries have 'joints'; all or none must")
        self.has_ground_truth = bool(entries) and with_joints == len(entries)
        if self.train and not self.has_ground_truth:
            raise DatasetError(f"{path}: has no 'joints' (a test split?); training needs annotated joints")
        records = [self._record(path, i, e) for i, e in enumerate(entries)]
        self.filter_summary = f"{path}: {len(records)} annotated people"
        logger.info("%s", self.filter_summary)
        return records

    def _record(self, path: Path, i: int, entry: Any) -> dict:
        where = f"{path}: entry {i}"
        if not isinstance(entry, dict):
            raise DatasetError(f"{where} is {type(entry).__name__}; expected {ENTRY_SCHEMA}")
        image, center, scale = entry.get("image"), _numbers(entry.get("center"), (2,)), entry.get("scale")
        if not isinstance(image, str) or not image:
            raise DatasetError(f"{where}: 'image' must be a file name, got {image!r}")
        if center is None:
            raise DatasetError(f"{where}: 'center' must be 2 numbers [x, y], got {entry.get('center')!r}")
        if not _is_number(scale) or scale <= 0:
            raise DatasetError(f"{where}: 'scale' must be a positive number, got {scale!r}")
        joints = np.zeros((MPII16.num_joints, 3), np.float32)
        if self.has_ground_truth:
            xy = _numbers(entry.get("joints"), (MPII16.num_joints, 2))
            vis = _numbers(entry.get("joints_vis"), (MPII16.num_joints,))
            if xy is None:
                raise DatasetError(f"{where}: 'joints' must be {MPII16.num_joints} pairs [x, y] of numbers")
            if vis is None:
                raise DatasetError(f"{where}: 'joints_vis' must be {MPII16.num_joints} numbers (0 or 1)")
            joints[:, :2] = xy - 1.0
            joints[:, 2] = vis
        c, s = official_center_scale(center, float(scale))
        return {"image_id": i, "file_name": image, "width": None, "height": None, "center": c, "scale": s,
                "joints": joints, "score": 1.0}

"""COCO person keypoints for top-down training and evaluation (official HRNet semantics).

Layout under ``root``::

    annotations/person_keypoints_{image_set}.json   (train / val: images, annotations, categories)
    annotations/image_info_{image_set}.json         (test sets: images only; optional)
    images/{image_set}/{file_name}
    person_detection_results/*.json                 (detections: [{image_id, category_id, bbox, score}])

Joints: the file's keypoint categories (those with a ``keypoints`` list of joint names; COCO's
'person', id 1) declare the keypoint set (:func:`pose.keypoints.from_categories`); every
annotation of those categories must have ``3 K`` keypoint numbers. Other categories are ignored.

Boxes: training always uses ground-truth boxes, filtered as the official code (non-crowd, keypoint
category, box clipped with ``x2 = min(W-1, x1 + max(0, w-1))``, kept when the annotation ``area >
0`` (or it has no ``area``, as CrowdPose's files: mmpose's rule) and the clipped box is non-empty,
keypoints not all zero, visibility clamped to 1). A box that clips to a single point (``x2 == x1``
and ``y2 == y1``: no size to crop at) is dropped as empty too. Evaluation uses these boxes
(``use_gt_bbox``) or a detection-results file (a keypoint category, ``score >= det_score_thresh``,
positive width and height, not entirely outside the image).

Test sets (``image_set`` containing 'test', e.g. test-dev2017) have no keypoint ground truth and
need detection boxes. Their image list is ``annotations/image_info_{image_set}.json`` when
present (``coco`` is then a COCO object without annotations); without it ``annotation_file`` and
``coco`` are None and images are found as ``images/{image_set}/{image_id:012d}.jpg`` (COCO's naming).

Every dropped annotation or box is counted and the counts are logged (``logging`` at INFO).
"""

import contextlib
import io
import logging
import math
import os
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from pose.config import AugmentConfig
from pose.data.codecs import HeatmapCodec
from pose.data.detections import read_detections
from pose.data.image_io import (
    CorruptImageError,
    crop_zoom,
    read_image,
    reduced_to_full_matrix,
    reduction_for_zoom,
)
from pose.data.json_io import DatasetError, is_box, is_number, load_json
from pose.data.topdown import IMAGENET_MEAN, IMAGENET_STD, CropInput
from pose.data.transforms import (
    affine_points,
    compose_affine,
    flip_center,
    flip_joints,
    half_body_center_scale,
    hflip_matrix,
    sample_rotation,
    sample_scale_multiplier,
)
from pose.keypoints import KeypointSet, KeypointSetError, from_categories, resolve

logger = logging.getLogger(__name__)

DEFAULT_ANN_FILE = "annotations/person_keypoints_{set}.json"
DEFAULT_IMAGE_DIR = "images/{set}"
MAX_SKIPS_IN_A_ROW = 20

__all__ = ["CocoKeypoints", "DatasetError", "load_json"]


class CocoKeypoints(Dataset):
    """Top-down person crops with heatmap targets.

    Args:
        root: dataset root (COCO layout, see the module docstring).
        image_set: e.g. 'train2017', 'val2017', 'test-dev2017'.
        codec: heatmap codec (crop convention, targets).
        train: training mode (ground-truth boxes, augmentation when ``aug`` is given).
        aug: augmentation settings (used only when ``train``).
        use_gt_bbox: evaluation with ground-truth boxes; False reads ``det_file``.
        det_file: detection-results file (boxes for evaluation).
        det_score_thresh: detections with a lower score are dropped.
        color_rgb: feed RGB (False: BGR, as the official ResNet configs).
        mean, std: per-channel normalisation of the [0, 1] image, in the fed channel order.
        padding, pixel_std: box padding and the unit of scale.
        skip_corrupt_images: in training, replace an undecodable image by a random other sample
            (counted in ``num_skipped_images`` of this process, and logged) instead of raising.
        keypoints: the keypoint set (names, flip pairs, upper body...), or a ``data.keypoints``
            config section as a dict resolved against the file's categories
            (:func:`pose.keypoints.resolve`; None: the set the file declares). The file's names
            must equal the set's; ``self.keypoints`` is the resolved set.
        ann_file, image_dir: the split's annotation file and image folder (relative to ``root``
            unless absolute; ``{set}`` is replaced by ``image_set``). Defaults: the COCO layout.
        reduced_decode: decode JPEGs at 1/2, 1/4 or 1/8 size when the crop is at least that much
            smaller than the image region (faster; results differ by interpolation noise only).
        cache_images: keep every decoded image in memory after its first use (per process: each
            loader worker holds its own cache), so later epochs skip the decode. For small
            datasets such as the synthetic one; not with ``reduced_decode``.

    Items (``__getitem__``): ``image`` (3, H, W) float32 normalised; ``target`` (K, h, w) float32;
    ``target_weight`` (K, 1) float32; ``center`` (2,) and ``scale`` (2,) float32 of the crop in
    image px / pixel_std units; ``rotation`` (degrees); ``score`` (box score, 1 for ground truth);
    ``area`` = scale[0] * scale[1] * pixel_std**2; ``image_id``; ``category_id`` (of the annotation
    or detection); ``index``; ``joints`` (K, 3)
    float32 image px + visibility (zeros for detection boxes). In training, ``center``,
    ``rotation`` and ``joints`` describe the augmented crop in the frame of the (possibly
    mirrored) image, so ``codec.crop_matrix(center, scale, rotation)`` maps ``joints`` into the crop.
    """

    def __init__(self, *, root: str | os.PathLike, image_set: str, codec: HeatmapCodec, train: bool,
                 aug: AugmentConfig | None = None, use_gt_bbox: bool = True,
                 det_file: str | os.PathLike | None = None, det_score_thresh: float = 0.0,
                 color_rgb: bool = True, mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD, padding: float = 1.25, pixel_std: float = 200.0,
                 skip_corrupt_images: bool = False, keypoints: KeypointSet | Mapping[str, Any] | None = None,
                 ann_file: str = DEFAULT_ANN_FILE, image_dir: str = DEFAULT_IMAGE_DIR,
                 reduced_decode: bool = False, cache_images: bool = False) -> None:
        if reduced_decode and cache_images:
            raise ValueError("data.reduced_decode and data.cache_images exclude each other (the cache holds "
                             "full-size images; the reduced decode exists to avoid decoding them)")
        self.root = Path(root)
        self.image_set = image_set
        self.codec = codec
        self.train = bool(train)
        self.aug = aug if self.train else None
        self.use_gt_bbox = bool(use_gt_bbox)
        self.det_file = Path(det_file) if det_file is not None else None
        self.det_score_thresh = float(det_score_thresh)
        self.color_rgb = bool(color_rgb)
        self.padding = float(padding)
        self.pixel_std = float(pixel_std)
        self.skip_corrupt_images = bool(skip_corrupt_images)
        self.reduced_decode = bool(reduced_decode)
        self.cache_images = bool(cache_images)
        self._image_cache: dict[Path, np.ndarray] = {}
        self.num_skipped_images = 0
        self.filter_summary = ""  # what the box filters kept and dropped (logged; named in errors)
        self.input_size = codec.input_size
        self.crop_input = CropInput(input_size=self.input_size, color_rgb=self.color_rgb, mean=mean, std=std,
                                    padding=self.padding, pixel_std=self.pixel_std)
        self.aspect_ratio = self.crop_input.aspect_ratio
        self._image_dir, self._ann_file, self._keypoints_arg = image_dir, ann_file, keypoints
        self._check_layout()
        self.is_test_set = "test" in image_set
        self.records = self._load_records()
        self._flip_pairs = self.keypoints.flip_pairs
        self._upper_ids = self.keypoints.upper_body
        try:
            codec.set_flip_index(self.keypoints.flip_index)
        except ValueError as exc:
            raise DatasetError(f"{self.annotation_file or self.root}: {exc}") from None
        if not self.records:
            raise DatasetError(f"no usable person instances in {image_set!r} under {self.root}: "
                               f"{self.filter_summary}")

    # --- loading --------------------------------------------------------------------------------
    @property
    def num_joints(self) -> int:
        return self.keypoints.num_joints

    def _check_layout(self) -> None:
        image_dir = self._image_dir
        if not self.root.is_dir():
            raise FileNotFoundError(f"dataset root not found: {self.root} (expected annotations/ and "
                                    f"images/{self.image_set}/ under it)")
        self.image_dir = self.root / image_dir.replace("{set}", self.image_set)
        if not self.image_dir.is_dir():
            raise FileNotFoundError(f"image folder not found: {self.image_dir} (expected "
                                    f"root/{image_dir.replace('{set}', self.image_set)}/<file_name>)")

    def _load_records(self) -> list[dict]:
        """The person instances: ground-truth boxes (training, ``use_gt_bbox``) or detections."""
        self.annotation_file, self.coco = self._load_annotations()
        if self.train or self.use_gt_bbox:
            if self.coco is None or "annotations" not in self.coco.dataset:
                raise DatasetError(f"{self.annotation_file or self.root / 'annotations'}: no keypoint "
                                   f"annotations for {self.image_set!r}; evaluate it with detection boxes "
                                   "(use_gt_bbox false / test.use_gt_bbox=false)")
            return self._gt_records()
        if self.det_file is None:
            raise ValueError("use_gt_bbox is false but no det_file was given")
        return self._det_records()

    def _load_annotations(self):
        ann_file, keypoints = self._ann_file, self._keypoints_arg
        path = self.root / ann_file.replace("{set}", self.image_set)
        if self.is_test_set and ann_file == DEFAULT_ANN_FILE and not path.is_file():
            # test sets without keypoints (CrowdPose's test has them): COCO's image-info file
            path = self.root / "annotations" / f"image_info_{self.image_set}.json"
        if not path.is_file():
            if self.is_test_set and not self.use_gt_bbox and not self.train:
                logger.info("%s not found: images of %s are looked up as %s/<image_id:012d>.jpg",
                            path, self.image_set, self.image_dir)
                self._set_keypoints(keypoints, None, path)
                return None, None
            raise FileNotFoundError(f"annotation file not found: {path}")
        data = load_json(path, "COCO annotation file")
        self._validate_images(path, data)
        declared = None
        categories = data.get("categories") if isinstance(data, dict) else None
        if categories is not None and not isinstance(categories, list):
            raise DatasetError(f"{path}: 'categories' must be a list of COCO categories")
        if categories and any(isinstance(c, dict) and "keypoints" in c for c in categories):
            try:
                declared, self.category_ids = from_categories(data.get("categories"), str(path))
            except KeypointSetError as exc:
                raise DatasetError(str(exc)) from None
        self._set_keypoints(keypoints, declared, path)
        self._validate_annotations(path, data)
        from pycocotools.coco import COCO

        coco = COCO()
        coco.dataset = data
        with contextlib.redirect_stdout(io.StringIO()):
            coco.createIndex()
        return path, coco

    def _set_keypoints(self, keypoints, declared: KeypointSet | None, path: Path) -> None:
        """``self.keypoints``: ``keypoints`` (a set or a config section) checked against ``declared``.

        A file whose categories declare no joints (no 'keypoints' lists) takes the given set, with
        COCO's person category id 1."""
        if isinstance(keypoints, KeypointSet):
            section = keypoints.to_dict()
        else:
            section = dict(keypoints or {})
        try:
            self.keypoints = resolve(section, declared, source=f"data.keypoints for {path}",
                                     declared_from=str(path))
        except KeypointSetError as exc:
            raise DatasetError(str(exc)) from None
        if declared is None:
            self.category_ids = (1,)

    @staticmethod
    def _validate_images(path: Path, data: Any) -> None:
        if not isinstance(data, dict) or not isinstance(data.get("images"), list):
            raise DatasetError(f"{path}: expected a COCO JSON object with an 'images' list")
        if "annotations" in data and not isinstance(data["annotations"], list):
            raise DatasetError(f"{path}: 'annotations' must be a list")
        for i, img in enumerate(data["images"]):
            if not isinstance(img, dict) or not isinstance(img.get("id"), int) \
                    or not isinstance(img.get("file_name"), str):
                raise DatasetError(f"{path}: images[{i}] must have an integer 'id' and a 'file_name'")

    def _validate_annotations(self, path: Path, data: Any) -> None:
        need = 3 * self.num_joints
        for i, ann in enumerate(data.get("annotations", [])):
            if not isinstance(ann, dict) or "image_id" not in ann:
                raise DatasetError(f"{path}: annotations[{i}] must be an object with an 'image_id'")
            if ann.get("category_id", self.category_ids[0]) not in self.category_ids:
                continue
            where = f"{path}: annotation {ann.get('id', f'#{i}')} (image {ann['image_id']})"
            kps = ann.get("keypoints")
            if not isinstance(kps, list) or len(kps) != need:
                got = f"{len(kps)} values" if isinstance(kps, list) else repr(type(kps).__name__)
                raise DatasetError(f"{where}: 'keypoints' must be {need} numbers ({self.num_joints} "
                                   f"keypoints x [x, y, v], as the category's 'keypoints' names "
                                   f"{self.keypoints.name!r}), got {got}")
            if not all(is_number(v) for v in kps):
                raise DatasetError(f"{where}: 'keypoints' must be finite numbers")
            if not is_box(ann.get("bbox")):
                raise DatasetError(f"{where}: 'bbox' must be 4 numbers [x, y, w, h], got {ann.get('bbox')!r}")
            if "area" in ann and not is_number(ann["area"]):  # CrowdPose's files have none (as mmpose: kept)
                raise DatasetError(f"{where}: 'area' must be a number, got {ann.get('area')!r}")

    def _image_record(self, image_id: int) -> dict:
        if self.coco is None:
            return {"file_name": f"{image_id:012d}.jpg", "width": None, "height": None}
        img = self.coco.imgs[image_id]
        return {"file_name": img["file_name"], "width": img.get("width"), "height": img.get("height")}

    def _gt_records(self) -> list[dict]:
        counts = {"crowd": 0, "not a keypoint category": 0, "empty box or area": 0, "no labelled keypoints": 0}
        records = []
        ann_file = self.annotation_file
        for image_id in self.coco.getImgIds():
            img = self.coco.imgs[image_id]
            width, height = img.get("width"), img.get("height")
            if not is_number(width) or not is_number(height):
                raise DatasetError(f"{ann_file}: image {image_id} needs numeric 'width' and 'height'")
            for ann in self.coco.imgToAnns.get(image_id, []):
                if ann.get("iscrowd", 0):
                    counts["crowd"] += 1
                    continue
                if ann.get("category_id", self.category_ids[0]) not in self.category_ids:
                    counts["not a keypoint category"] += 1
                    continue
                x, y, w, h = ann["bbox"]
                x1, y1 = max(0.0, x), max(0.0, y)
                x2 = min(width - 1.0, x1 + max(0.0, w - 1.0))
                y2 = min(height - 1.0, y1 + max(0.0, h - 1.0))
                if not (ann.get("area", 1.0) > 0 and x2 >= x1 and y2 >= y1 and (x2 > x1 or y2 > y1)):
                    counts["empty box or area"] += 1
                    continue
                kps = np.asarray(ann["keypoints"], dtype=np.float32).reshape(self.num_joints, 3)
                if kps.max() == 0:
                    counts["no labelled keypoints"] += 1
                    continue
                kps[:, 2] = np.minimum(kps[:, 2], 1.0)
                box = [x1, y1, x2 - x1, y2 - y1]
                center, scale = self.crop_input.center_scale(box)
                records.append({"image_id": int(image_id), "file_name": img["file_name"],
                                "width": int(width), "height": int(height), "box": np.float32(box),
                                "center": center, "scale": scale, "joints": kps, "score": 1.0,
                                "category_id": int(ann.get("category_id", self.category_ids[0]))})
        total = len(self.coco.anns)
        counts["image not in 'images'"] = total - len(records) - sum(counts.values())
        dropped = ", ".join(f"{n} {why}" for why, n in counts.items() if n)
        self.filter_summary = (f"{ann_file}: {len(records)} of {total} annotations kept as instances"
                               + (f" (dropped: {dropped})" if dropped else ""))
        logger.info("%s", self.filter_summary)
        return records

    def _det_records(self) -> list[dict]:
        dets = read_detections(self.det_file, score_thresh=self.det_score_thresh,
                               category_id=self.category_ids[0])
        counts = {**dets.dropped, "image not in the annotation file": 0, "box outside the image": 0}
        records = []
        zeros = np.zeros((self.num_joints, 3), np.float32)
        for image_id, box, score in zip(dets.image_ids.tolist(), dets.boxes, dets.scores.tolist()):
            if self.coco is not None and image_id not in self.coco.imgs:
                counts["image not in the annotation file"] += 1
                continue
            image = self._image_record(image_id)
            width, height = image["width"], image["height"]
            x, y, w, h = box.tolist()
            if is_number(width) and is_number(height) and (x >= width or y >= height or x + w <= 0 or y + h <= 0):
                counts["box outside the image"] += 1
                continue
            center, scale = self.crop_input.center_scale(box)
            records.append({"image_id": image_id, **image, "box": box.astype(np.float32), "center": center,
                            "scale": scale, "joints": zeros, "score": score,
                            "category_id": self.category_ids[0]})
        dropped = ", ".join(f"{n} {why}" for why, n in counts.items() if n)
        self.filter_summary = (f"{self.det_file}: {len(records)} of {dets.total} detections kept"
                               + (f" (dropped: {dropped})" if dropped else ""))
        logger.info("%s", self.filter_summary)
        if counts["image not in the annotation file"] == dets.total and dets.total:
            raise DatasetError(f"{self.det_file}: none of its image ids is in {self.annotation_file}")
        return records

    # --- items ----------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        for _ in range(MAX_SKIPS_IN_A_ROW):
            try:
                return self._load(index)
            except CorruptImageError as exc:
                if not (self.skip_corrupt_images and self.train):
                    raise
                self.num_skipped_images += 1
                logger.warning("%s; sample %d skipped (%d corrupt images skipped in this process)",
                               exc, index, self.num_skipped_images)
                index = random.randrange(len(self.records))
        raise CorruptImageError(f"{MAX_SKIPS_IN_A_ROW} corrupt images in a row under {self.image_dir}")

    def _augment(self, center, scale, joints, vis) -> tuple[np.ndarray, np.ndarray, float, bool]:
        aug = self.aug
        # A set without upper-body joints (``keypoints.upper_body`` empty) has no half-body crop.
        if self._upper_ids and vis.sum() > aug.half_body_min_joints and np.random.rand() < aug.half_body_prob:
            half = half_body_center_scale(joints, vis, self.aspect_ratio, self.pixel_std, self._upper_ids)
            if half is not None and (half[1] > 0).all():
                center, scale = half
        scale = scale * sample_scale_multiplier(aug.scale_factor)
        rotation = sample_rotation(aug.rot_factor, aug.rot_prob)
        flip = bool(aug.flip and random.random() <= aug.flip_prob)
        return center, scale, rotation, flip

    def _read(self, rec: dict, mat: np.ndarray) -> tuple[np.ndarray, int, int]:
        """Image (BGR), its reduction factor and the full-size width."""
        path = self.image_dir / rec["file_name"]
        if self.cache_images:
            image = self._image_cache.get(path)
            if image is None:
                image = read_image(path, 1)  # a corrupt image raises here and is never cached
                image.flags.writeable = False
                self._image_cache[path] = image
            return image, 1, image.shape[1]
        reduce = reduction_for_zoom(crop_zoom(mat)) if self.reduced_decode else 1
        image = read_image(path, reduce)
        if reduce == 1:
            return image, 1, image.shape[1]
        width, height = rec["width"], rec["height"]
        if width is None or image.shape[:2] != (math.ceil(height / reduce), math.ceil(width / reduce)):
            # Size unknown or not as annotated: decode at full size, where the frame is certain.
            image = read_image(path, 1)
            return image, 1, image.shape[1]
        return image, reduce, int(width)

    def _load(self, index: int) -> dict:
        rec = self.records[index]
        center, scale = rec["center"].copy(), rec["scale"].copy()
        joints, vis = rec["joints"][:, :2].copy(), rec["joints"][:, 2].copy()
        rotation, flip = 0.0, False
        if self.aug is not None:
            center, scale, rotation, flip = self._augment(center, scale, joints, vis)
        zoom_mat = self.codec.crop_matrix(center, scale, rotation)
        image, reduce, width = self._read(rec, zoom_mat)
        mat, warp = zoom_mat, zoom_mat
        if flip:  # the mirror is folded into the warp: the image itself is never flipped
            joints, vis = flip_joints(joints, vis, width, self._flip_pairs)
            center = flip_center(center, width)
            mat = self.codec.crop_matrix(center, scale, rotation)  # mirrored image -> crop
            warp = compose_affine(mat, hflip_matrix(width))
        if reduce > 1:
            warp = compose_affine(warp, reduced_to_full_matrix(reduce))
        tensor = self.crop_input(image, warp)
        target, weight = self.codec.encode(affine_points(joints, mat), vis)  # detections: vis 0, no target
        return {
            "image": tensor,
            "target": torch.from_numpy(target),
            "target_weight": torch.from_numpy(weight).view(-1, 1),
            "center": torch.from_numpy(np.asarray(center, np.float32)),
            "scale": torch.from_numpy(np.asarray(scale, np.float32)),
            "rotation": float(rotation),
            "score": float(rec["score"]),
            "area": float(scale[0] * scale[1] * self.pixel_std ** 2),
            "image_id": int(rec["image_id"]),
            "category_id": int(rec.get("category_id", 1)),  # formats without categories (MPII): 1
            "index": int(index),
            "joints": torch.from_numpy(np.concatenate([joints, vis[:, None]], axis=1).astype(np.float32)),
        }

"""Data: COCO keypoints, crop transforms, heatmap codecs, the synthetic dataset.

``build_dataset(cfg, split)`` is the one place a config becomes a dataset.
"""

from pathlib import Path

from pose.config import Config
from pose.data.coco import CocoKeypoints
from pose.data.codecs import build_codec, build_codec_from_config
from pose.data.json_io import DatasetError

SPLITS = ("train", "val")

__all__ = ["CocoKeypoints", "DatasetError", "build_codec", "build_codec_from_config", "build_dataset"]


def build_dataset(cfg: Config, split: str) -> CocoKeypoints:
    """The dataset of ``cfg`` for ``split`` ('train' or 'val').

    'train': ``data.train_set`` with ground-truth boxes and ``data.aug``. 'val': ``data.val_set``
    with ground-truth boxes when ``test.use_gt_bbox``, else ``data.det_file`` (relative to
    ``data.root`` unless absolute) filtered at ``test.det_score_thresh``. When
    ``data.synthetic.enabled``, the synthetic dataset is generated under ``data.root`` first
    (unless already there).
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
    data = cfg.data
    root = Path(data.root)
    if data.synthetic.enabled:
        try:
            from pose.data.synthetic import ensure_synthetic
        except ModuleNotFoundError as exc:
            if exc.name != "pose.data.synthetic":
                raise
            raise ModuleNotFoundError("data.synthetic.enabled is true but pose.data.synthetic (the "
                                      "generator) is not installed", name=exc.name) from None
        made = ensure_synthetic(data)
        root = Path(made) if made is not None else root
    train = split == "train"
    use_gt = True if train else cfg.test.use_gt_bbox
    det_file = None
    if not use_gt:
        det_file = Path(data.det_file)
        det_file = det_file if det_file.is_absolute() else root / det_file
    return CocoKeypoints(
        root=root, image_set=data.train_set if train else data.val_set, codec=build_codec_from_config(cfg),
        train=train, aug=data.aug if train else None, use_gt_bbox=use_gt, det_file=det_file,
        det_score_thresh=cfg.test.det_score_thresh, color_rgb=data.color_rgb, mean=data.mean, std=data.std,
        padding=data.padding, pixel_std=data.pixel_std, skip_corrupt_images=data.skip_corrupt_images,
        num_joints=cfg.model.num_joints, reduced_decode=data.reduced_decode,
        cache_images=data.cache_images)

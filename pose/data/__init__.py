"""Data: COCO keypoints, crop transforms, heatmap codecs, the synthetic dataset.

``build_dataset(cfg, split)`` is the one place a config becomes a dataset.

What the engine needs of a dataset (``CocoKeypoints``; ``MpiiKeypoints`` and
``CrowdPoseKeypoints`` provide the same): ``keypoints`` (the resolved
:class:`pose.keypoints.KeypointSet`), ``codec`` (with the set's flip index), ``protocol`` (its
evaluation, ``pose.engine.protocols``), ``image_set``, ``records`` (with ``joints`` and ``box``
per crop), ``__len__`` and items as ``CocoKeypoints.__getitem__`` describes.
``with_dataset_keypoints(cfg, dataset)`` writes the set the training data resolved into the config
(``data.keypoints``, ``model.num_joints``) before the network is built and the config saved.
"""

from pathlib import Path

from pose.config import Config, ConfigError, configured_keypoint_set, to_dict, with_keypoint_set
from pose.data.coco import CocoKeypoints
from pose.data.codecs import build_codec, build_codec_from_config
from pose.data.crowdpose import CrowdPoseKeypoints
from pose.data.json_io import DatasetError
from pose.data.mpii import MpiiKeypoints

SPLITS = ("train", "val")

__all__ = ["CocoKeypoints", "CrowdPoseKeypoints", "DatasetError", "MpiiKeypoints", "build_codec",
           "build_codec_from_config", "build_dataset", "with_dataset_keypoints"]


def with_dataset_keypoints(cfg: Config, dataset) -> Config:
    """``cfg`` with the dataset's resolved keypoint set written into ``data.keypoints`` and
    ``model.num_joints`` (a non-zero ``model.num_joints`` that disagrees raises ConfigError)."""
    try:
        return with_keypoint_set(cfg, dataset.keypoints)
    except ConfigError as exc:
        raise ConfigError(f"{getattr(dataset, 'annotation_file', None) or dataset.image_set}: {exc}") from None


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
    # The set the config names (a built-in name, explicit names, or data.dataset's own set), else the
    # one the training annotation file declares (resolved by the dataset from the config section).
    kset = configured_keypoint_set(cfg)
    codec = build_codec_from_config(cfg, kset)
    common = dict(root=root, image_set=data.train_set if train else data.val_set, codec=codec, train=train,
                  aug=data.aug if train else None, color_rgb=data.color_rgb, mean=data.mean, std=data.std,
                  pixel_std=data.pixel_std, skip_corrupt_images=data.skip_corrupt_images,
                  reduced_decode=data.reduced_decode, cache_images=data.cache_images)
    if data.dataset == "mpii":
        if not use_gt:
            raise ValueError("data.dataset=mpii is evaluated on its annotated people (centre and scale of "
                             "each annotation): set test.use_gt_bbox=true")
        return MpiiKeypoints(**common)
    cls = CrowdPoseKeypoints if data.dataset == "crowdpose" else CocoKeypoints
    return cls(use_gt_bbox=use_gt, det_file=det_file, det_score_thresh=cfg.test.det_score_thresh,
               padding=data.padding, keypoints=kset if kset is not None else to_dict(data.keypoints),
               ann_file=data.ann_file, image_dir=data.image_dir, **common)

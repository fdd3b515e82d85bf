"""Data: COCO keypoints, crop transforms, heatmap codecs, the synthetic dataset.

``build_dataset(cfg, split)`` is the one place a config becomes a dataset.
"""

from pathlib import Path

from pose.config import Config
from pose.data.coco import CocoKeypoints
from pose.data.codecs import build_codec, build_codec_from_config
from pose.data.crowdpose import CrowdPoseKeypoints
from pose.data.json_io import DatasetError
from pose.data.mpii import MpiiKeypoints
from pose.keypoints import CROWDPOSE14, MPII16

SPLITS = ("train", "val")

# The keypoint sets of the datasets that fix theirs (COCO-format data: model.num_joints).
DATASET_KEYPOINTS = {"mpii": MPII16, "crowdpose": CROWDPOSE14}

__all__ = ["CocoKeypoints", "CrowdPoseKeypoints", "DatasetError", "MpiiKeypoints", "build_codec",
           "build_codec_from_config", "build_dataset"]


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
    codec = build_codec_from_config(cfg)
    kset = DATASET_KEYPOINTS.get(data.dataset)
    if kset is not None:
        if cfg.model.num_joints != kset.num_joints:
            raise ValueError(f"data.dataset={data.dataset} has {kset.num_joints} joints but model.num_joints is "
                             f"{cfg.model.num_joints}; set model.num_joints={kset.num_joints}")
        codec = build_codec(data.codec, input_size=data.input_size, heatmap_size=data.heatmap_size,
                            sigma=data.sigma, flip_index=kset.flip_index, pixel_std=data.pixel_std)
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
               padding=data.padding, num_joints=cfg.model.num_joints, **common)

"""CrowdPose: COCO-format data with 14 joints and no 'area', its configs, and the real samples."""

import json
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from pose.config import load_config
from pose.data import CrowdPoseKeypoints, DatasetError, build_dataset
from pose.keypoints import CROWDPOSE14
from pose.vis import draw_skeleton

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("POSE_SHARED_DATA", ROOT.parent / "shared" / "data"))
SAMPLES = SHARED / "crowdpose_samples"
CONFIG = ROOT / "experiments/crowdpose/hrnet/w32_256x192_adam_lr1e-3.yaml"
needs_samples = pytest.mark.skipif(not SAMPLES.is_dir(), reason=f"real CrowdPose samples not found at {SAMPLES} "
                                   "(../shared/data next to the repository, or POSE_SHARED_DATA)")


def _layout(tmp_path, annotations: Path, images: Path, det_file: Path | None = None, image_set="test"):
    """CrowdPose's files linked into the COCO layout, as the README describes."""
    root = tmp_path / "crowdpose"
    (root / "annotations").mkdir(parents=True)
    (root / "images").mkdir()
    shutil.copy(annotations, root / "annotations" / f"person_keypoints_{image_set}.json")
    (root / "images" / image_set).symlink_to(images)
    if det_file is not None:
        (root / "person_detection_results").mkdir()
        shutil.copy(det_file, root / "person_detection_results" / "crowdpose_test_detections.json")
    return root


def test_config():
    cfg = load_config(CONFIG)
    assert (cfg.data.dataset, cfg.model.num_joints, cfg.data.train_set, cfg.data.val_set) == \
        ("crowdpose", 14, "trainval", "test")
    assert cfg.model.arch == "hrnet_w32" and cfg.data.input_size == (192, 256)
    assert load_config(CONFIG.with_name("w32_256x192_adam_lr1e-3_psa_p.yaml")).model.psa == "parallel"


def test_missing_area_takes_the_box_area(tmp_path):
    images = tmp_path / "imgs"
    images.mkdir()
    cv2.imwrite(str(images / "1.jpg"), np.zeros((100, 120, 3), np.uint8))
    kps = np.concatenate([np.stack([np.linspace(30, 60, 14), np.linspace(20, 80, 14)], 1), np.ones((14, 1))], 1)
    ann = {"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "num_keypoints": 14,
           "bbox": [25.0, 15.0, 40.0, 70.0], "keypoints": kps.ravel().tolist()}
    gt = {"images": [{"id": 1, "file_name": "1.jpg", "width": 120, "height": 100, "crowdIndex": 0.1}],
          "annotations": [ann, {**ann, "id": 2, "bbox": [10.0, 10.0, 0.0, 30.0]}],
          "categories": [CROWDPOSE14.coco_category(supercategory="person")]}
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    root = _layout(tmp_path, tmp_path / "gt.json", images)
    cfg = load_config(CONFIG, [f"data.root={root}", "test.use_gt_bbox=true", "data.input_size=[48,64]",
                               "data.heatmap_size=[12,16]"])
    ds = build_dataset(cfg, "val")
    assert isinstance(ds, CrowdPoseKeypoints) and ds.protocol == "crowdpose"
    assert len(ds) == 1 and "1 empty box or area" in ds.filter_summary  # the zero-width box: area 0
    assert ds.codec.flip_index == CROWDPOSE14.flip_index
    assert ds[0]["target"].shape == (14, 16, 12)
    gt["annotations"][0]["bbox"] = [1, 2, "x", 4]
    (root / "annotations" / "person_keypoints_test.json").write_text(json.dumps(gt))
    with pytest.raises(DatasetError, match=r"annotation 1 \(image 1\): 'bbox' must be 4 numbers"):
        build_dataset(cfg, "val")


@needs_samples
def test_real_samples_load_crop_and_draw(tmp_path):
    root = _layout(tmp_path, SAMPLES / "test_crowdpose.json", SAMPLES / "images",
                   SAMPLES / "test_crowdpose_det_AP_40.json")
    cfg = load_config(CONFIG, [f"data.root={root}", "test.use_gt_bbox=true"])
    ds = build_dataset(cfg, "val")
    # 5 people, one without labelled keypoints.
    assert len(ds) == 4 and "1 no labelled keypoints" in ds.filter_summary
    for i in range(len(ds)):
        item = ds[i]
        joints = item["joints"].numpy()
        assert joints.shape == (14, 3) and item["target"].shape == (14, 64, 48)
        labelled = joints[:, 2] > 0
        crop = ds.codec.crop_matrix(item["center"].numpy(), item["scale"].numpy(), 0.0)
        in_crop = joints[labelled, :2] @ crop[:, :2].T + crop[:, 2]
        # CrowdPose's boxes do not always cover every joint (a foot a few px below): a margin.
        assert (in_crop > -20).all() and (in_crop[:, 0] < 212).all() and (in_crop[:, 1] < 276).all()
    dets = build_dataset(load_config(CONFIG, [f"data.root={root}"]), "val")
    assert len(dets) > 0 and all(r["score"] < 1.0 for r in dets.records)
    image = cv2.imread(str(ds.image_dir / ds.records[0]["file_name"]))
    drawn = draw_skeleton(image, ds.records[0]["joints"])
    assert drawn.shape == image.shape and (drawn != image).any()


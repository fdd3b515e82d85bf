"""Real photos with their official annotations (../shared/data, see its README): COCO and CrowdPose
load with their keypoint sets, crop to the network input, and draw with their skeletons."""

import os
from pathlib import Path

import numpy as np
import pytest

from pose import vis
from pose.data import CocoKeypoints, build_codec
from pose.keypoints import COCO17, CROWDPOSE14

SHARED = Path(os.environ.get("POSE_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))


def _root(name: str) -> Path:
    root = SHARED / name
    if not root.is_dir():
        pytest.skip(f"real samples not found at {root} (../shared/data next to the repository, or "
                    "POSE_SHARED_DATA)")
    return root


def _codec():
    return build_codec("gaussian", input_size=(192, 256), heatmap_size=(48, 64), sigma=2.0)


def _crop_image(item: dict) -> np.ndarray:
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    rgb = item["image"].numpy().transpose(1, 2, 0) * std + mean
    return np.ascontiguousarray(np.clip(rgb[:, :, ::-1] * 255 + 0.5, 0, 255).astype(np.uint8))


def _check_items_and_draw(ds, kset, count: int) -> None:
    assert ds.keypoints == kset and ds.codec.flip_index == kset.flip_index
    drawings = []
    for i in range(min(count, len(ds))):
        item = ds[i]
        assert item["image"].shape == (3, 256, 192) and item["target"].shape == (kset.num_joints, 64, 48)
        joints = item["joints"].numpy()
        # The labelled joints land where the crop matrix puts them: inside the crop, with a target peak.
        mat = ds.codec.crop_matrix(item["center"].numpy(), item["scale"].numpy(), item["rotation"])
        crop_xy = joints[:, :2] @ mat[:, :2].T + mat[:, 2]
        inside = (joints[:, 2] > 0) & (crop_xy >= 0).all(1) & (crop_xy < [191, 255]).all(1)
        assert inside.any() and (item["target"].numpy()[inside].max(axis=(1, 2)) > 0.5).all()
        kp = np.concatenate([crop_xy, joints[:, 2:3]], axis=1)
        crop = _crop_image(item)
        drawn = vis.draw_skeleton(crop, kp, score_thresh=0.0, kset=kset)
        assert (drawn != crop).any()
        drawings.append(drawn)
    assert len(drawings) == min(count, len(ds))


def test_coco_real_photos_train_and_val(tmp_path):
    root = _root("coco_real")
    train = CocoKeypoints(root=root, image_set="train2017", codec=_codec(), train=False)
    assert train.category_ids == (1,) and len(train) > 50  # 86 people with keypoints, some dropped as empty
    _check_items_and_draw(train, COCO17, 8)
    val = CocoKeypoints(root=root, image_set="val2017", codec=_codec(), train=False, use_gt_bbox=False,
                        det_file=root / "person_detection_results" / "COCO_val2017_detections_AP_H_56_person.json")
    assert len(val) > 0 and val.keypoints == COCO17
    assert val[0]["image"].shape == (3, 256, 192)


def test_crowdpose_photos_with_their_14_joints():
    root = _root("crowdpose_samples")
    # Not the COCO layout: the annotation file and the image folder are named explicitly.
    ds = CocoKeypoints(root=root, image_set="test", codec=_codec(), train=False, ann_file="test_crowdpose.json",
                       image_dir="images")
    # The file's category names are CrowdPose's (its 'skeleton' is COCO's 17-joint one, out of range
    # for 14 joints: the built-in set's own skeleton is used).
    assert ds.keypoints == CROWDPOSE14 and len(ds) == 4  # of 5 annotations: one has no labelled joint
    _check_items_and_draw(ds, CROWDPOSE14, 5)
    dets = CocoKeypoints(root=root, image_set="test", codec=_codec(), train=False, ann_file="test_crowdpose.json",
                         image_dir="images", use_gt_bbox=False, det_file=root / "test_crowdpose_det_AP_40.json")
    assert len(dets) > 0 and dets[0]["joints"].shape == (14, 3)

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
    """CrowdPose's own layout: annotations/crowdpose_{set}.json and one images/ folder."""
    root = tmp_path / "crowdpose"
    (root / "annotations").mkdir(parents=True)
    shutil.copy(annotations, root / "annotations" / f"crowdpose_{image_set}.json")
    (root / "images").symlink_to(images)
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
    (root / "annotations" / "crowdpose_test.json").write_text(json.dumps(gt))
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
    drawn = draw_skeleton(image, ds.records[0]["joints"], kset=CROWDPOSE14)
    assert drawn.shape == image.shape and (drawn != image).any()


def test_test_tool_prints_the_crowdpose_table(tmp_path):
    """tools/test.py on CrowdPose-format data: the CrowdPose numbers of its own results file."""
    import contextlib
    import io
    import runpy

    import torch

    from pose.engine.crowdpose_eval import STAT_NAMES, crowdpose_keypoint_eval
    from pose.models import build_model

    images = tmp_path / "imgs"
    images.mkdir()
    rng = np.random.default_rng(0)
    gt = {"images": [], "annotations": [], "categories": [CROWDPOSE14.coco_category(supercategory="person")]}
    for i, ci in enumerate((0.05, 0.5, 0.9), start=1):
        cv2.imwrite(str(images / f"{i}.jpg"), cv2.GaussianBlur(rng.integers(0, 255, (100, 120, 3), np.uint8),
                                                              (0, 0), 2))
        gt["images"].append({"id": i, "file_name": f"{i}.jpg", "width": 120, "height": 100, "crowdIndex": ci})
        for j in range(2):
            x0, y0 = 10 + 50 * j, 10 + 5 * i
            kps = np.concatenate([np.stack([x0 + rng.uniform(0, 40, 14), y0 + rng.uniform(0, 70, 14)], 1),
                                  np.full((14, 1), 2.0)], 1)
            gt["annotations"].append({"id": 10 * i + j, "image_id": i, "category_id": 1, "iscrowd": 0,
                                      "num_keypoints": 14, "bbox": [x0, y0, 40.0, 70.0],
                                      "keypoints": kps.round(1).ravel().tolist()})
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    root = _layout(tmp_path, tmp_path / "gt.json", images)
    cfg_file = tmp_path / "tiny.yaml"
    cfg_file.write_text(f"base: {CONFIG}\nmodel:\n  arch: hrnet_tiny\n  pretrained: ''\n"
                        f"data:\n  root: {root}\n  input_size: [48, 64]\n  heatmap_size: [12, 16]\n  sigma: 1.0\n"
                        f"test:\n  use_gt_bbox: true\n  batch_size: 8\ntrain:\n  workers: 0\n"
                        f"output_dir: {tmp_path / 'out'}\n")
    torch.manual_seed(0)
    weights = tmp_path / "w.pth"
    torch.save(build_model(load_config(cfg_file), verbose=False).state_dict(), weights)
    tool = runpy.run_path(str(ROOT / "tools" / "test.py"))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = tool["main"](tool["get_args_parser"]().parse_args(["--cfg", str(cfg_file), "--weights", str(weights),
                                                                "--quiet"]))
    assert rc == 0, out.getvalue()
    results = tmp_path / "out" / "results"
    stats = json.loads((results / "stats_test.json").read_text())
    assert list(stats)[:len(STAT_NAMES)] == list(STAT_NAMES)  # then PCK / AUC / EPE (ground-truth boxes)
    expected = crowdpose_keypoint_eval(root / "annotations" / "crowdpose_test.json",
                                       results / "keypoints_test_results.json")
    assert {k: stats[k] for k in STAT_NAMES} == expected
    header, _, values = out.getvalue().strip().splitlines()[-3:]
    assert [h.strip() for h in header.split("|")[2:-1]] == list(STAT_NAMES)
    assert [float(v) for v in values.split("|")[2:-1]] == [round(stats[n], 3) for n in STAT_NAMES]

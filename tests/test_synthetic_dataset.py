"""The synthetic COCO-format dataset: files and schema, determinism, labels, detections, COCO self-AP."""

import contextlib
import io
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from pose.data.synthetic import VAL_ID_OFFSET, det_file_name, generate_synthetic_coco, read_manifest
from pose.data.synthetic_figure import build_figure, draw_shapes, sample_colors, sample_pose
from pose.data.synthetic_scene import render_scene
from pose.keypoints import COCO17

KEYPOINT_NAMES = COCO17.names

W, H = 160, 120
SETS = ("train2017", "val2017")


def _generate(root: Path, **kw) -> Path:
    args = dict(seed=3, num_train_images=6, num_val_images=16, image_size=(W, H), max_people=3)
    args.update(kw)
    return generate_synthetic_coco(root, **args)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return _generate(tmp_path_factory.mktemp("syn") / "synthetic")


def _load(root: Path, name: str) -> dict:
    return json.loads((root / "annotations" / f"person_keypoints_{name}.json").read_text())


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_layout_and_schema(dataset):
    assert read_manifest(dataset)["params"]["seed"] == 3
    assert (dataset / det_file_name("val2017")).is_file()
    for name, count, offset in (("train2017", 6, 0), ("val2017", 16, VAL_ID_OFFSET)):
        data = _load(dataset, name)
        assert set(data) == {"info", "licenses", "images", "annotations", "categories"}
        assert data["categories"] == [COCO17.coco_category(name="person")]
        assert data["categories"][0]["keypoints"] == list(KEYPOINT_NAMES)
        assert [im["id"] for im in data["images"]] == [offset + i + 1 for i in range(count)]
        for im in data["images"]:
            assert im["file_name"] == f"{im['id']:012d}.jpg" and (im["width"], im["height"]) == (W, H)
            image = cv2.imread(str(dataset / "images" / name / im["file_name"]))
            assert image is not None and image.shape == (H, W, 3)
        assert len(list((dataset / "images" / name).iterdir())) == count
        ids = [a["id"] for a in data["annotations"]]
        assert len(ids) == len(set(ids)) and ids
        image_ids = {im["id"] for im in data["images"]}
        for a in data["annotations"]:
            assert a["image_id"] in image_ids and a["category_id"] == 1 and a["iscrowd"] in (0, 1)
            kps = np.array(a["keypoints"], dtype=np.float64).reshape(17, 3)
            v = kps[:, 2]
            assert set(v.tolist()) <= {0, 1, 2}
            assert a["num_keypoints"] == int((v > 0).sum())
            assert np.all(kps[v == 0, :2] == 0), "unlabelled joints must be x = y = 0"
            lab = kps[v > 0]
            assert np.all((lab[:, 0] >= 0) & (lab[:, 0] <= W - 1) & (lab[:, 1] >= 0) & (lab[:, 1] <= H - 1))
            x, y, w, h = a["bbox"]
            assert w > 0 and h > 0 and x >= 0 and y >= 0 and x + w <= W and y + h <= H
            assert 0 < a["area"] <= w * h
            # Labelled joints lie in (or on the edge of) their person's box.
            assert np.all((lab[:, 0] >= x - 1) & (lab[:, 0] <= x + w))
            assert np.all((lab[:, 1] >= y - 1) & (lab[:, 1] <= y + h))
            if a["iscrowd"]:
                assert a["num_keypoints"] == 0 and isinstance(a["segmentation"], dict)
            else:
                assert isinstance(a["segmentation"], list) and all(len(p) >= 6 for p in a["segmentation"])


def test_same_parameters_same_bytes(tmp_path, dataset):
    again = _files(_generate(tmp_path / "again"))
    first = _files(dataset)
    assert again.keys() == first.keys()
    assert all(again[k] == first[k] for k in first), "same parameters must give identical files"
    other = _files(_generate(tmp_path / "other", seed=4))
    key = "annotations/person_keypoints_train2017.json"
    assert other[key] != first[key]


def test_images_do_not_depend_on_the_count(tmp_path, dataset):
    fewer = _generate(tmp_path / "fewer", num_train_images=2, num_val_images=1)
    for name in ("000000000001.jpg", "000000000002.jpg"):
        assert (fewer / "images/train2017" / name).read_bytes() == \
            (dataset / "images/train2017" / name).read_bytes()


def test_scene_statistics():
    """Over a sample: crowds, people without keypoints, occluded (v=1) and out-of-image (v=0) joints."""
    crowd = no_kp = v1 = v0_in_labelled = labelled = people = 0
    for i in range(60):
        _, instances = render_scene(np.random.default_rng([11, 0, i]), 200, 150, 3)
        for inst in instances:
            crowd += inst.iscrowd
            no_kp += inst.num_keypoints == 0 and not inst.iscrowd
            if inst.num_keypoints:
                people += 1
                v = inst.keypoints[:, 2]
                labelled += int((v > 0).sum())
                v1 += int((v == 1).sum())
                v0_in_labelled += bool((v == 0).any())
    assert crowd >= 1 and no_kp >= 3 and v0_in_labelled >= 3
    assert 0.06 <= v1 / labelled <= 0.25, f"occluded share {v1 / labelled:.3f}"
    assert labelled / people > 12, "most joints of a labelled person should be labelled"


def test_left_and_right_limbs_have_their_side_colours():
    """Front-facing figures: left limbs red-magenta on the image right, right limbs blue-cyan."""
    ok = total = 0
    for i in range(30):
        rng = np.random.default_rng([5, i])
        pose, colors = sample_pose(rng), sample_colors(rng)
        pose = {**pose, "lean": 0.0}
        fig = build_figure(pose, colors, height_px=200, rotation_deg=0.0, hip_xy=np.array([150.0, 130.0]),
                           rng=rng)
        kp = {n: fig.keypoints[k] for k, n in enumerate(KEYPOINT_NAMES)}
        assert kp["left_shoulder"][0] > kp["right_shoulder"][0] and kp["left_hip"][0] > kp["right_hip"][0]
        assert kp["left_eye"][0] > kp["right_eye"][0] and kp["nose"][1] > kp["left_eye"][1]
        canvas = np.zeros((300, 300, 3), np.uint8)
        draw_shapes(canvas, None, fig.shapes)
        hsv = cv2.cvtColor(canvas, cv2.COLOR_BGR2HSV)
        for side, hues in (("left", (range(155, 180), range(0, 8))), ("right", (range(88, 127),))):
            for a, b in (("hip", "knee"), ("knee", "ankle")):  # legs: not covered by the arms as a rule
                x, y = np.round((kp[f"{side}_{a}"] + kp[f"{side}_{b}"]) / 2).astype(int)
                hue = int(hsv[y, x, 0])
                total += 1
                ok += any(hue in r for r in hues)
    assert ok / total > 0.9, f"{ok}/{total} leg midpoints have their side's hue"


def test_detection_file(dataset):
    dets = json.loads((dataset / det_file_name("val2017")).read_text())
    val = _load(dataset, "val2017")
    image_ids = {im["id"] for im in val["images"]}
    assert isinstance(dets, list) and dets
    for d in dets:
        assert set(d) == {"image_id", "category_id", "bbox", "score"}
        assert d["image_id"] in image_ids and d["category_id"] == 1 and 0 < d["score"] <= 1
        x, y, w, h = d["bbox"]
        assert x >= 0 and y >= 0 and w >= 2 and h >= 2 and x + w <= W and y + h <= H
    scores = np.array([d["score"] for d in dets])
    assert (scores > 0.8).sum() >= 10 and (scores < 0.35).sum() >= 1
    # Most people with keypoints are found with a tight box.
    found = total = 0
    for a in val["annotations"]:
        if a["num_keypoints"] and not a["iscrowd"]:
            total += 1
            boxes = [d["bbox"] for d in dets if d["image_id"] == a["image_id"]]
            found += max((_iou(a["bbox"], b) for b in boxes), default=0) > 0.6
    assert 0.75 <= found / total <= 1.0


def _iou(a, b) -> float:
    w = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    h = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    inter = max(w, 0) * max(h, 0)
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


@pytest.mark.parametrize("name", SETS)
def test_ground_truth_scores_ap_one_with_pycocotools(dataset, name):
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(dataset / "annotations" / f"person_keypoints_{name}.json"))
        results = [{"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 1.0}
                   for a in gt.dataset["annotations"] if a["num_keypoints"] > 0 and not a["iscrowd"]]
        ev = COCOeval(gt, gt.loadRes(results), iouType="keypoints")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert ev.stats[0] == pytest.approx(1.0) and ev.stats[5] == pytest.approx(1.0)
    # A shifted copy scores clearly less: the evaluation can fail.
    for r in results:
        r["keypoints"] = [v + 4.0 if i % 3 < 2 else v for i, v in enumerate(r["keypoints"])]
    with contextlib.redirect_stdout(io.StringIO()):
        ev = COCOeval(gt, gt.loadRes(results), iouType="keypoints")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert ev.stats[0] < 0.9

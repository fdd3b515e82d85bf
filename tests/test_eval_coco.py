"""coco_keypoint_eval on a tiny hand-made ground truth; the stats table; the optional faster backend."""

import json

import numpy as np
import pytest

from pose.engine.coco_eval import STAT_NAMES, EvalError, coco_keypoint_eval, format_stats_table
from pose.keypoints import COCO17


def make_gt():
    rng = np.random.default_rng(0)
    images = [{"id": i, "file_name": f"{i:012d}.jpg", "width": 640, "height": 480} for i in (1, 2, 3)]
    anns = []
    # medium (32^2 < area < 96^2) and large (> 96^2) people
    for ann_id, (image_id, x, y, w, h) in enumerate([(1, 10, 10, 40, 100), (1, 200, 50, 150, 300),
                                                     (2, 300, 100, 60, 120), (3, 50, 60, 120, 260)], start=1):
        xy = np.stack([rng.uniform(x, x + w, 17), rng.uniform(y, y + h, 17)], axis=1)
        vis = np.full((17, 1), 2.0)
        vis[4] = 0
        kps = np.concatenate([xy, vis], axis=1)
        kps[4] = 0
        anns.append({"id": ann_id, "image_id": image_id, "category_id": 1, "iscrowd": 0, "bbox": [x, y, w, h],
                     "area": float(w * h * 0.6), "num_keypoints": 16, "keypoints": kps.ravel().tolist()})
    return {"images": images, "annotations": anns, "categories": [COCO17.coco_category(name="person")]}


def perfect_results(gt):
    return [{"image_id": a["image_id"], "category_id": 1, "keypoints": list(a["keypoints"]), "score": 0.9}
            for a in gt["annotations"]]


@pytest.fixture
def gt_file(tmp_path):
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(make_gt()))
    return path


def write(tmp_path, results, name="res.json"):
    path = tmp_path / name
    path.write_text(json.dumps(results))
    return path


def test_perfect_results_give_ap_1(gt_file, tmp_path):
    stats = coco_keypoint_eval(gt_file, write(tmp_path, perfect_results(make_gt())))
    assert list(stats) == list(STAT_NAMES)
    assert all(v == pytest.approx(1.0) for v in stats.values()), stats


def test_perturbed_results_score_lower(gt_file, tmp_path):
    results = perfect_results(make_gt())
    rng = np.random.default_rng(1)
    for r in results:
        kps = np.asarray(r["keypoints"]).reshape(17, 3)
        kps[:, :2] += rng.normal(0, 6, (17, 2))
        r["keypoints"] = kps.ravel().tolist()
    results.append({"image_id": 2, "category_id": 1, "keypoints": [5.0, 5.0, 0.5] * 17, "score": 0.95})
    stats = coco_keypoint_eval(gt_file, write(tmp_path, results))
    assert 0 <= stats["AP"] < 0.999 and stats["AP .5"] <= 1.0
    assert stats["AP .5"] >= stats["AP"] >= 0


def test_empty_results_give_zero(gt_file, tmp_path):
    stats = coco_keypoint_eval(gt_file, write(tmp_path, []))
    assert all(v == 0.0 for v in stats.values()), stats


def test_bad_files_are_named(gt_file, tmp_path):
    with pytest.raises(EvalError, match="res.json.*entry 0"):
        coco_keypoint_eval(gt_file, write(tmp_path, [{"image_id": 1, "keypoints": [1, 2]}]))
    with pytest.raises(EvalError, match="not in the ground truth"):
        coco_keypoint_eval(gt_file, write(tmp_path, [{**perfect_results(make_gt())[0], "image_id": 42}]))
    with pytest.raises(FileNotFoundError, match="nope.json"):
        coco_keypoint_eval(gt_file, tmp_path / "nope.json")
    no_anns = write(tmp_path, {"images": make_gt()["images"]}, "info.json")
    with pytest.raises(EvalError, match="info.json"):
        coco_keypoint_eval(no_anns, write(tmp_path, []))
    with pytest.raises(ValueError, match="unknown eval backend"):
        coco_keypoint_eval(gt_file, write(tmp_path, []), backend="nope")


def test_format_stats_table():
    stats = {n: i / 10 for i, n in enumerate(STAT_NAMES)}
    table = format_stats_table(stats, name="hrnet_w32")
    lines = table.splitlines()
    assert len(lines) == 3 and "AP (M)" in lines[0] and "hrnet_w32" in lines[2] and "0.900" in lines[2]
    assert len({len(line) for line in lines}) == 1
    with pytest.raises(KeyError, match="AR"):
        format_stats_table({"AP": 1.0})


def rich_case(seed):
    """A ground truth with crowds, unlabelled people and all area ranges, and noisy results with
    false positives and more than 20 detections on some images (COCOeval's maxDets)."""
    rng = np.random.default_rng(seed)
    images, anns, results = [], [], []
    for image_id in range(1, 21):
        images.append({"id": image_id, "file_name": f"{image_id}.jpg", "width": 640, "height": 480})
        for _ in range(rng.integers(1, 7)):
            w, h = rng.uniform(10, 200), rng.uniform(20, 300)
            x, y = rng.uniform(0, 400), rng.uniform(0, 200)
            kps = np.stack([rng.uniform(x, x + w, 17), rng.uniform(y, y + h, 17), rng.integers(0, 3, 17)], 1)
            kps[kps[:, 2] == 0] = 0
            crowd = int(rng.uniform() < 0.05)
            anns.append({"id": len(anns) + 1, "image_id": image_id, "category_id": 1, "iscrowd": crowd,
                         "bbox": [x, y, w, h], "area": float(w * h * rng.uniform(0.3, 0.8)),
                         "num_keypoints": int((kps[:, 2] > 0).sum()), "keypoints": kps.ravel().tolist()})
            for _ in range(rng.integers(0, 5)):
                noisy = kps.copy()
                noisy[:, :2] += rng.normal(0, rng.uniform(0.5, 20), (17, 2))
                noisy[:, 2] = rng.uniform(0, 1, 17)
                results.append({"image_id": image_id, "category_id": 1, "keypoints": noisy.ravel().tolist(),
                                "score": float(rng.uniform())})
        for _ in range(rng.integers(0, 8)):  # false positives
            fp = np.stack([rng.uniform(0, 640, 17), rng.uniform(0, 480, 17), rng.uniform(0, 1, 17)], 1)
            results.append({"image_id": image_id, "category_id": 1, "keypoints": fp.ravel().tolist(),
                            "score": float(rng.uniform())})
    return {"images": images, "annotations": anns, "categories": [COCO17.coco_category(name="person")]}, results


@pytest.mark.parametrize("seed", range(4))
def test_faster_backend_matches_pycocotools(tmp_path, seed):
    """faster-coco-eval is offered because it prints the same ten numbers (equal to 1e-12)."""
    pytest.importorskip("faster_coco_eval")
    gt, results = rich_case(seed)
    gt_path, res_path = write(tmp_path, gt, "gt.json"), write(tmp_path, results)
    fast = coco_keypoint_eval(gt_path, res_path, backend="faster_coco_eval")
    ref = coco_keypoint_eval(gt_path, res_path)
    assert 0.02 < ref["AP"] < 0.98 and ref["AP (M)"] != ref["AP (L)"]
    assert [f"{fast[n]:.3f}" for n in STAT_NAMES] == [f"{ref[n]:.3f}" for n in STAT_NAMES]
    assert fast == pytest.approx(ref, abs=1e-12, rel=0)


def test_missing_backend_is_explained(gt_file, tmp_path, monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "faster_coco_eval", None)
    with pytest.raises(ModuleNotFoundError, match="pip install faster-coco-eval"):
        coco_keypoint_eval(gt_file, write(tmp_path, []), backend="faster_coco_eval")

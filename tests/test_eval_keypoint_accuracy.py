"""Per-keypoint OKS accuracy and its bar chart, on hand-made ground truth and results."""

import json

import numpy as np
import pytest

from pose.engine.keypoint_accuracy import keypoint_oks_accuracy
from pose.keypoints import COCO17
from pose.vis import plot_keypoint_accuracy

KEYPOINT_NAMES, OKS_SIGMAS = COCO17.names, COCO17.oks_sigmas


def _gt(num_people: int = 3, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    anns = []
    for i in range(num_people):
        kp = np.zeros((17, 3))
        kp[:, 0] = rng.uniform(50, 250, 17)
        kp[:, 1] = rng.uniform(50, 200, 17)
        kp[:, 2] = 2
        anns.append({"id": i + 1, "image_id": 1 + i % 2, "category_id": 1, "iscrowd": 0,
                     "area": 10000.0, "bbox": [40, 40, 220, 170], "num_keypoints": 17,
                     "keypoints": kp.ravel().tolist()})
    return {"images": [{"id": 1, "file_name": "a.jpg", "width": 320, "height": 240},
                       {"id": 2, "file_name": "b.jpg", "width": 320, "height": 240}],
            "annotations": anns, "categories": [COCO17.coco_category(name="person")]}


def _perfect(gt: dict) -> list[dict]:
    return [{"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 1.0}
            for a in gt["annotations"]]


def test_perfect_results_give_one():
    gt = _gt()
    acc = keypoint_oks_accuracy(gt, _perfect(gt))
    assert acc.names == KEYPOINT_NAMES
    assert np.allclose(acc.accuracy, 1.0) and acc.num_gt == 3 and acc.num_matched == 3
    assert np.allclose(acc.mean_term, 1.0)


def test_one_joint_moved_fails_exactly_at_the_term_threshold():
    gt = _gt(num_people=1)
    res = _perfect(gt)
    kp = np.array(res[0]["keypoints"]).reshape(17, 3)
    area = gt["annotations"][0]["area"]
    # The term for the left wrist is exp(-d^2/(2 area (2 sigma)^2)); pick d for term 0.45 and 0.55.
    k = KEYPOINT_NAMES.index("left_wrist")
    for term, expected in ((0.45, 0.0), (0.55, 1.0)):
        d = np.sqrt(-np.log(term) * 2 * area * (2 * OKS_SIGMAS[k]) ** 2)
        moved = kp.copy()
        moved[k, 0] += d
        acc = keypoint_oks_accuracy(gt, [{**res[0], "keypoints": moved.ravel().tolist()}])
        assert acc.accuracy[k] == expected
        assert np.isclose(acc.mean_term[k], term)
        others = np.delete(acc.accuracy, k)
        assert np.allclose(others, 1.0)


def test_unmatched_and_unlabelled_joints():
    gt = _gt(num_people=2)
    gt["annotations"][0]["keypoints"][3 * 4 + 2] = 0  # right ear of person 1 unlabelled
    res = _perfect(gt)[:1]  # the second person is missed
    acc = keypoint_oks_accuracy(gt, res)
    assert acc.num_matched == 1 and acc.num_gt == 2
    assert acc.labelled[4] == 1 and acc.correct[4] == 0 and acc.accuracy[4] == 0.0
    assert acc.accuracy[0] == 0.5


def test_results_for_another_dataset_and_bad_files(tmp_path):
    gt = _gt()
    res = _perfect(gt)
    res[0] = {**res[0], "image_id": 999}
    with pytest.raises(ValueError, match="another dataset"):
        keypoint_oks_accuracy(gt, res)
    with pytest.raises(ValueError, match="expected 51"):
        keypoint_oks_accuracy(gt, [{"image_id": 1, "keypoints": [0] * 10, "score": 1}])
    with pytest.raises(FileNotFoundError, match="not found"):
        keypoint_oks_accuracy(gt, tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(ValueError, match="not valid JSON"):
        keypoint_oks_accuracy(gt, bad)


def test_plot_written(tmp_path):
    gt = _gt()
    gt_file = tmp_path / "gt.json"
    res_file = tmp_path / "res.json"
    gt_file.write_text(json.dumps(gt))
    res_file.write_text(json.dumps(_perfect(gt)))
    acc = keypoint_oks_accuracy(gt_file, res_file)
    out = plot_keypoint_accuracy(acc, tmp_path / "chart.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert acc.to_dict()["mean_accuracy"] == 1.0
    json.dumps(acc.to_dict())


def test_a_dataset_whose_keypoint_category_is_not_1():
    gt = _gt()
    gt["categories"] = [{"id": 3, "name": "hand", "supercategory": "hand", "keypoints": list(KEYPOINT_NAMES)},
                        {"id": 1, "name": "background"}]
    for a in gt["annotations"]:
        a["category_id"] = 3
    results = [{**r, "category_id": 3} for r in _perfect(gt)]
    acc = keypoint_oks_accuracy(gt, results)
    assert acc.num_gt == 3 and acc.num_matched == 3 and np.allclose(acc.accuracy, 1.0)

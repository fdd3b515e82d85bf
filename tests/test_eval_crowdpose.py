"""CrowdPose protocol: the crowd-index split and the numbers, against values worked out by hand."""

import json

import numpy as np
import pytest

from pose.engine.coco_eval import EvalError
from pose.engine.crowdpose_eval import (
    STAT_NAMES,
    crowd_index_split,
    crowdpose_keypoint_eval,
    format_crowdpose_table,
)
from pose.keypoints import CROWDPOSE14

# (crowdIndex, prediction right?, prediction score) per image, one person each. crowdposetools
# splits at 0.2 and 0.8: easy {1, 2}, medium {3, 4, 7}, hard {5, 6}. (The paper's 0.1 / 0.8 would
# give easy {1}, medium {2, 3, 4, 5, 7}, hard {6}.)
IMAGES = {1: (0.0, True, 0.9), 2: (0.15, False, 0.3), 3: (0.2, False, 0.4), 4: (0.5, True, 0.8),
          5: (0.8, False, 0.95), 6: (1.0, True, 0.7), 7: (0.6, True, 0.85)}


def _person(image_id: int, ann_id: int) -> dict:
    rng = np.random.default_rng(image_id)
    x0, y0 = 50.0 + 10 * image_id, 40.0
    xy = np.stack([x0 + rng.uniform(0, 60, 14), y0 + rng.uniform(0, 150, 14)], axis=1)
    kps = np.concatenate([xy, np.full((14, 1), 2.0)], axis=1)
    # No 'area', as in CrowdPose's own files: the protocol uses 0.53 x the box area.
    return {"id": ann_id, "image_id": image_id, "category_id": 1, "iscrowd": 0, "num_keypoints": 14,
            "bbox": [x0, y0, 60.0, 150.0], "keypoints": kps.round(2).reshape(-1).tolist()}


def _write_set(tmp_path):
    gt = {"images": [{"id": i, "file_name": f"{i}.jpg", "width": 400, "height": 300, "crowdIndex": ci}
                     for i, (ci, _, _) in IMAGES.items()],
          "annotations": [_person(i, 100 + i) for i in IMAGES],
          "categories": [CROWDPOSE14.coco_category(category_id=1, supercategory="person")]}
    results = []
    for i, (_, right, score) in IMAGES.items():
        kps = np.asarray(_person(i, 0)["keypoints"]).reshape(14, 3)
        if not right:
            kps[:, :2] += 500.0  # OKS ~ 0: unmatched at every threshold
        results.append({"image_id": i, "category_id": 1, "keypoints": kps.reshape(-1).tolist(), "score": score})
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "res.json").write_text(json.dumps(results))
    return tmp_path / "gt.json", tmp_path / "res.json"


def test_split_boundaries():
    images = [{"id": i, "crowdIndex": ci} for i, (ci, _, _) in IMAGES.items()]
    assert crowd_index_split(images) == ([1, 2], [3, 4, 7], [5, 6])
    with pytest.raises(EvalError, match="image 9 has no numeric 'crowdIndex'"):
        crowd_index_split([{"id": 9}])


def test_numbers_by_hand(tmp_path):
    stats = crowdpose_keypoint_eval(*_write_set(tmp_path), sigmas=CROWDPOSE14.sigmas)
    assert list(stats) == list(STAT_NAMES)
    # Every OKS is 1 or ~0, so all ten thresholds agree. COCO's AP: precision made non-increasing
    # from the end, read at the 101 recall points 0, 0.01, ..., 1.
    # All: scores 0.95 F, 0.9 T, 0.85 T, 0.8 T, 0.7 T, 0.4 F, 0.3 F over 7 people: best precision
    # at recall <= 4/7 is 4/5, so 58 recall points (0 .. 0.57) at 0.8.
    ap_all = 58 * 0.8 / 101
    for name in ("AP", "AP .5", "AP .75"):
        assert stats[name] == pytest.approx(ap_all, abs=1e-12)
    for name in ("AR", "AR .5", "AR .75"):
        assert stats[name] == pytest.approx(4 / 7, abs=1e-12)
    # Easy {1: 0.9 T, 2: 0.3 F}: precision 1 up to recall 1/2 -> 51 points.
    assert stats["AP (E)"] == round(51 / 101, 4)
    # Medium {7: 0.85 T, 4: 0.8 T, 3: 0.4 F}: precision 1 up to recall 2/3 -> 67 points.
    assert stats["AP (M)"] == round(67 / 101, 4)
    # Hard {5: 0.95 F, 6: 0.7 T}: precision 1/2 up to recall 1/2 -> 51 points at 0.5.
    assert stats["AP (H)"] == round(51 * 0.5 / 101, 4)
    table = format_crowdpose_table(stats, name="m")
    assert "AP (E)" in table and f"{ap_all:.3f}" in table


def test_area_is_053_box_and_max_20_detections(tmp_path):
    gt_file, res_file = _write_set(tmp_path)
    # A slightly-off prediction for image 1: its OKS depends on the area used.
    person = np.asarray(_person(1, 0)["keypoints"]).reshape(14, 3)
    off = person.copy()
    off[:, 0] += 6.0
    sig = np.asarray(CROWDPOSE14.sigmas)
    oks_crowdpose = np.mean(np.exp(-36.0 / (2 * sig) ** 2 / (0.53 * 60 * 150 + np.spacing(1)) / 2))
    oks_full_box = np.mean(np.exp(-36.0 / (2 * sig) ** 2 / (60 * 150 + np.spacing(1)) / 2))
    thrs = np.linspace(0.5, 0.95, 10)
    # The number of thresholds matched differs between the two areas: the test can tell them apart.
    assert (thrs <= oks_crowdpose).sum() != (thrs <= oks_full_box).sum()
    one = [{"image_id": 1, "category_id": 1, "keypoints": off.reshape(-1).tolist(), "score": 0.9}]
    res_file.write_text(json.dumps(one))
    gt = json.loads(gt_file.read_text())
    gt["images"], gt["annotations"] = gt["images"][:1], gt["annotations"][:1]
    gt_file.write_text(json.dumps(gt))
    stats = crowdpose_keypoint_eval(gt_file, res_file)
    assert stats["AR"] == pytest.approx((thrs <= oks_crowdpose).mean(), abs=1e-12)
    # 25 wrong predictions scored above the right one: with 20 kept per image, it is lost.
    wrong = [{**one[0], "keypoints": (off + [500.0, 0, 0]).reshape(-1).tolist(), "score": 0.95}] * 25
    res_file.write_text(json.dumps(wrong + [{**one[0], "keypoints": person.reshape(-1).tolist()}]))
    assert crowdpose_keypoint_eval(gt_file, res_file)["AR"] == 0.0
    res_file.write_text(json.dumps(wrong[:19] + [{**one[0], "keypoints": person.reshape(-1).tolist()}]))
    assert crowdpose_keypoint_eval(gt_file, res_file)["AR"] == 1.0


def test_same_as_faster_coco_eval_crowd_mode(tmp_path):
    """faster-coco-eval's own CrowdPose mode (an independent implementation) gives the same numbers."""
    fce = pytest.importorskip("faster_coco_eval", reason="faster-coco-eval (dev extra) not installed")
    gt_file, res_file = _write_set(tmp_path)
    ours = crowdpose_keypoint_eval(gt_file, res_file)
    gt = fce.COCO(str(gt_file))
    dt = gt.loadRes(str(res_file))
    theirs = fce.COCOeval_faster(gt, dt, "keypoints_crowd", kpt_oks_sigmas=CROWDPOSE14.sigmas, use_area=False,
                                 print_function=lambda *a, **k: None)
    theirs.evaluate()
    theirs.accumulate()
    theirs.summarize()
    got = theirs.stats_as_dict
    for ours_name, their_name in zip(STAT_NAMES, ("AP_all", "AP_50", "AP_75", "AR_all", "AR_50", "AR_75",
                                                  "AP_easy", "AP_medium", "AP_hard")):
        assert ours[ours_name] == pytest.approx(got[their_name], abs=1e-4), ours_name


def test_missing_crowd_index_is_named(tmp_path):
    gt_file, res_file = _write_set(tmp_path)
    gt = json.loads(gt_file.read_text())
    del gt["images"][2]["crowdIndex"]
    gt_file.write_text(json.dumps(gt))
    with pytest.raises(EvalError, match=r"gt.json: image 3 has no numeric 'crowdIndex'"):
        crowdpose_keypoint_eval(gt_file, res_file)

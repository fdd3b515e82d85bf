"""evaluate()'s last step (_finish): the results file is what rescoring and OKS NMS give with the
config's own thresholds (not the defaults), every kept instance under its record's category, and
the ground-truth-box metrics only with ground-truth boxes."""

import json

import numpy as np
import pytest
from test_eval_evaluator import DiagonalModel, coco_root, make_cfg  # noqa: F401  (module fixture)
from torch.utils.data import DataLoader

from pose.data import build_dataset
from pose.engine.evaluator import evaluate, postprocess, results_paths, run_inference

SETTINGS = {
    "official": (),
    "strict": ("test.kpt_score_thresh=0.85", "test.oks_nms_thresh=0.3"),
    "soft": ("test.kpt_score_thresh=0.85", "test.oks_nms_thresh=0.3", "test.soft_nms=true"),
}


def written(cfg) -> list[tuple]:
    results_file, _ = results_paths(cfg.output_dir, "val2017")
    rows = json.loads(results_file.read_text())
    return sorted((r["image_id"], r["category_id"], round(r["score"], 6), tuple(np.round(r["keypoints"], 3)))
                  for r in rows)


def expected(cfg, dataset) -> list[tuple]:
    """The same crops through run_inference and postprocess with cfg.test's values, by hand."""
    preds = run_inference(DiagonalModel(), DataLoader(dataset, batch_size=cfg.test.batch_size), dataset.codec,
                          flip_test=cfg.test.flip_test, shift_heatmap=cfg.test.shift_heatmap,
                          refine=cfg.test.refine, device="cpu")
    keep, scores = postprocess(preds, sigmas=dataset.keypoints.oks_sigmas,
                               kpt_score_thresh=cfg.test.kpt_score_thresh, oks_thresh=cfg.test.oks_nms_thresh,
                               soft_nms=cfg.test.soft_nms)
    keypoints = preds.keypoints()
    return sorted((int(preds.image_ids[i]), int(dataset.records[int(preds.indices[i])].get("category_id", 1)),
                   round(float(scores[i]), 6), tuple(np.round(keypoints[i].ravel().astype(float), 3)))
                  for i in keep)


def test_results_follow_the_configured_rescoring_and_nms(coco_root, tmp_path):  # noqa: F811
    files = {}
    for name, overrides in SETTINGS.items():
        cfg = make_cfg(coco_root, tmp_path / name, "test.use_gt_bbox=false", *overrides)
        dataset = build_dataset(cfg, "val")
        evaluate(DiagonalModel(), dataset, cfg, cfg.output_dir, "cpu", verbose=False)
        files[name] = written(cfg)
        assert files[name] == expected(cfg, dataset), name
    # each setting changes the file, so the comparisons above test the wiring of each value
    assert files["official"] != files["strict"] != files["soft"]
    assert len(files["soft"]) > len(files["strict"])  # soft NMS rescores instead of dropping
    assert len(files["official"]) == len(dataset.records) // 2  # each detection twice: the copy dropped
    assert len(files["strict"]) < len(files["official"])  # OKS 0.3 also drops an overlapping neighbour


def test_ground_truth_box_metrics_only_with_ground_truth_boxes(coco_root, tmp_path):  # noqa: F811
    extra = {"PCK@0.05", "AUC", "EPE"}
    for use_gt in (True, False):
        cfg = make_cfg(coco_root, tmp_path / str(use_gt), f"test.use_gt_bbox={str(use_gt).lower()}")
        stats = evaluate(DiagonalModel(), build_dataset(cfg, "val"), cfg, cfg.output_dir, "cpu", verbose=False)
        assert (extra <= set(stats)) is use_gt
        if use_gt:
            assert 0.0 < stats["PCK@0.05"] <= 1.0 and stats["EPE"] > 0.0


@pytest.mark.parametrize("category", [1, 7])
def test_each_result_carries_its_records_category(coco_root, tmp_path, category):  # noqa: F811
    cfg = make_cfg(coco_root, tmp_path, "test.use_gt_bbox=true")
    dataset = build_dataset(cfg, "val")
    for record in dataset.records:
        record["category_id"] = category
    stats = evaluate(DiagonalModel(), dataset, cfg, cfg.output_dir, "cpu", verbose=False)
    results_file, _ = results_paths(cfg.output_dir, "val2017")
    assert {r["category_id"] for r in json.loads(results_file.read_text())} == {category}
    assert (stats["AP"] > 0.05) is (category == 1)  # pycocotools matches results by category

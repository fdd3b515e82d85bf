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


def test_a_split_without_crops_is_evaluated_as_empty(coco_root, tmp_path):  # noqa: F811
    """No detections pass (an empty shard): an empty results file and zero AP, not a crash."""
    cfg = make_cfg(coco_root, tmp_path, "test.use_gt_bbox=false")
    dataset = build_dataset(cfg, "val")
    dataset.records = []
    stats = evaluate(DiagonalModel(), dataset, cfg, cfg.output_dir, "cpu", verbose=False)
    results_file, _ = results_paths(cfg.output_dir, "val2017")
    assert json.loads(results_file.read_text()) == []
    assert stats["AP"] <= 0.0 and stats["AR"] <= 0.0  # pycocotools' -1 or 0 for nothing to match


def _ddp_spy_worker(rank, world, port, root, out, queue):
    """One rank of a gloo run whose inference and final step record what they were given."""
    import os

    import torch.distributed as dist

    from pose.engine import evaluator

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    seen = {}
    run_inference, finish = evaluator.run_inference, evaluator._finish

    def spy_inference(model, loader, *args, **kwargs):
        preds = run_inference(model, loader, *args, **kwargs)
        seen["inferred"] = sorted(preds.indices.tolist())
        return preds

    def spy_finish(preds, *args, **kwargs):
        seen["finished"] = sorted(preds.indices.tolist())
        return finish(preds, *args, **kwargs)

    evaluator.run_inference, evaluator._finish = spy_inference, spy_finish
    try:
        cfg = make_cfg(root, out, "test.use_gt_bbox=false")
        evaluate(DiagonalModel(), build_dataset(cfg, "val"), cfg, out / "out", "cpu", verbose=False)
        queue.put((rank, seen))
    finally:
        dist.destroy_process_group()


def test_ddp_ranks_infer_disjoint_shards_and_rank0_finishes_all(coco_root, tmp_path):  # noqa: F811
    """OKS NMS would hide crops evaluated twice (identical copies), so the shards are checked directly:
    rank r infers crops r, r + 2, ..., and rank 0 post-processes each crop exactly once."""
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    queue = mp.get_context("spawn").SimpleQueue()
    mp.start_processes(_ddp_spy_worker, args=(2, port, coco_root, tmp_path, queue), nprocs=2, start_method="spawn")
    seen = dict(queue.get() for _ in range(2))
    n = len(build_dataset(make_cfg(coco_root, tmp_path, "test.use_gt_bbox=false"), "val"))
    assert seen[0]["inferred"] == list(range(0, n, 2)) and seen[1]["inferred"] == list(range(1, n, 2))
    assert seen[0]["finished"] == list(range(n)) and "finished" not in seen[1]


def test_inference_defaults_are_plain_float32_eager():
    """Callers that pass nothing (the trainer's validation, user code) get the reference path: float32,
    contiguous, uncompiled (a compiled default would freeze the weights of a network still training)."""
    import inspect

    for fn in (evaluate, run_inference):
        params = inspect.signature(fn).parameters
        assert (params["amp"].default, params["channels_last"].default, params["compile"].default) == \
            ("none", False, False), fn.__name__

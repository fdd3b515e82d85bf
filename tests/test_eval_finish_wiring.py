"""evaluate()'s last step hands the config's post-processing settings on and writes each result
under its instance's keypoint category (survivors of a mutation run of pose/engine/evaluator.py:
``test.kpt_score_thresh``, ``test.oks_nms_thresh`` and ``test.soft_nms`` could be dropped in favour
of the defaults, and the category ids replaced by 1, unnoticed)."""

import json

import numpy as np
import pytest

from pose.config import Config, apply_overrides
from pose.data import build_dataset
from pose.engine import evaluator
from pose.engine.evaluator import Predictions, results_paths


def crop_predictions(dataset, seed=0):
    """Random predictions, one per crop of ``dataset``, in its frame (image ids and indices real)."""
    rng = np.random.default_rng(seed)
    n, k = len(dataset.records), dataset.keypoints.num_joints
    return Predictions(coords=rng.uniform(0, 100, (n, k, 2)).astype(np.float32),
                       maxvals=rng.uniform(0, 1, (n, k)).astype(np.float32),
                       centers=rng.uniform(0, 100, (n, 2)).astype(np.float32),
                       scales=rng.uniform(0.5, 1, (n, 2)).astype(np.float32),
                       areas=rng.uniform(1e3, 1e4, n), box_scores=rng.uniform(0.5, 1, n),
                       image_ids=np.array([r["image_id"] for r in dataset.records], np.int64),
                       indices=np.arange(n, dtype=np.int64))


@pytest.mark.parametrize("soft", [False, True])
def test_finish_uses_the_configs_post_processing_and_categories(data_root, tmp_path, monkeypatch, soft):
    cfg = apply_overrides(Config(), [f"data.root={data_root}", f"output_dir={tmp_path}", "test.use_gt_bbox=true",
                                     "test.kpt_score_thresh=0.35", "test.oks_nms_thresh=0.7",
                                     f"test.soft_nms={str(soft).lower()}"])
    dataset = build_dataset(cfg, "val")
    for i, record in enumerate(dataset.records):  # as a file whose keypoint category is not 1
        record["category_id"] = 3 + i % 2
    seen = {}
    real = evaluator.postprocess

    def recording(preds, **kwargs):
        seen.update(kwargs)
        return real(preds, **kwargs)

    monkeypatch.setattr(evaluator, "postprocess", recording)
    preds = crop_predictions(dataset)
    evaluator._finish(preds, dataset, cfg, tmp_path, verbose=False)
    assert seen["kpt_score_thresh"] == 0.35 and seen["oks_thresh"] == 0.7 and seen["soft_nms"] is soft
    np.testing.assert_array_equal(seen["sigmas"], dataset.keypoints.oks_sigmas)
    keep, scores = real(preds, **seen)
    results = json.loads(results_paths(tmp_path, dataset.image_set)[0].read_text())
    assert [r["category_id"] for r in results] == [3 + int(i) % 2 for i in preds.indices[keep]]
    assert [r["score"] for r in results] == pytest.approx(scores[keep].tolist(), rel=1e-6)

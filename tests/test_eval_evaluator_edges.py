"""The evaluator's plumbing at its edges: empty and sharded predictions, the values handed to
rescoring, NMS and PCK, the files it names. Each test pins a behaviour that mutation testing
found unpinned (``tools/mutation_test.py``)."""

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from pose.data.codecs import build_codec
from pose.data.topdown import rescore
from pose.engine.evaluator import (
    Predictions,
    gt_box_metrics,
    has_keypoint_gt,
    postprocess,
    results_paths,
    run_inference,
)
from pose.engine.metrics import keypoint_metrics
from pose.engine.nms import nms_per_image
from pose.keypoints import COCO17


def predictions(n, k=17, seed=0, indices=None, image_ids=None):
    rng = np.random.default_rng(seed)
    return Predictions(coords=rng.uniform(0, 100, (n, k, 2)).astype(np.float32),
                       maxvals=rng.uniform(0, 1, (n, k)).astype(np.float32),
                       centers=rng.uniform(0, 100, (n, 2)).astype(np.float32),
                       scales=rng.uniform(0.5, 1, (n, 2)).astype(np.float32),
                       areas=rng.uniform(1e3, 1e4, n), box_scores=rng.uniform(0.5, 1, n),
                       image_ids=np.asarray(image_ids if image_ids is not None else np.arange(n), np.int64),
                       indices=np.asarray(indices if indices is not None else np.arange(n), np.int64))


def test_empty_predictions_have_every_field_with_zero_rows():
    empty = Predictions.empty(5)
    fields = {name: getattr(empty, name) for name in Predictions.__dataclass_fields__}
    shapes = {name: (v.shape, v.dtype) for name, v in fields.items()}
    assert shapes == {"coords": ((0, 5, 2), np.float32), "maxvals": ((0, 5), np.float32),
                      "centers": ((0, 2), np.float32), "scales": ((0, 2), np.float32),
                      "areas": ((0,), np.float64), "box_scores": ((0,), np.float64),
                      "image_ids": ((0,), np.int64), "indices": ((0,), np.int64)}
    assert len(empty) == 0 and empty.keypoints().shape == (0, 5, 3)
    keep, scores = postprocess(empty, sigmas=np.full(5, 0.05))
    assert keep.shape == (0,) and scores.shape == (0,)
    assert len(Predictions.concatenate([None, empty], 5)) == 0
    assert Predictions.concatenate([], 4).coords.shape == (0, 4, 2)


def test_shards_join_in_dataset_order():
    """Rank r infers indices r::world; joined, every field follows the dataset order."""
    whole = predictions(7)
    shards = [Predictions(**{f: getattr(whole, f)[r::3] for f in Predictions.__dataclass_fields__}) for r in range(3)]
    joined = Predictions.concatenate([shards[2], None, shards[0], Predictions.empty(17), shards[1]], 17)
    for f in Predictions.__dataclass_fields__:
        np.testing.assert_array_equal(getattr(joined, f), getattr(whole, f), err_msg=f)


def test_keypoints_are_x_y_score_float32():
    p = predictions(3)
    kp = p.keypoints()
    assert kp.dtype == np.float32 and len(p) == 3
    np.testing.assert_array_equal(kp[..., :2], p.coords)
    np.testing.assert_array_equal(kp[..., 2], p.maxvals)


@pytest.mark.parametrize("soft", [False, True])
def test_postprocess_passes_its_thresholds_and_sigmas_on(soft):
    p = predictions(12, image_ids=[1] * 6 + [2] * 6)
    p.coords[1::2] = p.coords[0::2] + 2.0  # near copies: what NMS drops depends on thresh and sigmas
    sigmas = np.linspace(0.02, 0.1, 17)
    keep, scores = postprocess(p, sigmas=sigmas, kpt_score_thresh=0.55, oks_thresh=0.6, soft_nms=soft)
    expected_scores = rescore(p.maxvals, p.box_scores, 0.55)
    np.testing.assert_array_equal(scores, expected_scores)
    np.testing.assert_array_equal(keep, nms_per_image(p.keypoints(), expected_scores, p.areas, p.image_ids,
                                                      thresh=0.6, soft=soft, sigmas=sigmas))
    assert not np.array_equal(scores, rescore(p.maxvals, p.box_scores, 0.2))
    default_keep, _ = postprocess(p, sigmas=COCO17.oks_sigmas, kpt_score_thresh=0.55)
    assert len(keep) != len(default_keep) or soft  # the threshold and sigmas changed what was kept


def test_gt_box_metrics_normalise_by_the_longer_box_side_in_crop_order():
    records = [{"joints": np.concatenate([np.full((17, 2), 10.0 * i), np.ones((17, 1))], axis=1),
                "box": [0, 0, 40.0 + 30 * i, 100.0 - 20 * i]} for i in range(4)]
    dataset = SimpleNamespace(records=records)
    p = predictions(3, indices=[3, 0, 2])
    p.coords[:] = np.array([[30.0, 30.0], [0.0, 0.0], [20.0, 20.0]])[:, None] + [[3.0, -2.0]]
    got = gt_box_metrics(p, dataset)
    gt = np.stack([records[i]["joints"] for i in (3, 0, 2)])
    expected = keypoint_metrics(p.coords, gt[..., :2], gt[..., 2], np.array([130.0, 100.0, 100.0]))
    assert got == expected and gt_box_metrics(predictions(0), dataset) == {}
    # 3.6 px off: within 5 % of the longer side (5 px and more), not of the shorter one (2 px for 40 x 100)
    assert got["PCK@0.05"] == 1.0 and got["EPE"] == pytest.approx(np.hypot(3, 2), rel=1e-6)


def test_results_paths_and_ground_truth_presence(tmp_path):
    assert results_paths(tmp_path, "val2017") == (Path(tmp_path) / "results" / "keypoints_val2017_results.json",
                                                   Path(tmp_path) / "results" / "stats_val2017.json")
    coco = SimpleNamespace(dataset={"annotations": [{"id": 1}]})
    assert has_keypoint_gt(SimpleNamespace(annotation_file="a.json", coco=coco))
    assert not has_keypoint_gt(SimpleNamespace(annotation_file=None, coco=coco))
    assert not has_keypoint_gt(SimpleNamespace(annotation_file="a.json", coco=None))
    assert not has_keypoint_gt(SimpleNamespace(annotation_file="a.json", coco=SimpleNamespace(dataset={})))
    assert not has_keypoint_gt(SimpleNamespace(coco=coco))
    assert not has_keypoint_gt(SimpleNamespace(annotation_file="a.json"))  # a dataset without a COCO API


class RecordingNet(torch.nn.Module):
    """A 3x3 conv to 17 maps at stride 4 that records the memory format of what it is fed."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 17, 3, padding=1)
        self.fed_channels_last = []

    def forward(self, x):
        self.fed_channels_last.append(x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous())
        return self.conv(torch.nn.functional.avg_pool2d(x, 4))


def batches(n_batches=2, size=3):
    g = torch.Generator().manual_seed(0)
    return [{"image": torch.randn(size, 3, 16, 12, generator=g), "center": torch.rand(size, 2, generator=g) * 50,
             "scale": torch.rand(size, 2, generator=g) + 0.5, "area": torch.rand(size, generator=g) * 1e3,
             "score": torch.rand(size, generator=g), "image_id": torch.arange(size, dtype=torch.int32),
             "index": torch.arange(b * size, (b + 1) * size, dtype=torch.int32)} for b in range(n_batches)]


@pytest.mark.parametrize("channels_last", [False, True])
def test_run_inference_fields_and_memory_format(channels_last):
    codec = build_codec("gaussian", input_size=(12, 16), heatmap_size=(3, 4), sigma=1.0,
                        flip_index=COCO17.flip_index)
    net = RecordingNet().train()
    kw = {"flip_test": False, "shift_heatmap": True, "refine": "default", "device": "cpu"}
    preds = run_inference(net, batches(), codec, **kw, **({"channels_last": True} if channels_last else {}))
    assert net.training and len(preds) == 6 and preds.indices.tolist() == list(range(6))
    assert net.fed_channels_last == [channels_last] * 2
    assert net.conv.weight.is_contiguous(memory_format=torch.channels_last) == channels_last
    dtypes = {name: getattr(preds, name).dtype for name in Predictions.__dataclass_fields__}
    assert dtypes == {"coords": np.float32, "maxvals": np.float32, "centers": np.float32, "scales": np.float32,
                      "areas": np.float64, "box_scores": np.float64, "image_ids": np.int64, "indices": np.int64}
    np.testing.assert_allclose(preds.areas, torch.cat([b["area"] for b in batches()]).numpy(), rtol=1e-7)
    empty = run_inference(net, [], codec, **kw)
    assert len(empty) == 0 and empty.coords.shape == (0, 0, 2)

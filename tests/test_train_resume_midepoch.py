"""Resume in the middle of an epoch, the logged loss, and the best checkpoint on a tie.

The training set has 8 crops and the batch is 3, so an epoch is 3 iterations with a short last
batch, and a stop after iteration 2 is inside the epoch. A resume must skip exactly the samples
already seen (skip = iteration x batch) and must not step the LR scheduler again, under both
``train.lr_step_timing`` values. Only public behaviour is used: ``train()``, its ``on_iteration``
hook, the checkpoint and ``metrics.jsonl``.
"""

import json
import math
import os
import signal
from pathlib import Path

import pytest
import torch
from test_train_loop import make_cfg  # the tiny deterministic run of the training tests

from pose.data import build_dataset
from pose.engine.checkpoint import load_checkpoint
from pose.engine.coco_eval import STAT_NAMES
from pose.engine.trainer import TrainingInterrupted, train

BATCH = 3
TIME_KEYS = ("time_s", "val_time_s")
# lr_steps chosen so that one extra scheduler step during epoch 1 changes its LR under each timing.
TIMINGS = {"epoch_end": "[1]", "epoch_start": "[2]"}


pytestmark = pytest.mark.usefixtures("one_thread")


def cfg_for(root, out, timing, *extra):
    return make_cfg(root, out, f"train.batch_size={BATCH}", f"train.lr_step_timing={timing}",
                    f"train.lr_steps={TIMINGS[timing]}", "train.val_every=10", *extra)


def metrics(out):
    lines = (Path(out) / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(x).items() if k not in TIME_KEYS} for x in lines]


def model_weights(path):
    return load_checkpoint(path)["model"]


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"


def recorder(log, stop_at=None):
    """on_iteration hook: records (epoch, iteration, loss); sends SIGTERM after ``stop_at``."""
    def hook(info):
        log.append((info["epoch"], info["iteration"], info["loss"]))
        if stop_at == (info["epoch"], info["iteration"]):
            os.kill(os.getpid(), signal.SIGTERM)
    return hook


@pytest.mark.parametrize("timing", list(TIMINGS))
def test_resume_mid_epoch_is_bit_identical(data_root, tmp_path, timing):
    n_train = len(build_dataset(cfg_for(data_root, tmp_path / "x", timing), "train"))
    assert n_train % BATCH != 0  # a short last batch: the epoch does not end on a stop
    iters = math.ceil(n_train / BATCH)

    ref_log: list = []
    ref = tmp_path / "reference"
    train(cfg_for(data_root, ref, timing), on_iteration=recorder(ref_log), verbose=False)
    assert [r["iterations"] for r in metrics(ref)] == [iters, iters]
    assert [r["lr"] for r in metrics(ref)] == pytest.approx([2e-3, 2e-4])

    out = tmp_path / "run"
    with pytest.raises(TrainingInterrupted) as info:
        train(cfg_for(data_root, out, timing), on_iteration=recorder([], stop_at=(0, 1)), verbose=False)
    ckpt = load_checkpoint(out / "checkpoint.pth")
    assert (info.value.epoch, info.value.iteration) == (ckpt["epoch"], ckpt["iteration"]) == (0, 2)
    assert 0 < ckpt["iteration"] < iters  # inside the epoch, not at its end

    log: list = []
    train(cfg_for(data_root, out, timing), on_iteration=recorder(log), verbose=False)
    assert [(e, i) for e, i, _ in log] == [(0, 3)] + [(1, i) for i in range(1, iters + 1)]
    # the same batches as the uninterrupted run: the same losses, weights and metrics
    assert [x[2] for x in log] == [x[2] for x in ref_log[2:]]
    assert_same_weights(model_weights(out / "checkpoint.pth"), model_weights(ref / "checkpoint.pth"))
    assert metrics(out) == metrics(ref)


def test_logged_loss_is_the_sample_weighted_mean(data_root, tmp_path):
    log: list = []
    out = tmp_path / "run"
    cfg = cfg_for(data_root, out, "epoch_end")
    n_train = len(build_dataset(cfg, "train"))
    train(cfg, on_iteration=recorder(log), verbose=False)
    sizes = [min(BATCH, n_train - BATCH * i) for i in range(math.ceil(n_train / BATCH))]
    assert sizes[-1] < BATCH
    for epoch, record in enumerate(metrics(out)):
        losses = [loss for e, _, loss in log if e == epoch]
        by_hand = sum(loss * n for loss, n in zip(losses, sizes)) / sum(sizes)
        assert record["loss"] == pytest.approx(by_hand, rel=1e-12)
        assert record["loss"] != pytest.approx(sum(losses) / len(losses), rel=1e-6)  # the weights matter


def fixed_aps(monkeypatch, aps):
    """COCO evaluation returning the given AP values epoch after epoch (all ten stats alike).

    Replaced wherever ``coco_keypoint_eval`` has been imported, so the test does not depend on
    which module of the evaluation calls it."""
    import sys

    from pose.engine import coco_eval
    real = coco_eval.coco_keypoint_eval
    values = iter(aps)

    def fake(gt_file, results_file, **_options):  # backend, sigmas, ...: unused
        assert Path(results_file).exists()
        ap = next(values)
        return {name: ap for name in STAT_NAMES}

    holders = [m for name, m in list(sys.modules.items())
               if name.startswith("pose.") and getattr(m, "coco_keypoint_eval", None) is real]
    assert holders
    for module in holders:
        monkeypatch.setattr(module, "coco_keypoint_eval", fake)


def test_best_checkpoint_moves_to_the_later_epoch_on_a_tie(data_root, tmp_path, monkeypatch):
    # Official (lib/core/function.py callers): `if perf_indicator >= best_perf`: a tie moves
    # model_best to the later epoch. A lower AP afterwards leaves it there.
    fixed_aps(monkeypatch, [0.5, 0.5, 0.4])
    snapshots = {}

    def keep_weights(info):
        snapshots[info["epoch"] + 1] = {k: v.clone() for k, v in info["model"].state_dict().items()}

    out = tmp_path / "run"
    summary = train(make_cfg(data_root, out, "train.epochs=3", "train.val_every=1", "train.max_iters_per_epoch=1"),
                    on_iteration=keep_weights, verbose=False)
    assert [r["AP"] for r in summary["history"]] == [0.5, 0.5, 0.4]
    assert (summary["best_epoch"], summary["best_ap"]) == (2, 0.5)
    best = load_checkpoint(out / "model_best.pth")
    assert (best["epoch"], best["AP"]) == (2, 0.5)
    assert_same_weights(best["model"], snapshots[2])

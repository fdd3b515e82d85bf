"""The numbers a training run reports: the log's iteration and epoch lines, the summary returned by
``train()``, the validation cadence and the step counter.

Written against the survivors of a mutation run of the trainer (tools/mutation_test.py
pose/engine/trainer.py): each of these could be wrong while every weights-and-metrics comparison of
the other training tests still passed. One 4-epoch run of 3 iterations (8 crops, batch 3: the last
batch is short) with validation every 3 epochs serves most checks; the others: an epoch of one
sample, a stop request at the end of an epoch, a validation split without a metric.
"""

import os
import re
import signal
import time

import pytest
import torch
from test_train_loop import make_cfg  # the tiny deterministic run of the training tests

from pose.data import build_dataset
from pose.engine import trainer
from pose.engine.checkpoint import load_checkpoint
from pose.engine.coco_eval import STAT_NAMES
from pose.engine.trainer import TrainingInterrupted, train

BATCH, EPOCHS = 3, 4
# "epoch 2/3: loss 0.00123, lr 0.002, 0.4 s, AP 0.0123 (best 0.0123 at epoch 2)"
EPOCH_LINE = re.compile(r": epoch (\d+)/(\d+): loss (\S+), lr (\S+), [\d.]+ s"
                        r"(?:, AP (\S+) \(best (\S+) at epoch (\d+)\))?$")
# "epoch 1/3 [2/3] loss 0.00123 lr 0.002 12.3 samples/s ..."
ITERATION_LINE = re.compile(r": epoch (\d+)/(\d+) \[(\d+)/(\d+)\] loss (\S+) lr (\S+) ")


pytestmark = pytest.mark.usefixtures("one_thread")


def train_recording(cfg, **kwargs):
    """train(cfg) -> (summary, [(epoch, iteration, global_step, loss)] of every step)."""
    steps: list = []
    summary = train(cfg, verbose=False, on_iteration=lambda info: steps.append(
        (info["epoch"], info["iteration"], info["global_step"], info["loss"])), **kwargs)
    return summary, steps


def batch_sizes(n_train):
    sizes = [min(BATCH, n_train - BATCH * i) for i in range(-(-n_train // BATCH))]
    assert sizes[-1] < BATCH  # a short last batch: a plain mean of the batch losses would differ
    return sizes


def check_steps_and_validation_cadence(run):
    out, summary, steps, n_train = run
    iters = len(batch_sizes(n_train))
    assert [(e, i) for e, i, _, _ in steps] == [(e, i) for e in range(EPOCHS) for i in range(1, iters + 1)]
    assert [g for _, _, g, _ in steps] == list(range(1, EPOCHS * iters + 1))
    assert load_checkpoint(out / "checkpoint.pth")["global_step"] == EPOCHS * iters
    history = summary["history"]
    assert [r["epoch"] for r in history] == [1, 2, 3, 4] and [r["iterations"] for r in history] == [iters] * 4
    # val_every=3: after epoch 3, and after the last epoch whatever the cadence
    assert [("AP" in r) for r in history] == [False, False, True, True]


def check_summary(run):
    _, summary, _, _ = run
    history = summary["history"]
    assert summary["epochs"] == EPOCHS
    assert summary["final_loss"] == history[-1]["loss"] and history[-1]["loss"] != history[-2]["loss"]
    assert list(summary["stats"])[:10] == list(STAT_NAMES)
    assert all(summary["stats"][k] == history[-1][k] for k in STAT_NAMES)
    ap3, ap4 = history[2]["AP"], history[3]["AP"]
    assert (summary["best_epoch"], summary["best_ap"]) == ((4, ap4) if ap4 >= ap3 else (3, ap3))


def log_lines(out, pattern):
    return [m.groups() for m in map(pattern.search, (out / "train.log").read_text().splitlines()) if m]


def check_running_loss_lines(run):
    """Each iteration's line shows the sample-weighted mean loss of the epoch so far, and the LR."""
    out, summary, steps, n_train = run
    sizes = batch_sizes(n_train)
    lines = log_lines(out, ITERATION_LINE)  # train.print_freq=1: one line per iteration
    assert len(lines) == len(steps)
    lrs = [r["lr"] for r in summary["history"]]
    for (epoch, iteration, _, _), line in zip(steps, lines):
        done = [(loss, sizes[i - 1]) for e, i, _, loss in steps if e == epoch and i <= iteration]
        total = 0.0
        for loss, n in done:  # the trainer's own order of additions
            total += loss * n
        running = total / sum(n for _, n in done)
        want = (str(epoch + 1), str(EPOCHS), str(iteration), str(len(sizes)), f"{running:.6g}",
                f"{lrs[epoch]:.3g}")
        assert line == want


def check_epoch_lines(run):
    """Each epoch's line shows its loss and LR, and on validation its AP and the best so far."""
    out, summary, _, _ = run
    best, best_epoch, want = -1.0, 0, []
    for r in summary["history"]:
        ap_part = (None, None, None)
        if "AP" in r:
            if r["AP"] >= best:
                best, best_epoch = r["AP"], r["epoch"]
            ap_part = (f"{r['AP']:.4f}", f"{best:.4f}", str(best_epoch))
        want.append((str(r["epoch"]), str(EPOCHS), f"{r['loss']:.6g}", f"{r['lr']:.3g}", *ap_part))
    assert log_lines(out, EPOCH_LINE) == want


def test_the_numbers_a_run_reports(data_root, tmp_path):
    cfg = make_cfg(data_root, tmp_path, f"train.batch_size={BATCH}", f"train.epochs={EPOCHS}", "train.val_every=3",
                   "train.lr_steps=[2]")
    t0 = time.perf_counter()
    summary, steps = train_recording(cfg)
    elapsed = time.perf_counter() - t0
    run = (tmp_path, summary, steps, len(build_dataset(cfg, "train")))
    for r in summary["history"]:  # wall-clock figures, but within the run's own time
        assert 0 < r["time_s"] < elapsed and ("AP" not in r or 0 < r["val_time_s"] < elapsed)
    check_steps_and_validation_cadence(run)
    check_summary(run)
    check_running_loss_lines(run)
    check_epoch_lines(run)
    # run again: nothing left to do, said so; the summary has no validation of this call
    again, steps = train_recording(cfg)
    assert not steps and again["epochs"] == EPOCHS and again["stats"] == {}
    assert summary["resumed_from"] is None and again["resumed_from"] == str(tmp_path / "checkpoint.pth")
    assert summary["output_dir"] == again["output_dir"] == str(tmp_path)
    assert again["history"] == summary["history"] and again["final_loss"] == summary["final_loss"]
    said = f": => nothing to do: {EPOCHS} of {EPOCHS} epochs already done (raise train.epochs to train longer)"
    assert any(line.endswith(said) for line in (tmp_path / "train.log").read_text().splitlines())


def test_an_epoch_of_one_sample_logs_its_loss(data_root, tmp_path):
    steps: list = []
    summary = train(make_cfg(data_root, tmp_path, "train.batch_size=1", "train.epochs=1",
                             "train.max_iters_per_epoch=1"), verbose=False,
                    on_iteration=lambda info: steps.append(info["loss"]))
    assert len(steps) == 1 and summary["history"][0]["loss"] == steps[0]


def test_a_stop_at_the_end_of_an_epoch_is_honoured_before_the_next(data_root, tmp_path):
    # The signal arrives during the epoch's last step: the epoch ends (checkpoint, logs), then the
    # run stops before the next epoch's first step, at (epoch 1, iteration 0).
    def at_the_last_step(info):
        if (info["epoch"], info["iteration"]) == (0, 1):
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(TrainingInterrupted) as info:
        train(make_cfg(data_root, tmp_path, "train.epochs=2", "train.max_iters_per_epoch=1", "train.val_every=10"),
              on_iteration=at_the_last_step, verbose=False)
    assert (info.value.exit_code, info.value.epoch, info.value.iteration) == (130, 1, 0)  # SIGINT's code
    ckpt = load_checkpoint(tmp_path / "checkpoint.pth")
    assert (ckpt["epoch"], ckpt["iteration"], ckpt["global_step"]) == (1, 0, 1)


def test_without_a_validation_metric_the_last_weights_are_the_best(data_root, tmp_path, monkeypatch):
    # A validation split without keypoint ground truth gives no AP (evaluate returns {}): the
    # last epoch's weights stand in for model_best.pth, with no metric in it.
    monkeypatch.setattr(trainer, "evaluate", lambda *args, **kwargs: {})
    summary = train(make_cfg(data_root, tmp_path, "train.max_iters_per_epoch=1"), verbose=False)
    assert (summary["best_epoch"], summary["best_ap"], summary["stats"]) == (0, -1.0, {})
    best = load_checkpoint(tmp_path / "model_best.pth")
    assert best["epoch"] == 2 and "AP" not in best
    last = load_checkpoint(tmp_path / "checkpoint.pth")["model"]
    assert best["model"].keys() == last.keys() and all(torch.equal(best["model"][k], last[k]) for k in last)


def test_validation_runs_at_the_training_precision_and_keeps_the_main_metric(data_root, tmp_path, monkeypatch):
    # The main metric picks and names model_best.pth (MPII's is "Mean", not "AP"): stand one in
    # with AR, which here ranks the epochs the other way round from AP.
    precisions = []

    def fake_evaluate(model, dataset, cfg, output_dir, device, *, amp, **_options):
        precisions.append(amp)
        return {"AP": 0.9 - 0.1 * len(precisions), "AR": 0.1 * len(precisions)}

    monkeypatch.setattr(trainer, "evaluate", fake_evaluate)
    monkeypatch.setattr(trainer, "main_metric", lambda protocol: "AR")
    summary = train(make_cfg(data_root, tmp_path, "train.amp=bf16", "train.val_every=1",
                             "train.max_iters_per_epoch=1"), verbose=False)
    assert precisions == ["bf16", "bf16"]  # validation under the training's autocast
    assert (summary["best_epoch"], summary["best_ap"]) == (2, pytest.approx(0.2))
    best = load_checkpoint(tmp_path / "model_best.pth")
    assert best["epoch"] == 2 and best["AR"] == pytest.approx(0.2) and "AP" not in best

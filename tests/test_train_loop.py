"""train(cfg) on a tiny generated dataset: exact resume, signals, faults, config checks, outputs.

The reference is one uninterrupted 2-epoch run; every interrupted-and-resumed variant must end with
bit-identical weights (CPU, train.deterministic=true) and the same metrics (wall-clock fields aside).
"""

import json
import math
import os
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest
import torch

from pose.config import load_config
from pose.engine.checkpoint import CheckpointError, load_checkpoint
from pose.engine.trainer import ResumeConfigError, TrainingError, TrainingInterrupted, train

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "experiments" / "synthetic" / "tiny.yaml"
TIME_KEYS = ("time_s", "val_time_s")


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_overrides(root, out, *extra):
    """A 2-epoch deterministic run of the tiny config on ``root``, writing to ``out``."""
    return [f"data.root={root}", "data.synthetic.enabled=false", f"output_dir={out}", "train.workers=0",
            "train.batch_size=4", "train.epochs=2", "train.lr_steps=[1]", "train.deterministic=true",
            "train.print_freq=1", "test.batch_size=8", "test.flip_test=false", *extra]


def make_cfg(root, out, *overrides):
    return load_config(TINY, tiny_overrides(root, out, *overrides))


def weights(out):
    return load_checkpoint(Path(out) / "checkpoint.pth")["model"]


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"


def metrics(out):
    lines = (Path(out) / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(x).items() if k not in TIME_KEYS} for x in lines]


@pytest.fixture(scope="module")
def reference(data_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("reference")
    torch.set_num_threads(1)
    summary = train(make_cfg(data_root, out), verbose=False)
    return out, summary


def test_outputs_of_a_run(reference):
    out, summary = reference
    assert summary["epochs"] == 2 and summary["best_epoch"] in (1, 2) and len(summary["history"]) == 2
    recs = metrics(out)
    assert [r["epoch"] for r in recs] == [1, 2]
    assert {"loss", "lr", "AP", "AR", "AP .5"} <= recs[0].keys()
    assert recs[0]["lr"] == pytest.approx(2e-3) and recs[1]["lr"] == pytest.approx(2e-4)  # lr_steps [1], epoch_end
    assert (out / "training_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = load_config(out / "config.yaml")
    assert saved.output_dir == str(out) and saved.train.batch_size == 4 and saved.train.deterministic
    log = (out / "train.log").read_text()
    assert "epoch 2/2" in log and "samples/s" in log and "ETA" in log
    ckpt = load_checkpoint(out / "checkpoint.pth")
    assert ckpt["epoch"] == 2 and ckpt["iteration"] == 0 and ckpt["config"]["model"]["arch"] == "hrnet_tiny"
    assert {"optimizer", "scheduler", "scaler", "rng", "best_ap", "history"} <= ckpt.keys()
    assert not any(p.name.endswith(".tmp") for p in out.iterdir())
    # model_best.pth loads into a fresh network with the toolkit's loader
    from pose.models import build_model, load_weights
    best = load_checkpoint(out / "model_best.pth")
    assert best["epoch"] == summary["best_epoch"] and "AP" in best
    load_weights(build_model(load_config(out / "config.yaml"), verbose=False), out / "model_best.pth")


def test_resume_at_epoch_boundary_is_bit_identical(reference, data_root, tmp_path):
    ref_out, _ = reference
    train(make_cfg(data_root, tmp_path, "train.epochs=1"), verbose=False)
    assert load_checkpoint(tmp_path / "checkpoint.pth")["epoch"] == 1
    summary = train(make_cfg(data_root, tmp_path), verbose=False)  # epochs 1 -> 2: allowed
    assert summary["resumed_from"] == str(tmp_path / "checkpoint.pth")
    assert_same_weights(weights(tmp_path), weights(ref_out))
    assert metrics(tmp_path) == metrics(ref_out)


def send_at(sig, epoch, iteration):
    def hook(info):
        if info["epoch"] == epoch and info["iteration"] == iteration:
            os.kill(os.getpid(), sig)
    return hook


@pytest.mark.slow
def test_sigterm_mid_epoch_then_resume_is_bit_identical(reference, data_root, tmp_path):
    ref_out, _ = reference
    out = tmp_path / "run"
    handler = signal.getsignal(signal.SIGTERM)  # not always SIG_DFL: a test harness may have its own
    with pytest.raises(TrainingInterrupted) as info:
        train(make_cfg(data_root, out), on_iteration=send_at(signal.SIGTERM, 1, 1), verbose=False)
    # stopped after the step in which the signal (sent after iteration 1) was seen
    assert info.value.exit_code == 143 and (info.value.epoch, info.value.iteration) == (1, 2)
    ckpt = load_checkpoint(out / "checkpoint.pth")
    assert (ckpt["epoch"], ckpt["iteration"]) == (1, 2)
    assert signal.getsignal(signal.SIGTERM) == handler  # handlers restored
    assert "SIGTERM received" in (out / "train.log").read_text()
    # a copy whose latest checkpoint was cut short (as by a crash mid-write): the previous one is used
    broken = tmp_path / "broken"
    shutil.copytree(out, broken)
    (broken / "checkpoint.pth").write_bytes((broken / "checkpoint.pth").read_bytes()[:5000])

    # resumed mid-epoch with 2 loader workers this time (allowed): augmentation does not depend on them
    train(make_cfg(data_root, out, "train.workers=2"), verbose=False)
    assert_same_weights(weights(out), weights(ref_out))
    assert metrics(out) == metrics(ref_out)

    train(make_cfg(data_root, broken), verbose=False)
    assert "resuming from the previous checkpoint" in (broken / "train.log").read_text()
    assert_same_weights(weights(broken), weights(ref_out))
    assert metrics(broken) == metrics(ref_out)


def test_sigint_saves_and_reports_130(data_root, tmp_path):
    with pytest.raises(TrainingInterrupted) as info:
        train(make_cfg(data_root, tmp_path, "train.epochs=1"), on_iteration=send_at(signal.SIGINT, 0, 1),
              verbose=False)
    assert info.value.exit_code == 130
    assert load_checkpoint(tmp_path / "checkpoint.pth")["iteration"] == 2


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(data_root, tmp_path):
    def poison(info):
        if info["epoch"] == 1 and info["iteration"] == 1:
            with torch.no_grad():
                next(info["model"].parameters()).fill_(float("nan"))

    with pytest.raises(TrainingError, match=r"non-finite loss at epoch 2, iteration 2"):
        train(make_cfg(data_root, tmp_path), on_iteration=poison, verbose=False)
    ckpt = load_checkpoint(tmp_path / "checkpoint.pth")
    assert (ckpt["epoch"], ckpt["iteration"]) == (1, 0)
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())
    assert len(metrics(tmp_path)) == 1


def test_non_finite_weights_after_a_step(data_root, tmp_path, monkeypatch):
    import pose.engine.trainer as trainer
    real = trainer.build_optimizer

    def poisoned(model, **kwargs):  # an optimiser whose step leaves a NaN in the weights
        opt = real(model, **kwargs)

        def after_step(*_):
            with torch.no_grad():
                next(model.parameters()).view(-1)[0] = float("nan")
        opt.register_step_post_hook(after_step)
        return opt

    monkeypatch.setattr(trainer, "build_optimizer", poisoned)
    with pytest.raises(TrainingError, match=r"non-finite weights after the optimiser step at epoch 1, iteration 1"):
        train(make_cfg(data_root, tmp_path), verbose=False)
    assert not (tmp_path / "checkpoint.pth").exists()


def test_resume_with_a_config_that_matters_is_refused(reference, data_root, tmp_path):
    ref_out, _ = reference
    out = tmp_path / "copy"
    shutil.copytree(ref_out, out)
    before = (out / "checkpoint.pth").read_bytes()
    with pytest.raises(ResumeConfigError) as info:
        train(make_cfg(data_root, out, "data.sigma=2.0", "model.psa=none", "train.workers=1"), verbose=False)
    text = str(info.value)
    assert "data.sigma: checkpoint 1.0, now 2.0" in text and "model.psa" in text and "train.workers" not in text
    assert (out / "checkpoint.pth").read_bytes() == before
    # harmless differences are accepted (the run is already complete: nothing to do)
    summary = train(make_cfg(data_root, out, "train.workers=1", "train.print_freq=7", "test.flip_test=true"),
                    verbose=False)
    assert summary["epochs"] == 2 and "train.print_freq" in (out / "train.log").read_text()
    # an explicit --resume of a damaged file is an error, never a fresh start
    bad = tmp_path / "bad.pth"
    bad.write_bytes(before[:100])
    with pytest.raises(CheckpointError, match="bad.pth"):
        train(make_cfg(data_root, tmp_path / "other"), resume=bad, verbose=False)


@pytest.mark.parametrize("timing, expected", [("epoch_end", [1.0, 1.0, 0.1]), ("epoch_start", [1.0, 0.1, 0.1])])
def test_lr_step_timing_in_training(data_root, tmp_path, timing, expected):
    summary = train(make_cfg(data_root, tmp_path, "train.epochs=3", "train.lr_steps=[2]", "train.val_every=10",
                             "train.max_iters_per_epoch=1", f"train.lr_step_timing={timing}"), verbose=False)
    assert [r["lr"] / 2e-3 for r in summary["history"]] == pytest.approx(expected)
    assert [("AP" in r) for r in summary["history"]] == [False, False, True]  # validated after the last epoch


def test_train_tool_exit_codes(data_root, tmp_path, capsys):
    import runpy
    tool = runpy.run_path(str(REPO / "tools" / "train.py"))
    assert tool["main"](["--cfg", str(TINY), "train.nope=1"]) == 2
    assert "unknown key 'train.nope'" in capsys.readouterr().err
    base = [f"data.root={data_root}", "data.synthetic.enabled=false", f"output_dir={tmp_path}", "train.workers=0",
            "train.epochs=1", "train.max_iters_per_epoch=1", "test.flip_test=false"]
    assert tool["main"](["--cfg", str(TINY), "--quiet", *base]) == 0
    assert tool["main"](["--cfg", str(TINY), "--quiet", *base, "data.input_size=[64,64]",
                         "data.heatmap_size=[16,16]"]) == 2
    err = capsys.readouterr().err
    assert "data.input_size" in err and "data.heatmap_size" in err
    (tmp_path / "checkpoint.pth").write_bytes(b"junk")
    assert tool["main"](["--cfg", str(TINY), "--quiet", *base]) == 1
    assert "no readable checkpoint" in capsys.readouterr().err


def test_loader_workers_after_opencv_threads_ran_in_the_parent(data_root, tmp_path):
    # OpenCV's thread pool does not survive fork: resizing it in a worker deadlocked (seen here)
    import cv2
    cv2.setNumThreads(2)
    cv2.GaussianBlur(np.zeros((2000, 2000), np.float32), (31, 31), 5)  # runs on the pool's threads
    summary = train(make_cfg(data_root, tmp_path, "train.workers=2", "train.epochs=1", "train.max_iters_per_epoch=2",
                             "train.val_every=10"), verbose=False)
    assert summary["epochs"] == 1


def _children(pid):
    kids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(entry.name))
    return kids


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to find the loader's workers")
def test_a_dead_loader_worker_is_an_error_not_a_hang(data_root, tmp_path):
    def kill_workers(info):
        if info["iteration"] == 1:
            for pid in _children(os.getpid()):
                os.kill(pid, signal.SIGKILL)

    dead = r"data loading failed at epoch 1, iteration 2: DataLoader worker .*(killed|exited)"
    with pytest.raises(TrainingError, match=dead):
        train(make_cfg(data_root, tmp_path, "train.workers=2", "train.epochs=1"), on_iteration=kill_workers,
              verbose=False)
    assert not (tmp_path / "checkpoint.pth").exists()


def test_a_corrupt_image_is_named_or_skipped_and_counted(data_root, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(data_root, root)
    victim = sorted((root / "images" / "train2017").iterdir())[0]
    victim.write_bytes(b"not a jpeg at all")
    with pytest.raises(TrainingError, match=rf"data loading failed at epoch 1, .*{victim.name}"):
        train(make_cfg(root, tmp_path / "strict", "train.workers=2", "train.epochs=1"), verbose=False)
    summary = train(make_cfg(root, tmp_path / "skip", "train.epochs=1", "data.skip_corrupt_images=true"),
                    verbose=False)
    assert summary["epochs"] == 1
    log = (tmp_path / "skip" / "train.log").read_text()
    assert victim.name in log and "corrupt images skipped" in log


def test_train_then_test_tool_end_to_end(reference, data_root, tmp_path, capsys):
    # the smoke test: a few iterations lower the loss, and test.py prints the ten numbers
    import runpy

    from pose.engine.coco_eval import STAT_NAMES
    ref_out, summary = reference
    losses = [r["loss"] for r in summary["history"]]
    assert losses[-1] < losses[0], losses
    tool = runpy.run_path(str(REPO / "tools" / "test.py"))
    args = ["--cfg", str(ref_out / "config.yaml"), "--weights", str(ref_out / "model_best.pth"),
            f"output_dir={tmp_path}"]
    assert tool["main"](tool["get_args_parser"]().parse_args(args)) == 0
    printed = capsys.readouterr().out
    header = [c.strip() for c in printed.strip().splitlines()[-3].split("|")[2:-1]]
    assert header == list(STAT_NAMES)
    saved = json.loads((tmp_path / "results" / "stats_val2017.json").read_text())
    assert list(saved)[:10] == list(STAT_NAMES)
    assert {"PCK@0.05", "AUC", "EPE"} <= saved.keys() and f"PCK@0.05 {saved['PCK@0.05']:.3f}" in printed


def test_temporary_files_of_a_killed_write_are_removed(data_root, tmp_path):
    tmp_path.mkdir(exist_ok=True)
    stale = [tmp_path / ".checkpoint.pth.x1.tmp", tmp_path / ".metrics.jsonl.x2.tmp"]
    other = tmp_path / ".notes.txt.x3.tmp"  # not ours: left alone
    for p in (*stale, other):
        p.write_bytes(b"partial")
    train(make_cfg(data_root, tmp_path, "train.epochs=1", "train.max_iters_per_epoch=1"), verbose=False)
    assert not any(p.exists() for p in stale) and other.exists()


@pytest.mark.parametrize("units, expected", [(True, "bf16 autocast"), (False, "fp32")])
def test_amp_auto_picks_bf16_only_where_the_cpu_has_bf16_units(data_root, tmp_path, monkeypatch, units, expected):
    from pose import runtime as distributed
    monkeypatch.setattr(distributed, "_cpu_has_bf16_units", lambda: units)
    assert distributed.resolve_amp("auto", torch.device("cpu")) == ("bf16" if units else "none")
    assert distributed.resolve_amp("fp16", torch.device("cpu")) == "fp16"  # explicit values stand
    summary = train(make_cfg(data_root, tmp_path, "train.amp=auto", "train.epochs=1", "train.max_iters_per_epoch=2"),
                    verbose=False)
    assert summary["epochs"] == 1 and math.isfinite(summary["final_loss"])
    assert f"precision {expected} (train.amp=auto)" in (tmp_path / "train.log").read_text()

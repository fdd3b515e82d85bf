"""Training in real processes: two gloo ranks under torchrun agree; a failing rank ends the job
(no hang) and is named; a SIGKILL mid-epoch loses nothing once the run is resumed.

Each run is ``tests/train_child.py`` (``train(cfg)`` plus a digest of the final weights) in a
subprocess, with one thread per process, on a tiny generated dataset.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from test_train_loop import tiny_overrides  # the same tiny deterministic run

from pose.engine.checkpoint import load_checkpoint

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "experiments" / "synthetic" / "tiny.yaml"
CHILD = REPO / "tests" / "train_child.py"
pytestmark = pytest.mark.slow


def run(args, *, timeout=240):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, *map(str, args)], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)


def torchrun(nproc, args):
    return run(["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", CHILD, *args])


def record(out, rank=0):
    return json.loads((Path(out) / f"weights_rank{rank}.json").read_text())


def checkpoint_model(out):
    return load_checkpoint(Path(out) / "checkpoint.pth")["model"]


def test_two_gloo_processes_agree(data_root, tmp_path):
    result = torchrun(2, ["--cfg", TINY, *tiny_overrides(data_root, tmp_path)])
    assert result.returncode == 0, result.stderr[-3000:]
    r0, r1 = record(tmp_path, 0), record(tmp_path, 1)
    assert r0["parameters"] == r1["parameters"]  # DDP kept the replicas identical
    # BatchNorm statistics are rank 0's at the start of every forward (DDP broadcasts them), so after
    # the last step each rank has its own: rank 0's are the ones saved
    assert r0["buffers"] != r1["buffers"]
    assert r0["history"] == r1["history"]  # loss averaged over ranks, AP from the gathered predictions
    assert [h["epoch"] for h in r0["history"]] == [1, 2] and "AP" in r0["history"][-1]
    ckpt = load_checkpoint(tmp_path / "checkpoint.pth")
    assert ckpt["epoch"] == 2 and ckpt["config"]["output_dir"] == str(tmp_path)
    log = (tmp_path / "train.log").read_text()
    assert "2 process(es)" in log


def test_a_failing_rank_ends_the_job_and_is_named(data_root, tmp_path):
    result = torchrun(2, ["--cfg", TINY, "--die-at", "0,1", "--die-rank", "1", "--how", "raise",
                          *tiny_overrides(data_root, tmp_path)])
    assert result.returncode != 0
    text = result.stdout + result.stderr
    assert "rank 1 of 2" in text and "injected failure at epoch 0, iteration 1" in text
    assert not (tmp_path / "checkpoint.pth").exists()  # nothing half-done was saved
    assert not (tmp_path / "weights_rank0.json").exists()


def test_sigkill_mid_epoch_then_resume_matches_an_uninterrupted_run(data_root, tmp_path):
    ref, out = tmp_path / "reference", tmp_path / "killed"
    assert run([CHILD, "--cfg", TINY, *tiny_overrides(data_root, ref)]).returncode == 0
    killed = run([CHILD, "--cfg", TINY, "--die-at", "1,1", "--how", "kill", *tiny_overrides(data_root, out)])
    assert killed.returncode == -signal.SIGKILL
    assert load_checkpoint(out / "checkpoint.pth")["epoch"] == 1  # the epoch-1 checkpoint survived
    resumed = run([CHILD, "--cfg", TINY, *tiny_overrides(data_root, out)])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from" in (out / "train.log").read_text()
    a, b = checkpoint_model(ref), checkpoint_model(out)
    assert a.keys() == b.keys() and all(a[k].equal(b[k]) for k in a)
    assert record(out)["history"] == record(ref)["history"]
    assert (out / "metrics.jsonl").read_text().count("\n") == 2


def test_train_tool_with_persistent_workers_exits_after_success_and_after_an_error(data_root, tmp_path):
    # Workers live across epochs and ignore SIGTERM: the process must still end, 0 after a clean run
    # and 1 (the fault named) when an error propagates while they are alive.
    ok = run(["tools/train.py", "--cfg", TINY, *tiny_overrides(data_root, tmp_path / "ok", "train.workers=2")],
             timeout=180)
    assert ok.returncode == 0, ok.stderr[-2000:]
    root = tmp_path / "data"
    shutil.copytree(data_root, root)
    victim = sorted((root / "images" / "train2017").iterdir())[-1]
    victim.write_bytes(b"not a jpeg at all")
    bad = run(["tools/train.py", "--cfg", TINY, *tiny_overrides(root, tmp_path / "bad", "train.workers=2")],
              timeout=180)
    assert bad.returncode == 1 and victim.name in bad.stderr, bad.stderr[-2000:]

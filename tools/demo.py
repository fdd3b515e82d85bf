"""The embedded default, end to end: synthetic COCO-format data, training, COCO AP, drawings.

Runs the same three tools a user runs on COCO, one after the other, with the synthetic config:

  1. tools/train.py      generates data/synthetic on first use, trains, validates, checkpoints;
  2. tools/test.py       flip test, OKS NMS, COCO AP with pycocotools on the validation split;
  3. tools/visualize.py  draws the predicted skeletons (with the ground truth beside them) and a
                         per-keypoint accuracy chart.

Time budget (--budget-min, default 10): the recipe's schedule was tuned on one machine. Before
training, the demo times a short probe run (a few iterations and one validation, in a temporary
directory) and, where the recipe's epochs would not fit the budget with the evaluation and drawing
after them, trains fewer epochs with the LR drops at the same fractions of the run. It prints
what it chose and why, and records it in output_dir/demo_schedule.json; the schedule is also in
the run's config.yaml. Where the recipe does not fit, a second probe with one compute thread
(OMP_NUM_THREADS=1) is timed too, and the faster is used: on a busy machine PyTorch's threads wait
for each other and one can be much faster. A run is deterministic for a given schedule and thread
count. Running the command again after a kill continues the run with the schedule (read from its
config.yaml) and threads it started with, and if training reaches the end of the budget anyway (a
machine that got slower), it is stopped with a checkpoint and the best model so far is evaluated.

Extra arguments are config overrides passed to all three (e.g. ``train.epochs=2``); with
``train.epochs`` or ``train.lr_steps`` among them, or --budget-min 0, the schedule is used as
given.
"""

import argparse
import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from pose.atomic_io import atomic_write_bytes
from pose.config import Config, load_config
from pose.data import build_dataset
from pose.engine.time_budget import Schedule, fit_schedule

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CFG = ROOT / "experiments/synthetic/hrnet_small_psa_p.yaml"
# Iterations timed by the probe: enough to pass the first, slower ones (kernel set-up), few
# enough to cost a small part of the budget.
PROBE_ITERS = 20
# Share of the time left that the chosen epochs may fill: the rest absorbs a machine that gets
# slower during the run, so that it yields fewer epochs instead of an overrun.
MARGIN = 0.9
# The drawings (12 images, a montage, a chart) are not timed by the probe; an allowance on top of
# the measured process start-ups.
DRAW_ALLOWANCE_S = 10.0
SCHEDULE_FILE = "demo_schedule.json"


def _run(args: list, *, deadline: float | None = None, threads: int | None = None) -> int:
    """Run a tool with this Python (with ``threads`` compute threads, or PyTorch's default); stop it
    with SIGTERM at ``deadline`` (time.perf_counter()). Exits on failure; returns the exit status
    (0, or that of a run stopped at the deadline)."""
    env = None if threads is None else {**os.environ, "OMP_NUM_THREADS": str(threads)}
    prefix = "" if threads is None else f"OMP_NUM_THREADS={threads} "
    print(f"\n$ {prefix}" + " ".join(str(a) for a in args), flush=True)
    proc = subprocess.Popen([sys.executable, *map(str, args)], cwd=ROOT, env=env)
    stopped = False
    while True:
        try:
            code = proc.wait(timeout=1.0)
            break
        except subprocess.TimeoutExpired:
            if deadline is not None and not stopped and time.perf_counter() > deadline:
                print("\ndemo: the time budget is reached: stopping training (it saves a checkpoint; run the "
                      "same command again to continue it)", flush=True)
                proc.send_signal(signal.SIGTERM)
                stopped = True
    # Stopped: train.py exits 143 after saving its checkpoint, or dies of the signal (-15) if it
    # came before its handler was installed (still starting up, nothing to save).
    if code == 0 or (stopped and code in (128 + signal.SIGTERM, -signal.SIGTERM)):
        return code
    sys.exit(f"demo: step failed with exit status {code}: {' '.join(map(str, args))}")


def _given_schedule(overrides: list[str]) -> bool:
    return any(o.split("=", 1)[0].strip() in ("train.epochs", "train.lr_steps") for o in overrides)


def saved_schedule(out: Path) -> Schedule | None:
    """The schedule of a run already under way in ``out`` (a checkpoint and the config.yaml that
    tools/train.py saved with it), or None."""
    config = out / "config.yaml"
    if not (out / "checkpoint.pth").exists() or not config.exists():
        return None
    saved = load_config(config)
    return Schedule(saved.train.epochs, tuple(saved.train.lr_steps),
                    f"continuing the run in {out} with the schedule it started with ({config}); "
                    "delete that directory to choose afresh")


def _probe(cfg_path: Path, overrides: list[str], cfg: Config, threads: int | None = None) -> dict[str, float]:
    """Time the data set-up, a few training iterations and one validation; per-epoch estimates."""
    t0 = time.perf_counter()
    with contextlib.chdir(ROOT):  # data.root is relative to the repository, as for the tools
        train_crops = len(build_dataset(cfg, "train"))  # generates the synthetic data on first use
    data_s = time.perf_counter() - t0
    iters = math.ceil(train_crops / cfg.train.batch_size)
    if cfg.train.max_iters_per_epoch:
        iters = min(iters, cfg.train.max_iters_per_epoch)
    with tempfile.TemporaryDirectory(prefix="demo-probe-") as tmp:
        t1 = time.perf_counter()
        _run(["tools/train.py", "--quiet", "--cfg", cfg_path, *overrides, f"output_dir={tmp}", "train.epochs=1",
              f"train.max_iters_per_epoch={min(PROBE_ITERS, iters)}", "train.val_every=1",
              "train.auto_resume=false"], threads=threads)
        wall = time.perf_counter() - t1
        lines = (Path(tmp) / "metrics.jsonl").read_text().splitlines()
    record = json.loads(lines[-1])
    val_s = float(record.get("val_time_s", 0.0))
    return {"data_s": data_s, "probe_s": wall, "iterations_per_epoch": iters,
            "epoch_s": record["time_s"] / record["iterations"] * iters, "val_s": val_s,
            "startup_s": max(wall - record["time_s"] - val_s, 0.0)}


@dataclass(frozen=True)
class Plan:
    """What the demo runs: the schedule (None: as configured), the time kept for the steps after
    training, and the compute threads (None: PyTorch's default)."""

    schedule: Schedule | None
    tail_s: float = 0.0
    threads: int | None = None


def _fit(probe: dict[str, float], cfg: Config, *, budget_s: float, start: float) -> tuple[Schedule, float]:
    # After training: tools/test.py (a start-up and a validation, as timed) and two drawing runs.
    tail_s = 3 * probe["startup_s"] + probe["val_s"] + DRAW_ALLOWANCE_S
    left = budget_s - (time.perf_counter() - start) - probe["startup_s"] - tail_s
    return fit_schedule(available_s=left, epoch_s=probe["epoch_s"], val_s=probe["val_s"],
                        val_every=cfg.train.val_every, recipe_epochs=cfg.train.epochs,
                        recipe_lr_steps=tuple(cfg.train.lr_steps), margin=MARGIN), tail_s


def choose_plan(cfg_path: Path, overrides: list[str], cfg: Config, out: Path, *, budget_s: float,
                start: float) -> Plan:
    """Probe, fit the schedule to the budget, record it; or the plan of the run under way in ``out``."""
    if _given_schedule(overrides) or budget_s <= 0:
        print("demo: schedule as configured (" + ("given on the command line" if budget_s > 0 else "no budget")
              + f"): {cfg.train.epochs} epochs, LR drops after {list(cfg.train.lr_steps)}", flush=True)
        return Plan(None)
    saved = saved_schedule(out)
    if saved is not None:
        # The first run's estimate of the steps after training and its threads, where it recorded them.
        record_path = out / SCHEDULE_FILE
        record = json.loads(record_path.read_text()) if record_path.exists() else {}
        print(f"demo: {saved.epochs} epochs, LR drops after {list(saved.lr_steps)}: {saved.reason}", flush=True)
        return Plan(saved, record.get("tail_s", 0.0), record.get("threads"))
    probe = _probe(cfg_path, overrides, cfg)
    schedule, tail_s = _fit(probe, cfg, budget_s=budget_s, start=start)
    threads = None
    if schedule.epochs < cfg.train.epochs and (os.cpu_count() or 1) > 1:
        # On a busy machine PyTorch's threads wait for each other at every operation, and one
        # thread can be many times faster than several; worth a second probe only when the recipe
        # does not fit (on a machine at rest the default wins, and the run stays as tuned).
        single = _probe(cfg_path, overrides, cfg, threads=1)
        print(f"\ndemo: {probe['epoch_s']:.1f} s per epoch with PyTorch's default threads, "
              f"{single['epoch_s']:.1f} s with one", flush=True)
        if single["epoch_s"] < probe["epoch_s"]:
            probe, threads = single, 1
        schedule, tail_s = _fit(probe, cfg, budget_s=budget_s, start=start)
    out.mkdir(parents=True, exist_ok=True)
    record = {"budget_s": budget_s, **{k: round(v, 3) for k, v in probe.items()}, "tail_s": round(tail_s, 3),
              "threads": threads, "epochs": schedule.epochs, "lr_steps": list(schedule.lr_steps),
              "reason": schedule.reason}
    atomic_write_bytes(out / SCHEDULE_FILE, (json.dumps(record, indent=1) + "\n").encode())
    print(f"\ndemo: measured {probe['epoch_s']:.1f} s per training epoch ({probe['iterations_per_epoch']} "
          f"iterations), {probe['val_s']:.1f} s per validation, {probe['startup_s']:.1f} s per tool start-up, "
          f"data ready in {probe['data_s']:.1f} s; budget {budget_s:.0f} s, {tail_s:.0f} s kept for testing "
          f"and drawing{'; one compute thread' if threads == 1 else ''}\ndemo: {schedule.epochs} epochs, "
          f"LR drops after {list(schedule.lr_steps)}: {schedule.reason}", flush=True)
    return Plan(schedule, tail_s, threads)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cfg", default=str(DEFAULT_CFG), help="experiment YAML (default: %(default)s)")
    parser.add_argument("--budget-min", type=float, default=10.0,
                        help="wall-clock budget in minutes for the whole demo; 0: none (default: %(default)s)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    cfg_path = Path(args.cfg).resolve()
    cfg = load_config(cfg_path, args.overrides)
    out = Path(cfg.output_dir)
    if not out.is_absolute():
        out = ROOT / out
    budget_s = args.budget_min * 60
    plan = choose_plan(cfg_path, args.overrides, cfg, out, budget_s=budget_s, start=start)
    schedule, threads = plan.schedule, plan.threads
    overrides = [*args.overrides, *(schedule.overrides() if schedule else [])]
    deadline = start + budget_s - plan.tail_s if schedule else None
    code = _run(["tools/train.py", "--cfg", cfg_path, *overrides], deadline=deadline, threads=threads)
    if code != 0 and not (out / "model_best.pth").exists():
        sys.exit("demo: training was stopped at the time budget before its first validation, so there is no "
                 "model to evaluate; run the same command again to continue it (or raise --budget-min)")
    _run(["tools/test.py", "--cfg", cfg_path, "--weights", out / "model_best.pth", *overrides], threads=threads)

    root = Path(cfg.data.root)
    gt = root / "annotations" / f"person_keypoints_{cfg.data.val_set}.json"
    results = out / "results" / f"keypoints_{cfg.data.val_set}_results.json"
    _run(["tools/visualize.py", "results", "--results", results, "--images",
          root / "images" / cfg.data.val_set, "--gt", gt, "--out", out / "vis", "--max-images", "12",
          "--montage", "6"], threads=threads)
    _run(["tools/visualize.py", "accuracy", "--results", results, "--gt", gt, "--out", out / "vis"], threads=threads)
    took = time.perf_counter() - start
    budget = f" (budget {budget_s:.0f} s)" if schedule else ""
    print(f"\ndemo finished in {took:.0f} s{budget}; outputs in {out}:"
          f"\n  model_best.pth, metrics.jsonl, training_curves.png, results/, vis/montage.jpg")


if __name__ == "__main__":
    main()

"""The PSA ablation on the synthetic dataset: baseline vs PSA_p vs PSA_s, trained identically.

Each network is trained with the demo's recipe (``experiments/synthetic/hrnet_small*.yaml``: same
seed, data, schedule and augmentation; only ``model.psa`` differs), then evaluated as
``tools/test.py`` does (flip test, ground-truth boxes, pycocotools). Prints the machine, the
settings, and per network: AP, AP .5, AP .75, AR, training time, samples/s and the time ratio to
the baseline. The networks are trained one after another in this process, so load from other
processes can bias a single run: compare ratios, and rerun on a quiet machine.

    python benchmarks/bench_psa_ablation.py                  # the demo's full schedule (~25 min, 2 cores)
    python benchmarks/bench_psa_ablation.py train.epochs=4   # overrides go to all three runs
    python benchmarks/bench_psa_ablation.py --only baseline psa_p

Outputs under ``output/psa_ablation/<network>/`` (checkpoints, logs, results) and a summary in
``output/psa_ablation/summary.json``.
"""

import argparse
import time
from pathlib import Path

import torch
from machine import describe

from pose.config import load_config
from pose.data.synthetic import ensure_synthetic
from pose.engine.results_io import write_json_atomic
from pose.engine.tester import run_test
from pose.engine.trainer import train

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {"baseline": "hrnet_small.yaml", "psa_p": "hrnet_small_psa_p.yaml", "psa_s": "hrnet_small_psa_s.yaml"}


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--only", nargs="+", choices=tuple(CONFIGS), default=list(CONFIGS), help="networks to train")
    p.add_argument("--out", default=str(ROOT / "output" / "psa_ablation"), help="output folder")
    p.add_argument("overrides", nargs="*", metavar="section.key=value", help="config overrides for every run")
    return p


def main(args: argparse.Namespace) -> None:
    out_root = Path(args.out)
    cfgs = {name: load_config(ROOT / "experiments" / "synthetic" / CONFIGS[name],
                              [*args.overrides, f"output_dir={out_root / name}", "train.auto_resume=false"])
            for name in args.only}
    first = next(iter(cfgs.values()))
    print(describe())
    t = first.train
    print(f"settings: arch={first.model.arch} input={first.data.input_size[0]}x{first.data.input_size[1]} "
          f"epochs={t.epochs} lr={t.lr} lr_steps={list(t.lr_steps)} batch={t.batch_size} workers={t.workers} "
          f"seed={first.seed} flip_test={first.test.flip_test} refine={first.test.refine} "
          f"overrides={args.overrides}")
    ensure_synthetic(first.data)  # generated once, outside the timed runs

    rows = {}
    for name, cfg in cfgs.items():
        print(f"\n=== {name}: model.psa={cfg.model.psa}", flush=True)
        t0 = time.perf_counter()
        summary = train(cfg, verbose=False)
        train_s = time.perf_counter() - t0
        stats = run_test(cfg, Path(cfg.output_dir) / "model_best.pth", verbose=False)
        samples = sum(r["iterations"] for r in summary["history"]) * cfg.train.batch_size
        params = sum(p.numel() for p in torch.load(Path(cfg.output_dir) / "model_best.pth",
                                                   weights_only=True)["model"].values()
                     if p.is_floating_point()) / 1e6
        rows[name] = {"AP": stats["AP"], "AP .5": stats["AP .5"], "AP .75": stats["AP .75"], "AR": stats["AR"],
                      "train_s": round(train_s, 1), "samples_per_s": round(samples / train_s, 1),
                      "params_M": round(params, 3), "best_epoch": summary["best_epoch"]}
        print(f"{name}: AP {stats['AP']:.3f} in {train_s:.0f} s", flush=True)

    base = rows.get("baseline")
    print(f"\n{'network':<10}{'params (M)':>11}{'AP':>7}{'AP .5':>7}{'AP .75':>8}{'AR':>7}{'train s':>9}"
          f"{'samples/s':>11}{'time / baseline':>17}")
    for name, r in rows.items():
        ratio = f"{r['train_s'] / base['train_s']:.3f}x" if base else "-"
        print(f"{name:<10}{r['params_M']:>11.3f}{r['AP']:>7.3f}{r['AP .5']:>7.3f}{r['AP .75']:>8.3f}{r['AR']:>7.3f}"
              f"{r['train_s']:>9.0f}{r['samples_per_s']:>11.1f}{ratio:>17}")
    write_json_atomic(out_root / "summary.json", {"overrides": args.overrides, "results": rows}, indent=1)


if __name__ == "__main__":
    main(get_args_parser().parse_args())

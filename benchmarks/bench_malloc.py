"""cpu_malloc=retain vs system: forward and training-step time, and page faults, side by side.

    python benchmarks/bench_malloc.py
    python benchmarks/bench_malloc.py --rounds 4 --reps 5

The setting is per process (it is the C library's), so each round starts one child process per
setting, in alternating order, and every child times the same rows: HRNet-W32's forward (fp32;
bf16 + channels_last where the CPU has bf16 units) without and with PSA_p, and a training step of
the demo's network without and with PSA_p. The table gives medians over all rounds, the speed-up
of 'retain' and the minor page faults per call (memory the kernel had to zero-fill again).
"""

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from machine import bf16_units, describe

from pose.engine.loss import JointsMSELoss
from pose.engine.optim import build_optimizer
from pose.models import create_model
from pose.runtime import CPU_MALLOC_CHOICES, amp_autocast, configure_cpu_malloc


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=3, help="child processes per setting")
    p.add_argument("--reps", type=int, default=3, help="timed calls per row in each child")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: leave the default)")
    p.add_argument("--arch", default="hrnet_w32", help="network of the forward rows (batch 8, 256x192)")
    p.add_argument("--train-arch", default="hrnet_small",
                   help="network of the training-step rows (batch 16, 96x128; the demo's)")
    p.add_argument("--child", choices=CPU_MALLOC_CHOICES, help=argparse.SUPPRESS)
    return p


def _forward_rows(arch: str, prec: str) -> dict[str, Callable[[], object]]:
    channels_last = prec != "fp32"
    x = torch.randn(8, 3, 256, 192)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    rows = {}
    for psa, name in (("none", "baseline"), ("parallel", "PSA_p")):
        torch.manual_seed(0)
        net = create_model(arch, psa=psa, init_std=0.0).eval()
        if channels_last:
            net = net.to(memory_format=torch.channels_last)

        def forward(net=net) -> object:
            with torch.inference_mode(), amp_autocast(x.device, "none" if prec == "fp32" else "bf16"):
                return net(x)
        rows[f"{arch} forward {prec}, {name}"] = forward
    return rows


def _train_rows(arch: str) -> dict[str, Callable[[], object]]:
    x, target = torch.randn(16, 3, 128, 96), torch.rand(16, 17, 32, 24)
    weight, criterion = torch.ones(16, 17, 1), JointsMSELoss(use_target_weight=True)
    rows = {}
    for psa, name in (("none", "baseline"), ("parallel", "PSA_p")):
        torch.manual_seed(0)
        net = create_model(arch, psa=psa, init_std=0.0).train()
        optimizer = build_optimizer(net, name="adam", lr=1e-3)

        def step(net=net, optimizer=optimizer) -> object:
            loss = criterion(net(x), target, weight)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            return loss
        rows[f"{arch} train step fp32, {name}"] = step
    return rows


def child(args: argparse.Namespace) -> None:
    """Time every row in this process (its cpu_malloc already set); one JSON line per row."""
    rows = _forward_rows(args.arch, "fp32")
    if bf16_units() != "none":
        rows.update(_forward_rows(args.arch, "bf16"))
    rows.update(_train_rows(args.train_arch))
    for name, call in rows.items():
        for _ in range(args.warmup):
            call()
        times, faults = [], []
        for _ in range(args.reps):
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            t0 = time.perf_counter()
            call()
            times.append(time.perf_counter() - t0)
            faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
        print(json.dumps({"row": name, "times": times, "faults": faults}), flush=True)


def run_child(setting: str, args: argparse.Namespace) -> list[dict]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", setting, "--reps", str(args.reps),
           "--warmup", str(args.warmup), "--threads", str(args.threads), "--arch", args.arch,
           "--train-arch", args.train_arch]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"child process ({setting}) failed:\n{out.stderr}")
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def main(args: argparse.Namespace) -> dict[tuple[str, str], float]:
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child:
        print(configure_cpu_malloc(args.child), file=sys.stderr)
        child(args)
        return {}
    print(describe())
    print(f"settings: rounds={args.rounds} (one child process per setting each, alternating order) reps={args.reps} "
          f"warmup={args.warmup}; forward: {args.arch} batch 8 at 256x192; training step: {args.train_arch} "
          "batch 16 at 96x128, Adam")
    times: dict[tuple[str, str], list[float]] = {}
    faults: dict[tuple[str, str], list[int]] = {}
    for r in range(args.rounds):
        for setting in (CPU_MALLOC_CHOICES if r % 2 == 0 else CPU_MALLOC_CHOICES[::-1]):
            for rec in run_child(setting, args):
                times.setdefault((rec["row"], setting), []).extend(rec["times"])
                faults.setdefault((rec["row"], setting), []).extend(rec["faults"])
    rows = list(dict.fromkeys(row for row, _ in times))
    print(f"\n{'row':<44}{'system s':>10}{'retain s':>10}{'speed-up':>10}{'faults/call system':>20}{'retain':>8}")
    med = {k: statistics.median(v) for k, v in times.items()}
    for row in rows:
        sys_s, ret_s = med[(row, "system")], med[(row, "retain")]
        print(f"{row:<44}{sys_s:>10.4f}{ret_s:>10.4f}{sys_s / ret_s:>9.2f}x"
              f"{statistics.median(faults[(row, 'system')]):>20.0f}{statistics.median(faults[(row, 'retain')]):>8.0f}")
    print("\nPSA_p time / baseline time, per setting:")
    for row in rows:
        if row.endswith(", PSA_p"):
            base = row.replace(", PSA_p", ", baseline")
            print(f"  {row[:-len(', PSA_p')]:<40} system {med[(row, 'system')] / med[(base, 'system')]:.3f}x"
                  f"   retain {med[(row, 'retain')] / med[(base, 'retain')]:.3f}x")
    print("(medians over all rounds; faults: minor page faults of the process per call)")
    return med


if __name__ == "__main__":
    main(get_args_parser().parse_args())

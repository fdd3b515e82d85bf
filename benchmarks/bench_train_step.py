"""Training-step throughput: baseline vs +PSA_p vs +PSA_s, at fp32 and at mixed precision.

    python benchmarks/bench_train_step.py       # the demo network and HRNet-W32 256x192 batch 8, this CPU
    python benchmarks/bench_train_step.py --nets hrnet_small:16:96x128
    python benchmarks/bench_train_step.py --nets hrnet_w32:32:192x256 --device cuda
    python benchmarks/bench_train_step.py --compile --nets hrnet_small:16:96x128   # + compiled rows

One step is what tools/train.py does per batch: forward under the precision's autocast, the
MSE heatmap loss with target weights, backward (through a GradScaler for fp16) and the optimizer
step, with the optimizer tools/train.py builds (Adam, fused where PyTorch has the kernels).
Precisions: 'fp32' (NCHW, no autocast) and 'amp' (train.amp=auto resolved for the device, i.e.
bf16 where supported, with channels_last); amp is left out where it resolves to fp32.

Networks (--nets, ARCH:BATCH:WxH, comma-separated) are measured one after the other in the same
run, each with its own table. Rows also include, for the first network's PSA_p at the mixed
precision: the straightforward convolution form of PSA (autograd through three C x C/2
convolutions) and the per-tensor (unfused) Adam, so the gains of the hand-written PSA backward and
of the fused optimizer are measured in the same run. ``--compile`` adds the three networks at each
precision as ``train.compile=true`` trains them (forward and backward compiled by inductor, once,
in the first untimed round, whose time is printed); their "/ baseline" is to the compiled baseline.

Within a network, all rows are built once and timed in interleaved rounds (the order rotates each
round), so load from other processes hits them alike; the median step is reported, with
samples/s, the ratio to the first row and to the baseline of the same precision, and on CUDA the
peak memory allocated.
"""

import argparse
import statistics
import time
from dataclasses import dataclass

import torch
from machine import add_cpu_malloc_option, apply_cpu_malloc, describe

from pose.engine.loss import JointsMSELoss
from pose.engine.optim import build_optimizer
from pose.models import PolarizedSelfAttention, count_params, create_model
from pose.runtime import amp_autocast, compile_model, resolve_amp


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--nets", default="hrnet_small:16:96x128,hrnet_w32:8:192x256",
                   help="networks to measure, ARCH:BATCH:WxH, comma-separated (default: the demo's network "
                        "and recipe, then HRNet-W32 at 256x192)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: leave the default)")
    p.add_argument("--reps", type=int, default=9, help="timed rounds (each times every row)")
    p.add_argument("--steps", type=int, default=2, help="training steps per row per round")
    p.add_argument("--warmup", type=int, default=2, help="untimed rounds first")
    p.add_argument("--precisions", default="fp32,amp", help="comma-separated: fp32, amp")
    p.add_argument("--no-extra", action="store_true",
                   help="leave out the straightforward-PSA and unfused-Adam rows")
    p.add_argument("--compile", action="store_true",
                   help="also time the three compiled as train.compile=true does (inductor; compiling takes minutes "
                        "per row on a CPU)")
    add_cpu_malloc_option(p)
    return p


@dataclass
class Row:
    name: str
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    amp: str  # 'none', 'bf16' or 'fp16'
    channels_last: bool
    scaler: torch.amp.GradScaler
    times: list[float]
    peak_bytes: int = 0
    forward: torch.nn.Module | None = None  # the compiled model, else the model itself

    @property
    def baseline_key(self) -> tuple[str, bool]:
        return self.amp, self.forward is not self.model


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass(frozen=True)
class Net:
    arch: str
    batch: int
    width: int
    height: int


def parse_nets(text: str) -> list[Net]:
    """``ARCH:BATCH:WxH[,...]`` -> nets, with an error naming the entry at fault."""
    nets = []
    for item in filter(None, (t.strip() for t in text.split(","))):
        try:
            arch, batch, size = item.split(":")
            w, h = size.lower().split("x")
            nets.append(Net(arch, int(batch), int(w), int(h)))
        except ValueError:
            raise SystemExit(f"--nets: {item!r} is not ARCH:BATCH:WxH (e.g. hrnet_w32:8:192x256)") from None
    if not nets:
        raise SystemExit("--nets: no network given")
    return nets


def _make_row(name: str, net: Net, device: torch.device, *, psa: str, amp: str, reference: bool = False,
              fused: bool = True, compiled: bool = False) -> Row:
    torch.manual_seed(0)
    # PyTorch's default init (init_std=0): activations of a sane scale (the official N(0, 0.001)
    # init shrinks them into float32 denormals, slow on x86 CPUs and not what training sees).
    model = create_model(net.arch, psa=psa, init_std=0.0).to(device)
    if reference:
        for m in model.modules():
            if isinstance(m, PolarizedSelfAttention):
                m.reference = True
    channels_last = amp != "none"
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.train()
    optimizer = (build_optimizer(model, name="adam", lr=1e-3) if fused
                 else torch.optim.Adam(model.parameters(), lr=1e-3, fused=False, foreach=False))
    scaler = torch.amp.GradScaler(device.type, enabled=amp == "fp16")
    return Row(name, model, optimizer, amp, channels_last, scaler, [],
               forward=compile_model(model) if compiled else model)


def _step(row: Row, images: torch.Tensor, target: torch.Tensor, weight: torch.Tensor,
          criterion: torch.nn.Module) -> None:
    x = images.contiguous(memory_format=torch.channels_last) if row.channels_last else images
    with amp_autocast(images.device, row.amp):
        out = row.forward(x)
    loss = criterion(out, target, weight)
    row.optimizer.zero_grad(set_to_none=True)
    row.scaler.scale(loss).backward()
    row.scaler.step(row.optimizer)
    row.scaler.update()


def _build_rows(net: Net, device: torch.device, precisions: list[str], amp: str, extra: bool,
                compiled: bool) -> list[Row]:
    rows: list[Row] = []
    for prec in precisions:
        row_amp = "none" if prec == "fp32" else amp
        label = "fp32" if prec == "fp32" else amp
        for compile_row in (False, True) if compiled else (False,):
            for psa, name in (("none", "baseline"), ("parallel", "PSA_p"), ("sequential", "PSA_s")):
                rows.append(_make_row(f"{name}, {label}" + (", compiled" if compile_row else ""), net, device,
                                      psa=psa, amp=row_amp, compiled=compile_row))
    if extra and precisions:
        row_amp = "none" if precisions[-1] == "fp32" else amp
        label = "fp32" if row_amp == "none" else amp
        rows.append(_make_row(f"PSA_p straightforward, {label}", net, device, psa="parallel", amp=row_amp,
                              reference=True))
        rows.append(_make_row(f"PSA_p unfused Adam, {label}", net, device, psa="parallel", amp=row_amp,
                              fused=False))
    return rows


def _time_rows(rows: list[Row], net: Net, device: torch.device, args) -> None:
    g = torch.Generator().manual_seed(0)
    images = torch.randn(net.batch, 3, net.height, net.width, generator=g).to(device)
    probe = rows[0].model(images[:1])
    target = torch.rand(net.batch, *probe.shape[1:], generator=g).to(device)
    weight = torch.ones(net.batch, probe.shape[1], 1, device=device)
    criterion = JointsMSELoss(use_target_weight=True)
    for i in range(args.warmup):
        for row in rows:
            t0 = time.perf_counter()
            _step(row, images, target, weight, criterion)
            if i == 0 and row.forward is not row.model:
                print(f"{row.name}: compiled in {time.perf_counter() - t0:.0f} s (first step)", flush=True)
    for r in range(args.reps):
        for row in rows[r % len(rows):] + rows[:r % len(rows)]:
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            _sync(device)
            t0 = time.perf_counter()
            for _ in range(args.steps):
                _step(row, images, target, weight, criterion)
            _sync(device)
            row.times.append((time.perf_counter() - t0) / args.steps)
            if device.type == "cuda":
                row.peak_bytes = max(row.peak_bytes, torch.cuda.max_memory_allocated(device))


def _print_table(net: Net, rows: list[Row], device: torch.device) -> None:
    base = statistics.median(rows[0].times)
    baselines = {row.baseline_key: statistics.median(row.times) for row in rows if row.name.startswith("baseline")}
    mem = device.type == "cuda"
    print(f"\n{net.arch}, batch {net.batch}, {net.width}x{net.height}:")
    print(f"{'row':<34}{'params (M)':>11}{'median step s':>15}{'samples/s':>11}{'time / first':>14}"
          f"{'/ baseline':>12}{'min..max s':>16}" + (f"{'peak GiB':>10}" if mem else ""))
    for row in rows:
        med = statistics.median(row.times)
        to_baseline = med / baselines[row.baseline_key]
        print(f"{row.name:<34}{count_params(row.model) / 1e6:>11.2f}{med:>15.4f}{net.batch / med:>11.1f}"
              f"{med / base:>13.3f}x{to_baseline:>11.3f}x{min(row.times):>8.4f}..{max(row.times):.4f}"
              + (f"{row.peak_bytes / 2**30:>10.2f}" if mem else ""))


def main(args: argparse.Namespace) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    nets = parse_nets(args.nets)
    amp = resolve_amp("auto", device)
    amp_name = {"bf16": "bf16 autocast", "fp16": "fp16 autocast"}.get(amp, "fp32")
    precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    unknown = sorted(set(precisions) - {"fp32", "amp"})
    if unknown:
        raise SystemExit(f"--precisions: unknown {', '.join(unknown)} (valid: fp32, amp)")
    if "amp" in precisions and amp == "none":
        print("note: train.amp=auto resolves to fp32 on this device; the 'amp' rows are left out")
        precisions.remove("amp")
    print(describe())
    apply_cpu_malloc(args)
    print(f"settings: nets={args.nets} device={device} mixed precision=train.amp=auto -> {amp_name} + "
          f"channels_last | reps={args.reps} steps/round={args.steps} warmup={args.warmup} compile={args.compile}")
    for i, net in enumerate(nets):
        rows = _build_rows(net, device, precisions, amp, extra=i == 0 and not args.no_extra, compiled=args.compile)
        if i == 0:
            kind = "fused Adam" if rows and rows[0].optimizer.defaults.get("fused") else "per-tensor Adam"
            print(f"optimizer: {kind} (as tools/train.py builds it)")
        _time_rows(rows, net, device, args)
        _print_table(net, rows, device)
        del rows


if __name__ == "__main__":
    main(get_args_parser().parse_args())

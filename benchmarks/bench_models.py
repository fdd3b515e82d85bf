"""Forward throughput: baseline vs +PSA_p vs +PSA_s (fast path) vs +PSA_p (straightforward path).

    python benchmarks/bench_models.py                       # hrnet_w32, batch 8, 256x192, CPU, fp32 + bf16
    python benchmarks/bench_models.py --arch resnet50 --batch 4 --reps 9
    python benchmarks/bench_models.py --psa-variant official --device cuda
    python benchmarks/bench_models.py --compile             # + compiled rows (minutes to compile)

Precisions: 'fp32' (NCHW, no autocast) and 'bf16' (bf16 autocast and channels_last, what
tools/test.py does where the CPU has bf16 units); bf16 is left out where ``train.amp=auto`` would
not choose it (a CPU without bf16 units emulates it, slower than fp32).

All networks are built once and timed in interleaved rounds (the order rotates each round), so
load from other processes hits them alike; the median per network is reported, with images/s and
the time ratio to the baseline of the same precision. The fast and straightforward PSA_p share
weights and their outputs are compared.

Why PSA costs what it costs: the 'map pass' row times one elementwise pass (read a map, write
one) over every map a PSA module of the network sees, at the same precision and layout. PSA's
extra time over the baseline is printed in units of that pass, next to the passes over the map
that the fast path makes (the ideal if memory traffic were all that mattered) and its number of
modules (each also pays a fixed cost per call: the C-vector work and the operator dispatch).

``--compile`` adds the three networks as ``test.compile=true`` runs them (inductor with frozen
weights, :class:`pose.runtime.FrozenNetwork`), each compiled before the timed rounds, and prints
PSA's ratio to the compiled baseline.
"""

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from machine import add_cpu_malloc_option, apply_cpu_malloc, describe

from pose.models import PolarizedSelfAttention, count_params, create_model
from pose.runtime import FrozenNetwork, amp_autocast, resolve_amp

# Map-sized memory traffic of the fast forward (pose/models/psa.py), in units of one elementwise
# pass (a map read, a map written): x is read four times (the query row, the two pooled columns,
# the spatial dot product, the output product), the gate is written and read, the output written:
# seven map-sized transfers, three and a half passes. What PSA costs beyond that is per-call work.
FAST_PATH_PASSES = 3.5


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--arch", default="hrnet_w32")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--input-size", type=int, nargs=2, default=(192, 256), metavar=("W", "H"))
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: leave the default)")
    p.add_argument("--reps", type=int, default=7, help="timed rounds (each times every network once)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--precisions", default="fp32,bf16", help="comma-separated: fp32, bf16")
    p.add_argument("--psa-variant", default="paper", choices=("paper", "official"))
    p.add_argument("--placement", default="all", choices=("all", "basic"))
    p.add_argument("--no-reference", action="store_true", help="skip the (slow) straightforward PSA_p")
    p.add_argument("--compile", action="store_true",
                   help="also time the three compiled as test.compile=true does (inductor with frozen weights; "
                        "compiling takes minutes)")
    add_cpu_malloc_option(p)
    return p


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _psa_inputs(model: torch.nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """The input of every PSA module of ``model`` on ``x`` (one forward), as it sees it."""
    seen: list[torch.Tensor] = []
    hooks = [m.register_forward_pre_hook(lambda _m, inp: seen.append(inp[0].clone()))
             for m in model.modules() if isinstance(m, PolarizedSelfAttention)]
    try:
        model(x)
    finally:
        for h in hooks:
            h.remove()
    return seen


def _map_pass(maps: list[torch.Tensor]) -> Callable[[], None]:
    """One elementwise pass over each map: read it, write a map of the same size and layout."""
    outs = [torch.empty_like(m) for m in maps]

    def run() -> None:
        for m, o in zip(maps, outs):
            torch.mul(m, 1.0, out=o)
    return run


def _networks(args, device: torch.device, x: torch.Tensor,
              channels_last: bool) -> dict[str, torch.nn.Module | FrozenNetwork]:
    def make(psa: str) -> torch.nn.Module:
        torch.manual_seed(0)
        # PyTorch's default init (init_std=0): activations of a sane scale. The official N(0, 0.001)
        # init shrinks them layer by layer into float32 denormals, which are slow on x86 CPUs and
        # would time something no trained network does.
        m = create_model(args.arch, psa=psa, psa_variant=args.psa_variant, psa_placement=args.placement,
                         init_std=0.0).eval().to(device)
        return m.to(memory_format=torch.channels_last) if channels_last else m

    models = {"baseline": make("none"), "PSA_p": make("parallel"), "PSA_s": make("sequential")}
    if not args.no_reference:
        ref = make("parallel")
        ref.load_state_dict(models["PSA_p"].state_dict())
        for m in ref.modules():
            if isinstance(m, PolarizedSelfAttention):
                m.reference = True
        models["PSA_p (straightforward)"] = ref
    if args.compile:
        for name in ("baseline", "PSA_p", "PSA_s"):
            t0 = time.perf_counter()
            models[f"{name}, compiled"] = compiled = FrozenNetwork(models[name], (len(x),))
            compiled(x)
            print(f"compiled {name} in {time.perf_counter() - t0:.0f} s", flush=True)
    return models


def _time_rows(rows: dict[str, Callable[[], object]], args, device: torch.device) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in rows}
    names = list(rows)
    for _ in range(args.warmup):
        for f in rows.values():
            f()
    for r in range(args.reps):
        for name in names[r % len(names):] + names[:r % len(names)]:
            _sync(device)
            t0 = time.perf_counter()
            rows[name]()
            _sync(device)
            times[name].append(time.perf_counter() - t0)
    return times


def run_precision(args, device: torch.device, prec: str, amp: str) -> None:
    w, h = args.input_size
    channels_last = prec != "fp32"
    x = torch.randn(args.batch, 3, h, w, device=device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode(), amp_autocast(device, "none" if prec == "fp32" else amp):
        models = _networks(args, device, x, channels_last)
        if "PSA_p (straightforward)" in models:
            fast, slow = models["PSA_p"](x).float(), models["PSA_p (straightforward)"](x).float()
            print(f"{prec}: heatmaps: max |fast - straightforward PSA_p| = {(fast - slow).abs().max():.3g} "
                  f"(heatmap std {slow.std():.3g})")
        maps = _psa_inputs(models["PSA_p"], x)
        rows: dict[str, Callable[[], object]] = {name: (lambda m=m: m(x)) for name, m in models.items()}
        rows["map pass (all PSA inputs)"] = _map_pass(maps)
        times = _time_rows(rows, args, device)

    base, base_min = statistics.median(times["baseline"]), min(times["baseline"])
    print(f"\n{prec}{' + channels_last' if channels_last else ''}: {len(maps)} PSA modules, "
          f"{sum(m.numel() for m in maps) * maps[0].element_size() / 2**20:.1f} MiB of PSA input maps")
    print(f"{'network':<28}{'params (M)':>11}{'median s':>10}{'img/s':>8}{'time / baseline':>17}"
          f"{'min..max s':>16}{'min / min':>11}")
    for name, ts in times.items():
        med = statistics.median(ts)
        model = name in models
        net = models[name].net if isinstance(models.get(name), FrozenNetwork) else models.get(name)
        params = f"{count_params(net) / 1e6:>11.2f}" if model else f"{'':>11}"
        ips = f"{args.batch / med:>8.2f}" if model else f"{'':>8}"
        print(f"{name:<28}{params}{med:>10.4f}{ips}{med / base:>16.3f}x"
              f"{min(ts):>8.4f}..{max(ts):.4f}{min(ts) / base_min:>10.3f}x")
    one_pass = statistics.median(times["map pass (all PSA inputs)"])
    for name in ("PSA_p", "PSA_s"):
        extra = statistics.median(times[name]) - base
        print(f"{name} adds {extra * 1e3:.1f} ms = {extra / one_pass:.1f} passes over its input maps "
              f"(its memory traffic alone: {FAST_PATH_PASSES}), {extra / len(maps) * 1e6:.0f} us per module")
    if "baseline, compiled" in times:
        compiled_base = statistics.median(times["baseline, compiled"])
        ratios = {name: statistics.median(times[f"{name}, compiled"]) / compiled_base for name in ("PSA_p", "PSA_s")}
        print("compiled: " + ", ".join(f"{name} / baseline {r:.3f}x" for name, r in ratios.items())
              + f" (the compiled baseline {base / compiled_base:.2f}x as fast as eager)")


def main(args: argparse.Namespace) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    w, h = args.input_size
    print(describe())
    apply_cpu_malloc(args)
    precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    unknown = sorted(set(precisions) - {"fp32", "bf16"})
    if unknown:
        raise SystemExit(f"--precisions: unknown {', '.join(unknown)} (valid: fp32, bf16)")
    amp = resolve_amp("auto", device)
    if "bf16" in precisions and amp != "bf16":
        print(f"note: train.amp=auto resolves to {amp} on this device; the bf16 rows are left out")
        precisions.remove("bf16")
    print(f"settings: arch={args.arch} batch={args.batch} input={w}x{h} device={device} eval inference_mode "
          f"psa_variant={args.psa_variant} placement={args.placement} reps={args.reps} warmup={args.warmup} "
          f"compile={args.compile}")
    for prec in precisions:
        run_precision(args, device, prec, amp)
    print("(time / baseline: ratio of medians at the same precision; min / min: ratio of the fastest rounds, "
          "the least disturbed by other processes)")


if __name__ == "__main__":
    main(get_args_parser().parse_args())

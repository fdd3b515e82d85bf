"""Forward throughput: baseline vs +PSA_p vs +PSA_s (fast path) vs +PSA_p (straightforward path).

    python benchmarks/bench_models.py                       # hrnet_w32, batch 8, 256x192, CPU
    python benchmarks/bench_models.py --arch resnet50 --batch 4 --reps 9
    python benchmarks/bench_models.py --psa-variant official --device cuda

All networks are built once and timed in interleaved rounds (the order rotates each round), so
load from other processes hits them alike; the median per network is reported, with images/s and
the time ratio to the baseline. The fast and straightforward PSA_p share weights and their outputs
are compared.
"""

import argparse
import os
import platform
import statistics
import time

import torch

from pose.models import PolarizedSelfAttention, count_params, create_model


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--arch", default="hrnet_w32")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--input-size", type=int, nargs=2, default=(192, 256), metavar=("W", "H"))
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: leave the default)")
    p.add_argument("--reps", type=int, default=7, help="timed rounds (each times every network once)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--psa-variant", default="paper", choices=("paper", "official"))
    p.add_argument("--placement", default="all", choices=("all", "basic"))
    p.add_argument("--no-reference", action="store_true", help="skip the (slow) straightforward PSA_p")
    return p


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(args: argparse.Namespace) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    w, h = args.input_size
    gpu = f" | {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ""
    print(f"machine: {platform.platform()} | {platform.processor() or platform.machine()} | "
          f"cpu_count={os.cpu_count()} | torch {torch.__version__} | threads={torch.get_num_threads()}{gpu}")
    print(f"settings: arch={args.arch} batch={args.batch} input={w}x{h} device={device} fp32 eval no_grad "
          f"psa_variant={args.psa_variant} placement={args.placement} reps={args.reps} warmup={args.warmup}")

    def make(psa: str) -> torch.nn.Module:
        torch.manual_seed(0)
        # PyTorch's default init (init_std=0): activations of a sane scale. The official N(0, 0.001)
        # init shrinks them layer by layer into float32 denormals, which are slow on x86 CPUs and
        # would time something no trained network does.
        return create_model(args.arch, psa=psa, psa_variant=args.psa_variant, psa_placement=args.placement,
                            init_std=0.0)

    models = {"baseline": make("none"), "PSA_p": make("parallel"), "PSA_s": make("sequential")}
    if not args.no_reference:
        ref = make("parallel")
        ref.load_state_dict(models["PSA_p"].state_dict())
        for m in ref.modules():
            if isinstance(m, PolarizedSelfAttention):
                m.reference = True
        models["PSA_p (straightforward)"] = ref
    for m in models.values():
        m.eval().to(device)
    x = torch.randn(args.batch, 3, h, w, device=device)

    times: dict[str, list[float]] = {name: [] for name in models}
    names = list(models)
    with torch.inference_mode():
        if "PSA_p (straightforward)" in models:
            fast, slow = models["PSA_p"](x), models["PSA_p (straightforward)"](x)
            diff = (fast - slow).abs().max().item()
            print(f"heatmaps: max |fast - straightforward PSA_p| = {diff:.3g} (heatmap std {slow.std():.3g})")
        for _ in range(args.warmup):
            for m in models.values():
                m(x)
        for r in range(args.reps):
            for name in names[r % len(names):] + names[:r % len(names)]:
                _sync(device)
                t0 = time.perf_counter()
                models[name](x)
                _sync(device)
                times[name].append(time.perf_counter() - t0)

    base, base_min = statistics.median(times["baseline"]), min(times["baseline"])
    print(f"\n{'network':<26}{'params (M)':>11}{'median s':>10}{'img/s':>8}{'time / baseline':>17}"
          f"{'min..max s':>16}{'min / min':>11}")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"{name:<26}{count_params(models[name]) / 1e6:>11.2f}{med:>10.3f}{args.batch / med:>8.2f}"
              f"{med / base:>16.3f}x{min(ts):>8.3f}..{max(ts):.3f}{min(ts) / base_min:>10.3f}x")
    print("(time / baseline: ratio of medians; min / min: ratio of the fastest rounds, the least disturbed "
          "by other processes)")


if __name__ == "__main__":
    main(get_args_parser().parse_args())

"""Run the benchmarks and write docs/benchmarks.md from their own output.

    python benchmarks/run_all.py                      # every benchmark but the long ones
    python benchmarks/run_all.py bench_models bench_eval
    python benchmarks/run_all.py bench_psa_ablation   # long ones run only when named
    python benchmarks/run_all.py --render             # rebuild the page from the stored outputs
    python benchmarks/run_all.py --list

Each run's output is stored verbatim, with its command, date and commit, under
``docs/benchmarks/<machine>/<benchmark>.json``, one folder per kind of machine
(:func:`machine.machine_key`: CPU model, bf16 units, cores, GPU). The page shows every stored
output, grouped by benchmark, then by machine: a rerun on the same kind of machine replaces that
machine's entry, a run on another kind adds one, so figures from different machines stand side by
side instead of contradicting each other.
"""

import argparse
import datetime
import json
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from machine import machine_key

from pose.atomic_io import atomic_write_bytes

ROOT = Path(__file__).resolve().parent.parent
STORE = ROOT / "docs" / "benchmarks"
PAGE = ROOT / "docs" / "benchmarks.md"


@dataclass(frozen=True)
class Benchmark:
    name: str
    title: str
    args: tuple[str, ...] = ()
    long: bool = False  # run only when named
    program: str = ""  # the script's name when it differs from ``name`` (a script run with other args)

    @property
    def script(self) -> Path:
        return ROOT / "benchmarks" / f"{self.program or self.name}.py"

    @property
    def command(self) -> str:
        return " ".join(["python", f"benchmarks/{self.program or self.name}.py", *self.args])


# In the order the page shows them.
BENCHMARKS: tuple[Benchmark, ...] = (
    Benchmark("bench_models", "PSA cost: forward pass (HRNet-W32 with and without PSA)"),
    Benchmark("bench_train_step", "PSA cost: training step"),
    Benchmark("bench_infer", "CPU inference backends (HRNet-W32 + PSA_p)"),
    Benchmark("bench_malloc", "Freed CPU memory kept for reuse (cpu_malloc=retain) or returned (system)"),
    Benchmark("bench_data", "Training data pipeline per loading process"),
    Benchmark("bench_eval", "Evaluation post-processing at val2017 scale", ("--naive-fraction", "0.2")),
    Benchmark("bench_psa_ablation", "PSA ablation on the synthetic data (trains three networks)", long=True),
    # Compiled rows: minutes of compiling per network, so run by name.
    Benchmark("bench_models_compiled", "PSA cost: forward pass, eager and compiled (test.compile=true)",
              ("--compile", "--no-reference"), long=True, program="bench_models"),
    Benchmark("bench_train_step_compiled", "PSA cost: training step of the demo network, eager and compiled "
              "(train.compile=true)", ("--compile", "--nets", "hrnet_small:16:96x128", "--no-extra"), long=True,
              program="bench_train_step"),
)


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
        return out + ("+changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def run(bench: Benchmark, key: str) -> bool:
    """Run one benchmark (its output streams to the terminal too); store it if it succeeded."""
    print(f"== {bench.command}", flush=True)
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(bench.script), *bench.args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in proc.stdout:
        sys.stdout.write(line)
        lines.append(line)
    if proc.wait() != 0:
        print(f"!! {bench.name} failed (exit {proc.returncode}); its previous entry is kept", flush=True)
        return False
    record = {"benchmark": bench.name, "command": bench.command, "machine": key,
              "date": datetime.date.today().isoformat(), "commit": git_commit(),
              "seconds": round(time.perf_counter() - start, 1), "output": "".join(lines).rstrip("\n")}
    atomic_write_bytes(STORE / slug(key) / f"{bench.name}.json", json.dumps(record, indent=1).encode())
    return True


def load_records() -> list[dict]:
    records = []
    for path in sorted(STORE.glob("*/*.json")):
        try:
            records.append(json.loads(path.read_text()))
        except (OSError, ValueError) as exc:
            raise SystemExit(f"{path}: not a stored benchmark output ({exc}); delete it or run again") from None
    return records


def render(records: list[dict]) -> str:
    out = ["# Benchmarks", "",
           "Written by `python benchmarks/run_all.py` from the benchmarks' own output; do not edit by hand.",
           "Each benchmark measures the compared methods side by side in one run (interleaved rounds,",
           "medians), since machines are shared; ratios are the figures to compare across machines.",
           "Each entry names the machine it ran on (CPU model, whether it has AMX or AVX512-BF16 units,",
           "cores), the date and the commit. Rerun one with `python benchmarks/run_all.py <name>`.", ""]
    for bench in BENCHMARKS:
        mine = sorted((r for r in records if r.get("benchmark") == bench.name), key=lambda r: r["machine"])
        out += [f"## {bench.title}", "", f"`{bench.command}`" + (" (long: run by name)" if bench.long else ""), ""]
        if not mine:
            out += ["Not run yet on any machine.", ""]
        for r in mine:
            out += [f"### {r['machine']}", "",
                    f"{r['date']}, commit {r['commit']}, {r['seconds']:.0f} s", "", "```", r["output"], "```", ""]
    return "\n".join(out)


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("names", nargs="*", help="benchmarks to run (default: all but the long ones)")
    p.add_argument("--render", action="store_true", help="only rebuild the page from stored outputs")
    p.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    return p


def main(args: argparse.Namespace) -> int:
    known = {b.name: b for b in BENCHMARKS}
    if args.list:
        for b in BENCHMARKS:
            print(f"{b.name:<20} {b.title}{'  [long]' if b.long else ''}")
        return 0
    unknown = [n for n in args.names if n not in known]
    if unknown:
        raise SystemExit(f"unknown benchmark {unknown[0]!r} (known: {', '.join(known)})")
    failed = []
    if not args.render:
        chosen = [known[n] for n in args.names] or [b for b in BENCHMARKS if not b.long]
        key = machine_key()
        for bench in chosen:
            if not bench.script.is_file():
                print(f"!! {bench.script} does not exist; skipped")
                failed.append(bench.name)
            elif not run(bench, key):
                failed.append(bench.name)
    atomic_write_bytes(PAGE, render(load_records()).encode())
    print(f"wrote {PAGE.relative_to(ROOT)}" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))

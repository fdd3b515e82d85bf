"""What machine a benchmark ran on: CPU model, its bf16 units, cores, library versions, GPU.

Every benchmark prints :func:`describe` first, and ``benchmarks/run_all.py`` files each output
under :func:`machine_key`, so a figure is never separated from the machine it came from.
"""

import argparse
import os
import platform
import re

import numpy as np
import torch

from pose.runtime import CPU_MALLOC_CHOICES, configure_cpu_malloc


def _cpuinfo() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def cpu_model() -> str:
    """The CPU's marketing name ('AMD EPYC', 'Intel(R) Xeon(R) Platinum 8488C'), or the architecture."""
    m = re.search(r"^model name\s*:\s*(.+)$", _cpuinfo(), re.MULTILINE)
    return re.sub(r"\s+", " ", m.group(1)).strip() if m else (platform.processor() or platform.machine())


def bf16_units() -> str:
    """'AMX', 'AVX512-BF16' or 'none': the CPU's bf16 matrix units (what makes CPU bf16 autocast pay)."""
    flags = set(re.findall(r"[a-z0-9_]+", " ".join(re.findall(r"^flags\s*:(.*)$", _cpuinfo(), re.MULTILINE))))
    if "amx_bf16" in flags or "amx_tile" in flags:
        return "AMX"
    if "avx512_bf16" in flags:
        return "AVX512-BF16"
    return "none"


def gpu_name() -> str:
    return torch.cuda.get_device_name() if torch.cuda.is_available() else ""


def machine_key() -> str:
    """A short stable label for this kind of machine: CPU model, bf16 units, cores (and the GPU)."""
    parts = [cpu_model(), f"bf16 units: {bf16_units()}", f"{os.cpu_count()} cores"]
    if gpu_name():
        parts.append(gpu_name())
    return ", ".join(parts)


def describe() -> str:
    """One line naming the machine and library versions, printed first by every benchmark."""
    gpu = f" | GPU {gpu_name()}" if gpu_name() else ""
    return (f"machine: {cpu_model()} (bf16 units: {bf16_units()}) | {os.cpu_count()} cores | "
            f"{platform.system()} {platform.machine()} | python {platform.python_version()} | "
            f"torch {torch.__version__} (threads {torch.get_num_threads()}) | numpy {np.__version__}{gpu}")


def add_cpu_malloc_option(parser: argparse.ArgumentParser) -> None:
    """``--cpu-malloc``: the ``cpu_malloc`` setting the tools use (benchmarks/bench_malloc.py
    compares the two)."""
    parser.add_argument("--cpu-malloc", default="retain", choices=CPU_MALLOC_CHOICES,
                        help="freed CPU memory kept for reuse (retain, as tools/train.py does) or the C "
                             "library's defaults (system)")


def apply_cpu_malloc(args: argparse.Namespace) -> None:
    """Apply ``--cpu-malloc`` to this process and print what was done."""
    print(configure_cpu_malloc(args.cpu_malloc))


if __name__ == "__main__":
    print(describe())
    print(f"key: {machine_key()}")

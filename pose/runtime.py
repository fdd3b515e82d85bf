"""Where and how a network runs: device, processes, precision and compilation.

One home for what the trainer, the tester, the evaluator and the predictor all need:

* :func:`resolve_device`: ``'auto'`` is CUDA when available, else the CPU;
* :func:`init_distributed`, :func:`rank`, :func:`world_size` and the collectives: torchrun's
  processes (one per GPU with NCCL, or gloo processes on CPU). Without torchrun (no
  ``WORLD_SIZE``, or 1) everything works in one process: rank 0 of 1, collectives return their input;
* :func:`resolve_amp` and :func:`amp_autocast`: the ``amp`` setting and its autocast context;
* :func:`resolve_compile` and :func:`compile_model`: ``train.compile`` (``torch.compile`` with
  inductor); :class:`FrozenNetwork`: ``test.compile``, a network compiled for inference;
* :func:`configure_cpu_malloc`: ``cpu_malloc``, whether freed tensor memory stays in the process.

A failing rank must not leave the others waiting. Three mechanisms together:

* torchrun's elastic agent watches its workers; when one exits non-zero it terminates the
  others (SIGTERM, then SIGKILL) and reports the failing rank with its traceback;
* the process group is created with a timeout (``timeout_s``, default 600 s, or the environment
  variable ``POSE_DIST_TIMEOUT``), so a collective whose peer vanished raises instead of hanging
  (with gloo a closed peer connection raises at once);
* :func:`describe_failure` prefixes the error a rank raises with its rank, so the log names it.
"""

import contextlib
import ctypes
import datetime
import logging
import os
import sys
import warnings
from collections.abc import Sequence

import torch
import torch.distributed as dist
from torch import nn

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 600.0

__all__ = ["AMP_DTYPES", "CPU_MALLOC_CHOICES", "FrozenNetwork", "all_mean", "amp_autocast", "any_rank", "barrier",
           "cleanup", "compile_backend_error", "compile_model", "configure_cpu_malloc", "describe_failure",
           "flags_any", "flags_by_rank", "init_distributed", "is_distributed", "is_main", "local_rank",
           "power_of_two_sizes", "rank", "resolve_amp", "resolve_compile", "resolve_device", "world_size"]

# Resolved amp values and their autocast dtypes.
AMP_DTYPES = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}


# --- device -------------------------------------------------------------------------------------------
def resolve_device(device: str | torch.device) -> torch.device:
    """``'auto'``: CUDA when available, else the CPU; any other name as ``torch.device`` reads it."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


# --- precision ----------------------------------------------------------------------------------------
def _cpu_has_bf16_units() -> bool:
    """Whether this CPU multiplies bf16 matrices in hardware (AMX or AVX512-BF16), where bf16
    autocast is faster than fp32; elsewhere it is emulated and slower."""
    probes = [getattr(torch.cpu, name, None) for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported")]
    probes = [p for p in probes if p is not None]
    if probes:  # PyTorch's own check (it also knows whether the OS enabled AMX)
        return any(p() for p in probes)
    try:  # a PyTorch without those probes: the CPU's flags
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            flags = f.read()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def resolve_amp(amp: str, device: torch.device) -> str:
    """``amp``: 'auto' becomes 'bf16' on a CUDA device that supports it or a CPU with bf16
    matrix units (AMX, AVX512-BF16), else 'none'; other values are returned as they are."""
    if amp != "auto":
        return amp
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "none"
    return "bf16" if device.type == "cpu" and _cpu_has_bf16_units() else "none"


def amp_autocast(device: torch.device, amp: str):
    """The autocast context for a resolved ``amp`` ('none': a no-op context)."""
    if amp not in AMP_DTYPES:
        raise ValueError(f"unknown amp {amp!r}; valid: {', '.join(AMP_DTYPES)}")
    dtype = AMP_DTYPES[amp]
    return contextlib.nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


# --- compilation --------------------------------------------------------------------------------------
def compile_backend_error(device: torch.device) -> str | None:
    """None when inductor compiles and runs a small function on ``device``, else the reason it
    cannot (no C++ compiler for the CPU, no Triton for the GPU, a broken tool chain).

    The real thing is tried rather than looked for, because a compiler that is present can still
    fail (missing headers, no OpenMP). Inductor caches its output, so a later call costs little.
    """
    def probe(x: torch.Tensor) -> torch.Tensor:
        return torch.sin(x * 2.0) + 1.0

    try:
        compiled = torch.compile(probe, backend="inductor", dynamic=False)
        x = torch.linspace(0.0, 1.0, 8, device=device)
        if not torch.allclose(compiled(x), probe(x)):
            return "inductor's test function returned wrong values"
    except Exception as exc:  # whatever the backend raised: the caller falls back to eager
        return _first_line(exc)
    return None


def _first_line(exc: BaseException) -> str:
    """``Type: first line of the message``: inductor's errors run to pages of generated code."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": ")


def resolve_compile(setting: str, device: torch.device, *, deterministic: bool,
                    key: str = "train.compile") -> tuple[bool, str]:
    """``train.compile`` (or the setting ``key`` names) -> (compile?, why), checking that the backend
    works where compiling is asked.

    'false': never. 'true': always, unless inductor cannot run on ``device`` (the reason is
    returned, for one warning). 'auto': only on CUDA (Triton kernels; compiling pays for itself
    within minutes) and not with ``deterministic`` (the exact-resume guarantee is given for
    eager runs); on a CPU compiling the training step costs minutes of a few cores, more than a
    short run gains, so 'auto' stays eager there.
    """
    if setting not in ("auto", "true", "false"):
        raise ValueError(f"unknown {key} {setting!r}; valid: auto, true, false")
    if setting == "false":
        return False, f"{key}=false"
    if setting == "auto" and (device.type != "cuda" or deterministic):
        return False, (f"{key}=auto: eager with train.deterministic=true" if deterministic
                       else f"{key}=auto: eager on {device.type}")
    error = compile_backend_error(device)
    if error is not None:
        return False, f"torch.compile cannot run on {device.type} here ({error})"
    return True, f"{key}={setting}"


def compile_model(net: nn.Module) -> nn.Module:
    """``net`` compiled by inductor for training (the caller keeps the uncompiled module for its
    state_dict and for evaluation). Shapes are static: one graph for full batches, one for a short
    last batch, each compiled once per run."""
    return torch.compile(net, backend="inductor", dynamic=False)


class FrozenNetwork:
    """``net`` compiled by inductor for inference with its weights frozen into the compiled code
    (inductor's ``freezing``: BatchNorm folded into the convolutions, convolution weights packed
    once for oneDNN, elementwise steps fused), called like the network.

    Shapes are static (freezing does not compile a dynamic batch), so a batch of ``n`` is padded
    with zero images to the smallest of ``batch_sizes`` that holds it and the padding's outputs are
    dropped: each size compiles once, on its first use (minutes for an HRNet on a few CPU cores),
    and evaluation-mode networks treat the images of a batch independently, so the padding changes
    nothing. Weights changed after the first call are not seen: build a new one. Call it under
    ``torch.inference_mode`` (or ``no_grad``) and the autocast the network is meant to run in.

    A size whose compilation fails (inductor cannot lower something, the C++ compiler fails on the
    real graph where it passed :func:`compile_backend_error`'s probe) runs eagerly from then on,
    after one warning naming the error, rather than ending a long evaluation.
    """

    def __init__(self, net: nn.Module, batch_sizes: Sequence[int]) -> None:
        sizes = sorted({int(s) for s in batch_sizes})
        if not sizes or sizes[0] < 1:
            raise ValueError(f"batch_sizes must be positive sizes, got {list(batch_sizes)}")
        if net.training:
            raise ValueError("FrozenNetwork compiles for inference: put the network in eval mode first")
        self.net = net
        self.batch_sizes = tuple(sizes)
        self._compiled = torch.compile(net, backend="inductor", dynamic=False, options={"freezing": True})
        self._ran: set[int] = set()  # sizes that ran compiled
        self._eager: set[int] = set()  # sizes whose compilation failed

    def padded_size(self, n: int) -> int:
        """The compiled batch size that a batch of ``n`` is padded to."""
        for size in self.batch_sizes:
            if size >= n:
                return size
        raise ValueError(f"a batch of {n} is more than the largest compiled batch size {self.batch_sizes[-1]}")

    def __call__(self, images: torch.Tensor):
        n = images.shape[0]
        size = self.padded_size(n)
        if size > n:
            fmt = (torch.channels_last if images.dim() == 4 and not images.is_contiguous()
                   and images.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format)
            images = torch.cat([images, images.new_zeros((size - n, *images.shape[1:]))])
            images = images.contiguous(memory_format=fmt)
        elif torch.is_inference_mode_enabled() and not images.is_inference():
            # Padding makes inference tensors under inference_mode, and the compiled graph is
            # guarded on the kind: one kind for every batch keeps it to one compilation per size.
            images = images.clone()
        out = self._run(images, size)
        if size == n:
            return out
        return out[:n] if isinstance(out, torch.Tensor) else type(out)(o[:n] for o in out)

    def _run(self, images: torch.Tensor, size: int):
        if size in self._eager:
            return self.net(images)
        try:
            out = self._compiled(images)
        except Exception as exc:  # whatever inductor raised; a size that ran before is not compiling
            if size in self._ran:
                raise
            warnings.warn(f"compiling the network for batches of {size} failed ({_first_line(exc)}); "
                          "running it eagerly", RuntimeWarning, stacklevel=3)
            self._eager.add(size)
            return self.net(images)
        self._ran.add(size)
        return out


def power_of_two_sizes(largest: int, most: int = 6) -> tuple[int, ...]:
    """Powers of two below ``largest``, and ``largest``, at most ``most`` of them (the largest
    ones): batch sizes for :class:`FrozenNetwork` where batches of any size come (a predictor's
    people per image), so that few sizes compile and a batch is padded to less than twice its
    size (more for the smallest batches when ``most`` cuts). ``most`` stays under dynamo's
    recompile limit (8 graphs per function), past which it would silently run eagerly."""
    sizes = [1 << i for i in range(max(int(largest), 1).bit_length()) if 1 << i < largest]
    return (*sizes, int(largest))[-max(int(most), 1):]


# --- CPU memory ---------------------------------------------------------------------------------------
CPU_MALLOC_CHOICES = ("retain", "system")
# mallopt parameters (glibc's malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
# Largest value mallopt takes for the trim threshold (an int).
_INT_MAX = 2**31 - 1


def _glibc():
    """The C library when it is glibc (mallopt with glibc's meaning), else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version.restype = ctypes.c_char_p
        libc.gnu_get_libc_version()
        libc.mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
        return libc
    except (OSError, AttributeError):  # musl or another C library
        return None


def configure_cpu_malloc(setting: str) -> str:
    """Apply ``cpu_malloc`` to this process; returns what was done, for the log.

    'retain': freed tensor memory stays in the process for the next tensor. glibc's malloc
    serves every block over its mmap threshold (128 KiB, raised as it sees larger frees, at most
    32 MiB) with fresh pages from the kernel and returns them when the block is freed; it also
    returns its heap's free top beyond 128 KiB. A network allocates and frees feature maps of
    the same sizes in every layer, so without this each new map is zero-filled page by page on
    first touch, a cost of the order of another pass over the map. With mmap for allocations
    off and trimming off, freed blocks are reused: resident memory stays at its peak between steps, as PyTorch's
    CUDA caching allocator does on GPUs. Processes started later (data loader workers) inherit it.
    'system': the C library's defaults. Where the C library is not glibc, or another allocator
    is preloaded (jemalloc and tcmalloc keep memory on their own), nothing is changed.
    """
    if setting not in CPU_MALLOC_CHOICES:
        raise ValueError(f"unknown cpu_malloc {setting!r}; valid: {', '.join(CPU_MALLOC_CHOICES)}")
    if setting == "system":
        return "cpu_malloc=system: the C library's defaults"
    preloaded = os.environ.get("LD_PRELOAD", "")
    if "jemalloc" in preloaded or "tcmalloc" in preloaded:
        return f"cpu_malloc=retain: left to the preloaded allocator ({preloaded})"
    libc = _glibc()
    if libc is None:
        return "cpu_malloc=retain: not glibc, the C library's defaults kept"
    if not (libc.mallopt(_M_TRIM_THRESHOLD, _INT_MAX) and libc.mallopt(_M_MMAP_MAX, 0)):
        return "cpu_malloc=retain: glibc refused mallopt, its defaults kept"
    return "cpu_malloc=retain: freed memory is kept for reuse (glibc: no mmap per block, no trimming)"


# --- processes ----------------------------------------------------------------------------------------
def init_distributed(device: str | torch.device = "auto",
                     timeout_s: float | None = None) -> tuple[torch.device, int, int]:
    """Initialise the process group when launched by torchrun (``WORLD_SIZE`` > 1).

    Returns (device, rank, world_size). On CUDA each process takes ``cuda:LOCAL_RANK`` and the
    NCCL backend; on CPU the gloo backend. Reads ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
    ``MASTER_ADDR``, ``MASTER_PORT`` (set by torchrun). A process group that exists already is kept.
    """
    dev = resolve_device(device)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return dev, 0, 1
    if not dist.is_available():
        raise RuntimeError(f"WORLD_SIZE={world} but this PyTorch build has no torch.distributed")
    if timeout_s is None:
        timeout_s = float(os.environ.get("POSE_DIST_TIMEOUT", DEFAULT_TIMEOUT_S))
    if dev.type == "cuda":
        dev = torch.device("cuda", local_rank())
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo",
                                timeout=datetime.timedelta(seconds=timeout_s))
    return dev, dist.get_rank(), dist.get_world_size()


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def cleanup() -> None:
    """Destroy the process group (if any); safe to call twice."""
    if is_distributed():
        dist.destroy_process_group()


def describe_failure(exc: BaseException) -> str:
    """``'rank R of W: <error>'`` under torch.distributed, else the error text."""
    text = f"{type(exc).__name__}: {exc}" if not str(exc).startswith(type(exc).__name__) else str(exc)
    if is_distributed() or int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return f"rank {os.environ.get('RANK', rank())} of {os.environ.get('WORLD_SIZE', world_size())}: {text}"
    return text


# --- collectives (every rank must call them) ----------------------------------------------------------
def _device_for_collectives() -> torch.device:
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def flags_any(*flags: bool) -> list[bool]:
    """For each flag, whether it is true on any rank: one all-reduce."""
    if not is_distributed():
        return [bool(f) for f in flags]
    t = torch.tensor([1.0 if f else 0.0 for f in flags], device=_device_for_collectives())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return [bool(v > 0) for v in t.tolist()]


def any_rank(flag: bool) -> bool:
    """True when ``flag`` is true on any rank."""
    return flags_any(flag)[0]


def all_mean(value: float) -> float:
    """Mean of a float over ranks."""
    if not is_distributed():
        return float(value)
    t = torch.tensor([value], dtype=torch.float64, device=_device_for_collectives())
    dist.all_reduce(t)
    return float(t.item()) / dist.get_world_size()


def flags_by_rank(*flags: bool) -> list[list[bool]]:
    """Every rank's flags, ``[rank][i]`` (one all-gather)."""
    if not is_distributed():
        return [[bool(f) for f in flags]]
    t = torch.tensor([1 if f else 0 for f in flags], dtype=torch.int32, device=_device_for_collectives())
    parts = [torch.zeros_like(t) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, t)
    return [[bool(v) for v in p.tolist()] for p in parts]

"""torch.distributed set-up for torchrun (one process per GPU, or gloo processes on CPU)."""

import datetime
import os

import torch
import torch.distributed as dist


def init_distributed(device: str = "auto", timeout_s: float = 1800) -> tuple[torch.device, int, int]:
    """Initialise the process group when launched by torchrun (WORLD_SIZE > 1).

    Returns (device, rank, world_size). NCCL on CUDA (device cuda:LOCAL_RANK), gloo on CPU. A rank
    that fails makes torchrun end the others; collectives also time out after ``timeout_s``.
    """
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return dev, 0, 1
    if not dist.is_initialized():
        if dev.type == "cuda":
            dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(dev)
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo",
                                timeout=datetime.timedelta(seconds=timeout_s))
    return dev, dist.get_rank(), dist.get_world_size()


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def any_rank(flag: bool) -> bool:
    """True when ``flag`` is true on any rank (a collective: every rank must call it)."""
    if not is_distributed():
        return flag
    t = torch.tensor([1.0 if flag else 0.0])
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def all_mean(value: float) -> float:
    """Mean of a float over ranks (a collective)."""
    if not is_distributed():
        return value
    t = torch.tensor([value], dtype=torch.float64)
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t)
    return float(t.item()) / dist.get_world_size()


def cleanup() -> None:
    if is_distributed():
        dist.destroy_process_group()

"""Optimiser and learning-rate schedule: the factories ``train.optimizer`` and ``train.lr_schedule``
name, and the LR each epoch gets (:func:`lr_at_epoch`, the formula the schedulers follow).

The schedule is epoch-wise. ``train.lr_step_timing`` sets when it is stepped: 'epoch_end' (after
each epoch: the drops come after ``lr_steps`` epochs, as configured) or 'epoch_start' (the official
code's order, before each epoch, which on PyTorch >= 1.1 makes every change one epoch early).
"""

import math
import warnings

import torch
from torch import nn

__all__ = ["OPTIMIZERS", "SCHEDULES", "build_optimizer", "build_scheduler", "lr_at_epoch", "step_scheduler"]

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("multistep", "cosine")


def build_optimizer(model: nn.Module, *, name: str, lr: float, weight_decay: float = 0.0, momentum: float = 0.9,
                    nesterov: bool = False) -> torch.optim.Optimizer:
    """Adam / AdamW / SGD over all parameters. The official Adam received no weight decay (its YAML's
    1e-4 was never passed); our YAMLs therefore set 0, and a non-zero value here is applied."""
    params = [p for p in model.parameters() if p.requires_grad]
    # The fused kernels do the per-tensor loop's arithmetic in one pass over all tensors, which is
    # faster (benchmarks/bench_train_step.py); their state dicts are interchangeable.
    fused = _fused_supported(params)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=fused)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=fused)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)
    raise ValueError(f"unknown train.optimizer {name!r}; valid: {', '.join(OPTIMIZERS)}")


def _fused_supported(params: list[torch.Tensor]) -> bool:
    """Whether this PyTorch has fused Adam kernels for every parameter's device (CPU: 2.4+)."""
    try:
        from torch.utils._foreach_utils import _get_fused_kernels_supported_devices
    except ImportError:  # older PyTorch: the per-tensor loop (a private helper: imported where it may be missing)
        return False
    devices = _get_fused_kernels_supported_devices()
    return bool(params) and all(p.is_floating_point() and p.device.type in devices for p in params)


def build_scheduler(optimizer: torch.optim.Optimizer, *, lr_steps: tuple[int, ...], lr_factor: float,
                    schedule: str = "multistep", epochs: int = 0,
                    min_lr: float = 0.0) -> torch.optim.lr_scheduler.LRScheduler:
    """The epoch-wise LR schedule: 'multistep' (MultiStepLR at ``lr_steps``, factor ``lr_factor``)
    or 'cosine' (CosineAnnealingLR over ``epochs`` down to ``min_lr``)."""
    if schedule == "multistep":
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(lr_steps), gamma=lr_factor)
    if schedule == "cosine":
        if min_lr < 0:
            raise ValueError(f"train.min_lr must be >= 0, got {min_lr}")
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(epochs, 1), eta_min=min_lr)
    raise ValueError(f"unknown LR schedule {schedule!r}; valid: {', '.join(SCHEDULES)}")


def lr_at_epoch(epoch: int, *, lr: float, lr_steps: tuple[int, ...], lr_factor: float, timing: str,
                schedule: str = "multistep", epochs: int = 0, min_lr: float = 0.0) -> float:
    """The LR used in epoch ``epoch`` (0-based). 'epoch_end': multistep ``lr * factor**#{s <= epoch}``,
    the drops after ``s`` epochs as configured, cosine ``min_lr + (lr - min_lr) (1 + cos(pi e / E)) / 2``
    at ``e = epoch``; 'epoch_start' (official order): the same at ``epoch + 1``, every change one
    epoch early."""
    e = epoch + (1 if timing == "epoch_start" else 0)
    if schedule == "cosine":
        return min_lr + (lr - min_lr) * (1 + math.cos(math.pi * e / max(epochs, 1))) / 2
    return lr * lr_factor ** sum(1 for s in lr_steps if s <= e)


def step_scheduler(scheduler: torch.optim.lr_scheduler.LRScheduler) -> None:
    """One epoch step of the schedule."""
    with warnings.catch_warnings():  # 'epoch_start' steps before optimizer.step() by design
        warnings.filterwarnings("ignore", message=r".*lr_scheduler\.step\(\)", category=UserWarning)
        scheduler.step()

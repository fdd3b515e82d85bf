"""Resume policy: what a training checkpoint holds, which config changes a resume accepts, and
loading a checkpoint back into a run's objects.

A training checkpoint holds the model (unwrapped and uncompiled: the usual state_dict keys),
optimizer, LR scheduler and grad-scaler states, the position (:class:`TrainState`: ``epoch`` =
epochs completed, ``iteration`` = iterations of the next epoch already done), best AP, the running
loss of a partial epoch, the per-epoch history (which rebuilds metrics.jsonl and the curves), the
config and the RNG states (torch, CUDA, numpy, Python). A resume whose config differs in anything
but :data:`RESUMABLE_CHANGES` is refused (:class:`ResumeConfigError`).
"""

import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pose.config import Config, ConfigError, config_diff, from_dict, legacy_keypoints, to_dict
from pose.engine import checkpoint as ckpt_io
from pose.engine.checkpoint import CheckpointError
from pose.engine.stopping import TrainingError

logger = logging.getLogger("pose.train")

CHECKPOINT_VERSION = 1

# Config keys that may differ when a run is resumed: they change how the run is executed, logged or
# evaluated, not what it computes. train.epochs may grow (or shrink, to stop early). Everything else
# (model, input/heatmap size, sigma, codec, data, augmentation, optimiser, schedule, batch size,
# seed, amp, loss options) is refused: the checkpoint's optimizer/scheduler state and position
# would silently override or contradict the new values.
RESUMABLE_CHANGES = ("train.workers", "train.print_freq", "train.epochs", "train.val_every", "train.auto_resume",
                     "train.deterministic", "train.channels_last", "train.compile", "train.tensorboard", "data.root",
                     "data.det_file", "data.skip_corrupt_images", "model.pretrained", "output_dir", "device",
                     "cpu_malloc")
RESUMABLE_PREFIXES = ("test.",)

__all__ = ["CHECKPOINT_VERSION", "RESUMABLE_CHANGES", "ResumeConfigError", "TrainState", "check_resume_config",
           "find_checkpoint", "restore", "save_best", "training_checkpoint"]


class ResumeConfigError(TrainingError, ConfigError):
    """The config differs from the checkpoint's in settings that change the run; lists the keys."""


@dataclass
class TrainState:
    """Where a run is; saved in (and restored from) every training checkpoint."""

    epoch: int = 0            # epochs completed = the 0-based epoch to run next
    iteration: int = 0        # iterations of that epoch already done (mid-epoch checkpoint)
    global_step: int = 0
    best_ap: float = -1.0
    best_epoch: int = 0       # 1-based epoch of best_ap (0: none yet)
    loss_sum: float = 0.0     # running loss of the partial epoch (sum over samples, this rank)
    loss_count: int = 0
    world_size: int = 1
    history: list = field(default_factory=list)  # metrics.jsonl records


def check_resume_config(saved: Config, current: Config, path: str | os.PathLike) -> list[str]:
    """Refuse (:class:`ResumeConfigError` listing the keys) when ``current`` differs from the
    checkpoint's config outside :data:`RESUMABLE_CHANGES`; returns the allowed differing keys."""
    diff = config_diff(saved, current)
    refused = {k: v for k, v in diff.items() if k not in RESUMABLE_CHANGES and not k.startswith(RESUMABLE_PREFIXES)}
    if refused:
        lines = "\n".join(f"  {k}: checkpoint {a!r}, now {b!r}" for k, (a, b) in refused.items())
        raise ResumeConfigError(
            f"cannot resume from {path}: the config differs in settings that change the run:\n{lines}\n"
            "use the checkpoint's values, or a new output_dir (or train.auto_resume=false there) to start afresh")
    return sorted(diff)


def find_checkpoint(resume: str | os.PathLike | None, out: Path,
                    auto_resume: bool) -> tuple[Path, dict[str, Any]] | None:
    """The checkpoint a run continues from: ``resume`` when given (an unreadable file is an error,
    never a fresh start), else with ``auto_resume`` the newest readable one of ``out``, else None."""
    if resume:
        return Path(resume), ckpt_io.load_checkpoint(resume, require=ckpt_io.TRAINING_KEYS)
    if auto_resume:
        return ckpt_io.find_resume_checkpoint(out)
    return None


def training_checkpoint(state: TrainState, cfg: Config, model: nn.Module, optimizer: torch.optim.Optimizer,
                        scheduler, scaler: torch.amp.GradScaler) -> dict[str, Any]:
    """The dict a training checkpoint holds (``model``: the unwrapped, uncompiled module)."""
    return {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(), **asdict(state), "config": to_dict(cfg), "rng": ckpt_io.rng_state(),
            "arch": cfg.model.arch, "version": CHECKPOINT_VERSION}


def save_best(model: nn.Module, cfg: Config, out: Path, epoch: int, ap: float | None, metric: str = "AP") -> None:
    """``model_best.pth``: the weights (unwrapped), config, epoch (1-based) and the main metric's value
    under its name (``AP``; ``Mean`` for MPII PCKh); no optimiser."""
    state = {"model": model.state_dict(), "config": to_dict(cfg), "epoch": epoch, "arch": cfg.model.arch}
    if ap is not None:
        state[metric] = ap
    ckpt_io.save_checkpoint(state, out / ckpt_io.BEST_NAME, keep_previous=False)


def restore(ckpt: dict[str, Any], path: Path, cfg: Config, model: nn.Module, optimizer, scheduler, scaler,
            is_main: bool) -> TrainState:
    """Load a training checkpoint into the run's objects; clear errors for a mismatched file."""
    try:
        saved = legacy_keypoints(from_dict(ckpt["config"], source=f"the config saved in {path}"))
    except ConfigError as exc:
        raise CheckpointError(f"checkpoint {path}: its saved config is not valid for this version ({exc})") from None
    allowed = check_resume_config(saved, cfg, path)
    if allowed and is_main:
        logger.info("=> resuming with changed settings (allowed): %s", ", ".join(allowed))
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise CheckpointError(f"checkpoint {path}: its weights do not fit {cfg.model.arch} "
                              f"({first[1].strip() if len(first) > 1 else first[0]})") from None
    try:
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        if "scaler" in ckpt and ckpt["scaler"]:
            scaler.load_state_dict(ckpt["scaler"])
        names = {f for f in TrainState.__dataclass_fields__}
        state = TrainState(**{k: ckpt[k] for k in names if k in ckpt})
        if "rng" in ckpt and is_main:  # other ranks keep their per-rank seeds
            ckpt_io.set_rng_state(ckpt["rng"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"checkpoint {path}: optimizer/scheduler/state do not match this run "
                              f"({type(exc).__name__}: {exc})") from None
    return state

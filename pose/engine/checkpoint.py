"""Checkpoints written atomically and read back with clear errors.

Writing (:func:`save_checkpoint`): the state goes to a temporary file in the checkpoint's folder,
which is flushed and fsynced; the previous checkpoint (if any) is renamed to
``<stem>.prev<suffix>`` (``checkpoint.prev.pth``), the temporary file is renamed into place and
the folder is fsynced. A kill at any moment therefore leaves, under ``checkpoint.pth`` or
``checkpoint.prev.pth``, a complete file; never a truncated one under either name. A failed write
(disk full, unwritable folder) raises :class:`CheckpointError`, removes the temporary file and
leaves the previous checkpoint untouched.

Reading (:func:`load_checkpoint`): ``torch.load(weights_only=True)`` (no arbitrary code runs from
a checkpoint); a missing, empty, truncated or foreign file raises :class:`CheckpointError` naming
it, never a deep torch traceback. :func:`find_resume_checkpoint` returns the newest readable
training checkpoint of an output folder, falling back to ``checkpoint.prev.pth`` with a warning
when ``checkpoint.pth`` is missing or corrupt, and raises when checkpoints exist but none can be read
(so a broken folder is never silently restarted from scratch over the old files).

A training checkpoint (see ``pose.engine.resume``) is a dict with at least ``model`` (the
unwrapped state_dict), ``optimizer``, ``scheduler``, ``scaler``, ``epoch``, ``iteration``,
``best_ap``, ``config`` (``pose.config.to_dict``) and ``rng`` (:func:`rng_state`).
``model_best.pth`` holds ``model``, ``config``, ``epoch`` and ``AP`` only.
"""

import logging
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pose.atomic_io import atomic_file

logger = logging.getLogger(__name__)

CHECKPOINT_NAME = "checkpoint.pth"
BEST_NAME = "model_best.pth"
TRAINING_KEYS = ("model", "optimizer", "scheduler", "epoch", "iteration", "config")

__all__ = ["BEST_NAME", "CHECKPOINT_NAME", "CheckpointError", "find_resume_checkpoint",
           "load_checkpoint", "previous_path", "rng_state", "save_checkpoint", "set_rng_state"]


class CheckpointError(RuntimeError):
    """A checkpoint could not be written or read; the message names the file."""


def previous_path(path: str | os.PathLike) -> Path:
    """Where the previous version of ``path`` is kept: ``checkpoint.pth`` -> ``checkpoint.prev.pth``."""
    path = Path(path)
    return path.with_name(f"{path.stem}.prev{path.suffix}")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike, *, keep_previous: bool = True) -> Path:
    """Write ``state`` (a dict of tensors, numbers, strings, lists, dicts) to ``path`` atomically.

    With ``keep_previous`` the file already at ``path`` becomes :func:`previous_path` (replacing
    an older one). Raises :class:`CheckpointError` (the previous checkpoint intact) when the
    folder cannot be written or the disk is full.
    """
    path = Path(path)

    def keep() -> None:
        if keep_previous and path.exists():
            os.replace(path, previous_path(path))

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(path, "wb", before_replace=keep) as fh:
            torch.save(state, fh)
    except Exception as exc:
        # torch's zip writer reports a failed write (ENOSPC) as a RuntimeError: treat all alike.
        raise CheckpointError(f"cannot write checkpoint {path}: {_reason(exc)}; the previous checkpoint "
                              "is intact") from None
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu",
                    *, require: tuple[str, ...] = ()) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (or any ``torch.save``'d dict of tensors).

    ``require`` lists keys that must be present (e.g. :data:`TRAINING_KEYS`). Raises
    :class:`CheckpointError` naming the file for a missing, empty, truncated, corrupt or foreign file.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes)")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # truncated zip, bad pickle, foreign format, objects outside weights_only...
        raise CheckpointError(f"checkpoint {path} is truncated, corrupt or not a checkpoint of this toolkit "
                              f"({_reason(exc)})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(state).__name__}, not a dict")
    missing = [k for k in require if k not in state]
    if missing:
        raise CheckpointError(f"checkpoint {path} is not a training checkpoint: missing {', '.join(missing)} "
                              f"(it has {', '.join(map(str, state)) or 'no keys'})")
    return state


def find_resume_checkpoint(output_dir: str | os.PathLike) -> tuple[Path, dict[str, Any]] | None:
    """The newest readable training checkpoint of ``output_dir``, or None when there is none.

    Tries ``checkpoint.pth``, then ``checkpoint.prev.pth`` (with a warning naming the bad latest).
    Raises :class:`CheckpointError` when checkpoint files exist but none is readable.
    """
    latest = Path(output_dir) / CHECKPOINT_NAME
    errors = []
    for candidate in (latest, previous_path(latest)):
        if not candidate.exists():
            continue
        try:
            state = load_checkpoint(candidate, require=TRAINING_KEYS)
        except CheckpointError as exc:
            errors.append(str(exc))
            continue
        if errors or candidate != latest:
            logger.warning("%s; resuming from the previous checkpoint %s instead (epoch %s, iteration %s)",
                           errors[0] if errors else f"{latest} is missing", candidate, state.get("epoch"),
                           state.get("iteration"))
        return candidate, state
    if errors:
        raise CheckpointError("no readable checkpoint to resume from in " f"{output_dir}:\n  " + "\n  ".join(errors)
                              + "\nmove the folder away (or set train.auto_resume=false and a new output_dir) to "
                              "start afresh")
    return None


# --- RNG states, as tensors and plain Python values (loadable with weights_only=True) ---------------
def rng_state() -> dict[str, Any]:
    """The torch (CPU and CUDA), numpy and Python RNG states of this process."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"torch": torch.get_rng_state(),
             "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "gauss": float(gauss)},
             "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore :func:`rng_state` output (CUDA states only when CUDA is in use)."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if "cuda" in state and torch.cuda.is_available():
        cuda = state["cuda"]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)
        else:
            logger.warning("checkpoint has CUDA RNG states for %d devices, this machine has %d: not restored",
                           len(cuda), torch.cuda.device_count())

"""Checkpoints written atomically and read back with clear errors.

``save_checkpoint`` writes to a temporary file in the same folder, flushes and fsyncs it, moves
the previous file to ``<name>.prev`` and renames the new one into place: a kill at any moment
leaves either the new or the previous checkpoint complete, never a truncated one under the
checkpoint's name. ``find_resume_checkpoint`` falls back to ``.prev`` when the latest is corrupt.
"""

import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

logger = logging.getLogger(__name__)


class CheckpointError(RuntimeError):
    """A checkpoint could not be written or read; the message names the file."""


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike, *, keep_previous: bool = True) -> Path:
    """Write ``state`` to ``path`` atomically; the old file (if any) becomes ``path.prev``."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise CheckpointError(f"cannot write checkpoint {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(state, fh)
            fh.flush()
            os.fsync(fh.fileno())
        if keep_previous and path.exists():
            os.replace(path, path.with_name(path.name + ".prev"))
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise CheckpointError(f"cannot write checkpoint {path}: {exc.strerror or exc}; "
                                  "the previous checkpoint is intact") from None
        raise
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (or any torch.save'd dict)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes)")
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:  # torch raises many types for truncated / foreign files
        raise CheckpointError(f"checkpoint {path} is corrupt or not a PyTorch file "
                              f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(state).__name__}, not a dict")
    return state


def find_resume_checkpoint(output_dir: str | os.PathLike) -> tuple[Path, dict[str, Any]] | None:
    """The newest readable training checkpoint in ``output_dir`` (``checkpoint.pth``, else its ``.prev``)."""
    output_dir = Path(output_dir)
    for candidate in (output_dir / "checkpoint.pth", output_dir / "checkpoint.pth.prev"):
        if not candidate.exists():
            continue
        try:
            state = load_checkpoint(candidate)
        except CheckpointError as exc:
            logger.warning("%s; trying an older checkpoint", exc)
            continue
        if "model" not in state or "epoch" not in state:
            logger.warning("%s is not a training checkpoint (no model/epoch); ignored", candidate)
            continue
        return candidate, state
    return None

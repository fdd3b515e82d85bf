"""Atomic file writes: a temporary file in the target's folder, flushed, fsynced, renamed.

A reader (or a run resumed after a kill) sees the old file or the new one, never a partial one.
A failed write (disk full, unwritable folder) raises ``OSError`` naming the file and leaves any
previous version in place.
"""

import os
import tempfile
from pathlib import Path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise OSError(exc.errno, f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        os.chmod(tmp, default_file_mode())  # mkstemp makes 0600 files; use the usual umask mode
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:  # disk full, quota, read-only folder: name the file, keep the old one
        Path(tmp).unlink(missing_ok=True)
        raise OSError(exc.errno, f"cannot write {path}: {exc.strerror or exc}; nothing was written there "
                                 "(a previous version, if any, is intact)") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def default_file_mode() -> int:
    """The mode a plain ``open(path, 'w')`` would give a new file (0666 minus the umask)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask

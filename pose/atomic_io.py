"""Atomic file writes: a temporary file in the target's folder, flushed, fsynced, renamed.

A reader (or a run resumed after a kill) sees the old file or the new one, never a partial one.
:func:`atomic_file` is the mechanism (a context manager yielding the open temporary file);
:func:`atomic_write_bytes` writes bytes and turns a failure (disk full, unwritable folder) into an
``OSError`` naming the file, with any previous version left in place.
"""

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO


def default_file_mode() -> int:
    """The mode a plain ``open(path, 'w')`` would give a new file (0666 minus the umask)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def fsync_dir(path: str | os.PathLike) -> None:
    """Make a rename in ``path`` durable (a no-op where the file system cannot fsync folders)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems do not fsync directories
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, mode: str = "wb", *,
                before_replace: Callable[[], None] | None = None) -> Iterator[IO]:
    """Open a temporary file beside ``path`` for writing; on success flush, fsync, run
    ``before_replace`` (if any), rename it to ``path`` and fsync the folder. On any error the
    temporary file is removed and ``path`` is untouched. The file gets the umask's permissions
    (as ``open`` would), not mkstemp's 0600."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, default_file_mode())
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        if before_replace is not None:
            before_replace()
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, creating its folder; a failure raises ``OSError``
    naming ``path`` (nothing written there, a previous version intact)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(path, "wb") as fh:
            fh.write(data)
    except OSError as exc:  # disk full, quota, read-only or missing folder
        raise OSError(exc.errno, f"cannot write {path}: {exc.strerror or exc}; nothing was written there "
                                 "(a previous version, if any, is intact)") from None

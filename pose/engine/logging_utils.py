"""Training logs: a per-epoch progress line, the log file, the metrics file.

* :class:`Progress`: loss, learning rate, samples/s, elapsed time and time left. On a terminal
  (stderr is a TTY) it redraws one line with ``\\r``; elsewhere (log files, CI) it logs a line every
  ``print_freq`` iterations and at the end of the epoch, so logs stay readable.
* :func:`setup_logging`: the ``pose`` logger writes to ``output_dir/train.log`` (rank 0, appended
  across resumed runs) and to stdout; :func:`teardown_logging` removes and closes those handlers.
* :func:`write_metrics`: ``metrics.jsonl`` (one JSON object per epoch) rewritten atomically from
  the run's history, which lives in the checkpoint; a resumed run rewrites it from there, so a kill
  between the checkpoint and the metrics file never loses or repeats an epoch.
"""

import json
import logging
import math
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from pose.atomic_io import atomic_file

logger = logging.getLogger("pose.train")

__all__ = ["Progress", "format_duration", "read_metrics", "setup_logging", "teardown_logging", "write_metrics",
           "write_text_atomic"]


def format_duration(seconds: float) -> str:
    """``'mm:ss'`` or ``'h:mm:ss'``; ``'--:--'`` when unknown."""
    if not math.isfinite(seconds) or seconds < 0:
        return "--:--"
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


class Progress:
    """Progress of one epoch of ``total`` iterations, resumed at iteration ``start``."""

    def __init__(self, name: str, total: int, *, start: int = 0, enabled: bool = True, print_freq: int = 50,
                 stream: TextIO | None = None, redraw: bool = True):
        self.name, self.total, self.enabled = name, total, enabled
        self.print_freq = max(1, print_freq)
        self.stream = stream if stream is not None else sys.stderr
        # redraw=False: lines every print_freq iterations even on a terminal (e.g. stdout logging is off)
        self.tty = enabled and redraw and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.start = start
        self.t0 = time.perf_counter()
        self.samples = 0
        self.line = ""

    def update(self, iteration: int, *, loss: float, lr: float, samples: int) -> None:
        """After ``iteration`` (1-based, of ``total``) with ``samples`` new samples (all ranks)."""
        if not self.enabled:
            return
        self.samples += samples
        elapsed = time.perf_counter() - self.t0
        done = iteration - self.start
        rate = self.samples / elapsed if elapsed > 0 else float("nan")
        left = elapsed / done * (self.total - iteration) if done > 0 else float("nan")
        self.line = (f"{self.name} [{iteration}/{self.total}] loss {loss:.6g} lr {lr:.3g} "
                     f"{rate:.1f} samples/s {format_duration(elapsed)} elapsed, ETA {format_duration(left)}")
        if self.tty:
            self.stream.write("\r" + self.line + "\033[K")
            self.stream.flush()
        elif iteration % self.print_freq == 0 or iteration == self.total:
            logger.info(self.line)

    def close(self) -> None:
        """End the epoch's line (on a terminal) and put the last state in the log file."""
        if self.tty and self.line:
            self.stream.write("\n")
            self.stream.flush()
            logging.getLogger("pose.train.file_only").info(self.line)


class _NotFileOnly(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.name.startswith("pose.train.file_only")


def setup_logging(output_dir: str | os.PathLike | None, *, is_main: bool = True, verbose: bool = True) -> list:
    """Attach the training handlers to the ``pose`` logger; returns them for :func:`teardown_logging`.

    Rank 0: INFO to ``output_dir/train.log`` (appended) and, when ``verbose``, to stdout. Other
    ranks: warnings and errors to stderr, prefixed with the rank.
    """
    root = logging.getLogger("pose")
    root.setLevel(logging.INFO)
    handlers: list[logging.Handler] = []
    if is_main:
        if output_dir is not None:
            fh = logging.FileHandler(Path(output_dir) / "train.log")
            fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
            handlers.append(fh)
        if verbose:
            sh = logging.StreamHandler(sys.stdout)
            sh.setFormatter(logging.Formatter("%(message)s"))
            sh.addFilter(_NotFileOnly())
            handlers.append(sh)
    else:
        sh = logging.StreamHandler(sys.stderr)
        sh.setLevel(logging.WARNING)
        sh.setFormatter(logging.Formatter(f"[rank {os.environ.get('RANK', '?')}] %(levelname)s: %(message)s"))
        handlers.append(sh)
    for h in handlers:
        root.addHandler(h)
    root.propagate = False
    return handlers


def teardown_logging(handlers: Sequence[logging.Handler]) -> None:
    root = logging.getLogger("pose")
    for h in handlers:
        root.removeHandler(h)
        h.close()
    if not root.handlers:
        root.propagate = True


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` via a temporary file in the same folder (flush, fsync, rename)."""
    with atomic_file(path, "w") as fh:
        fh.write(text)
    return Path(path)


def write_metrics(path: str | os.PathLike, history: Sequence[dict[str, Any]]) -> Path:
    """``metrics.jsonl``: one JSON object per record of ``history``, written atomically."""
    return write_text_atomic(path, "".join(json.dumps(r, sort_keys=False) + "\n" for r in history))


def read_metrics(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The records of a metrics.jsonl file; a bad line raises ValueError naming the file and line."""
    path = Path(path)
    records = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}, line {n}: not JSON ({exc})") from None
    return records

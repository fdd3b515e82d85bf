"""How training stops: faults (:class:`TrainingError`), signals (:class:`StopRequest`,
:class:`TrainingInterrupted`) and the loader's workers shut down whatever happened.

SIGTERM and SIGINT (Ctrl-C) set a flag; the trainer reads it at iteration boundaries, every rank
agrees to stop, rank 0 saves ``checkpoint.pth`` and :class:`TrainingInterrupted` is raised
(``tools/train.py`` then exits with 128 + the signal number: 143, 130). A second Ctrl-C stops at once.
"""

import contextlib
import logging
import signal
import time
from pathlib import Path

from torch.utils.data import DataLoader

logger = logging.getLogger("pose.train")

__all__ = ["StopRequest", "TrainingError", "TrainingInterrupted", "dead_workers", "loader_error_text",
           "workers_shut_down_at_exit"]


class TrainingError(RuntimeError):
    """Training cannot go on (non-finite loss or weights, data loading failed); the message says where."""


class TrainingInterrupted(Exception):
    """SIGTERM/SIGINT: a checkpoint was saved at ``checkpoint`` after ``iteration`` iterations of
    epoch ``epoch`` (0-based); resume by running the same command (or ``--resume checkpoint``)."""

    def __init__(self, signum: int, checkpoint: Path, epoch: int, iteration: int):
        self.signum, self.checkpoint, self.epoch, self.iteration = signum, checkpoint, epoch, iteration
        super().__init__(f"stopped by {signal.Signals(signum).name} at epoch {epoch + 1}, iteration {iteration}; "
                         f"checkpoint saved to {checkpoint}; run the same command to resume")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class StopRequest:
    """SIGTERM / SIGINT set ``signum``, read at iteration boundaries. A second SIGINT raises
    KeyboardInterrupt at once; repeated SIGTERMs (launchers forwarding signals) are absorbed."""

    def __init__(self):
        self.signum = 0
        self._old: dict = {}

    def __enter__(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: no handlers, signals keep their default action
                pass
        return self

    def _handle(self, signum, _frame) -> None:
        if self.signum and signum == signal.SIGINT and self.signum == signal.SIGINT:
            raise KeyboardInterrupt
        if not self.signum:
            self.signum = signum
            logger.warning("%s received: a checkpoint will be saved at the next iteration boundary "
                           "(Ctrl-C again to stop at once)", signal.Signals(signum).name)

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


@contextlib.contextmanager
def workers_shut_down_at_exit(loader: DataLoader):
    """Shut the loader's persistent workers down when training ends, also when an error propagates:
    its traceback keeps the iterator alive, and workers ignore SIGTERM, so workers left to the
    interpreter's exit would have multiprocessing wait for them forever."""
    try:
        yield
    finally:
        iterator = getattr(loader, "_iterator", None)
        shutdown = getattr(iterator, "_shutdown_workers", None)
        if shutdown is not None:
            shutdown()
        loader._iterator = None


def loader_error_text(exc: BaseException) -> str:
    """The message of an error raised in a DataLoader worker, without the worker's traceback that
    PyTorch puts before it ('Caught X in DataLoader worker process N. Original Traceback ...')."""
    text = str(exc)
    head, sep, trace = text.partition("\nOriginal Traceback (most recent call last):")
    if not sep:
        return text
    last = trace.strip().splitlines()[-1] if trace.strip() else ""
    name = type(exc).__name__
    message = last.split(f"{name}: ", 1)[1] if f"{name}: " in last else last
    return f"{message} ({head.removeprefix('Caught ').rstrip('.')})"


def dead_workers(batches, *, wait_s: float = 2.0) -> list[int]:
    """The pids of the DataLoader iterator's workers that died, waiting up to ``wait_s`` for a death
    to show. A killed worker's pipe closes before its process can be reaped, so PyTorch may see
    the closed pipe first (an EOFError without text) while the worker still looks alive."""
    workers = getattr(batches, "_workers", None) or []
    deadline = time.monotonic() + wait_s
    while True:
        dead = [w.pid for w in workers if not w.is_alive()]
        if dead or not workers or time.monotonic() >= deadline:
            return dead
        time.sleep(0.02)

"""A per-epoch progress line: loss, learning rate, samples/s and time left.

On a terminal it redraws one line (``\\r``); elsewhere (logs, CI) it logs a line every
``print_freq`` iterations and at the end, so log files stay readable.
"""

import logging
import sys
import time

logger = logging.getLogger("pose.train")


class Progress:
    def __init__(self, name: str, total: int, *, start: int = 0, enabled: bool = True, print_freq: int = 50):
        self.name, self.total, self.enabled, self.print_freq = name, total, enabled, max(1, print_freq)
        self.tty = enabled and sys.stderr.isatty()
        self.start_iter = start
        self.t0 = time.perf_counter()
        self.samples = 0
        self.line = ""

    def update(self, iteration: int, *, loss: float, lr: float, samples: int) -> None:
        if not self.enabled:
            return
        self.samples += samples
        elapsed = time.perf_counter() - self.t0
        done = iteration - self.start_iter
        rate = self.samples / max(elapsed, 1e-9)
        left = elapsed / max(done, 1) * (self.total - iteration)
        self.line = (f"{self.name} [{iteration}/{self.total}] loss {loss:.6f} lr {lr:.2e} "
                     f"{rate:.1f} samples/s, {_clock(elapsed)} elapsed, {_clock(left)} left")
        if self.tty:
            sys.stderr.write("\r" + self.line + "\033[K")
            sys.stderr.flush()
        elif iteration % self.print_freq == 0 or iteration == self.total:
            logger.info(self.line)

    def close(self) -> None:
        if self.tty and self.line:
            sys.stderr.write("\n")
            sys.stderr.flush()
            logging.getLogger("pose.train.file").info(self.line)


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"

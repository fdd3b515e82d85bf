"""How training stops on a loader fault: a dead worker is named even when PyTorch only saw its pipe close."""

import multiprocessing
import re
import time

import pytest

from pose.engine.stopping import StopRequest, TrainingError, dead_workers
from pose.engine.trainer import _next_batch

DEAD = r"data loading failed at epoch 1, iteration 2: DataLoader worker .*(killed|exited)"


class ClosedPipe:
    """A loader iterator whose worker is dying: its pipe is closed (EOFError, no text) while the
    process has not yet ended, as PyTorch sees a SIGKILLed worker for a moment."""

    def __init__(self, worker):
        self._workers = [worker]

    def __next__(self):
        raise EOFError


@pytest.fixture
def dying_worker():
    proc = multiprocessing.get_context("fork").Process(target=time.sleep, args=(0.3,))
    proc.start()
    yield proc
    proc.join()


def test_a_worker_whose_death_shows_late_is_named(dying_worker):
    assert dead_workers(ClosedPipe(dying_worker), wait_s=0.0) == []  # still alive: not yet visible
    with pytest.raises(TrainingError) as info:
        _next_batch(None, ClosedPipe(dying_worker), StopRequest(), "epoch 1, iteration 2")
    assert re.match(DEAD, str(info.value)) and str(dying_worker.pid) in str(info.value)
    assert "EOFError" in str(info.value)


def test_an_error_without_a_dead_worker_keeps_its_own_text():
    class Failing:
        def __next__(self):
            raise ValueError("bad annotation in sample 3")

    with pytest.raises(TrainingError, match=r"at epoch 1, iteration 2: bad annotation in sample 3$"):
        _next_batch(None, Failing(), StopRequest(), "epoch 1, iteration 2")

"""Data order and augmentation as functions of (seed, epoch, index), whatever the number of workers.

* :class:`EpochSampler`: the order of the samples is a seeded permutation of (seed, epoch), sharded
  ``rank::world`` as ``DistributedSampler`` does; a resumed epoch skips the samples already seen
  without loading them.
* :class:`SeededDataset`: ``random`` and ``numpy`` are seeded from (seed, epoch, index) before each
  sample, so its augmentation does not depend on the worker that loads it.
* :func:`build_train_loader`: the DataLoader of both, its workers seeded by :func:`seed_worker`.

Together they make a resumed run see the same batches with the same augmentation as an
uninterrupted one (see ``pose.engine.trainer``).
"""

import math
import random
import signal

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from pose.data.image_io import prepare_opencv_for_fork

__all__ = ["EpochSampler", "SeededDataset", "build_train_loader", "seed_epoch_loader", "seed_worker"]


class EpochSampler(Sampler[tuple[int, int]]):
    """Indices of one epoch for one rank: a permutation seeded by (seed, epoch) (or 0..n-1 without
    shuffle), padded by repetition to a multiple of ``world`` and sharded ``rank::world`` (as
    ``DistributedSampler``), starting after the first ``skip`` indices of this rank's share.

    It yields ``(epoch, index)`` keys for :class:`SeededDataset`: the epoch travels with each
    request, so persistent DataLoader workers (which keep their copy of the dataset) augment
    every epoch differently and exactly as a fresh worker would."""

    def __init__(self, size: int, *, seed: int, shuffle: bool = True, rank: int = 0, world: int = 1):
        if size <= 0:
            raise ValueError("the training set is empty")
        self.size, self.seed, self.shuffle, self.rank, self.world = size, seed, shuffle, rank, world
        self.epoch, self.skip = 0, 0

    @property
    def per_rank(self) -> int:
        return math.ceil(self.size / self.world)

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.epoch, self.skip = epoch, skip

    def indices(self) -> list[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(int(np.random.SeedSequence([self.seed, self.epoch]).generate_state(1)[0]))
            order = torch.randperm(self.size, generator=g).tolist()
        else:
            order = list(range(self.size))
        total = self.per_rank * self.world
        while len(order) < total:  # pad (when world > size the order is repeated several times)
            order += order[: total - len(order)]
        return order[self.rank::self.world]

    def __iter__(self):
        epoch = self.epoch
        return ((epoch, i) for i in self.indices()[self.skip:])

    def __len__(self) -> int:
        return max(0, self.per_rank - self.skip)


class SeededDataset(Dataset):
    """Sample ``index`` of ``dataset`` for the key ``(epoch, index)``, with ``random`` and
    ``np.random`` seeded from (seed, epoch, index) first, so the augmentation of a sample does not
    depend on the worker that loads it, on the worker's past, or on where a resumed epoch starts."""

    def __init__(self, dataset: Dataset, seed: int):
        self.dataset, self.seed = dataset, seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]):
        epoch, index = key
        s = np.random.SeedSequence([self.seed, epoch, index]).generate_state(2)
        random.seed(int(s[0]))
        np.random.seed(int(s[1]))
        return self.dataset[index]


def seed_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: deterministic per-worker numpy/random seeds (from the loader's
    seeded generator) and signals left to the main process (which saves the checkpoint and then
    shuts the workers down). PyTorch gives each worker one thread; OpenCV's count is set in the
    parent (:func:`pose.data.image_io.prepare_opencv_for_fork`)."""
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)


def build_train_loader(dataset: Dataset, *, seed: int, batch_size: int, workers: int, rank: int = 0,
                       world: int = 1, pin_memory: bool = False) -> DataLoader:
    """The training loader: :class:`SeededDataset` keys from an :class:`EpochSampler` (``loader.sampler``),
    persistent workers, and a seeded ``loader.generator`` (see :func:`seed_epoch_loader`)."""
    sampler = EpochSampler(len(dataset), seed=seed, rank=rank, world=world)
    if workers > 0:
        prepare_opencv_for_fork()
    return DataLoader(SeededDataset(dataset, seed), batch_size=batch_size, sampler=sampler, num_workers=workers,
                      pin_memory=pin_memory, drop_last=False, worker_init_fn=seed_worker,
                      generator=torch.Generator(), persistent_workers=workers > 0)


def seed_epoch_loader(loader: DataLoader, *, seed: int, epoch: int, rank: int, skip: int = 0) -> None:
    """Set the loader of :func:`build_train_loader` to epoch ``epoch`` (0-based), after the first
    ``skip`` samples of this rank's share; its workers' seeds become a function of (seed, epoch, rank)."""
    loader.sampler.set_epoch(epoch, skip=skip)
    loader.generator.manual_seed(int(np.random.SeedSequence([seed, epoch, rank, 1]).generate_state(1)[0]))

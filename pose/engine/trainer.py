"""The training loop: ``train(cfg)``, from one CPU process to many GPUs under torchrun.

Outputs in ``cfg.output_dir``: ``config.yaml`` (the merged config), ``train.log``,
``metrics.jsonl`` (one JSON line per epoch), ``training_curves.png``, ``checkpoint.pth`` (latest,
the one before it as ``checkpoint.prev.pth``), ``model_best.pth`` (best validation AP) and
``results/`` (the evaluator's files).

Exact resumption
----------------
* The order of the samples is a function of (seed, epoch) only (:class:`EpochSampler`: a
  seeded permutation sharded ``rank::world`` as ``DistributedSampler`` does), and the random
  augmentation of a sample a function of (seed, epoch, index) (:class:`SeededDataset` seeds
  ``random`` and ``numpy`` before each sample), whatever the number of workers.
* A checkpoint holds the model (unwrapped), optimizer, LR scheduler and grad-scaler states, the
  position (``epoch`` = epochs completed, ``iteration`` = iterations of the next epoch already
  done), best AP, the running loss of a partial epoch, the per-epoch history (which rebuilds
  metrics.jsonl and the curves), the config and the RNG states (torch, CUDA, numpy, Python).
* Resuming skips ``iteration * batch_size`` samples of the epoch's order without loading them.
  So a run resumed from any checkpoint (end of an epoch, or SIGTERM/SIGINT mid-epoch) sees the
  same batches with the same augmentation and, on CPU, ends with bit-identical weights and the same
  metrics (all but the wall-clock ``time_s``); on GPU up to non-deterministic kernels
  (``train.deterministic=true`` forbids them). A SIGKILL loses the work since the last checkpoint
  (one epoch at most); the resumed run redoes it identically. Resuming with a different number of
  processes continues correctly but not identically (the shards differ); it is logged.

Signals: SIGTERM and SIGINT (Ctrl-C) set a flag; at the next iteration boundary every rank agrees
to stop, rank 0 saves ``checkpoint.pth`` and :class:`TrainingInterrupted` is raised
(``tools/train.py`` then exits with 128 + the signal number: 143, 130). A second Ctrl-C stops at once.

Faults: a non-finite loss (any rank) or non-finite weights after a step raise :class:`TrainingError`
naming the epoch and iteration; nothing is saved, so the last good checkpoint stays. A resume whose
config differs in anything but :data:`RESUMABLE_CHANGES` is refused (:class:`ResumeConfigError`).
"""

import contextlib
import logging
import math
import os
import random
import signal
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from pose.config import (
    Config,
    ConfigError,
    config_diff,
    from_dict,
    legacy_keypoints,
    loss_joint_weights,
    save_config,
    to_dict,
)
from pose.data.image_io import prepare_opencv_for_fork
from pose.engine import checkpoint as ckpt_io
from pose.engine import distributed as dist_utils
from pose.engine.checkpoint import CheckpointError
from pose.engine.curves import plot_training_curves
from pose.engine.evaluator import MAIN_METRIC
from pose.engine.logging_utils import Progress, setup_logging, teardown_logging, write_metrics
from pose.engine.loss import build_loss

logger = logging.getLogger("pose.train")

CHECKPOINT_VERSION = 1

# Config keys that may differ when a run is resumed: they change how the run is executed, logged or
# evaluated, not what it computes. train.epochs may grow (or shrink, to stop early). Everything else
# (model, input/heatmap size, sigma, codec, data, augmentation, optimiser, schedule, batch size,
# seed, amp, loss options) is refused: the checkpoint's optimizer/scheduler state and position
# would silently override or contradict the new values.
RESUMABLE_CHANGES = ("train.workers", "train.print_freq", "train.epochs", "train.val_every", "train.auto_resume",
                     "train.deterministic", "train.channels_last", "data.root", "data.det_file",
                     "data.skip_corrupt_images", "model.pretrained", "output_dir", "device")
RESUMABLE_PREFIXES = ("test.",)

__all__ = ["EpochSampler", "RESUMABLE_CHANGES", "ResumeConfigError", "SeededDataset", "TrainingError",
           "TrainingInterrupted", "build_optimizer", "build_scheduler", "check_resume_config", "lr_at_epoch",
           "train"]


class TrainingError(RuntimeError):
    """Training cannot go on (non-finite loss or weights, data loading failed); the message says where."""


class ResumeConfigError(TrainingError, ConfigError):
    """The config differs from the checkpoint's in settings that change the run; lists the keys."""


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


# --- data order and augmentation as functions of (seed, epoch, index) --------------------------------
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


# --- optimiser and schedule ----------------------------------------------------------------------------
def build_optimizer(model: nn.Module, *, name: str, lr: float, weight_decay: float = 0.0, momentum: float = 0.9,
                    nesterov: bool = False) -> torch.optim.Optimizer:
    """Adam / AdamW / SGD over all parameters. The official Adam received no weight decay (its YAML's
    1e-4 was never passed); our YAMLs therefore set 0, and a non-zero value here is applied."""
    params = [p for p in model.parameters() if p.requires_grad]
    # The fused kernels do the same arithmetic in one pass over all tensors (on CPU the demo's
    # training step is ~4% shorter than with the per-tensor loop: benchmarks/bench_train_step.py).
    fused = _fused_supported(params)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=fused)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=fused)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)
    raise ValueError(f"unknown train.optimizer {name!r}; valid: adam, adamw, sgd")


def _fused_supported(params: list[torch.Tensor]) -> bool:
    """Whether this PyTorch has fused Adam kernels for every parameter's device (CPU: 2.4+)."""
    try:
        from torch.utils._foreach_utils import _get_fused_kernels_supported_devices
    except ImportError:  # older PyTorch: the per-tensor loop
        return False
    devices = _get_fused_kernels_supported_devices()
    return bool(params) and all(p.is_floating_point() and p.device.type in devices for p in params)


def build_scheduler(optimizer: torch.optim.Optimizer, *, lr_steps: tuple[int, ...], lr_factor: float,
                    schedule: str = "multistep", epochs: int = 0,
                    min_lr: float = 0.0) -> torch.optim.lr_scheduler.LRScheduler:
    """The epoch-wise LR schedule (how it is stepped sets the timing; see train): 'multistep'
    (MultiStepLR at ``lr_steps``, factor ``lr_factor``) or 'cosine' (CosineAnnealingLR over
    ``epochs`` down to ``min_lr``)."""
    if schedule == "multistep":
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(lr_steps), gamma=lr_factor)
    if schedule == "cosine":
        if min_lr < 0:
            raise ValueError(f"train.min_lr must be >= 0, got {min_lr}")
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(epochs, 1), eta_min=min_lr)
    raise ValueError(f"unknown LR schedule {schedule!r}; valid: multistep, cosine")


def lr_at_epoch(epoch: int, *, lr: float, lr_steps: tuple[int, ...], lr_factor: float, timing: str,
                schedule: str = "multistep", epochs: int = 0, min_lr: float = 0.0) -> float:
    """The LR used in epoch ``epoch`` (0-based). 'epoch_end': multistep ``lr * factor**#{s <= epoch}``,
    the drops after ``s`` epochs as configured, cosine ``min_lr + (lr - min_lr) (1 + cos(pi e / E)) / 2``
    at ``e = epoch``; 'epoch_start' (official order): the same at ``epoch + 1``, every change one
    epoch early."""
    e = epoch + (1 if timing == "epoch_start" else 0)
    if schedule == "cosine":
        return min_lr + (lr - min_lr) * (1 + math.cos(math.pi * e / max(epochs, 1))) / 2
    return lr * lr_factor ** sum(1 for s in lr_steps if s <= e)


def _step_scheduler(scheduler) -> None:
    with warnings.catch_warnings():  # 'epoch_start' steps before optimizer.step() by design
        warnings.filterwarnings("ignore", message=r".*lr_scheduler\.step\(\)", category=UserWarning)
        scheduler.step()


# --- resume ------------------------------------------------------------------------------------------------
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


@dataclass
class _State:
    epoch: int = 0            # epochs completed = the 0-based epoch to run next
    iteration: int = 0        # iterations of that epoch already done (mid-epoch checkpoint)
    global_step: int = 0
    best_ap: float = -1.0
    best_epoch: int = 0       # 1-based epoch of best_ap (0: none yet)
    loss_sum: float = 0.0     # running loss of the partial epoch (sum over samples, this rank)
    loss_count: int = 0
    world_size: int = 1
    history: list = field(default_factory=list)  # metrics.jsonl records


@contextlib.contextmanager
def _workers_shut_down_at_exit(loader: DataLoader):
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


class _StopRequest:
    """SIGTERM / SIGINT set a flag read at iteration boundaries. A second SIGINT raises
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


def _loader_error_text(exc: BaseException) -> str:
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


def _params_finite(model: nn.Module) -> bool:
    params = [p.detach() for p in model.parameters()]
    if not params:
        return True
    return bool(torch.isfinite(torch.stack(torch._foreach_norm(params))).all())


def _output_heatmaps(output) -> list[torch.Tensor]:
    return list(output) if isinstance(output, (list, tuple)) else [output]


def train(cfg: Config, *, resume: str | os.PathLike | None = None,
          on_iteration: Callable[[dict[str, Any]], None] | None = None, verbose: bool = True) -> dict[str, Any]:
    """Train ``cfg``'s network (see the module docstring); every rank calls it under torchrun.

    ``resume``: a checkpoint to continue from (default: ``output_dir/checkpoint.pth`` when
    ``train.auto_resume``). ``on_iteration``: called after every training step with a dict
    {epoch (0-based), iteration (done in that epoch), global_step, loss, model}. Returns
    {'best_ap', 'best_epoch', 'epochs', 'stats' (last validation), 'history', 'output_dir',
    'resumed_from', 'final_loss'}. Raises :class:`TrainingInterrupted` on SIGTERM/SIGINT (after
    saving), :class:`TrainingError`, :class:`ResumeConfigError`, :class:`CheckpointError`.
    """
    device, rank, world = dist_utils.init_distributed(cfg.device)
    is_main = rank == 0
    out = Path(cfg.output_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TrainingError(f"cannot create output_dir {out}: {exc.strerror or exc}") from None
    handlers = setup_logging(out, is_main=is_main, verbose=verbose)
    deterministic_before = torch.are_deterministic_algorithms_enabled()
    try:
        return _train(cfg, resume, on_iteration, device, rank, world, out, verbose)
    except (TrainingInterrupted, KeyboardInterrupt):
        raise
    except BaseException as exc:
        if world > 1:
            logger.error("%s", dist_utils.describe_failure(exc))
        raise
    finally:
        torch.use_deterministic_algorithms(deterministic_before)
        teardown_logging(handlers)


def _train(cfg: Config, resume, on_iteration, device: torch.device, rank: int, world: int, out: Path,
           verbose: bool) -> dict[str, Any]:
    from pose.data import build_dataset, with_dataset_keypoints
    from pose.engine.evaluator import evaluate, main_metric
    from pose.models import build_model, load_for_finetuning

    t = cfg.train
    is_main = rank == 0
    amp = dist_utils.resolve_amp(t.amp, device)
    if t.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True

    # The training data resolve the keypoint set (data.keypoints, model.num_joints) before anything
    # is built from the config, and the resolved config is what gets saved.
    train_set = build_dataset(cfg, "train")
    cfg = with_dataset_keypoints(cfg, train_set)
    val_set = build_dataset(cfg, "val")
    kset = train_set.keypoints

    # Same initial weights on every rank (DDP also broadcasts rank 0's), then per-rank streams.
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg, verbose=False)
    report = getattr(model, "pretrained_report", None)
    if report is not None and is_main:
        logger.info("=> ImageNet backbone %s: %s", cfg.model.pretrained, report)
    if cfg.model.finetune_from:
        report = load_for_finetuning(model, cfg.model.finetune_from)
        if is_main:
            logger.info("=> fine-tuning from %s", report)
    random.seed(cfg.seed + rank)
    np.random.seed(cfg.seed + rank)
    torch.manual_seed(cfg.seed + rank)
    model.to(device)
    if t.channels_last:
        model = model.to(memory_format=torch.channels_last)
    criterion = build_loss(use_target_weight=t.use_target_weight, ohkm=t.ohkm, ohkm_topk=t.ohkm_topk,
                           joint_weights=loss_joint_weights(cfg, kset), num_joints=cfg.model.num_joints).to(device)
    optimizer = build_optimizer(model, name=t.optimizer, lr=t.lr, weight_decay=t.weight_decay, momentum=t.momentum,
                                nesterov=t.nesterov)
    scheduler = build_scheduler(optimizer, lr_steps=t.lr_steps, lr_factor=t.lr_factor, schedule=t.lr_schedule,
                                epochs=t.epochs, min_lr=t.min_lr)
    scaler = torch.amp.GradScaler(device.type, enabled=amp == "fp16")

    state = _State(world_size=world)
    found = None
    if resume:
        found = (Path(resume), ckpt_io.load_checkpoint(resume, require=ckpt_io.TRAINING_KEYS))
    elif t.auto_resume:
        found = ckpt_io.find_resume_checkpoint(out)
    resumed_from = None
    if found:
        path, ckpt = found
        state = _restore(ckpt, path, cfg, model, optimizer, scheduler, scaler, is_main)
        resumed_from = str(path)
        if state.world_size != world:
            logger.warning("checkpoint %s was written by %d process(es), this run has %d: the run continues, "
                           "but not identically to an uninterrupted one (the data shards differ)", path,
                           state.world_size, world)
            state.world_size = world
        logger.info("=> resumed from %s: %d epoch(s) done, iteration %d of the next, best AP %.4f", path,
                    state.epoch, state.iteration, state.best_ap)

    if is_main:
        for stale in out.glob(".*.tmp"):  # temporary files of writes cut short by a kill
            if stale.name.startswith((f".{ckpt_io.CHECKPOINT_NAME}.", f".{ckpt_io.BEST_NAME}.", ".metrics.jsonl.",
                                      ".training_curves.png.")):
                stale.unlink(missing_ok=True)
        save_config(cfg, out / "config.yaml")
        logger.info("=> %s: %s%s, %.3fM parameters, %d training / %d validation crops, device %s, %d process(es), "
                    "batch %d per process, precision %s%s", out, cfg.model.arch,
                    "" if cfg.model.psa == "none" else f" + PSA {cfg.model.psa} ({cfg.model.psa_variant})",
                    sum(p.numel() for p in model.parameters()) / 1e6, len(train_set), len(val_set), device, world,
                    t.batch_size, {"none": "fp32", "bf16": "bf16 autocast", "fp16": "fp16 autocast"}[amp],
                    " (train.amp=auto)" if t.amp == "auto" else "")
        if state.history:  # rebuild the files from the checkpoint's history (a kill may have cut them short)
            write_metrics(out / "metrics.jsonl", state.history)
            plot_training_curves(state.history, out / "training_curves.png")

    net: nn.Module = model
    if world > 1:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    seeded = SeededDataset(train_set, cfg.seed)
    sampler = EpochSampler(len(train_set), seed=cfg.seed, rank=rank, world=world)
    generator = torch.Generator()
    if t.workers > 0:
        prepare_opencv_for_fork()
    loader = DataLoader(seeded, batch_size=t.batch_size, sampler=sampler, num_workers=t.workers,
                        pin_memory=device.type == "cuda", drop_last=False, worker_init_fn=seed_worker,
                        generator=generator, persistent_workers=t.workers > 0)
    iters_per_epoch = math.ceil(sampler.per_rank / t.batch_size)
    if t.max_iters_per_epoch:
        iters_per_epoch = min(iters_per_epoch, t.max_iters_per_epoch)
    stats: dict[str, float] = {}
    ckpt_path = out / ckpt_io.CHECKPOINT_NAME

    def snapshot() -> dict[str, Any]:
        return {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(), **asdict(state), "config": to_dict(cfg), "rng": ckpt_io.rng_state(),
                "arch": cfg.model.arch, "version": CHECKPOINT_VERSION}

    def interrupt(signum: int) -> TrainingInterrupted:
        if is_main:
            ckpt_io.save_checkpoint(snapshot(), ckpt_path)
        dist_utils.barrier()
        exc = TrainingInterrupted(signum, ckpt_path, state.epoch, state.iteration)
        logger.warning("=> %s", exc)
        return exc

    if state.epoch >= t.epochs:
        logger.info("=> nothing to do: %d of %d epochs already done (raise train.epochs to train longer)",
                    state.epoch, t.epochs)
    with _StopRequest() as stop, _workers_shut_down_at_exit(loader):
        while state.epoch < t.epochs:
            epoch = state.epoch
            if dist_utils.any_rank(bool(stop.signum)):
                raise interrupt(stop.signum or signal.SIGTERM)
            if t.lr_step_timing == "epoch_start" and state.iteration == 0:
                _step_scheduler(scheduler)  # official order: before the epoch
            lr = optimizer.param_groups[0]["lr"]
            sampler.set_epoch(epoch, skip=state.iteration * t.batch_size)
            generator.manual_seed(int(np.random.SeedSequence([cfg.seed, epoch, rank, 1]).generate_state(1)[0]))
            net.train()
            progress = Progress(f"epoch {epoch + 1}/{t.epochs}", iters_per_epoch, start=state.iteration,
                                enabled=is_main, print_freq=t.print_freq, redraw=verbose)
            t0 = time.perf_counter()
            batches = iter(loader)
            where = f"epoch {epoch + 1}, iteration {state.iteration + 1}"
            try:
                while state.iteration < iters_per_epoch:
                    where = f"epoch {epoch + 1}, iteration {state.iteration + 1}"
                    try:
                        batch = next(batches)
                    except StopIteration:
                        break
                    except Exception as exc:
                        if stop.signum:  # a worker killed by the same signal: stop cleanly all the same
                            raise interrupt(stop.signum) from None
                        raise TrainingError(f"data loading failed at {where}: {_loader_error_text(exc)}") from exc
                    images = batch["image"].to(device, non_blocking=True)
                    if t.channels_last:
                        images = images.contiguous(memory_format=torch.channels_last)
                    target = batch["target"].to(device, non_blocking=True)
                    weight = batch["target_weight"].to(device, non_blocking=True)
                    with dist_utils.amp_autocast(device, amp):
                        outputs = _output_heatmaps(net(images))
                    loss = sum(criterion(o, target, weight) for o in outputs)
                    flags = dist_utils.flags_by_rank(not bool(torch.isfinite(loss)), bool(stop.signum))
                    bad_ranks = [r for r, f in enumerate(flags) if f[0]]
                    if bad_ranks:
                        on = f" on rank {', '.join(map(str, bad_ranks))}" if world > 1 else ""
                        raise TrainingError(f"non-finite loss{on} at {where}; stopped, nothing saved: the last good "
                                            f"checkpoint is {ckpt_path if ckpt_path.exists() else '(none yet)'}")
                    # A stop request seen here is honoured once this step is done: its forward pass has
                    # already moved the BatchNorm statistics, so the boundary is after the step.
                    stop_after_step = any(f[1] for f in flags)
                    optimizer.zero_grad(set_to_none=True)
                    scaler.scale(loss).backward()
                    scaler.step(optimizer)
                    scaler.update()
                    if not _params_finite(model):
                        raise TrainingError(f"non-finite weights after the optimiser step at {where} (loss was "
                                            f"{loss.item():.6g}); stopped, nothing saved: the last good checkpoint is "
                                            f"{ckpt_path if ckpt_path.exists() else '(none yet)'}")
                    loss_value = loss.item()
                    n = images.shape[0]
                    state.iteration += 1
                    state.global_step += 1
                    state.loss_sum += loss_value * n
                    state.loss_count += n
                    progress.update(state.iteration, loss=state.loss_sum / state.loss_count, lr=lr, samples=n * world)
                    if on_iteration is not None:
                        on_iteration({"epoch": epoch, "iteration": state.iteration, "global_step": state.global_step,
                                      "loss": loss_value, "model": model})
                    if stop_after_step:
                        raise interrupt(stop.signum or signal.SIGTERM)
            except RuntimeError as exc:
                # PyTorch reports a worker that died (OOM killer, a segfault in a decoder) from its
                # SIGCHLD handler, wherever the main process happens to be: name where it was.
                if isinstance(exc, TrainingError) or "DataLoader worker" not in str(exc):
                    raise
                raise TrainingError(f"data loading failed at {where}: {exc}") from exc
            finally:
                del batches  # the workers persist from epoch to epoch (see _workers_shut_down_at_exit)
            progress.close()
            train_time = time.perf_counter() - t0
            epoch_loss = dist_utils.all_mean(state.loss_sum / max(state.loss_count, 1))
            if t.lr_step_timing == "epoch_end":
                _step_scheduler(scheduler)
            state.epoch, state.iteration, state.loss_sum, state.loss_count = epoch + 1, 0, 0.0, 0
            record: dict[str, Any] = {"epoch": epoch + 1, "loss": epoch_loss, "lr": lr,
                                      "iterations": iters_per_epoch, "time_s": round(train_time, 3)}
            if (epoch + 1) % t.val_every == 0 or epoch + 1 == t.epochs:
                t1 = time.perf_counter()
                stats = evaluate(net, val_set, cfg, out, device, amp=amp, verbose=is_main and verbose)
                record.update(stats)
                record["val_time_s"] = round(time.perf_counter() - t1, 3)
                best = main_metric(stats)  # the dataset's main metric: AP for COCO-format data
                if best is not None and best[1] > state.best_ap:
                    state.best_ap, state.best_epoch = best[1], epoch + 1
                    if is_main:
                        _save_best(model, cfg, out, epoch + 1, best[1])
            state.history.append(record)
            if is_main:
                ckpt_io.save_checkpoint(snapshot(), ckpt_path)
                write_metrics(out / "metrics.jsonl", state.history)
                plot_training_curves(state.history, out / "training_curves.png")
                name = record.get(MAIN_METRIC)
                ap_text = f", {name} {record[name]:.4f} (best {state.best_ap:.4f} at epoch {state.best_epoch})" \
                    if name else ""
                logger.info("epoch %d/%d: loss %.6g, lr %.3g, %.1f s%s", epoch + 1, t.epochs, epoch_loss, lr,
                            train_time, ap_text)
    if is_main and state.best_epoch == 0 and not (out / ckpt_io.BEST_NAME).exists():
        # No AP (a split without keypoint ground truth): the last weights stand in for the best.
        _save_best(model, cfg, out, state.epoch, None)
    dist_utils.barrier()
    summary = {"best_ap": state.best_ap, "best_epoch": state.best_epoch, "epochs": state.epoch, "stats": stats,
               "history": state.history, "output_dir": str(out), "resumed_from": resumed_from,
               "final_loss": state.history[-1]["loss"] if state.history else None}
    dist_utils.cleanup()
    return summary


def _save_best(model: nn.Module, cfg: Config, out: Path, epoch: int, ap: float | None) -> None:
    """``model_best.pth``: the weights (unwrapped), config, epoch (1-based) and AP; no optimiser."""
    state = {"model": model.state_dict(), "config": to_dict(cfg), "epoch": epoch, "arch": cfg.model.arch}
    if ap is not None:
        state["AP"] = ap
    ckpt_io.save_checkpoint(state, out / ckpt_io.BEST_NAME, keep_previous=False)


def _restore(ckpt: dict[str, Any], path: Path, cfg: Config, model: nn.Module, optimizer, scheduler, scaler,
             is_main: bool) -> _State:
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
        names = {f for f in _State.__dataclass_fields__}
        state = _State(**{k: ckpt[k] for k in names if k in ckpt})
        if "rng" in ckpt and is_main:  # other ranks keep their per-rank seeds
            ckpt_io.set_rng_state(ckpt["rng"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"checkpoint {path}: optimizer/scheduler/state do not match this run "
                              f"({type(exc).__name__}: {exc})") from None
    return state

"""The training loop: ``train(cfg)`` from one CPU process to many GPUs under torchrun.

Exact resumption. The order of samples is a function of (seed, epoch) only (:class:`EpochSampler`),
and the random augmentation of a sample is a function of (seed, epoch, index)
(:class:`SeededDataset`), whatever the number of workers. A checkpoint stores the epoch and the
iteration to continue from, the model, optimizer, scheduler and grad-scaler states and the RNG
state, so a run resumed from any checkpoint (end of an epoch, or a SIGTERM/SIGINT mid-epoch)
continues with the same batches and the same random draws; on CPU with
``train.deterministic=true`` it ends with bit-identical weights.

Outputs in ``cfg.output_dir``: config.yaml, train.log, metrics.jsonl (one JSON line per epoch),
training_curves.png, checkpoint.pth (latest, with .prev), model_best.pth (best AP), results/.
"""

import json
import logging
import math
import os
import random
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from pose.config import Config, config_diff, from_dict, save_config, to_dict
from pose.engine import distributed as dist_utils
from pose.engine.checkpoint import CheckpointError, find_resume_checkpoint, load_checkpoint, save_checkpoint
from pose.engine.curves import plot_training_curves
from pose.engine.loss import JointsMSELoss
from pose.engine.progress import Progress

logger = logging.getLogger("pose.train")

# Config keys that may change when a run is resumed; any other difference is refused.
RESUMABLE_CHANGES = ("train.workers", "train.print_freq", "train.epochs", "train.val_every",
                     "train.auto_resume", "train.max_iters_per_epoch", "data.root", "output_dir", "device")
RESUMABLE_PREFIXES = ("test.",)


class TrainingError(RuntimeError):
    """Training cannot go on (non-finite loss or weights, refused resume); the message says where."""


class EpochSampler(Sampler[int]):
    """Indices of one epoch: a permutation seeded by (seed, epoch), sharded rank::world, padded so
    every rank gets the same count, starting after ``skip`` samples of this rank's share."""

    def __init__(self, size: int, *, seed: int, shuffle: bool = True, rank: int = 0, world: int = 1):
        self.size, self.seed, self.shuffle, self.rank, self.world = size, seed, shuffle, rank, world
        self.epoch, self.skip = 0, 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.epoch, self.skip = epoch, skip

    def _indices(self) -> list[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            order = torch.randperm(self.size, generator=g).tolist()
        else:
            order = list(range(self.size))
        per_rank = math.ceil(self.size / self.world)
        order += order[: per_rank * self.world - self.size]
        return order[self.rank::self.world]

    def __iter__(self):
        return iter(self._indices()[self.skip:])

    def __len__(self) -> int:
        return max(0, math.ceil(self.size / self.world) - self.skip)


class SeededDataset(Dataset):
    """Seeds ``random`` and ``np.random`` from (seed, epoch, index) before each training sample, so
    augmentation does not depend on which worker loads it or on where a resumed epoch starts."""

    def __init__(self, dataset: Dataset, seed: int):
        self.dataset, self.seed, self.epoch = dataset, seed, 0

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        s = np.random.SeedSequence([self.seed, self.epoch, index]).generate_state(2)
        random.seed(int(s[0]))
        np.random.seed(int(s[1]))
        return self.dataset[index]


def _worker_init(_: int) -> None:
    import cv2
    cv2.setNumThreads(1)  # one core per worker: OpenCV threads would oversubscribe it
    torch.set_num_threads(1)


@dataclass
class _State:
    epoch: int = 0          # the epoch to run next
    iteration: int = 0      # iterations of that epoch already done (mid-epoch resume)
    best_ap: float = -1.0
    best_epoch: int = -1
    loss_sum: float = 0.0   # running loss of the partial epoch
    loss_count: int = 0


class _StopRequest:
    """SIGTERM / SIGINT set a flag; the loop saves a checkpoint at the next iteration boundary."""

    def __init__(self):
        self.signum = 0
        self._old = {}

    def __enter__(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def _handle(self, signum, _frame) -> None:
        if self.signum:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.signum = signum

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def _setup_logging(output_dir: Path, is_main: bool) -> None:
    root = logging.getLogger("pose")
    root.setLevel(logging.INFO)
    for h in list(root.handlers):
        if getattr(h, "_pose_train", False):
            root.removeHandler(h)
            h.close()
    if not is_main:
        return
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    fh = logging.FileHandler(output_dir / "train.log")
    fh.setFormatter(fmt)
    fh._pose_train = True
    root.addHandler(fh)
    sh = logging.StreamHandler(sys.stdout)
    sh.setFormatter(logging.Formatter("%(message)s"))
    sh._pose_train = True
    root.addHandler(sh)
    root.propagate = False


def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def build_optimizer(cfg: Config, model: nn.Module) -> torch.optim.Optimizer:
    t = cfg.train
    if t.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=t.lr, weight_decay=t.weight_decay)
    if t.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=t.lr, weight_decay=t.weight_decay)
    return torch.optim.SGD(model.parameters(), lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay,
                           nesterov=t.nesterov)


def build_scheduler(cfg: Config, optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.MultiStepLR:
    """MultiStepLR stepped after each epoch. 'epoch_start' timing (the official order, which steps
    before each epoch) is the same schedule with every milestone one epoch earlier."""
    shift = 1 if cfg.train.lr_step_timing == "epoch_start" else 0
    milestones = [max(0, m - shift) for m in cfg.train.lr_steps]
    return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=cfg.train.lr_factor)


def check_resume_config(saved: Config, current: Config, path: Path) -> None:
    """Refuse to resume when a setting that changes the run differs from the checkpoint's."""
    diff = {k: v for k, v in config_diff(saved, current).items()
            if k not in RESUMABLE_CHANGES and not k.startswith(RESUMABLE_PREFIXES)}
    if diff:
        lines = "\n".join(f"  {k}: checkpoint {a!r}, now {b!r}" for k, b_a in diff.items() for a, b in [b_a])
        raise TrainingError(f"cannot resume from {path}: the config differs in settings that change the run:\n"
                            f"{lines}\nUse the checkpoint's values, or a new output_dir to start afresh.")


def _params_finite(model: nn.Module) -> bool:
    norms = torch._foreach_norm([p.detach() for p in model.parameters()])
    return bool(torch.isfinite(torch.stack(norms)).all())


def _autocast(device: torch.device, amp: str):
    if amp == "none":
        return torch.autocast(device.type, enabled=False)
    return torch.autocast(device.type, dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


def _append_metrics(path: Path, record: dict[str, Any], keep_before_epoch: int | None = None) -> None:
    """Append one JSON line; with ``keep_before_epoch``, first drop lines of later epochs (resume)."""
    lines = []
    if path.exists():
        lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
        if keep_before_epoch is not None:
            lines = [ln for ln in lines if json.loads(ln).get("epoch", 0) < keep_before_epoch]
    lines.append(json.dumps(record))
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as fh:
        fh.write("\n".join(lines) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def train(cfg: Config, *, resume: str | os.PathLike | None = None) -> dict[str, Any]:
    """Train ``cfg``'s network; returns {'best_ap', 'best_epoch', 'epochs', 'stats', 'output_dir', ...}."""
    from pose.data import build_dataset
    from pose.engine.evaluator import evaluate
    from pose.models import build_model

    device, rank, world = dist_utils.init_distributed(cfg.device)
    is_main = rank == 0
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    _setup_logging(out, is_main)
    if cfg.train.deterministic:
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    _seed_all(cfg.seed)

    model = build_model(cfg).to(device)
    if cfg.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    train_set = build_dataset(cfg, "train")
    val_set = build_dataset(cfg, "val")
    optimizer = build_optimizer(cfg, model)
    scheduler = build_scheduler(cfg, optimizer)
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.train.amp == "fp16")
    criterion = JointsMSELoss(use_target_weight=cfg.train.use_target_weight, ohkm=cfg.train.ohkm,
                              topk=cfg.train.ohkm_topk, joint_weights=cfg.train.joint_weights).to(device)

    state = _State()
    found = None
    if resume:
        found = (Path(resume), load_checkpoint(resume))
    elif cfg.train.auto_resume:
        found = find_resume_checkpoint(out)
    if found:
        path, ckpt = found
        if "config" in ckpt:
            check_resume_config(from_dict(ckpt["config"], source=str(path)), cfg, path)
        try:
            model.load_state_dict(ckpt["model"])
            optimizer.load_state_dict(ckpt["optimizer"])
            scheduler.load_state_dict(ckpt["scheduler"])
            if "scaler" in ckpt:
                scaler.load_state_dict(ckpt["scaler"])
        except (KeyError, RuntimeError, ValueError) as exc:
            raise CheckpointError(f"checkpoint {path} does not match this run: {exc}") from None
        state = _State(**ckpt["state"])
        _set_rng_state(ckpt["rng"])
        logger.info("=> resumed from %s: epoch %d, iteration %d, best AP %.4f", path, state.epoch,
                    state.iteration, state.best_ap)
    if is_main:
        save_config(cfg, out / "config.yaml")
        logger.info("=> %s: %s%s, %.2fM parameters, %d training / %d validation crops, device %s, %d process(es)",
                    out, cfg.model.arch, "" if cfg.model.psa == "none" else f" + PSA {cfg.model.psa}",
                    sum(p.numel() for p in model.parameters()) / 1e6, len(train_set), len(val_set), device, world)

    net = model
    if world > 1:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    seeded = SeededDataset(train_set, cfg.seed)
    sampler = EpochSampler(len(train_set), seed=cfg.seed, rank=rank, world=world)
    loader = DataLoader(seeded, batch_size=cfg.train.batch_size, sampler=sampler, num_workers=cfg.train.workers,
                        pin_memory=device.type == "cuda", drop_last=False, worker_init_fn=_worker_init,
                        persistent_workers=False)
    iters_per_epoch = len(loader) if not cfg.train.max_iters_per_epoch else min(
        len(loader), cfg.train.max_iters_per_epoch)
    stats: dict[str, float] = {}
    t = cfg.train

    def snapshot() -> dict[str, Any]:
        return {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(), "state": vars(state).copy(),
                "rng": _rng_state(), "config": to_dict(cfg), "epoch": state.epoch, "best_ap": state.best_ap,
                "arch": cfg.model.arch}

    with _StopRequest() as stop:
        while state.epoch < t.epochs:
            epoch = state.epoch
            sampler.set_epoch(epoch, skip=state.iteration * t.batch_size)
            seeded.epoch = epoch
            net.train()
            lr = optimizer.param_groups[0]["lr"]
            progress = Progress(f"epoch {epoch + 1}/{t.epochs}", iters_per_epoch, start=state.iteration,
                                enabled=is_main, print_freq=t.print_freq)
            t0 = time.perf_counter()
            for batch in loader:
                if state.iteration >= iters_per_epoch:
                    break
                images = batch["image"].to(device, non_blocking=True)
                if t.channels_last:
                    images = images.contiguous(memory_format=torch.channels_last)
                target = batch["target"].to(device, non_blocking=True)
                weight = batch["target_weight"].to(device, non_blocking=True)
                with _autocast(device, t.amp):
                    output = net(images)
                loss = criterion(output, target, weight)
                if not torch.isfinite(loss):
                    raise TrainingError(f"non-finite loss ({loss.item()}) at epoch {epoch + 1}, iteration "
                                        f"{state.iteration + 1}; the last good checkpoint is {out / 'checkpoint.pth'}")
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                if not _params_finite(model):
                    raise TrainingError(f"non-finite weights after the step of epoch {epoch + 1}, iteration "
                                        f"{state.iteration + 1}; the last good checkpoint is "
                                        f"{out / 'checkpoint.pth'}")
                state.iteration += 1
                state.loss_sum += loss.item() * images.shape[0]
                state.loss_count += images.shape[0]
                progress.update(state.iteration, loss=state.loss_sum / state.loss_count, lr=lr,
                                samples=images.shape[0] * world)
                if dist_utils.any_rank(bool(stop.signum)):
                    if is_main:
                        save_checkpoint(snapshot(), out / "checkpoint.pth")
                        logger.info("=> stopped by signal at epoch %d, iteration %d; checkpoint saved to %s; "
                                    "run the same command to resume", epoch + 1, state.iteration,
                                    out / "checkpoint.pth")
                    dist_utils.cleanup()
                    raise SystemExit(128 + (stop.signum or signal.SIGTERM))
            progress.close()
            train_time = time.perf_counter() - t0
            epoch_loss = dist_utils.all_mean(state.loss_sum / max(state.loss_count, 1))
            scheduler.step()
            state.epoch, state.iteration, state.loss_sum, state.loss_count = epoch + 1, 0, 0.0, 0

            record = {"epoch": epoch + 1, "loss": epoch_loss, "lr": lr, "train_time_s": round(train_time, 2)}
            if (epoch + 1) % t.val_every == 0 or epoch + 1 == t.epochs:
                stats = evaluate(net, val_set, cfg, out, device, amp=t.amp, verbose=is_main)
                record.update(stats)
                ap = stats.get("AP", -1.0)
                if ap > state.best_ap:
                    state.best_ap, state.best_epoch = ap, epoch + 1
                    if is_main:
                        save_checkpoint({"model": model.state_dict(), "config": to_dict(cfg), "epoch": epoch + 1,
                                         "AP": ap, "arch": cfg.model.arch}, out / "model_best.pth",
                                        keep_previous=False)
            if is_main:
                save_checkpoint(snapshot(), out / "checkpoint.pth")
                _append_metrics(out / "metrics.jsonl", record, keep_before_epoch=epoch + 1)
                plot_training_curves(out / "metrics.jsonl", out / "training_curves.png")
                ap_text = f", AP {record['AP']:.4f}" if "AP" in record else ""
                logger.info("epoch %d/%d: loss %.6f, lr %.2e, %.1f s%s", epoch + 1, t.epochs, epoch_loss, lr,
                            train_time, ap_text)
    if is_main and state.best_epoch < 0:  # no validation ran (e.g. no keypoint ground truth)
        save_checkpoint({"model": model.state_dict(), "config": to_dict(cfg), "epoch": state.epoch,
                         "arch": cfg.model.arch}, out / "model_best.pth", keep_previous=False)
    summary = {"best_ap": state.best_ap, "best_epoch": state.best_epoch, "epochs": state.epoch, "stats": stats,
               "output_dir": str(out)}
    dist_utils.cleanup()
    return summary

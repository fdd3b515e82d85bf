"""The training loop: ``train(cfg)``, from one CPU process to many GPUs under torchrun.

Outputs in ``cfg.output_dir``: ``config.yaml`` (the merged config), ``train.log``,
``metrics.jsonl`` (one JSON line per epoch), ``training_curves.png``, ``checkpoint.pth`` (latest,
the one before it as ``checkpoint.prev.pth``), ``model_best.pth`` (best validation AP),
``results/`` (the evaluator's files) and, with ``train.tensorboard=true``, ``tensorboard/``.

A run is :func:`set_up` (the objects of :class:`Run`), then :func:`train_one_epoch` and
:func:`end_epoch` (LR step, validation, checkpoint, logs) until ``train.epochs`` are done.

Exact resumption
----------------
* The order of the samples is a function of (seed, epoch) only, and the random augmentation of a
  sample a function of (seed, epoch, index), whatever the number of workers
  (:mod:`pose.engine.sampling`).
* A checkpoint holds everything a run needs to continue (:mod:`pose.engine.resume`), including
  the position inside an epoch.
* Resuming skips ``iteration * batch_size`` samples of the epoch's order without loading them.
  So a run resumed from any checkpoint (end of an epoch, or SIGTERM/SIGINT mid-epoch) sees the
  same batches with the same augmentation and, on CPU, ends with bit-identical weights and the same
  metrics (all but the wall-clock ``time_s``); on GPU up to non-deterministic kernels
  (``train.deterministic=true`` forbids them). A SIGKILL loses the work since the last checkpoint
  (one epoch at most); the resumed run redoes it identically. Resuming with a different number of
  processes continues correctly but not identically (the shards differ); it is logged.

Signals (:mod:`pose.engine.stopping`): SIGTERM and SIGINT (Ctrl-C) are honoured at the next
iteration boundary: every rank agrees to stop, rank 0 saves ``checkpoint.pth`` and
:class:`TrainingInterrupted` is raised. A second Ctrl-C stops at once.

Faults: a non-finite loss (any rank) or non-finite weights after a step raise :class:`TrainingError`
naming the epoch and iteration; nothing is saved, so the last good checkpoint stays. A resume whose
config differs in anything but ``RESUMABLE_CHANGES`` is refused (:class:`ResumeConfigError`).

Compilation (``train.compile``, :func:`pose.runtime.resolve_compile`) applies to the training
forward and backward passes; validation runs the same weights eagerly, and checkpoints hold the
uncompiled module's state_dict, so a run may be resumed with compilation on or off.
"""

import gc
import logging
import math
import os
import random
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from pose import runtime
from pose.config import Config, loss_joint_weights, save_config
from pose.data import build_dataset, with_dataset_keypoints
from pose.engine import checkpoint as ckpt_io
from pose.engine.curves import plot_training_curves
from pose.engine.evaluator import evaluate, results_paths
from pose.engine.logging_utils import Progress, setup_logging, teardown_logging, write_metrics
from pose.engine.loss import build_loss
from pose.engine.optim import build_optimizer, build_scheduler, step_scheduler
from pose.engine.protocols import dataset_protocol, main_metric
from pose.engine.resume import ResumeConfigError, TrainState, find_checkpoint, restore, save_best, training_checkpoint
from pose.engine.sampling import build_train_loader, seed_epoch_loader
from pose.engine.stopping import (
    StopRequest,
    TrainingError,
    TrainingInterrupted,
    dead_workers,
    loader_error_text,
    workers_shut_down_at_exit,
)
from pose.engine.tensorboard_log import TensorBoardLog, open_tensorboard
from pose.models import build_model, load_for_finetuning

logger = logging.getLogger("pose.train")

__all__ = ["ResumeConfigError", "Run", "TrainingError", "TrainingInterrupted", "end_epoch", "set_up", "train",
           "train_one_epoch"]

OnIteration = Callable[[dict[str, Any]], None]


@dataclass
class Run:
    """The objects of one training run (one rank's)."""

    cfg: Config
    out: Path
    device: torch.device
    rank: int
    world: int
    amp: str                      # resolved train.amp: none, bf16 or fp16
    model: nn.Module              # unwrapped and uncompiled: checkpoints, evaluation, weight checks
    net: nn.Module                # what trains: model, DDP-wrapped and/or compiled
    criterion: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    loader: DataLoader
    val_set: Any
    iters_per_epoch: int
    state: TrainState
    board: TensorBoardLog | None = None
    resumed_from: str | None = None
    verbose: bool = True

    @property
    def metric(self) -> str:
        """The stat that selects model_best.pth: AP, or Mean (PCKh@0.5) for MPII."""
        return main_metric(dataset_protocol(self.val_set))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def ckpt_path(self) -> Path:
        return self.out / ckpt_io.CHECKPOINT_NAME


def train(cfg: Config, *, resume: str | os.PathLike | None = None, on_iteration: OnIteration | None = None,
          verbose: bool = True) -> dict[str, Any]:
    """Train ``cfg``'s network (see the module docstring); every rank calls it under torchrun.

    ``resume``: a checkpoint to continue from (default: ``output_dir/checkpoint.pth`` when
    ``train.auto_resume``). ``on_iteration``: called after every training step with a dict
    {epoch (0-based), iteration (done in that epoch), global_step, loss, model}. Returns
    {'best_ap', 'best_epoch', 'epochs', 'stats' (last validation), 'history', 'output_dir',
    'resumed_from', 'final_loss'}. Raises :class:`TrainingInterrupted` on SIGTERM/SIGINT (after
    saving), :class:`TrainingError`, :class:`ResumeConfigError`, :class:`CheckpointError`.
    """
    device, rank, world = runtime.init_distributed(cfg.device)
    out = Path(cfg.output_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TrainingError(f"cannot create output_dir {out}: {exc.strerror or exc}") from None
    handlers = setup_logging(out, is_main=rank == 0, verbose=verbose)
    deterministic_before = torch.are_deterministic_algorithms_enabled()
    try:
        run = set_up(cfg, device=device, rank=rank, world=world, resume=resume, verbose=verbose)
        return _train(run, on_iteration)
    except (TrainingInterrupted, KeyboardInterrupt):
        raise
    except BaseException as exc:
        if world > 1:
            logger.error("%s", runtime.describe_failure(exc))
        raise
    finally:
        torch.use_deterministic_algorithms(deterministic_before)
        teardown_logging(handlers)


def _train(run: Run, on_iteration: OnIteration | None) -> dict[str, Any]:
    """The epochs of a set-up run, then the summary."""
    t, state = run.cfg.train, run.state
    stats: dict[str, float] = {}
    if state.epoch >= t.epochs:
        logger.info("=> nothing to do: %d of %d epochs already done (raise train.epochs to train longer)",
                    state.epoch, t.epochs)
    try:
        with StopRequest() as stop, workers_shut_down_at_exit(run.loader):
            while state.epoch < t.epochs:
                if runtime.any_rank(bool(stop.signum)):
                    raise _interrupt(run, stop.signum or signal.SIGTERM)
                epoch_stats = end_epoch(run, *train_one_epoch(run, stop, on_iteration))
                stats = epoch_stats if epoch_stats is not None else stats
    finally:
        if run.board is not None:
            run.board.close()
    if run.is_main and state.best_epoch == 0 and not (run.out / ckpt_io.BEST_NAME).exists():
        # No AP (a split without keypoint ground truth): the last weights stand in for the best.
        save_best(run.model, run.cfg, run.out, state.epoch, None)
    runtime.barrier()
    summary = {"best_ap": state.best_ap, "best_epoch": state.best_epoch, "epochs": state.epoch, "stats": stats,
               "history": state.history, "output_dir": str(run.out), "resumed_from": run.resumed_from,
               "final_loss": state.history[-1]["loss"] if state.history else None}
    if run.world > 1:
        # DDP's reducer holds the process group: drop the wrapper (collected now, it may sit in a
        # reference cycle) so that the group goes here and not at interpreter exit, where gloo's
        # worker threads, still holding tensors, can abort the process.
        run.net = run.model
        gc.collect()
    runtime.cleanup()
    return summary


# --- the loop ---------------------------------------------------------------------------------------------
def train_one_epoch(run: Run, stop: StopRequest, on_iteration: OnIteration | None) -> tuple[float, float, int]:
    """The rest of epoch ``run.state.epoch`` (all of it, or what a mid-epoch checkpoint left).

    Returns (the epoch's LR, seconds, samples trained in this call over all ranks)."""
    t, state = run.cfg.train, run.state
    epoch = state.epoch
    if t.lr_step_timing == "epoch_start" and state.iteration == 0:
        step_scheduler(run.scheduler)  # official order: before the epoch
    lr = run.optimizer.param_groups[0]["lr"]
    seed_epoch_loader(run.loader, seed=run.cfg.seed, epoch=epoch, rank=run.rank, skip=state.iteration * t.batch_size)
    run.net.train()
    progress = Progress(f"epoch {epoch + 1}/{t.epochs}", run.iters_per_epoch, start=state.iteration,
                        enabled=run.is_main, print_freq=t.print_freq, redraw=run.verbose)
    t0, samples = time.perf_counter(), 0
    batches = iter(run.loader)
    where = f"epoch {epoch + 1}, iteration {state.iteration + 1}"
    try:
        while state.iteration < run.iters_per_epoch:
            where = f"epoch {epoch + 1}, iteration {state.iteration + 1}"
            batch = _next_batch(run, batches, stop, where)
            if batch is None:
                break
            loss, n, stop_after_step = _train_step(run, batch, stop, where)
            state.iteration += 1
            state.global_step += 1
            state.loss_sum += loss * n
            state.loss_count += n
            samples += n * run.world
            progress.update(state.iteration, loss=state.loss_sum / state.loss_count, lr=lr, samples=n * run.world)
            if run.board is not None:
                run.board.step(state.global_step, loss=loss, lr=lr)
            if on_iteration is not None:
                on_iteration({"epoch": epoch, "iteration": state.iteration, "global_step": state.global_step,
                              "loss": loss, "model": run.model})
            if stop_after_step:
                raise _interrupt(run, stop.signum or signal.SIGTERM)
    except RuntimeError as exc:
        # PyTorch reports a worker that died (OOM killer, a segfault in a decoder) from its
        # SIGCHLD handler, wherever the main process happens to be: name where it was.
        if isinstance(exc, TrainingError) or "DataLoader worker" not in str(exc):
            raise
        raise TrainingError(f"data loading failed at {where}: {exc}") from exc
    finally:
        del batches  # the workers persist from epoch to epoch (see workers_shut_down_at_exit)
    progress.close()
    return lr, time.perf_counter() - t0, samples


def _next_batch(run: Run, batches, stop: StopRequest, where: str) -> dict[str, torch.Tensor] | None:
    """The next batch, None at the end of the loader; a loading error names ``where`` it happened."""
    try:
        return next(batches)
    except StopIteration:
        return None
    except Exception as exc:
        if stop.signum:  # a worker killed by the same signal: stop cleanly all the same
            raise _interrupt(run, stop.signum) from None
        text = loader_error_text(exc)
        if "DataLoader worker" not in str(exc):  # not a worker's own error: did one die?
            dead = dead_workers(batches)
            if dead:
                text = f"DataLoader worker (pid(s) {', '.join(map(str, dead))}) exited unexpectedly " \
                       f"({type(exc).__name__}{': ' + text if text else ''})"
        raise TrainingError(f"data loading failed at {where}: {text}") from exc


def _train_step(run: Run, batch: dict[str, torch.Tensor], stop: StopRequest, where: str) -> tuple[float, int, bool]:
    """Forward, checks, backward and optimiser step on one batch -> (loss, samples, stop after it)."""
    device, t = run.device, run.cfg.train
    images = batch["image"].to(device, non_blocking=True)
    if t.channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    target = batch["target"].to(device, non_blocking=True)
    weight = batch["target_weight"].to(device, non_blocking=True)
    with runtime.amp_autocast(device, run.amp):
        outputs = _supervised_outputs(run.net(images))
    loss = sum(run.criterion(o, target, weight) for o in outputs)
    flags = runtime.flags_by_rank(not bool(torch.isfinite(loss)), bool(stop.signum))
    bad_ranks = [r for r, f in enumerate(flags) if f[0]]
    if bad_ranks:
        on = f" on rank {', '.join(map(str, bad_ranks))}" if run.world > 1 else ""
        raise TrainingError(f"non-finite loss{on} at {where}; stopped, nothing saved: the last good "
                            f"checkpoint is {_last_good(run)}")
    # A stop request seen here is honoured once this step is done: its forward pass has already
    # moved the BatchNorm statistics, so the boundary is after the step.
    stop_after_step = any(f[1] for f in flags)
    run.optimizer.zero_grad(set_to_none=True)
    run.scaler.scale(loss).backward()
    run.scaler.step(run.optimizer)
    run.scaler.update()
    if not _params_finite(run.model):
        raise TrainingError(f"non-finite weights after the optimiser step at {where} (loss was {loss.item():.6g}); "
                            f"stopped, nothing saved: the last good checkpoint is {_last_good(run)}")
    return loss.item(), images.shape[0], stop_after_step


def _supervised_outputs(output) -> list[torch.Tensor]:
    """Every heatmap output of the network (some return one per stage): each one gets the loss."""
    return list(output) if isinstance(output, (list, tuple)) else [output]


def _params_finite(model: nn.Module) -> bool:
    params = [p.detach() for p in model.parameters()]
    if not params:
        return True
    return bool(torch.isfinite(torch.stack(torch._foreach_norm(params))).all())


def _last_good(run: Run) -> str:
    return str(run.ckpt_path) if run.ckpt_path.exists() else "(none yet)"


def _interrupt(run: Run, signum: int) -> TrainingInterrupted:
    """Save the checkpoint (rank 0) and build the exception that reports it."""
    if run.is_main:
        ckpt_io.save_checkpoint(_snapshot(run), run.ckpt_path)
    runtime.barrier()
    exc = TrainingInterrupted(signum, run.ckpt_path, run.state.epoch, run.state.iteration)
    logger.warning("=> %s", exc)
    return exc


def _snapshot(run: Run) -> dict[str, Any]:
    return training_checkpoint(run.state, run.cfg, run.model, run.optimizer, run.scheduler, run.scaler)


# --- end of an epoch ----------------------------------------------------------------------------------------
def end_epoch(run: Run, lr: float, train_time: float, samples: int) -> dict[str, float] | None:
    """After an epoch: LR step, validation when due, checkpoint and logs (rank 0). Returns the
    validation stats, or None when the epoch was not validated."""
    t, state = run.cfg.train, run.state
    epoch = state.epoch
    epoch_loss = runtime.all_mean(state.loss_sum / max(state.loss_count, 1))
    if t.lr_step_timing == "epoch_end":
        step_scheduler(run.scheduler)
    state.epoch, state.iteration, state.loss_sum, state.loss_count = epoch + 1, 0, 0.0, 0
    record: dict[str, Any] = {"epoch": epoch + 1, "loss": epoch_loss, "lr": lr, "iterations": run.iters_per_epoch,
                              "time_s": round(train_time, 3)}
    stats = None
    if (epoch + 1) % t.val_every == 0 or epoch + 1 == t.epochs:
        stats = _validate(run, record)
    state.history.append(record)
    if run.is_main:
        ckpt_io.save_checkpoint(_snapshot(run), run.ckpt_path)
        write_metrics(run.out / "metrics.jsonl", state.history)
        plot_training_curves(state.history, run.out / "training_curves.png")
        metric = run.metric
        ap_text = f", {metric} {record[metric]:.4f} (best {state.best_ap:.4f} at epoch {state.best_epoch})" \
            if metric in record else ""
        logger.info("epoch %d/%d: loss %.6g, lr %.3g, %.1f s%s", epoch + 1, t.epochs, epoch_loss, lr, train_time,
                    ap_text)
    if run.board is not None:
        run.board.epoch(state.global_step, record, samples_per_s=samples / max(train_time, 1e-9), stats=stats)
        if stats is not None:
            results_file, _ = results_paths(run.out, run.val_set.image_set)
            run.board.predictions(state.global_step, results_file, run.val_set, run.cfg.test.kpt_score_thresh)
    return stats


def _validate(run: Run, record: dict[str, Any]) -> dict[str, float]:
    """The validation stats of the current weights (eager, uncompiled) into ``record``; keeps
    model_best.pth (best main metric)."""
    state = run.state
    t1 = time.perf_counter()
    stats = evaluate(run.model, run.val_set, run.cfg, run.out, run.device, amp=run.amp,
                     verbose=run.is_main and run.verbose)
    record.update(stats)
    record["val_time_s"] = round(time.perf_counter() - t1, 3)
    ap = stats.get(run.metric)
    if ap is not None and ap >= state.best_ap:  # official: a tie moves the best to the later epoch
        state.best_ap, state.best_epoch = float(ap), state.epoch
        if run.is_main:
            save_best(run.model, run.cfg, run.out, state.epoch, float(ap), run.metric)
    return stats


# --- set-up -------------------------------------------------------------------------------------------------
def set_up(cfg: Config, *, device: torch.device, rank: int, world: int, resume: str | os.PathLike | None = None,
           verbose: bool = True) -> Run:
    """Everything a run needs: model, loss, optimiser, schedule, state (fresh or from a checkpoint),
    data, output folder and, last, the training module (DDP, compiled)."""
    t, out = cfg.train, Path(cfg.output_dir)
    is_main = rank == 0
    _configure_determinism(t.deterministic, device)
    malloc = runtime.configure_cpu_malloc(cfg.cpu_malloc)
    if is_main:
        logger.info("=> %s", malloc)
    # The training data resolve the keypoint set (data.keypoints, model.num_joints) before anything
    # is built from the config; the resolved config is what gets saved and checked on resume.
    train_set = build_dataset(cfg, "train")
    cfg = with_dataset_keypoints(cfg, train_set)
    val_set = build_dataset(cfg, "val")
    model = _build_model(cfg, device, rank, is_main)
    criterion = build_loss(use_target_weight=t.use_target_weight, ohkm=t.ohkm, ohkm_topk=t.ohkm_topk,
                           joint_weights=loss_joint_weights(cfg, train_set.keypoints),
                           num_joints=cfg.model.num_joints).to(device)
    optimizer = build_optimizer(model, name=t.optimizer, lr=t.lr, weight_decay=t.weight_decay, momentum=t.momentum,
                                nesterov=t.nesterov)
    scheduler = build_scheduler(optimizer, lr_steps=t.lr_steps, lr_factor=t.lr_factor, schedule=t.lr_schedule,
                                epochs=t.epochs, min_lr=t.min_lr)
    amp = runtime.resolve_amp(t.amp, device)
    scaler = torch.amp.GradScaler(device.type, enabled=amp == "fp16")
    state, resumed_from = _start_or_resume(cfg, resume, out, model, optimizer, scheduler, scaler, world, is_main)
    loader = build_train_loader(train_set, seed=cfg.seed, batch_size=t.batch_size, workers=t.workers, rank=rank,
                                world=world, pin_memory=device.type == "cuda")
    iters_per_epoch = math.ceil(loader.sampler.per_rank / t.batch_size)
    if t.max_iters_per_epoch:
        iters_per_epoch = min(iters_per_epoch, t.max_iters_per_epoch)
    # A resumed run hides the steps the interrupted one logged after its checkpoint (a SIGKILL).
    board = open_tensorboard(out, enabled=t.tensorboard, is_main=is_main,
                             purge_step=state.global_step + 1 if resumed_from else None)
    net, compiled = _training_module(cfg, model, device, world, is_main)
    run = Run(cfg=cfg, out=out, device=device, rank=rank, world=world, amp=amp, model=model, net=net,
              criterion=criterion, optimizer=optimizer, scheduler=scheduler, scaler=scaler, loader=loader,
              val_set=val_set, iters_per_epoch=iters_per_epoch, state=state, board=board, resumed_from=resumed_from,
              verbose=verbose)
    if is_main:
        _prepare_output(run, len(train_set), compiled)
    return run


def _configure_determinism(deterministic: bool, device: torch.device) -> None:
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True


def _build_model(cfg: Config, device: torch.device, rank: int, is_main: bool) -> nn.Module:
    """The network on ``device``: the same initial weights on every rank (DDP also broadcasts rank
    0's), then per-rank random streams."""
    _seed_everything(cfg.seed)
    model = build_model(cfg, verbose=False)
    report = getattr(model, "pretrained_report", None)
    if report is not None and is_main:
        logger.info("=> ImageNet backbone %s: %s", cfg.model.pretrained, report)
    if cfg.model.finetune_from:  # another keypoint set's weights: all but a final layer of another size
        report = load_for_finetuning(model, cfg.model.finetune_from)
        if is_main:
            logger.info("=> fine-tuning from %s", report)
    _seed_everything(cfg.seed + rank)
    model.to(device)
    if cfg.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _start_or_resume(cfg: Config, resume, out: Path, model: nn.Module, optimizer, scheduler, scaler, world: int,
                     is_main: bool) -> tuple[TrainState, str | None]:
    """A fresh :class:`TrainState`, or the one of the checkpoint to resume from (loaded into the objects)."""
    found = find_checkpoint(resume, out, cfg.train.auto_resume)
    if not found:
        return TrainState(world_size=world), None
    path, ckpt = found
    state = restore(ckpt, path, cfg, model, optimizer, scheduler, scaler, is_main)
    if state.world_size != world:
        logger.warning("checkpoint %s was written by %d process(es), this run has %d: the run continues, "
                       "but not identically to an uninterrupted one (the data shards differ)", path,
                       state.world_size, world)
        state.world_size = world
    logger.info("=> resumed from %s: %d epoch(s) done, iteration %d of the next, best AP %.4f", path,
                state.epoch, state.iteration, state.best_ap)
    return state, str(path)


def _training_module(cfg: Config, model: nn.Module, device: torch.device, world: int,
                     is_main: bool) -> tuple[nn.Module, bool]:
    """``model`` wrapped for training: DDP across processes, then ``torch.compile`` per ``train.compile``."""
    net = model
    if world > 1:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    compiled, why = runtime.resolve_compile(cfg.train.compile, device, deterministic=cfg.train.deterministic)
    if compiled:
        net = runtime.compile_model(net)
    elif cfg.train.compile == "true" and is_main:
        logger.warning("=> %s: training eagerly (uncompiled) instead; train.compile=false silences this", why)
    return net, compiled


def _prepare_output(run: Run, train_size: int, compiled: bool) -> None:
    """Rank 0: stale temporary files removed, config.yaml, the run's description, and metrics and
    curves rebuilt from a resumed checkpoint's history (a kill may have cut them short)."""
    cfg, out, t = run.cfg, run.out, run.cfg.train
    for stale in out.glob(".*.tmp"):  # temporary files of writes cut short by a kill
        if stale.name.startswith((f".{ckpt_io.CHECKPOINT_NAME}.", f".{ckpt_io.BEST_NAME}.", ".metrics.jsonl.",
                                  ".training_curves.png.")):
            stale.unlink(missing_ok=True)
    save_config(cfg, out / "config.yaml")
    precision = {"none": "fp32", "bf16": "bf16 autocast", "fp16": "fp16 autocast"}[run.amp]
    logger.info("=> %s: %s%s, %.3fM parameters, %d training / %d validation crops, device %s, %d process(es), "
                "batch %d per process, precision %s%s%s", out, cfg.model.arch,
                "" if cfg.model.psa == "none" else f" + PSA {cfg.model.psa} ({cfg.model.psa_variant})",
                sum(p.numel() for p in run.model.parameters()) / 1e6, train_size, len(run.val_set), run.device,
                run.world, t.batch_size, precision, " (train.amp=auto)" if t.amp == "auto" else "",
                ", compiled (torch.compile, inductor)" if compiled else "")
    if run.state.history:
        write_metrics(out / "metrics.jsonl", run.state.history)
        plot_training_curves(run.state.history, out / "training_curves.png")

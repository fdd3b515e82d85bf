"""Evaluation: batched inference with flip test, rescoring, OKS NMS, COCO results and AP.

The official pipeline (``lib/core/function.py`` ``validate``, ``lib/dataset/coco.py`` ``evaluate``):

1. every crop of the dataset (ground-truth or detection boxes) through the network; with flip
   test, the mirrored crop too, its heatmaps flipped back (``codec.flip_back``, shifted one pixel
   for the Gaussian codec when ``shift_heatmap``) and averaged with the unflipped ones;
2. decoding by the codec (heatmap px, maxima as joint scores) and mapping to image px with each
   crop's centre and scale;
3. rescoring: instance score = box score x mean of the joint scores above ``kpt_score_thresh``
   (0 when none is above);
4. OKS NMS per image at ``oks_nms_thresh`` (or soft OKS NMS), areas ``prod(scale * pixel_std)``;
5. the kept instances written as COCO keypoint results, evaluated by ``COCOeval`` from that file.

Every step that depends on the joints takes the dataset's keypoint set (``dataset.keypoints``):
the flip index (through the codec) and the OKS sigmas of NMS and of the evaluation. On
ground-truth boxes, PCK / AUC / EPE (:mod:`pose.engine.metrics`) are added to the stats.

Under ``torch.distributed`` each rank infers the shard ``indices rank::world``; rank 0 gathers the
predictions, post-processes, writes and evaluates, and the stats are broadcast to every rank.
"""

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Subset

from pose import runtime
from pose.config import Config
from pose.data.image_io import prepare_opencv_for_fork
from pose.data.topdown import decode_to_image, network_heatmaps, rescore
from pose.engine.coco_eval import STAT_NAMES, format_stats_table
from pose.engine.metrics import keypoint_metrics
from pose.engine.nms import nms_per_image
from pose.engine.protocols import dataset_protocol, finish_mpii, results_file_stats, stats_table
from pose.engine.results_io import write_json_atomic, write_keypoint_results

logger = logging.getLogger(__name__)

__all__ = ["Predictions", "STAT_NAMES", "evaluate", "format_stats_table", "postprocess", "rescore",
           "results_paths", "run_inference"]


@dataclass
class Predictions:
    """Decoded predictions of N crops.

    coords (N, K, 2) float32 image px; maxvals (N, K) float32 joint scores (heatmap maxima);
    centers, scales (N, 2) float32 of the crops (scale in pixel_std units); areas (N,) float64
    image px^2 (``scale[0] * scale[1] * pixel_std**2``); box_scores (N,) float64; image_ids (N,)
    int64; indices (N,) int64 dataset indices of the crops.
    """

    coords: np.ndarray
    maxvals: np.ndarray
    centers: np.ndarray
    scales: np.ndarray
    areas: np.ndarray
    box_scores: np.ndarray
    image_ids: np.ndarray
    indices: np.ndarray

    def __len__(self) -> int:
        return int(self.coords.shape[0])

    def keypoints(self) -> np.ndarray:
        """(N, K, 3) float32: image px x, y and the joint score."""
        return np.concatenate([self.coords, self.maxvals[..., None]], axis=2).astype(np.float32)

    @classmethod
    def empty(cls, num_joints: int) -> "Predictions":
        return cls(coords=np.zeros((0, num_joints, 2), np.float32),
                   maxvals=np.zeros((0, num_joints), np.float32),
                   centers=np.zeros((0, 2), np.float32), scales=np.zeros((0, 2), np.float32),
                   areas=np.zeros(0), box_scores=np.zeros(0), image_ids=np.zeros(0, np.int64),
                   indices=np.zeros(0, np.int64))

    @classmethod
    def concatenate(cls, parts: list["Predictions"], num_joints: int) -> "Predictions":
        """Join parts (e.g. the shards of all ranks), ordered by dataset index."""
        parts = [p for p in parts if p is not None and len(p)]
        if not parts:
            return cls.empty(num_joints)
        joined = cls(**{name: np.concatenate([getattr(p, name) for p in parts])
                        for name in cls.__dataclass_fields__})
        order = np.argsort(joined.indices, kind="stable")
        return cls(**{name: getattr(joined, name)[order] for name in cls.__dataclass_fields__})


def _unwrap(model: nn.Module) -> nn.Module:
    # Evaluating through DDP would sync buffers on each forward; ranks may run different batch counts.
    if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
        return model.module
    return model


def run_inference(model: nn.Module, loader, codec, *, flip_test: bool, shift_heatmap: bool, refine: str,
                  device: str | torch.device, amp: str = "none", channels_last: bool = False,
                  compile: bool = False) -> Predictions:
    """Predictions for every batch of ``loader`` (dicts as ``CocoKeypoints`` items, default-collated).

    Each batch: ``image`` (B, 3, H, W) goes through ``model`` (in eval mode, under
    ``torch.inference_mode`` and optional autocast ``amp`` in 'none', 'bf16', 'fp16'); with
    ``flip_test`` the mirrored images go in the same forward pass and their heatmaps are flipped
    back with ``codec.flip_back(shift=shift_heatmap)`` and averaged (in float32). Heatmaps
    (B, K, h, w) are decoded with ``codec.decode(refine=refine)`` and mapped to image px with
    ``codec.to_image`` and the batch's ``center``/``scale``. The model's train/eval mode is restored.
    ``channels_last``: the model is converted to that memory format (in place) and fed in it.
    ``compile``: the model runs as a :class:`pose.runtime.FrozenNetwork` compiled for the loader's
    batch size (the last, shorter batch padded to it), so it compiles once per call.
    """
    device = torch.device(device)
    autocast = runtime.amp_autocast(device, amp)  # an unknown amp fails here, before the model is touched
    model = _unwrap(model)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    was_training = model.training
    model.eval()
    network = model
    if compile:
        if not getattr(loader, "batch_size", None):
            raise ValueError("compile needs a loader with a fixed batch_size (each batch is padded to it)")
        network = runtime.FrozenNetwork(model, (loader.batch_size * (2 if flip_test else 1),))
    parts: list[Predictions] = []
    try:
        with torch.inference_mode(), autocast:
            for batch in loader:
                images = batch["image"].to(device, non_blocking=True)
                heatmaps = network_heatmaps(network, images, codec, flip_test=flip_test, shift_heatmap=shift_heatmap,
                                            channels_last=channels_last).cpu().numpy()
                centers = batch["center"].numpy().astype(np.float32)
                scales = batch["scale"].numpy().astype(np.float32)
                coords, maxvals = decode_to_image(codec, heatmaps, centers, scales, refine)
                parts.append(Predictions(
                    coords=coords, maxvals=maxvals, centers=centers, scales=scales,
                    areas=np.asarray(batch["area"], dtype=np.float64).reshape(-1),
                    box_scores=np.asarray(batch["score"], dtype=np.float64).reshape(-1),
                    image_ids=np.asarray(batch["image_id"], dtype=np.int64).reshape(-1),
                    indices=np.asarray(batch["index"], dtype=np.int64).reshape(-1)))
    finally:
        model.train(was_training)
    num_joints = parts[0].maxvals.shape[1] if parts else 0
    return Predictions.concatenate(parts, num_joints)


def postprocess(preds: Predictions, *, sigmas: np.ndarray, kpt_score_thresh: float = 0.2,
                oks_thresh: float = 0.9, soft_nms: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Rescoring and OKS NMS per image with the keypoint set's ``sigmas`` (K,) -> (kept indices into
    ``preds`` (M,), instance scores (N,))."""
    scores = rescore(preds.maxvals, preds.box_scores, kpt_score_thresh)
    keep = nms_per_image(preds.keypoints(), scores, preds.areas, preds.image_ids, thresh=oks_thresh,
                         soft=soft_nms, sigmas=sigmas)
    return keep, scores


def gt_box_metrics(preds: Predictions, dataset) -> dict[str, float]:
    """PCK / AUC / EPE (:mod:`pose.engine.metrics`) of every crop against its own ground-truth box
    (``dataset.records[i]``: ``joints`` (K, 3), ``box`` x, y, w, h)."""
    records = [dataset.records[i] for i in preds.indices.tolist()]
    if not records:
        return {}
    gt = np.stack([r["joints"] for r in records])
    sizes = np.array([max(float(r["box"][2]), float(r["box"][3])) for r in records])
    return keypoint_metrics(preds.coords, gt[..., :2], gt[..., 2], sizes)


def results_paths(output_dir: str | os.PathLike, image_set: str) -> tuple[Path, Path]:
    """``output_dir/results/keypoints_{set}_results.json`` and ``.../stats_{set}.json``."""
    folder = Path(output_dir) / "results"
    return folder / f"keypoints_{image_set}_results.json", folder / f"stats_{image_set}.json"


def has_keypoint_gt(dataset) -> bool:
    """Whether ``dataset`` has a keypoint annotation file with annotations (else: submission only)."""
    coco = getattr(dataset, "coco", None)
    return (getattr(dataset, "annotation_file", None) is not None and coco is not None
            and bool(coco.dataset.get("annotations")))


def _finish(preds: Predictions, dataset, cfg: Config, output_dir, verbose: bool) -> dict[str, float]:
    """Rank 0: post-process, write the results (and stats) files, evaluate."""
    protocol = dataset_protocol(dataset)
    if protocol == "mpii":  # one prediction per annotated person: no rescoring, no NMS
        return finish_mpii(preds.coords, preds.indices, dataset, output_dir, name=cfg.model.arch, verbose=verbose)
    results_file, stats_file = results_paths(output_dir, dataset.image_set)
    t0 = time.perf_counter()
    keep, scores = postprocess(preds, sigmas=dataset.keypoints.oks_sigmas, kpt_score_thresh=cfg.test.kpt_score_thresh,
                               oks_thresh=cfg.test.oks_nms_thresh, soft_nms=cfg.test.soft_nms)
    t1 = time.perf_counter()
    # Each result under its annotation's (or detection's) keypoint category, as the file numbers them.
    categories = np.array([dataset.records[i].get("category_id", 1) for i in preds.indices[keep].tolist()], np.int64)
    write_keypoint_results(results_file, preds.image_ids[keep], preds.keypoints()[keep], scores[keep],
                           category_ids=categories)
    t2 = time.perf_counter()
    logger.info("%d predictions, %d after %sOKS NMS (%.2f s); results written to %s (%.2f s)", len(preds),
                len(keep), "soft " if cfg.test.soft_nms else "", t1 - t0, results_file, t2 - t1)
    if not has_keypoint_gt(dataset):
        msg = (f"{dataset.image_set} has no keypoint ground truth: wrote the submission file {results_file} "
               "only (no AP)")
        logger.info(msg)
        if verbose:
            print(msg)
        return {}
    if len(keep) == 0:
        logger.warning("no predictions for %s: AP and AR are 0", dataset.image_set)
    stats = results_file_stats(dataset, results_file, backend=cfg.test.eval_backend)
    logger.info("%s evaluation (%s): %.2f s", protocol, cfg.test.eval_backend, time.perf_counter() - t2)
    extra = gt_box_metrics(preds, dataset) if dataset.use_gt_bbox else {}
    stats.update(extra)
    write_json_atomic(stats_file, stats, indent=2)
    if verbose:
        print(f"{dataset.image_set}: {len(keep)} instances evaluated ({cfg.test.eval_backend}), "
              f"stats written to {stats_file}")
        if extra:
            print("  ".join(f"{k} {v:.3f}" if k != "EPE" else f"EPE {v:.2f} px" for k, v in extra.items())
                  + "  (ground-truth boxes; PCK normalised by the box size, AUC by 30 px)")
        print(stats_table(protocol, stats, name=cfg.model.arch))
    return stats


def evaluate(model: nn.Module, dataset, cfg: Config, output_dir: str | os.PathLike,
             device: str | torch.device, *, amp: str = "none", channels_last: bool = False,
             compile: bool = False, verbose: bool = True) -> dict[str, float]:
    """COCO keypoint AP of ``model`` on ``dataset`` (a ``CocoKeypoints`` in evaluation mode).

    Uses ``cfg.test`` (batch_size, flip_test, shift_heatmap, refine, kpt_score_thresh,
    oks_nms_thresh, soft_nms, eval_backend) and ``cfg.train.workers`` for the loader; ``amp`` (resolved:
    'none', 'bf16', 'fp16'), ``channels_last`` and ``compile`` as :func:`run_inference`. Writes
    ``output_dir/results/keypoints_{set}_results.json`` and, when the split has keypoint ground
    truth, ``stats_{set}.json``; prints the table on rank 0 when ``verbose``.

    Returns the protocol's stats on every rank (COCO: the ten {'AP', 'AP .5', 'AP .75', 'AP (M)',
    'AP (L)', 'AR', ...}; with ground-truth boxes also 'PCK@0.05', 'AUC' and 'EPE'),
    or {} for a split without keypoint ground truth. Under ``torch.distributed`` every rank must call it.
    """
    device = runtime.resolve_device(device)
    rank, world = runtime.rank(), runtime.world_size()
    indices = range(rank, len(dataset), world)
    shard = Subset(dataset, indices) if world > 1 else dataset
    num_joints = dataset.keypoints.num_joints  # cfg.model.num_joints may still be 0 (auto)
    t0 = time.perf_counter()
    if len(indices):
        if cfg.train.workers > 0:
            prepare_opencv_for_fork()
        loader = DataLoader(shard, batch_size=cfg.test.batch_size, shuffle=False,
                            num_workers=cfg.train.workers, pin_memory=device.type == "cuda")
        preds = run_inference(model, loader, dataset.codec, flip_test=cfg.test.flip_test,
                              shift_heatmap=cfg.test.shift_heatmap, refine=cfg.test.refine, device=device,
                              amp=amp, channels_last=channels_last, compile=compile)
    else:
        preds = Predictions.empty(num_joints)
    elapsed = time.perf_counter() - t0
    logger.info("rank %d: inference on %d crops in %.1f s (%.1f crops/s)", rank, len(preds), elapsed,
                len(preds) / max(elapsed, 1e-9))
    if world == 1:
        return _finish(preds, dataset, cfg, output_dir, verbose)

    gathered = [None] * world if rank == 0 else None
    dist.gather_object(preds, gathered, dst=0)
    box: list = [None]
    if rank == 0:
        try:
            box[0] = ("ok", _finish(Predictions.concatenate(gathered, num_joints), dataset, cfg, output_dir,
                                    verbose))
        except Exception as exc:  # tell the other ranks instead of leaving them waiting
            box[0] = ("error", f"{type(exc).__name__}: {exc}")
            dist.broadcast_object_list(box, src=0)
            raise
    dist.broadcast_object_list(box, src=0)
    status, payload = box[0]
    if status != "ok":
        raise RuntimeError(f"evaluation failed on rank 0: {payload}")
    return payload

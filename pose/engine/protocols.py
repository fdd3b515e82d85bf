"""Evaluation protocols: the numbers a dataset is judged by, and the one that picks the best checkpoint.

A dataset names its protocol in ``dataset.protocol`` (``CocoKeypoints``: 'coco'; CrowdPose:
'crowdpose'; MPII: 'mpii'):

- 'coco': the ten COCOeval keypoint stats (``pose.engine.coco_eval``); main metric AP;
- 'crowdpose': the CrowdPose protocol (``pose.engine.crowdpose_eval``); main metric AP;
- 'mpii': the official PCKh table (``pose.engine.pckh``) of one prediction per annotated person
  (no rescoring or NMS), saved as the official ``pred.mat``; main metric ``Mean`` (PCKh@0.5).

The evaluator calls :func:`results_file_stats` / :func:`stats_table` for the COCO-format protocols
and :func:`finish_mpii` for MPII; the trainer keeps the checkpoint with the best
``stats[main_metric(protocol)]``.
"""

import logging
import os
from pathlib import Path

import numpy as np

from pose.engine import pckh
from pose.engine.coco_eval import STAT_NAMES as COCO_STAT_NAMES
from pose.engine.coco_eval import coco_keypoint_eval
from pose.engine.crowdpose_eval import STAT_NAMES as CROWDPOSE_STAT_NAMES
from pose.engine.crowdpose_eval import crowdpose_keypoint_eval
from pose.engine.results_io import write_json_atomic
from pose.engine.tables import metrics_table

logger = logging.getLogger(__name__)

MAIN_METRICS: dict[str, str] = {"coco": "AP", "crowdpose": "AP", "mpii": pckh.MAIN_METRIC}


def dataset_protocol(dataset) -> str:
    """The protocol of ``dataset`` ('coco' for datasets that do not name one)."""
    protocol = getattr(dataset, "protocol", "coco")
    if protocol not in MAIN_METRICS:
        raise ValueError(f"unknown evaluation protocol {protocol!r}; valid: {', '.join(MAIN_METRICS)}")
    return protocol


def main_metric(protocol: str) -> str:
    """The stat (higher is better) that selects the best checkpoint under ``protocol``."""
    try:
        return MAIN_METRICS[protocol]
    except KeyError:
        raise ValueError(f"unknown evaluation protocol {protocol!r}; valid: {', '.join(MAIN_METRICS)}") from None


def results_file_stats(dataset, results_file: str | os.PathLike, *, backend: str = "pycocotools") -> dict[str, float]:
    """The stats of a COCO-format keypoint results file against ``dataset.annotation_file``."""
    if dataset_protocol(dataset) == "crowdpose":
        return crowdpose_keypoint_eval(dataset.annotation_file, results_file, sigmas=dataset.keypoints.oks_sigmas)
    return coco_keypoint_eval(dataset.annotation_file, results_file, backend=backend,
                              sigmas=dataset.keypoints.oks_sigmas)


def stats_table(protocol: str, stats: dict[str, float], name: str | None = None) -> str:
    """The printed table of ``protocol``'s stats (Markdown)."""
    if protocol == "mpii":
        return pckh.format_pckh_table(stats, name=name)
    columns = CROWDPOSE_STAT_NAMES if protocol == "crowdpose" else COCO_STAT_NAMES
    return metrics_table(stats, columns, name=name)


def mpii_paths(output_dir: str | os.PathLike, image_set: str) -> tuple[Path, Path]:
    """``output_dir/results/pred_{set}.mat`` (official format) and ``.../stats_{set}.json``."""
    folder = Path(output_dir) / "results"
    return folder / f"pred_{image_set}.mat", folder / f"stats_{image_set}.json"


def finish_mpii(coords: np.ndarray, indices: np.ndarray, dataset, output_dir: str | os.PathLike, *,
                name: str | None = None, verbose: bool = True) -> dict[str, float]:
    """Save ``coords`` (N, 16, 2) image px of the crops ``indices`` (N,) as ``pred.mat`` and, when
    the split has ground truth, return the PCKh table (also written as ``stats_{set}.json``).

    Every annotated person must have exactly one prediction, in annotation order (the official
    file and ``gt_{set}.mat`` are matched by position).
    """
    if not np.array_equal(np.asarray(indices), np.arange(len(dataset))):
        raise ValueError(f"MPII evaluation needs one prediction per annotated person in annotation order "
                         f"(0 .. {len(dataset) - 1}); got {len(indices)} predictions")
    pred_file, stats_file = mpii_paths(output_dir, dataset.image_set)
    pckh.save_pred_mat(pred_file, coords)
    if not dataset.has_ground_truth:
        msg = f"{dataset.image_set} has no ground truth: wrote the submission file {pred_file} only (no PCKh)"
        logger.info(msg)
        if verbose:
            print(msg)
        return {}
    if not Path(dataset.gt_file).is_file():
        raise FileNotFoundError(f"MPII ground truth not found: {dataset.gt_file} (the official annot/gt_"
                                f"{dataset.image_set}.mat, with the head boxes PCKh needs); predictions were "
                                f"saved to {pred_file}")
    table = pckh.pckh_table(np.asarray(coords, np.float64) + 1.0, pckh.load_mpii_gt(dataset.gt_file))
    write_json_atomic(stats_file, table, indent=2)
    logger.info("PCKh of %s: %s", dataset.image_set, ", ".join(f"{k} {table[k]:.2f}" for k in pckh.TABLE_NAMES))
    if verbose:
        print(f"{dataset.image_set}: {len(dataset)} people evaluated (PCKh), predictions in {pred_file}, "
              f"stats in {stats_file}")
        print(pckh.format_pckh_table(table, name=name))
    return table

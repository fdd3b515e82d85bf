"""CrowdPose keypoint evaluation: the protocol of crowdposetools, with pycocotools as the engine.

crowdposetools (Jeff-sjtu/CrowdPose, ``crowdpose-api``) is a fork of the COCO API that differs
from pycocotools' ``COCOeval(iouType='keypoints')`` in these ways, reproduced here by setting
pycocotools' parameters and inputs:

- at most 20 detections per image (``params.maxDets = [20]``);
- a ground-truth person's area (for OKS and area ranges) is ``0.53 * box width * box height``
  (CrowdPose annotations carry no ``area``); here each annotation's ``area`` is set so on a copy;
- CrowdPose's OKS sigmas (``params.kpt_oks_sigmas``, from the keypoint set);
- the reported numbers: AP, AP .5, AP .75, AR, AR .5, AR .75 over all images (area range 'all';
  crowdposetools also evaluates 'medium'/'large' ranges but reports neither, so only 'all' is run),
  then AP (E)asy / (M)edium / (H)ard on the images split by their ``crowdIndex``: easy
  ``crowdIndex < 0.2``, medium ``0.2 <= crowdIndex < 0.8``, hard ``crowdIndex >= 0.8``. These are
  crowdposetools' (and faster-coco-eval's) thresholds; the CrowdPose paper describes the split
  with 0.1 and 0.8. Each split is evaluated alone (its images only) and its AP is the mean of the
  precision array, rounded to 4 decimals, as crowdposetools computes it. A split without images
  gets -1 (COCOeval's "no ground truth").
"""

import contextlib
import io
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from pose.data.json_io import load_json
from pose.engine.coco_eval import coco_api_pair
from pose.engine.results_io import EvalError, check_results
from pose.engine.tables import metrics_table
from pose.keypoints import CROWDPOSE14

logger = logging.getLogger(__name__)

STAT_NAMES: tuple[str, ...] = ("AP", "AP .5", "AP .75", "AR", "AR .5", "AR .75", "AP (E)", "AP (M)", "AP (H)")
MAIN_METRIC = "AP"
MAX_DETS = 20
AREA_FACTOR = 0.53
# crowdposetools' split: easy below the first, hard at or above the second.
EASY_BELOW = 0.2
HARD_FROM = 0.8


def crowd_index_split(images: list[dict], source: str = "ground truth") -> tuple[list[int], list[int], list[int]]:
    """Image ids (easy, medium, hard) by each image's ``crowdIndex`` (thresholds in the module docstring)."""
    easy, medium, hard = [], [], []
    for img in images:
        ci = img.get("crowdIndex")
        if isinstance(ci, bool) or not isinstance(ci, (int, float)) or not np.isfinite(ci):
            raise EvalError(f"{source}: image {img.get('id')!r} has no numeric 'crowdIndex' (got {ci!r}); "
                            "the CrowdPose protocol splits images by it")
        (easy if ci < EASY_BELOW else medium if ci < HARD_FROM else hard).append(img["id"])
    return easy, medium, hard


def _crowdpose_gt(gt_data: dict, path: Path) -> dict:
    """A copy of the ground truth with each annotation's ``area`` = 0.53 x its box area."""
    annotations = []
    for i, ann in enumerate(gt_data["annotations"]):
        box = ann.get("bbox") if isinstance(ann, dict) else None
        if not (isinstance(box, (list, tuple)) and len(box) == 4 and all(isinstance(v, (int, float)) for v in box)):
            raise EvalError(f"{path}: annotations[{i}] has no 'bbox' [x, y, w, h]; CrowdPose's person area "
                            "comes from it")
        annotations.append({**ann, "area": AREA_FACTOR * float(box[2]) * float(box[3])})
    return {**gt_data, "annotations": annotations}


def _mean_valid(values: np.ndarray) -> float:
    valid = values[values > -1]
    return float(np.mean(valid)) if valid.size else -1.0


def _summary(coco_eval) -> dict[str, float]:
    """AP/AR over all images from ``coco_eval.eval`` (area range 'all', maxDets 20)."""
    thrs = coco_eval.params.iouThrs
    precision = coco_eval.eval["precision"][:, :, :, 0, -1]  # (T, R, K)
    recall = coco_eval.eval["recall"][:, :, 0, -1]           # (T, K)
    at = {t: np.flatnonzero(np.isclose(thrs, t)) for t in (0.5, 0.75)}
    return {"AP": _mean_valid(precision), "AP .5": _mean_valid(precision[at[0.5]]),
            "AP .75": _mean_valid(precision[at[0.75]]), "AR": _mean_valid(recall),
            "AR .5": _mean_valid(recall[at[0.5]]), "AR .75": _mean_valid(recall[at[0.75]])}


def _split_ap(coco_eval, image_ids: list[int]) -> float:
    if not image_ids:
        return -1.0
    coco_eval.params.imgIds = sorted(image_ids)
    coco_eval.evaluate()
    coco_eval.accumulate()
    return round(float(np.mean(coco_eval.eval["precision"][:, :, :, 0, :])), 4)


def _load(gt_file: Path, results_file: Path, num_joints: int) -> tuple[dict, list]:
    gt_data = load_json(gt_file, "CrowdPose annotation file")
    if not isinstance(gt_data, dict) or not isinstance(gt_data.get("images"), list) \
            or not isinstance(gt_data.get("annotations"), list) or not gt_data["annotations"]:
        raise EvalError(f"{gt_file}: expected a COCO-format object with 'images' and a non-empty "
                        "'annotations' list")
    results = load_json(results_file, "keypoint results file")
    return gt_data, check_results(results, results_file, num_joints=num_joints,
                                  known_image_ids={img["id"] for img in gt_data["images"]})


def crowdpose_keypoint_eval(gt_file: str | os.PathLike, results_file: str | os.PathLike,
                            sigmas: Any = CROWDPOSE14.sigmas) -> dict[str, float]:
    """The CrowdPose numbers of ``results_file`` against ``gt_file`` -> {name: value} (:data:`STAT_NAMES`)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt_path, res_path = Path(gt_file), Path(results_file)
    sigmas = np.asarray(sigmas, dtype=np.float64)
    gt_data, results = _load(gt_path, res_path, len(sigmas))
    splits = crowd_index_split(gt_data["images"], str(gt_path))
    captured = io.StringIO()
    with contextlib.redirect_stdout(captured):
        gt, dt = coco_api_pair(COCO, _crowdpose_gt(gt_data, gt_path), results, res_path)
        coco_eval = COCOeval(gt, dt, "keypoints")
        p = coco_eval.params
        p.kpt_oks_sigmas = sigmas
        p.maxDets = [MAX_DETS]
        p.areaRng, p.areaRngLbl = [[0.0, 1e5 ** 2]], ["all"]
        coco_eval.evaluate()
        coco_eval.accumulate()
        stats = _summary(coco_eval)
        for name, ids in zip(("AP (E)", "AP (M)", "AP (H)"), splits):
            stats[name] = _split_ap(coco_eval, ids)
    logger.debug("pycocotools output:\n%s", captured.getvalue())
    logger.info("CrowdPose evaluation of %s: %s (images easy/medium/hard: %d/%d/%d)", res_path,
                ", ".join(f"{k} {v:.3f}" for k, v in stats.items()), *map(len, splits))
    return stats


def format_crowdpose_table(stats: dict[str, float], name: str | None = None) -> str:
    """The CrowdPose numbers as a Markdown table (three decimals), optionally with a first column ``name``."""
    return metrics_table(stats, STAT_NAMES, name=name, decimals=3)

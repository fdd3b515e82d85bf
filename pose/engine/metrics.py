"""Keypoint metrics that need no OKS sigmas: PCK, AUC and EPE, as mmpose reports them.

For a keypoint set without established OKS sigmas (a user's own keypoints), OKS AP depends on a
guessed sigma; these are the honest numbers. They compare each prediction with the ground truth of
its own box, so they are computed when evaluating on ground-truth boxes only. Definitions follow
mmpose (``mmpose/evaluation/functional/keypoint_eval.py`` and the ``PCKAccuracy``, ``AUC`` and
``EPE`` metrics):

- **PCK@thr** (``PCKAccuracy``, default thr 0.05, normalised by the box): a labelled joint is
  correct when ``|pred - gt| / max(box w, box h) < thr``; the accuracy of each joint is taken over
  the instances that label it, and PCK is the mean over the joints that are labelled at least once.
  Instances whose box has no size are left out.
- **AUC** (``AUC``, normalisation 30 px, 20 thresholds): the mean of the PCK accuracy (as above,
  with the distance divided by 30 px instead of the box) at thresholds ``0, 1/20, ..., 19/20``.
- **EPE** (``EPE``): the mean image-px distance over all labelled joints (pooled, not per joint).

Labelled means visibility > 0 in the annotation.
"""

import numpy as np

PCK_THRESH = 0.05
AUC_NORM_PX = 30.0
AUC_NUM_THRESHOLDS = 20

__all__ = ["AUC_NORM_PX", "AUC_NUM_THRESHOLDS", "PCK_THRESH", "keypoint_metrics", "pck_per_joint"]


def _distances(pred: np.ndarray, gt: np.ndarray, labelled: np.ndarray, norm: np.ndarray) -> np.ndarray:
    """(N, K) distances divided by ``norm`` (N,), NaN where not labelled or ``norm`` is not positive."""
    dist = np.linalg.norm(pred.astype(np.float64) - gt.astype(np.float64), axis=-1)
    norm = np.asarray(norm, dtype=np.float64).reshape(-1, 1)
    valid = labelled & (norm > 0)
    return np.where(valid, dist / np.where(norm > 0, norm, 1.0), np.nan)


def pck_per_joint(distances: np.ndarray, thresh: float) -> np.ndarray:
    """(K,) fraction of normalised distances (N, K) below ``thresh`` per joint; NaN for a joint never
    labelled."""
    valid = ~np.isnan(distances)
    below = np.where(valid, distances, np.inf) < thresh
    count = valid.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, below.sum(axis=0) / np.maximum(count, 1), np.nan)


def _mean_over_joints(acc: np.ndarray) -> float:
    finite = acc[~np.isnan(acc)]
    return float(finite.mean()) if finite.size else 0.0


def keypoint_metrics(pred: np.ndarray, gt: np.ndarray, visible: np.ndarray, box_sizes: np.ndarray, *,
                     pck_thresh: float = PCK_THRESH, auc_norm_px: float = AUC_NORM_PX,
                     auc_thresholds: int = AUC_NUM_THRESHOLDS) -> dict[str, float]:
    """PCK, AUC and EPE of predictions against their own ground truth (see the module docstring).

    Args:
        pred, gt: (N, K, 2) image px.
        visible: (N, K) ground-truth visibility (> 0: labelled).
        box_sizes: (N,) ``max(w, h)`` of each instance's ground-truth box, image px.

    Returns ``{'PCK@<thr>': ..., 'AUC': ..., 'EPE': ...}`` (PCK and AUC in [0, 1], EPE in px; with
    no labelled joint at all, PCK and AUC are 0 and EPE is NaN).
    """
    pred, gt = np.asarray(pred), np.asarray(gt)
    if pred.shape != gt.shape or pred.ndim != 3 or pred.shape[2] != 2:
        raise ValueError(f"pred and gt must both be (N, K, 2), got {pred.shape} and {gt.shape}")
    labelled = np.asarray(visible).reshape(pred.shape[:2]) > 0
    sizes = np.asarray(box_sizes, dtype=np.float64).reshape(-1)
    if sizes.shape[0] != pred.shape[0]:
        raise ValueError(f"{sizes.shape[0]} box sizes for {pred.shape[0]} instances")
    pck = _mean_over_joints(pck_per_joint(_distances(pred, gt, labelled, sizes), pck_thresh))
    px = _distances(pred, gt, labelled, np.full(len(sizes), float(auc_norm_px)))
    auc = float(np.mean([_mean_over_joints(pck_per_joint(px, i / auc_thresholds))
                         for i in range(auc_thresholds)]))
    pixels = _distances(pred, gt, labelled, np.ones(len(sizes)))
    epe = float(np.nanmean(pixels)) if (~np.isnan(pixels)).any() else float("nan")
    return {f"PCK@{pck_thresh:g}": pck, "AUC": auc, "EPE": epe}

"""Straightforward per-instance, per-joint implementations of the evaluation post-processing.

These are the loops of the official evaluation written plainly (argmax per map, a Python loop over
instances and joints for the quarter-pixel step and the heatmap -> image mapping, the rescoring
loop, greedy OKS NMS calling the OKS function once per candidate). They are the baseline of
``benchmarks/bench_eval.py`` and the reference the tests compare the vectorised code with (pytest
finds this folder through ``pythonpath`` in setup.cfg); the package never imports them. The OKS
formula itself is the package's one (``pose.engine.nms.oks_iou``), called candidate by candidate.
"""

import math

import numpy as np

from pose.engine.nms import oks_iou
from pose.keypoints import COCO17


def decode_gaussian_loops(heatmaps: np.ndarray, centers: np.ndarray, scales: np.ndarray,
                          pixel_std: float = 200.0) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian-codec decoding (argmax + official quarter step) and heatmap -> image px, per joint.

    heatmaps (N, K, h, w); centers, scales (N, 2) -> (coords (N, K, 2) float32 image px, maxvals (N, K)).
    The image mapping is the official inverse crop at rotation 0 written in closed form
    (isotropic, from ``scale[0]``): ``x_img = (x - w / 2) * scale[0] * pixel_std / w + c_x``.
    """
    n, k, h, w = heatmaps.shape
    coords = np.zeros((n, k, 2), dtype=np.float32)
    maxvals = np.zeros((n, k), dtype=np.float32)
    for i in range(n):
        for j in range(k):
            hm = heatmaps[i, j]
            idx = int(np.argmax(hm))
            val = hm.flat[idx]
            maxvals[i, j] = val
            if val > 0:
                coords[i, j] = (idx % w, idx // w)
    for i in range(n):
        for j in range(k):
            hm = heatmaps[i, j]
            px = int(math.floor(coords[i, j, 0] + 0.5))
            py = int(math.floor(coords[i, j, 1] + 0.5))
            if 1 < px < w - 1 and 1 < py < h - 1:
                diff = np.array([hm[py][px + 1] - hm[py][px - 1], hm[py + 1][px] - hm[py - 1][px]])
                coords[i, j] += (np.sign(diff) * 0.25).astype(np.float32)
    out = np.zeros((n, k, 2), dtype=np.float32)
    for i in range(n):
        factor = float(scales[i][0]) * pixel_std / w  # official: isotropic, from scale[0]
        cx, cy = float(centers[i][0]), float(centers[i][1])
        for j in range(k):
            out[i, j, 0] = (float(coords[i, j, 0]) - w * 0.5) * factor + cx
            out[i, j, 1] = (float(coords[i, j, 1]) - h * 0.5) * factor + cy
    return out, maxvals


def rescore_loops(maxvals: np.ndarray, box_scores: np.ndarray, kpt_score_thresh: float = 0.2) -> np.ndarray:
    """Official rescoring: box score x mean of the joint scores above the threshold (0 if none)."""
    out = np.zeros(len(box_scores), dtype=np.float64)
    for i in range(len(box_scores)):
        total, count = 0.0, 0
        for s in maxvals[i]:
            if s > kpt_score_thresh:
                total = total + float(s)
                count += 1
        if count != 0:
            total = total / count
        out[i] = total * float(box_scores[i])
    return out


def oks_iou_loop(g: np.ndarray, d: np.ndarray, a_g: float, a_d: np.ndarray, sigmas=COCO17.oks_sigmas,
                 vis_thresh: float | None = None) -> np.ndarray:
    """OKS of g (K, 3) against each row of d (M, K, 3), one candidate at a time (official loop)."""
    ious = np.zeros(d.shape[0])
    for m in range(d.shape[0]):
        ious[m] = oks_iou(g, d[m:m + 1], a_g, a_d[m:m + 1], sigmas=sigmas, vis_thresh=vis_thresh)[0]
    return ious


def oks_nms_loop(keypoints: np.ndarray, scores: np.ndarray, areas: np.ndarray, thresh: float = 0.9,
                 sigmas=COCO17.oks_sigmas, vis_thresh: float | None = None) -> list[int]:
    """Greedy OKS NMS on one image (official loop)."""
    if len(scores) == 0:
        return []
    kp = np.asarray(keypoints, dtype=np.float64)
    areas = np.asarray(areas, dtype=np.float64)
    order = np.asarray(scores, dtype=np.float64).argsort()[::-1]
    keep = []
    while order.size > 0:
        i = order[0]
        keep.append(int(i))
        ovr = oks_iou_loop(kp[i], kp[order[1:]], areas[i], areas[order[1:]], sigmas, vis_thresh)
        order = order[np.where(ovr <= thresh)[0] + 1]
    return keep


def soft_oks_nms_loop(keypoints: np.ndarray, scores: np.ndarray, areas: np.ndarray, thresh: float = 0.9,
                      sigmas=COCO17.oks_sigmas, vis_thresh: float | None = None, max_dets: int = 20) -> list[int]:
    """Soft OKS NMS on one image (official loop, Gaussian rescoring, at most ``max_dets`` picks)."""
    if len(scores) == 0:
        return []
    kp = np.asarray(keypoints, dtype=np.float64)
    areas = np.asarray(areas, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    order = scores.argsort()[::-1]
    scores = scores[order]
    keep = []
    while order.size > 0 and len(keep) < max_dets:
        i = order[0]
        ovr = oks_iou_loop(kp[i], kp[order[1:]], areas[i], areas[order[1:]], sigmas, vis_thresh)
        order = order[1:]
        scores = scores[1:] * np.exp(-ovr ** 2 / thresh)
        tmp = scores.argsort()[::-1]
        order, scores = order[tmp], scores[tmp]
        keep.append(int(i))
    return keep


def nms_per_image_loops(keypoints: np.ndarray, scores: np.ndarray, areas: np.ndarray, image_ids: np.ndarray,
                        thresh: float = 0.9, soft: bool = False) -> list[int]:
    """Group by image (dict of lists, first-appearance order) and run the loop NMS on each image."""
    groups: dict[int, list[int]] = {}
    for i, image_id in enumerate(image_ids):
        groups.setdefault(int(image_id), []).append(i)
    fn = soft_oks_nms_loop if soft else oks_nms_loop
    keep = []
    for idx in groups.values():
        local = fn(keypoints[idx], scores[idx], areas[idx], thresh)
        keep.extend(idx[j] for j in local)
    return keep

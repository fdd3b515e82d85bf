"""Object keypoint similarity (OKS) and OKS non-maximum suppression, vectorised with numpy.

Semantics follow the official HRNet / SimpleBaseline ``lib/nms/nms.py``:

- ``e = d^2 / (2 sigma)^2 / ((area_i + area_j) / 2 + eps) / 2`` per joint (``eps`` = ``np.spacing(1)``),
  OKS = the mean of ``exp(-e)`` over the joints. Areas are in image px^2 (the official
  ``prod(scale * 200)``); the sigmas are the keypoint set's (``KeypointSet.oks_sigmas``: for COCO,
  pycocotools' values, which are the official ones divided by 10).
- ``vis_thresh`` (official ``in_vis_thre``, unused by the official evaluation): only joints whose
  score exceeds it count. The official test reads ``list(vg > t) and list(vd > t)``, which in Python
  is the second list, so only the *candidate's* joint scores (the instance being compared against
  the kept one) decide; that is what is done here. No joint left -> OKS 0.
- Greedy NMS per image: instances in ``scores.argsort()[::-1]`` order (the official order,
  ties included); keep the first, drop those with OKS > ``thresh`` to it, repeat.
- Soft OKS NMS: the official Gaussian rescoring ``s *= exp(-oks^2 / thresh)`` after each pick,
  re-sorting the rest, at most 20 picks per image; the kept instances keep their original scores.

Frames: keypoints (N, K, 3) are image px ``x, y`` plus a score; everything is computed in float64.
The per-image functions work on one image's instances; :func:`nms_per_image` groups a whole
results set by image id (the official evaluation's grouping, images in order of first
appearance) and runs one of them on each group, bucketing images with equal instance counts so
that OKS matrices and the greedy loop are computed for many images at once.
"""

from collections.abc import Sequence

import numpy as np

SOFT_MAX_DETS = 20  # official soft_oks_nms keeps at most this many instances per image
_EPS = np.spacing(1)
_CHUNK_ELEMENTS = 1 << 17  # (images, n, K) elements processed at once: temporaries stay in cache


def _as_keypoints(keypoints, name: str = "keypoints") -> np.ndarray:
    kp = np.asarray(keypoints, dtype=np.float64)
    if kp.ndim != 3 or kp.shape[2] not in (2, 3):
        raise ValueError(f"{name} must be (N, K, 3) [x, y, score] (or (N, K, 2)), got shape {kp.shape}")
    return kp


def _variances(sigmas, num_joints: int) -> np.ndarray:
    sigmas = np.asarray(sigmas, dtype=np.float64).reshape(-1)
    if sigmas.shape[0] != num_joints:
        raise ValueError(f"{sigmas.shape[0]} sigmas for {num_joints} joints")
    return (sigmas * 2) ** 2


def joint_similarity(sq_dist: np.ndarray, area: np.ndarray | float,
                     sigmas: Sequence[float] | np.ndarray) -> np.ndarray:
    """The per-joint OKS terms ``exp(-d^2 / (2 sigma)^2 / (area + eps) / 2)`` (float64).

    ``sq_dist`` (..., K) squared image-px distances, ``area`` broadcastable to (..., 1) (image px^2:
    the ground truth's for COCO's OKS, the mean of the pair's for OKS NMS). This is the one OKS
    formula; :func:`oks_iou`, :func:`oks_matrix` and the per-keypoint accuracy use it.
    """
    sq_dist = np.asarray(sq_dist, dtype=np.float64)
    variances = _variances(sigmas, sq_dist.shape[-1])
    return np.exp(-(sq_dist / variances / (np.asarray(area, dtype=np.float64) + _EPS) / 2))


def mean_similarity(terms: np.ndarray, visible: np.ndarray | None = None) -> np.ndarray:
    """OKS: the mean of the joint terms (..., K) over the joints where ``visible`` (broadcast) is
    true (all when None); 0 where no joint is visible."""
    if visible is None:
        return terms.sum(axis=-1) / terms.shape[-1]
    visible = np.broadcast_to(visible, terms.shape)
    count = visible.sum(axis=-1)
    total = np.where(visible, terms, 0.0).sum(axis=-1)
    return np.where(count > 0, total / np.maximum(count, 1), 0.0)


def oks_iou(g: np.ndarray, d: np.ndarray, area_g: float, areas_d: np.ndarray, *,
            sigmas: Sequence[float] | np.ndarray, vis_thresh: float | None = None) -> np.ndarray:
    """OKS of one instance ``g`` (K, 3) against ``d`` (M, K, 3); areas in image px^2 -> (M,) float64.

    ``vis_thresh``: count only joints whose score in ``d`` exceeds it (see the module docstring).
    """
    g = np.asarray(g, dtype=np.float64)
    d = _as_keypoints(d, "d")
    if g.shape != d.shape[1:]:
        raise ValueError(f"g has shape {g.shape}, d rows have {d.shape[1:]}")
    areas_d = np.asarray(areas_d, dtype=np.float64).reshape(-1)
    if areas_d.shape[0] != d.shape[0]:
        raise ValueError(f"{areas_d.shape[0]} areas for {d.shape[0]} instances in d")
    sq_dist = (d[..., 0] - g[:, 0]) ** 2 + (d[..., 1] - g[:, 1]) ** 2
    terms = joint_similarity(sq_dist, ((float(area_g) + areas_d) / 2)[:, None], sigmas)
    return mean_similarity(terms, None if vis_thresh is None else d[..., 2] > vis_thresh)


def oks_matrix(keypoints: np.ndarray, areas: np.ndarray, *, sigmas: Sequence[float] | np.ndarray,
               vis_thresh: float | None = None) -> np.ndarray:
    """Pairwise OKS: ``keypoints`` (..., N, K, 3), ``areas`` (..., N) -> (..., N, N) float64.

    Entry ``[i, j]`` is ``oks_iou(keypoints[i], keypoints[j:j+1], areas[i], areas[j:j+1])``: row i is
    the kept instance, column j the candidate (only the candidate's scores matter for ``vis_thresh``).
    Leading dimensions batch independent images.
    """
    kp = np.asarray(keypoints, dtype=np.float64)
    areas = np.asarray(areas, dtype=np.float64)
    x, y = kp[..., 0], kp[..., 1]  # (..., N, K)
    dx = x[..., None, :, :] - x[..., :, None, :]  # [i, j] = d_j - g_i
    dy = y[..., None, :, :] - y[..., :, None, :]
    pair_area = (areas[..., :, None] + areas[..., None, :]) / 2
    terms = joint_similarity(dx ** 2 + dy ** 2, pair_area[..., None], sigmas)
    return mean_similarity(terms, None if vis_thresh is None else (kp[..., 2] > vis_thresh)[..., None, :, :])


def _check_inputs(keypoints, scores, areas) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    kp = _as_keypoints(keypoints)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    areas = np.asarray(areas, dtype=np.float64).reshape(-1)
    if not (kp.shape[0] == scores.shape[0] == areas.shape[0]):
        raise ValueError(f"{kp.shape[0]} keypoint sets, {scores.shape[0]} scores and {areas.shape[0]} areas "
                         "must match")
    return kp, scores, areas


def _greedy_ranked(kp: np.ndarray, areas: np.ndarray, valid: np.ndarray, thresh: float,
                   variances: np.ndarray, vis_thresh: float | None) -> np.ndarray:
    """Greedy OKS NMS of G images at once, instances already in NMS order (column r = rank r).

    kp (G, P, K, 3), areas (G, P), valid (G, P) (false for padding). At round r every image whose
    rank-r instance is still alive keeps it and drops the later ranks with OKS > thresh to it. As in
    the official loop, OKS is computed only for kept instances against the later instances still
    alive: when at most half of the remaining columns are alive in every image, the alive ones are
    packed to the left (order kept), so dropped instances stop costing work. Returns kept (G, P) bool.
    """
    g_all, width = valid.shape
    kept = np.zeros((g_all, width), dtype=bool)
    alive = valid.copy()
    pos = np.broadcast_to(np.arange(width), (g_all, width))  # column -> original rank
    x, y, score = (np.ascontiguousarray(kp[..., i]) for i in range(3))  # (G, W, K) each
    neg_variances = -variances
    r = 0
    while r < width:
        g = np.flatnonzero(alive[:, r])
        if g.size and r + 1 < width:
            # kept instances (A, K) against the later ones (A, W-r-1, K), in place:
            # t = (dx^2 + dy^2) / -variances / (2 * pair_area) is bit for bit the official
            # -((dx^2 + dy^2) / variances / pair_area / 2): negation and halving are exact.
            t = x[g, r + 1:] - x[g, r][:, None]
            t *= t
            dy = y[g, r + 1:] - y[g, r][:, None]
            dy *= dy
            t += dy
            t /= neg_variances
            t /= (2 * ((areas[g, r][:, None] + areas[g, r + 1:]) / 2 + _EPS))[..., None]
            np.exp(t, out=t)
            if vis_thresh is None:
                oks = t.sum(axis=-1) / t.shape[-1]
            else:
                vis = score[g, r + 1:] > vis_thresh
                count = vis.sum(axis=-1)
                oks = np.where(count > 0, np.where(vis, t, 0.0).sum(axis=-1) / np.maximum(count, 1), 0.0)
            alive[g, r + 1:] &= ~(oks > thresh)
        kept[g, pos[g, r]] = True
        r += 1
        remaining = alive[:, r:]
        most = int(remaining.sum(axis=1).max()) if remaining.size else 0
        if most * 2 <= width - r:  # pack: keep only the alive later columns, in order
            cols = np.argsort(~remaining, axis=1, kind="stable")[:, :most]
            x, y, score = (np.take_along_axis(v[:, r:], cols[:, :, None], axis=1) for v in (x, y, score))
            areas = np.take_along_axis(areas[:, r:], cols, axis=1)
            pos = np.take_along_axis(pos[:, r:], cols, axis=1)
            alive = np.take_along_axis(remaining, cols, axis=1)
            width, r = most, 0
    return kept


def oks_nms(keypoints: np.ndarray, scores: np.ndarray, areas: np.ndarray, thresh: float = 0.9, *,
            sigmas: Sequence[float] | np.ndarray, vis_thresh: float | None = None) -> list[int]:
    """Greedy OKS NMS on one image's instances -> kept indices, highest score first.

    Args:
        keypoints: (N, K, 3) image px + joint score.
        scores: (N,) instance scores.
        areas: (N,) instance areas in image px^2.
        thresh: an instance is dropped when its OKS to a kept one exceeds this (official 0.9).
    """
    kp, scores, areas = _check_inputs(keypoints, scores, areas)
    if kp.shape[0] == 0:
        return []
    order = scores.argsort()[::-1]
    valid = np.ones((1, order.size), dtype=bool)
    kept = _greedy_ranked(kp[order][None], areas[order][None], valid, thresh, _variances(sigmas, kp.shape[1]),
                          vis_thresh)
    return order[kept[0]].tolist()


def _soft_from_matrix(oks: np.ndarray, scores: np.ndarray, thresh: float, max_dets: int) -> list[int]:
    order = scores.argsort()[::-1]
    scores = scores[order]
    keep = []
    while order.size > 0 and len(keep) < max_dets:
        i = order[0]
        overlap = oks[i, order[1:]]
        order = order[1:]
        scores = scores[1:] * np.exp(-overlap ** 2 / thresh)
        resort = scores.argsort()[::-1]
        order, scores = order[resort], scores[resort]
        keep.append(int(i))
    return keep


def soft_oks_nms(keypoints: np.ndarray, scores: np.ndarray, areas: np.ndarray, thresh: float = 0.9, *,
                 sigmas: Sequence[float] | np.ndarray, vis_thresh: float | None = None,
                 max_dets: int = SOFT_MAX_DETS) -> list[int]:
    """Soft OKS NMS (official variant) on one image -> kept indices in pick order (at most ``max_dets``).

    After each pick the remaining scores are multiplied by ``exp(-oks^2 / thresh)`` and re-sorted.
    Only the pick order and the cut at ``max_dets`` change the output: the kept instances keep their
    original scores (as the official evaluation writes them). Shapes as :func:`oks_nms`.
    """
    kp, scores, areas = _check_inputs(keypoints, scores, areas)
    if kp.shape[0] == 0:
        return []
    return _soft_from_matrix(oks_matrix(kp, areas, sigmas=sigmas, vis_thresh=vis_thresh), scores, thresh, max_dets)


def group_by_image(image_ids: np.ndarray) -> list[np.ndarray]:
    """Indices of each image's instances, images in order of first appearance, instances in input order."""
    image_ids = np.asarray(image_ids).reshape(-1)
    if image_ids.size == 0:
        return []
    _, first, inverse = np.unique(image_ids, return_index=True, return_inverse=True)
    rank = np.empty(first.size, dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(first.size)
    group = rank[inverse.reshape(-1)]
    perm = np.argsort(group, kind="stable")
    bounds = np.cumsum(np.bincount(group, minlength=first.size))[:-1]
    return np.split(perm, bounds)


def nms_per_image(keypoints: np.ndarray, scores: np.ndarray, areas: np.ndarray, image_ids: np.ndarray, *,
                  thresh: float = 0.9, soft: bool = False, sigmas: Sequence[float] | np.ndarray,
                  vis_thresh: float | None = None) -> np.ndarray:
    """OKS NMS (or soft OKS NMS) within each image of a results set -> kept global indices (int64).

    The output lists images in order of first appearance and, within an image, the kept instances in
    the order the official NMS returns them. Shapes: keypoints (N, K, 3), scores/areas/image_ids (N,).
    """
    kp, scores, areas = _check_inputs(keypoints, scores, areas)
    groups = group_by_image(image_ids)
    if len(groups) and sum(len(g) for g in groups) != kp.shape[0]:
        raise ValueError(f"{kp.shape[0]} instances but image_ids has a different length")
    kept: list[list[int]] = [[] for _ in groups]
    sizes = np.array([len(g) for g in groups], dtype=np.int64)
    num_joints = kp.shape[1]
    variances = _variances(sigmas, num_joints)
    # NMS order per image, computed per exact size: argsort of an (images, n) array row by row is
    # the 1-D algorithm on each row, so ties resolve exactly as the official per-image argsort.
    ranked: dict[int, np.ndarray] = {}  # image -> its global indices in NMS order
    for n in np.unique(sizes):
        members = np.flatnonzero(sizes == n)
        idx = np.stack([groups[m] for m in members])
        order = scores[idx].argsort(axis=1)[:, ::-1]
        idx = np.take_along_axis(idx, order, axis=1)
        for row, m in enumerate(members):
            ranked[m] = idx[row]
    if soft:  # OKS matrices for all images of one size at once, then the picks image by image
        for n in np.unique(sizes):
            members = np.flatnonzero(sizes == n)
            per_chunk = max(1, _CHUNK_ELEMENTS // int(n * n * num_joints))
            for start in range(0, members.size, per_chunk):
                chunk = members[start:start + per_chunk]
                idx = np.stack([groups[m] for m in chunk])  # input order: the official argsort runs inside
                oks = oks_matrix(kp[idx], areas[idx], sigmas=sigmas, vis_thresh=vis_thresh)
                for row, m in enumerate(chunk):
                    local = _soft_from_matrix(oks[row], scores[idx[row]], thresh, SOFT_MAX_DETS)
                    kept[m] = idx[row][local].tolist()
        return np.asarray([i for k in kept for i in k], dtype=np.int64)
    # Greedy NMS on images bucketed by padded size (powers of two): few, large vectorised steps.
    padded = np.maximum(1, 2 ** np.ceil(np.log2(np.maximum(sizes, 1)))).astype(np.int64)
    for size in np.unique(padded):
        members = np.flatnonzero(padded == size)
        if size == 1:
            for m in members:
                kept[m] = ranked[m].tolist()
            continue
        per_chunk = max(1, _CHUNK_ELEMENTS // int(size * num_joints))
        for start in range(0, members.size, per_chunk):
            chunk = members[start:start + per_chunk]
            width = int(sizes[chunk].max())
            idx = np.zeros((chunk.size, width), dtype=np.int64)
            valid = np.zeros((chunk.size, width), dtype=bool)
            for row, m in enumerate(chunk):
                idx[row, :sizes[m]] = ranked[m]
                valid[row, :sizes[m]] = True
            keep_mask = _greedy_ranked(kp[idx], areas[idx], valid, thresh, variances, vis_thresh)
            for row, m in enumerate(chunk):
                kept[m] = idx[row][keep_mask[row]].tolist()
    return np.asarray([i for k in kept for i in k], dtype=np.int64)

"""Drawing: skeletons, heatmap overlays, image grids, and atomic image/figure writing.

All images are OpenCV-style ``np.uint8`` arrays of shape (H, W, 3) in BGR order; all
coordinates are image pixels (x right, y down) unless stated otherwise. The drawing
functions never modify their input: they return a new image.

Limbs and joints are coloured by body side (``pose.keypoints.limb_side`` /
``joint_side``): left, right and centre each have their own colour (:data:`SIDE_COLORS`),
so a left/right swap is visible at a glance. Ground truth is drawn with
:data:`GT_COLORS` (a single colour), beside or over the predictions.

Per-keypoint OKS accuracy (:func:`keypoint_oks_accuracy`) and its bar chart
(:func:`plot_keypoint_accuracy`, matplotlib with the Agg backend) are at the end.
"""

import io
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from pose.atomic_io import atomic_write_bytes, default_file_mode  # noqa: F401 (re-exported)
from pose.keypoints import KEYPOINT_NAMES, OKS_SIGMAS, SKELETON, joint_side, limb_side

# BGR colours per body side: left orange, right blue, centre magenta.
SIDE_COLORS: dict[str, tuple[int, int, int]] = {
    "left": (0, 140, 255),
    "right": (255, 120, 0),
    "centre": (200, 0, 200),
}
# Ground truth: one colour (green) for every side.
GT_COLORS: dict[str, tuple[int, int, int]] = {side: (0, 220, 0) for side in ("left", "right", "centre")}
BOX_COLOR: tuple[int, int, int] = (0, 255, 255)
TEXT_COLOR: tuple[int, int, int] = (255, 255, 255)


def _check_image(image: np.ndarray, name: str = "image") -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        shape = getattr(image, "shape", None)
        dtype = getattr(image, "dtype", None)
        raise ValueError(f"{name} must be a uint8 array of shape (H, W, 3), got shape {shape} dtype {dtype}")


def default_thickness(image: np.ndarray) -> int:
    """Line thickness in pixels scaled to the image size (1 for small crops)."""
    return max(1, int(round(min(image.shape[:2]) / 240)))


def draw_skeleton(
    image: np.ndarray,
    keypoints: np.ndarray,
    *,
    score_thresh: float = 0.2,
    box: Sequence[float] | None = None,
    score: float | None = None,
    show_indices: bool = False,
    colors: Mapping[str, tuple[int, int, int]] | None = None,
    thickness: int | None = None,
    radius: int | None = None,
) -> np.ndarray:
    """Draw one person's skeleton on a copy of ``image``.

    Args:
        image: (H, W, 3) uint8 BGR.
        keypoints: (K, 3) image px ``x, y, score`` (for ground truth, the score may be the
            visibility flag: 0 unlabelled, 1 or 2 labelled). A joint is drawn when its score is
            strictly above ``score_thresh`` and its coordinates are finite; a limb when both
            ends are drawn. Limbs follow ``pose.keypoints.SKELETON`` (17 COCO joints); with
            another K only the joints are drawn.
        score_thresh: keypoint score threshold (use a negative value to draw every joint).
        box: optional person box ``x, y, w, h`` (image px), drawn as a rectangle.
        score: optional person score, written above the box (or the top-most joint).
        show_indices: write each drawn joint's index next to it.
        colors: BGR colour per side ('left', 'right', 'centre'); default :data:`SIDE_COLORS`.
        thickness, radius: limb thickness and joint radius in px (default: scaled to the image).

    Returns:
        A new (H, W, 3) uint8 image.
    """
    _check_image(image)
    kpts = np.asarray(keypoints, dtype=np.float64)
    if kpts.ndim != 2 or kpts.shape[1] != 3:
        raise ValueError(f"keypoints must have shape (K, 3) (x, y, score), got {kpts.shape}")
    colors = dict(SIDE_COLORS if colors is None else colors)
    missing = {"left", "right", "centre"} - set(colors)
    if missing:
        raise ValueError(f"colors needs the sides left, right and centre; missing {sorted(missing)}")
    out = image.copy()
    t = default_thickness(image) if thickness is None else int(thickness)
    r = t + 1 if radius is None else int(radius)
    shown = np.isfinite(kpts).all(axis=1) & (kpts[:, 2] > score_thresh)
    # Points far outside the image would overflow OpenCV's int coordinates; they are not visible anyway.
    height, width = image.shape[:2]
    limit = 4 * max(height, width) + 1000
    shown &= (np.abs(kpts[:, 0]) < limit) & (np.abs(kpts[:, 1]) < limit)
    pts = np.zeros((len(kpts), 2), dtype=np.int64)
    pts[shown] = np.round(kpts[shown, :2]).astype(np.int64)

    if box is not None:
        x, y, w, h = (float(v) for v in box)
        if all(np.isfinite([x, y, w, h])):
            cv2.rectangle(out, (int(round(x)), int(round(y))), (int(round(x + w)), int(round(y + h))),
                          BOX_COLOR, t, cv2.LINE_AA)
    if len(kpts) == 17:
        for a, b in SKELETON:
            if shown[a] and shown[b]:
                cv2.line(out, tuple(int(v) for v in pts[a]), tuple(int(v) for v in pts[b]),
                         colors[limb_side(a, b)], t, cv2.LINE_AA)
    for k in np.flatnonzero(shown):
        side = joint_side(k) if len(kpts) == 17 else "centre"
        center = (int(pts[k, 0]), int(pts[k, 1]))
        cv2.circle(out, center, r, colors[side], -1, cv2.LINE_AA)
        if show_indices:
            _put_text(out, str(k), (center[0] + r + 1, center[1] - r - 1), scale=0.3 * max(1, t))
    if score is not None and np.isfinite(score):
        if box is not None and all(np.isfinite([float(v) for v in box])):
            anchor = (int(round(float(box[0]))), int(round(float(box[1]))) - 3)
        elif shown.any():
            top = np.flatnonzero(shown)[np.argmin(pts[shown, 1])]
            anchor = (int(pts[top, 0]), int(pts[top, 1]) - r - 3)
        else:
            anchor = None
        if anchor is not None:
            _put_text(out, f"{score:.2f}", anchor, scale=0.35 * max(1, t))
    return out


def draw_people(
    image: np.ndarray,
    people: Sequence[Mapping],
    *,
    score_thresh: float = 0.2,
    show_boxes: bool = True,
    show_scores: bool = True,
    show_indices: bool = False,
    colors: Mapping[str, tuple[int, int, int]] | None = None,
) -> np.ndarray:
    """Draw several people: each a mapping with ``keypoints`` (K, 3) and optional ``box``
    (x, y, w, h) and ``score``. Returns a new image."""
    out = image
    for person in people:
        out = draw_skeleton(out, np.asarray(person["keypoints"], dtype=np.float64).reshape(-1, 3),
                            score_thresh=score_thresh,
                            box=person.get("box") if show_boxes else None,
                            score=person.get("score") if show_scores else None,
                            show_indices=show_indices, colors=colors)
    if out is image:
        out = image.copy()
    return out


def draw_with_ground_truth(
    image: np.ndarray,
    people: Sequence[Mapping],
    gt_people: Sequence[Mapping] | None,
    *,
    mode: str = "beside",
    score_thresh: float = 0.2,
    show_boxes: bool = True,
    show_scores: bool = True,
    show_indices: bool = False,
) -> np.ndarray:
    """Predictions (side colours) and ground truth (:data:`GT_COLORS`) on one image.

    ``people`` and ``gt_people`` as in :func:`draw_people`; a ground-truth person's third
    keypoint column is the visibility flag (drawn when > 0). ``mode``: 'beside' (two panels,
    predictions left, ground truth right; the result is wider than the input) or 'over' (ground
    truth drawn first, thinner, predictions on top; same size as the input).
    """
    if mode not in ("beside", "over"):
        raise ValueError(f"unknown mode {mode!r}; valid: beside, over")
    if gt_people is None:
        return draw_people(image, people, score_thresh=score_thresh, show_boxes=show_boxes,
                           show_scores=show_scores, show_indices=show_indices)
    gt_kwargs = dict(score_thresh=0.0, show_boxes=show_boxes, show_scores=False, show_indices=show_indices,
                     colors=GT_COLORS)
    if mode == "over":
        base = draw_people(image, gt_people, **gt_kwargs)
        return draw_people(base, people, score_thresh=score_thresh, show_boxes=show_boxes,
                           show_scores=show_scores, show_indices=show_indices)
    pred = draw_people(image, people, score_thresh=score_thresh, show_boxes=show_boxes,
                       show_scores=show_scores, show_indices=show_indices)
    return side_by_side([pred, draw_people(image, gt_people, **gt_kwargs)],
                        labels=["prediction", "ground truth"])


def _put_text(image: np.ndarray, text: str, origin: tuple[int, int], *, scale: float = 0.4) -> None:
    x, y = origin
    y = max(y, 10)
    cv2.putText(image, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 2, cv2.LINE_AA)
    cv2.putText(image, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, TEXT_COLOR, 1, cv2.LINE_AA)


def heatmap_to_color(heatmaps: np.ndarray, *,
                     colormap: int = cv2.COLORMAP_JET) -> tuple[np.ndarray, np.ndarray]:
    """Colour-code heatmaps.

    Args:
        heatmaps: (K, h, w) or (h, w) float; joints are combined with a per-pixel max, values
            clipped to [0, 1].

    Returns:
        ``(color (h, w, 3) uint8 BGR, strength (h, w) float32 in [0, 1])``.
    """
    hm = np.asarray(heatmaps, dtype=np.float32)
    if hm.ndim == 3:
        hm = hm.max(axis=0) if len(hm) else np.zeros(hm.shape[1:], np.float32)
    if hm.ndim != 2:
        raise ValueError(f"heatmaps must have shape (K, h, w) or (h, w), got {np.shape(heatmaps)}")
    strength = np.clip(np.nan_to_num(hm), 0.0, 1.0)
    color = cv2.applyColorMap((strength * 255).astype(np.uint8), colormap)
    return color, strength


def overlay_heatmaps(
    image: np.ndarray,
    heatmaps: np.ndarray,
    *,
    heatmap_to_image: np.ndarray | None = None,
    alpha: float = 0.6,
    colormap: int = cv2.COLORMAP_JET,
) -> np.ndarray:
    """Blend one person's heatmaps over an image.

    Args:
        image: (H, W, 3) uint8 BGR.
        heatmaps: (K, h, w) or (h, w), values ~[0, 1] (max over joints).
        heatmap_to_image: (2, 3) affine matrix from heatmap px to image px (e.g.
            ``PersonPose.heatmap_to_image``). None: the heatmap covers the whole image (the image is
            the network's input crop) and is resized to it.
        alpha: blend weight of the colour map at full heatmap strength; weak responses are
            blended proportionally less, so the image stays visible away from the joints.

    Returns:
        A new (H, W, 3) uint8 image.
    """
    _check_image(image)
    color, strength = heatmap_to_color(heatmaps, colormap=colormap)
    height, width = image.shape[:2]
    if heatmap_to_image is None:
        color = cv2.resize(color, (width, height), interpolation=cv2.INTER_LINEAR)
        strength = cv2.resize(strength, (width, height), interpolation=cv2.INTER_LINEAR)
    else:
        mat = np.asarray(heatmap_to_image, dtype=np.float64)
        if mat.shape != (2, 3):
            raise ValueError(f"heatmap_to_image must be a (2, 3) affine matrix, got shape {mat.shape}")
        color = cv2.warpAffine(color, mat, (width, height), flags=cv2.INTER_LINEAR)
        strength = cv2.warpAffine(strength, mat, (width, height), flags=cv2.INTER_LINEAR)
    # Floor at 0.25 so the colour map's blue background of the crop is faintly visible too.
    weight = alpha * np.clip(0.25 + strength, 0.0, 1.0)
    if heatmap_to_image is not None:  # no tint outside the person's crop
        inside = cv2.warpAffine(np.ones(np.shape(heatmaps)[-2:], np.float32),
                                np.asarray(heatmap_to_image, np.float64), (width, height))
        weight = weight * inside
    w = weight[..., None]
    blended = image.astype(np.float32) * (1 - w) + color.astype(np.float32) * w
    return np.clip(blended + 0.5, 0, 255).astype(np.uint8)


def label_image(image: np.ndarray, text: str) -> np.ndarray:
    """A copy of ``image`` with ``text`` written in its top-left corner."""
    out = image.copy()
    _put_text(out, text, (4, 14), scale=0.45)
    return out


def side_by_side(images: Sequence[np.ndarray], *, labels: Sequence[str] | None = None,
                 gap: int = 4) -> np.ndarray:
    """Concatenate images horizontally (padded to the tallest, ``gap`` px of grey between),
    each optionally labelled in its corner."""
    if not images:
        raise ValueError("side_by_side needs at least one image")
    for i, im in enumerate(images):
        _check_image(im, f"images[{i}]")
    if labels is not None:
        if len(labels) != len(images):
            raise ValueError(f"{len(labels)} labels for {len(images)} images")
        images = [label_image(im, text) for im, text in zip(images, labels)]
    height = max(im.shape[0] for im in images)
    parts = []
    for i, im in enumerate(images):
        if i:
            parts.append(np.full((height, gap, 3), 128, np.uint8))
        pad = np.zeros((height - im.shape[0], im.shape[1], 3), np.uint8)
        parts.append(np.concatenate([im, pad], axis=0))
    return np.concatenate(parts, axis=1)


def make_grid(images: Sequence[np.ndarray], *, cols: int, gap: int = 4) -> np.ndarray:
    """Tile images (all the same size) into a grid of ``cols`` columns, row-major."""
    if not images:
        raise ValueError("make_grid needs at least one image")
    if cols < 1:
        raise ValueError(f"cols must be >= 1, got {cols}")
    h, w = images[0].shape[:2]
    for i, im in enumerate(images):
        _check_image(im, f"images[{i}]")
        if im.shape[:2] != (h, w):
            raise ValueError(f"make_grid: images[{i}] has size {im.shape[:2]}, expected {(h, w)}")
    cols = min(cols, len(images))
    rows = (len(images) + cols - 1) // cols
    grid = np.full((rows * h + (rows - 1) * gap, cols * w + (cols - 1) * gap, 3), 128, np.uint8)
    for i, im in enumerate(images):
        r, c = divmod(i, cols)
        grid[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w] = im
    return grid


def write_image(path: str | os.PathLike, image: np.ndarray) -> Path:
    """Encode ``image`` by the file extension and write it atomically (temp file, fsync, rename)."""
    path = Path(path)
    _check_image(image)
    ok, data = cv2.imencode(path.suffix or ".png", image)
    if not ok:
        raise ValueError(f"{path}: OpenCV cannot encode an image with extension {path.suffix!r}")
    atomic_write_bytes(path, data.tobytes())
    return path


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image as (H, W, 3) uint8 BGR, decoded as the datasets do (``pose.data.image_io``, EXIF
    orientation ignored, so coordinates match COCO's); a missing or unreadable file raises ValueError
    naming it."""
    from pose.data.image_io import read_image as _read

    try:
        return _read(path)
    except FileNotFoundError as exc:
        raise ValueError(str(exc)) from None


# ---------------------------------------------------------------------------------------------
# Per-keypoint OKS accuracy


@dataclass(frozen=True)
class KeypointAccuracy:
    """Per-keypoint OKS accuracy of a results file against COCO-format ground truth.

    ``accuracy[k] = correct[k] / labelled[k]``: over all ground-truth people (non-crowd, at least
    one labelled joint) whose joint k is labelled, the fraction that were matched to a predicted
    person whose joint k has an OKS term ``exp(-d^2 / (2 s^2 kappa_k^2)) >= term_thresh``, where d
    is the image-px distance, ``s^2`` the ground-truth area and ``kappa_k = 2 * sigma_k`` (the
    COCO per-keypoint constants, ``OKS_SIGMAS``). This is exactly the per-joint factor inside
    COCO's OKS, so 0.5 means "this joint alone would pass an OKS threshold of 0.5".
    Unmatched ground-truth people count as failures for each of their labelled joints.
    """

    names: tuple[str, ...]
    accuracy: np.ndarray  # (K,) in [0, 1]; NaN where no ground truth labels the joint
    correct: np.ndarray  # (K,) int
    labelled: np.ndarray  # (K,) int
    mean_term: np.ndarray  # (K,) mean OKS term over matched labelled joints (NaN if none)
    num_gt: int
    num_matched: int
    term_thresh: float
    match_oks: float

    def to_dict(self) -> dict:
        def num(v: float) -> float | None:
            return None if not np.isfinite(v) else float(v)
        return {
            "definition": "fraction of labelled ground-truth joints, in people matched greedily by "
                          f"OKS (>= {self.match_oks}), whose OKS term exp(-d^2/(2 s^2 k^2)) >= "
                          f"{self.term_thresh}",
            "num_gt": self.num_gt, "num_matched": self.num_matched,
            "keypoints": {name: {"accuracy": num(a), "correct": int(c), "labelled": int(n),
                                 "mean_term": num(m)}
                          for name, a, c, n, m in zip(self.names, self.accuracy, self.correct,
                                                      self.labelled, self.mean_term)},
            "mean_accuracy": num(float(np.nanmean(self.accuracy)) if np.isfinite(self.accuracy).any()
                                 else float("nan")),
        }


def load_json(path: str | os.PathLike, what: str) -> object:
    """Read a JSON file; a missing or invalid file raises ValueError naming it and ``what`` it is."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{what} not found: {path}")
    try:
        with open(path) as fh:
            return json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{what} {path} is not valid JSON ({exc})") from None


def _is_real(v: object) -> bool:
    # NaN passes: a non-finite joint is simply not drawn (see draw_skeleton).
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def check_results(results: object, source: str, num_joints: int = 17) -> list[dict]:
    """Validate a COCO keypoint results list (``tools/test.py`` format) and return it.

    Each entry needs an integer ``image_id``, ``3 * num_joints`` numeric ``keypoints``, a numeric
    ``score`` and, if present, a ``bbox`` of 4 numbers; ValueError names the file and the entry.
    NaN values pass (such joints and boxes are not drawn)."""
    if not isinstance(results, list):
        raise ValueError(f"{source}: a results file must be a JSON list of "
                         f"{{image_id, category_id, keypoints, score}}, got {type(results).__name__}")
    for i, r in enumerate(results):
        if not isinstance(r, dict) or not {"image_id", "keypoints", "score"} <= set(r):
            raise ValueError(f"{source}: entry {i} is not a keypoint result with image_id, keypoints and "
                             f"score: {str(r)[:120]}")
        where = f"{source}: entry {i} (image_id {r['image_id']!r})"
        if not isinstance(r["image_id"], int) or isinstance(r["image_id"], bool):
            raise ValueError(f"{where}: image_id must be an integer")
        kps = r["keypoints"]
        if not isinstance(kps, list) or not all(_is_real(v) for v in kps):
            raise ValueError(f"{where}: keypoints must be a list of numbers, got {str(kps)[:80]}")
        if len(kps) != 3 * num_joints:
            raise ValueError(f"{where} has {len(kps)} keypoint values, expected {3 * num_joints} "
                             f"(x, y, score for {num_joints} joints)")
        if not _is_real(r["score"]):
            raise ValueError(f"{where}: score must be a number, got {r['score']!r}")
        box = r.get("bbox")
        if box is not None and not (isinstance(box, list) and len(box) == 4 and all(_is_real(v) for v in box)):
            raise ValueError(f"{where}: bbox must be 4 numbers x, y, w, h, got {str(box)[:80]}")
    return results


def check_image_ids(result_ids: set, known_ids: set, *, results_name: str, known_name: str) -> None:
    """Raise when results name images that ``known_ids`` lacks (a results file for another dataset)."""
    unknown = sorted(result_ids - known_ids)
    if unknown:
        raise ValueError(
            f"{results_name}: {len(unknown)} of {len(result_ids)} image ids are not in {known_name} "
            f"(e.g. {unknown[:5]}); is the results file for another dataset or split?")


def keypoint_oks_accuracy(
    gt: str | os.PathLike | Mapping,
    results: str | os.PathLike | Sequence[Mapping],
    *,
    term_thresh: float = 0.5,
    match_oks: float = 0.1,
    sigmas: np.ndarray = OKS_SIGMAS,
) -> KeypointAccuracy:
    """Per-keypoint OKS accuracy (see :class:`KeypointAccuracy` for the definition).

    Args:
        gt: COCO keypoint annotation file (path) or its loaded dict.
        results: COCO results file (path) or list of ``{image_id, keypoints [x,y,s]*K, score}``
            in image px (the ``tools/test.py`` format).
        term_thresh: a joint is correct when its OKS term is at least this.
        match_oks: predictions are matched to ground truth per image, highest score first, each
            to the unmatched ground-truth person of highest OKS, when that OKS is at least this
            (low, so that a person whose joints are half right still counts its good joints).
    """
    gt_name = str(gt) if not isinstance(gt, Mapping) else "the ground truth"
    res_name = str(results) if isinstance(results, (str, os.PathLike)) else "the results"
    if not isinstance(gt, Mapping):
        gt = load_json(gt, "ground-truth annotation file")
    if isinstance(results, (str, os.PathLike)):
        results = load_json(results, "results file")
    if not isinstance(gt, Mapping) or "annotations" not in gt or "images" not in gt:
        raise ValueError(f"{gt_name}: not a COCO annotation file (needs 'images' and 'annotations')")
    sigmas = np.asarray(sigmas, dtype=np.float64)
    k = len(sigmas)
    results = check_results(results, res_name, num_joints=k)
    check_image_ids({r["image_id"] for r in results}, {im["id"] for im in gt["images"]},
                    results_name=res_name, known_name=gt_name)

    gts_by_image: dict = {}
    for ann in gt["annotations"]:
        if ann.get("iscrowd", 0) or ann.get("category_id", 1) != 1:
            continue
        kp = np.asarray(ann["keypoints"], dtype=np.float64).reshape(-1, 3)
        if (kp[:, 2] > 0).sum() == 0:
            continue
        gts_by_image.setdefault(ann["image_id"], []).append((kp, float(ann["area"])))
    dets_by_image: dict = {}
    for r in results:
        if r.get("category_id", 1) != 1:
            continue
        dets_by_image.setdefault(r["image_id"], []).append(r)

    correct = np.zeros(k, np.int64)
    labelled = np.zeros(k, np.int64)
    term_sum = np.zeros(k)
    term_count = np.zeros(k, np.int64)
    num_gt = num_matched = 0
    vars_ = (2 * sigmas) ** 2
    for image_id, gts in gts_by_image.items():
        num_gt += len(gts)
        gkp = np.stack([g[0] for g in gts])  # (G, K, 3)
        areas = np.array([g[1] for g in gts])
        vis = gkp[:, :, 2] > 0
        labelled += vis.sum(axis=0)
        dets = sorted(dets_by_image.get(image_id, []), key=lambda r: -float(r["score"]))
        if not dets:
            continue
        dkp = np.stack([np.asarray(r["keypoints"], np.float64).reshape(-1, 3) for r in dets])  # (D, K, 3)
        d2 = ((dkp[:, None, :, :2] - gkp[None, :, :, :2]) ** 2).sum(-1)  # (D, G, K)
        terms = np.exp(-d2 / vars_ / (areas[None, :, None] + np.spacing(1)) / 2)
        oks = (terms * vis[None]).sum(-1) / vis.sum(-1)[None]  # (D, G)
        taken = np.zeros(len(gts), bool)
        for d in range(len(dets)):
            cand = np.where(taken, -1.0, oks[d])
            g = int(np.argmax(cand))
            if cand[g] < match_oks:
                continue
            taken[g] = True
            num_matched += 1
            t, v = terms[d, g], vis[g]
            correct += (v & (t >= term_thresh))
            term_sum += np.where(v, t, 0.0)
            term_count += v
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.where(labelled > 0, correct / np.maximum(labelled, 1), np.nan)
        mean_term = np.where(term_count > 0, term_sum / np.maximum(term_count, 1), np.nan)
    names = KEYPOINT_NAMES if k == len(KEYPOINT_NAMES) else tuple(f"joint {i}" for i in range(k))
    return KeypointAccuracy(names=tuple(names), accuracy=accuracy, correct=correct, labelled=labelled,
                            mean_term=mean_term, num_gt=num_gt, num_matched=num_matched,
                            term_thresh=term_thresh, match_oks=match_oks)


def plot_keypoint_accuracy(acc: KeypointAccuracy, path: str | os.PathLike, *, title: str = "") -> Path:
    """Bar chart of per-keypoint accuracy, bars coloured by body side; written atomically to ``path``
    (format from the extension, e.g. .png, .pdf, .svg). Uses matplotlib's Agg canvas directly (no
    pyplot, no display needed)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    fig = Figure(figsize=(9, 4.2), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    values = np.nan_to_num(acc.accuracy, nan=0.0)
    sides = [joint_side(i) if len(acc.names) == 17 else "centre" for i in range(len(acc.names))]
    colors = [tuple(c / 255 for c in SIDE_COLORS[s][::-1]) for s in sides]
    bars = ax.bar(range(len(values)), values, color=colors)
    for bar, a in zip(bars, acc.accuracy):
        label = "n/a" if not np.isfinite(a) else f"{a:.2f}"
        ax.text(bar.get_x() + bar.get_width() / 2, bar.get_height() + 0.01, label, ha="center", va="bottom",
                fontsize=7)
    finite = acc.accuracy[np.isfinite(acc.accuracy)]
    if finite.size:
        ax.axhline(float(finite.mean()), color="grey", linestyle="--", linewidth=1,
                   label=f"mean {finite.mean():.3f}")
    ax.set_xticks(range(len(values)))
    ax.set_xticklabels(acc.names, rotation=45, ha="right", fontsize=8)
    ax.set_ylim(0, 1.22)  # room for the legend above the bars
    ax.set_ylabel(f"fraction with OKS term >= {acc.term_thresh:g}")
    ax.set_title(title or f"Per-keypoint OKS accuracy ({acc.num_matched}/{acc.num_gt} people matched)",
                 fontsize=10)
    for side in ("left", "right", "centre"):
        ax.bar([0], [0], color=tuple(c / 255 for c in SIDE_COLORS[side][::-1]), label=side)
    ax.legend(loc="upper right", fontsize=8, ncol=4)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format=(path.suffix.lstrip(".") or "png"))
    atomic_write_bytes(path, buf.getvalue())
    return path

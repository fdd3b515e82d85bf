"""Drawing: skeletons, heatmap overlays, image grids, and atomic image/figure writing.

All images are OpenCV-style ``np.uint8`` arrays of shape (H, W, 3) in BGR order; all
coordinates are image pixels (x right, y down) unless stated otherwise. The drawing
functions never modify their input: they return a new image.

Limbs follow the keypoint set's skeleton and are coloured, with the joints, by side
(``KeypointSet.limb_side`` / ``joint_side``): left, right and centre each have their own colour
(:data:`SIDE_COLORS`); without a set only the joints are drawn, in the centre colour,
so a left/right swap is visible at a glance. Ground truth is drawn with
:data:`GT_COLORS` (a single colour), beside or over the predictions.

The bar chart of the per-keypoint OKS accuracy (``pose.engine.keypoint_accuracy``) is at the end
(:func:`plot_keypoint_accuracy`, matplotlib with the Agg backend).
"""

import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np

from pose.atomic_io import atomic_write_bytes, default_file_mode  # noqa: F401 (re-exported)
from pose.keypoints import KeypointSet

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
    kset: KeypointSet | None = None,
) -> np.ndarray:
    """Draw one person's skeleton on a copy of ``image``.

    Args:
        image: (H, W, 3) uint8 BGR.
        keypoints: (K, 3) image px ``x, y, score`` (for ground truth, the score may be the
            visibility flag: 0 unlabelled, 1 or 2 labelled). A joint is drawn when its score is
            strictly above ``score_thresh`` and its coordinates are finite; a limb when both
            ends are drawn.
        score_thresh: keypoint score threshold (use a negative value to draw every joint).
        box: optional person box ``x, y, w, h`` (image px), drawn as a rectangle.
        score: optional person score, written above the box (or the top-most joint).
        show_indices: write each drawn joint's index next to it.
        colors: BGR colour per side ('left', 'right', 'centre'); default :data:`SIDE_COLORS`.
        thickness, radius: limb thickness and joint radius in px (default: scaled to the image).
        kset: the keypoint set (its skeleton and sides); its joint count must be K. None: only
            the joints are drawn, all in the centre colour.

    Returns:
        A new (H, W, 3) uint8 image.
    """
    _check_image(image)
    kpts = np.asarray(keypoints, dtype=np.float64)
    if kpts.ndim != 2 or kpts.shape[1] != 3:
        raise ValueError(f"keypoints must have shape (K, 3) (x, y, score), got {kpts.shape}")
    if kset is not None and kset.num_joints != len(kpts):
        raise ValueError(f"keypoints has {len(kpts)} joints but the keypoint set {kset.name!r} has {kset.num_joints}")
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
    for a, b in kset.skeleton if kset is not None else ():
        if shown[a] and shown[b]:
            cv2.line(out, tuple(int(v) for v in pts[a]), tuple(int(v) for v in pts[b]),
                     colors[kset.limb_side(a, b)], t, cv2.LINE_AA)
    for k in np.flatnonzero(shown):
        side = kset.joint_side(k) if kset is not None else "centre"
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
    kset: KeypointSet | None = None,
) -> np.ndarray:
    """Draw several people: each a mapping with ``keypoints`` (K, 3) and optional ``box``
    (x, y, w, h) and ``score``; ``kset`` as in :func:`draw_skeleton`. Returns a new image."""
    out = image
    for person in people:
        out = draw_skeleton(out, np.asarray(person["keypoints"], dtype=np.float64).reshape(-1, 3),
                            score_thresh=score_thresh,
                            box=person.get("box") if show_boxes else None,
                            score=person.get("score") if show_scores else None,
                            show_indices=show_indices, colors=colors, kset=kset)
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
    kset: KeypointSet | None = None,
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
                           show_scores=show_scores, show_indices=show_indices, kset=kset)
    gt_kwargs = dict(score_thresh=0.0, show_boxes=show_boxes, show_scores=False, show_indices=show_indices,
                     colors=GT_COLORS, kset=kset)
    if mode == "over":
        base = draw_people(image, gt_people, **gt_kwargs)
        return draw_people(base, people, score_thresh=score_thresh, show_boxes=show_boxes,
                           show_scores=show_scores, show_indices=show_indices, kset=kset)
    pred = draw_people(image, people, score_thresh=score_thresh, show_boxes=show_boxes,
                       show_scores=show_scores, show_indices=show_indices, kset=kset)
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
# Per-keypoint OKS accuracy chart


def plot_keypoint_accuracy(acc, path: str | os.PathLike, *, title: str = "") -> Path:
    """Bar chart of a per-keypoint accuracy (``pose.engine.keypoint_accuracy.KeypointAccuracy``), bars
    coloured by body side; written atomically to ``path``
    (format from the extension, e.g. .png, .pdf, .svg). Uses matplotlib's Agg canvas directly (no
    pyplot, no display needed)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    fig = Figure(figsize=(9, 4.2), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    values = np.nan_to_num(acc.accuracy, nan=0.0)
    sides = list(acc.sides) or ["centre"] * len(acc.names)
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

"""One synthetic image: cluttered background, people, a crowd, occluders, and their annotations.

Everything is drawn with OpenCV from one ``numpy.random.Generator``, so an image and its
annotations are a pure function of the generator's state. An ``owner`` map (H, W) records
which instance is on top at every pixel; a labelled joint inside the image is visible (v=2)
when its own person is on top at that pixel, and occluded (v=1) when a later-drawn person or
an occluder covers it (self-occlusion does not count). Joints outside the image are v=0 with
x = y = 0.

Each instance's ``bbox`` and ``area`` come from its whole in-image figure (its drawn pixels
before anything covers them), so every labelled joint lies in its box; ``segmentation`` is
that mask as polygons (a COCO RLE for crowds).
"""

from dataclasses import dataclass, field

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from pose.data.synthetic_animal import K_ANIMAL, random_animal_figure
from pose.data.synthetic_figure import (
    Figure,
    K,
    build_figure,
    draw_shapes,
    figure_extent,
    sample_colors,
    sample_pose,
    translate_figure,
)

# Scene statistics (per image unless stated).
CROWD_PROB = 0.12           # a crowd region of 4-8 small people, one iscrowd=1 annotation
UNLABELLED_PROB = 0.3       # 1-2 small people annotated with a box but no keypoints
OCCLUDER_PROB = 0.7         # 1-2 occluder blobs over people
OUT_OF_FRAME_PROB = 0.25    # per person: may be placed partly outside the image
MIN_HEIGHT, MAX_HEIGHT = 1 / 6, 0.95   # labelled people's standing height / image height
CLOSE_UP_PROB = 0.1         # per labelled person: taller than the image, upper body in frame
CLOSE_UP_HEIGHT = (1.0, 1.7)
MAX_OVERLAP_IOU = 0.6       # reject placements overlapping an earlier person's box more than this


@dataclass
class Instance:
    """One annotation: ``keypoints`` (K, 3) image px + visibility, box ``x, y, w, h``, etc."""

    keypoints: np.ndarray
    bbox: list[float]
    area: float
    iscrowd: int
    segmentation: list | dict
    visible_fraction: float    # share of its pixels on top (for detection scores)

    @property
    def num_keypoints(self) -> int:
        return int((self.keypoints[:, 2] > 0).sum())


def _muted_color(rng: np.random.Generator) -> tuple[int, int, int]:
    if rng.random() < 0.2:  # a saturated colour away from the limb hue families
        h, s, v = rng.uniform(28, 85), rng.uniform(120, 230), rng.uniform(90, 230)
    else:
        h, s, v = rng.uniform(0, 180), rng.uniform(0, 110), rng.uniform(35, 235)
    px = np.array([[[int(h), int(s), int(v)]]], np.uint8)
    return tuple(int(c) for c in cv2.cvtColor(px, cv2.COLOR_HSV2BGR)[0, 0])


def make_background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Gradient + low-frequency colour noise + random muted shapes and bars, (H, W, 3) uint8 BGR."""
    c0, c1 = np.array(_muted_color(rng), np.float32), np.array(_muted_color(rng), np.float32)
    t = np.deg2rad(rng.uniform(0, 360))
    ramp = (np.arange(width, dtype=np.float32)[None, :] * np.float32(np.cos(t))
            + np.arange(height, dtype=np.float32)[:, None] * np.float32(np.sin(t)))
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1.0)
    image = c0 * (1 - ramp[..., None]) + c1 * ramp[..., None]
    grid = rng.normal(0, rng.uniform(8, 30), (rng.integers(3, 8), rng.integers(3, 8), 3)).astype(np.float32)
    image += cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)
    image = np.clip(image, 0, 255).astype(np.uint8)
    size = min(width, height)
    for _ in range(rng.integers(6, 16)):
        color, kind = _muted_color(rng), rng.integers(0, 5)
        c = (int(rng.uniform(0, width)), int(rng.uniform(0, height)))
        if kind == 0:
            d = rng.uniform(0.05, 0.45, 2) * size
            cv2.rectangle(image, c, (int(c[0] + d[0]), int(c[1] + d[1])), color, -1, cv2.LINE_AA)
        elif kind == 1:
            cv2.circle(image, c, int(rng.uniform(0.03, 0.2) * size), color, -1, cv2.LINE_AA)
        elif kind == 2:
            axes = (int(rng.uniform(0.03, 0.25) * size), int(rng.uniform(0.02, 0.12) * size))
            cv2.ellipse(image, c, axes, rng.uniform(0, 180), 0, 360, color, -1, cv2.LINE_AA)
        elif kind == 3:  # limb-like bar
            e = (int(c[0] + rng.normal(0, 0.2) * size), int(c[1] + rng.normal(0, 0.2) * size))
            cv2.line(image, c, e, color, int(rng.integers(2, max(3, size // 25))), cv2.LINE_AA)
        else:
            pts = (np.array(c) + rng.normal(0, 0.1, (int(rng.integers(3, 7)), 2)) * size).astype(np.int32)
            cv2.fillPoly(image, [pts], color, cv2.LINE_AA)
    return image


def _random_person(rng: np.random.Generator, height_px: float, rotation_deg: float) -> Figure:
    pose, colors = sample_pose(rng), sample_colors(rng)
    return build_figure(pose, colors, height_px=height_px, rotation_deg=rotation_deg,
                        hip_xy=np.zeros(2), rng=rng)


# Figure kinds: name -> (figure of a given size and rotation drawn from rng, joint count).
FIGURES = {"person": (_random_person, K), "animal": (random_animal_figure, K_ANIMAL)}


def _rotation(rng: np.random.Generator) -> float:
    r = rng.random()
    if r < 0.7:
        return float(np.clip(rng.normal(0, 8), -20, 20))
    if r < 0.95:
        return float(rng.uniform(-40, 40))
    return float(rng.choice([-1, 1]) * rng.uniform(60, 100))   # lying down


def _offset_range(lo: float, hi: float, size: int, slack: float) -> tuple[float, float]:
    """Offsets keeping [lo, hi] inside [0, size-1], widened by ``slack`` px on both sides."""
    a, b = -lo, size - 1 - hi
    if a > b:   # larger than the image: centre it
        a = b = (a + b) / 2
    return a - slack, b + slack


def _place(rng: np.random.Generator, fig: Figure, width: int, height: int, out_of_frame: bool,
           close_up: bool = False) -> Figure:
    x0, y0, x1, y1 = figure_extent(fig)
    f = 0.35 if out_of_frame else 0.0
    ax, bx = _offset_range(x0, x1, width, f * (x1 - x0))
    ay, by = _offset_range(y0, y1, height, f * (y1 - y0))
    if close_up:   # head near the top, horizontally well inside
        ax, bx = 0.2 * width - (x0 + x1) / 2, 0.8 * width - (x0 + x1) / 2
        ay, by = -y0, 0.2 * height - y0
    return translate_figure(fig, np.array([rng.uniform(ax, bx), rng.uniform(ay, by)]))


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return float(inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter))


def _mask_bbox(mask: np.ndarray) -> list[float]:
    ys, xs = np.nonzero(mask)
    return [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)]


def _polygons(mask: np.ndarray) -> list[list[float]]:
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polys = []
    for c in contours:
        c = cv2.approxPolyDP(c, 0.8, True).reshape(-1, 2)
        if len(c) >= 3:
            polys.append([float(v) for v in c.reshape(-1)])
    return polys


def _rle(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask > 0))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}


def _occluder(rng: np.random.Generator, image: np.ndarray, owner: np.ndarray, center: np.ndarray,
              size: float) -> None:
    h, w = owner.shape
    mask = np.zeros((h, w), np.uint8)
    if rng.random() < 0.5:
        pts = center + rng.normal(0, 0.5, (int(rng.integers(5, 9)), 2)) * size
        cv2.fillConvexPoly(mask, cv2.convexHull(np.round(pts).astype(np.int32)), 255)
    else:
        axes = (int(rng.uniform(0.3, 0.7) * size), int(rng.uniform(0.2, 0.5) * size))
        cv2.ellipse(mask, (int(center[0]), int(center[1])), axes, rng.uniform(0, 180), 0, 360, 255, -1)
    texture = np.empty_like(image)
    texture[:] = _muted_color(rng)
    step = int(rng.integers(4, 12))
    texture[:, ::step] = _muted_color(rng) if rng.random() < 0.5 else texture[:, ::step]
    on = mask > 0
    noise = rng.standard_normal((int(on.sum()), 1), dtype=np.float32) * 8
    image[on] = np.clip(texture[on] + noise, 0, 255).astype(np.uint8)
    owner[on] = -1


def render_scene(rng: np.random.Generator, width: int, height: int, max_people: int, figure: str = "person"
                 ) -> tuple[np.ndarray, list[Instance]]:
    """One image (H, W, 3) uint8 BGR and its annotations, all drawn from ``rng``.

    ``figure``: the kind of figure (:data:`FIGURES`: 'person', or 'animal' with its own joints)."""
    if figure not in FIGURES:
        raise ValueError(f"unknown synthetic figure {figure!r}; valid: {', '.join(FIGURES)}")
    random_figure, num_joints = FIGURES[figure]
    image = make_background(rng, width, height)
    layers = _Layers(owner=np.zeros((height, width), np.int16))
    if rng.random() < CROWD_PROB:
        _draw_crowd(rng, image, layers, random_figure)
    _draw_people(rng, image, layers, random_figure, max_people)
    if rng.random() < OCCLUDER_PROB:
        _draw_occluders(rng, image, layers, num_joints)
    image = _add_noise(rng, image)
    return image, _annotate(layers, num_joints)


@dataclass
class _Layers:
    """What has been drawn: one mask per crowd region or figure (``None`` figure: a crowd),
    whether it is labelled, and ``owner``, the 1-based index of the mask on top at each pixel."""

    owner: np.ndarray
    masks: list[np.ndarray] = field(default_factory=list)
    labelled: list[bool] = field(default_factory=list)
    figures: list[Figure | None] = field(default_factory=list)


def _draw_crowd(rng: np.random.Generator, image: np.ndarray, layers: _Layers, random_figure) -> None:
    """A crowd region: 4-8 small figures in a rectangle, annotated as one iscrowd mask."""
    height, width = image.shape[:2]
    cw, ch = rng.uniform(0.3, 0.55) * width, rng.uniform(0.2, 0.35) * height
    cx, cy = rng.uniform(0, width - cw), rng.uniform(0, height - ch)
    mask = np.zeros((height, width), np.uint8)
    for _ in range(int(rng.integers(4, 9))):
        fig = random_figure(rng, rng.uniform(0.08, 0.13) * height, float(rng.normal(0, 5)))
        fig = translate_figure(fig, np.array([rng.uniform(cx, cx + cw), rng.uniform(cy, cy + ch)]))
        draw_shapes(image, mask, fig.shapes)
    if mask.any():
        layers.masks.append(mask)
        layers.labelled.append(False)
        layers.figures.append(None)


def _draw_people(rng: np.random.Generator, image: np.ndarray, layers: _Layers, random_figure,
                 max_people: int) -> None:
    """Labelled figures (1..max_people) and small unlabelled ones, drawn far (small) to near (big)."""
    height, width = image.shape[:2]
    people: list[tuple[float, bool, bool]] = []   # (height px, labelled, close-up)
    for _ in range(int(rng.integers(1, max_people + 1))):
        if rng.random() < CLOSE_UP_PROB:
            people.append((rng.uniform(*CLOSE_UP_HEIGHT) * height, True, True))
        else:
            frac = float(np.exp(rng.uniform(np.log(MIN_HEIGHT), np.log(MAX_HEIGHT))))
            people.append((frac * height, True, False))
    if rng.random() < UNLABELLED_PROB:
        for _ in range(1 if rng.random() < 0.7 else 2):
            people.append((rng.uniform(0.1, 0.16) * height, False, False))
    depth = np.array([h * rng.uniform(0.8, 1.25) for h, _, _ in people])
    boxes: list[np.ndarray] = []
    for i in np.argsort(depth, kind="stable"):
        h, has_kp, close_up = people[i]
        rotation = float(np.clip(rng.normal(0, 8), -20, 20)) if close_up else _rotation(rng)
        fig = random_figure(rng, h, rotation)
        out_of_frame = rng.random() < OUT_OF_FRAME_PROB
        for _ in range(8):
            placed = _place(rng, fig, width, height, out_of_frame, close_up)
            box = figure_extent(placed)
            if not has_kp or all(_iou(box, b) <= MAX_OVERLAP_IOU for b in boxes):
                break
        if has_kp:
            boxes.append(box)
        mask = np.zeros((height, width), np.uint8)
        draw_shapes(image, mask, placed.shapes)
        layers.masks.append(mask)
        layers.labelled.append(has_kp)
        layers.figures.append(placed)
        layers.owner[mask > 0] = len(layers.masks)


def _draw_occluders(rng: np.random.Generator, image: np.ndarray, layers: _Layers, num_joints: int) -> None:
    """One or two objects in front of labelled figures, near one of their joints."""
    height = image.shape[0]
    targets = [f for f, lab in zip(layers.figures, layers.labelled) if lab]
    for _ in range(1 if rng.random() < 0.5 else 2):
        fig = targets[int(rng.integers(len(targets)))]
        size = min(float(np.ptp(fig.keypoints[:, 1])) + 10.0, 0.8 * height)
        center = fig.keypoints[int(rng.integers(num_joints))] + rng.normal(0, 0.1, 2) * size
        _occluder(rng, image, layers.owner, center, rng.uniform(0.2, 0.45) * size)


def _add_noise(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """Sensor noise, sometimes a slight blur."""
    sigma = rng.uniform(2, 7)
    noise = rng.standard_normal(image.shape, dtype=np.float32) * np.float32(sigma)
    image = np.clip(image + noise, 0, 255).astype(np.uint8)
    if rng.random() < 0.3:
        image = cv2.GaussianBlur(image, (3, 3), 0.7)
    return image


def _annotate(layers: _Layers, num_joints: int) -> list[Instance]:
    """COCO annotations of the drawn masks: keypoints inside the image, visible (2) where the
    figure is on top at the joint, occluded (1) elsewhere; crowds as RLE, people as polygons."""
    height, width = layers.owner.shape
    instances: list[Instance] = []
    for idx, (mask, has_kp, fig) in enumerate(zip(layers.masks, layers.labelled, layers.figures), start=1):
        area = float(np.count_nonzero(mask))
        if area == 0:
            continue
        visible = float(np.count_nonzero(layers.owner[mask > 0] == idx)) / area if fig is not None else 1.0
        kps = np.zeros((num_joints, 3))
        if fig is not None and has_kp:
            xy = fig.keypoints
            inside = (xy[:, 0] >= 0) & (xy[:, 0] <= width - 1) & (xy[:, 1] >= 0) & (xy[:, 1] <= height - 1)
            for k in np.nonzero(inside)[0]:
                on_top = layers.owner[int(round(xy[k, 1])), int(round(xy[k, 0]))] == idx
                kps[k] = (xy[k, 0], xy[k, 1], 2 if on_top else 1)
        crowd = fig is None
        instances.append(Instance(keypoints=kps, bbox=_mask_bbox(mask), area=area, iscrowd=int(crowd),
                                  segmentation=_rle(mask) if crowd else _polygons(mask),
                                  visible_fraction=visible))
    return instances

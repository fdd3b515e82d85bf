"""Articulated people for the synthetic dataset: pose sampling, body geometry and drawing.

A figure is built in its own frame, in units of its standing height (head top to soles ~ 1),
x right, y down, mid-hip at the origin, facing the camera: the person's left side is on the
image's right, as for a person facing the viewer in COCO. It is then scaled, rotated in the
image plane and translated to image px (pixel centres at integer coordinates, the OpenCV
drawing convention, which is also the convention of the crop warps in ``pose.data``).

Limbs are tapered polygons with round ends, so every limb joint (shoulder, elbow, wrist, hip,
knee, ankle) lies at a limb end, inside the drawn shape. The left limbs are drawn in a
red-magenta hue family and the right limbs in a blue-cyan one (arms light, legs darker), the
torso in a yellow-green or grey shirt colour, the head in a skin tone with dark eyes, a nose
and ears at the head's sides.
"""

from dataclasses import dataclass
from typing import NamedTuple

import cv2
import numpy as np

from pose.keypoints import COCO17

# The person figure's joints are COCO's 17, in COCO's order.
K = COCO17.num_joints
_IDX = {name: i for i, name in enumerate(COCO17.names)}

# Body proportions in units of standing height (adult, head ~ 1/7.5 of the height).
TORSO = 0.30          # mid-hip to mid-shoulder
NECK = 0.035          # shoulder line to the bottom of the head
HEAD_AX, HEAD_AY = 0.05, 0.066   # head ellipse half-width and half-height
SHOULDER_HALF = 0.115
HIP_HALF = 0.082
UPPER_ARM, FOREARM = 0.17, 0.155
THIGH, SHIN = 0.245, 0.245
# Limb widths (start, end) in units of height.
W_UPPER_ARM, W_FOREARM = (0.058, 0.045), (0.045, 0.034)
W_THIGH, W_SHIN = (0.094, 0.066), (0.066, 0.046)

# Pose presets: name -> probability.
PRESETS: dict[str, float] = {
    "stand": 0.24, "walk": 0.18, "arms_up": 0.1, "one_arm_up": 0.1, "arms_out": 0.08,
    "hands_on_hips": 0.06, "sit": 0.12, "random": 0.12,
}


@dataclass(frozen=True)
class Shape:
    """One filled primitive in image px: a polygon ``(n, 2)`` or a rotated ellipse."""

    kind: str                      # 'poly' or 'ellipse'
    color: tuple[int, int, int]    # BGR
    points: np.ndarray | None = None       # poly: (n, 2)
    center: np.ndarray | None = None       # ellipse: (2,)
    axes: tuple[float, float] = (0.0, 0.0)  # ellipse half-axes
    angle: float = 0.0                     # ellipse rotation, degrees (clockwise on screen)


@dataclass(frozen=True)
class Figure:
    """A posed person in image px: ``keypoints`` (17, 2) and ``shapes`` in drawing order."""

    keypoints: np.ndarray
    shapes: tuple[Shape, ...]


def _rot(deg: float) -> np.ndarray:
    t = np.deg2rad(deg)
    c, s = np.cos(t), np.sin(t)
    return np.array([[c, -s], [s, c]])


def _limb_dir(side: float, angle_deg: float, frame: np.ndarray) -> np.ndarray:
    """Unit vector at ``angle_deg`` from straight down, positive away from the body midline."""
    t = np.deg2rad(angle_deg)
    return frame @ np.array([side * np.sin(t), np.cos(t)])


def _hsv(h: float, s: float, v: float) -> tuple[int, int, int]:
    px = np.array([[[int(h) % 180, int(np.clip(s, 0, 255)), int(np.clip(v, 0, 255))]]], np.uint8)
    b, g, r = cv2.cvtColor(px, cv2.COLOR_HSV2BGR)[0, 0]
    return int(b), int(g), int(r)


def sample_colors(rng: np.random.Generator) -> dict[str, tuple[int, int, int]]:
    """Per-person palette: left limbs red-magenta, right limbs blue-cyan, shirt, skin, hair, shoes."""
    out = {}
    for side, (lo, hi) in (("left", (160, 186)), ("right", (92, 122))):
        hue, sat, val = rng.uniform(lo, hi), rng.uniform(150, 255), rng.uniform(175, 255)
        dark = rng.uniform(0.5, 0.72)
        out[f"{side}_upper_arm"] = _hsv(hue, sat, val)
        out[f"{side}_forearm"] = _hsv(hue + rng.uniform(-4, 4), sat, val * 0.86)
        out[f"{side}_thigh"] = _hsv(hue + rng.uniform(-5, 5), sat, val * dark)
        out[f"{side}_shin"] = _hsv(hue + rng.uniform(-5, 5), sat, val * dark * 0.85)
    if rng.random() < 0.6:
        out["shirt"] = _hsv(rng.uniform(24, 82), rng.uniform(90, 230), rng.uniform(120, 240))
    else:
        out["shirt"] = _hsv(0, rng.uniform(0, 25), rng.uniform(70, 235))
    skin_h, skin_s, skin_v = rng.uniform(7, 20), rng.uniform(50, 150), rng.uniform(110, 235)
    out["skin"] = _hsv(skin_h, skin_s, skin_v)
    out["skin_dark"] = _hsv(skin_h, skin_s + 20, skin_v * 0.75)
    out["hair"] = _hsv(rng.uniform(0, 30), rng.uniform(20, 200), rng.uniform(15, 90))
    out["eye"] = _hsv(0, 0, rng.uniform(0, 40))
    out["shoe"] = _hsv(rng.uniform(0, 180), rng.uniform(0, 80), rng.uniform(20, 70))
    return out


def sample_pose(rng: np.random.Generator) -> dict[str, float]:
    """Joint angles (degrees), foreshortening factors and head parameters of one person.

    Limb angles are measured from straight down, positive away from the midline; the
    forearm and shin angles are relative to the upper arm and thigh.
    """
    names = list(PRESETS)
    preset = names[rng.choice(len(names), p=np.array(list(PRESETS.values())) / sum(PRESETS.values()))]
    u = rng.uniform
    p: dict[str, float] = {"lean": float(np.clip(rng.normal(0, 6), -18, 18)),
                           "tilt": float(np.clip(rng.normal(0, 9), -25, 25)),
                           "yaw": u(-0.3, 0.3), "width": u(0.62, 1.0)}
    for side in ("l", "r"):
        p[f"{side}_arm"], p[f"{side}_elbow"] = u(4, 28), u(-30, 12)
        p[f"{side}_hip"], p[f"{side}_knee"] = u(2, 12), u(-8, 4)
        for seg in ("upper_arm", "forearm", "thigh", "shin"):
            p[f"{side}_{seg}_len"] = 1.0 if rng.random() < 0.75 else u(0.6, 1.0)
    sides = ("l", "r") if rng.random() < 0.5 else ("r", "l")
    if preset == "walk":
        for side in ("l", "r"):
            p[f"{side}_arm"], p[f"{side}_elbow"] = u(0, 30), u(-60, 20)
            p[f"{side}_knee"] = u(-30, 10)
        p[f"{sides[0]}_hip"], p[f"{sides[1]}_hip"] = u(10, 32), u(-10, 4)
    elif preset in ("arms_up", "one_arm_up"):
        for side in sides[:2 if preset == "arms_up" else 1]:
            p[f"{side}_arm"], p[f"{side}_elbow"] = u(110, 175), u(-70, 30)
    elif preset == "arms_out":
        for side in ("l", "r"):
            p[f"{side}_arm"], p[f"{side}_elbow"] = u(65, 112), u(-95, 45)
    elif preset == "hands_on_hips":
        for side in ("l", "r"):
            p[f"{side}_arm"], p[f"{side}_elbow"] = u(32, 55), u(-150, -110)
    elif preset == "sit":
        for side in ("l", "r"):
            hip = u(8, 60)
            p[f"{side}_hip"], p[f"{side}_thigh_len"] = hip, u(0.3, 0.6)
            p[f"{side}_knee"], p[f"{side}_shin_len"] = u(-12, 15) - hip, u(0.85, 1.0)
    elif preset == "random":
        p["lean"] = u(-28, 28)
        for side in ("l", "r"):
            p[f"{side}_arm"], p[f"{side}_elbow"] = u(-20, 175), u(-150, 150)
            p[f"{side}_hip"], p[f"{side}_knee"] = u(-15, 85), u(-100, 60)
    p["preset"] = float(names.index(preset))
    return p


def _limb(a: np.ndarray, b: np.ndarray, wa: float, wb: float, color) -> list[tuple]:
    """Tapered segment from ``a`` (width ``wa``) to ``b`` (width ``wb``) with round ends."""
    d = b - a
    n = np.array([-d[1], d[0]]) / max(float(np.hypot(*d)), 1e-9)
    quad = np.stack([a + n * wa / 2, b + n * wb / 2, b - n * wb / 2, a - n * wa / 2])
    return [("poly", color, quad), ("ellipse", color, a, (wa / 2, wa / 2), 0.0),
            ("ellipse", color, b, (wb / 2, wb / 2), 0.0)]


def build_figure(pose: dict[str, float], colors: dict[str, tuple[int, int, int]], *,
                 height_px: float, rotation_deg: float, hip_xy: np.ndarray,
                 rng: np.random.Generator) -> Figure:
    """Posed, drawn person in image px (see the module docstring for the body frame).

    ``height_px`` is the standing height; ``rotation_deg`` an in-plane rotation about the
    mid-hip, clockwise on screen; ``hip_xy`` the mid-hip position in the image.
    """
    kp, ends, torso = _place_body(pose)
    head = _place_head(pose, kp, torso)
    shapes = _leg_shapes(kp, ends, colors) + _torso_and_head_shapes(kp, torso, head, colors) \
        + _arm_shapes(kp, ends, colors, rng)
    return _to_image(kp, shapes, height_px=height_px, rotation_deg=rotation_deg, hip_xy=hip_xy)


class _Torso(NamedTuple):
    up_frame: np.ndarray   # rotation of the upper body (it leans about the mid-hip)
    perp_up: np.ndarray    # the upper body's sideways direction
    neck: np.ndarray


class _Head(NamedTuple):
    center: np.ndarray
    up: np.ndarray
    right: np.ndarray
    angle: float           # degrees
    yaw: float             # the face's turn, as a fraction of the head's half-width


def _place_body(pose: dict[str, float]) -> tuple[np.ndarray, dict[str, np.ndarray], _Torso]:
    """Joints of the torso and limbs (body frame), the direction of each hand and foot, the torso."""
    kp = np.zeros((K, 2))
    width = pose["width"]
    up_frame = _rot(pose["lean"])
    hip_frame = np.eye(2)
    perp_up = up_frame @ np.array([1.0, 0.0])
    neck = up_frame @ np.array([0.0, -TORSO])
    for name, side in (("left", 1.0), ("right", -1.0)):
        kp[_IDX[f"{name}_shoulder"]] = neck + side * perp_up * SHOULDER_HALF * width
        kp[_IDX[f"{name}_hip"]] = np.array([side * HIP_HALF * width, 0.0])

    def chain(name: str, side: float, joints: tuple[str, str, str], frame: np.ndarray,
              angles: tuple[str, str], segs: tuple[tuple[str, float], tuple[str, float]]) -> np.ndarray:
        """Place the middle and end joints of a limb; return the direction of its last segment."""
        s = name[0]
        a1 = pose[f"{s}_{angles[0]}"]
        d1 = _limb_dir(side, a1, frame)
        d2 = _limb_dir(side, a1 + pose[f"{s}_{angles[1]}"], frame)
        root, mid, end = (_IDX[f"{name}_{j}"] for j in joints)
        kp[mid] = kp[root] + d1 * segs[0][1] * pose[f"{s}_{segs[0][0]}_len"]
        kp[end] = kp[mid] + d2 * segs[1][1] * pose[f"{s}_{segs[1][0]}_len"]
        return d2

    ends = {}
    for name, side in (("left", 1.0), ("right", -1.0)):
        ends[f"{name}_hand"] = chain(name, side, ("shoulder", "elbow", "wrist"), up_frame, ("arm", "elbow"),
                                     (("upper_arm", UPPER_ARM), ("forearm", FOREARM)))
        ends[f"{name}_foot"] = chain(name, side, ("hip", "knee", "ankle"), hip_frame, ("hip", "knee"),
                                     (("thigh", THIGH), ("shin", SHIN)))
    return kp, ends, _Torso(up_frame, perp_up, neck)


def _place_head(pose: dict[str, float], kp: np.ndarray, torso: _Torso) -> _Head:
    """Nose, eyes and ears into ``kp``; the face turns by 'yaw'."""
    head_frame = _rot(pose["lean"] + pose["tilt"])
    head_up = head_frame @ np.array([0.0, -1.0])
    head_right = head_frame @ np.array([1.0, 0.0])
    head = torso.neck + head_up * (NECK + HEAD_AY)
    yaw = pose["yaw"]
    kp[_IDX["nose"]] = head + head_right * yaw * HEAD_AX * 1.2 - head_up * 0.22 * HEAD_AY
    for name, side in (("left", 1.0), ("right", -1.0)):
        kp[_IDX[f"{name}_eye"]] = head + head_right * (side * 0.42 + yaw) * HEAD_AX + head_up * 0.12 * HEAD_AY
        kp[_IDX[f"{name}_ear"]] = head + head_right * (side * 1.0 - 0.25 * yaw) * HEAD_AX + head_up * 0.02
    return _Head(head, head_up, head_right, pose["lean"] + pose["tilt"], yaw)


# Drawing order: legs and feet, torso, neck, hair, ears, face, arms and hands.

def _leg_shapes(kp: np.ndarray, ends: dict[str, np.ndarray], colors: dict) -> list[tuple]:
    shapes: list[tuple] = []
    for name, side in (("left", 1.0), ("right", -1.0)):
        hip, knee, ankle = (kp[_IDX[f"{name}_{j}"]] for j in ("hip", "knee", "ankle"))
        foot_dir = ends[f"{name}_foot"]
        foot_c = ankle + foot_dir * 0.022 + side * np.array([1.0, 0.0]) * 0.014
        foot_angle = float(np.degrees(np.arctan2(foot_dir[1], foot_dir[0]))) - 90.0
        shapes.append(("ellipse", colors["shoe"], foot_c, (0.034, 0.018), foot_angle))
        shapes += _limb(hip, knee, *W_THIGH, colors[f"{name}_thigh"])
        shapes += _limb(knee, ankle, *W_SHIN, colors[f"{name}_shin"])
    return shapes


def _torso_and_head_shapes(kp: np.ndarray, torso: _Torso, head: _Head, colors: dict) -> list[tuple]:
    ls, rs, lh, rh = (kp[_IDX[n]] for n in ("left_shoulder", "right_shoulder", "left_hip", "right_hip"))
    perp_up = torso.perp_up
    up_dir = torso.up_frame @ np.array([0.0, -1.0])
    waist = 0.55
    outline = np.stack([
        ls + perp_up * 0.03 + up_dir * 0.016, rs - perp_up * 0.03 + up_dir * 0.016,
        rs + (rh - rs) * waist - perp_up * 0.004, rh + np.array([-0.045, 0.045]),
        lh + np.array([0.045, 0.045]), ls + (lh - ls) * waist + perp_up * 0.004])
    shapes: list[tuple] = [("poly", colors["shirt"], outline[[0, 5, 4, 3, 2, 1]])]
    shapes += _limb(torso.neck + up_dir * 0.01, head.center - head.up * HEAD_AY * 0.6, 0.045, 0.036, colors["skin"])
    shapes.append(("ellipse", colors["hair"], head.center + head.up * 0.008, (HEAD_AX * 1.04, HEAD_AY), head.angle))
    for name in ("left", "right"):
        shapes.append(("ellipse", colors["skin_dark"], kp[_IDX[f"{name}_ear"]], (0.013, 0.02), head.angle))
    shapes.append(("ellipse", colors["skin"], head.center - head.up * 0.012 + head.right * head.yaw * HEAD_AX * 0.3,
                   (HEAD_AX * 0.9, HEAD_AY * 0.84), head.angle))
    for name in ("left", "right"):
        shapes.append(("ellipse", colors["eye"], kp[_IDX[f"{name}_eye"]], (0.0085, 0.0075), head.angle))
    shapes.append(("ellipse", colors["skin_dark"], kp[_IDX["nose"]], (0.008, 0.011), head.angle))
    return shapes


def _arm_shapes(kp: np.ndarray, ends: dict[str, np.ndarray], colors: dict, rng: np.random.Generator) -> list[tuple]:
    shapes: list[tuple] = []
    arm_order = ("left", "right") if rng.random() < 0.5 else ("right", "left")
    for name in arm_order:
        sh, el, wr = (kp[_IDX[f"{name}_{j}"]] for j in ("shoulder", "elbow", "wrist"))
        shapes += _limb(sh, el, *W_UPPER_ARM, colors[f"{name}_upper_arm"])
        shapes += _limb(el, wr, *W_FOREARM, colors[f"{name}_forearm"])
        shapes.append(("ellipse", colors["skin"], wr + ends[f"{name}_hand"] * 0.018, (0.024, 0.024), 0.0))
    return shapes


def _to_image(kp: np.ndarray, shapes: list[tuple], *, height_px: float, rotation_deg: float,
              hip_xy: np.ndarray) -> Figure:
    """Body frame to image px: scale, rotate about the mid-hip, translate."""
    rot = _rot(rotation_deg) * height_px
    hip_xy = np.asarray(hip_xy, dtype=np.float64)
    out: list[Shape] = []
    for item in shapes:
        if item[0] == "poly":
            out.append(Shape("poly", item[1], points=item[2] @ rot.T + hip_xy))
        else:
            _, color, center, axes, angle = item
            out.append(Shape("ellipse", color, center=rot @ center + hip_xy,
                             axes=(axes[0] * height_px, axes[1] * height_px), angle=angle + rotation_deg))
    return Figure(keypoints=kp @ rot.T + hip_xy, shapes=tuple(out))


_SHIFT = 4
_ONE = 1 << _SHIFT


def draw_shapes(image: np.ndarray, mask: np.ndarray | None, shapes: tuple[Shape, ...] | list[Shape]) -> None:
    """Draw ``shapes`` in place: anti-aliased on ``image`` (H, W, 3) and solid 255 on ``mask`` (H, W)."""
    for sh in shapes:
        if sh.kind == "poly":
            pts = [np.round(sh.points * _ONE).astype(np.int32)]
            cv2.fillPoly(image, pts, sh.color, cv2.LINE_AA, _SHIFT)
            if mask is not None:
                cv2.fillPoly(mask, pts, 255, cv2.LINE_8, _SHIFT)
        else:
            c = (int(round(sh.center[0] * _ONE)), int(round(sh.center[1] * _ONE)))
            ax = tuple(max(int(round(a * _ONE)), _ONE // 2) for a in sh.axes)
            cv2.ellipse(image, c, ax, sh.angle, 0, 360, sh.color, -1, cv2.LINE_AA, _SHIFT)
            if mask is not None:
                cv2.ellipse(mask, c, ax, sh.angle, 0, 360, 255, -1, cv2.LINE_8, _SHIFT)


def figure_extent(fig: Figure) -> np.ndarray:
    """Bounding box ``(x0, y0, x1, y1)`` in image px of everything drawn for ``fig``."""
    lo, hi = np.full(2, np.inf), np.full(2, -np.inf)
    for sh in fig.shapes:
        if sh.kind == "poly":
            lo, hi = np.minimum(lo, sh.points.min(0)), np.maximum(hi, sh.points.max(0))
        else:
            r = max(sh.axes)
            lo, hi = np.minimum(lo, sh.center - r), np.maximum(hi, sh.center + r)
    return np.concatenate([lo, hi])


def translate_figure(fig: Figure, offset: np.ndarray) -> Figure:
    """``fig`` moved by ``offset`` (2,) image px."""
    offset = np.asarray(offset, dtype=np.float64)
    shapes = tuple(Shape(sh.kind, sh.color, points=None if sh.points is None else sh.points + offset,
                         center=None if sh.center is None else sh.center + offset, axes=sh.axes,
                         angle=sh.angle) for sh in fig.shapes)
    return Figure(keypoints=fig.keypoints + offset, shapes=shapes)

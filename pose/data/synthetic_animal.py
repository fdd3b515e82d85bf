"""A non-human figure for the synthetic dataset: a four-legged animal seen from above.

It exists to exercise every path of the toolkit with a keypoint set that is not COCO's: 20 joints
of its own names, its own skeleton, and left/right joints in two naming forms (``eye_l`` /
``eye_r`` and ``l_front_paw`` / ``r_front_paw``) from which the flip pairs are derived
(:func:`pose.keypoints.derive_flip_pairs`). Its category in the annotation files is
:func:`animal_category`; it is deliberately not a built-in set.

The body frame is in units of the body length (nose to tail base ~ 1), x right, y down, the head
up: seen from above, the animal's left side is on the image's left. The figure is then scaled,
rotated in the image plane about the body centre and translated to image px, as the person
figure (:mod:`pose.data.synthetic_figure`). Left legs are drawn in a red-magenta hue family, right
legs in a blue-cyan one, the body and head in a fur colour with dark eyes.
"""

import numpy as np

from pose.data.synthetic_figure import Figure, Shape, _hsv, _limb, _rot

ANIMAL_NAMES = (
    "nose", "eye_l", "eye_r", "ear_l", "ear_r", "neck", "tail_base", "tail_tip",
    "l_shoulder", "r_shoulder", "l_front_knee", "r_front_knee", "l_front_paw", "r_front_paw",
    "l_hip", "r_hip", "l_hind_knee", "r_hind_knee", "l_hind_paw", "r_hind_paw",
)
_IDX = {name: i for i, name in enumerate(ANIMAL_NAMES)}
# 0-based limbs (the annotation files store them 1-based).
ANIMAL_SKELETON = tuple((_IDX[a], _IDX[b]) for a, b in (
    ("nose", "eye_l"), ("nose", "eye_r"), ("eye_l", "ear_l"), ("eye_r", "ear_r"), ("nose", "neck"),
    ("neck", "tail_base"), ("tail_base", "tail_tip"),
    ("neck", "l_shoulder"), ("l_shoulder", "l_front_knee"), ("l_front_knee", "l_front_paw"),
    ("neck", "r_shoulder"), ("r_shoulder", "r_front_knee"), ("r_front_knee", "r_front_paw"),
    ("tail_base", "l_hip"), ("l_hip", "l_hind_knee"), ("l_hind_knee", "l_hind_paw"),
    ("tail_base", "r_hip"), ("r_hip", "r_hind_knee"), ("r_hind_knee", "r_hind_paw"),
))
K_ANIMAL = len(ANIMAL_NAMES)

# Proportions in units of the body length.
NECK_Y, TAIL_Y, HEAD_Y = -0.28, 0.3, -0.45
SHOULDER_HALF, HIP_HALF = 0.1, 0.09
UPPER_LEG, LOWER_LEG, TAIL = 0.2, 0.17, 0.35
W_UPPER, W_LOWER, W_TAIL = (0.07, 0.05), (0.05, 0.035), (0.06, 0.02)


def animal_category(category_id: int = 1) -> dict:
    """The COCO category of the animal: names and 1-based skeleton (what a user's file would hold)."""
    return {"supercategory": "animal", "id": category_id, "name": "animal", "keypoints": list(ANIMAL_NAMES),
            "skeleton": [[a + 1, b + 1] for a, b in ANIMAL_SKELETON]}


def _leg(kp: np.ndarray, side: str, end: str, root: np.ndarray, sign: float, angles: tuple[float, float],
         lengths: tuple[float, float], forward: float) -> None:
    """Place a leg: root joint, knee and paw, splayed sideways (``sign``) and along ``forward``."""
    joint = "shoulder" if end == "front" else "hip"
    a1, a2 = np.deg2rad(angles[0]), np.deg2rad(angles[0] + angles[1])
    d1 = np.array([sign * np.cos(a1), forward * np.sin(a1)])
    d2 = np.array([sign * np.cos(a2), forward * np.sin(a2)])
    kp[_IDX[f"{side}_{joint}"]] = root
    kp[_IDX[f"{side}_{end}_knee"]] = root + d1 * UPPER_LEG * lengths[0]
    kp[_IDX[f"{side}_{end}_paw"]] = kp[_IDX[f"{side}_{end}_knee"]] + d2 * LOWER_LEG * lengths[1]


def random_animal_figure(rng: np.random.Generator, length_px: float, rotation_deg: float) -> Figure:
    """A posed, drawn animal ``length_px`` long, rotated by ``rotation_deg`` about its centre at (0, 0)."""
    u = rng.uniform
    kp = np.zeros((K_ANIMAL, 2))
    bend = u(-12, 12)                       # the spine bends at the neck
    fore = _rot(bend)
    neck, tail_base = np.array([0.0, NECK_Y]), np.array([0.0, TAIL_Y])
    kp[_IDX["neck"]], kp[_IDX["tail_base"]] = neck, tail_base
    head = neck + fore @ np.array([0.0, HEAD_Y - NECK_Y])
    up, right = fore @ np.array([0.0, -1.0]), fore @ np.array([1.0, 0.0])
    kp[_IDX["nose"]] = head + up * 0.09
    for name, sign in (("l", -1.0), ("r", 1.0)):
        kp[_IDX[f"eye_{name}"]] = head + up * 0.02 + right * sign * 0.035
        kp[_IDX[f"ear_{name}"]] = head - up * 0.05 + right * sign * 0.06
        _leg(kp, name, "front", neck + right * sign * SHOULDER_HALF, sign, (u(-60, 40), u(-50, 50)),
             (u(0.7, 1.0), u(0.7, 1.0)), forward=-1.0)
        _leg(kp, name, "hind", tail_base + np.array([sign * HIP_HALF, -0.02]), sign, (u(-40, 60), u(-50, 50)),
             (u(0.7, 1.0), u(0.7, 1.0)), forward=1.0)
    tail_angle = np.deg2rad(u(-50, 50))
    kp[_IDX["tail_tip"]] = tail_base + np.array([np.sin(tail_angle), np.cos(tail_angle)]) * TAIL * u(0.6, 1.0)

    fur = _hsv(u(5, 30), u(40, 160), u(70, 200))
    shapes: list[tuple] = _limb(kp[_IDX["tail_base"]], kp[_IDX["tail_tip"]], *W_TAIL, _hsv(u(5, 30), 120, u(40, 110)))
    for name, (lo, hi) in (("l", (160, 186)), ("r", (92, 122))):
        hue, sat, val = u(lo, hi), u(150, 255), u(175, 255)
        for end, joint in (("front", "shoulder"), ("hind", "hip")):
            root, knee, paw = (kp[_IDX[f"{name}_{j}"]] for j in (joint, f"{end}_knee", f"{end}_paw"))
            shapes += _limb(root, knee, *W_UPPER, _hsv(hue, sat, val))
            shapes += _limb(knee, paw, *W_LOWER, _hsv(hue, sat, val * 0.7))
    body_angle = float(np.degrees(np.arctan2(*(tail_base - neck)[::-1]))) - 90.0
    shapes.append(("ellipse", fur, (neck + tail_base) / 2, (0.12, (TAIL_Y - NECK_Y) / 2 + 0.05), body_angle))
    head_angle = -bend
    for name in ("l", "r"):
        shapes.append(("ellipse", _hsv(u(5, 30), 150, 60), kp[_IDX[f"ear_{name}"]], (0.03, 0.022), head_angle))
    shapes.append(("ellipse", fur, head, (0.075, 0.1), head_angle))
    for name in ("l", "r"):
        shapes.append(("ellipse", _hsv(0, 0, u(0, 40)), kp[_IDX[f"eye_{name}"]], (0.012, 0.012), 0.0))
    shapes.append(("ellipse", _hsv(0, 0, u(10, 50)), kp[_IDX["nose"]], (0.018, 0.014), head_angle))

    rot = _rot(rotation_deg) * length_px
    out: list[Shape] = []
    for item in shapes:
        if item[0] == "poly":
            out.append(Shape("poly", item[1], points=item[2] @ rot.T))
        else:
            _, color, center, axes, angle = item
            out.append(Shape("ellipse", color, center=rot @ center,
                             axes=(axes[0] * length_px, axes[1] * length_px), angle=angle + rotation_deg))
    return Figure(keypoints=kp @ rot.T, shapes=tuple(out))

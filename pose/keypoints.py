"""COCO keypoint metadata shared by the data, evaluation and drawing code."""

import numpy as np

KEYPOINT_NAMES: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)
NUM_KEYPOINTS = len(KEYPOINT_NAMES)

# Left/right pairs swapped by a horizontal flip.
FLIP_PAIRS: tuple[tuple[int, int], ...] = (
    (1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16))

# flip_index[k] is the joint that k becomes after a horizontal flip.
_SWAP = {**dict(FLIP_PAIRS), **{b: a for a, b in FLIP_PAIRS}}
FLIP_INDEX: tuple[int, ...] = tuple(_SWAP.get(k, k) for k in range(NUM_KEYPOINTS))

# Joints of the upper body (half-body augmentation); the rest are the lower body.
UPPER_BODY_IDS: tuple[int, ...] = tuple(range(11))
LOWER_BODY_IDS: tuple[int, ...] = tuple(range(11, NUM_KEYPOINTS))

# Limbs as 0-based joint pairs (COCO's 'skeleton' is the same list, 1-based).
SKELETON: tuple[tuple[int, int], ...] = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7),
    (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6))

# Per-keypoint OKS sigmas of the COCO evaluation (pycocotools' values).
OKS_SIGMAS = np.array([.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62,
                       1.07, 1.07, .87, .87, .89, .89], dtype=np.float64) / 10.0

# The official per-joint loss weights (USE_DIFFERENT_JOINTS_WEIGHT).
JOINT_WEIGHTS: tuple[float, ...] = (
    1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.2, 1.2, 1.5, 1.5, 1.0, 1.0, 1.2, 1.2, 1.5, 1.5)


def joint_side(k: int) -> str:
    """'left', 'right' or 'centre' for joint index k (for colours)."""
    name = KEYPOINT_NAMES[k]
    return "left" if name.startswith("left") else "right" if name.startswith("right") else "centre"


def limb_side(a: int, b: int) -> str:
    """'left', 'right' or 'centre' for the limb between joints a and b."""
    sides = {joint_side(a), joint_side(b)}
    return sides.pop() if len(sides) == 1 else "centre"


def coco_person_category() -> dict:
    """The COCO 'person' category entry with keypoint names and 1-based skeleton."""
    return {"supercategory": "person", "id": 1, "name": "person",
            "keypoints": list(KEYPOINT_NAMES),
            "skeleton": [[a + 1, b + 1] for a, b in SKELETON]}

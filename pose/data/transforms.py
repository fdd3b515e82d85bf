"""Geometry of top-down crops: box -> centre/scale, affine crop matrices, flip, half-body, random aug.

Frames: *image* px are the pixels of the original image (x right, y down, pixel centres at integers);
*crop* px are the pixels of the network input (``input_size`` = (width, height)); *heatmap* px are
the pixels of the network output. A crop is described by a centre (2,) in image px and a scale
(2,) = (width, height) / ``pixel_std`` of the image region it covers (official convention, 200 px
per unit), plus a rotation in degrees.

Two crop conventions exist (see :mod:`pose.data.codecs`):

- official (HRNet / SimpleBaseline): :func:`get_affine_transform`, the region of width
  ``scale * pixel_std`` is mapped onto ``output_size`` pixels (centre -> ``output_size / 2``);
- UDP (Huang et al., CVPR 2020): :func:`get_udp_warp_matrix`, the region is mapped onto
  ``output_size - 1`` pixel *intervals* (centre -> ``(output_size - 1) / 2``), so that flipping and
  resizing are unbiased.

The random draws use ``np.random`` and ``random`` like the official code, so DataLoader workers
(which PyTorch seeds per worker for both) get different augmentations.
"""

import math
import random
from collections.abc import Sequence

import cv2
import numpy as np


def box_to_center_scale(box_xywh: Sequence[float], aspect_ratio: float, padding: float = 1.25,
                        pixel_std: float = 200.0) -> tuple[np.ndarray, np.ndarray]:
    """Box ``x, y, w, h`` (image px) -> ``(center (2,), scale (2,))`` float32 (official ``_xywh2cs``).

    The box is grown to ``aspect_ratio`` (= input width / height) around its centre, expressed in
    units of ``pixel_std`` and multiplied by ``padding``.
    """
    x, y, w, h = (float(v) for v in box_xywh[:4])
    center = np.array([x + w * 0.5, y + h * 0.5], dtype=np.float32)
    return center, _size_to_scale(w, h, aspect_ratio, pixel_std, padding)


def _size_to_scale(w: float, h: float, aspect_ratio: float, pixel_std: float, factor: float) -> np.ndarray:
    """Grow (w, h) to ``aspect_ratio`` (w / h), divide by ``pixel_std``, multiply by ``factor``."""
    if w > aspect_ratio * h:
        h = w / aspect_ratio
    elif w < aspect_ratio * h:
        w = h * aspect_ratio
    return (np.array([w / pixel_std, h / pixel_std], dtype=np.float32) * factor).astype(np.float32)


def _rotate(vec: np.ndarray, rot_rad: float) -> np.ndarray:
    sn, cs = math.sin(rot_rad), math.cos(rot_rad)
    return np.array([vec[0] * cs - vec[1] * sn, vec[0] * sn + vec[1] * cs], dtype=np.float32)


def _third_point(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = a - b
    return b + np.array([-d[1], d[0]], dtype=np.float32)


def get_affine_transform(center: Sequence[float], scale: Sequence[float], rot_deg: float,
                         output_size_wh: Sequence[float], inv: bool = False,
                         pixel_std: float = 200.0) -> np.ndarray:
    """(2, 3) affine image px -> crop px in the official three-point convention (``inv``: crop -> image).

    Point pairs: the centre maps to ``output_size / 2``; the centre plus the vector
    ``(0, -src_w / 2)`` rotated by ``rot_deg`` maps to ``output_size / 2 + (0, -dst_w / 2)``; a third
    point perpendicular to both completes the triangle (``src_w = scale[0] * pixel_std``).
    """
    center = np.asarray(center, dtype=np.float32)
    src_w = float(scale[0]) * pixel_std
    dst_w, dst_h = float(output_size_wh[0]), float(output_size_wh[1])
    src_dir = _rotate(np.array([0.0, src_w * -0.5]), math.pi * rot_deg / 180.0)
    src = np.zeros((3, 2), dtype=np.float32)
    dst = np.zeros((3, 2), dtype=np.float32)
    src[0] = center
    src[1] = center + src_dir
    dst[0] = [dst_w * 0.5, dst_h * 0.5]
    dst[1] = dst[0] + np.array([0.0, dst_w * -0.5], dtype=np.float32)
    src[2] = _third_point(src[0], src[1])
    dst[2] = _third_point(dst[0], dst[1])
    if inv:
        return cv2.getAffineTransform(dst, src)
    return cv2.getAffineTransform(src, dst)


def get_udp_warp_matrix(center: Sequence[float], scale: Sequence[float], rot_deg: float,
                        output_size_wh: Sequence[float], inv: bool = False,
                        pixel_std: float = 200.0) -> np.ndarray:
    """(2, 3) affine image px -> crop px in UDP's convention (``inv``: crop -> image).

    UDP measures sizes in pixel intervals: the region ``scale * pixel_std`` wide maps onto
    ``output_size - 1``, the centre onto ``(output_size - 1) / 2``, rotating by ``rot_deg`` about
    the centre (UDP's sign: a positive angle turns the content the other way from
    :func:`get_affine_transform`; the augmentation draws symmetric angles, so it does not matter).
    """
    theta = math.radians(rot_deg)
    cx, cy = float(center[0]), float(center[1])
    roi_w, roi_h = float(scale[0]) * pixel_std, float(scale[1]) * pixel_std
    sx = (float(output_size_wh[0]) - 1.0) / roi_w
    sy = (float(output_size_wh[1]) - 1.0) / roi_h
    cs, sn = math.cos(theta), math.sin(theta)
    mat = np.array([
        [cs * sx, -sn * sx, sx * (-cx * cs + cy * sn + 0.5 * roi_w)],
        [sn * sy, cs * sy, sy * (-cx * sn - cy * cs + 0.5 * roi_h)],
    ], dtype=np.float64)
    return cv2.invertAffineTransform(mat) if inv else mat


def affine_points(points: np.ndarray, mat: np.ndarray) -> np.ndarray:
    """Apply a (2, 3) affine matrix to points (..., 2); returns (..., 2) in the points' dtype (float)."""
    points = np.asarray(points)
    mat = np.asarray(mat, dtype=np.float64)
    out = points[..., :2].astype(np.float64) @ mat[:, :2].T + mat[:, 2]
    return out.astype(points.dtype if np.issubdtype(points.dtype, np.floating) else np.float64)


def compose_affine(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """(2, 3) matrix of ``outer(inner(p))``."""
    a = np.vstack([np.asarray(outer, np.float64), [0.0, 0.0, 1.0]])
    b = np.vstack([np.asarray(inner, np.float64), [0.0, 0.0, 1.0]])
    return (a @ b)[:2]


def hflip_matrix(image_width: int) -> np.ndarray:
    """(2, 3) mirror of an image ``image_width`` px wide: ``x -> W - x - 1`` (official flip)."""
    return np.array([[-1.0, 0.0, image_width - 1.0], [0.0, 1.0, 0.0]])


def flip_joints(joints: np.ndarray, visible: np.ndarray, image_width: int,
                flip_pairs: Sequence[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """Mirror joints (K, 2+) image px and visibility (K,) horizontally (official ``fliplr_joints``).

    ``flip_pairs``: the keypoint set's left/right joint index pairs (``KeypointSet.flip_pairs``).

    ``x = W - x - 1``, left/right pairs swapped; joints with visibility 0 get coordinates 0 (as
    the official code, which multiplies by the visibility). Returns new arrays.
    """
    joints = np.array(joints, dtype=np.float32, copy=True)
    visible = np.array(visible, dtype=np.float32, copy=True)
    joints[:, 0] = image_width - joints[:, 0] - 1
    order = np.arange(len(joints))
    for a, b in flip_pairs:
        order[a], order[b] = b, a
    joints, visible = joints[order], visible[order]
    joints[:, :2] *= (visible > 0)[:, None]
    return joints, visible


def flip_center(center: np.ndarray, image_width: int) -> np.ndarray:
    """Centre (2,) of a crop after a horizontal image flip: ``x = W - x - 1``."""
    out = np.array(center, dtype=np.float32, copy=True)
    out[0] = image_width - out[0] - 1
    return out


def half_body_center_scale(joints: np.ndarray, visible: np.ndarray, aspect_ratio: float,
                           pixel_std: float, upper_body_ids: Sequence[int],
                           scale_factor: float = 1.5) -> tuple[np.ndarray, np.ndarray] | None:
    """Half-body crop (official ``half_body_transform``) for joints (K, 2) image px, visibility (K,).

    ``upper_body_ids``: the keypoint set's upper-body joints (``KeypointSet.upper_body``), the others
    being the lower body. Upper body when ``np.random.randn() < 0.5`` and more than 2 upper joints
    are labelled, else the lower body when it has more than 2, else the upper body. ``None`` when
    fewer than 2 joints are chosen. The centre is the mean of the chosen joints; the size is their
    min/max extent, grown to ``aspect_ratio`` and multiplied by ``scale_factor`` (no padding).
    Returns float32 (2,), (2,).
    """
    joints = np.asarray(joints, dtype=np.float32)[:, :2]
    labelled = np.asarray(visible) > 0
    is_upper = np.zeros(len(joints), dtype=bool)
    is_upper[list(upper_body_ids)] = True
    upper = joints[labelled & is_upper]
    lower = joints[labelled & ~is_upper]
    if np.random.randn() < 0.5 and len(upper) > 2:
        chosen = upper
    else:
        chosen = lower if len(lower) > 2 else upper
    if len(chosen) < 2:
        return None
    center = chosen.mean(axis=0).astype(np.float32)
    w, h = (chosen.max(axis=0) - chosen.min(axis=0)).tolist()
    return center, _size_to_scale(w, h, aspect_ratio, pixel_std, scale_factor)


def sample_scale_multiplier(scale_factor: float) -> float:
    """``clip(randn * sf + 1, 1 - sf, 1 + sf)`` (official random scale)."""
    return float(np.clip(np.random.randn() * scale_factor + 1, 1 - scale_factor, 1 + scale_factor))


def sample_rotation(rot_factor: float, rot_prob: float = 0.6) -> float:
    """Degrees: ``clip(randn * rf, -2 rf, 2 rf)`` when ``random.random() <= rot_prob``, else 0 (official)."""
    if random.random() <= rot_prob:
        return float(np.clip(np.random.randn() * rot_factor, -rot_factor * 2, rot_factor * 2))
    return 0.0

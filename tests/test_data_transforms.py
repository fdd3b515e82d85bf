"""Crop geometry: box -> centre/scale, official and UDP affine matrices, flip, half-body, random draws."""

import math

import numpy as np
import pytest

from pose.data import transforms as T
from pose.keypoints import COCO17

FLIP_PAIRS = COCO17.flip_pairs
UPPER = COCO17.upper_body


def test_box_to_center_scale_hand_computed():
    # Wide box: height grows to w / aspect = 100 / 0.75.
    center, scale = T.box_to_center_scale([10, 20, 100, 50], 0.75)
    np.testing.assert_allclose(center, [60, 45])
    np.testing.assert_allclose(scale, [100 / 200 * 1.25, 100 / 0.75 / 200 * 1.25], rtol=1e-6)
    # Tall box: width grows to h * aspect = 60.
    center, scale = T.box_to_center_scale([0, 0, 30, 80], 0.75)
    np.testing.assert_allclose(center, [15, 40])
    np.testing.assert_allclose(scale, [0.375, 0.5], rtol=1e-6)
    assert center.dtype == np.float32 and scale.dtype == np.float32
    # Padding and pixel_std.
    _, scale = T.box_to_center_scale([0, 0, 60, 80], 0.75, padding=1.0, pixel_std=100.0)
    np.testing.assert_allclose(scale, [0.6, 0.8], rtol=1e-6)


def test_official_affine_rotation0_matches_hand_matrix_and_inverse():
    center, scale, out = np.array([300.0, 200.0]), np.array([1.2, 1.6]), (192, 256)
    mat = T.get_affine_transform(center, scale, 0.0, out)
    k = 192 / (1.2 * 200)
    expected = [[k, 0, 96 - k * 300], [0, k, 128 - k * 200]]
    np.testing.assert_allclose(mat, expected, atol=1e-4)
    inv = T.get_affine_transform(center, scale, 0.0, out, inv=True)
    np.testing.assert_allclose(T.affine_points(np.array([96.0, 128.0]), inv), center, atol=1e-4)


@pytest.mark.parametrize("fn", [T.get_affine_transform, T.get_udp_warp_matrix])
@pytest.mark.parametrize("rot", [0.0, 30.0, -75.0])
def test_inverse_maps_crop_points_back_exactly(fn, rot):
    rng = np.random.default_rng(1)
    center, scale = np.array([321.5, 210.25]), np.array([1.1, 1.4666667])
    fwd = fn(center, scale, rot, (192, 256))
    inv = fn(center, scale, rot, (192, 256), inv=True)
    crop_pts = rng.uniform(-20, 260, size=(5, 7, 2))
    back = T.affine_points(T.affine_points(crop_pts, inv), fwd)
    np.testing.assert_allclose(back, crop_pts, atol=1e-3)
    np.testing.assert_allclose(T.compose_affine(fwd, inv), [[1, 0, 0], [0, 1, 0]], atol=1e-6)


def test_official_rotation_convention():
    # The point src_w/2 to the right of the centre goes to the top-centre of the crop at +90 degrees.
    center, scale = np.array([100.0, 100.0]), np.array([1.0, 4 / 3])
    mat = T.get_affine_transform(center, scale, 90.0, (192, 256))
    np.testing.assert_allclose(T.affine_points(np.array([200.0, 100.0]), mat), [96, 128 - 96], atol=1e-3)


def test_udp_matrix_maps_roi_onto_size_minus_one():
    center, scale = np.array([320.0, 240.0]), np.array([0.96, 1.28])
    mat = T.get_udp_warp_matrix(center, scale, 0.0, (192, 256))
    roi = scale * 200
    corners = np.array([center - roi / 2, center, center + roi / 2])
    np.testing.assert_allclose(T.affine_points(corners, mat), [[0, 0], [95.5, 127.5], [191, 255]], atol=1e-4)
    # Rotation is about the centre.
    rot = T.get_udp_warp_matrix(center, scale, 40.0, (192, 256))
    np.testing.assert_allclose(T.affine_points(center, rot), [95.5, 127.5], atol=1e-4)


def test_affine_points_vectorised_matches_loop():
    rng = np.random.default_rng(0)
    mat = rng.normal(size=(2, 3))
    pts = rng.normal(size=(4, 17, 2)).astype(np.float32)
    out = T.affine_points(pts, mat)
    assert out.shape == pts.shape and out.dtype == np.float32
    for idx in np.ndindex(4, 17):
        np.testing.assert_allclose(out[idx], mat @ np.array([*pts[idx], 1.0]), rtol=1e-5, atol=1e-5)


def test_flip_joints_and_center():
    joints = np.arange(17 * 2, dtype=np.float32).reshape(17, 2) + 10
    vis = np.ones(17, np.float32)
    vis[3] = 0  # left ear unlabelled: after the flip it sits at the right ear's index
    flipped, fvis = T.flip_joints(joints, vis, image_width=640, flip_pairs=FLIP_PAIRS)
    for a, b in FLIP_PAIRS:
        if vis[a] > 0:
            assert flipped[b, 0] == 640 - joints[a, 0] - 1 and flipped[b, 1] == joints[a, 1]
        assert fvis[b] == vis[a] and fvis[a] == vis[b]
    assert flipped[0, 0] == 640 - joints[0, 0] - 1
    assert fvis[4] == 0 and (flipped[4] == 0).all()  # zeroed like the official code
    twice, tvis = T.flip_joints(flipped, fvis, image_width=640, flip_pairs=FLIP_PAIRS)
    np.testing.assert_allclose(twice[vis > 0], joints[vis > 0])
    np.testing.assert_array_equal(tvis, vis)
    np.testing.assert_allclose(T.flip_center(np.array([100.0, 50.0]), 640), [539, 50])
    np.testing.assert_allclose(T.affine_points(np.array([100.0, 50.0]), T.hflip_matrix(640)), [539, 50])


def _half_body_joints():
    joints = np.zeros((17, 2), np.float32)
    joints[:11] = np.stack([np.linspace(100, 140, 11), np.linspace(50, 90, 11)], 1)  # upper
    joints[11:] = np.stack([np.linspace(110, 130, 6), np.linspace(150, 250, 6)], 1)  # lower
    return joints


def test_half_body_upper_when_randn_below_half(monkeypatch):
    joints, vis = _half_body_joints(), np.ones(17)
    monkeypatch.setattr(np.random, "randn", lambda *a: 0.49)
    center, scale = T.half_body_center_scale(joints, vis, aspect_ratio=0.75, pixel_std=200, upper_body_ids=UPPER)
    upper = joints[:11]
    np.testing.assert_allclose(center, upper.mean(0), rtol=1e-6)
    w = 40.0  # extent 40 x 40: w > 0.75 h, so h = w / 0.75
    np.testing.assert_allclose(scale, [w / 200 * 1.5, w / 0.75 / 200 * 1.5], rtol=1e-5)


def test_half_body_lower_when_randn_not_below_half(monkeypatch):
    joints, vis = _half_body_joints(), np.ones(17)
    monkeypatch.setattr(np.random, "randn", lambda *a: 0.5)
    center, scale = T.half_body_center_scale(joints, vis, aspect_ratio=0.75, pixel_std=200, upper_body_ids=UPPER)
    np.testing.assert_allclose(center, joints[11:].mean(0), rtol=1e-6)
    np.testing.assert_allclose(scale, [100 * 0.75 / 200 * 1.5, 100 / 200 * 1.5], rtol=1e-5)


def test_half_body_fallbacks(monkeypatch):
    joints = _half_body_joints()
    monkeypatch.setattr(np.random, "randn", lambda *a: 0.0)
    # Only 2 upper joints: randn < 0.5 but the lower body (3 joints) is used.
    vis = np.zeros(17)
    vis[[0, 1, 11, 12, 13]] = 1
    center, _ = T.half_body_center_scale(joints, vis, 0.75, 200, UPPER)
    np.testing.assert_allclose(center, joints[[11, 12, 13]].mean(0), rtol=1e-6)
    # 2 upper, 2 lower: the upper (2 joints) is used; 1 upper, 1 lower: None.
    vis = np.zeros(17)
    vis[[0, 1, 11, 12]] = 1
    center, _ = T.half_body_center_scale(joints, vis, 0.75, 200, UPPER)
    np.testing.assert_allclose(center, joints[[0, 1]].mean(0), rtol=1e-6)
    vis = np.zeros(17)
    vis[[0, 11]] = 1
    assert T.half_body_center_scale(joints, vis, 0.75, 200, UPPER) is None


def test_random_scale_and_rotation_bounds():
    np.random.seed(0)
    s = [T.sample_scale_multiplier(0.35) for _ in range(2000)]
    assert min(s) >= 0.65 and max(s) <= 1.35 and min(s) == pytest.approx(0.65)
    r = [T.sample_rotation(45.0, 0.6) for _ in range(4000)]
    assert min(r) >= -90 and max(r) <= 90
    frac_zero = np.mean(np.array(r) == 0)
    assert 0.35 < frac_zero < 0.45
    assert all(T.sample_rotation(45.0, 0.0) == 0.0 for _ in range(50))
    assert math.isclose(T.sample_scale_multiplier(0.0), 1.0)

"""Augmentation sampling, the rotated crop and the half-body threshold pinned to the official code.

Written from the official formulas (``lib/dataset/JointsDataset.py``, ``lib/utils/transforms.py``):
scale ``clip(randn * sf + 1, 1 - sf, 1 + sf)``; rotation ``clip(randn * rf, -2 rf, 2 rf)`` when
``random.random() <= 0.6``, else 0; the crop a similarity (rotation + uniform scale + shift); the
upper body chosen when ``randn < 0.5`` and more than 2 upper joints are labelled.
"""

import math
import random

import numpy as np
import pytest

from pose.data import transforms as T


def _seeded(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)


def test_scale_and_rotation_samples_equal_the_official_formulas():
    sf, rf = 0.35, 45.0
    clipped = 0
    for seed in range(300):
        _seeded(seed)
        got_scale = T.sample_scale_multiplier(sf)
        _seeded(seed)
        assert got_scale == pytest.approx(float(np.clip(np.random.randn() * sf + 1, 1 - sf, 1 + sf)), abs=1e-12)
        _seeded(seed)
        got_rot = T.sample_rotation(rf)  # the default probability is the official 0.6
        _seeded(seed)
        # random.random() is drawn first, then randn only for a rotated sample
        want_rot = float(np.clip(np.random.randn() * rf, -rf * 2, rf * 2)) if random.random() <= 0.6 else 0.0
        assert got_rot == pytest.approx(want_rot, abs=1e-12)
        clipped += abs(got_rot) == 2 * rf or abs(got_scale - 1) == pytest.approx(sf)
    assert clipped > 0, "no sample reached the clip bounds: the bounds are untested"


def test_rotation_is_applied_at_exactly_the_probability(monkeypatch):
    monkeypatch.setattr(random, "random", lambda: 0.6)
    monkeypatch.setattr(np.random, "randn", lambda *a: 0.5)
    assert T.sample_rotation(40.0, 0.6) == pytest.approx(20.0)  # official: random.random() <= 0.6


@pytest.mark.parametrize("rot", [0.0, 30.0, -75.0, 135.0])
def test_rotated_crop_is_the_official_similarity(rot):
    center, scale, size = np.array([140.0, 95.0]), np.array([0.9, 1.2]), (192, 256)
    src_w = scale[0] * 200.0
    s = size[0] / src_w
    t = math.radians(rot)
    # The vector (0, -src_w/2) rotated by rot goes to (0, -dst_w/2): a rotation by -rot, scaled by s.
    lin = s * np.array([[math.cos(t), math.sin(t)], [-math.sin(t), math.cos(t)]])
    want = np.hstack([lin, (np.array(size) / 2 - lin @ center)[:, None]])
    np.testing.assert_allclose(T.get_affine_transform(center, scale, rot, size), want, atol=1e-4)
    inv = T.get_affine_transform(center, scale, rot, size, inv=True)
    np.testing.assert_allclose(np.vstack([inv, [0, 0, 1]]) @ np.vstack([want, [0, 0, 1]]), np.eye(3), atol=1e-4)


def test_half_body_takes_the_upper_body_with_three_upper_joints(monkeypatch):
    joints = np.array([[10, 10], [20, 12], [30, 14], [12, 80], [22, 90], [32, 100]], np.float32)
    upper = (0, 1, 2)
    monkeypatch.setattr(np.random, "randn", lambda *a: 0.0)
    center, _ = T.half_body_center_scale(joints, np.ones(6), 0.75, 200.0, upper)
    np.testing.assert_allclose(center, joints[:3].mean(0))  # official: more than 2 upper joints

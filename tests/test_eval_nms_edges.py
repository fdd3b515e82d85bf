"""OKS NMS at its edges: one instance, zero areas, joint scores exactly at the visibility threshold.

Written against the survivors of a mutation run (tools/mutation_test.py pose/engine/nms.py): each
test fails on a change that alters which instances a user gets back.
"""

from functools import partial

import numpy as np
import pytest

from pose.engine import nms
from pose.keypoints import COCO17

# The COCO sigmas throughout.
nms_per_image, oks_iou, oks_matrix, oks_nms, soft_oks_nms = (
    partial(f, sigmas=COCO17.oks_sigmas)
    for f in (nms.nms_per_image, nms.oks_iou, nms.oks_matrix, nms.oks_nms, nms.soft_oks_nms))


def one_pose(seed: int = 0, score: float = 0.9) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.uniform(50, 150, (17, 2)), np.full((17, 1), score)], 1)


def test_a_single_instance_is_kept():
    kp = one_pose()[None]
    assert oks_nms(kp, [0.5], [1e4]) == [0]
    assert soft_oks_nms(kp, [0.5], [1e4]) == [0]
    assert nms_per_image(kp, [0.5], [1e4], [42]).tolist() == [0]
    assert nms_per_image(kp, [0.5], [1e4], [42], soft=True).tolist() == [0]


def test_zero_areas_give_finite_oks():
    # Official: the pair area gets + eps, so two different poses with zero-area boxes have OKS 0
    # (and an identical pose OKS 1), never a negative area and an infinite OKS.
    a, b = one_pose(0), one_pose(1)
    kp = np.stack([a, b, a])
    areas = np.zeros(3)
    assert oks_iou(a, kp[1:], 0.0, areas[1:]).tolist() == [0.0, 1.0]
    assert oks_matrix(kp, areas)[0].tolist() == [1.0, 0.0, 1.0]
    assert oks_nms(kp, [0.9, 0.8, 0.7], areas) == [0, 1]
    assert nms_per_image(kp, [0.9, 0.8, 0.7], areas, np.zeros(3)).tolist() == [0, 1]


def vis_case():
    """A (kept first), B = A but for joint 0 moved far; B's other joints score exactly 0.25."""
    a = one_pose(0)
    b = a.copy()
    b[:, 2] = 0.25
    b[0, 0] += 60.0
    b[0, 2] = 0.9
    c = one_pose(3)
    return np.stack([a, b, c]), np.array([0.9, 0.85, 0.8]), np.full(3, 1e4)


def test_visibility_threshold_is_strict_in_every_nms():
    kp, scores, areas = vis_case()
    # at 0.25 only B's joint 0 (far off) counts: OKS(A, B) is ~0 and B survives greedy NMS
    at = float(oks_iou(kp[0], kp[1:2], areas[0], areas[1:2], vis_thresh=0.25)[0])
    assert at < 0.01
    assert oks_matrix(kp, areas, vis_thresh=0.25)[0, 1] == pytest.approx(at, abs=1e-15)
    assert oks_nms(kp, scores, areas, vis_thresh=0.25) == [0, 1, 2]
    assert nms_per_image(kp, scores, areas, np.zeros(3), vis_thresh=0.25).tolist() == [0, 1, 2]
    # just below 0.25 all of B's joints count: nearly the same pose as A, dropped
    below = np.nextafter(0.25, 0)
    assert oks_nms(kp, scores, areas, vis_thresh=below) == [0, 2]
    assert nms_per_image(kp, scores, areas, np.zeros(3), vis_thresh=below).tolist() == [0, 2]


def test_soft_nms_uses_the_visibility_threshold():
    kp, scores, areas = vis_case()
    # Soft NMS rescales B by exp(-oks^2 / thresh): with all joints counted B (near A) falls behind C;
    # with only its far joint counted it keeps its score and stays second.
    assert soft_oks_nms(kp, scores, areas) == [0, 2, 1]
    assert soft_oks_nms(kp, scores, areas, vis_thresh=0.25) == [0, 1, 2]
    assert soft_oks_nms(kp, scores, areas, vis_thresh=np.nextafter(0.25, 0)) == [0, 2, 1]
    assert nms_per_image(kp, scores, areas, np.zeros(3), soft=True, vis_thresh=0.25).tolist() == [0, 1, 2]


def test_every_image_is_processed_whatever_its_size():
    # Images with 1, 2 and 3 instances (two images of each size, interleaved): the result is the
    # per-image NMS of each, images in order of first appearance.
    rng = np.random.default_rng(7)
    image_ids = np.array([5, 1, 9, 5, 3, 9, 7, 9, 3, 3, 11, 7])
    n = image_ids.size
    base = np.stack([one_pose(s) for s in range(3)])
    kp = base[rng.integers(0, 3, n)] + rng.normal(0, 1.5, (n, 17, 3)) * [1, 1, 0]
    scores = rng.uniform(0.1, 1.0, n)
    areas = rng.uniform(5e3, 2e4, n)
    want = []
    for image in dict.fromkeys(image_ids.tolist()):
        idx = np.flatnonzero(image_ids == image)
        want += idx[oks_nms(kp[idx], scores[idx], areas[idx], thresh=0.5)].tolist()
    got = nms_per_image(kp, scores, areas, image_ids, thresh=0.5).tolist()
    assert got == want and len(set(image_ids[got])) == 6
    assert len(got) < n  # some instances were suppressed: the comparison means something

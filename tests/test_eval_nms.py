"""OKS and OKS NMS: a hand computation, and the vectorised code against the official-style loops."""

import math

import eval_reference as ref
import numpy as np
import pytest

from pose.engine.nms import group_by_image, nms_per_image, oks_iou, oks_matrix, oks_nms, soft_oks_nms
from pose.keypoints import COCO17

SIGMAS = COCO17.oks_sigmas


def random_results(seed, num=600, images=40, ties=True):
    """Clusters of near-duplicate poses per image, scores rounded so that ties occur."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, images, num) * 3 + 5
    people = rng.uniform(0, 400, (images, 3, 17, 2))
    who = rng.integers(0, 3, num)
    xy = people[(ids - 5) // 3, who] + rng.normal(0, 1, (num, 17, 2)) * rng.uniform(0.5, 15, (num, 1, 1))
    kp = np.concatenate([xy, rng.uniform(0, 1, (num, 17, 1))], axis=2)
    scores = rng.uniform(0, 1, num)
    if ties:
        scores = np.round(scores, 1)
    areas = rng.uniform(500, 30000, num)
    return kp, scores, areas, ids


def test_oks_matches_hand_computation():
    g = np.zeros((17, 3))
    d = np.zeros((1, 17, 3))
    d[0, 0, 0] = 3.0  # nose moved 3 px right
    d[0, 5, 1] = -4.0  # left shoulder moved 4 px up
    area_g, area_d = 1000.0, 2000.0
    s = (area_g + area_d) / 2
    e0 = 9.0 / (2 * 0.026) ** 2 / s / 2
    e5 = 16.0 / (2 * 0.079) ** 2 / s / 2
    expected = (15 + math.exp(-e0) + math.exp(-e5)) / 17
    assert oks_iou(g, d, area_g, [area_d], sigmas=SIGMAS)[0] == pytest.approx(expected, rel=1e-12)
    assert oks_iou(g, g[None], area_g, [area_g], sigmas=SIGMAS)[0] == pytest.approx(1.0)
    # visibility threshold: only the candidate's joint scores count (official semantics)
    d[0, :, 2] = 0.0
    d[0, 0, 2] = 0.9
    assert oks_iou(g, d, area_g, [area_d], vis_thresh=0.5, sigmas=SIGMAS)[0] == pytest.approx(math.exp(-e0), rel=1e-12)
    d[0, 0, 2] = 0.1
    assert oks_iou(g, d, area_g, [area_d], vis_thresh=0.5, sigmas=SIGMAS)[0] == 0.0


def test_oks_matrix_rows_equal_oks_iou():
    kp, _, areas, _ = random_results(1, num=30)
    for vis in (None, 0.3):
        mat = oks_matrix(kp, areas, vis_thresh=vis, sigmas=SIGMAS)
        for i in range(len(kp)):
            row = oks_iou(kp[i], kp, areas[i], areas, vis_thresh=vis, sigmas=SIGMAS)
            np.testing.assert_allclose(mat[i], row, rtol=1e-12)
            np.testing.assert_allclose(mat[i], ref.oks_iou_loop(kp[i], kp, areas[i], areas, SIGMAS, vis),
                                       rtol=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("thresh", [0.5, 0.9])
def test_oks_nms_single_image_equals_loop(seed, thresh):
    kp, scores, areas, _ = random_results(seed, num=50)
    assert oks_nms(kp, scores, areas, thresh, sigmas=SIGMAS) == ref.oks_nms_loop(kp, scores, areas, thresh)
    assert soft_oks_nms(kp, scores, areas, thresh, sigmas=SIGMAS) == ref.soft_oks_nms_loop(kp, scores, areas, thresh)
    assert oks_nms(kp, scores, areas, thresh, vis_thresh=0.4, sigmas=SIGMAS) == \
        ref.oks_nms_loop(kp, scores, areas, thresh, vis_thresh=0.4)


@pytest.mark.parametrize("soft", [False, True])
def test_nms_per_image_equals_loops(soft):
    kp, scores, areas, ids = random_results(3, num=900, images=50)
    keep = nms_per_image(kp, scores, areas, ids, thresh=0.9, soft=soft, sigmas=SIGMAS)
    expected = ref.nms_per_image_loops(kp, scores, areas, ids, thresh=0.9, soft=soft)
    assert keep.tolist() == expected
    assert len(keep) < len(kp)  # the clusters make NMS drop something, so the test can fail


def test_soft_nms_caps_at_20_per_image():
    kp = np.tile(np.random.default_rng(0).uniform(0, 100, (1, 17, 3)), (30, 1, 1))
    keep = soft_oks_nms(kp, np.linspace(1, 0.1, 30), np.full(30, 1e4), sigmas=SIGMAS)
    assert len(keep) == 20 and keep[:3] == [0, 1, 2]
    assert oks_nms(kp, np.linspace(1, 0.1, 30), np.full(30, 1e4), sigmas=SIGMAS) == [0]


def test_grouping_and_edge_cases():
    groups = group_by_image(np.array([7, 3, 7, 9, 3]))
    assert [g.tolist() for g in groups] == [[0, 2], [1, 4], [3]]
    assert nms_per_image(np.zeros((0, 17, 3)), [], [], [], sigmas=SIGMAS).tolist() == []
    assert oks_nms(np.zeros((0, 17, 3)), [], [], sigmas=SIGMAS) == []
    with pytest.raises(ValueError, match="must match"):
        oks_nms(np.zeros((2, 17, 3)), [1.0], [1.0, 2.0], sigmas=SIGMAS)
    with pytest.raises(ValueError, match="sigmas"):
        oks_nms(np.zeros((2, 5, 3)), [1.0, 0.5], [1.0, 2.0], sigmas=SIGMAS)

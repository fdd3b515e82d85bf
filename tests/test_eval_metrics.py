"""PCK / AUC / EPE (mmpose's definitions) on hand-computed cases."""

import math

import numpy as np
import pytest

from pose.engine.metrics import keypoint_metrics, pck_per_joint


def _case():
    # Two instances, three joints, ground truth at the origin; boxes of size 100 and 200 px.
    # Instance 0: joint 0 at 3 px (0.03 of the box), joint 1 at 6 px (0.06), joint 2 unlabelled.
    # Instance 1: joint 0 at 20 px (0.10), joint 1 at 8 px (0.04), joint 2 exact.
    gt = np.zeros((2, 3, 2))
    pred = np.zeros((2, 3, 2))
    pred[0, 0] = (3, 0)
    pred[0, 1] = (0, 6)
    pred[0, 2] = (500, 500)  # unlabelled: ignored however far off
    pred[1, 0] = (12, 16)  # 20 px
    pred[1, 1] = (8, 0)
    visible = np.array([[2, 1, 0], [2, 2, 2]])
    return pred, gt, visible, np.array([100.0, 200.0])


def _auc_oracle(pred, gt, visible, norm=30.0, n=20):
    """mmpose's keypoint_auc written as the definition reads: per threshold, the mean over the
    labelled joints of the per-joint fraction below it."""
    dist = np.linalg.norm(pred - gt, axis=-1) / norm
    total = 0.0
    for i in range(n):
        accs = []
        for k in range(pred.shape[1]):
            d = [dist[j, k] for j in range(pred.shape[0]) if visible[j, k] > 0]
            if d:
                accs.append(sum(x < i / n for x in d) / len(d))
        total += sum(accs) / len(accs)
    return total / n


def test_hand_computed_pck_epe_auc():
    pred, gt, visible, sizes = _case()
    m = keypoint_metrics(pred, gt, visible, sizes)
    # PCK@0.05 per joint: 1/2, 1/2, 1/1 -> mean 2/3 (over the joints, not pooled: pooled is 3/5).
    assert m["PCK@0.05"] == pytest.approx(2 / 3)
    assert m["EPE"] == pytest.approx((3 + 6 + 20 + 8 + 0) / 5)
    assert m["AUC"] == pytest.approx(_auc_oracle(pred, gt, visible))
    # By hand: thresholds 0, .05, ..., .95 on distances / 30 px = .1, .667 (joint 0), .2, .267
    # (joint 1), 0 (joint 2): 0, 1/3, 1/3, 1/2, 1/2, 2/3, eight times 5/6, six times 1 -> 15 / 20.
    assert m["AUC"] == pytest.approx(0.75)
    assert list(m) == ["PCK@0.05", "AUC", "EPE"]


def test_pck_is_strict_and_zero_boxes_are_left_out():
    gt = np.zeros((2, 1, 2))
    pred = np.array([[[5.0, 0.0]], [[0.0, 0.0]]])  # 5 px on a 100 px box: 0.05, not below 0.05
    m = keypoint_metrics(pred, gt, np.ones((2, 1)), np.array([100.0, 0.0]))
    assert m["PCK@0.05"] == 0.0  # the exact instance has a box of no size: left out
    assert keypoint_metrics(pred, gt, np.ones((2, 1)), np.array([101.0, 0.0]))["PCK@0.05"] == 1.0
    acc = pck_per_joint(np.array([[0.01, np.nan], [0.2, np.nan]]), 0.05)
    assert acc[0] == 0.5 and math.isnan(acc[1])


def test_nothing_labelled_and_bad_shapes():
    m = keypoint_metrics(np.zeros((1, 2, 2)), np.zeros((1, 2, 2)), np.zeros((1, 2)), np.array([50.0]))
    assert m["PCK@0.05"] == 0.0 and m["AUC"] == 0.0 and math.isnan(m["EPE"])
    with pytest.raises(ValueError, match=r"pred and gt must both be \(N, K, 2\)"):
        keypoint_metrics(np.zeros((1, 2, 3)), np.zeros((1, 2, 3)), np.ones((1, 2)), np.ones(1))
    with pytest.raises(ValueError, match="1 box sizes for 2 instances"):
        keypoint_metrics(np.zeros((2, 2, 2)), np.zeros((2, 2, 2)), np.ones((2, 2)), np.ones(1))

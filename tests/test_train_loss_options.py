"""OHKM with the loss options: joint weights, use_target_weight=False, the official top-k.

Written against the survivors of a mutation run (tools/mutation_test.py pose/engine/loss.py): OHKM
silently dropping the joint weights or the target-weight switch changed the training loss and no
test noticed.
"""

import inspect

import numpy as np
import pytest
import torch

from pose.engine.loss import JointsOHKMMSELoss, build_loss


def by_hand(pred, gt, weight, joint_weights, topk):
    """Official OHKM in numpy: per joint 0.5 * mean((w * (pred - gt))^2), top-k per sample, means."""
    p, g = pred.numpy().astype(np.float64), gt.numpy().astype(np.float64)
    w = np.ones(p.shape[:2]) if weight is None else weight.numpy().reshape(p.shape[:2]).astype(np.float64)
    w = w * np.asarray(joint_weights, np.float64)[None]
    per_joint = 0.5 * ((w[..., None, None] * (p - g)) ** 2).mean(axis=(2, 3))
    top = -np.sort(-per_joint, axis=1)[:, :topk]
    return top.mean(axis=1).mean()


@pytest.fixture
def batch():
    torch.manual_seed(0)
    pred, gt = torch.rand(3, 5, 6, 4), torch.rand(3, 5, 6, 4)
    weight = torch.tensor([[1, 0, 1, 1, 0], [1, 1, 1, 0, 1], [0, 1, 1, 1, 1]], dtype=torch.float32)[..., None]
    return pred, gt, weight


def test_ohkm_applies_joint_weights(batch):
    pred, gt, weight = batch
    jw = (1.0, 1.5, 0.5, 2.0, 1.2)
    got = build_loss(ohkm=True, ohkm_topk=3, joint_weights=jw, num_joints=5)(pred, gt, weight)
    assert got.item() == pytest.approx(by_hand(pred, gt, weight, jw, 3), rel=1e-5)
    assert got.item() != pytest.approx(by_hand(pred, gt, weight, [1.0] * 5, 3), rel=1e-3)


def test_ohkm_without_target_weight_ignores_it(batch):
    pred, gt, weight = batch
    got = build_loss(ohkm=True, ohkm_topk=2, use_target_weight=False)(pred, gt, weight)
    assert got.item() == pytest.approx(by_hand(pred, gt, None, [1.0] * 5, 2), rel=1e-5)
    assert got.item() != pytest.approx(by_hand(pred, gt, weight, [1.0] * 5, 2), rel=1e-3)


def test_ohkm_top_k_defaults_to_the_official_8():
    assert JointsOHKMMSELoss().topk == 8
    assert inspect.signature(build_loss).parameters["ohkm_topk"].default == 8
    from pose.config import Config
    assert Config().train.ohkm_topk == 8


def mse_by_hand(pred, gt, weight, joint_weights):
    """Official JointsMSELoss: the mean over joints of 0.5 * mean((w * (pred - gt))^2)."""
    k = pred.shape[1]
    return by_hand(pred, gt, weight, joint_weights, k)  # top-k of all k joints is the plain mean


@pytest.mark.parametrize("use_target_weight", [True, False])
@pytest.mark.parametrize("joint_weights", [(), (1.0, 1.5, 0.5, 2.0, 1.2)])
def test_mse_loss_options_from_build_loss(batch, use_target_weight, joint_weights):
    pred, gt, weight = batch
    loss = build_loss(use_target_weight=use_target_weight, joint_weights=joint_weights, num_joints=5)
    want = mse_by_hand(pred, gt, weight if use_target_weight else None, joint_weights or [1.0] * 5)
    assert loss(pred, gt, weight).item() == pytest.approx(want, rel=1e-5)
    other = mse_by_hand(pred, gt, None if use_target_weight else weight, joint_weights or [1.0] * 5)
    assert want != pytest.approx(other, rel=1e-3)  # the switch matters on this batch


def test_ohkm_top_k_may_equal_the_joint_count(batch):
    pred, gt, weight = batch
    loss = build_loss(ohkm=True, ohkm_topk=5, num_joints=5)
    assert loss(pred, gt, weight).item() == pytest.approx(mse_by_hand(pred, gt, weight, [1.0] * 5), rel=1e-5)

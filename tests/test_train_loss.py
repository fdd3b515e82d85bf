"""Heatmap losses against hand computation and the official per-joint loop; the loss falls."""

import pytest
import torch

from pose.engine.loss import JointsMSELoss, JointsOHKMMSELoss, build_loss, per_joint_loss


def official_loop(pred, gt, weight, use_target_weight=True):
    """The official JointsMSELoss, joint by joint (reference)."""
    n, k = pred.shape[:2]
    p, g = pred.reshape(n, k, -1).split(1, 1), gt.reshape(n, k, -1).split(1, 1)
    loss = 0.0
    for j in range(k):
        pj, gj = p[j].squeeze(1), g[j].squeeze(1)
        if use_target_weight:
            loss += 0.5 * torch.nn.functional.mse_loss(pj * weight[:, j], gj * weight[:, j])
        else:
            loss += 0.5 * torch.nn.functional.mse_loss(pj, gj)
    return loss / k


def official_ohkm(pred, gt, weight, topk):
    n, k = pred.shape[:2]
    p, g = pred.reshape(n, k, -1), gt.reshape(n, k, -1)
    per = torch.stack([0.5 * ((p[:, j] * weight[:, j] - g[:, j] * weight[:, j]) ** 2).mean(dim=1)
                       for j in range(k)], dim=1)
    total = 0.0
    for i in range(n):
        top, _ = per[i].topk(topk)
        total += top.sum() / topk
    return total / n


def test_hand_computed_value():
    pred = torch.zeros(1, 2, 1, 2)
    gt = torch.tensor([[[[1.0, 0.0]], [[2.0, 2.0]]]])
    weight = torch.tensor([[[1.0], [0.5]]])
    # joint 0: 0.5 * mean(1, 0) = 0.25; joint 1: 0.5 * mean(1, 1) = 0.5 (weight 0.5 * 2); mean 0.375
    assert JointsMSELoss()(pred, gt, weight).item() == pytest.approx(0.375)
    assert JointsMSELoss(use_target_weight=False)(pred, gt, weight).item() == pytest.approx(0.5 * (0.25 * 2 + 4) / 2)
    # joint weights multiply the target weights: joint 1 weight 0.5 * 2 = 1 -> 0.5 * 4 = 2; mean (0.25 + 2) / 2
    assert JointsMSELoss(joint_weights=[1.0, 2.0])(pred, gt, weight).item() == pytest.approx(1.125)
    # OHKM top-1: the larger joint loss only
    assert JointsOHKMMSELoss(topk=1)(pred, gt, weight).item() == pytest.approx(0.5)


def test_matches_official_loop_and_weights():
    g = torch.Generator().manual_seed(0)
    pred, gt = torch.randn(4, 17, 8, 6, generator=g), torch.rand(4, 17, 8, 6, generator=g)
    weight = (torch.rand(4, 17, 1, generator=g) > 0.3).float()
    ours = JointsMSELoss()(pred, gt, weight)
    torch.testing.assert_close(ours, official_loop(pred, gt, weight), rtol=1e-6, atol=0)
    torch.testing.assert_close(JointsMSELoss(use_target_weight=False)(pred, gt, weight),
                               official_loop(pred, gt, weight, use_target_weight=False), rtol=1e-6, atol=0)
    jw = torch.linspace(0.5, 1.5, 17)
    torch.testing.assert_close(JointsMSELoss(joint_weights=jw.tolist())(pred, gt, weight),
                               official_loop(pred, gt, weight * jw[None, :, None]), rtol=1e-6, atol=0)
    # (N, K) weights are accepted as well as (N, K, 1)
    torch.testing.assert_close(JointsMSELoss()(pred, gt, weight[..., 0]), ours)


@pytest.mark.parametrize("topk", [1, 8, 17])
def test_ohkm_matches_official(topk):
    g = torch.Generator().manual_seed(1)
    pred, gt = torch.randn(3, 17, 4, 4, generator=g), torch.rand(3, 17, 4, 4, generator=g)
    weight = (torch.rand(3, 17, 1, generator=g) > 0.2).float()
    torch.testing.assert_close(JointsOHKMMSELoss(topk=topk)(pred, gt, weight), official_ohkm(pred, gt, weight, topk),
                               rtol=1e-6, atol=0)
    if topk == 17:  # all joints: plain MSE
        torch.testing.assert_close(JointsOHKMMSELoss(topk=17)(pred, gt, weight), JointsMSELoss()(pred, gt, weight))


def test_low_precision_output_gives_float32_loss():
    pred, gt = torch.randn(2, 3, 4, 4).bfloat16(), torch.rand(2, 3, 4, 4)
    loss = JointsMSELoss()(pred, gt, torch.ones(2, 3, 1))
    assert loss.dtype == torch.float32
    assert per_joint_loss(pred, gt, None).shape == (2, 3)


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="must both be"):
        JointsMSELoss()(torch.zeros(1, 2, 3, 3), torch.zeros(1, 2, 3, 4), torch.ones(1, 2, 1))
    with pytest.raises(ValueError, match="joint_weights has 3 values"):
        JointsMSELoss(joint_weights=[1, 1, 1])(torch.zeros(1, 2, 3, 3), torch.zeros(1, 2, 3, 3), torch.ones(1, 2, 1))
    with pytest.raises(ValueError, match="joint_weights has 2 values but model.num_joints is 17"):
        build_loss(joint_weights=(1.0, 2.0), num_joints=17)
    with pytest.raises(ValueError, match="ohkm_topk=20 exceeds"):
        build_loss(ohkm=True, ohkm_topk=20, num_joints=17)
    with pytest.raises(ValueError, match="non-negative"):
        JointsMSELoss(joint_weights=[1.0, -1.0])
    assert isinstance(build_loss(ohkm=True, ohkm_topk=8, num_joints=17), JointsOHKMMSELoss)


def test_loss_falls_on_a_fixed_batch():
    from pose.models import create_model
    torch.manual_seed(0)
    model = create_model("hrnet_tiny", psa="parallel")
    images = torch.randn(4, 3, 64, 48)
    with torch.no_grad():
        shape = model(images).shape
    target = torch.zeros(shape)
    target[:, :, 6:9, 4:7] = 1.0  # a blob per joint
    weight = torch.ones(shape[0], shape[1], 1)
    criterion = build_loss(num_joints=shape[1])
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    losses = []
    for _ in range(12):
        loss = criterion(model(images), target, weight)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses

"""Heatmap losses: MSE with per-joint target weights, optional per-joint weights and OHKM.

Shapes (all heatmap tensors in the heatmap frame, stride 4 of the input crop):

* ``output``, ``target``: (N, K, h, w); ``output`` may be in a lower precision (autocast), the
  loss is computed in float32.
* ``target_weight``: (N, K, 1) or (N, K); 0 for joints without a target (unlabelled, or whose
  Gaussian lies outside the heatmap), else 1 (official datasets) or any non-negative weight.

The official ``JointsMSELoss`` loops over joints and averages
``0.5 * MSE(pred_j * w_j, gt_j * w_j)``; the mean over joints of per-joint means over (N, h, w)
equals one mean over (N, K, h, w) of ``0.5 * (w * (pred - gt))**2``, which is what we compute
(no loop). ``JointsOHKMMSELoss`` (online hard keypoint mining) keeps, per sample, the ``topk``
largest per-joint losses and averages them, then averages over the batch (official).
"""

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["JointsMSELoss", "JointsOHKMMSELoss", "build_loss", "per_joint_loss"]


def _check(output: torch.Tensor, target: torch.Tensor, target_weight: torch.Tensor | None) -> None:
    if output.dim() != 4 or output.shape != target.shape:
        raise ValueError(f"loss: output {tuple(output.shape)} and target {tuple(target.shape)} must both be "
                         "(N, K, h, w)")
    if target_weight is not None and target_weight.shape[:2] != output.shape[:2]:
        raise ValueError(f"loss: target_weight {tuple(target_weight.shape)} must be (N, K) or (N, K, 1) "
                         f"for output {tuple(output.shape)}")


def per_joint_loss(output: torch.Tensor, target: torch.Tensor, target_weight: torch.Tensor | None,
                   joint_weights: torch.Tensor | None = None) -> torch.Tensor:
    """(N, K) float32: ``0.5 * mean over (h, w) of (w_nk * (pred - gt))**2`` per sample and joint.

    ``target_weight`` None means all ones; ``joint_weights`` (K,) multiplies the target weights
    (the official USE_DIFFERENT_JOINTS_WEIGHT multiplies them in the dataset, so they are squared
    in the loss as here).
    """
    _check(output, target, target_weight)
    n, k = output.shape[:2]
    diff = output.float().reshape(n, k, -1) - target.float().reshape(n, k, -1)
    weight = None
    if target_weight is not None:
        weight = target_weight.float().reshape(n, k)
    if joint_weights is not None:
        jw = joint_weights.to(device=output.device, dtype=torch.float32).reshape(1, k)
        weight = jw.expand(n, k) if weight is None else weight * jw
    if weight is not None:
        diff = diff * weight.unsqueeze(-1)
    return 0.5 * diff.pow(2).mean(dim=2)


class _HeatmapLoss(nn.Module):
    def __init__(self, *, use_target_weight: bool = True, joint_weights: Sequence[float] | None = None):
        super().__init__()
        self.use_target_weight = use_target_weight
        if joint_weights:
            jw = torch.as_tensor(list(joint_weights), dtype=torch.float32)
            if jw.dim() != 1 or not torch.isfinite(jw).all() or (jw < 0).any():
                raise ValueError(f"joint_weights must be finite non-negative numbers, got {list(joint_weights)}")
            self.register_buffer("joint_weights", jw, persistent=False)
        else:
            self.joint_weights = None

    def _per_joint(self, output, target, target_weight) -> torch.Tensor:
        jw = self.joint_weights
        if jw is not None and jw.numel() != output.shape[1]:
            raise ValueError(f"train.joint_weights has {jw.numel()} values but the network predicts "
                             f"{output.shape[1]} joints")
        return per_joint_loss(output, target, target_weight if self.use_target_weight else None, jw)


class JointsMSELoss(_HeatmapLoss):
    """Official heatmap MSE: mean over joints and samples of the per-joint loss; a scalar (float32)."""

    def forward(self, output: torch.Tensor, target: torch.Tensor,
                target_weight: torch.Tensor | None = None) -> torch.Tensor:
        return self._per_joint(output, target, target_weight).mean()


class JointsOHKMMSELoss(_HeatmapLoss):
    """Online hard keypoint mining: per sample, the mean of the ``topk`` largest joint losses; then
    the mean over the batch (official ``JointsOHKMMSELoss``). A scalar (float32)."""

    def __init__(self, *, use_target_weight: bool = True, topk: int = 8,
                 joint_weights: Sequence[float] | None = None):
        super().__init__(use_target_weight=use_target_weight, joint_weights=joint_weights)
        if topk < 1:
            raise ValueError(f"train.ohkm_topk must be >= 1, got {topk}")
        self.topk = topk

    def forward(self, output: torch.Tensor, target: torch.Tensor,
                target_weight: torch.Tensor | None = None) -> torch.Tensor:
        losses = self._per_joint(output, target, target_weight)
        if self.topk > losses.shape[1]:
            raise ValueError(f"train.ohkm_topk={self.topk} exceeds the number of joints {losses.shape[1]}")
        top, _ = losses.topk(self.topk, dim=1, sorted=False)
        return top.mean(dim=1).mean()


def build_loss(*, use_target_weight: bool = True, ohkm: bool = False, ohkm_topk: int = 8,
               joint_weights: Sequence[float] = (), num_joints: int | None = None) -> nn.Module:
    """The training loss from ``train.{use_target_weight, ohkm, ohkm_topk, joint_weights}``.

    ``num_joints`` (the network's K), when given, is checked against ``joint_weights`` and
    ``ohkm_topk`` up front, so a bad config fails before the first batch.
    """
    if num_joints is not None and joint_weights and len(joint_weights) != num_joints:
        raise ValueError(f"train.joint_weights has {len(joint_weights)} values but model.num_joints is "
                         f"{num_joints}")
    if ohkm:
        if num_joints is not None and ohkm_topk > num_joints:
            raise ValueError(f"train.ohkm_topk={ohkm_topk} exceeds model.num_joints={num_joints}")
        return JointsOHKMMSELoss(use_target_weight=use_target_weight, topk=ohkm_topk,
                                 joint_weights=joint_weights or None)
    return JointsMSELoss(use_target_weight=use_target_weight, joint_weights=joint_weights or None)

"""Heatmap losses: the official JointsMSELoss, with per-joint weights and online hard keypoint mining."""

from collections.abc import Sequence

import torch
from torch import nn


class JointsMSELoss(nn.Module):
    """``0.5 * MSE(pred * w, target * w)`` per joint, averaged over joints (official HRNet loss).

    Args:
        use_target_weight: multiply prediction and target by the per-sample joint weight
            (0 for unlabelled joints or joints outside the heatmap).
        ohkm: online hard keypoint mining: per sample, only the ``topk`` largest joint losses count
            (their sum / topk, then the mean over the batch), as the official ``JointsOHKMMSELoss``.
        joint_weights: K per-joint factors applied to the target weights (empty: all 1).
    """

    def __init__(self, *, use_target_weight: bool = True, ohkm: bool = False, topk: int = 8,
                 joint_weights: Sequence[float] = ()):
        super().__init__()
        self.use_target_weight = use_target_weight
        self.ohkm = ohkm
        self.topk = topk
        self.register_buffer("joint_weights", torch.tensor(list(joint_weights), dtype=torch.float32),
                             persistent=False)

    def forward(self, pred: torch.Tensor, target: torch.Tensor, target_weight: torch.Tensor) -> torch.Tensor:
        """pred, target (N, K, h, w); target_weight (N, K, 1) -> scalar loss."""
        if pred.shape != target.shape:
            raise ValueError(f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
        diff = pred.float() - target.float()
        if self.use_target_weight:
            weight = target_weight.float().reshape(*pred.shape[:2])
            if self.joint_weights.numel():
                if self.joint_weights.numel() != pred.shape[1]:
                    raise ValueError(f"train.joint_weights has {self.joint_weights.numel()} values for "
                                     f"{pred.shape[1]} joints")
                weight = weight * self.joint_weights
            diff = diff * weight[..., None, None]
        per_joint = 0.5 * diff.square().mean(dim=(2, 3))  # (N, K)
        if not self.ohkm:
            return per_joint.mean()
        k = min(self.topk, per_joint.shape[1])
        return (per_joint.topk(k, dim=1).values.sum(dim=1) / k).mean()

"""OHKM's top-k checks name the setting and the joint count (survivors of a mutation run of
pose/engine/loss.py: a wrong index in the message turned the clear error into an IndexError)."""

import pytest
import torch

from pose.engine.loss import JointsOHKMMSELoss


def test_top_k_below_one_is_named():
    with pytest.raises(ValueError, match=r"^train\.ohkm_topk must be >= 1, got 0$"):
        JointsOHKMMSELoss(topk=0)


def test_top_k_above_the_joint_count_is_named():
    pred = torch.zeros(2, 5, 4, 3)
    with pytest.raises(ValueError, match=r"^train\.ohkm_topk=6 exceeds the number of joints 5$"):
        JointsOHKMMSELoss(topk=6)(pred, pred, torch.ones(2, 5, 1))

"""HRNet's tables, backbone key prefixes, head option and constructor defaults (gaps found by
mutation testing; the official values are from pose_hrnet.py and its w32/w48 YAMLs)."""

import dataclasses

import pytest
import torch

from pose.models.hrnet import HRNET_SPECS, PoseHighResolutionNet, StageSpec

TINY = HRNET_SPECS["hrnet_tiny"]


@pytest.mark.parametrize("arch, c", [("hrnet_w32", 32), ("hrnet_w48", 48)])
def test_official_stage_tables(arch, c):
    spec = HRNET_SPECS[arch]
    assert (spec.stem_width, spec.layer1_planes, spec.layer1_blocks, spec.final_kernel) == (64, 64, 4, 1)
    assert spec.stages == (StageSpec(1, (4, 4), (c, 2 * c)),
                           StageSpec(4, (4, 4, 4), (c, 2 * c, 4 * c)),
                           StageSpec(3, (4, 4, 4, 4), (c, 2 * c, 4 * c, 8 * c)))


def test_backbone_prefixes_are_the_imagenet_keys():
    # What an ImageNet-pretrained HRNet checkpoint provides: stem, layer1, transitions, stages.
    net = PoseHighResolutionNet(HRNET_SPECS["hrnet_w32"], init_std=0.0)
    assert net.backbone_prefixes == ("conv1", "bn1", "conv2", "bn2", "layer1", "transition1", "stage2",
                                     "transition2", "stage3", "transition3", "stage4")
    keys = {k.split(".")[0] for k in net.state_dict()}
    assert set(net.backbone_prefixes) <= keys and keys - set(net.backbone_prefixes) == {"final_layer"}


def test_final_kernel_three_keeps_the_heatmap_size():
    net = PoseHighResolutionNet(dataclasses.replace(TINY, final_kernel=3), num_joints=5, init_std=0.0).eval()
    with torch.no_grad():
        assert net(torch.randn(1, 3, 64, 48)).shape == (1, 5, 16, 12)


def test_defaults_are_the_official_network():
    torch.manual_seed(0)
    net = PoseHighResolutionNet(TINY)
    assert net.final_layer.out_channels == 17
    assert not any("psa" in name for name, _ in net.named_modules())
    assert 0.0005 < float(net.final_layer.weight.std()) < 0.002  # official N(0, 0.001)


def test_no_stage_is_refused_by_name():
    with pytest.raises(ValueError, match="HRNetSpec needs at least one stage"):
        PoseHighResolutionNet(dataclasses.replace(TINY, stages=()))

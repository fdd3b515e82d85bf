"""SimpleBaseline's head options and constructor defaults (gaps found by mutation testing): the
deconvolution kernels the official code allows and a wider final layer must keep the exact x8
upsampling of the 1/32 features, and a network built without arguments is the official one."""

import dataclasses

import pytest
import torch

from pose.models.resnet import RESNET_SPECS, PoseResNet

TINY = RESNET_SPECS["resnet_tiny"]


@pytest.mark.parametrize("deconv_kernel", (4, 3, 2))
@pytest.mark.parametrize("final_kernel", (1, 3))
def test_heatmaps_are_a_quarter_of_the_input_for_every_head(deconv_kernel, final_kernel):
    spec = dataclasses.replace(TINY, deconv_kernel=deconv_kernel, final_kernel=final_kernel)
    net = PoseResNet(spec, num_joints=5, init_std=0.0).eval()
    with torch.no_grad():
        out = net(torch.randn(1, 3, 64, 96))
    assert out.shape == (1, 5, 16, 24)


def test_unknown_deconv_kernel_names_the_allowed_ones():
    with pytest.raises(ValueError, match=r"deconv_kernel 5 is not one of \[2, 3, 4\]"):
        PoseResNet(dataclasses.replace(TINY, deconv_kernel=5))


def test_defaults_are_the_official_network():
    torch.manual_seed(0)
    net = PoseResNet(TINY)
    assert net.spec is TINY
    assert net.final_layer.out_channels == 17  # COCO's joints
    assert not any("psa" in name for name, _ in net.named_modules())
    # Official init: N(0, 0.001) for the deconvolutions and the final layer.
    assert 0.0005 < float(net.final_layer.weight.std()) < 0.002

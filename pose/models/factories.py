"""One factory function per network variant, as timm writes them: ``hrnet_w32(psa="parallel")``.

Each builds its class from the named spec (``RESNET_SPECS`` / ``HRNET_SPECS``) with the keyword
arguments of :class:`ModelArgs`; :data:`ARCHS` maps the names (``model.arch``) to the functions.
"""

from collections.abc import Callable
from typing import TypedDict, Unpack

from torch import nn

from .hrnet import HRNET_SPECS, PoseHighResolutionNet
from .resnet import RESNET_SPECS, PoseResNet


class ModelArgs(TypedDict, total=False):
    """The keyword arguments every variant takes (all optional)."""

    num_joints: int  # heatmaps out (default 17, COCO)
    psa: str  # 'none', 'parallel' (PSA_p) or 'sequential' (PSA_s)
    psa_variant: str  # 'paper' or 'official'
    psa_placement: str  # 'all' or 'basic'
    init_std: float  # std of the normal init of the convolutions outside the backbone


def resnet18(**kwargs: Unpack[ModelArgs]) -> PoseResNet:
    """SimpleBaseline ResNet-18."""
    return PoseResNet(RESNET_SPECS["resnet18"], **kwargs)


def resnet34(**kwargs: Unpack[ModelArgs]) -> PoseResNet:
    """SimpleBaseline ResNet-34."""
    return PoseResNet(RESNET_SPECS["resnet34"], **kwargs)


def resnet50(**kwargs: Unpack[ModelArgs]) -> PoseResNet:
    """SimpleBaseline ResNet-50 (official pose_resnet_50)."""
    return PoseResNet(RESNET_SPECS["resnet50"], **kwargs)


def resnet101(**kwargs: Unpack[ModelArgs]) -> PoseResNet:
    """SimpleBaseline ResNet-101."""
    return PoseResNet(RESNET_SPECS["resnet101"], **kwargs)


def resnet152(**kwargs: Unpack[ModelArgs]) -> PoseResNet:
    """SimpleBaseline ResNet-152."""
    return PoseResNet(RESNET_SPECS["resnet152"], **kwargs)


def resnet_tiny(**kwargs: Unpack[ModelArgs]) -> PoseResNet:
    """A few-thousand-parameter SimpleBaseline for tests."""
    return PoseResNet(RESNET_SPECS["resnet_tiny"], **kwargs)


def hrnet_w32(**kwargs: Unpack[ModelArgs]) -> PoseHighResolutionNet:
    """HRNet-W32 (official stage table)."""
    return PoseHighResolutionNet(HRNET_SPECS["hrnet_w32"], **kwargs)


def hrnet_w48(**kwargs: Unpack[ModelArgs]) -> PoseHighResolutionNet:
    """HRNet-W48 (official stage table)."""
    return PoseHighResolutionNet(HRNET_SPECS["hrnet_w48"], **kwargs)


def hrnet_small(**kwargs: Unpack[ModelArgs]) -> PoseHighResolutionNet:
    """The synthetic demo's HRNet: two stages, wide and shallow."""
    return PoseHighResolutionNet(HRNET_SPECS["hrnet_small"], **kwargs)


def hrnet_tiny(**kwargs: Unpack[ModelArgs]) -> PoseHighResolutionNet:
    """A few-thousand-parameter HRNet with all four stages, for tests."""
    return PoseHighResolutionNet(HRNET_SPECS["hrnet_tiny"], **kwargs)


ARCHS: dict[str, Callable[..., nn.Module]] = {f.__name__: f for f in (
    resnet18, resnet34, resnet50, resnet101, resnet152, resnet_tiny,
    hrnet_w32, hrnet_w48, hrnet_small, hrnet_tiny)}

"""Residual blocks shared by ResNet and HRNet, with an optional PSA after the first 3x3 conv.

The parameter names follow torchvision / the official pose code (``conv1, bn1, conv2, bn2, conv3,
bn3, downsample.0, downsample.1``), so official checkpoints load. A PSA block, when present, is the
submodule ``psa``; a checkpoint without PSA therefore misses exactly the ``*.psa.*`` keys.
"""

from collections.abc import Callable

from torch import nn

from .psa import PolarizedSelfAttention

# A function of the channel count returning a PSA module, or None for no PSA.
PsaFactory = Callable[[int], nn.Module] | None

PSA_MODES = ("none", "parallel", "sequential")
PSA_PLACEMENTS = ("all", "basic")


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convs with a residual; PSA (if any) after conv1 + bn1 + ReLU. (N,Cin,H,W) -> (N,C,H/s,W/s)."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, *, stride: int = 1, downsample: nn.Module | None = None,
                 psa: PsaFactory = None):
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.psa = psa(planes) if psa is not None else None
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        if self.psa is not None:
            out = self.psa(out)
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1, 3x3 (stride here, torchvision v1.5), 1x1 x4; PSA (if any) after conv2 + bn2 + ReLU."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, *, stride: int = 1, downsample: nn.Module | None = None,
                 psa: PsaFactory = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.psa = psa(planes) if psa is not None else None
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        if self.psa is not None:
            out = self.psa(out)
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


BLOCKS: dict[str, type[BasicBlock] | type[Bottleneck]] = {"basic": BasicBlock, "bottleneck": Bottleneck}


def get_block(name: str) -> type[BasicBlock] | type[Bottleneck]:
    if name not in BLOCKS:
        raise ValueError(f"block {name!r} is not one of {', '.join(BLOCKS)}")
    return BLOCKS[name]


def make_psa_factories(psa: str, variant: str, placement: str) -> dict[str, PsaFactory]:
    """Per block name ('basic', 'bottleneck'): the PSA factory to use, or None.

    psa: 'none' | 'parallel' | 'sequential'; placement: 'all' (every block, the paper) or
    'basic' (BasicBlocks only, the official segmentation code).
    """
    if psa not in PSA_MODES:
        raise ValueError(f"psa={psa!r} is not one of {', '.join(PSA_MODES)}")
    if placement not in PSA_PLACEMENTS:
        raise ValueError(f"psa_placement={placement!r} is not one of {', '.join(PSA_PLACEMENTS)}")
    if psa == "none":
        return {"basic": None, "bottleneck": None}

    def factory(channels: int) -> nn.Module:
        return PolarizedSelfAttention(channels, layout=psa, variant=variant)

    factory(16)  # validates the variant now, with a clear message
    return {"basic": factory, "bottleneck": factory if placement == "all" else None}


def downsample_layer(inplanes: int, outplanes: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(inplanes, outplanes, kernel_size=1, stride=stride, bias=False),
                         nn.BatchNorm2d(outplanes))


def make_layer(block: type[BasicBlock] | type[Bottleneck], inplanes: int, planes: int, blocks: int, *,
               stride: int = 1, psa: PsaFactory = None) -> nn.Sequential:
    """``blocks`` residual blocks; the first changes stride/width (with a 1x1 downsample if needed)."""
    out = planes * block.expansion
    down = downsample_layer(inplanes, out, stride) if stride != 1 or inplanes != out else None
    layers = [block(inplanes, planes, stride=stride, downsample=down, psa=psa)]
    layers += [block(out, planes, psa=psa) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


def init_weights(model: nn.Module, std: float) -> None:
    """Official init: conv/deconv/linear weights ~ N(0, std), biases 0, BN and LayerNorm 1/0.

    ``std == 0`` keeps PyTorch's (and the PSA module's own) default initialisation.
    """
    if std < 0:
        raise ValueError(f"init_std must be >= 0, got {std}")
    if std == 0 or any(p.is_meta for p in model.parameters()):  # meta: shapes only, nothing to fill
        return
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, std=std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.LayerNorm)):
            if m.weight is not None:
                nn.init.ones_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

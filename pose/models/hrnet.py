"""HRNet for pose (Sun et al. 2019), with keys identical to the official ``pose_hrnet.py``.

Layout of the state dict (official): ``conv1, bn1, conv2, bn2`` (stem, two 3x3 stride-2 convs),
``layer1`` (Bottlenecks), then per stage s = 2..4 ``transition{s-1}`` and ``stage{s}``:

* ``transition{t}.{i}``: for a branch that exists before, either nothing (same width) or
  ``Sequential(conv3x3, BN, ReLU)`` (``.0``, ``.1``); for a new branch,
  ``Sequential(Sequential(conv3x3 s2, BN, ReLU), ...)`` from the previous lowest-resolution branch
  (``transition1.1.0.0.weight``).
* ``stage{s}.{m}.branches.{i}.{b}``: residual blocks; ``stage{s}.{m}.fuse_layers.{i}.{j}``: for
  j > i ``Sequential(conv1x1, BN, Upsample)``, for j < i ``Sequential`` of ``i-j`` stride-2
  ``Sequential(conv3x3, BN[, ReLU])`` (ReLU on all but the last), nothing for j == i. The last module
  of the last stage outputs only the highest resolution (``fuse_layers.0`` only).
* ``final_layer``: 1x1 conv from the highest-resolution branch to K heatmaps.

Frames: (N, 3, H, W) image crops -> (N, K, H/4, W/4) heatmaps. Sizes need not be multiples of 32:
an upsampled lower branch is cropped to its target (the official code would fail there).
"""

from dataclasses import dataclass, field

import torch
from torch import nn

from .layers import PsaFactory, get_block, init_weights, make_layer, make_psa_factories


@dataclass(frozen=True)
class StageSpec:
    num_modules: int
    num_blocks: tuple[int, ...]  # per branch
    num_channels: tuple[int, ...]  # per branch (block planes)
    block: str = "basic"


@dataclass(frozen=True)
class HRNetSpec:
    stem_width: int = 64
    layer1_planes: int = 64  # Bottleneck planes; layer1 outputs 4x this
    layer1_blocks: int = 4
    stages: tuple[StageSpec, ...] = field(default_factory=tuple)  # stages 2, 3, 4, ...
    final_kernel: int = 1


def _w(c: int) -> tuple[StageSpec, ...]:
    """The official stage table for width c (W32, W48): 1/4/3 modules, 4 BasicBlocks per branch."""
    return (StageSpec(1, (4, 4), (c, 2 * c)),
            StageSpec(4, (4, 4, 4), (c, 2 * c, 4 * c)),
            StageSpec(3, (4, 4, 4, 4), (c, 2 * c, 4 * c, 8 * c)))


HRNET_SPECS: dict[str, HRNetSpec] = {
    "hrnet_w32": HRNetSpec(stages=_w(32)),
    "hrnet_w48": HRNetSpec(stages=_w(48)),
    # Synthetic demo: ~1.2M params, trains on 2 CPU cores at 128x96 in minutes. Wide and shallow
    # (one module per stage): on CPUs, channels cost less time than layers.
    "hrnet_small": HRNetSpec(
        stem_width=32, layer1_planes=16, layer1_blocks=2,
        stages=(StageSpec(1, (2, 2), (32, 64)),
                StageSpec(1, (2, 2, 2), (32, 64, 128)))),
    # Tests: a few thousand parameters, all four stages, milliseconds at 64x48.
    "hrnet_tiny": HRNetSpec(
        stem_width=16, layer1_planes=16, layer1_blocks=1,
        stages=(StageSpec(1, (1, 1), (16, 16)),
                StageSpec(1, (1, 1, 1), (16, 16, 16)),
                StageSpec(1, (1, 1, 1, 1), (16, 16, 16, 16)))),
}


def _conv_bn(cin: int, cout: int, kernel: int, stride: int, relu: bool) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False),
                               nn.BatchNorm2d(cout)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class HighResolutionModule(nn.Module):
    """Parallel branches, then each output resolution sums all branches. Lists of (N, C_i, H_i, W_i)."""

    def __init__(self, in_channels: list[int], spec: StageSpec, *, multi_scale_output: bool, psa: PsaFactory):
        super().__init__()
        block = get_block(spec.block)
        nb = len(spec.num_channels)
        if not (len(in_channels) == len(spec.num_blocks) == nb):
            raise ValueError(f"stage spec {spec}: branches, blocks and in_channels {in_channels} disagree")
        self.branches = nn.ModuleList(
            make_layer(block, in_channels[i], spec.num_channels[i], spec.num_blocks[i], psa=psa)
            for i in range(nb))
        self.out_channels = [c * block.expansion for c in spec.num_channels]
        self.fuse_layers = self._make_fuse_layers(self.out_channels, multi_scale_output) if nb > 1 else None
        self.relu = nn.ReLU(inplace=False)

    @staticmethod
    def _make_fuse_layers(ch: list[int], multi_scale_output: bool) -> nn.ModuleList:
        rows = []
        for i in range(len(ch) if multi_scale_output else 1):
            row: list[nn.Module | None] = []
            for j in range(len(ch)):
                if j > i:
                    row.append(nn.Sequential(nn.Conv2d(ch[j], ch[i], 1, 1, 0, bias=False),
                                             nn.BatchNorm2d(ch[i]),
                                             nn.Upsample(scale_factor=2 ** (j - i), mode="nearest")))
                elif j == i:
                    row.append(None)
                else:
                    steps = [_conv_bn(ch[j], ch[i] if k == i - j - 1 else ch[j], 3, 2, relu=k != i - j - 1)
                             for k in range(i - j)]
                    row.append(nn.Sequential(*steps))
            rows.append(nn.ModuleList(row))
        return nn.ModuleList(rows)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        xs = [branch(x) for branch, x in zip(self.branches, xs)]
        if self.fuse_layers is None:
            return xs
        out = []
        for i, row in enumerate(self.fuse_layers):
            h, w = xs[i].shape[-2:]
            y = None
            for j, x in enumerate(xs):
                t = x if j == i else row[j](x)
                if j > i and t.shape[-2:] != (h, w):
                    t = t[..., :h, :w]
                y = t if y is None else y + t
            out.append(self.relu(y))
        return out


class PoseHighResolutionNet(nn.Module):
    """HRNet: (N, 3, H, W) -> (N, K, H/4, W/4) from its highest-resolution branch."""

    backbone_prefixes: tuple[str, ...] = ()  # set per instance (depends on the number of stages)

    def __init__(self, spec: HRNetSpec, *, num_joints: int = 17, psa: str = "none",
                 psa_variant: str = "paper", psa_placement: str = "all", init_std: float = 0.001):
        super().__init__()
        if not spec.stages:
            raise ValueError("HRNetSpec needs at least one stage")
        self.spec = spec
        factories = make_psa_factories(psa, psa_variant, psa_placement)
        s = spec.stem_width
        self.conv1 = nn.Conv2d(3, s, kernel_size=3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(s)
        self.conv2 = nn.Conv2d(s, s, kernel_size=3, stride=2, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(s)
        self.relu = nn.ReLU(inplace=True)
        bottleneck = get_block("bottleneck")
        self.layer1 = make_layer(bottleneck, s, spec.layer1_planes, spec.layer1_blocks,
                                 psa=factories["bottleneck"])
        pre = [spec.layer1_planes * bottleneck.expansion]
        names = ["conv1", "bn1", "conv2", "bn2", "layer1"]
        for k, stage in enumerate(spec.stages):
            expansion = get_block(stage.block).expansion
            cur = [c * expansion for c in stage.num_channels]
            self.add_module(f"transition{k + 1}", self._make_transition(pre, cur))
            last = k == len(spec.stages) - 1
            modules = []
            in_ch = cur
            for m in range(stage.num_modules):
                multi_scale = not (last and m == stage.num_modules - 1)
                mod = HighResolutionModule(list(in_ch), stage, multi_scale_output=multi_scale,
                                           psa=factories[stage.block])
                modules.append(mod)
                in_ch = mod.out_channels
            self.add_module(f"stage{k + 2}", nn.Sequential(*modules))
            names += [f"transition{k + 1}", f"stage{k + 2}"]
            pre = in_ch
        self.backbone_prefixes = tuple(names)
        self.final_layer = nn.Conv2d(pre[0], num_joints, spec.final_kernel, 1, spec.final_kernel // 2)
        init_weights(self, init_std)

    @staticmethod
    def _make_transition(pre: list[int], cur: list[int]) -> nn.ModuleList:
        layers: list[nn.Module | None] = []
        for i, c in enumerate(cur):
            if i < len(pre):
                layers.append(_conv_bn(pre[i], c, 3, 1, relu=True) if c != pre[i] else None)
            else:
                steps = [_conv_bn(pre[-1], c if j == i - len(pre) else pre[-1], 3, 2, relu=True)
                         for j in range(i + 1 - len(pre))]
                layers.append(nn.Sequential(*steps))
        return nn.ModuleList(layers)

    def forward(self, x):
        """x: (N, 3, H, W) normalised image crops -> (N, K, H/4, W/4) heatmaps."""
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        ys = [self.layer1(x)]
        for k in range(len(self.spec.stages)):
            transition = getattr(self, f"transition{k + 1}")
            xs = []
            for i, t in enumerate(transition):
                src = ys[i] if i < len(ys) else ys[-1]
                xs.append(src if t is None else t(src))
            ys = getattr(self, f"stage{k + 2}")(xs)
        return self.final_layer(ys[0])

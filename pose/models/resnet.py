"""ResNet backbone (torchvision layout) with the SimpleBaseline deconvolution head.

State-dict keys are those of torchvision's ``resnet*`` (``conv1, bn1, layer1..4``; ImageNet files
also hold ``fc.*``, the classification head, which is not part of this network) and of the official
``pose_resnet.py`` (``deconv_layers.{0,1,3,4,6,7}``, ``final_layer``), so ``resnet50-19c8e357.pth``
and ``pose_resnet_50_256x192.pth`` load directly.

Frames: input image crop (N, 3, H, W) -> heatmaps (N, K, H/4, W/4), stride 4 (backbone /32, three
x2 deconvolutions).
"""

from dataclasses import dataclass

from torch import nn

from .layers import get_block, init_weights, make_layer, make_psa_factories


@dataclass(frozen=True)
class ResNetSpec:
    block: str  # 'basic' | 'bottleneck'
    layers: tuple[int, int, int, int]  # blocks per stage
    widths: tuple[int, int, int, int] = (64, 128, 256, 512)  # block planes per stage
    stem_width: int = 64
    deconv_filters: tuple[int, ...] = (256, 256, 256)
    deconv_kernel: int = 4  # 4: padding 1, output_padding 0 (exact x2)
    final_kernel: int = 1


RESNET_SPECS: dict[str, ResNetSpec] = {
    "resnet18": ResNetSpec("basic", (2, 2, 2, 2)),
    "resnet34": ResNetSpec("basic", (3, 4, 6, 3)),
    "resnet50": ResNetSpec("bottleneck", (3, 4, 6, 3)),
    "resnet101": ResNetSpec("bottleneck", (3, 4, 23, 3)),
    "resnet152": ResNetSpec("bottleneck", (3, 8, 36, 3)),
    # Tests: a few thousand parameters, milliseconds per forward.
    "resnet_tiny": ResNetSpec("basic", (1, 1, 1, 1), widths=(16, 16, 32, 32), stem_width=16,
                              deconv_filters=(16, 16, 16)),
}

_DECONV_PADDING = {4: (1, 0), 3: (1, 1), 2: (0, 0)}  # kernel -> (padding, output_padding), official


class PoseResNet(nn.Module):
    """SimpleBaseline: ResNet, 3 deconvolutions (k4 s2, BN, ReLU), a 1x1 conv to K heatmaps."""

    # Top-level names that an ImageNet backbone file provides.
    backbone_prefixes = ("conv1", "bn1", "layer1", "layer2", "layer3", "layer4")

    def __init__(self, spec: ResNetSpec, *, num_joints: int = 17, psa: str = "none",
                 psa_variant: str = "paper", psa_placement: str = "all", init_std: float = 0.001):
        super().__init__()
        self.spec = spec
        block = get_block(spec.block)
        psa_for = make_psa_factories(psa, psa_variant, psa_placement)[spec.block]
        self.conv1 = nn.Conv2d(3, spec.stem_width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(spec.stem_width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        inplanes = spec.stem_width
        for i, (planes, blocks) in enumerate(zip(spec.widths, spec.layers)):
            layer = make_layer(block, inplanes, planes, blocks, stride=1 if i == 0 else 2, psa=psa_for)
            self.add_module(f"layer{i + 1}", layer)
            inplanes = planes * block.expansion
        if spec.deconv_kernel not in _DECONV_PADDING:
            raise ValueError(f"deconv_kernel {spec.deconv_kernel} is not one of {sorted(_DECONV_PADDING)}")
        padding, output_padding = _DECONV_PADDING[spec.deconv_kernel]
        head: list[nn.Module] = []
        for filters in spec.deconv_filters:
            head += [nn.ConvTranspose2d(inplanes, filters, spec.deconv_kernel, stride=2, padding=padding,
                                        output_padding=output_padding, bias=False),
                     nn.BatchNorm2d(filters), nn.ReLU(inplace=True)]
            inplanes = filters
        self.deconv_layers = nn.Sequential(*head)
        self.final_layer = nn.Conv2d(inplanes, num_joints, spec.final_kernel, padding=spec.final_kernel // 2)
        init_weights(self, init_std)

    def forward(self, x):
        """x: (N, 3, H, W) normalised image crops -> (N, K, H/4, W/4) heatmaps."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.final_layer(self.deconv_layers(x))

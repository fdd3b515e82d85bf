"""Networks: SimpleBaseline ResNets and HRNets, optionally with Polarized Self-Attention.

Public API:

* ``build_model(cfg)``: the network of ``cfg.model`` (images (N,3,H,W) -> heatmaps (N,K,H/4,W/4)),
  with ImageNet backbone weights loaded when ``cfg.model.pretrained`` is set.
* ``create_model(arch, *, num_joints, psa, psa_variant, psa_placement, init_std)``: the same
  without a config; or the variant's own factory, ``pose.models.factories.hrnet_w32(psa="parallel")``.
* ``load_weights(model, path, strict=True) -> LoadReport``; ``load_backbone(model, path)``;
  ``load_for_finetuning(model, path)`` (all but a final layer of another joint count).
* ``list_archs()``, ``count_params(model)``, ``count_flops(model, (w, h))``,
  ``PolarizedSelfAttention``.
"""

from torch import nn

from pose.config import configured_keypoint_set
from pose.keypoints import COCO17

from .factories import ARCHS, ModelArgs
from .flops import count_flops, count_params
from .hrnet import HRNET_SPECS, HRNetSpec, PoseHighResolutionNet, StageSpec
from .psa import PolarizedSelfAttention
from .resnet import RESNET_SPECS, PoseResNet, ResNetSpec
from .weights import LoadReport, WeightsError, load_backbone, load_for_finetuning, load_weights, read_state_dict

__all__ = [
    "ARCHS", "HRNET_SPECS", "RESNET_SPECS", "HRNetSpec", "LoadReport", "ModelArgs", "PolarizedSelfAttention",
    "PoseHighResolutionNet", "PoseResNet", "ResNetSpec", "StageSpec", "WeightsError", "build_model",
    "count_flops", "count_params", "create_model", "list_archs", "load_backbone", "load_for_finetuning",
    "load_weights",
    "read_state_dict",
]


def list_archs() -> list[str]:
    return list(ARCHS)


def create_model(arch: str, *, num_joints: int = 17, psa: str = "none", psa_variant: str = "paper",
                 psa_placement: str = "all", init_std: float = 0.001) -> nn.Module:
    """A network by name; ``psa`` is 'none', 'parallel' (PSA_p) or 'sequential' (PSA_s)."""
    if arch not in ARCHS:
        raise ValueError(f"unknown model arch {arch!r}; valid: {', '.join(ARCHS)}")
    return ARCHS[arch](num_joints=num_joints, psa=psa, psa_variant=psa_variant, psa_placement=psa_placement,
                       init_std=init_std)


def build_model(cfg, *, pretrained: bool = True, verbose: bool = True) -> nn.Module:
    """The network of ``cfg.model`` (a ``pose.config.Config``), ImageNet weights loaded if configured.

    ``model.num_joints`` 0 (not resolved from the data, see ``pose.data.with_dataset_keypoints``)
    takes the joint count of the set the config names, else COCO's 17. ``pretrained=False`` skips
    ``model.pretrained``: when trained weights are loaded next, the ImageNet backbone file is neither
    needed nor read. The backbone load report (loaded / ignored / uninitialised keys) is printed
    when ``verbose`` and kept as ``model.pretrained_report``.
    """
    m = cfg.model
    num_joints = m.num_joints
    if num_joints == 0:  # not resolved from data: the config's set, else COCO-17 (as before sets existed)
        num_joints = (configured_keypoint_set(cfg) or COCO17).num_joints
    model = create_model(m.arch, num_joints=num_joints, psa=m.psa, psa_variant=m.psa_variant,
                         psa_placement=m.psa_placement, init_std=m.init_std)
    if pretrained and m.pretrained:
        report = load_backbone(model, m.pretrained)
        model.pretrained_report = report
        if verbose:
            print(f"=> ImageNet backbone for {m.arch}: {report}")
    return model

"""Parameter and FLOP counts, in the convention of the published tables.

The HRNet / SimpleBaseline tables (``get_model_summary`` of deep-high-resolution-net.pytorch) count
multiply-adds of convolution, transposed convolution and linear layers only, as
``weight.numel() * output H*W`` (also for transposed convolutions, where it over-counts by stride^2),
and divide by 1024^3. ``convention='official'`` reproduces that (W32 256x192: 7.1, R50: 8.9, W48:
14.6); ``convention='macs'`` gives the exact multiply-adds / 1e9. PSA blocks count the
multiply-adds of the path they run (fast or reference, see ``PolarizedSelfAttention.macs``).
"""

import torch
from torch import nn

from .psa import PolarizedSelfAttention

CONVENTIONS = ("official", "macs")


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def count_flops(model: nn.Module, input_size: tuple[int, int], *, convention: str = "official") -> float:
    """GFLOPs (multiply-adds) of one forward on one image of ``input_size`` = (width, height)."""
    if convention not in CONVENTIONS:
        raise ValueError(f"convention {convention!r} is not one of {', '.join(CONVENTIONS)}")
    total = 0
    inside_psa = {id(m) for psa in model.modules() if isinstance(psa, PolarizedSelfAttention)
                  for m in psa.modules() if m is not psa}

    def hook(module, inputs, output):
        nonlocal total
        if isinstance(module, PolarizedSelfAttention):
            total += module.macs(tuple(inputs[0].shape))
        elif isinstance(module, nn.ConvTranspose2d) and convention == "macs":
            total += module.weight.numel() * inputs[0].shape[-2:].numel() * inputs[0].shape[0]
        elif isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            total += module.weight.numel() * output.shape[-2:].numel() * output.shape[0]
        elif isinstance(module, nn.Linear):
            total += output.numel() * module.in_features

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if id(m) not in inside_psa
               and isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, PolarizedSelfAttention))]
    was_training = model.training
    try:
        model.eval()
        p = next(model.parameters())
        w, h = input_size
        model(torch.zeros(1, 3, h, w, device=p.device, dtype=p.dtype))
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return total / (1024 ** 3 if convention == "official" else 1e9)

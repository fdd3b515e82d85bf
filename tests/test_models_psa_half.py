"""PSA modules whose weights were converted to bf16 or fp16 (``model.to(torch.bfloat16)``, ``.half()``)
run the fast path, forward and backward, as close to float32 as the straightforward formula in the
same dtype is. The fast path's C-vector work runs in float32 and once took the weights as they
were: 'expected m1 and m2 to have the same dtype'."""

import pytest
import torch

from pose.models.psa import PolarizedSelfAttention

CASES = [("parallel", "paper"), ("sequential", "paper"), ("parallel", "official"), ("sequential", "official")]


def modules(layout, variant, dtype):
    torch.manual_seed(0)
    full = PolarizedSelfAttention(16, layout=layout, variant=variant)
    for p in full.parameters():
        p.data.normal_(0.0, 0.3)
    fast = PolarizedSelfAttention(16, layout=layout, variant=variant).to(dtype)
    ref = PolarizedSelfAttention(16, layout=layout, variant=variant, reference=True).to(dtype)
    fast.load_state_dict(full.state_dict())
    ref.load_state_dict(full.state_dict())
    return full, fast, ref


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("layout,variant", CASES)
def test_converted_weights_run_the_fast_path_as_close_as_the_formula(layout, variant, dtype):
    full, fast, ref = modules(layout, variant, dtype)
    x = torch.randn(2, 16, 6, 5, generator=torch.Generator().manual_seed(1))
    expected = full(x)
    ref_err = (ref(x.to(dtype)).float() - expected).abs().max()
    with torch.no_grad():
        out = fast(x.to(dtype))
    assert out.dtype == dtype
    assert (out.float() - expected).abs().max() <= 2 * ref_err + 1e-3

    xh = x.to(dtype).requires_grad_()
    fast(xh).float().square().sum().backward()
    x32 = x.clone().requires_grad_()
    full(x32).square().sum().backward()
    assert xh.grad.dtype == dtype
    scale = x32.grad.abs().max()
    assert (xh.grad.float() - x32.grad).abs().max() <= 0.05 * scale
    for (name, p), p32 in zip(fast.named_parameters(), full.parameters()):
        if p32.grad is None:
            continue
        assert p.grad is not None and p.grad.dtype == dtype, name
        assert (p.grad.float() - p32.grad).abs().max() <= 0.05 * p32.grad.abs().max() + 1e-3, name

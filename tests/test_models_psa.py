"""PSA: the fast (folded) path equals the straightforward formulas, values and gradients."""

import itertools

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from pose.models import PolarizedSelfAttention
from pose.models.psa import _Pixels

CASES = list(itertools.product(("parallel", "sequential"), ("paper", "official")))


def _randomise(module: torch.nn.Module, seed: int) -> None:
    """Non-trivial weights everywhere (LayerNorm affine included), not the init."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)


@pytest.mark.parametrize("layout, variant", CASES)
@pytest.mark.parametrize("shape", [(3, 16, 7, 5), (2, 32, 1, 1), (1, 64, 4, 9)])
def test_fast_equals_reference(layout, variant, shape):
    torch.manual_seed(0)
    m = PolarizedSelfAttention(shape[1], layout=layout, variant=variant)
    x = torch.randn(shape)
    assert torch.allclose(m(x), m.forward_reference(x), atol=1e-5, rtol=0)  # at init
    _randomise(m, 1)
    fast, ref = m(x), m.forward_reference(x)
    assert fast.shape == x.shape
    assert ref.abs().max() > 0.1, "the check must not pass on vanishing outputs"
    assert torch.allclose(fast, ref, atol=1e-5, rtol=0), (fast - ref).abs().max()


FORMATS = (torch.contiguous_format, torch.channels_last)


@pytest.mark.parametrize("layout, variant", CASES)
@pytest.mark.parametrize("memory_format", FORMATS, ids=("nchw", "channels_last"))
def test_fast_gradients_equal_reference(layout, variant, memory_format):
    """The hand-written backward (and official PSA_s's autograd) equal autograd through the
    straightforward form, for the input and every parameter, in both memory layouts."""
    torch.manual_seed(0)
    m = PolarizedSelfAttention(16, layout=layout, variant=variant)
    _randomise(m, 2)
    x = torch.randn(2, 16, 6, 5).to(memory_format=memory_format).requires_grad_()
    g = torch.randn(2, 16, 6, 5)
    params = [x] + list(m.parameters())
    out = m(x)
    assert out.is_contiguous(memory_format=memory_format)
    fast = torch.autograd.grad((out * g).sum(), params)
    ref = torch.autograd.grad((m.forward_reference(x) * g).sum(), params)
    names = ["x"] + [n for n, _ in m.named_parameters()]
    for name, a, b in zip(names, fast, ref):
        assert b.abs().max() > 0, f"{name}: no gradient"
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-4), f"{name}: {(a - b).abs().max()}"
    if (layout, variant) != ("sequential", "official"):  # the hand-written backward keeps x's layout
        assert fast[0].is_contiguous(memory_format=memory_format)


@pytest.mark.parametrize("layout, variant", CASES)
def test_fast_gradients_float64_exact(layout, variant):
    """In float64 the fast backward matches autograd through the straightforward form to 1e-10, so
    the float32 tolerance above hides no formula error; gradcheck confirms the input gradient."""
    torch.manual_seed(0)
    m = PolarizedSelfAttention(16, layout=layout, variant=variant).double()
    _randomise(m, 4)
    x = torch.randn(2, 16, 4, 3, dtype=torch.float64).to(memory_format=torch.channels_last).requires_grad_()
    g = torch.randn(2, 16, 4, 3, dtype=torch.float64)
    params = [x] + list(m.parameters())
    fast = torch.autograd.grad((m(x) * g).sum(), params)
    ref = torch.autograd.grad((m.forward_reference(x) * g).sum(), params)
    for name, a, b in zip(["x"] + [n for n, _ in m.named_parameters()], fast, ref):
        assert torch.allclose(a, b, atol=1e-10, rtol=1e-9), f"{name}: {(a - b).abs().max()}"
    assert torch.autograd.gradcheck(m, (x,), eps=1e-6, atol=1e-7)


@pytest.mark.parametrize("layout, variant", CASES)
def test_mixed_precision_keeps_dtype_and_layout(layout, variant):
    """Under bf16 autocast on a channels_last bf16 map (what training with train.amp does), the
    output and the input gradient stay bf16 and channels_last, and both are within bf16 error of
    the float32 reference."""
    torch.manual_seed(0)
    m = PolarizedSelfAttention(32, layout=layout, variant=variant)
    _randomise(m, 5)
    x32 = torch.randn(2, 32, 8, 6).to(memory_format=torch.channels_last)
    g = torch.randn(2, 32, 8, 6)
    x = x32.to(torch.bfloat16).requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = m(x)
    (out.float() * g).sum().backward()
    assert out.dtype == torch.bfloat16 and out.is_contiguous(memory_format=torch.channels_last)
    assert x.grad.dtype == torch.bfloat16
    if (layout, variant) != ("sequential", "official"):
        assert x.grad.is_contiguous(memory_format=torch.channels_last)
    xr = x.detach().float().requires_grad_()
    ref = m.forward_reference(xr)
    (ref * g).sum().backward()
    assert (out.float() - ref).abs().max() <= 0.02 * ref.abs().max()
    assert (x.grad.float() - xr.grad).abs().max() <= 0.03 * xr.grad.abs().max()


def test_inference_path_equals_training_path():
    """Without autograd the fast forward runs alone; its output is the same."""
    torch.manual_seed(0)
    m = PolarizedSelfAttention(16)
    _randomise(m, 6)
    x = torch.randn(2, 16, 5, 4)
    with torch.no_grad():
        inference = m(x)
    assert torch.equal(inference, m(x).detach())


def test_reference_flag_and_shape():
    m = PolarizedSelfAttention(8, reference=True)
    x = torch.randn(2, 8, 3, 3)
    assert m(x).shape == x.shape
    assert "reference=True" in repr(m)


def test_paper_formula_by_hand():
    """The paper PSA_p, written out per pixel for one image, equals the module."""
    torch.manual_seed(0)
    c, h, w = 6, 3, 4
    m = PolarizedSelfAttention(c)
    _randomise(m, 3)
    x = torch.randn(1, c, h, w)
    xs = x[0].reshape(c, -1)  # (C, P)
    wq, wv = m.conv_q_right.weight.view(1, c), m.conv_v_right.weight.view(c // 2, c)
    wz = m.conv_up.weight.view(c, c // 2)
    z = (wv @ xs) @ torch.softmax(wq @ xs, dim=1).T  # (C/2, 1)
    ln = torch.nn.functional.layer_norm((wz @ z).view(c), (c,), m.norm_up.weight, m.norm_up.bias)
    a_ch = torch.sigmoid(ln)
    q = torch.softmax(m.conv_q_left.weight.view(c // 2, c) @ xs.mean(1), dim=0)  # (C/2,)
    a_sp = torch.sigmoid(q @ (m.conv_v_left.weight.view(c // 2, c) @ xs))  # (P,)
    expected = xs * a_ch[:, None] + xs * a_sp[None, :]
    assert torch.allclose(m(x)[0].reshape(c, -1), expected, atol=1e-5)


def test_official_parameter_names():
    p = dict(PolarizedSelfAttention(64, layout="parallel", variant="official").named_parameters())
    assert {k: tuple(v.shape) for k, v in p.items()} == {
        "conv_q_right.weight": (1, 64, 1, 1), "conv_v_right.weight": (32, 64, 1, 1),
        "conv_up.weight": (64, 32, 1, 1), "conv_q_left.weight": (32, 64, 1, 1),
        "conv_v_left.weight": (32, 64, 1, 1)}
    s = dict(PolarizedSelfAttention(64, layout="sequential", variant="official").named_parameters())
    assert {k: tuple(v.shape) for k, v in s.items() if k.startswith("conv_up")} == {
        "conv_up.0.weight": (8, 32, 1, 1), "conv_up.0.bias": (8,), "conv_up.1.weight": (8, 1, 1),
        "conv_up.1.bias": (8, 1, 1), "conv_up.3.weight": (64, 8, 1, 1), "conv_up.3.bias": (64,)}


@pytest.mark.parametrize("kwargs, message", [
    ({"layout": "both"}, "layout 'both' is not one of parallel, sequential"),
    ({"variant": "v2"}, "variant 'v2' is not one of paper, official"),
])
def test_bad_options_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PolarizedSelfAttention(16, **kwargs)


def test_too_few_channels():
    with pytest.raises(ValueError, match="at least 16 channels"):
        PolarizedSelfAttention(8, layout="sequential", variant="official")


class _CountCalls(TorchDispatchMode):
    """Counts the operator calls that do work (views and aliases excluded)."""

    VIEWS = {"view", "_unsafe_view", "unsqueeze", "squeeze", "transpose", "t", "expand", "select", "slice",
             "permute", "alias", "detach", "as_strided", "reshape", "promote_types"}

    def __init__(self):
        super().__init__()
        self.calls: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.overloadpacket.__name__ not in self.VIEWS:
            self.calls.append(str(func))
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("layout, most", [("parallel", 18), ("sequential", 20)])
def test_fast_inference_call_count(layout, most):
    # HRNet has over a hundred PSA modules on small maps, where each operator call costs more than
    # its arithmetic: the fast path must stay a short list of calls (no casts to the dtype a tensor
    # already has, one LayerNorm kernel). The bounds leave one or two calls of slack.
    m = PolarizedSelfAttention(32, layout=layout).eval()
    x = torch.rand(2, 32, 6, 5)
    with torch.inference_mode(), _CountCalls() as count:
        m(x)
    assert len(count.calls) <= most, count.calls
    assert not [c for c in count.calls if "to.dtype" in c or "_to_copy" in c], count.calls


@pytest.mark.parametrize("dtype", (torch.bfloat16, torch.float16))
@pytest.mark.parametrize("add", (True, False), ids=("parallel", "sequential"))
@pytest.mark.parametrize("memory_format", FORMATS, ids=("nchw", "channels_last"))
def test_reduced_precision_gate_is_the_broadcast_one(dtype, add, memory_format):
    """In bf16/fp16 the gate comes from a small matrix product instead of a broadcast kernel; its
    values, shape and strides must be exactly the broadcast sum (or product) rounded once."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 16, 5, 4, generator=g).to(dtype).contiguous(memory_format=memory_format)
    pix = _Pixels(x)
    a_ch, a_sp = torch.rand(3, 16, generator=g), torch.rand(3, 20, generator=g)
    got = pix.gate(a_ch, a_sp, add=add)
    combine = torch.add if add else torch.mul
    want = combine(pix.channel_vector(a_ch), pix.pixel_vector(a_sp))
    assert got.dtype == dtype and got.shape == want.shape and got.stride() == want.stride()
    assert torch.equal(got, want)


@pytest.mark.parametrize("layout, variant, reference, want", [
    # N=2, C=64 (C/2=32), 8x6=48 pixels. Fast path: 4 C-long products per pixel (W_q row, the two
    # pooled columns, the spatial dot product) + the C-vector head W_v, W_z, W_q', W_v'
    # (4 x 32 x 64): 2 x (12288 + 8192).
    ("parallel", "paper", False, 40960),
    ("sequential", "paper", False, 40960),
    # Official PSA_s keeps the full C -> C/2 product and its softmax (98304 + 1536 per image) and
    # its conv_up is C/2 -> C/8 -> C (32 x 8 + 8 x 64 instead of 32 x 64).
    ("sequential", "official", False, 2 * (12288 + 98304 + 1536 + 2048 + 256 + 512 + 4096)),
    # Straightforward: W_q (64 x 48), three C -> C/2 convolutions, two weighted sums over pixels.
    ("parallel", "paper", True, 2 * (3072 + 3 * 32 * 64 * 48 + 2 * 32 * 48 + 8192)),
])
def test_macs_by_hand(layout, variant, reference, want):
    module = PolarizedSelfAttention(64, layout=layout, variant=variant, reference=reference)
    assert module.macs((2, 64, 8, 6)) == want

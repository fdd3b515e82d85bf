"""Polarized Self-Attention (Liu et al., arXiv 2107.00782), fast and reference forms.

One module, two layouts and two variants:

* ``layout='parallel'`` (PSA_p): ``x * A_ch + x * A_sp``;
  ``layout='sequential'`` (PSA_s): the channel branch first, the spatial branch on its output.
* ``variant='paper'``: the paper's formulas.
  Channel-only: ``A_ch = sigmoid(LN_C(W_z(W_v(x) @ softmax_HW(W_q(x)))))``, W_v: C->C/2, W_q: C->1,
  W_z: C/2->C. Spatial-only: ``A_sp = sigmoid(softmax_C/2(GAP(W_q'(x))) . W_v'(x))``, W_q', W_v': C->C/2.
* ``variant='official'``: the behaviour of the published ``PSA_p`` / ``PSA_s`` of DeLightCMU/PSA
  (``semantic-segmentation/network/PSA.py``), with its parameter names, so its weights load:
  PSA_p has no LayerNorm after ``conv_up`` and applies a softmax over HW *after* the spatial
  product (then the sigmoid); PSA_s has ``conv_up`` = conv C/2->C/8 (bias), LayerNorm([C/8,1,1]),
  ReLU, conv C/8->C (bias), and applies the softmax over HW to each channel of ``W_v'(x)`` before
  the product. Neither has a softmax on the pooled spatial query.

Parameter names (both variants): ``conv_q_right`` (W_q), ``conv_v_right`` (W_v), ``conv_up`` (W_z),
``conv_q_left`` (W_q'), ``conv_v_left`` (W_v'); the paper variant adds ``norm_up`` (its LayerNorm).

Why the fast path is fast: the 1x1 convolutions are linear maps applied at every pixel, and every
branch only ever needs a *weighted sum over pixels* or a *dot product per pixel* of their outputs.
So the sums are taken on ``x`` first (``z = x @ softmax``, ``m = mean(x)``; one GEMM with two
columns), the convolutions become matrix-vector products on C-vectors, and the spatial branch's
``(W_v'^T q) . x_p`` is one effective C-vector dotted with every pixel. The work on the feature map
is a few passes of O(C*H*W) instead of three C x C/2 convolutions. Only official PSA_s keeps one
full convolution (its per-channel softmax over HW does not commute with W_v'); there the channel
mask is folded into that convolution's weights instead of materialising ``x * A_ch``.

Training cost: left to autograd, each of the four uses of ``x`` adds its own map-sized gradient
(in whatever layout its operation produced) and every small vector step costs several operations.
PSA_p and PSA_s (paper) and PSA_p (official) therefore run as one autograd function with a
hand-written backward: the x-gradient is ``grad * gate`` plus one rank-4 product added in place,
every map-sized tensor keeps the layout of ``x`` (NCHW or channels_last), map-sized work runs in
x's dtype (bf16/fp16 under mixed precision) and vector work in float32 (float64 for float64
maps).

What remains is a few passes over the map and a per-call cost: HRNet-W32 has over a hundred PSA
modules on small maps, and each pays for a few dozen operator calls (the C-vector head, the
softmaxes, the casts) whatever the map size. So the fast path keeps the call count down: one
LayerNorm kernel (its mean and 1/std saved for backward, autograd's own kernels for the sigmoid,
softmax and LayerNorm gradients), no cast where the dtype already matches.
``benchmarks/bench_models.py`` prints PSA's extra time in units of one elementwise pass over its
input maps, next to the memory traffic of the fast path.

``reference=True`` (or :meth:`forward_reference`) runs the straightforward convolution form; the
tests check both agree within 1e-5 (values and gradients; gradients to 1e-10 in float64), and
``benchmarks/bench_models.py`` times both.
"""

from contextlib import nullcontext

import torch
import torch.nn.functional as F
from torch import nn

LAYOUTS = ("parallel", "sequential")
VARIANTS = ("paper", "official")


class PolarizedSelfAttention(nn.Module):
    """PSA block: ``(N, C, H, W) -> (N, C, H, W)``, same shape and frame as its input.

    Args:
        channels: C, the input (and output) channels; C/2 is the inner width.
        layout: 'parallel' (PSA_p) or 'sequential' (PSA_s).
        variant: 'paper' or 'official' (see the module docstring).
        reference: run the straightforward (slow) convolution form instead of the fast one.
    """

    def __init__(self, channels: int, *, layout: str = "parallel", variant: str = "paper",
                 reference: bool = False):
        super().__init__()
        if layout not in LAYOUTS:
            raise ValueError(f"PSA layout {layout!r} is not one of {', '.join(LAYOUTS)}")
        if variant not in VARIANTS:
            raise ValueError(f"PSA variant {variant!r} is not one of {', '.join(VARIANTS)}")
        # Official PSA_s normalises C/8 values with a LayerNorm: with one value its output is
        # constant and nothing before it learns.
        min_channels = 16 if (variant, layout) == ("official", "sequential") else 2
        if channels < min_channels:
            raise ValueError(f"PSA {variant}/{layout} needs at least {min_channels} channels, got {channels}")
        self.channels = channels
        self.inter = channels // 2
        self.layout = layout
        self.variant = variant
        self.reference = reference
        c, ic = channels, self.inter
        # Channel-only branch ("right" in the official code).
        self.conv_q_right = nn.Conv2d(c, 1, 1, bias=False)
        self.conv_v_right = nn.Conv2d(c, ic, 1, bias=False)
        if (variant, layout) == ("official", "sequential"):
            mid = ic // 4
            self.conv_up = nn.Sequential(
                nn.Conv2d(ic, mid, 1), nn.LayerNorm([mid, 1, 1]), nn.ReLU(inplace=True), nn.Conv2d(mid, c, 1))
        else:
            self.conv_up = nn.Conv2d(ic, c, 1, bias=False)
        if variant == "paper":
            self.norm_up = nn.LayerNorm(c)
        # Spatial-only branch ("left").
        self.conv_q_left = nn.Conv2d(c, ic, 1, bias=False)
        self.conv_v_left = nn.Conv2d(c, ic, 1, bias=False)
        for conv in (self.conv_q_right, self.conv_v_right, self.conv_q_left, self.conv_v_left):
            nn.init.kaiming_normal_(conv.weight, mode="fan_in", nonlinearity="relu")  # as published

    def extra_repr(self) -> str:
        return (f"channels={self.channels}, layout={self.layout}, variant={self.variant}, "
                f"reference={self.reference}")

    # ----------------------------------------------------------------------------------------
    # Fast path
    # ----------------------------------------------------------------------------------------
    def _w(self, conv: nn.Conv2d, dtype: torch.dtype | None = None) -> torch.Tensor:
        """A 1x1 conv's weight as a (out, in) matrix, in ``dtype`` where given (the C-vector work runs
        in float32 also for a module whose weights were converted to bf16 or fp16)."""
        w = conv.weight.view(conv.weight.shape[0], conv.weight.shape[1])
        return w if dtype is None else _cast(w, dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.reference:
            return self.forward_reference(x)
        # Autocast off: the map-sized work runs in x's dtype (bf16/fp16 under mixed precision) and
        # the C-vector work in float32 (or float64), cast explicitly. Left to autocast, a float32
        # gate meets a bf16 map in a mixed-dtype multiply, an order of magnitude slower on CPU.
        with _autocast_off(x.device.type):
            if (self.variant, self.layout) == ("official", "sequential"):
                return self._forward_official_sequential(x)
            if torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in self.parameters())):
                names, params = zip(*[(k, p) for k, p in self.named_parameters() if k != "conv_q_right.weight"])
                return _FastPsa.apply(x, self, names, self.conv_q_right.weight, *params)
            return _fast_forward(self, x)[0]

    def _forward_official_sequential(self, x: torch.Tensor) -> torch.Tensor:
        """Official PSA_s, under autograd. It keeps one full product: its per-channel softmax over HW
        of W_v' y does not commute with W_v'. The channel mask is folded into that product's
        weights (y = x * A_ch is never formed)."""
        n, c, h, w = x.shape
        pix = _Pixels(x)
        _, pooled = _query_pool(pix, self._w(self.conv_q_right))
        vt = pooled.dtype
        conv_a, norm, _, conv_b = self.conv_up
        u = F.linear(F.linear(pooled[:, 0], self._w(self.conv_v_right, vt)), self._w(conv_a, vt),
                     _cast(conv_a.bias, vt))
        u = F.layer_norm(u, (conv_a.out_channels,), _cast(norm.weight.view(-1), vt), _cast(norm.bias.view(-1), vt),
                         norm.eps)
        a_ch = torch.sigmoid(F.linear(F.relu(u), self._w(conv_b, vt), _cast(conv_b.bias, vt)))
        wv = self._w(self.conv_v_left, vt).unsqueeze(0) * a_ch.unsqueeze(1)  # (N, C/2, C)
        theta = torch.softmax(pix.project(wv), dim=2)  # (N, C/2, HW)
        sp_logits = torch.bmm(F.linear(pooled[:, 1] * a_ch, self._w(self.conv_q_left, vt)).unsqueeze(1), theta)
        a_sp = torch.sigmoid(sp_logits)
        return x * a_ch.to(x.dtype).view(n, c, 1, 1) * a_sp.to(x.dtype).view(n, 1, h, w)

    # ----------------------------------------------------------------------------------------
    # Reference path: the formulas as written, convolutions on the full maps
    # ----------------------------------------------------------------------------------------
    def _channel_branch_ref(self, x: torch.Tensor) -> torch.Tensor:
        """A_ch (N, C, 1, 1)."""
        n, _, h, w = x.shape
        v = self.conv_v_right(x).view(n, self.inter, h * w)
        q = torch.softmax(self.conv_q_right(x).view(n, 1, h * w), dim=2)
        z = torch.matmul(v, q.transpose(1, 2)).unsqueeze(-1)  # (N, C/2, 1, 1)
        u = self.conv_up(z)
        if self.variant == "paper":
            u = self.norm_up(u.view(n, self.channels)).view(n, self.channels, 1, 1)
        return torch.sigmoid(u)

    def _spatial_branch_ref(self, x: torch.Tensor) -> torch.Tensor:
        """A_sp (N, 1, H, W)."""
        n, _, h, w = x.shape
        g = F.adaptive_avg_pool2d(self.conv_q_left(x), 1).view(n, 1, self.inter)
        v = self.conv_v_left(x).view(n, self.inter, h * w)
        if self.variant == "paper":
            ctx = torch.matmul(torch.softmax(g, dim=2), v)
        elif self.layout == "parallel":  # official PSA_p: softmax over HW after the product
            ctx = torch.softmax(torch.matmul(g, v), dim=2)
        else:  # official PSA_s: softmax over HW of each channel of W_v' x, before the product
            ctx = torch.matmul(g, torch.softmax(v, dim=2))
        return torch.sigmoid(ctx.view(n, 1, h, w))

    def forward_reference(self, x: torch.Tensor) -> torch.Tensor:
        """Straightforward PSA, (N, C, H, W) -> (N, C, H, W); slow, for tests and benchmarks."""
        if self.layout == "parallel":
            return x * self._channel_branch_ref(x) + x * self._spatial_branch_ref(x)
        y = x * self._channel_branch_ref(x)
        return y * self._spatial_branch_ref(y)

    def macs(self, shape: tuple[int, ...]) -> int:
        """Multiply-adds of one forward on an input of ``shape`` (N, C, H, W), for the path in use."""
        n, c, h, w = shape
        p, ic = h * w, self.inter
        if isinstance(self.conv_up, nn.Sequential):  # official PSA_s: C/2 -> C/8 -> C
            mid = self.conv_up[0].out_channels
            up = ic * mid + mid * c
        else:
            up = ic * c
        vec = ic * c + up + ic * c * 2  # W_v, W_z (conv_up), W_q' and W_v' on C-vectors
        if self.reference:
            maps = c * p + ic * c * p * 3 + ic * p * 2  # q, v, q', v' convs; two weighted sums
        else:
            maps = c * p * 4  # q row, the two pooled columns, the spatial dot product
            if (self.variant, self.layout) == ("official", "sequential"):
                maps += ic * c * p + ic * p
        return n * (maps + vec)




def _autocast_off(device_type: str):
    """A context that turns autocast off for ``device_type`` where it is on, else a no-op."""
    try:
        enabled = torch.is_autocast_enabled(device_type)
    except TypeError:  # PyTorch < 2.4
        enabled = {"cpu": torch.is_autocast_cpu_enabled, "cuda": torch.is_autocast_enabled}.get(
            device_type, lambda: False)()
    except RuntimeError:  # a device without autocast (meta)
        enabled = False
    return torch.autocast(device_type, enabled=False) if enabled else nullcontext()


def _cast(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``t`` in ``dtype``; skips the call where it already is (the per-call cost adds up over the
    hundred-odd PSA modules of an HRNet)."""
    return t if t.dtype == dtype else t.to(dtype)


class _Pixels:
    """A feature map as a matrix M of pixels, in its own memory layout (no copy).

    For NCHW maps M is (N, C, HW); for channels_last maps it is (N, HW, C). Every product below is
    a batched matrix product or a broadcast over M, so map-sized results and gradients keep the
    layout of ``x`` and nothing converts between layouts. Vectors go out in ``vector_dtype``
    (float32, or float64 for float64 maps); the products run in the map's dtype.
    """

    def __init__(self, x: torch.Tensor, *, channels_last: bool | None = None):
        n, c, h, w = x.shape
        self.shape = (n, c, h, w)
        self.dtype = x.dtype
        self.vector_dtype = torch.promote_types(x.dtype, torch.float32)
        if channels_last is None:
            channels_last = not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)
        self.channels_last = channels_last
        if channels_last:
            self.m = x.permute(0, 2, 3, 1).reshape(n, h * w, c)  # a view for channels_last x
        else:
            self.m = x.reshape(n, c, h * w)

    def like(self, x: torch.Tensor) -> "_Pixels":
        """Another map of the same shape, read in this one's layout (copied there if needed)."""
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        return _Pixels(x.contiguous(memory_format=fmt), channels_last=self.channels_last)

    def to_map(self, m: torch.Tensor) -> torch.Tensor:
        """An M-shaped tensor back to (N, C, H, W), as a view."""
        n, c, h, w = self.shape
        if self.channels_last:
            return m.view(n, h, w, c).permute(0, 3, 1, 2)
        return m.view(n, c, h, w)

    # Both products put the few vectors first and read the map through a (possibly transposed)
    # view: BLAS handles a K-row left operand well in either layout, while the map-first form
    # (a matrix-vector product per sample) runs several times slower for some layouts and dtypes.
    def project(self, vectors: torch.Tensor) -> torch.Tensor:
        """Dot products of K C-vectors with every pixel: (N, K, C) -> (N, K, HW)."""
        chw = self.m.transpose(1, 2) if self.channels_last else self.m
        return _cast(torch.bmm(_cast(vectors, self.dtype), chw), self.vector_dtype)

    def pool(self, weights: torch.Tensor) -> torch.Tensor:
        """K weighted sums over pixels: (N, K, HW) -> (N, K, C)."""
        hwc = self.m if self.channels_last else self.m.transpose(1, 2)
        return _cast(torch.bmm(_cast(weights, self.dtype), hwc), self.vector_dtype)

    def channel_vector(self, v: torch.Tensor) -> torch.Tensor:
        """A per-channel (N, C) vector shaped to broadcast over M, in the map's dtype."""
        v = _cast(v, self.dtype)
        return v.unsqueeze(1) if self.channels_last else v.unsqueeze(2)

    def pixel_vector(self, v: torch.Tensor) -> torch.Tensor:
        """A per-pixel (N, HW) vector shaped to broadcast over M, in the map's dtype."""
        v = _cast(v, self.dtype)
        return v.unsqueeze(2) if self.channels_last else v.unsqueeze(1)

    def gate(self, channel: torch.Tensor, pixel: torch.Tensor, *, add: bool) -> torch.Tensor:
        """The M-shaped gate ``channel[c] + pixel[p]`` (``add``) or ``channel[c] * pixel[p]``, from
        (N, C) and (N, HW) vectors, in the map's dtype and layout."""
        if self.dtype.itemsize >= 4:
            combine = torch.add if add else torch.mul
            return combine(self.channel_vector(channel), self.pixel_vector(pixel))
        # bf16/fp16: broadcast elementwise kernels convert every element to float and back, so
        # the gate is written faster as a product with K = 2 (or 1) of [A_ch, 1] and [1, A_sp],
        # accumulated in float32 and rounded once: the same values as the broadcast sum.
        c, p = _cast(channel, self.dtype).unsqueeze(1), _cast(pixel, self.dtype).unsqueeze(1)
        if add:
            c, p = torch.cat([c, torch.ones_like(c)], dim=1), torch.cat([torch.ones_like(p), p], dim=1)
        if self.channels_last:
            return torch.bmm(p.transpose(1, 2), c)
        return torch.bmm(c.transpose(1, 2), p)

    def add_outer_(self, m: torch.Tensor, pixel_rows: torch.Tensor, channel_rows: torch.Tensor) -> None:
        """In place, M += sum_k pixel_rows[:, k] (x) channel_rows[:, k]; (N, K, HW) and (N, K, C)."""
        u, v = _cast(pixel_rows, self.dtype), _cast(channel_rows, self.dtype)
        if self.channels_last:
            m.baddbmm_(u.transpose(1, 2), v)
        else:
            m.baddbmm_(v.transpose(1, 2), u)


class _FastPsa(torch.autograd.Function):
    """PSA_p / PSA_s (paper) and PSA_p (official) on the map, with a hand-written backward.

    Forward, three reads of x before the output: r0 = W_q x_p, s = softmax_HW(r0); z = sum_p s_p x_p
    and GAP(x) in one two-row product; the C-vectors A_ch and e from (z, GAP) (:func:`_head_forward`);
    r1 = e . x_p and A_sp from it; the output x * gate, gate = A_ch + A_sp (parallel) or
    A_ch * A_sp (sequential), formed once in x's layout.

    Backward: autograd would add one map-sized gradient per use of x (four of them) and spend a
    dozen small operations per vector step. Here the gradient of x is grad * gate plus one rank-4
    product, ``[dr1, s, dr0, 1/HW] (x) [e, dz, W_q, dGAP]``, added in place; the vector steps are
    written out (:func:`_head_backward`).
    """

    @staticmethod
    def forward(ctx, x, module, names, wq, *params):
        out, saved = _fast_forward(module, x)
        ctx.module, ctx.names, ctx.params = module, names, params
        ctx.save_for_backward(x, *saved)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        x, wq_row, gate, s, a_sp, soft_r1, *head = ctx.saved_tensors
        module = ctx.module
        n, c, h, w = x.shape
        pix = _Pixels(x)
        g = pix.like(_cast(grad, x.dtype))
        dx = g.m * gate
        # d/dA_ch and d/dA_sp of sum(grad * x * gate), from grad * x.
        gx = g.m * pix.m
        a_ch = head[_HEAD_A]
        if module.layout == "parallel":
            d_ach = _cast(gx.sum(dim=1) if pix.channels_last else gx.sum(dim=2), pix.vector_dtype)
            d_asp = _cast(gx.sum(dim=2) if pix.channels_last else gx.sum(dim=1), pix.vector_dtype).unsqueeze(1)
        else:
            gxp = pix.like(pix.to_map(gx))
            d_ach = gxp.pool(a_sp)[:, 0]
            d_asp = gxp.project(a_ch.unsqueeze(1))
        dr1 = _sigmoid_backward(d_asp, a_sp)  # official: then through the softmax over HW
        if module.variant == "official":
            dr1 = _softmax_backward(dr1, soft_r1, dim=2)
        de = pix.pool(dr1)[:, 0]  # (N, C)
        dz, dgap, dparams = _head_backward(module, head, d_ach, de)
        ds = pix.project(dz.unsqueeze(1))  # (N, 1, HW): the query softmax, with ds_p = dz . x_p
        dr0 = _softmax_backward(ds, s, dim=2)
        dwq = pix.pool(dr0)[:, 0].sum(dim=0)
        pixel_rows = torch.cat([dr1, s, dr0, s.new_full(s.shape, 1.0 / (h * w))], dim=1)  # (N, 4, HW)
        channel_rows = torch.stack([head[_HEAD_E], dz, wq_row[0].expand(n, c), dgap], dim=1)  # (N, 4, C)
        pix.add_outer_(dx, pixel_rows, channel_rows)
        weight = module.conv_q_right.weight
        grads = [_cast(dparams[k].view_as(p), p.dtype) for k, p in zip(ctx.names, ctx.params)]
        return (pix.to_map(dx), None, None, _cast(dwq.view_as(weight), weight.dtype), *grads)


def _fast_forward(module: PolarizedSelfAttention, x: torch.Tensor):
    """The forward of :class:`_FastPsa` (also run alone where no gradient is needed): the output
    and the tensors its backward needs."""
    pix = _Pixels(x)
    wq_row = _cast(module._w(module.conv_q_right).detach(), pix.vector_dtype).unsqueeze(0)  # (1, 1, C)
    s, pooled = _query_pool(pix, wq_row)
    a_ch, e, head = _head_forward(module, pooled[:, 0], pooled[:, 1])
    r1 = pix.project(e.unsqueeze(1))  # (N, 1, HW)
    soft_r1 = torch.softmax(r1, dim=2) if module.variant == "official" else r1
    a_sp = torch.sigmoid(soft_r1)
    gate = pix.gate(a_ch, a_sp[:, 0], add=module.layout == "parallel")
    return pix.to_map(pix.m * gate), (wq_row, gate, s, a_sp, soft_r1, *head)


def _query_pool(pix: _Pixels, wq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The channel branch's query and both poolings, two reads of the map: s = softmax_HW(W_q x_p)
    (N, 1, HW), then z = sum_p s_p x_p and GAP(x) from one two-row product, (N, 2, C). ``wq``: the
    (1, C) or (1, 1, C) query weights."""
    n, c, h, w = pix.shape
    s = torch.softmax(pix.project(_cast(wq, pix.vector_dtype).view(1, 1, c).expand(n, 1, c)), dim=2)
    return s, pix.pool(torch.cat([s, s.new_full(s.shape, 1.0 / (h * w))], dim=1))


# Indices into the saved head tensors (see _head_forward).
_HEAD_A, _HEAD_E = 0, 1


def _head_forward(module: PolarizedSelfAttention, z: torch.Tensor, gap: torch.Tensor):
    """The C-vector part of both branches, (z, GAP(x)) -> (A_ch, e), all (N, C) in the vector dtype, plus what
    :func:`_head_backward` needs.

    A_ch = sigmoid([LN] W_z W_v z); e = W_v'^T [softmax] W_q' GAP (paper: with both). Sequential
    (paper): the spatial branch sees y = x * A_ch, so GAP(y) = A_ch * GAP(x) and
    W(y_p) = (W diag A_ch) x_p: A_ch is folded into the vectors and e = A_ch * (W_v'^T q).
    """
    wv, wz = module._w(module.conv_v_right, z.dtype), module._w(module.conv_up, z.dtype)
    wq2, wv2 = module._w(module.conv_q_left, z.dtype), module._w(module.conv_v_left, z.dtype)
    v = z @ wv.t()
    u = v @ wz.t()
    if module.variant == "paper":
        # One kernel for the LayerNorm; its mean and 1/std give the normalised values in backward.
        # The shape from the module, not from u: the ONNX exporter cannot take a traced size there.
        norm = module.norm_up
        ln, mean, rstd = torch.native_layer_norm(u, norm.normalized_shape, _cast(norm.weight, u.dtype),
                                                 _cast(norm.bias, u.dtype), norm.eps)
        a_ch = torch.sigmoid(ln)
    else:
        mean = rstd = u.new_empty(0)
        a_ch = torch.sigmoid(u)
    m = gap if module.layout == "parallel" else gap * a_ch
    q = m @ wq2.t()
    pi = torch.softmax(q, dim=1) if module.variant == "paper" else q
    e0 = pi @ wv2
    e = e0 if module.layout == "parallel" else e0 * a_ch
    return a_ch, e, (a_ch, e, z, gap, v, u, mean, rstd, m, pi, e0)


# The kernels autograd itself runs for these steps: one call each instead of three or four.
def _sigmoid_backward(grad: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """d/dx of ``out = sigmoid(x)``: grad * out * (1 - out)."""
    return torch.ops.aten.sigmoid_backward(grad, out)


def _softmax_backward(grad: torch.Tensor, out: torch.Tensor, *, dim: int) -> torch.Tensor:
    """d/dx of ``out = softmax(x, dim)``: out * (grad - sum(out * grad, dim))."""
    return torch.ops.aten._softmax_backward_data(grad, out, dim, out.dtype)


def _head_backward(module: PolarizedSelfAttention, head, d_ach: torch.Tensor, de: torch.Tensor):
    """Gradients of :func:`_head_forward`: (dz, dGAP, {parameter name: gradient})."""
    a_ch, _, z, gap, v, u, mean, rstd, m, pi, e0 = head
    wv, wz = module._w(module.conv_v_right, z.dtype), module._w(module.conv_up, z.dtype)
    wq2, wv2 = module._w(module.conv_q_left, z.dtype), module._w(module.conv_v_left, z.dtype)
    grads = {}
    if module.layout == "sequential":
        d_ach = d_ach + de * e0
        de = de * a_ch
    grads["conv_v_left.weight"] = pi.t() @ de
    dpi = de @ wv2.t()
    dq = _softmax_backward(dpi, pi, dim=1) if module.variant == "paper" else dpi
    grads["conv_q_left.weight"] = dq.t() @ m
    dm = dq @ wq2
    if module.layout == "sequential":
        d_ach = d_ach + dm * gap
        dm = dm * a_ch
    dl = _sigmoid_backward(d_ach, a_ch)
    if module.variant == "paper":
        norm = module.norm_up
        du, grads["norm_up.weight"], grads["norm_up.bias"] = torch.ops.aten.native_layer_norm_backward(
            dl, u, norm.normalized_shape, mean, rstd, _cast(norm.weight, u.dtype), _cast(norm.bias, u.dtype),
            [True, True, True])
    else:
        du = dl
    grads["conv_up.weight"] = du.t() @ v
    dv = du @ wz
    grads["conv_v_right.weight"] = dv.t() @ z
    return dv @ wv, dm, grads

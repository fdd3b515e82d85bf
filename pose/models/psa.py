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

``reference=True`` (or :meth:`forward_reference`) runs the straightforward convolution form; the
tests check both agree within 1e-5, and ``benchmarks/bench_models.py`` times both.
"""

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
    def _w(self, conv: nn.Conv2d) -> torch.Tensor:
        """A 1x1 conv's weight as a (out, in) matrix."""
        return conv.weight.view(conv.weight.shape[0], conv.weight.shape[1])

    def _channel_logits(self, z: torch.Tensor) -> torch.Tensor:
        """W_z (and its norm) on the pooled value vector. z: (N, C/2) -> (N, C), before the sigmoid."""
        if isinstance(self.conv_up, nn.Sequential):  # official PSA_s bottleneck
            conv_a, norm, _, conv_b = self.conv_up
            u = F.linear(z, self._w(conv_a), conv_a.bias)
            u = F.layer_norm(u, (conv_a.out_channels,), norm.weight.view(-1), norm.bias.view(-1), norm.eps)
            return F.linear(F.relu(u), self._w(conv_b), conv_b.bias)
        u = F.linear(z, self._w(self.conv_up))
        if self.variant == "paper":
            u = self.norm_up(u)
        return u

    def _spatial_vector(self, mean: torch.Tensor) -> torch.Tensor:
        """The spatial branch's effective C-vector: ``W_v'^T q`` with q = [softmax] W_q' GAP. (N, C)."""
        query = F.linear(mean, self._w(self.conv_q_left))  # (N, C/2)
        if self.variant == "paper":
            query = torch.softmax(query, dim=1)
        return torch.matmul(query, self._w(self.conv_v_left))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.reference:
            return self.forward_reference(x)
        n, c, h, w = x.shape
        xf = x.reshape(n, c, h * w)
        if self.layout == "parallel":
            # Three reads of the map before the output: GAP; one GEMM for two per-pixel rows (W_q x
            # and the spatial logits, the effective C-vector dotted with every pixel); the
            # softmax-weighted sum z (x transposed as a view: BLAS reads it in place).
            mean = xf.mean(dim=2)  # (N, C)
            wq = self._w(self.conv_q_right)[0].expand(n, c)
            rows = torch.bmm(torch.stack([wq, self._spatial_vector(mean)], dim=1), xf)  # (N, 2, HW)
            z = torch.bmm(torch.softmax(rows[:, :1], dim=2), xf.transpose(1, 2))[:, 0]  # (N, C)
            a_ch = torch.sigmoid(self._channel_logits(F.linear(z, self._w(self.conv_v_right))))
            sp_logits = rows[:, 1:]
            if self.variant == "official":
                sp_logits = torch.softmax(sp_logits, dim=2)
            return x * (a_ch.view(n, c, 1, 1) + torch.sigmoid(sp_logits).view(n, 1, h, w))
        # The same three reads in another order: W_q x; z and GAP from one two-column GEMM; the
        # spatial logits.
        s = torch.softmax(torch.matmul(self._w(self.conv_q_right), xf), dim=2)  # (N, 1, HW)
        uniform = s.new_full(s.shape, 1.0 / (h * w))
        pooled = torch.bmm(torch.cat([s, uniform], dim=1), xf.transpose(1, 2))  # (N, 2, C): z, GAP
        a_ch = torch.sigmoid(self._channel_logits(F.linear(pooled[:, 0], self._w(self.conv_v_right))))
        # Sequential: the spatial branch sees y = x * A_ch, so GAP(y) = A_ch * GAP(x) and
        # W(y_p) = (W diag A_ch) x_p: A_ch is folded into vectors/weights, y is never formed.
        mean = pooled[:, 1] * a_ch
        if self.variant == "official":
            # softmax over HW per channel of W_v' y does not commute with W_v': one real product.
            wv = self._w(self.conv_v_left).unsqueeze(0) * a_ch.unsqueeze(1)  # (N, C/2, C)
            theta = torch.softmax(torch.bmm(wv, xf), dim=2)  # (N, C/2, HW)
            sp_logits = torch.bmm(F.linear(mean, self._w(self.conv_q_left)).unsqueeze(1), theta)
        else:
            sp_logits = torch.bmm((self._spatial_vector(mean) * a_ch).unsqueeze(1), xf)  # (N, 1, HW)
        out = x * a_ch.view(n, c, 1, 1)
        return out.mul_(torch.sigmoid(sp_logits).view(n, 1, h, w))

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
        vec = ic * c + c * ic + (c * c // 8 if isinstance(self.conv_up, nn.Sequential) else 0) + ic * c * 2
        if self.reference:
            maps = c * p + ic * c * p * 3 + ic * p * 2  # q, v, q', v' convs; two weighted sums
        else:
            maps = c * p * 4  # q row, the two pooled columns, the spatial dot product
            if (self.variant, self.layout) == ("official", "sequential"):
                maps += ic * c * p + ic * p
        return n * (maps + vec)


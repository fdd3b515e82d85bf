"""Heatmap codecs: one object per encoding makes training targets and decodes predictions.

- ``gaussian`` (MSRA, the official HRNet / SimpleBaseline targets): a peak-1 Gaussian at the
  joint rounded to the nearest heatmap pixel, stride ``input_size / heatmap_size``; decoded by
  argmax plus the official quarter-pixel step towards the higher neighbour, or DARK (Zhang et al.
  2020: Taylor expansion of the log of the blurred heatmap).
- ``dark``: the Gaussian codec with DARK's unbiased encoding (the Gaussian at the exact sub-pixel
  joint) and DARK decoding by default.
- ``udp`` (Huang et al. 2020, unbiased data processing): sizes counted in pixel intervals
  (``size - 1``), Gaussian at the exact sub-pixel joint position, crop in UDP's transform
  convention; decoded by argmax plus UDP's refinement (a Newton step on the log of the blurred
  heatmap with one-pixel finite differences, as mmpose's ``post_dark_udp``).

Frames: ``encode`` takes joints in *crop* px (network input), ``decode`` returns *heatmap* px,
``to_image`` maps heatmap px to *image* px through the inverse crop (rotation 0).
"""

import functools
import math
from collections.abc import Sequence

import cv2
import numpy as np
import torch

from pose.config import configured_keypoint_set
from pose.data.transforms import get_affine_transform, get_udp_warp_matrix
from pose.keypoints import KeypointSet

REFINES = ("default", "dark", "none")


def dark_blur_kernel(sigma: float) -> int:
    """DARK's blur kernel size for a target sigma: 11 for sigma 2, 17 for sigma 3 (6 sigma - 1, odd)."""
    k = max(3, int(round(6 * sigma - 1)))
    return k if k % 2 else k + 1


def _gaussian_blur(heatmaps: np.ndarray, kernel: int, border: str) -> np.ndarray:
    """Separable Gaussian blur of (M, h, w) float64 maps with cv2's kernel for ``(kernel, kernel), 0``.

    ``border='zero'`` pads with zeros (DARK pads each map with zeros before blurring);
    ``border='reflect101'`` is cv2's default border (UDP blurs in place with it).
    """
    g = cv2.getGaussianKernel(kernel, 0).ravel()
    r = kernel // 2
    mode = "constant" if border == "zero" else "reflect"  # numpy's 'reflect' is cv2's REFLECT_101
    _, h, w = heatmaps.shape
    pad_h = np.pad(heatmaps, ((0, 0), (0, 0), (r, r)), mode=mode)
    out = sum(g[i] * pad_h[:, :, i:i + w] for i in range(kernel))
    pad_v = np.pad(out, ((0, 0), (r, r), (0, 0)), mode=mode)
    return sum(g[i] * pad_v[:, i:i + h, :] for i in range(kernel))


def argmax_heatmaps(heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Argmax of (N, K, h, w) heatmaps -> (flat index ``y * w + x`` (N, K) int, maxvals (N, K) float32).

    The index is 0 where the maximum is <= 0 (the official code zeroes those coordinates). The
    argmax is the one pass over the maps; the rest works on (N, K) arrays with a few numpy calls
    per batch, which is what decoding costs at val2017 scale (``benchmarks/bench_eval.py``).
    """
    n, k, h, w = heatmaps.shape
    flat = heatmaps.reshape(n * k, h * w)
    idx = flat.argmax(axis=1)
    maxvals = flat.ravel()[_row_starts(n * k, h * w) + idx].astype(np.float32, copy=False)
    idx *= maxvals > 0
    return idx.reshape(n, k), maxvals.reshape(n, k)


@functools.lru_cache(maxsize=8)
def _row_starts(rows: int, row_size: int) -> np.ndarray:
    """Flat offsets of the rows of a (rows, row_size) array (cached: one per batch shape)."""
    return np.arange(0, rows * row_size, row_size)


def index_to_coords(idx: np.ndarray, w: int) -> np.ndarray:
    """Flat heatmap indices (N, K) -> (N, K, 2) float32 ``(x, y)``."""
    coords = np.empty((*idx.shape, 2), np.float32)
    coords[..., 1], coords[..., 0] = np.divmod(idx, w)
    return coords


def _gather(maps: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """maps (N, K, h, w) at integer (ys, xs) of shape (N, K) (clipped into range)."""
    _, _, h, w = maps.shape
    ys = np.clip(ys, 0, h - 1)
    xs = np.clip(xs, 0, w - 1)
    return np.take_along_axis(maps.reshape(*maps.shape[:2], h * w), (ys * w + xs)[..., None], axis=2)[..., 0]


@functools.lru_cache(maxsize=8)
def _quarter_neighbours(h: int, w: int) -> np.ndarray:
    """(h * w, 4): for each flat index of an (h, w) map, the flat indices of its right, left, lower
    and upper neighbours where ``1 < x < w-1`` and ``1 < y < h-1``; elsewhere the pixel itself four
    times, so that both differences are 0 and no step is taken."""
    i = np.arange(h * w)
    y, x = np.divmod(i, w)
    inside = (x > 1) & (x < w - 1) & (y > 1) & (y < h - 1)
    return i[:, None] + inside[:, None] * np.array([1, -1, w, -w])


def quarter_step(heatmaps: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """The official quarter-pixel step at flat indices ``idx`` (N, K) of (N, K, h, w) heatmaps ->
    (N, K, 2) float32: +-0.25 towards the higher neighbour on each axis, 0 on ties and where not
    ``1 < x < w-1`` and ``1 < y < h-1``."""
    n, k, h, w = heatmaps.shape
    rows = _row_starts(n * k, h * w).reshape(n, k, 1)
    neighbours = heatmaps.reshape(-1)[_quarter_neighbours(h, w)[idx] + rows]
    step = np.sign(neighbours[..., 0::2] - neighbours[..., 1::2]).astype(np.float32, copy=False)
    step *= np.float32(0.25)
    return step


def refine_dark(coords: np.ndarray, heatmaps: np.ndarray, kernel: int) -> np.ndarray:
    """DARK (Zhang et al. 2020) on (N, K, h, w) heatmaps, vectorised.

    Each map is blurred (zero padding, ``kernel`` as cv2's Gaussian), rescaled to its original
    maximum, floored at 1e-10 and logged; at the integer argmax (where ``1 < x < w-2`` and
    ``1 < y < h-2``) a Newton step ``-H^-1 g`` with central differences (two-pixel second
    differences) is added when the Hessian is not singular.
    """
    n, k, h, w = heatmaps.shape
    maps = heatmaps.reshape(n * k, h, w).astype(np.float64)
    blurred = _gaussian_blur(maps, kernel, border="zero")
    origin_max = maps.max(axis=(1, 2))
    new_max = blurred.max(axis=(1, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where(new_max != 0, origin_max / new_max, 0.0)
    blurred *= factor[:, None, None]
    logs = np.log(np.maximum(blurred, 1e-10)).reshape(n, k, h, w)
    px = coords[..., 0].astype(np.int64)
    py = coords[..., 1].astype(np.int64)
    valid = (px > 1) & (px < w - 2) & (py > 1) & (py < h - 2)

    def at(dy: int, dx: int) -> np.ndarray:
        return _gather(logs, py + dy, px + dx)

    center = at(0, 0)
    dx = 0.5 * (at(0, 1) - at(0, -1))
    dy = 0.5 * (at(1, 0) - at(-1, 0))
    dxx = 0.25 * (at(0, 2) - 2 * center + at(0, -2))
    dxy = 0.25 * (at(1, 1) - at(-1, 1) - at(1, -1) + at(-1, -1))
    dyy = 0.25 * (at(2, 0) - 2 * center + at(-2, 0))
    det = dxx * dyy - dxy ** 2
    ok = valid & (det != 0)
    safe = np.where(ok, det, 1.0)
    off_x = -(dyy * dx - dxy * dy) / safe
    off_y = -(-dxy * dx + dxx * dy) / safe
    out = coords.astype(np.float64).copy()
    out[..., 0] += np.where(ok, off_x, 0.0)
    out[..., 1] += np.where(ok, off_y, 0.0)
    return out.astype(np.float32)


def refine_udp(coords: np.ndarray, heatmaps: np.ndarray, kernel: int) -> np.ndarray:
    """UDP's refinement (mmpose ``post_dark_udp``) on (N, K, h, w) heatmaps, vectorised.

    Maps are blurred with cv2's default border (no rescaling), clipped to [0.001, 50] and logged,
    edge-padded by one pixel; at the integer argmax the step ``-(H + eps I)^-1 g`` with one-pixel
    central differences is applied to every joint.
    """
    n, k, h, w = heatmaps.shape
    maps = heatmaps.reshape(n * k, h, w).astype(np.float32).astype(np.float64)
    blurred = _gaussian_blur(maps, kernel, border="reflect101")
    logs = np.log(np.clip(blurred, 0.001, 50)).reshape(n, k, h, w)
    logs = np.pad(logs, ((0, 0), (0, 0), (1, 1), (1, 1)), mode="edge")
    px = coords[..., 0].astype(np.int64) + 1
    py = coords[..., 1].astype(np.int64) + 1

    def at(dy: int, dx: int) -> np.ndarray:
        return _gather(logs, py + dy, px + dx)

    i0 = at(0, 0)
    ix1, ix1_ = at(0, 1), at(0, -1)
    iy1, iy1_ = at(1, 0), at(-1, 0)
    dx = 0.5 * (ix1 - ix1_)
    dy = 0.5 * (iy1 - iy1_)
    dxx = ix1 - 2 * i0 + ix1_
    dyy = iy1 - 2 * i0 + iy1_
    dxy = 0.5 * (at(1, 1) - ix1 - iy1 + 2 * i0 - ix1_ - iy1_ + at(-1, -1))
    eps = float(np.finfo(np.float32).eps)
    a, d = dxx + eps, dyy + eps
    det = a * d - dxy * dxy
    with np.errstate(divide="ignore", invalid="ignore"):
        off_x = (d * dx - dxy * dy) / det
        off_y = (-dxy * dx + a * dy) / det
    out = coords.astype(np.float64) - np.stack([off_x, off_y], axis=-1)
    return out.astype(np.float32)


def _as_numpy(heatmaps) -> np.ndarray:
    if isinstance(heatmaps, torch.Tensor):
        heatmaps = heatmaps.detach().cpu().float().numpy()
    heatmaps = np.asarray(heatmaps)
    if heatmaps.ndim != 4:
        raise ValueError(f"heatmaps must be (N, K, h, w), got shape {heatmaps.shape}")
    if heatmaps.dtype.kind not in "fiub":
        raise ValueError(f"heatmaps must be real numbers, got dtype {heatmaps.dtype}")
    if heatmaps.dtype.kind != "f":
        heatmaps = heatmaps.astype(np.float32)
    return heatmaps


def _check_finite(heatmaps: np.ndarray, maxvals: np.ndarray) -> None:
    """A NaN network output has no peak to read: say so rather than decode it to arbitrary points.

    Checked on the maxima (argmax lands on a NaN or +inf when a map holds one), so the hot path
    costs no extra pass over the heatmaps; the full count is taken only for the message."""
    if math.isfinite(maxvals.sum(dtype=np.float64)):  # a float64 sum of float32 values cannot overflow
        return
    bad = ~np.isfinite(heatmaps)
    maps = int(bad.any(axis=(2, 3)).sum())
    raise ValueError(f"heatmaps have {int(bad.sum())} NaN or infinite values (in {maps} of "
                     f"{heatmaps.shape[0] * heatmaps.shape[1]} maps); the network output is not finite")


class HeatmapCodec:
    """Common part of the codecs. Sizes are (width, height); see the module docstring for frames.

    Args:
        input_size: network input (width, height) px.
        heatmap_size: network output (width, height) px.
        sigma: Gaussian sigma in heatmap px.
        flip_index: joint k becomes flip_index[k] under a horizontal flip (the keypoint set's
            ``KeypointSet.flip_index``). None: not known yet; a dataset sets it from its set
            (:meth:`set_flip_index`), and :meth:`flip_back` refuses to run without it.
        blur_kernel: blur kernel of DARK / UDP refinement (default: 6 sigma - 1, odd).
        pixel_std: unit of ``scale`` in image px (official 200).
    """

    name = ""
    shift_on_flip = False
    isotropic_crop = False

    def __init__(self, *, input_size: Sequence[int], heatmap_size: Sequence[int], sigma: float,
                 flip_index: Sequence[int] | None = None, blur_kernel: int | None = None,
                 pixel_std: float = 200.0) -> None:
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.heatmap_size = (int(heatmap_size[0]), int(heatmap_size[1]))
        if min(self.input_size) < 2 or min(self.heatmap_size) < 2:
            raise ValueError(f"input_size {self.input_size} and heatmap_size {self.heatmap_size} "
                             "must be at least 2 px each way")
        if not sigma > 0:
            raise ValueError(f"sigma must be > 0, got {sigma}")
        self.sigma = float(sigma)
        self.flip_index = None if flip_index is None else tuple(int(k) for k in flip_index)
        self.blur_kernel = int(blur_kernel) if blur_kernel is not None else dark_blur_kernel(self.sigma)
        if self.blur_kernel < 1 or self.blur_kernel % 2 == 0:
            raise ValueError(f"blur_kernel must be odd and positive, got {self.blur_kernel}")
        self.pixel_std = float(pixel_std)

    def set_flip_index(self, flip_index: Sequence[int]) -> None:
        """Give the codec its keypoint set's flip index, once: a different one later is an error."""
        flip_index = tuple(int(k) for k in flip_index)
        if self.flip_index is not None and self.flip_index != flip_index:
            raise ValueError(f"codec flip_index {self.flip_index} differs from the keypoint set's {flip_index}")
        self.flip_index = flip_index

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(input_size={self.input_size}, heatmap_size={self.heatmap_size}, "
                f"sigma={self.sigma})")

    # --- to be provided by the subclasses -------------------------------------------------------
    def crop_matrix(self, center: np.ndarray, scale: np.ndarray, rot_deg: float,
                    inv: bool = False) -> np.ndarray:
        """(2, 3) float64: image px -> input-crop px in this codec's convention (``inv``: crop -> image)."""
        raise NotImplementedError

    def _stride(self) -> np.ndarray:
        raise NotImplementedError

    def _heatmap_extent(self) -> np.ndarray:
        """Heatmap size in the units ``to_image`` divides by (w, h or w-1, h-1)."""
        raise NotImplementedError

    def _refine_default(self, coords: np.ndarray, heatmaps: np.ndarray, idx: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _centers(self, mu_round: np.ndarray, mu_exact: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    # --- shared ---------------------------------------------------------------------------------
    def encode(self, joints: np.ndarray, visible: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Targets for joints (K, 2) crop px with visibility (K,) 0/1.

        Returns ``(heatmaps (K, h, w) float32, weights (K,) float32)``. The Gaussian window is
        ``[mu - 3 sigma, mu + 3 sigma + 1)`` around ``mu = int(joint / stride + 0.5)`` (truncated as
        the official ``int``); a joint whose window lies entirely outside the heatmap gets weight 0
        (official test: ``ul >= size`` or ``br < 0``), a labelled joint partly outside keeps weight 1.
        A joint with a NaN or infinite coordinate, or a NaN visibility, is treated as unlabelled
        (weight 0, empty heatmap).
        """
        joints = np.asarray(joints, dtype=np.float64)
        if joints.ndim != 2 or joints.shape[1] < 2:
            raise ValueError(f"encode: joints must be (K, 2) crop px, got shape {joints.shape}")
        joints = joints[:, :2]
        weights = (np.asarray(visible, dtype=np.float32).reshape(-1) > 0).astype(np.float32)
        if len(joints) != len(weights):
            raise ValueError(f"encode: {len(joints)} joints but {len(weights)} visibility flags")
        weights[~np.isfinite(joints).all(axis=1)] = 0.0
        w, h = self.heatmap_size
        tmp = self.sigma * 3
        mu_exact = joints / self._stride()
        mu = np.trunc(mu_exact + 0.5)
        ul = np.trunc(mu - tmp)
        br = np.trunc(mu + tmp + 1)
        outside = (ul[:, 0] >= w) | (ul[:, 1] >= h) | (br[:, 0] < 0) | (br[:, 1] < 0)
        weights[outside] = 0.0
        centers = self._centers(mu, mu_exact)
        xs = np.arange(w, dtype=np.float64)
        ys = np.arange(h, dtype=np.float64)
        in_x = (xs[None] >= ul[:, :1]) & (xs[None] < br[:, :1])
        in_y = (ys[None] >= ul[:, 1:]) & (ys[None] < br[:, 1:])
        two_s2 = 2 * self.sigma ** 2
        gx = np.where(in_x, np.exp(-(xs[None] - centers[:, :1]) ** 2 / two_s2), 0.0)
        gy = np.where(in_y, np.exp(-(ys[None] - centers[:, 1:]) ** 2 / two_s2), 0.0)
        gy *= (weights > 0.5)[:, None]
        heatmaps = (gy[:, :, None] * gx[:, None, :]).astype(np.float32)
        return heatmaps, weights

    def decode(self, heatmaps: np.ndarray, refine: str = "default") -> tuple[np.ndarray, np.ndarray]:
        """Heatmaps (N, K, h, w) -> ``(coords (N, K, 2) float32 heatmap px, maxvals (N, K) float32)``.

        ``refine``: 'default' (the codec's own sub-pixel step), 'dark' (DARK Taylor expansion) or
        'none' (integer argmax). Coordinates are zeroed where the maximum is <= 0 (before refining).
        Raises ValueError for another shape, or for heatmaps holding NaN or +inf values.
        """
        if refine not in REFINES:
            raise ValueError(f"unknown refine {refine!r}; valid: {', '.join(REFINES)}")
        heatmaps = np.ascontiguousarray(_as_numpy(heatmaps))
        idx, maxvals = argmax_heatmaps(heatmaps)
        _check_finite(heatmaps, maxvals)
        coords = index_to_coords(idx, heatmaps.shape[3])
        if refine == "default":
            coords = self._refine_default(coords, heatmaps, idx)
        elif refine == "dark":
            coords = refine_dark(coords, heatmaps, self.blur_kernel)
        return coords, maxvals

    def to_image(self, coords: np.ndarray, centers: np.ndarray, scales: np.ndarray) -> np.ndarray:
        """Heatmap px (N, K, 2) -> image px (N, K, 2) float32 for crops ``centers`` (N, 2), ``scales`` (N, 2).

        The inverse of the crop at rotation 0: for gaussian the official inverse
        ``get_affine_transform`` at the heatmap size (isotropic, from ``scale[0]``); for udp UDP's
        per-axis ``scale * pixel_std / (heatmap_size - 1)``.
        """
        coords = np.asarray(coords, dtype=np.float64)
        centers = np.asarray(centers, dtype=np.float64)
        scales = np.asarray(scales, dtype=np.float64)
        n = len(coords) if coords.ndim == 3 else -1
        if coords.ndim != 3 or coords.shape[2] != 2 or centers.shape != (n, 2) or scales.shape != (n, 2):
            raise ValueError(f"to_image: expected coords (N, K, 2), centers (N, 2), scales (N, 2); got "
                             f"{coords.shape}, {centers.shape}, {scales.shape}")
        extent = self._heatmap_extent()
        factor = scales * self.pixel_std / extent
        if self.isotropic_crop:  # the official crop uses scale[0] for both axes
            factor[:, 1] = factor[:, 0]
        out = coords - extent * 0.5
        out *= factor[:, None]
        out += centers[:, None]
        return out.astype(np.float32)

    def flip_back(self, flipped_heatmaps: torch.Tensor, shift: bool) -> torch.Tensor:
        """Heatmaps (N, K, h, w) of mirrored inputs -> heatmaps in the unmirrored frame.

        Mirrors the width, swaps left/right joints and, for gaussian only, when ``shift``, moves
        the maps one pixel right (official; UDP needs no shift and ignores it). Averaging with the
        unflipped output is the caller's job.
        """
        if self.flip_index is None:
            raise ValueError("flip_back: the codec has no flip_index; build it with the keypoint set's "
                             "(flip_index=kset.flip_index)")
        if flipped_heatmaps.ndim != 4 or flipped_heatmaps.shape[1] != len(self.flip_index):
            raise ValueError(f"flip_back: expected (N, {len(self.flip_index)}, h, w) heatmaps, "
                             f"got {tuple(flipped_heatmaps.shape)}")
        index = torch.as_tensor(self.flip_index, device=flipped_heatmaps.device)
        out = flipped_heatmaps.flip(3).index_select(1, index)
        if shift and self.shift_on_flip:
            out = torch.cat([out[..., :1], out[..., :-1]], dim=3)
        return out


class GaussianCodec(HeatmapCodec):
    """MSRA Gaussian targets (official). ``unbiased_encoding=True`` centres the Gaussian at the
    exact sub-pixel joint (DARK's encoding) instead of the rounded pixel."""

    name = "gaussian"
    shift_on_flip = True
    isotropic_crop = True

    def __init__(self, *, unbiased_encoding: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.unbiased_encoding = bool(unbiased_encoding)

    def crop_matrix(self, center, scale, rot_deg, inv=False):
        return get_affine_transform(center, scale, rot_deg, self.input_size, inv=inv,
                                    pixel_std=self.pixel_std)

    def _stride(self):
        return np.array(self.input_size, np.float64) / np.array(self.heatmap_size, np.float64)

    def _heatmap_extent(self):
        return np.array(self.heatmap_size, np.float64)

    def _centers(self, mu_round, mu_exact):
        return mu_exact if self.unbiased_encoding else mu_round

    def _refine_default(self, coords, heatmaps, idx):
        return coords + quarter_step(heatmaps, idx)


class DarkCodec(GaussianCodec):
    """DARK (Zhang et al. 2020) as a whole: the Gaussian codec with unbiased encoding (the target
    centred at the exact sub-pixel joint) and DARK's Taylor-expansion decoding by default."""

    name = "dark"

    def __init__(self, **kwargs) -> None:
        super().__init__(unbiased_encoding=True, **kwargs)

    def _refine_default(self, coords, heatmaps, idx):
        return refine_dark(coords, heatmaps, self.blur_kernel)


class UdpCodec(HeatmapCodec):
    """UDP: stride ``(input - 1) / (heatmap - 1)``, Gaussian at the exact joint, UDP crop and decoding."""

    name = "udp"
    shift_on_flip = False

    def crop_matrix(self, center, scale, rot_deg, inv=False):
        return get_udp_warp_matrix(center, scale, rot_deg, self.input_size, inv=inv,
                                   pixel_std=self.pixel_std)

    def _stride(self):
        return (np.array(self.input_size, np.float64) - 1.0) / (np.array(self.heatmap_size, np.float64) - 1.0)

    def _heatmap_extent(self):
        return np.array(self.heatmap_size, np.float64) - 1.0

    def _centers(self, mu_round, mu_exact):
        return mu_exact

    def _refine_default(self, coords, heatmaps, idx):
        return refine_udp(coords, heatmaps, self.blur_kernel)


CODECS = {"gaussian": GaussianCodec, "dark": DarkCodec, "udp": UdpCodec}


def build_codec(name: str, *, input_size: Sequence[int], heatmap_size: Sequence[int], sigma: float,
                **kwargs) -> HeatmapCodec:
    """Codec by name ('gaussian' or 'udp'); extra keyword arguments go to the codec class."""
    if name not in CODECS:
        raise ValueError(f"unknown codec {name!r}; valid: {', '.join(CODECS)}")
    return CODECS[name](input_size=input_size, heatmap_size=heatmap_size, sigma=sigma, **kwargs)


def build_codec_from_config(cfg, keypoints: KeypointSet | None = None) -> HeatmapCodec:
    """Codec of ``cfg.data`` (codec, input_size, heatmap_size, sigma, pixel_std).

    The flip index is ``keypoints``' or, when None, that of ``cfg.data.keypoints`` if the config
    names a set (:func:`pose.config.configured_keypoint_set`); otherwise it stays unset until a
    dataset gives it (``set_flip_index``).
    """
    kset = keypoints if keypoints is not None else configured_keypoint_set(cfg)
    flip_index = kset.flip_index if kset is not None else None
    return build_codec(cfg.data.codec, input_size=cfg.data.input_size, heatmap_size=cfg.data.heatmap_size,
                       sigma=cfg.data.sigma, flip_index=flip_index, pixel_std=cfg.data.pixel_std)

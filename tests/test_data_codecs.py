"""Heatmap codecs: round trips, agreement with per-joint reference loops, flip test, image mapping."""

import math

import cv2
import numpy as np
import pytest
import torch

from pose.config import Config, apply_overrides
from pose.data import transforms as T
from pose.data.codecs import build_codec, build_codec_from_config, dark_blur_kernel
from pose.keypoints import COCO17

IN, HM = (192, 256), (48, 64)


def codec(name, **kw):
    kw.setdefault("flip_index", COCO17.flip_index)
    return build_codec(name, input_size=IN, heatmap_size=HM, sigma=2.0, **kw)


def interior_joints(rng, n, margin_hm=6.0):
    """(n, 2) crop px whose heatmap position is at least margin_hm px inside the heatmap."""
    stride = np.array(IN) / np.array(HM)
    lo, hi = margin_hm * stride, (np.array(HM) - 1 - margin_hm) * stride
    return rng.uniform(lo, hi, size=(n, 2))


# --- per-joint reference loops written from the official semantics ------------------------------

def reference_target(joints, vis, sigma, stride, size, exact_center):
    w, h = size
    tmp = sigma * 3
    target = np.zeros((len(joints), h, w), np.float32)
    weight = np.array(vis, np.float32)
    for k, (x, y) in enumerate(joints):
        mu_x, mu_y = int(x / stride[0] + 0.5), int(y / stride[1] + 0.5)
        ul = [int(mu_x - tmp), int(mu_y - tmp)]
        br = [int(mu_x + tmp + 1), int(mu_y + tmp + 1)]
        if ul[0] >= w or ul[1] >= h or br[0] < 0 or br[1] < 0:
            weight[k] = 0
            continue
        cx, cy = (x / stride[0], y / stride[1]) if exact_center else (mu_x, mu_y)
        if weight[k] > 0.5:
            for yy in range(max(0, ul[1]), min(br[1], h)):
                for xx in range(max(0, ul[0]), min(br[0], w)):
                    target[k, yy, xx] = math.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma ** 2))
    return target, weight


def reference_quarter(heatmaps):
    n, k, h, w = heatmaps.shape
    coords = np.zeros((n, k, 2), np.float32)
    for i in range(n):
        for j in range(k):
            hm = heatmaps[i, j]
            idx = int(hm.argmax())
            x, y = (idx % w, idx // w) if hm.max() > 0 else (0, 0)
            coords[i, j] = x, y
            if 1 < x < w - 1 and 1 < y < h - 1:
                coords[i, j] += np.sign([hm[y, x + 1] - hm[y, x - 1], hm[y + 1, x] - hm[y - 1, x]]) * 0.25
    return coords


def reference_dark(heatmaps, kernel):
    n, k, h, w = heatmaps.shape
    coords = np.zeros((n, k, 2))
    b = (kernel - 1) // 2
    for i in range(n):
        for j in range(k):
            hm = heatmaps[i, j].astype(np.float64)
            idx = int(hm.argmax())
            x, y = (idx % w, idx // w) if hm.max() > 0 else (0, 0)
            padded = np.zeros((h + 2 * b, w + 2 * b))
            padded[b:-b, b:-b] = hm
            blurred = cv2.GaussianBlur(padded, (kernel, kernel), 0)[b:-b, b:-b]
            blurred *= hm.max() / blurred.max()
            lg = np.log(np.maximum(blurred, 1e-10))
            coords[i, j] = x, y
            if 1 < x < w - 2 and 1 < y < h - 2:
                dx = 0.5 * (lg[y, x + 1] - lg[y, x - 1])
                dy = 0.5 * (lg[y + 1, x] - lg[y - 1, x])
                dxx = 0.25 * (lg[y, x + 2] - 2 * lg[y, x] + lg[y, x - 2])
                dxy = 0.25 * (lg[y + 1, x + 1] - lg[y - 1, x + 1] - lg[y + 1, x - 1] + lg[y - 1, x - 1])
                dyy = 0.25 * (lg[y + 2, x] - 2 * lg[y, x] + lg[y - 2, x])
                hess = np.array([[dxx, dxy], [dxy, dyy]])
                if np.linalg.det(hess) != 0:
                    coords[i, j] -= np.linalg.inv(hess) @ np.array([dx, dy])
    return coords


def reference_udp(heatmaps, kernel):
    n, k, h, w = heatmaps.shape
    coords = np.zeros((n, k, 2))
    for i in range(n):
        for j in range(k):
            hm = heatmaps[i, j].astype(np.float64)
            idx = int(hm.argmax())
            x, y = (idx % w, idx // w) if hm.max() > 0 else (0, 0)
            lg = np.pad(np.log(np.clip(cv2.GaussianBlur(hm, (kernel, kernel), 0), 0.001, 50)), 1, mode="edge")
            px, py = x + 1, y + 1
            dx = 0.5 * (lg[py, px + 1] - lg[py, px - 1])
            dy = 0.5 * (lg[py + 1, px] - lg[py - 1, px])
            dxx = lg[py, px + 1] - 2 * lg[py, px] + lg[py, px - 1]
            dyy = lg[py + 1, px] - 2 * lg[py, px] + lg[py - 1, px]
            dxy = 0.5 * (lg[py + 1, px + 1] - lg[py, px + 1] - lg[py + 1, px] + 2 * lg[py, px]
                         - lg[py, px - 1] - lg[py - 1, px] + lg[py - 1, px - 1])
            hess = np.array([[dxx, dxy], [dxy, dyy]]) + np.finfo(np.float32).eps * np.eye(2)
            coords[i, j] = np.array([x, y]) - np.linalg.inv(hess) @ np.array([dx, dy])
    return coords


# --- tests ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, refine, kw, max_err, mean_err", [
    ("gaussian", "default", {}, 0.5 + 1e-6, 0.35),  # rounding to the pixel is the encoding's bias
    ("gaussian", "dark", {}, 0.5 + 1e-6, 0.35),
    ("gaussian", "dark", {"unbiased_encoding": True}, 0.05, 0.01),
    ("udp", "default", {}, 0.05, 0.01),
    ("udp", "dark", {}, 0.1, 0.02),
])
def test_encode_decode_round_trip(name, refine, kw, max_err, mean_err):
    rng = np.random.default_rng(0)
    c = codec(name, **kw)
    joints = interior_joints(rng, 3 * 17).reshape(3, 17, 2)
    heatmaps = np.stack([c.encode(j, np.ones(17))[0] for j in joints])
    coords, maxvals = c.decode(heatmaps, refine=refine)
    assert coords.shape == (3, 17, 2) and maxvals.shape == (3, 17)
    expected = joints / c._stride()
    err = np.abs(coords - expected)
    assert err.max() <= max_err and err.mean() <= mean_err, (err.max(), err.mean())
    # And back to the image through the inverse crop.
    centers, scales = np.array([[320.0, 240.0]] * 3), np.array([[1.2, 1.6]] * 3)
    inv = c.crop_matrix(centers[0], scales[0], 0.0, inv=True)
    image_pts = c.to_image(coords, centers, scales)
    truth = T.affine_points(joints, inv)
    assert np.abs(image_pts - truth).max() <= max_err * 1.2 * 200 / HM[0] * 1.01 + 1e-3


@pytest.mark.parametrize("name", ["gaussian", "dark", "udp"])
def test_encode_matches_reference_loop(name):
    rng = np.random.default_rng(3)
    c = codec(name)
    joints = rng.uniform(-40, 230, size=(17, 2)) * [1, 256 / 192]
    joints[0] = [-40.0, -40.0]        # window entirely outside: weight 0
    joints[4] = [-30.0, 100.0]        # mu = -7, br = 0: official quirk, outside but weight 1 (test is br < 0)
    joints[1] = [-1.0, 100.0]         # partly outside: weight 1, truncated Gaussian
    joints[2] = [-27.0, 100.0]        # mu = int(-6.25) = -6, br = 1: a column survives
    joints[3] = [191.9, 255.9]
    vis = (rng.random(17) > 0.2).astype(np.float32)
    vis[:5] = 1
    heatmaps, weights = c.encode(joints, vis)
    ref_t, ref_w = reference_target(joints, vis, 2.0, c._stride(), HM, exact_center=name in ("dark", "udp"))
    assert heatmaps.shape == (17, 64, 48) and heatmaps.dtype == np.float32
    np.testing.assert_array_equal(weights, ref_w)
    np.testing.assert_allclose(heatmaps, ref_t, atol=2e-7)
    assert weights[0] == 0 and weights[1] == 1 and heatmaps[2].max() > 0
    if name == "gaussian":
        assert weights[4] == 1 and heatmaps[4].max() == 0
    assert (heatmaps[vis == 0] == 0).all() and (weights[vis == 0] == 0).all()


def test_gaussian_peak_is_one_at_the_rounded_pixel():
    heatmaps, _ = codec("gaussian").encode(np.array([[41.0, 58.0]]), np.ones(1))
    assert heatmaps[0, 15, 10] == 1.0  # int(41/4 + .5) = 10, int(58/4 + .5) = 15
    assert np.count_nonzero(heatmaps[0]) == 13 * 13


@pytest.mark.parametrize("refine", ["default", "dark"])
def test_vectorised_decode_matches_reference_loops(refine):
    rng = np.random.default_rng(5)
    c = codec("gaussian")
    joints = rng.uniform(-10, 200, size=(2, 17, 2)) * [1, 256 / 192]
    heatmaps = np.stack([c.encode(j, np.ones(17))[0] for j in joints])
    heatmaps += rng.normal(0, 0.05, heatmaps.shape).astype(np.float32)
    heatmaps[0, 3] = -1.0  # maxval <= 0: coordinates zeroed
    coords, maxvals = c.decode(heatmaps, refine=refine)
    ref = reference_quarter(heatmaps) if refine == "default" else reference_dark(heatmaps, c.blur_kernel)
    np.testing.assert_allclose(coords, ref, atol=1e-4)
    np.testing.assert_allclose(maxvals, heatmaps.reshape(2, 17, -1).max(2))
    assert (coords[0, 3] == 0).all()


def test_dark_codec_is_unbiased_gaussian_with_dark_decoding():
    joints = np.array([[41.0, 58.0], [101.3, 77.9]])
    dark, gauss = codec("dark"), codec("gaussian")
    heatmaps, _ = dark.encode(joints, np.ones(2))
    assert heatmaps[0, 15, 10] < 1.0  # centred at (10.25, 14.5), not at the rounded pixel
    coords, _ = dark.decode(heatmaps[None])
    np.testing.assert_array_equal(coords, gauss.decode(heatmaps[None], refine="dark")[0])
    np.testing.assert_allclose(coords[0], joints / 4, atol=0.02)  # DARK recovers the sub-pixel joint


def test_udp_refine_matches_reference_loop():
    rng = np.random.default_rng(6)
    c = codec("udp")
    joints = rng.uniform(-10, 200, size=(2, 17, 2)) * [1, 256 / 192]
    heatmaps = np.stack([c.encode(j, np.ones(17))[0] for j in joints]) + 0.01
    heatmaps += rng.normal(0, 0.03, heatmaps.shape).astype(np.float32)
    coords, _ = c.decode(heatmaps)
    np.testing.assert_allclose(coords, reference_udp(heatmaps, c.blur_kernel), atol=1e-3)


@pytest.mark.parametrize("name", ["gaussian", "dark", "udp"])
def test_flip_test_consistency(name):
    """flip_back of the heatmaps of the mirrored crop decodes where the unmirrored one does."""
    rng = np.random.default_rng(7)
    c = codec(name)
    joints = interior_joints(rng, 17)
    mirrored, _ = T.flip_joints(joints, np.ones(17), image_width=IN[0], flip_pairs=COCO17.flip_pairs)
    hm = torch.from_numpy(c.encode(joints, np.ones(17))[0])[None]
    hm_mirror = torch.from_numpy(c.encode(mirrored, np.ones(17))[0])[None]
    back = c.flip_back(hm_mirror, shift=True)
    assert back.shape == hm.shape
    direct, _ = c.decode(hm.numpy(), refine="default" if name == "udp" else "none")
    flipped, _ = c.decode(back.numpy(), refine="default" if name == "udp" else "none")
    diff = flipped - direct
    if name == "udp":  # exact: UDP's flip needs no shift
        assert np.abs(diff).max() < 1e-3
        np.testing.assert_allclose(back.numpy(), hm.numpy(), atol=1e-5)
    else:  # the official one-pixel shift leaves at most one pixel, +0.25 px on average
        assert np.abs(diff).max() <= 1 and abs(diff[..., 0].mean() - 0.25) < 0.3 and (diff[..., 1] == 0).all()
        unshifted, _ = c.decode(c.flip_back(hm_mirror, shift=False).numpy(), refine="none")
        assert (unshifted - direct)[..., 0].mean() < diff[..., 0].mean() - 0.5


def test_flip_back_swaps_pairs_and_shifts():
    c = codec("gaussian")
    x = torch.zeros(1, 17, 4, 5)
    x[0, 1, 2, 0] = 1.0  # left eye at column 0 of the mirrored map
    out = c.flip_back(x, shift=False)
    assert out[0, 2, 2, 4] == 1 and out[0, 1].sum() == 0
    shifted = c.flip_back(x, shift=True)
    assert shifted[0, 2, 2, 4] == 0 and shifted[0, 2, 2, 3] == 0 and out[0, 2, 2, 3] == 0
    x[0, 1, 2, 1] = 0.5
    shifted = c.flip_back(x, shift=True)
    assert shifted[0, 2, 2, 4] == 0.5
    assert torch.equal(codec("udp").flip_back(x, shift=True), codec("udp").flip_back(x, shift=False))
    with pytest.raises(ValueError, match="17"):
        c.flip_back(torch.zeros(1, 5, 4, 4), shift=False)


@pytest.mark.parametrize("name", ["gaussian", "dark", "udp"])
def test_to_image_is_the_inverse_crop_at_heatmap_size(name):
    rng = np.random.default_rng(8)
    c = codec(name)
    centers, scales = rng.uniform(100, 400, (4, 2)), rng.uniform(0.5, 2.0, (4, 2))
    coords = rng.uniform(0, 48, (4, 17, 2))
    out = c.to_image(coords, centers, scales)
    fn = T.get_affine_transform if name in ("gaussian", "dark") else T.get_udp_warp_matrix
    for i in range(4):
        inv = fn(centers[i], scales[i], 0.0, HM, inv=True)
        np.testing.assert_allclose(out[i], T.affine_points(coords[i], inv), atol=2e-3)


def test_udp_crop_of_mirrored_image_is_the_mirrored_crop():
    rng = np.random.default_rng(9)
    image = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
    c = build_codec("udp", input_size=(48, 64), heatmap_size=(12, 16), sigma=1.0)
    center, scale = np.array([70.3, 60.7]), np.array([0.45, 0.6])
    crop = cv2.warpAffine(image, c.crop_matrix(center, scale, 0.0), (48, 64), flags=cv2.INTER_LINEAR)
    mirror_mat = c.crop_matrix(T.flip_center(center, 160), scale, 0.0)
    flipped = np.ascontiguousarray(image[:, ::-1])
    mirror = cv2.warpAffine(flipped, mirror_mat, (48, 64), flags=cv2.INTER_LINEAR)
    assert np.abs(mirror[:, ::-1].astype(int) - crop).mean() < 1.0


def test_decode_accepts_torch_and_rejects_bad_input():
    c = codec("gaussian")
    hm = torch.zeros(2, 17, 64, 48)
    hm[:, :, 10, 20] = 1
    coords, maxvals = c.decode(hm)
    assert (coords == np.array([20, 10])).all() and (maxvals == 1).all()
    with pytest.raises(ValueError, match="refine"):
        c.decode(hm, refine="bogus")
    with pytest.raises(ValueError, match=r"\(N, K, h, w\)"):
        c.decode(np.zeros((17, 64, 48)))


def test_factories():
    with pytest.raises(ValueError, match="gaussian, dark, udp"):
        build_codec("msra", input_size=IN, heatmap_size=HM, sigma=2)
    assert dark_blur_kernel(2) == 11 and dark_blur_kernel(3) == 17 and dark_blur_kernel(1) % 2 == 1
    cfg = apply_overrides(Config(), ["data.codec=udp", "data.input_size=[288,384]",
                                     "data.heatmap_size=[72,96]", "data.sigma=3"])
    c = build_codec_from_config(cfg)
    assert c.name == "udp" and c.input_size == (288, 384) and c.heatmap_size == (72, 96)
    assert c.blur_kernel == 17


# --- edges the round trips never reach (found by mutation testing) --------------------------------

def gaussian_maps(centers, size, sigma=2.0, scale=1.0):
    """(1, K, h, w) float32 Gaussians at sub-pixel ``centers`` (K, 2) x, y heatmap px."""
    w, h = size
    ys, xs = np.mgrid[0:h, 0:w]
    maps = [np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * sigma ** 2)) for cx, cy in centers]
    return (scale * np.stack(maps)[None]).astype(np.float32)


def test_dark_steps_only_strictly_inside_the_two_pixel_border():
    """Official DARK refines only where ``1 < x < w-2`` and ``1 < y < h-2``; the two-pixel second
    differences reach the border from the last valid pixel, and corner peaks decode to themselves."""
    w, h = 20, 24
    ints = [(x, y) for x in (1, 2, w - 3, w - 2) for y in (1, 2, h - 3, h - 2)] + [(0, 0), (w - 1, h - 1)]
    maps = gaussian_maps([(x + 0.3, y - 0.2) for x, y in ints], (w, h))
    coords, _ = codec("gaussian").decode(maps, refine="dark")
    ref = reference_dark(maps, 11)
    np.testing.assert_allclose(coords, ref, atol=1e-4)
    np.testing.assert_array_equal(np.floor(ref[0] + 0.5), ints)  # every peak is at its own pixel
    stepped = np.abs(ref[0] - ints).max(axis=1) > 1e-3
    assert stepped.tolist() == [1 < x < w - 2 and 1 < y < h - 2 for x, y in ints]


def test_dark_takes_no_step_where_the_log_is_flat():
    """The maximum alone in a negative region (a weaker positive patch elsewhere): around it the
    blurred map is floored flat, the Hessian is singular, and the official code keeps the integer
    argmax (never a NaN)."""
    maps = np.zeros((1, 1, 32, 32), np.float32)
    maps[0, 0, 13:28, 13:28] = -5.0
    maps[0, 0, 20, 21] = 1.0
    maps[0, 0, :6, :6] = 0.9
    coords, maxvals = codec("gaussian").decode(maps, refine="dark")
    np.testing.assert_array_equal(coords[0, 0], [21, 20])
    np.testing.assert_array_equal(coords, reference_dark(maps, 11))


def test_udp_refine_with_cross_term_and_clipping():
    """UDP's Newton step against the loop where the Hessian's cross term matters (a diagonal,
    elongated peak), where the blurred map falls below the 0.001 clip (a lone positive pixel
    among negatives: flat log, no step) and where it rises above the 50 clip (flat, no step)."""
    w, h = 20, 24
    ys, xs = np.mgrid[0:h, 0:w]
    u, v = (xs - 9.3 + ys - 11.6) / np.sqrt(2), (xs - 9.3 - ys + 11.6) / np.sqrt(2)
    diagonal = np.exp(-u ** 2 / (2 * 3.0 ** 2) - v ** 2 / (2 * 1.2 ** 2))
    lone = np.full((h, w), -1.0)
    lone[11, 9] = 1e-3
    tall = gaussian_maps([(8.4, 12.7)], (w, h), scale=400.0)[0, 0]
    maps = np.stack([diagonal, lone, tall])[None].astype(np.float32)
    coords, _ = codec("udp").decode(maps)
    ref = reference_udp(maps, 11)
    assert np.isfinite(coords).all()
    np.testing.assert_allclose(coords, ref, atol=1e-4)
    np.testing.assert_allclose(coords[0, 0], [9.3, 11.6], atol=0.05)  # the cross term is what gets there
    np.testing.assert_array_equal(coords[0, 1:], [[9, 11], [8, 13]])


@pytest.mark.parametrize("name", ["gaussian", "udp"])
@pytest.mark.parametrize("sigma", [2.0, 3.0])
def test_encode_window_tests_on_both_axes(name, sigma):
    """The official outside test ``ul >= size or br < 0`` on each axis alone, at its exact edges,
    and the Gaussian's width at sigma 3 (the 384x288 recipe) against the loop."""
    c = build_codec(name, input_size=IN, heatmap_size=HM, sigma=sigma)
    s = c._stride()
    t = int(3 * sigma)
    inside_x, inside_y = 20.0 * s[0], 30.0 * s[1]
    joints = np.array([
        [-(t + 4) * s[0], inside_y],          # left only: outside
        [inside_x, -(t + 4) * s[1]],          # above only: outside
        [inside_x, (HM[1] + t) * s[1]],       # ul_y == h exactly: outside
        [(HM[0] + t) * s[0], inside_y],       # ul_x == w exactly: outside
        [inside_x, (HM[1] + t - 1) * s[1]],   # ul_y == h - 1: a row survives
        [inside_x, -(t + 1.5) * s[1]],        # br_y == 0: outside but weight 1 (official quirk)
        [inside_x + 0.3 * s[0], inside_y - 0.4 * s[1]],
    ])
    heatmaps, weights = c.encode(joints, np.ones(len(joints)))
    ref_t, ref_w = reference_target(joints, np.ones(len(joints)), sigma, s, HM, exact_center=name == "udp")
    np.testing.assert_array_equal(weights, ref_w)
    np.testing.assert_allclose(heatmaps, ref_t, atol=2e-7)
    assert weights[:4].tolist() == [0, 0, 0, 0] and weights[4] == 1 and heatmaps[4].max() > 0

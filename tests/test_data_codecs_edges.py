"""Heatmap codecs at their edges: input dtypes, bad input, output dtypes, construction from a config.

Each test pins a behaviour that mutation testing found unpinned (``tools/mutation_test.py``).
"""

import numpy as np
import pytest
import torch

from pose.config import Config, apply_overrides
from pose.data import transforms as T
from pose.data.codecs import build_codec, build_codec_from_config, dark_blur_kernel
from pose.keypoints import COCO17, MPII16

IN, HM = (192, 256), (48, 64)


def codec(name, **kw):
    kw.setdefault("flip_index", COCO17.flip_index)
    return build_codec(name, input_size=IN, heatmap_size=HM, sigma=2.0, **kw)


def test_integer_heatmaps_decode_like_float_ones():
    """uint8 maps are decoded in float: the quarter step compares neighbours without wrapping."""
    maps = np.zeros((1, 2, 10, 12), np.uint8)
    maps[0, 0, 5, 4:7] = [200, 250, 10]   # left neighbour higher: step -0.25 in x
    maps[0, 1, 4:7, 8] = [10, 250, 200]   # lower neighbour higher: step +0.25 in y
    c = codec("gaussian")
    coords, maxvals = c.decode(maps)
    np.testing.assert_array_equal(coords[0], [[4.75, 5], [8, 5.25]])
    np.testing.assert_array_equal(coords, c.decode(maps.astype(np.float32))[0])
    assert maxvals.dtype == np.float32 and maxvals.tolist() == [[250, 250]]


def test_non_finite_and_complex_heatmaps_are_refused_with_counts():
    c = codec("gaussian")
    maps = np.zeros((2, 3, 8, 8), np.float32)
    maps[1, 2, 3, 4] = np.nan
    maps[1, 2, 5, 5] = np.inf
    maps[0, 1, 0, 0] = -np.inf  # below every maximum, yet not finite: counted
    with pytest.raises(ValueError, match=r"3 NaN or infinite values \(in 2 of 6 maps\)"):
        c.decode(maps)
    with pytest.raises(ValueError, match="real numbers.*complex"):
        c.decode(np.zeros((1, 1, 4, 4), np.complex64))
    with pytest.raises(ValueError, match="unknown refine 'udp'; valid: default, dark, none"):
        c.decode(maps, refine="udp")


def test_huge_finite_maxima_are_not_called_infinite():
    """Maxima near float32's limit sum past it in float32, not in the float64 the check uses."""
    maps = np.zeros((1, 17, 8, 8), np.float32)
    maps[..., 4, 3] = 3e38
    coords, maxvals = codec("gaussian").decode(maps, refine="none")
    assert (coords == [3, 4]).all() and (maxvals == np.float32(3e38)).all()


@pytest.mark.parametrize("name", ["gaussian", "dark", "udp"])
@pytest.mark.parametrize("refine", ["default", "dark", "none"])
def test_outputs_are_float32_whatever_the_input(name, refine):
    c = codec(name)
    maps = c.encode(np.array([[60.3, 90.8], [100.0, 128.2]]), np.ones(2))[0][None]
    assert maps.dtype == np.float32
    coords, maxvals = c.decode(maps.astype(np.float64), refine=refine)
    assert coords.dtype == np.float32 and maxvals.dtype == np.float32
    out = c.to_image(coords.astype(np.float64), np.array([[100.0, 80.0]]), np.array([[1.0, 1.5]]))
    assert out.dtype == np.float32
    heatmaps, weights = c.encode(np.array([[60.3, 90.8]]), np.array([2]))
    assert heatmaps.dtype == np.float32 and weights.dtype == np.float32 and weights.tolist() == [1.0]


def test_dark_blur_kernel_is_six_sigma_minus_one_made_odd():
    sigmas = [0.25, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0]
    assert [dark_blur_kernel(s) for s in sigmas] == [3, 3, 5, 9, 11, 15, 17]
    assert codec("dark").blur_kernel == 11 and codec("dark", blur_kernel=5).blur_kernel == 5


def test_codec_from_config_takes_the_keypoint_sets_flip_index_and_pixel_std():
    cfg = apply_overrides(Config(), ["data.keypoints.name=coco", "data.pixel_std=150"])
    c = build_codec_from_config(cfg)
    assert c.flip_index == COCO17.flip_index and c.pixel_std == 150.0
    assert build_codec_from_config(cfg, keypoints=MPII16).flip_index == MPII16.flip_index
    assert build_codec_from_config(Config()).flip_index is None  # 'auto': the dataset sets it later


@pytest.mark.parametrize("name, fn", [("gaussian", T.get_affine_transform), ("udp", T.get_udp_warp_matrix)])
def test_crop_matrix_is_the_forward_crop_at_the_codecs_pixel_std(name, fn):
    c = build_codec(name, input_size=IN, heatmap_size=HM, sigma=2.0, pixel_std=150.0)
    center, scale = np.array([210.0, 160.0]), np.array([1.1, 1.4])
    np.testing.assert_allclose(c.crop_matrix(center, scale, 20.0), fn(center, scale, 20.0, IN, pixel_std=150.0))
    np.testing.assert_allclose(c.crop_matrix(center, scale, 20.0, inv=True),
                               fn(center, scale, 20.0, IN, inv=True, pixel_std=150.0))


def test_constructor_checks_sizes_sigma_and_blur_kernel():
    def make(input_size=IN, heatmap_size=HM, sigma=2.0, **kw):
        return build_codec("gaussian", input_size=input_size, heatmap_size=heatmap_size, sigma=sigma, **kw)

    make(input_size=(2, 2), heatmap_size=(2, 2), blur_kernel=1)
    make(blur_kernel=3)
    for kw in ({"input_size": (1, 64)}, {"heatmap_size": (48, 1)}):
        with pytest.raises(ValueError, match="must be at least 2 px each way"):
            make(**kw)
    with pytest.raises(ValueError, match="sigma must be > 0, got 0"):
        make(sigma=0)
    for k in (0, 2, 4):
        with pytest.raises(ValueError, match=f"blur_kernel must be odd and positive, got {k}"):
            make(blur_kernel=k)


def test_flip_index_is_set_once():
    c = build_codec("gaussian", input_size=IN, heatmap_size=HM, sigma=2.0)
    with pytest.raises(ValueError, match="no flip_index"):
        c.flip_back(torch.zeros(1, 17, 4, 4), shift=False)
    c.set_flip_index(COCO17.flip_index)
    c.set_flip_index(list(COCO17.flip_index))  # the same again: fine
    with pytest.raises(ValueError, match="differs from the keypoint set's"):
        c.set_flip_index(range(17))
    assert c.flip_index == COCO17.flip_index


def test_encode_takes_xyv_rows_column_flags_and_drops_non_finite_joints():
    c = codec("gaussian")
    joints = np.array([[60.3, 90.8, 1.0], [100.0, 128.2, 1.0], [np.nan, 50.0, 1.0], [30.0, np.inf, 1.0]])
    heatmaps, weights = c.encode(joints, joints[:, 2:])
    ref, ref_w = c.encode(joints[:2, :2], np.ones(2))
    assert weights.tolist() == [1, 1, 0, 0] and (heatmaps[2:] == 0).all()
    np.testing.assert_array_equal(heatmaps[:2], ref)
    with pytest.raises(ValueError, match=r"joints must be \(K, 2\) crop px, got shape \(4,\)"):
        c.encode(joints[:, 0], np.ones(4))
    with pytest.raises(ValueError, match="4 joints but 3 visibility flags"):
        c.encode(joints, np.ones(3))


def test_to_image_checks_every_shape():
    c = codec("gaussian")
    coords, centers, scales = np.zeros((2, 17, 2)), np.zeros((2, 2)), np.ones((2, 2))
    for bad in ((coords[..., 0], centers, scales), (np.zeros((2, 17, 3)), centers, scales),
                (coords, centers[:1], scales), (coords, centers, scales[:, :1])):
        with pytest.raises(ValueError, match=r"to_image: expected coords \(N, K, 2\)"):
            c.to_image(*bad)

"""Evaluation wiring: flip test with a position-dependent model, NMS ranking by the rescored
person score, the end-to-end flip test checked on coordinates, and ties at exact thresholds.

The expected values here are computed by hand (numpy mirrors, the official pair list, the
official one-pixel shift), not with the functions under test, so a wrong flip axis, a missing
pair swap or a wrong shift changes the decoded coordinates and fails.
"""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pose.config import Config, apply_overrides
from pose.data import build_codec, build_dataset
from pose.engine.evaluator import Predictions, evaluate, postprocess, rescore, results_paths, run_inference
from pose.engine.nms import nms_per_image, oks_iou, oks_nms
from pose.keypoints import COCO17

IN_W, IN_H, HM_W, HM_H = 64, 64, 16, 16
# The official COCO flip pairs, written out here so that a wrong table fails too.
OFFICIAL_PAIRS = ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16))
_SWAP = {a: b for a, b in OFFICIAL_PAIRS} | {b: a for a, b in OFFICIAL_PAIRS}
OFFICIAL_FLIP_INDEX = tuple(_SWAP.get(k, k) for k in range(17))
# Heatmap px offset of each joint's peak from the dot: +2 for left joints, -2 for right ones, 0
# for the nose. A mirrored input then gives left-joint peaks on the right side, so the pair swap
# (and only the pair swap) brings them back.
OFFSETS = np.array([0] + [2, -2] * 8)
SIGMAS = COCO17.oks_sigmas


class DotModel(nn.Module):
    """Heatmaps that peak where the image is bright: the channel mean, average-pooled to stride 4,
    blurred, and shifted by ``OFFSETS[k]`` heatmap px for joint k. It is mirror-equivariant with
    the official pairs, and it depends on where the dot is (unlike a model of the global mean)."""

    def __init__(self):
        super().__init__()
        g = torch.exp(-torch.arange(-3, 4, dtype=torch.float32) ** 2 / 4.0)
        self.register_buffer("blur", (g[:, None] * g[None, :])[None, None] / g.sum() ** 2)

    def forward(self, x):
        bright = F.avg_pool2d(x.mean(1, keepdim=True), 4)
        bright = F.conv2d(bright, self.blur, padding=3)
        maps = []
        for d in OFFSETS.tolist():
            shifted = torch.zeros_like(bright)
            if d > 0:
                shifted[..., d:] = bright[..., :-d]
            elif d < 0:
                shifted[..., :d] = bright[..., -d:]
            else:
                shifted = bright
            maps.append(shifted)
        return torch.cat(maps, 1)


def dot_images(dots: list[tuple[int, int]]) -> torch.Tensor:
    """(N, 3, IN_H, IN_W) dark images with a bright 4x4 square at each (x, y) input px."""
    images = torch.zeros(len(dots), 3, IN_H, IN_W)
    for i, (x, y) in enumerate(dots):
        images[i, :, y:y + 4, x:x + 4] = 1.0
    return images


def one_batch(images: torch.Tensor) -> list[dict]:
    n = images.shape[0]
    # The crop is the whole image: centre and scale (pixel_std 200) of a 64x64 box.
    return [{"image": images, "center": torch.full((n, 2), IN_W / 2.0), "scale": torch.full((n, 2), IN_W / 200.0),
             "area": torch.full((n,), float(IN_W * IN_H)), "score": torch.ones(n),
             "image_id": torch.arange(n), "index": torch.arange(n)}]


def flip_back_by_hand(heatmaps: np.ndarray, shift: bool) -> np.ndarray:
    """Official ``flip_back``: mirror the width, swap the pairs; then the one-pixel right shift."""
    out = heatmaps[..., ::-1].copy()
    for a, b in OFFICIAL_PAIRS:
        out[:, [a, b]] = out[:, [b, a]]
    if shift:
        out[..., 1:] = out[..., :-1].copy()
    return out


def expected_predictions(model, images: torch.Tensor, codec, centers, scales, *, flip: bool, shift: bool):
    with torch.no_grad():
        out = model(images).numpy()
        if flip:
            mirrored = torch.from_numpy(images.numpy()[..., ::-1].copy())
            out = (out + flip_back_by_hand(model(mirrored).numpy(), shift)) * 0.5
    coords, maxvals = codec.decode(out)
    return codec.to_image(coords, centers, scales), maxvals


DOTS = [(8, 40), (44, 12), (28, 52), (52, 48)]  # lower half too: a vertical flip cannot hide


@pytest.mark.parametrize("flip, shift", [(False, False), (True, False), (True, True)])
def test_flip_test_decodes_the_dot_position(flip, shift):
    codec = build_codec("gaussian", input_size=(IN_W, IN_H), heatmap_size=(HM_W, HM_H), sigma=2.0,
                        flip_index=OFFICIAL_FLIP_INDEX)
    images = dot_images(DOTS)
    model = DotModel()
    got = run_inference(model, one_batch(images), codec, flip_test=flip, shift_heatmap=shift, refine="default",
                        device="cpu")
    centers = np.full((len(DOTS), 2), IN_W / 2.0, np.float32)
    scales = np.full((len(DOTS), 2), IN_W / 200.0, np.float32)
    coords, maxvals = expected_predictions(model, images, codec, centers, scales, flip=flip, shift=shift)
    np.testing.assert_allclose(got.coords, coords, atol=1e-4)
    np.testing.assert_allclose(got.maxvals, maxvals, rtol=1e-5)
    # And the coordinates are where the dot is (its centre x + 1.5, y + 1.5), moved by the joint's
    # offset: within one heatmap px (the quarter step and the shift move less than that).
    dots = np.array(DOTS, np.float64) + 1.5
    want = dots[:, None, :] + np.stack([OFFSETS * 4, np.zeros_like(OFFSETS)], 1)[None]
    assert np.abs(got.coords - want).max() <= 4.0, np.abs(got.coords - want).max()
    # With the flip averaged in, the peak keeps (nearly) its height: the two halves agree.
    plain = run_inference(model, one_batch(images), codec, flip_test=False, shift_heatmap=False,
                          refine="default", device="cpu")
    assert np.all(got.maxvals > 0.8 * plain.maxvals)


def test_flip_test_changes_only_what_the_shift_changes():
    # Flip without the shift on an exactly mirror-equivariant model: identical to no flip test.
    codec = build_codec("gaussian", input_size=(IN_W, IN_H), heatmap_size=(HM_W, HM_H), sigma=2.0,
                        flip_index=OFFICIAL_FLIP_INDEX)
    batch = one_batch(dot_images(DOTS))
    kwargs = dict(refine="default", device="cpu")
    plain = run_inference(DotModel(), batch, codec, flip_test=False, shift_heatmap=False, **kwargs)
    flipped = run_inference(DotModel(), batch, codec, flip_test=True, shift_heatmap=False, **kwargs)
    np.testing.assert_allclose(flipped.coords, plain.coords, atol=1e-4)
    shifted = run_inference(DotModel(), batch, codec, flip_test=True, shift_heatmap=True, **kwargs)
    assert not np.allclose(shifted.coords[..., 0], plain.coords[..., 0])
    np.testing.assert_allclose(shifted.coords[..., 1], plain.coords[..., 1], atol=1e-4)


# ---------------------------------------------------------------------------------------------
# NMS ranking: by the rescored person score, not the box score
# ---------------------------------------------------------------------------------------------

def _same_pose_preds(box_scores, joint_scores, image_ids):
    n = len(box_scores)
    rng = np.random.default_rng(3)
    pose = rng.uniform(20, 180, (1, 17, 2)).astype(np.float32)
    coords = np.repeat(pose, n, 0) + np.arange(n, dtype=np.float32)[:, None, None] * 0.01
    return Predictions(coords=coords, maxvals=np.asarray(joint_scores, np.float32),
                       centers=np.zeros((n, 2), np.float32), scales=np.ones((n, 2), np.float32),
                       areas=np.full(n, 2e4), box_scores=np.asarray(box_scores, np.float64),
                       image_ids=np.asarray(image_ids, np.int64), indices=np.arange(n))


def test_nms_keeps_the_best_rescored_instance_not_the_best_box():
    # Same pose three times in image 7: box scores rank 0 > 1 > 2, rescored scores rank 2 > 1 > 0.
    joints = np.stack([np.full(17, 0.3), np.full(17, 0.6), np.full(17, 0.95)])
    joints[1, :5] = 0.1  # below the threshold: left out of the mean, not averaged in as 0.1
    preds = _same_pose_preds([0.9, 0.7, 0.5], joints, [7, 7, 7])
    keep, scores = postprocess(preds, sigmas=SIGMAS)
    assert keep.tolist() == [2]
    np.testing.assert_allclose(scores, [0.9 * 0.3, 0.7 * 0.6, 0.5 * 0.95], rtol=1e-6)


# ---------------------------------------------------------------------------------------------
# End to end: evaluate() with a real tiny network and flip test, coordinates checked
# ---------------------------------------------------------------------------------------------

def test_end_to_end_flip_test_coordinates(data_root, tmp_path):
    cfg = apply_overrides(Config(), [
        f"data.root={data_root}", f"output_dir={tmp_path / 'out'}", "data.input_size=[48,64]",
        "data.heatmap_size=[12,16]", "model.arch=hrnet_tiny", "model.init_std=0", "test.batch_size=3",
        "train.workers=0", "test.flip_test=true", "test.shift_heatmap=true", "test.use_gt_bbox=true"])
    dataset = build_dataset(cfg, "val")
    from pose.models import build_model
    torch.manual_seed(0)
    model = build_model(cfg, verbose=False).eval()
    evaluate(model, dataset, cfg, cfg.output_dir, "cpu", verbose=False)
    results_file, _ = results_paths(cfg.output_dir, dataset.image_set)
    results = json.loads(results_file.read_text())
    items = [dataset[i] for i in range(len(dataset))]
    images = torch.stack([it["image"] for it in items])
    centers = np.stack([np.asarray(it["center"], np.float32) for it in items])
    scales = np.stack([np.asarray(it["scale"], np.float32) for it in items])
    coords, maxvals = expected_predictions(model, images, dataset.codec, centers, scales, flip=True, shift=True)
    plain, _ = expected_predictions(model, images, dataset.codec, centers, scales, flip=False, shift=False)
    assert not np.allclose(coords, plain, atol=1.0)  # the flip test does change the answer here
    box_scores = np.array([float(it["score"]) for it in items])
    image_ids = np.array([int(it["image_id"]) for it in items])
    want_scores = rescore(maxvals, box_scores, 0.2)
    assert results
    for r in results:
        kp = np.asarray(r["keypoints"]).reshape(-1, 3)
        candidates = np.flatnonzero(image_ids == r["image_id"])
        errors = [np.abs(kp[:, :2] - coords[c]).max() for c in candidates]
        best = candidates[int(np.argmin(errors))]
        assert min(errors) < 1e-3, (r["image_id"], min(errors))
        np.testing.assert_allclose(kp[:, 2], maxvals[best], rtol=1e-5)
        assert r["score"] == pytest.approx(want_scores[best], rel=1e-5)


# ---------------------------------------------------------------------------------------------
# Ties at exact thresholds, pinned to the official comparisons
# ---------------------------------------------------------------------------------------------

def test_decode_zeroes_coordinates_at_a_zero_maximum():
    # Official get_final_preds: coords *= (maxvals > 0). A maximum of exactly 0 is zeroed.
    codec = build_codec("gaussian", input_size=(IN_W, IN_H), heatmap_size=(HM_W, HM_H), sigma=2.0,
                        flip_index=OFFICIAL_FLIP_INDEX)
    heatmaps = np.full((1, 3, HM_H, HM_W), -1.0, np.float32)
    heatmaps[0, 0, 5, 7] = 0.0
    heatmaps[0, 1, 5, 7] = 1e-6
    heatmaps[0, 2, 9, 3] = -0.5
    coords, maxvals = codec.decode(heatmaps, refine="none")
    assert maxvals.tolist()[0] == pytest.approx([0.0, 1e-6, -0.5])
    assert coords[0, 0].tolist() == [0.0, 0.0] and coords[0, 2].tolist() == [0.0, 0.0]
    assert coords[0, 1].tolist() == [7.0, 5.0]


@pytest.mark.parametrize("pos, stepped", [((1, 1), False), ((2, 2), True), ((HM_W - 2, HM_H - 2), True),
                                          ((HM_W - 1, 5), False), ((5, HM_H - 1), False), ((1, 5), False)])
def test_quarter_offset_only_strictly_inside(pos, stepped):
    # Official: the step applies when 1 < x < w - 1 and 1 < y < h - 1 (strict).
    codec = build_codec("gaussian", input_size=(IN_W, IN_H), heatmap_size=(HM_W, HM_H), sigma=2.0,
                        flip_index=OFFICIAL_FLIP_INDEX)
    x, y = pos
    heatmaps = np.zeros((1, 1, HM_H, HM_W), np.float32)
    heatmaps[0, 0, y, x] = 1.0
    heatmaps[0, 0, y, x - 1] = heatmaps[0, 0, y - 1, x] = 0.5  # neighbours pull left and up
    coords, _ = codec.decode(heatmaps)
    want = [x - 0.25, y - 0.25] if stepped else [x, y]
    assert coords[0, 0].tolist() == want


def test_quarter_offset_no_step_on_equal_neighbours():
    codec = build_codec("gaussian", input_size=(IN_W, IN_H), heatmap_size=(HM_W, HM_H), sigma=2.0,
                        flip_index=OFFICIAL_FLIP_INDEX)
    heatmaps = np.zeros((1, 1, HM_H, HM_W), np.float32)
    heatmaps[0, 0, 6, 6] = 1.0
    heatmaps[0, 0, 6, 5] = heatmaps[0, 0, 6, 7] = 0.5
    heatmaps[0, 0, 7, 6] = 0.25
    coords, _ = codec.decode(heatmaps)
    assert coords[0, 0].tolist() == [6.0, 6.25]


def _two_instances(offset: float):
    rng = np.random.default_rng(5)
    base = np.concatenate([rng.uniform(50, 150, (17, 2)), np.full((17, 1), 0.9)], 1)
    other = base.copy()
    other[:, 0] += offset
    return np.stack([base, other]), np.array([0.9, 0.8]), np.array([1e4, 1e4])


def test_nms_keeps_an_instance_at_exactly_the_threshold():
    # Official: keep where oks <= thresh, i.e. drop only when OKS > thresh.
    kp, scores, areas = _two_instances(3.0)
    oks = float(oks_iou(kp[0], kp[1:], areas[0], areas[1:], sigmas=SIGMAS)[0])
    assert 0.1 < oks < 0.99
    assert oks_nms(kp, scores, areas, thresh=oks, sigmas=SIGMAS) == [0, 1]
    assert oks_nms(kp, scores, areas, thresh=np.nextafter(oks, 0), sigmas=SIGMAS) == [0]
    ids = np.zeros(2, np.int64)
    assert nms_per_image(kp, scores, areas, ids, thresh=oks, sigmas=SIGMAS).tolist() == [0, 1]
    assert nms_per_image(kp, scores, areas, ids, thresh=np.nextafter(oks, 0), sigmas=SIGMAS).tolist() == [0]


def test_oks_visibility_threshold_is_strict():
    # Official: joints count when their score > in_vis_thre; a score equal to it does not count.
    kp, _, areas = _two_instances(0.0)
    kp[1, :, 2] = 0.25
    kp[1, 0, 0] += 40.0  # joint 0 is far off: counted, it lowers the OKS
    kp[1, 0, 2] = 0.5
    with_all = float(oks_iou(kp[0], kp[1:], areas[0], areas[1:], vis_thresh=0.1, sigmas=SIGMAS)[0])
    only_0 = float(oks_iou(kp[0], kp[1:], areas[0], areas[1:], vis_thresh=0.25, sigmas=SIGMAS)[0])
    assert with_all > only_0  # at 0.25 only joint 0 (score 0.5 > 0.25) counts
    assert only_0 == pytest.approx(np.exp(-(40.0 ** 2) / (2 * 0.026) ** 2 / (1e4 + np.spacing(1)) / 2))
    assert float(oks_iou(kp[0], kp[1:], areas[0], areas[1:], vis_thresh=0.5, sigmas=SIGMAS)[0]) == 0.0


def test_rescoring_threshold_is_strict():
    # Official: a joint counts when its score > in_vis_thre. 0.25 is exact in float32.
    maxvals = np.array([[0.25, 0.75, 0.5], [0.25, 0.25, 0.25]], np.float32)
    assert rescore(maxvals, [1.0, 0.8], 0.25).tolist() == [pytest.approx(0.625), 0.0]
    # float32(0.2) is a little above 0.2: the official float32-scalar vs Python-float comparison
    # (NumPy 1) counts it, and so do we.
    assert rescore(np.array([[0.2, 0.0]], np.float32), [1.0], 0.2)[0] == pytest.approx(0.2)

"""Drawing on synthetic arrays: where pixels change, colours per side, thresholds, overlays."""

import cv2
import numpy as np
import pytest

from pose.keypoints import COCO17, KeypointSet
from pose.vis import (
    GT_COLORS,
    SIDE_COLORS,
    draw_people,
    draw_skeleton,
    heatmap_to_color,
    make_grid,
    overlay_heatmaps,
    read_image,
    side_by_side,
    write_image,
)

SKELETON, joint_side, limb_side = COCO17.skeleton, COCO17.joint_side, COCO17.limb_side

def _person(rng: np.random.Generator, width: int = 200, height: int = 160) -> np.ndarray:
    kp = np.zeros((17, 3))
    kp[:, 0] = rng.uniform(20, width - 20, 17)
    kp[:, 1] = rng.uniform(20, height - 20, 17)
    kp[:, 2] = 1.0
    return kp


def _dist_to_segments(shape: tuple[int, int], segments: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Per-pixel distance to the nearest segment (a point is a zero-length segment)."""
    ys, xs = np.mgrid[:shape[0], :shape[1]]
    p = np.stack([xs, ys], -1).astype(np.float64)
    best = np.full(shape, np.inf)
    for a, b in segments:
        ab = b - a
        t = np.clip(((p - a) @ ab) / max(ab @ ab, 1e-9), 0, 1)
        d = np.linalg.norm(p - (a + t[..., None] * ab), axis=-1)
        best = np.minimum(best, d)
    return best


def test_single_joint_changes_pixels_only_near_it():
    image = np.full((120, 160, 3), 30, np.uint8)
    kp = np.zeros((17, 3))
    kp[:, :2] = 60
    kp[9] = (100.0, 40.0, 0.9)  # only the left wrist is above the threshold
    out = draw_skeleton(image, kp, score_thresh=0.5, thickness=2, radius=3, kset=COCO17)
    changed = (out != image).any(-1)
    assert changed.any()
    dist = _dist_to_segments(changed.shape, [(np.array([100.0, 40.0]), np.array([100.0, 40.0]))])
    assert dist[changed].max() <= 3 + 1.5
    assert np.array_equal(image, np.full((120, 160, 3), 30, np.uint8)), "input was modified"


def test_full_skeleton_changes_pixels_only_near_joints_and_limbs():
    rng = np.random.default_rng(0)
    image = np.zeros((160, 200, 3), np.uint8)
    kp = _person(rng)
    out = draw_skeleton(image, kp, score_thresh=0.5, thickness=1, radius=2, kset=COCO17)
    changed = (out != image).any(-1)
    segments = [(kp[a, :2], kp[b, :2]) for a, b in SKELETON] + [(kp[k, :2], kp[k, :2]) for k in range(17)]
    dist = _dist_to_segments(changed.shape, segments)
    assert dist[changed].max() <= 2 + 2.5  # radius + rounding + antialiasing
    # Every joint centre is coloured.
    for k in range(17):
        x, y = np.round(kp[k, :2]).astype(int)
        assert changed[y, x]


def test_colours_per_side():
    image = np.zeros((100, 300, 3), np.uint8)
    kp = np.zeros((17, 3))
    # Three far-apart joints, one per side, nothing else shown.
    kp[0] = (50, 50, 1)  # nose: centre
    kp[5] = (150, 50, 1)  # left shoulder
    kp[6] = (250, 50, 1)  # right shoulder
    out = draw_skeleton(image, kp, score_thresh=0.5, radius=4, kset=COCO17)
    assert tuple(out[50, 50]) == SIDE_COLORS["centre"]
    assert tuple(out[50, 150]) == SIDE_COLORS["left"]
    assert tuple(out[50, 250]) == SIDE_COLORS["right"]
    assert len({SIDE_COLORS[s] for s in ("left", "right", "centre")}) == 3


def test_limb_colour_follows_limb_side():
    image = np.zeros((200, 200, 3), np.uint8)
    for a, b in SKELETON:
        kp = np.zeros((17, 3))
        kp[a] = (20, 100, 1)
        kp[b] = (180, 100, 1)
        out = draw_skeleton(image, kp, score_thresh=0.5, thickness=3, radius=1, kset=COCO17)
        assert tuple(out[100, 100]) == SIDE_COLORS[limb_side(a, b)], (a, b)
        assert tuple(out[100, 20]) == SIDE_COLORS[joint_side(a)]


def test_score_threshold_respected():
    rng = np.random.default_rng(1)
    image = np.zeros((160, 200, 3), np.uint8)
    kp = _person(rng)
    kp[:, 2] = np.linspace(0, 1, 17)
    thresh = 0.5
    out = draw_skeleton(image, kp, score_thresh=thresh, thickness=1, radius=2, kset=COCO17)
    changed = (out != image).any(-1)
    kept = kp[:, 2] > thresh
    segments = [(kp[a, :2], kp[b, :2]) for a, b in SKELETON if kept[a] and kept[b]]
    segments += [(kp[k, :2], kp[k, :2]) for k in np.flatnonzero(kept)]
    dist = _dist_to_segments(changed.shape, segments)
    assert dist[changed].max() <= 2 + 2.5  # radius + rounding + antialiasing
    # Nothing drawn when all are below; everything when the threshold is negative.
    assert np.array_equal(draw_skeleton(image, kp, score_thresh=1.0, kset=COCO17), image)
    kp0 = kp.copy()
    kp0[:, 2] = 0
    assert not np.array_equal(draw_skeleton(image, kp0, score_thresh=-1, kset=COCO17), image)


def test_nan_and_far_away_joints_are_skipped():
    image = np.zeros((50, 50, 3), np.uint8)
    kp = np.zeros((17, 3))
    kp[0] = (np.nan, 10, 1)
    kp[1] = (1e12, 10, 1)
    out = draw_skeleton(image, kp, score_thresh=0.5, kset=COCO17)
    assert np.array_equal(out, image)


def test_box_score_indices_and_people():
    rng = np.random.default_rng(2)
    image = np.zeros((160, 200, 3), np.uint8)
    kp = _person(rng)
    plain = draw_skeleton(image, kp, kset=COCO17)
    boxed = draw_skeleton(image, kp, box=(5, 15, 190, 140), score=0.87, show_indices=True, kset=COCO17)
    assert (boxed != plain).any()
    people = draw_people(image, [{"keypoints": kp, "box": (5, 15, 190, 140), "score": 0.5},
                                 {"keypoints": kp.ravel().tolist()}], kset=COCO17)
    assert people.shape == image.shape and (people != image).any()
    gt = draw_skeleton(image, kp, colors=GT_COLORS, kset=COCO17)
    assert tuple(gt[int(round(kp[0, 1])), int(round(kp[0, 0]))]) == GT_COLORS["centre"]


def test_bad_inputs():
    with pytest.raises(ValueError, match="uint8"):
        draw_skeleton(np.zeros((10, 10, 3), np.float32), np.zeros((17, 3)), kset=COCO17)
    with pytest.raises(ValueError, match=r"\(K, 3\)"):
        draw_skeleton(np.zeros((10, 10, 3), np.uint8), np.zeros((17, 2)), kset=COCO17)


def test_heatmap_overlay_whole_crop_and_warped():
    image = np.full((64, 48, 3), 100, np.uint8)
    hm = np.zeros((17, 16, 12), np.float32)
    hm[3, 8, 6] = 1.0
    color, strength = heatmap_to_color(hm)
    assert color.shape == (16, 12, 3) and strength.max() == 1.0
    out = overlay_heatmaps(image, hm)
    assert out.shape == image.shape
    peak = np.abs(out.astype(int) - image).sum(-1)
    y, x = np.unravel_index(np.argmax(peak), peak.shape)
    assert abs(y - 8 * 4) <= 4 and abs(x - 6 * 4) <= 4
    # Warped into a bigger image: outside the crop nothing changes.
    big = np.full((200, 300, 3), 100, np.uint8)
    mat = np.array([[2.0, 0, 100], [0, 2.0, 50]])  # heatmap px -> image px
    out = overlay_heatmaps(big, hm, heatmap_to_image=mat)
    changed = (out != big).any(-1)
    ys, xs = np.nonzero(changed)
    assert xs.min() >= 99 and xs.max() <= 100 + 2 * 12 and ys.min() >= 49 and ys.max() <= 50 + 2 * 16
    peak = np.abs(out.astype(int) - big).sum(-1)
    y, x = np.unravel_index(np.argmax(peak), peak.shape)
    assert abs(x - (100 + 2 * 6)) <= 2 and abs(y - (50 + 2 * 8)) <= 2


def test_grid_side_by_side_and_atomic_write(tmp_path):
    a = np.zeros((20, 30, 3), np.uint8)
    b = np.full((10, 30, 3), 255, np.uint8)
    sbs = side_by_side([a, b], labels=["pred", "gt"], gap=2)
    assert sbs.shape == (20, 62, 3)
    grid = make_grid([a] * 5, cols=2, gap=1)
    assert grid.shape == (3 * 20 + 2, 2 * 30 + 1, 3)
    with pytest.raises(ValueError, match="size"):
        make_grid([a, b], cols=2)
    path = write_image(tmp_path / "sub" / "x.png", sbs)
    assert np.array_equal(read_image(path), sbs)
    assert sorted(p.name for p in path.parent.iterdir()) == ["x.png"]
    with pytest.raises(ValueError, match="not found"):
        read_image(tmp_path / "missing.jpg")
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="cannot decode"):
        read_image(tmp_path / "bad.jpg")
    assert cv2.imread(str(path)) is not None


def test_another_keypoint_set_draws_its_own_skeleton_and_sides():
    # Three joints, a limb from l_paw to r_paw only: its middle is drawn in the centre colour (the
    # sides differ), the paws in their own side colours; 'tail' is no limb end.
    kset = KeypointSet(name="toy", names=("l_paw", "r_paw", "tail"), skeleton=((0, 1),))
    image = np.zeros((100, 300, 3), np.uint8)
    kp = np.array([[20, 50, 1], [280, 50, 1], [150, 90, 1]], np.float64)
    out = draw_skeleton(image, kp, score_thresh=0.5, thickness=3, radius=4, kset=kset)
    assert tuple(out[50, 150]) == SIDE_COLORS["centre"]
    assert tuple(out[50, 20]) == SIDE_COLORS["left"] and tuple(out[50, 280]) == SIDE_COLORS["right"]
    assert tuple(out[70, 150]) == (0, 0, 0)  # no limb to the tail
    # Without a set only the joints are drawn (centre colour); a set of another size is an error.
    bare = draw_skeleton(image, kp, score_thresh=0.5, thickness=3, radius=4)
    assert tuple(bare[50, 150]) == (0, 0, 0) and tuple(bare[50, 20]) == SIDE_COLORS["centre"]
    with pytest.raises(ValueError, match="keypoints has 3 joints but the keypoint set 'coco' has 17"):
        draw_skeleton(image, kp, kset=COCO17)

"""Predictor: preprocessing + decoding put keypoints where they are in the image; boxes; batching.

A "dot finder" stands in for the network: its heatmaps are the input's brightness pooled to
stride 4, so a bright dot in the image must come back as a keypoint on that dot, whatever the
box, codec convention or flip test.
"""

import json

import numpy as np
import pytest
import torch
from torch import nn

from pose.data import codecs
from pose.keypoints import COCO17
from pose.predictor import DetectionBoxes, PersonPose, Predictor, check_box, parse_box


class DotFinder(nn.Module):
    """(N, 3, H, W) -> (N, K, H/4, W/4): per-pixel brightness, pooled; counts its forward calls."""

    def __init__(self, num_joints: int = 17) -> None:
        super().__init__()
        self.num_joints = num_joints
        self.calls: list[int] = []
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(len(x))
        bright = x.mean(1, keepdim=True)
        bright = bright - bright.amin(dim=(2, 3), keepdim=True)
        pooled = nn.functional.avg_pool2d(bright, 4)
        pooled = pooled / pooled.amax(dim=(2, 3), keepdim=True).clamp_min(1e-6)
        return pooled.expand(-1, self.num_joints, -1, -1).contiguous() + self.dummy


def make_predictor(codec_name: str = "gaussian", flip_test: bool = False, **kwargs) -> Predictor:
    codec = codecs.build_codec(codec_name, input_size=(48, 64), heatmap_size=(12, 16), sigma=1.0,
                               flip_index=COCO17.flip_index)
    return Predictor(DotFinder(), codec, input_size=(48, 64), flip_test=flip_test, **kwargs)


def image_with_dot(x: int, y: int, size: tuple[int, int] = (160, 120)) -> np.ndarray:
    image = np.zeros((size[1], size[0], 3), np.uint8)
    image[y - 2:y + 3, x - 2:x + 3] = 255
    return image


@pytest.mark.parametrize("codec_name", ["gaussian", "dark", "udp"])
@pytest.mark.parametrize("flip_test", [False, True])
def test_keypoint_lands_on_the_dot(codec_name, flip_test):
    predictor = make_predictor(codec_name, flip_test=flip_test, shift_heatmap=codec_name == "gaussian")
    image = image_with_dot(70, 50)
    boxes = [(40, 20, 60, 80), (30, 30, 80, 60)]
    people = predictor.predict(image, boxes)
    assert len(people) == 2
    for person, box in zip(people, boxes):
        assert isinstance(person, PersonPose)
        assert person.keypoints.shape == (17, 2) and person.scores.shape == (17,)
        np.testing.assert_allclose(person.box, box)
        # Within one heatmap px (in image px: the padded box height over 16 rows).
        heatmap_px = max(box[3], box[2] / 0.75) * 1.25 / 16
        assert np.abs(person.keypoints - [70, 50]).max() < heatmap_px + 1, person.keypoints[0]
        assert person.box_score == 1.0
        assert person.keypoints_with_scores().shape == (17, 3)
    # One forward pass for all boxes (flipped copies included).
    assert predictor.model.calls == [4 if flip_test else 2]


def test_whole_image_when_no_boxes_and_heatmaps():
    predictor = make_predictor()
    image = image_with_dot(100, 40)
    (person,) = predictor.predict(image, return_heatmaps=True)
    np.testing.assert_allclose(person.box, [0, 0, 160, 120])
    heatmap_px = 160 / 0.75 * 1.25 / 16
    assert np.abs(person.keypoints - [100, 40]).max() < heatmap_px + 1
    assert person.heatmaps.shape == (17, 16, 12)
    # The heatmap->image matrix agrees with the codec's own mapping, and sends the peak near the dot.
    peak = np.unravel_index(np.argmax(person.heatmaps[0]), person.heatmaps[0].shape)
    xy = person.heatmap_to_image @ np.array([peak[1], peak[0], 1.0])
    expected = predictor.codec.to_image(np.array([[[peak[1], peak[0]]]], np.float32),
                                        np.array([[80, 60]], np.float32),
                                        np.array([[160 / 200 * 1.25, 160 / 0.75 / 200 * 1.25]], np.float32))
    np.testing.assert_allclose(xy, expected[0, 0], atol=1e-3)
    assert np.abs(xy - [100, 40]).max() < heatmap_px + 1
    result = person.to_result(7)
    assert result["image_id"] == 7 and len(result["keypoints"]) == 51
    json.dumps(result)


def test_max_batch_splits_forward_passes():
    predictor = make_predictor(max_batch=2)
    predictor.predict(image_with_dot(70, 50), [(40, 20, 60, 80)] * 5)
    assert predictor.model.calls == [2, 2, 1]


@pytest.mark.parametrize("box, message", [
    ((200, 10, 20, 20), "outside"),
    ((-50, 10, 20, 20), "outside"),
    ((10, 10, 0, 20), "zero or negative"),
    ((10, 10, 20, -1), "zero or negative"),
    ((float("nan"), 10, 20, 20), "NaN"),
    ((10, 10, 20), "4 numbers"),
])
def test_bad_boxes_name_the_box(box, message):
    predictor = make_predictor()
    with pytest.raises(ValueError, match=message) as info:
        predictor.predict(image_with_dot(70, 50), [(40, 20, 60, 80), box])
    assert "box 1" in str(info.value)
    with pytest.raises(ValueError, match=message):
        check_box(box, (160, 120))


def test_bad_image():
    predictor = make_predictor()
    with pytest.raises(ValueError, match="uint8"):
        predictor.predict(np.zeros((10, 10), np.uint8))


def test_detection_boxes(tmp_path):
    det_file = tmp_path / "dets.json"
    det_file.write_text(json.dumps([
        {"image_id": 397133, "category_id": 1, "bbox": [1, 2, 30, 40], "score": 0.9},
        {"image_id": 397133, "category_id": 1, "bbox": [5, 5, 10, 10], "score": 0.1},
        {"image_id": 397133, "category_id": 2, "bbox": [5, 5, 10, 10], "score": 0.9},
        {"image_id": 5, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 0.5},
    ]))
    dets = DetectionBoxes(det_file, score_thresh=0.2)
    boxes, scores = dets.for_image(file_name="000000397133.jpg")
    np.testing.assert_allclose(boxes, [[1, 2, 30, 40]])
    np.testing.assert_allclose(scores, [0.9])
    assert dets.for_image(12)[0].shape == (0, 4)
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps({"images": [{"id": 5, "file_name": "street.jpg"}], "annotations": []}))
    assert DetectionBoxes(det_file, gt_file=gt).image_id_for("street.jpg") == 5
    with pytest.raises(ValueError, match="no number"):
        dets.image_id_for("street.jpg")
    with pytest.raises(FileNotFoundError, match="not found"):
        DetectionBoxes(tmp_path / "missing.json")


def test_parse_box():
    assert parse_box("1,2,3.5,4") == (1.0, 2.0, 3.5, 4.0)
    for bad in ("1,2,3", "a,b,c,d", "1,2,3,nan"):
        with pytest.raises(ValueError, match="box"):
            parse_box(bad)

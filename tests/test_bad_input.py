"""Malformed input at every entry point: a clear error naming the fault, or a documented handling.

Each table row is one fault. An error must be of the entry point's documented type (ConfigError,
DatasetError, CorruptImageError, WeightsError, ValueError, a non-zero exit status) with a message
that names the file, key or value at fault; never a bare cv2.error, IndexError, KeyError,
ZeroDivisionError or json/pickle error from deep inside a library. A handled fault (gray or RGBA
images converted, degenerate boxes dropped and counted) is checked for its documented result. The
tools must leave no results file behind when they fail.
"""

import argparse
import contextlib
import io
import json
import logging
import runpy
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from pose.config import ConfigError, load_config
from pose.data import CocoKeypoints, DatasetError
from pose.data.codecs import build_codec
from pose.data.image_io import CorruptImageError, read_image
from pose.data.synthetic import generate_synthetic_coco
from pose.keypoints import COCO17, CROWDPOSE14
from pose.models import WeightsError, build_model, create_model, load_weights
from pose.predictor import Predictor

torch.set_num_threads(1)
pytestmark = pytest.mark.timeout(60)  # a hang fails fast

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "experiments" / "synthetic" / "tiny.yaml"
IN, HM = (48, 64), (12, 16)
NAN = float("nan")


def keypoints(x: float = 50, y: float = 40) -> list[float]:
    kp = np.zeros((17, 3))
    kp[:, 0] = np.linspace(x, x + 30, 17)
    kp[:, 1] = np.linspace(y, y + 40, 17)
    kp[:, 2] = 2
    return kp.ravel().tolist()


def annotation(ann_id: int = 10, **changes) -> dict:
    ann = {"id": ann_id, "image_id": 1, "category_id": 1, "iscrowd": 0, "bbox": [45, 35, 40, 50],
           "area": 2000.0, "num_keypoints": 17, "keypoints": keypoints()}
    ann.update(changes)
    return {k: v for k, v in ann.items() if v is not None}


def coco_file(anns: list[dict] | None = None, **image_changes) -> dict:
    image = {"id": 1, "file_name": "000000000001.jpg", "width": 160, "height": 120, **image_changes}
    return {"images": [{k: v for k, v in image.items() if v is not None}],
            "annotations": [annotation()] if anns is None else anns,
            "categories": [COCO17.coco_category(name="person")]}


def write(path: Path, content) -> Path:
    """bytes or str as they are, anything else as JSON (NaN written as the non-standard NaN)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def image_bytes(array: np.ndarray, ext: str) -> bytes:
    ok, data = cv2.imencode(ext, array)
    assert ok
    return data.tobytes()


TEXTURE = cv2.resize(np.random.default_rng(0).integers(0, 255, (15, 20, 3), dtype=np.uint8), (160, 120))
JPEG = image_bytes(TEXTURE, ".jpg")
PNG = image_bytes(TEXTURE, ".png")


@pytest.fixture
def coco_root(tmp_path) -> Path:
    root = tmp_path / "coco"
    write(root / "images" / "val2017" / "000000000001.jpg", JPEG)
    write(root / "annotations" / "person_keypoints_val2017.json", coco_file())
    return root


def dataset(root: Path, codec: str = "gaussian", **kwargs) -> CocoKeypoints:
    return CocoKeypoints(root=root, image_set="val2017", train=False,
                         codec=build_codec(codec, input_size=IN, heatmap_size=HM, sigma=1.0), **kwargs)


# --- config -----------------------------------------------------------------------------------------

CONFIG_FAULTS = {
    "unknown key": ("model:\n  archh: hrnet_tiny\n", ["unknown key 'model.archh'", "valid keys of model"]),
    "unknown section": ("modle:\n  arch: hrnet_tiny\n", ["unknown key 'modle'"]),
    "word for an int": ("train:\n  epochs: ten\n", ["train.epochs must be an integer, got 'ten'"]),
    "string for an int": ("train:\n  epochs: '10'\n", ["train.epochs must be an integer"]),
    "list of 3 for 2": ("data:\n  input_size: [48, 64, 3]\n", ["data.input_size must be a list of 2"]),
    "number for a list": ("data:\n  input_size: 48\n", ["data.input_size must be a list"]),
    "word in a list": ("data:\n  mean: [0.5, x, 0.5]\n", ["data.mean[1] must be a number"]),
    "NaN": ("train:\n  lr: .nan\n", ["train.lr must be a finite number"]),
    "infinity": ("train:\n  lr: .inf\n", ["train.lr must be a finite number"]),
    "invalid choice": ("model:\n  psa: maybe\n", ["model.psa='maybe' is not one of none, parallel, sequential"]),
    "number for a section": ("model: 3\n", ["model must be a mapping"]),
    "truncated": ("model:\n  arch: [hrnet_tiny\n", ["not valid YAML"]),
    "tab indent": ("model:\n\tarch: hrnet_tiny\n", ["not valid YAML"]),
    "list at top level": ("- model\n- train\n", ["top level must be a mapping, got list"]),
    "string at top level": ("just a string\n", ["top level must be a mapping, got str"]),
    "missing base": ("base: nowhere.yaml\n", ["base config 'nowhere.yaml' not found"]),
    "base a list": ("base: [a.yaml]\n", ["'base' must be a path string"]),
    "base loop": ("base: bad.yaml\n", ["loops back to itself"]),
    "binary file": (b"\xff\xfe\x00binary\x80", ["not a UTF-8 text file"]),
    # data.keypoints: every field is checked against the set when the config names one.
    "flip pair outside": ("data:\n  keypoints:\n    name: coco\n    flip_pairs: [[1, 17]]\n",
                          ["data.keypoints", "flip_pairs[0] = (1, 17) names a joint outside 0..16"]),
    "joint in two flip pairs": ("data:\n  keypoints:\n    name: coco\n    flip_pairs: [[1, 2], [2, 3]]\n",
                                ["flip_pairs[1] uses joint 2 ('right_eye') twice"]),
    "sigmas of another length": ("data:\n  keypoints:\n    name: coco\n    sigmas: [0.1, 0.2]\n",
                                 ["data.keypoints", "'sigmas' has 2 values for 17 joints"]),
    "sigma not positive": ("data:\n  keypoints:\n    name: pet\n    names: [a, b]\n    sigmas: [0.1, -1]\n",
                           ["'sigmas' must be positive finite numbers, got -1.0"]),
    "skeleton out of range": ("data:\n  keypoints:\n    name: pet\n    names: [a, b]\n    skeleton: [[0, 2]]\n",
                              ["skeleton[0] = (0, 2) is not a pair of two joints in 0..1"]),
    "unknown set without names": ("data:\n  keypoints:\n    name: horse\n",
                                  ["'horse' is not a built-in set", "give data.keypoints.names"]),
    "num_joints against the set": ("model:\n  num_joints: 16\ndata:\n  keypoints:\n    name: coco\n",
                                   ["model.num_joints=16 but the keypoint set 'coco'", "has 17 joints"]),
    "two kinds of joint weights": ("train:\n  joint_weights: [1, 2]\n  set_joint_weights: true\n",
                                   ["train.joint_weights and train.set_joint_weights=true"]),
}


@pytest.mark.parametrize("text, expected", CONFIG_FAULTS.values(), ids=CONFIG_FAULTS.keys())
def test_config_faults(tmp_path, text, expected):
    path = write(tmp_path / "bad.yaml", text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    for part in [str(path), *expected]:
        assert part in str(info.value)


@pytest.mark.parametrize("text", ["", "# comments only\n"])
def test_config_empty_file_means_the_defaults(tmp_path, text):
    # Documented in pose.config: an empty YAML (or comments only) leaves the typed defaults as they are.
    cfg = load_config(write(tmp_path / "empty.yaml", text))
    assert cfg.model.arch == "hrnet_w32" and cfg.train.epochs == 210 and cfg.output_dir == "output/empty"


# --- dataset: annotation file -----------------------------------------------------------------------

def _kp_nan():
    kps = keypoints()
    kps[4] = NAN
    return coco_file([annotation(keypoints=kps)])


@pytest.mark.parametrize("content, message", [
    ("", r"not valid JSON \(Expecting value at line 1"),
    (json.dumps(coco_file())[:70], r"not valid JSON"),
    (b"\xff\xfe\x00\x01", r"not valid JSON"),
    ([], r"expected a COCO JSON object with an 'images' list"),
    ({"images": None}, r"expected a COCO JSON object with an 'images' list"),
    ({**coco_file(), "annotations": {}}, r"'annotations' must be a list"),
    (coco_file(id="1"), r"images\[0\] must have an integer 'id' and a 'file_name'"),
    (coco_file(width=None), r"image 1 needs numeric 'width' and 'height'"),
    (coco_file([annotation(image_id=None)]), r"annotations\[0\] must be an object with an 'image_id'"),
    (coco_file([annotation(keypoints=None)]), r"annotation 10 \(image 1\): 'keypoints' must be 51 .*'NoneType'"),
    (coco_file([annotation(keypoints=keypoints()[:50])]), r"annotation 10 .*must be 51 numbers .*got 50 values"),
    (coco_file([annotation(keypoints=[keypoints()])]), r"annotation 10 .*must be 51 numbers .*got 1 values"),
    (coco_file([annotation(keypoints=["1"] * 51)]), r"annotation 10 .*'keypoints' must be finite numbers"),
    (_kp_nan(), r"annotation 10 .*'keypoints' must be finite numbers"),
    (coco_file([annotation(bbox=[NAN, 1, 10, 10])]), r"annotation 10 .*'bbox' must be 4 numbers .*nan"),
    (coco_file([annotation(bbox=[1, 10, 10])]), r"annotation 10 .*'bbox' must be 4 numbers"),
    (coco_file([annotation(area="big")]), r"annotation 10 .*'area' must be a number, got 'big'"),
    ({**coco_file(), "categories": [COCO17.coco_category(), {**CROWDPOSE14.coco_category(category_id=2)}]},
     r"categories 1 and 2 have different 'keypoints' lists \(17 vs 14 names\)"),
    ({**coco_file(), "categories": [CROWDPOSE14.coco_category()]},
     r"annotation 10 \(image 1\): 'keypoints' must be 42 numbers \(14 keypoints .*got 51 values"),
    ({**coco_file(), "categories": [{"id": 1, "keypoints": ["a", "b", "a"]}]}, r"joint name 'a' appears twice"),
    ({**coco_file(), "categories": [{"id": 1, "keypoints": ["a", "b"], "skeleton": [[1, 3]]}]},
     r"category 1: skeleton\[0\] = \[1, 3\] is out of range: COCO skeletons are 1-based"),
    ({**coco_file(), "categories": [{"id": 1, "keypoints": "nose"}]}, r"'keypoints' must be a non-empty list"),
    ({**coco_file(), "categories": {"id": 1}}, r"'categories' must be a list"),
], ids=["empty file", "truncated", "not UTF-8", "list at top level", "images null", "annotations a dict",
        "image id a string", "image without width", "annotation without image_id", "no keypoints",
        "50 keypoint values", "nested keypoints", "keypoints as strings", "NaN keypoint", "NaN box",
        "box of 3 numbers", "area a word", "categories with different joints", "keypoints of another set",
        "joint named twice", "category skeleton out of range", "keypoints not a list", "categories a dict"])
def test_annotation_file_faults(coco_root, content, message):
    path = write(coco_root / "annotations" / "person_keypoints_val2017.json", content)
    with pytest.raises(DatasetError, match=message) as info:
        dataset(coco_root)
    assert str(path) in str(info.value)


# Degenerate boxes are dropped and counted ("empty box or area", logged), as documented in pose.data.coco;
# a box that clips to a single point used to be kept with scale 0 (UDP: ZeroDivisionError on loading).
DEGENERATE_BOXES = {
    "negative size": {"bbox": [40, 40, -10, -20]},
    "zero size": {"bbox": [40, 40, 0, 0]},
    "1x1 px": {"bbox": [40, 40, 1, 1]},
    "outside the image": {"bbox": [500, 400, 50, 50]},
    "zero area": {"area": 0.0},
}


@pytest.mark.parametrize("codec", ["gaussian", "dark", "udp"])
@pytest.mark.parametrize("change", DEGENERATE_BOXES.values(), ids=DEGENERATE_BOXES.keys())
def test_degenerate_boxes_are_dropped_and_counted(coco_root, caplog, change, codec):
    path = coco_root / "annotations" / "person_keypoints_val2017.json"
    write(path, coco_file([annotation(11, **change)]))
    with pytest.raises(DatasetError, match=r"no usable person instances .*0 of 1 annotations kept .*"
                                           r"1 empty box or area") as info:
        dataset(coco_root, codec)
    assert str(path) in str(info.value)
    write(path, coco_file([annotation(10), annotation(11, **change)]))
    with caplog.at_level(logging.INFO, logger="pose.data.coco"):
        ds = dataset(coco_root, codec)
    assert "1 of 2 annotations kept" in caplog.text and "1 empty box or area" in caplog.text
    assert len(ds) == 1 and ds[0]["image"].shape == (3, IN[1], IN[0])


def test_image_referenced_but_missing(coco_root):
    (coco_root / "images" / "val2017" / "000000000001.jpg").unlink()
    ds = dataset(coco_root)  # the image is read when the item is
    with pytest.raises(FileNotFoundError, match=r"image not found: .*val2017/000000000001.jpg"):
        ds[0]


# --- dataset: detection-results file ----------------------------------------------------------------

DET = {"image_id": 1, "category_id": 1, "bbox": [40, 30, 50, 60], "score": 0.9}


@pytest.mark.parametrize("content, message", [
    ("", r"dets.json: not valid JSON"),
    (json.dumps([DET, DET])[:50], r"dets.json: not valid JSON"),
    ({"detections": [DET]}, r"dets.json: top level is dict; expected a JSON list"),
    ([{**DET, "bbox": [NAN, 30, 50, 60]}], r"dets.json: entry 0 is .*NaN.*expected a JSON list"),
    ([{**DET, "image_id": "1"}], r"dets.json: entry 0 .*image_id: int"),
    ([{**DET, "image_id": 77}], r"dets.json: none of its image ids is in .*person_keypoints_val2017.json"),
    ([{**DET, "bbox": [500, 30, 50, 60]}, {**DET, "bbox": [-80, 30, 50, 60]}],
     r"no usable person instances .*dets.json: 0 of 2 detections kept \(dropped: 2 box outside the image\)"),
    ([{**DET, "bbox": [40, 30, 0, 60]}], r"dets.json: 0 of 1 detections kept \(dropped: 1 empty box\)"),
    ([], r"dets.json: 0 of 0 detections kept"),
], ids=["empty file", "truncated", "dict at top level", "NaN box", "image id a string", "another dataset",
        "boxes outside the image", "zero-size box", "empty list"])
def test_detection_file_faults(coco_root, content, message):
    det = write(coco_root / "dets.json", content)
    with pytest.raises(DatasetError, match=message):
        dataset(coco_root, use_gt_bbox=False, det_file=det)


def test_detection_outside_the_image_is_dropped_and_counted(coco_root, caplog):
    det = write(coco_root / "dets.json", [DET, {**DET, "bbox": [160, 10, 30, 30]}, {**DET, "bbox": [10, -40, 30, 40]}])
    with caplog.at_level(logging.INFO, logger="pose.data.coco"):
        ds = dataset(coco_root, use_gt_bbox=False, det_file=det)
    assert len(ds) == 1 and "1 of 3 detections kept (dropped: 2 box outside the image)" in caplog.text


# --- images -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("content, message", [
    (b"", "empty file (0 bytes)"),
    (b"this is a text file, not an image\n", "cannot decode (34 bytes)"),
    (JPEG[:len(JPEG) // 2], "truncated JPEG (no end-of-image marker)"),
    (b"\xff\xd8", "truncated JPEG"),
    (PNG[:len(PNG) // 2], "cannot decode"),
], ids=["empty file", "text file", "truncated JPEG", "JPEG header only", "truncated PNG"])
@pytest.mark.parametrize("reduce", [1, 4])
def test_unreadable_image_files(tmp_path, content, message, reduce):
    path = write(tmp_path / "picture.jpg", content)
    with pytest.raises(CorruptImageError) as info:
        read_image(path, reduce)
    assert str(path) in str(info.value) and message in str(info.value)


def _gray(value=100, shape=(30, 40)):
    return np.full(shape, value, np.uint8)


# (array written, extension, expected first pixel BGR after read_image): gray is replicated, alpha
# dropped (not blended), 16-bit divided by 256; always (H, W, 3) uint8.
IMAGE_KINDS = {
    "gray PNG": (_gray(), ".png", [100, 100, 100]),
    "gray JPEG": (_gray(), ".jpg", [100, 100, 100]),
    "RGBA PNG": (np.dstack([np.full((30, 40, 3), (10, 20, 30), np.uint8), _gray(0)]), ".png", [10, 20, 30]),
    "16-bit PNG": (np.full((30, 40, 3), 40000, np.uint16), ".png", [156, 156, 156]),
    "16-bit gray PNG": (np.full((30, 40), 257 * 50, np.uint16), ".png", [50, 50, 50]),
    "1x1 PNG": (np.full((1, 1, 3), 7, np.uint8), ".png", [7, 7, 7]),
    "1x1 JPEG": (_gray(128, (1, 1)), ".jpg", [128, 128, 128]),
}


@pytest.mark.parametrize("array, ext, bgr", IMAGE_KINDS.values(), ids=IMAGE_KINDS.keys())
def test_image_kinds_read_as_bgr(tmp_path, array, ext, bgr):
    path = write(tmp_path / f"picture{ext}", image_bytes(array, ext))
    image = read_image(path)
    assert image.dtype == np.uint8 and image.shape == (*array.shape[:2], 3)
    np.testing.assert_allclose(image[0, 0], bgr, atol=2)  # JPEG: rounding
    h, w = array.shape[:2]
    for reduce in (2, 8):
        if ext == ".jpg":  # DCT scaling rounds up
            size = (-(-h // reduce), -(-w // reduce))
        else:  # OpenCV's resize rounds down; an image smaller than the reduction comes back whole (was a cv2.error)
            size = (h, w) if min(h, w) < reduce else (h // reduce, w // reduce)
        small = read_image(path, reduce)
        assert small.dtype == np.uint8 and small.shape == (*size, 3)
        np.testing.assert_allclose(small[0, 0], bgr, atol=2)


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    torch.manual_seed(0)
    return Predictor.from_config(load_config(TINY), None, flip_test=True)


@pytest.mark.parametrize("array, ext, bgr", IMAGE_KINDS.values(), ids=IMAGE_KINDS.keys())
def test_image_kinds_through_the_predictor(tmp_path, predictor, array, ext, bgr):
    image = read_image(write(tmp_path / f"picture{ext}", image_bytes(array, ext)))
    h, w = image.shape[:2]
    inputs, _, _ = predictor.preprocess(image, np.array([[0, 0, w, h]], np.float32))
    assert inputs.shape == (1, 3, IN[1], IN[0]) and torch.isfinite(inputs).all()
    for boxes in (None, [(0, 0, w, h), (-2, -2, w + 4, h + 4)]):
        people = predictor.predict(image, boxes)
        assert len(people) == (1 if boxes is None else 2)
        for person in people:
            assert person.keypoints.shape == (17, 2) and np.isfinite(person.keypoints).all()
            assert np.isfinite(person.scores).all()


@pytest.mark.parametrize("array, ext, bgr", IMAGE_KINDS.values(), ids=IMAGE_KINDS.keys())
@pytest.mark.parametrize("reduced_decode", [False, True])
def test_image_kinds_through_the_dataset(coco_root, array, ext, bgr, reduced_decode):
    h, w = array.shape[:2]
    write(coco_root / "images" / "val2017" / f"odd{ext}", image_bytes(array, ext))
    write(coco_root / "annotations" / "person_keypoints_val2017.json",
          coco_file(file_name=f"odd{ext}", width=w, height=h))
    # A detection box much larger than the image: with reduced_decode, the smallest decode (1/8).
    det = write(coco_root / "dets.json", [{**DET, "bbox": [0, 0, w, h]}, {**DET, "bbox": [0, 0, 400, 300]}])
    ds = dataset(coco_root, use_gt_bbox=False, det_file=det, reduced_decode=reduced_decode)
    assert len(ds) == 2
    items = [ds[0], ds[1]]
    for item in items:
        assert item["image"].shape == (3, IN[1], IN[0]) and torch.isfinite(item["image"]).all()
    if min(h, w) > 1:  # the crop centre shows the image's colour (RGB, normalised as ImageNet)
        mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
        rgb = (items[0]["image"][:, IN[1] // 2, IN[0] // 2] * std + mean) * 255
        np.testing.assert_allclose(rgb.numpy(), bgr[::-1], atol=3)


# --- heatmap codecs ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["gaussian", "dark", "udp"])
@pytest.mark.parametrize("joint, vis", [((NAN, 20.0), 1), ((20.0, NAN), 2), ((np.inf, 20.0), 1),
                                        ((-np.inf, 20.0), 1), ((20.0, 30.0), NAN)],
                         ids=["NaN x", "NaN y", "+inf x", "-inf x", "NaN visibility"])
def test_encode_non_finite_joint_is_unlabelled(name, joint, vis):
    codec = build_codec(name, input_size=IN, heatmap_size=HM, sigma=1.0)
    joints = np.full((17, 2), 20.0)
    visible = np.ones(17)
    joints[3], visible[3] = joint, vis
    heatmaps, weights = codec.encode(joints, visible)
    assert np.isfinite(heatmaps).all() and heatmaps.shape == (17, HM[1], HM[0])
    assert weights[3] == 0 and (heatmaps[3] == 0).all()
    assert (np.delete(weights, 3) == 1).all() and heatmaps[0].max() > 0.5  # the others are encoded


def _nan_maps():
    maps = np.random.default_rng(0).random((2, 17, *HM[::-1])).astype(np.float32)
    maps[1, 5, 3, 3] = NAN
    return maps


@pytest.mark.parametrize("name", ["gaussian", "dark", "udp"])
@pytest.mark.parametrize("call, message", [
    (lambda c: c.encode(np.zeros(34), np.ones(17)), r"encode: joints must be \(K, 2\) crop px, got shape \(34,\)"),
    (lambda c: c.encode(np.zeros((1, 17, 2)), np.ones(17)), r"encode: joints must be \(K, 2\) .*\(1, 17, 2\)"),
    (lambda c: c.encode(np.zeros((17, 2)), np.ones(16)), r"encode: 17 joints but 16 visibility flags"),
    (lambda c: c.decode(np.zeros((17, 16, 12))), r"heatmaps must be \(N, K, h, w\), got shape \(17, 16, 12\)"),
    (lambda c: c.decode(np.zeros((16, 12))), r"heatmaps must be \(N, K, h, w\), got shape \(16, 12\)"),
    (lambda c: c.decode(np.zeros((1, 2, 17, 16, 12))), r"heatmaps must be \(N, K, h, w\)"),
    (lambda c: c.decode(np.zeros((1, 17, 16, 12), np.complex64)), r"heatmaps must be real numbers, got dtype"),
    (lambda c: c.decode(_nan_maps()), r"heatmaps have 1 NaN or infinite values \(in 1 of 34 maps\)"),
    (lambda c: c.decode(_nan_maps(), refine="dark"), r"1 NaN or infinite values"),
    (lambda c: c.decode(np.full((1, 17, 16, 12), np.inf), refine="none"), r"3264 NaN or infinite .*17 of 17 maps"),
    (lambda c: c.decode(np.zeros((1, 17, 16, 12)), refine="best"), r"unknown refine 'best'"),
    (lambda c: c.to_image(np.zeros((2, 17, 2)), np.zeros((3, 2)), np.ones((3, 2))), r"to_image: expected coords"),
    (lambda c: c.to_image(np.zeros((17, 2)), np.zeros((1, 2)), np.ones((1, 2))), r"to_image: .*got \(17, 2\)"),
    (lambda c: c.to_image(np.zeros((2, 17, 3)), np.zeros((2, 2)), np.ones((2, 2))), r"to_image: .*\(2, 17, 3\)"),
    (lambda c: c.flip_back(torch.zeros(17, 16, 12), shift=True), r"flip_back: expected \(N, 17, h, w\)"),
    (lambda c: c.flip_back(torch.zeros(1, 16, 16, 12), shift=True), r"got \(1, 16, 16, 12\)"),
], ids=["flat joints", "3-D joints", "visibility count", "rank 3", "rank 2", "rank 5", "complex dtype",
        "NaN heatmap", "NaN heatmap (dark)", "inf heatmaps", "unknown refine", "to_image counts",
        "to_image 2-D coords", "to_image (x, y, s)", "flip_back rank 3", "flip_back 16 joints"])
def test_codec_shape_and_value_faults(name, call, message):
    with pytest.raises(ValueError, match=message):
        call(build_codec(name, input_size=IN, heatmap_size=HM, sigma=1.0, flip_index=COCO17.flip_index))


# --- weight loading ---------------------------------------------------------------------------------

def _write_weights(kind: str, path: Path) -> None:
    if kind == "empty file":
        write(path, b"")
    elif kind == "truncated":
        torch.save({"model": create_model("hrnet_tiny").state_dict()}, path)
        write(path, path.read_bytes()[:3000])
    elif kind == "text file":
        write(path, "epoch: 3\nthis is text\n")
    elif kind == "another architecture":
        torch.save(create_model("resnet_tiny").state_dict(), path)
    elif kind == "another PSA setting":
        torch.save(create_model("hrnet_tiny", psa="parallel").state_dict(), path)
    elif kind == "checkpoint without model weights":
        torch.save({"epoch": 3, "optimizer": {"state": {}, "param_groups": []}, "best_ap": 0.5}, path)
    elif kind == "list":
        torch.save([torch.zeros(3)], path)
    elif kind == "pickled object":  # as checkpoints that saved their argparse namespace
        torch.save({"model": create_model("hrnet_tiny").state_dict(), "args": argparse.Namespace(lr=1)}, path)
    elif kind == "a folder":
        path.mkdir()


WEIGHT_FAULTS = {
    "empty file": r"weights file .*w.pth is empty \(0 bytes\)",
    "truncated": r"cannot read weights file .*w.pth \(corrupt, truncated",
    "text file": r"cannot read weights file .*w.pth: not a PyTorch checkpoint .*b'epoch: ",
    "another architecture": r"(?s)weights file .*w.pth does not match PoseHighResolutionNet .*missing in the",
    "another PSA setting": r"(?s)w.pth does not match PoseHighResolutionNet .*70 unexpected .*psa",
    "checkpoint without model weights": r"w.pth has no tensors \(top-level keys: epoch, optimizer, best_ap\)",
    "list": r"w.pth holds a list, not a state dict",
    "pickled object": r"w.pth .*Unsupported global: GLOBAL argparse.Namespace .*only tensors",
    "a folder": r"weights path .*w.pth is not a file",
    "missing": r"weights file .*w.pth does not exist",
}


@pytest.mark.parametrize("kind, message", WEIGHT_FAULTS.items(), ids=WEIGHT_FAULTS.keys())
def test_weight_file_faults(tmp_path, kind, message):
    path = tmp_path / "w.pth"
    _write_weights(kind, path)
    model = create_model("hrnet_tiny")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(WeightsError, match=message):
        load_weights(model, path)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # untouched


# --- the predictor ----------------------------------------------------------------------------------

IMAGE = np.zeros((120, 160, 3), np.uint8)


@pytest.mark.parametrize("boxes, message", [
    ([(NAN, 10, 30, 40)], r"box 0 \[nan, 10, 30, 40\] .*NaN or infinite"),
    ([(10, 10, 30, 40), (0, 0, np.inf, 40)], r"box 1 \[0, 0, inf, 40\] .*NaN or infinite"),
    ([(10, 10, 0, 40)], r"box 0 \[10, 10, 0, 40\] .*zero or negative size"),
    ([(10, 10, 30, -4)], r"box 0 \[10, 10, 30, -4\] .*zero or negative size"),
    ([(160, 10, 30, 40)], r"box 0 \[160, 10, 30, 40\] .*lies outside the 160x120 image"),
    ([(-40, 10, 30, 40)], r"box 0 \[-40, 10, 30, 40\] .*lies outside the 160x120 image"),
    ([(10, 130, 30, 40)], r"lies outside the 160x120 image"),
    ([(10, 10, 30)], r"box 0 \[10.0, 10.0, 30.0\] must have 4 numbers x, y, w, h, got 3"),
    ([("a", 10, 30, 40)], r"box 0 \('a', 10, 30, 40\) is not 4 numbers"),
    ((10, 10, 30, 40), r"box 0 \[10.0\] must have 4 numbers .*a list of boxes"),
], ids=["NaN", "inf", "zero width", "negative height", "right of the image", "left of the image",
        "below the image", "3 numbers", "a string", "one box not in a list"])
def test_predictor_box_faults(predictor, boxes, message):
    with pytest.raises(ValueError, match=message):
        predictor.predict(IMAGE, boxes)


@pytest.mark.parametrize("image", [
    IMAGE[:, :, 0], np.zeros((120, 160, 4), np.uint8), IMAGE.astype(np.uint16), IMAGE.astype(np.float32),
    IMAGE.transpose(2, 0, 1), IMAGE[None], np.zeros((0, 0, 3), np.uint8), np.zeros((0, 160, 3), np.uint8),
    IMAGE.tolist(), None,
], ids=["gray 2-D", "RGBA", "uint16", "float32", "CHW", "batched", "0x0", "0 rows", "a list", "None"])
def test_predictor_image_array_faults(predictor, image):
    with pytest.raises(ValueError, match=r"image must be a non-empty uint8 BGR array of shape \(H, W, 3\), got"):
        predictor.predict(image)


class NanNet(torch.nn.Module):
    """A diverged network: NaN heatmaps."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full((len(x), 17, HM[1], HM[0]), NAN)


def test_predictor_with_a_diverged_network():
    codec = build_codec("gaussian", input_size=IN, heatmap_size=HM, sigma=1.0, flip_index=COCO17.flip_index)
    with pytest.raises(ValueError, match=r"heatmaps have 3264 NaN or infinite .*the network output is not finite"):
        Predictor(NanNet(), codec, input_size=IN, flip_test=False).predict(IMAGE)


def test_predictor_box_partly_outside_is_fine(predictor):
    # Documented in check_box: a box partly outside is cropped with zero padding.
    (person,) = predictor.predict(IMAGE, [(-20, -30, 60, 200)])
    assert np.isfinite(person.keypoints).all()


# --- tools/test.py ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bad_tools")
    root = generate_synthetic_coco(tmp / "data", seed=5, num_train_images=1, num_val_images=2,
                                   image_size=(160, 120), max_people=2)
    weights = tmp / "weights.pth"
    torch.manual_seed(0)
    torch.save({"model": build_model(load_config(TINY), verbose=False).state_dict()}, weights)
    return Path(root), weights


def _val_files(root: Path) -> tuple[list[Path], list[dict]]:
    dets = json.loads(next((root / "person_detection_results").glob("*.json")).read_text())
    return sorted((root / "images" / "val2017").iterdir()), dets


# Each row: what to break in a copy of the workspace -> (tool arguments and overrides, expected
# exit status, text that stderr must contain).
def _missing_weights(root, weights, tmp):
    return ["--weights", tmp / "nowhere.pth"], 1, ["weights file not found", "nowhere.pth"]


def _empty_weights(root, weights, tmp):
    return ["--weights", write(tmp / "empty.pth", b"")], 1, ["empty.pth is empty (0 bytes)"]


def _text_weights(root, weights, tmp):
    return ["--weights", write(tmp / "notes.pth", "not weights")], 1, ["notes.pth", "not a PyTorch checkpoint"]


def _other_arch_weights(root, weights, tmp):
    return ["--weights", weights, "model.psa=none"], 1, ["weights.pth does not match", "psa"]


def _truncated_dets(root, weights, tmp):
    text = json.dumps(_val_files(root)[1])
    det = write(tmp / "dets.json", text[:len(text) // 2])
    return ["--weights", weights, "test.use_gt_bbox=false", f"data.det_file={det}"], 1, ["dets.json: not valid JSON"]


def _other_dataset_dets(root, weights, tmp):
    det = write(tmp / "dets.json", [{**d, "image_id": d["image_id"] + 5000} for d in _val_files(root)[1]])
    return (["--weights", weights, "test.use_gt_bbox=false", f"data.det_file={det}"], 1,
            ["dets.json: none of its image ids is in", "person_keypoints_val2017.json"])


def _dets_outside(root, weights, tmp):
    det = write(tmp / "dets.json", [{**d, "bbox": [400, 300, 30, 40]} for d in _val_files(root)[1]])
    return (["--weights", weights, "test.use_gt_bbox=false", f"data.det_file={det}"], 1,
            ["dets.json", "box outside the image"])


def _corrupt_image(root, weights, tmp):
    image = _val_files(root)[0][0]
    write(image, b"GIF89a not really")
    return ["--weights", weights], 1, [image.name, "cannot decode"]


def _empty_image(root, weights, tmp):
    image = _val_files(root)[0][1]
    write(image, b"")
    return ["--weights", weights], 1, [image.name, "empty file (0 bytes)"]


def _truncated_image(root, weights, tmp):
    image = _val_files(root)[0][0]
    write(image, image.read_bytes()[:300])
    return ["--weights", weights], 1, [image.name, "truncated JPEG"]


def _missing_image(root, weights, tmp):
    image = _val_files(root)[0][0]
    image.unlink()
    return ["--weights", weights], 1, ["image not found", image.name]


def _truncated_annotations(root, weights, tmp):
    path = root / "annotations" / "person_keypoints_val2017.json"
    write(path, path.read_text()[:100])
    return ["--weights", weights], 1, ["person_keypoints_val2017.json: not valid JSON"]


def _unknown_key(root, weights, tmp):
    return ["--weights", weights, "test.flip=false"], 2, ["unknown key 'test.flip'"]


@pytest.mark.parametrize("fault", [
    _missing_weights, _empty_weights, _text_weights, _other_arch_weights, _truncated_dets, _other_dataset_dets,
    _dets_outside, _corrupt_image, _empty_image, _truncated_image, _missing_image, _truncated_annotations,
    _unknown_key,
], ids=lambda f: f.__name__.strip("_"))
def test_eval_tool_faults(workspace, tmp_path, capsys, fault):
    root = Path(shutil.copytree(workspace[0], tmp_path / "data"))
    args, status, expected = fault(root, workspace[1], tmp_path)
    options = [str(a) for a in args if "=" not in str(a)]
    overrides = [str(a) for a in args if "=" in str(a)]
    out_dir = tmp_path / "out"
    tool = runpy.run_path(str(REPO / "tools" / "test.py"))
    argv = ["--cfg", str(TINY), "--quiet", *options, f"data.root={root}", "data.synthetic.enabled=false",
            f"output_dir={out_dir}", "test.flip_test=false", *overrides]
    with contextlib.redirect_stdout(io.StringIO()):
        rc = tool["main"](tool["get_args_parser"]().parse_args(argv))
    err = capsys.readouterr().err
    assert rc == status, err
    for part in expected:
        assert part in err, err
    left = [p.name for p in out_dir.rglob("*") if p.is_file()] if out_dir.exists() else []
    assert not [n for n in left if n.endswith((".json", ".tmp"))], left  # no results, stats or temp files


# --- tools/visualize.py -----------------------------------------------------------------------------

def _visualize():
    return runpy.run_path(str(REPO / "tools" / "visualize.py"))


def run_visualize(*argv) -> int:
    tool = _visualize()
    with contextlib.redirect_stdout(io.StringIO()):
        return tool["main"](tool["get_args_parser"]().parse_args([str(a) for a in argv]))


@pytest.fixture
def drawn_set(tmp_path) -> tuple[Path, Path, list[dict]]:
    """Two COCO-named images, their annotation file, and matching results."""
    images = tmp_path / "images"
    anns, entries = [], []
    for i, image_id in enumerate((100, 101)):
        write(images / f"{image_id:012d}.jpg", JPEG)
        entries.append({"id": image_id, "file_name": f"{image_id:012d}.jpg", "width": 160, "height": 120})
        anns.append(annotation(i + 1, image_id=image_id))
    gt = write(tmp_path / "gt.json", {"images": entries, "annotations": anns,
                                      "categories": [COCO17.coco_category(name="person")]})
    results = [{"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 0.9,
                "bbox": a["bbox"]} for a in anns]
    return images, gt, results


@pytest.mark.parametrize("content, message", [
    (lambda r: json.dumps(r)[:120], "results.json: not valid JSON"),
    (lambda r: "", "results.json: not valid JSON"),
    (lambda r: {"results": r}, "results.json: a results file must be a JSON list"),
    (lambda r: [{**x, "image_id": x["image_id"] + 9000} for x in r], "another dataset"),
    (lambda r: [{**r[0], "keypoints": r[0]["keypoints"][:48]}], "entry 0 (image_id 100) has 48 keypoint values"),
    (lambda r: [{**r[0], "keypoints": 7}], "entry 0 (image_id 100): keypoints must be a list of numbers"),
    (lambda r: [{**r[0], "keypoints": ["x"] * 51}], "entry 0 (image_id 100): keypoints must be a list of numbers"),
    (lambda r: [{**r[0], "score": "high"}], "entry 0 (image_id 100): score must be a number, got 'high'"),
    (lambda r: [{**r[0], "image_id": [100]}], "entry 0 (image_id [100]): image_id must be an integer"),
    (lambda r: [{**r[0], "bbox": [1, 2]}], "entry 0 (image_id 100): bbox must be 4 numbers"),
    (lambda r: [{**r[0], "score": None}], "entry 0 (image_id 100): score must be a number, got None"),
], ids=["truncated", "empty file", "dict at top level", "another dataset", "48 keypoint values",
        "keypoints a number", "keypoints strings", "score a string", "image_id a list", "bbox of 2 numbers",
        "score null"])
@pytest.mark.parametrize("mode", ["results", "results --gt", "accuracy"])
def test_visualize_results_faults(drawn_set, tmp_path, capsys, content, message, mode):
    images, gt, results = drawn_set
    res = write(tmp_path / "results.json", content(results))
    out = tmp_path / "out"
    if mode == "accuracy":
        rc = run_visualize("accuracy", "--results", res, "--gt", gt, "--out", out)
    else:
        rc = run_visualize("results", "--results", res, "--images", images, "--out", out,
                           *(["--gt", gt] if "--gt" in mode else ["--keypoints", "coco"]))
    err = capsys.readouterr().err
    assert rc == 2 and message in err, err
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("change", [
    {"keypoints": [NAN] * 51}, {"bbox": [5000, 5000, 10, 10]}, {"bbox": [NAN] * 4}, {"keypoints": [1e30] * 51},
], ids=["NaN keypoints", "box outside the image", "NaN box", "keypoints far outside"])
def test_visualize_results_non_finite_or_outside_is_not_drawn(drawn_set, tmp_path, change):
    # Documented in pose.vis.draw_skeleton: non-finite (or far outside) joints and boxes are not drawn.
    images, gt, results = drawn_set
    res = write(tmp_path / "results.json", [{**r, **change} for r in results])
    out = tmp_path / "out"
    assert run_visualize("results", "--results", res, "--images", images, "--gt", gt, "--out", out) == 0
    assert sorted(p.name for p in out.iterdir()) == ["000000000100.jpg", "000000000101.jpg"]
    assert run_visualize("accuracy", "--results", res, "--gt", gt, "--out", tmp_path / "acc") == 0


@pytest.mark.parametrize("make, extra, message", [
    (lambda d: write(d / "p.jpg", JPEG), ["--weights", "{tmp}/nowhere.pth"], "weights file not found"),
    (lambda d: write(d / "p.jpg", JPEG), ["--weights", "{tmp}/empty.pth"], "empty.pth is empty (0 bytes)"),
    (lambda d: write(d / "p.jpg", JPEG), ["--random-init", "--box=160,10,30,40"],
     "box 0 [160, 10, 30, 40] (x, y, w, h) lies outside the 160x120 image"),
    (lambda d: write(d / "p.jpg", JPEG), ["--random-init", "--box=10,10,0,40"], "has zero or negative size"),
    (lambda d: write(d / "p.jpg", JPEG), ["--random-init", "--box=nan,10,30,40"], "must be 4 finite numbers"),
    (lambda d: write(d / "p.jpg", b""), ["--random-init"], "p.jpg: empty file (0 bytes)"),
    (lambda d: write(d / "p.jpg", b"plain text"), ["--random-init"], "p.jpg: cannot decode"),
    (lambda d: write(d / "p.jpg", JPEG[:2000]), ["--random-init"], "p.jpg: truncated JPEG"),
], ids=["missing weights", "empty weights", "box outside the image", "zero-size box", "NaN box",
        "empty image", "text image", "truncated image"])
def test_visualize_predict_faults(tmp_path, capsys, make, extra, message):
    write(tmp_path / "empty.pth", b"")
    src = make(tmp_path / "in")
    out = tmp_path / "out"
    extra = [a.format(tmp=tmp_path) for a in extra]
    rc = run_visualize("predict", "--cfg", TINY, "--input", src, "--out", out, "--no-flip", *extra)
    err = capsys.readouterr().err
    assert rc == 2 and message in err, err
    assert not out.exists() or not any(out.iterdir())


def test_visualize_predict_folder_reports_each_bad_image(tmp_path, capsys):
    # Documented exit status 1: the readable images are drawn, each failure is listed by name.
    folder = tmp_path / "in"
    for name, data in {"good.jpg": JPEG, "gray.png": image_bytes(_gray(), ".png"), "empty.jpg": b"",
                       "text.png": b"plain text", "cut.jpg": JPEG[:2000]}.items():
        write(folder / name, data)
    out = tmp_path / "out"
    assert run_visualize("predict", "--cfg", TINY, "--random-init", "--no-flip", "--input", folder, "--out", out) == 1
    err = capsys.readouterr().err
    assert "3 failed" in err and "empty.jpg" in err and "text.png" in err and "cut.jpg" in err
    assert sorted(p.name for p in out.iterdir()) == ["good.jpg", "gray.png"]

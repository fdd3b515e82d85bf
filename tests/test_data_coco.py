"""CocoKeypoints on a tiny COCO-format dataset written here: filtering, items, crops, boxes, errors."""

import json
import logging
import random
import sys
import types

import cv2
import numpy as np
import pytest
import torch

from pose.config import AugmentConfig, Config, apply_overrides
from pose.data import CocoKeypoints, DatasetError, build_dataset
from pose.data.codecs import build_codec
from pose.data.image_io import CorruptImageError, read_image, reduction_for_zoom
from pose.data.transforms import box_to_center_scale
from pose.keypoints import COCO17, CROWDPOSE14

IN, HM = (48, 64), (12, 16)
NO_AUG = AugmentConfig(flip=False, scale_factor=0.0, rot_factor=0.0, rot_prob=0.0, half_body_prob=0.0)


def textured(width, height, seed, cell=8):
    rng = np.random.default_rng(seed)
    image = cv2.resize(rng.integers(0, 255, (height // cell, width // cell, 3), dtype=np.uint8),
                       (width, height), interpolation=cv2.INTER_CUBIC)
    return cv2.GaussianBlur(image, (0, 0), 1.0)


def person(ann_id, image_id, box, kps=None, **extra):
    if kps is None:
        x, y, w, h = box
        pts = np.stack([np.linspace(x + 2, x + w - 2, 17), np.linspace(y + 2, y + h - 2, 17)], 1)
        kps = np.concatenate([pts, np.full((17, 1), 2.0)], 1)
        kps[3] = 0  # left ear unlabelled
        kps[5, 2] = 1  # occluded
    kps = np.asarray(kps, float).ravel().tolist()
    return {"id": ann_id, "image_id": image_id, "category_id": 1, "iscrowd": 0, "bbox": list(box),
            "area": float(box[2] * box[3]), "num_keypoints": 16, "keypoints": kps, **extra}


def write_json(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


@pytest.fixture
def coco_root(tmp_path):
    root = tmp_path / "coco"
    for split in ("train2017", "val2017"):
        (root / "images" / split).mkdir(parents=True)
        for i in (1, 2, 3):
            cv2.imwrite(str(root / "images" / split / f"{i:012d}.jpg"), textured(160, 120, i))
        images = [{"id": i, "file_name": f"{i:012d}.jpg", "width": 160, "height": 120} for i in (1, 2, 3)]
        anns = [
            person(10, 1, (40, 20, 50, 80)),
            person(11, 1, (10, 10, 30, 30), iscrowd=1),
            person(12, 1, (60, 30, 20, 20), kps=np.zeros((17, 3))),
            {**person(13, 1, (5, 5, 20, 20)), "area": 0.0},
            person(14, 2, (-10, 60, 60, 80)),  # partly outside: clipped
            {**person(15, 2, (10, 10, 20, 20)), "category_id": 2},
            person(16, 3, (100, 10, 40, 90)),
            person(17, 99, (100, 10, 40, 90)),  # no such image
        ]
        write_json(root / "annotations" / f"person_keypoints_{split}.json",
                   {"images": images, "annotations": anns, "categories": [COCO17.coco_category(name="person")]})
    write_json(root / "person_detection_results" / "dets.json", [
        {"image_id": 1, "category_id": 1, "bbox": [40, 20, 50, 80], "score": 0.9},
        {"image_id": 2, "category_id": 1, "bbox": [10, 10, 50, 60], "score": 0.1},
        {"image_id": 3, "category_id": 2, "bbox": [10, 10, 50, 60], "score": 0.9},
        {"image_id": 77, "category_id": 1, "bbox": [10, 10, 50, 60], "score": 0.9},
        {"image_id": 3, "category_id": 1, "bbox": [10, 10, 0, 60], "score": 0.9},
    ])
    return root


def make(root, codec_name="gaussian", **kwargs):
    codec = build_codec(codec_name, input_size=IN, heatmap_size=HM, sigma=1.0)
    kwargs.setdefault("image_set", "val2017")
    kwargs.setdefault("train", False)
    return CocoKeypoints(root=root, codec=codec, **kwargs)


KEYS = {"image", "target", "target_weight", "center", "scale", "rotation", "score", "area", "image_id", "category_id",
        "index", "joints"}


def test_filtering_counts_and_records(coco_root, caplog):
    with caplog.at_level(logging.INFO, logger="pose.data.coco"):
        ds = make(coco_root)
    assert len(ds) == 3 and ds.coco is not None
    assert ds.annotation_file == coco_root / "annotations" / "person_keypoints_val2017.json"
    log = caplog.text
    assert "3 of 8 annotations" in log and "1 crowd" in log and "1 not a keypoint category" in log
    assert "1 image not in 'images'" in log
    assert "1 empty box or area" in log and "1 no labelled keypoints" in log
    rec = ds.records[1]  # ann 14: x1 = 0, x2 = min(159, 0 + 59) = 59; y2 = min(119, 60 + 79) = 119
    np.testing.assert_allclose(rec["box"], [0, 60, 59, 59])
    center, scale = box_to_center_scale([0, 60, 59, 59], 0.75)
    np.testing.assert_allclose(rec["center"], center)
    np.testing.assert_allclose(rec["scale"], scale)
    assert set(np.unique(ds.records[0]["joints"][:, 2])) == {0.0, 1.0}  # visibility 2 clamped to 1


@pytest.mark.parametrize("codec_name", ["gaussian", "dark", "udp"])
def test_val_item_matches_official_pipeline(coco_root, codec_name):
    ds = make(coco_root, codec_name)
    item = ds[0]
    assert set(item) == KEYS
    assert item["image"].shape == (3, 64, 48) and item["image"].dtype == torch.float32
    assert item["target"].shape == (17, 16, 12) and item["target_weight"].shape == (17, 1)
    assert item["joints"].shape == (17, 3) and item["image_id"] == 1 and item["index"] == 0
    assert item["score"] == 1.0 and item["rotation"] == 0.0
    assert item["area"] == pytest.approx(float(item["scale"][0] * item["scale"][1]) * 200 ** 2)
    # Image: imread -> RGB -> warpAffine bilinear -> /255 -> ImageNet normalisation.
    rec = ds.records[0]
    image = cv2.cvtColor(cv2.imread(str(coco_root / "images/val2017/000000000001.jpg")), cv2.COLOR_BGR2RGB)
    mat = ds.codec.crop_matrix(rec["center"], rec["scale"], 0.0)
    crop = cv2.warpAffine(image, mat, IN, flags=cv2.INTER_LINEAR).astype(np.float32) / 255
    expected = ((crop - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]).transpose(2, 0, 1)
    np.testing.assert_allclose(item["image"].numpy(), expected, atol=1e-5)
    # Target: decodes back to the joints in the crop; the unlabelled joint has weight 0.
    weight = item["target_weight"].numpy().ravel()
    assert weight[3] == 0 and weight[0] == 1 and weight[5] == 1
    coords, _ = ds.codec.decode(item["target"].numpy()[None])
    image_pts = ds.codec.to_image(coords, item["center"].numpy()[None], item["scale"].numpy()[None])[0]
    err = np.abs(image_pts - rec["joints"][:, :2])[weight > 0]
    assert err.max() < 0.5 * rec["scale"][0] * 200 / HM[0] + 0.5


def test_train_items_collate_and_flip_is_folded_into_the_warp(coco_root):
    aug = AugmentConfig(flip=True, flip_prob=1.0, scale_factor=0.0, rot_factor=0.0, rot_prob=0.0,
                        half_body_prob=0.0)
    ds = make(coco_root, image_set="train2017", train=True, aug=aug)
    item = ds[0]
    rec = ds.records[0]
    np.testing.assert_allclose(item["center"][0], 160 - rec["center"][0] - 1)
    # Reference: the official way, mirror the image array, then warp with the mirrored centre.
    image = cv2.imread(str(coco_root / "images/train2017/000000000001.jpg"))[:, ::-1, ::-1]
    mat = ds.codec.crop_matrix(item["center"].numpy(), item["scale"].numpy(), 0.0)
    crop = cv2.warpAffine(np.ascontiguousarray(image), mat, IN, flags=cv2.INTER_LINEAR).astype(np.float32)
    ours = item["image"].numpy().transpose(1, 2, 0) * [0.229, 0.224, 0.225] + [0.485, 0.456, 0.406]
    assert np.abs(ours * 255 - crop).mean() < 0.5
    # Joints mirrored and swapped (right shoulder <- left shoulder), left ear label moved to the right ear.
    joints = item["joints"].numpy()
    np.testing.assert_allclose(joints[6, 0], 160 - rec["joints"][5, 0] - 1)
    assert joints[4, 2] == 0 and joints[3, 2] == 1
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=0)
    batch = next(iter(loader))
    assert batch["image"].shape == (2, 3, 64, 48) and batch["rotation"].shape == (2,)


def test_augmentation_draws_vary_and_stay_in_range(coco_root):
    aug = AugmentConfig(half_body_prob=1.0, half_body_min_joints=8)
    ds = make(coco_root, image_set="train2017", train=True, aug=aug)
    np.random.seed(0)
    random.seed(0)
    items = [ds[0] for _ in range(12)]
    rots = [it["rotation"] for it in items]
    assert all(-90 <= r <= 90 for r in rots) and len(set(rots)) > 3
    assert all(torch.isfinite(it["image"]).all() for it in items)
    base = ds.records[0]["scale"]
    assert any(float(it["scale"][0]) < base[0] * 0.8 for it in items)  # half-body crops are smaller


def test_detection_boxes(coco_root, caplog):
    with caplog.at_level(logging.INFO, logger="pose.data.coco"):
        ds = make(coco_root, use_gt_bbox=False, det_file=coco_root / "person_detection_results/dets.json",
                  det_score_thresh=0.2)
    assert len(ds) == 1
    for why in ("1 other category", "1 score < 0.2", "1 empty box", "1 image not in the annotation file"):
        assert why in caplog.text
    item = ds[0]
    assert item["score"] == pytest.approx(0.9) and (item["joints"] == 0).all()
    assert (item["target_weight"] == 0).all() and (item["target"] == 0).all()


def test_test_dev_without_annotation_file(coco_root):
    test_dir = coco_root / "images" / "test-dev2017"
    test_dir.mkdir()
    cv2.imwrite(str(test_dir / "000000000001.jpg"), textured(160, 120, 1))
    det = coco_root / "test_dets.json"
    write_json(det, [{"image_id": 1, "category_id": 1, "bbox": [40, 20, 50, 80], "score": 0.8}])
    with pytest.raises(DatasetError, match="data.keypoints.name='auto' but the data declares no set"):
        make(coco_root, image_set="test-dev2017", use_gt_bbox=False, det_file=det)
    ds = make(coco_root, image_set="test-dev2017", use_gt_bbox=False, det_file=det, keypoints=COCO17)
    assert ds.keypoints == COCO17 and ds.codec.flip_index == COCO17.flip_index
    assert ds.annotation_file is None and ds.coco is None and len(ds) == 1
    assert ds[0]["image"].shape == (3, 64, 48)
    with pytest.raises(FileNotFoundError, match="image_info_test-dev2017.json"):
        make(coco_root, image_set="test-dev2017", use_gt_bbox=True)
    # With an image-info file (no annotations), GT boxes are refused with a clear message.
    write_json(coco_root / "annotations" / "image_info_test-dev2017.json",
               {"images": [{"id": 1, "file_name": "000000000001.jpg", "width": 160, "height": 120}]})
    assert make(coco_root, image_set="test-dev2017", use_gt_bbox=False, det_file=det,
                keypoints=COCO17).coco is not None
    with pytest.raises(DatasetError, match="no keypoint annotations"):
        make(coco_root, image_set="test-dev2017", use_gt_bbox=True, keypoints=COCO17)


def test_reduced_decode_changes_only_interpolation_noise(tmp_path):
    root = tmp_path / "big"
    (root / "images" / "val2017").mkdir(parents=True)
    # Smooth content: a crop 1/8 the size then differs by interpolation only (~1 grey level when
    # aligned; a misalignment by half a reduced pixel gives ~8).
    image = textured(640, 480, 5, cell=32)
    cv2.imwrite(str(root / "images/val2017/a.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
    write_json(root / "annotations/person_keypoints_val2017.json", {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 640, "height": 480}],
        "annotations": [person(1, 1, (100, 40, 300, 400)), person(2, 1, (300, 200, 30, 40))],
        "categories": [COCO17.coco_category(name="person")]})
    assert reduction_for_zoom(48 / 375) == 4  # 300 x 400 box, padded: 375 px wide into 48
    for codec_name in ("gaussian", "udp"):
        full, reduced = (make(root, codec_name, reduced_decode=flag) for flag in (False, True))
        for i in range(2):
            a, b = full[i], reduced[i]
            torch.testing.assert_close(a["target"], b["target"])
            diff = (a["image"] - b["image"]).abs().mean().item() * 0.226 * 255  # in grey levels
            assert diff < (2.0 if i == 0 else 1e-6), (codec_name, i, diff)
    assert reduction_for_zoom(1.0) == 1 and reduction_for_zoom(0.5) == 2 and reduction_for_zoom(0.05) == 8


def test_image_cache_gives_the_same_items_and_decodes_once(coco_root, monkeypatch):
    from pose.data import coco as coco_mod
    decoded = []
    real = coco_mod.read_image
    monkeypatch.setattr(coco_mod, "read_image", lambda path, reduce=1: decoded.append(path) or real(path, reduce))
    plain, cached = make(coco_root), make(coco_root, cache_images=True)
    for _ in range(2):  # twice over: the second pass comes from the cache
        for i in range(len(plain)):
            a, b = plain[i], cached[i]
            for key in ("image", "target", "target_weight", "joints"):
                assert torch.equal(a[key], b[key]), key
    images = {rec["file_name"] for rec in plain.records}
    assert len(decoded) == 2 * len(plain) + len(images)  # plain: every time; cached: once per image
    with pytest.raises(ValueError, match="data.reduced_decode and data.cache_images exclude each other"):
        make(coco_root, cache_images=True, reduced_decode=True)


# --- bad inputs -----------------------------------------------------------------------------------

def test_missing_root_annotation_and_image(coco_root, tmp_path):
    with pytest.raises(FileNotFoundError, match="dataset root not found: .*nowhere"):
        make(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="image folder not found: .*val2018"):
        make(coco_root, image_set="val2018")
    (coco_root / "images" / "val2018").mkdir()
    with pytest.raises(FileNotFoundError, match="annotation file not found: .*person_keypoints_val2018.json"):
        make(coco_root, image_set="val2018")
    (coco_root / "images/val2017/000000000002.jpg").unlink()
    ds = make(coco_root)
    with pytest.raises(FileNotFoundError, match="image not found: .*000000000002.jpg"):
        ds[1]


def test_corrupt_image_raises_or_is_skipped_and_counted(coco_root, caplog):
    (coco_root / "images/train2017/000000000001.jpg").write_bytes(b"\xff\xd8 this is not a JPEG")
    ds = make(coco_root, image_set="train2017", train=True, aug=NO_AUG)
    with pytest.raises(CorruptImageError, match="000000000001.jpg"):
        ds[0]
    skipping = make(coco_root, image_set="train2017", train=True, aug=NO_AUG, skip_corrupt_images=True)
    random.seed(1)
    with caplog.at_level(logging.WARNING, logger="pose.data.coco"):
        item = skipping[0]
    assert item["image_id"] != 1 and skipping.num_skipped_images >= 1
    assert "000000000001.jpg" in caplog.text and "corrupt images skipped" in caplog.text
    # Evaluation never skips.
    val = make(coco_root, image_set="train2017", train=False, skip_corrupt_images=True)
    with pytest.raises(CorruptImageError):
        val[0]


def test_truncated_jpeg(tmp_path):
    path = tmp_path / "t.jpg"
    ok, data = cv2.imencode(".jpg", textured(64, 48, 0))
    path.write_bytes(data.tobytes()[: len(data) // 2])
    with pytest.raises(CorruptImageError, match="truncated JPEG"):
        read_image(path)


@pytest.mark.parametrize("text, message", [
    ('{"images": [1, 2,', r"person_keypoints_val2017.json: not valid JSON .*line 1"),
    ("[]", r"person_keypoints_val2017.json: expected a COCO JSON object with an 'images' list"),
    ('{"images": [{"id": 1}]}', r"images\[0\] must have an integer 'id' and a 'file_name'"),
])
def test_malformed_annotation_json(coco_root, text, message):
    (coco_root / "annotations/person_keypoints_val2017.json").write_text(text)
    with pytest.raises(DatasetError, match=message):
        make(coco_root)


def test_wrong_number_of_keypoints(coco_root):
    path = coco_root / "annotations/person_keypoints_val2017.json"
    data = json.loads(path.read_text())
    data["annotations"][0]["keypoints"] = data["annotations"][0]["keypoints"][:42]
    path.write_text(json.dumps(data))
    with pytest.raises(DatasetError, match=r"annotation 10 .*51 numbers .*got 42 values"):
        make(coco_root)
    with pytest.raises(DatasetError, match=r"data.keypoints names \['left_shoulder'.* but .*val2017.json "
                                           r"declares \['nose'"):
        make(coco_root, keypoints=CROWDPOSE14)
    data["annotations"][0]["keypoints"] = [0] * 51
    data["categories"] = [CROWDPOSE14.coco_category(name="person")]
    path.write_text(json.dumps(data))
    with pytest.raises(DatasetError, match=r"annotation 10 .*42 numbers \(14 keypoints .*got 51 values"):
        make(coco_root)


@pytest.mark.parametrize("content, message", [
    ({"image_id": 1}, r"top level is dict; expected a JSON list"),
    ([{"image_id": 1, "category_id": 1, "bbox": [1, 2, 3], "score": 0.5}], r"entry 0 .*bbox: \[x, y, w, h\]"),
    ([{"image_id": "1", "category_id": 1, "bbox": [1, 2, 3, 4], "score": 0.5}], r"entry 0 .*image_id: int"),
    ([{"image_id": 1, "category_id": 1, "bbox": [1, 2, 3, 4]}], r"entry 0 .*score: number"),
])
def test_detection_file_with_wrong_schema(coco_root, content, message):
    det = coco_root / "bad_dets.json"
    write_json(det, content)
    with pytest.raises(DatasetError, match=r"bad_dets.json: " + message):
        make(coco_root, use_gt_bbox=False, det_file=det)
    with pytest.raises(FileNotFoundError, match="detection-results file not found"):
        make(coco_root, use_gt_bbox=False, det_file=coco_root / "missing.json")


def test_build_dataset_from_config(coco_root, monkeypatch):
    base = [f"data.root={coco_root}", "data.input_size=[48,64]", "data.heatmap_size=[12,16]", "data.sigma=1"]
    cfg = apply_overrides(Config(), base)
    train = build_dataset(cfg, "train")
    assert train.train and train.aug == cfg.data.aug and train.image_set == "train2017"
    val = build_dataset(apply_overrides(cfg, ["test.use_gt_bbox=false", "test.det_score_thresh=0.5",
                                              "data.det_file=person_detection_results/dets.json"]), "val")
    assert not val.train and len(val) == 1
    assert val.det_file == coco_root / "person_detection_results/dets.json"
    with pytest.raises(ValueError, match="train, val"):
        build_dataset(cfg, "test")
    # Synthetic: ensure_synthetic is called first (a stand-in module records the call).
    calls = []
    fake = types.ModuleType("pose.data.synthetic")
    fake.ensure_synthetic = lambda data_cfg: calls.append(data_cfg) or coco_root
    monkeypatch.setitem(sys.modules, "pose.data.synthetic", fake)
    build_dataset(apply_overrides(cfg, ["data.synthetic.enabled=true"]), "val")
    assert len(calls) == 1 and calls[0].synthetic.enabled

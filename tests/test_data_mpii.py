"""MPII: the official loader's conventions, the recipe configs, official checkpoints, real samples."""

import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from pose.config import AugmentConfig, load_config
from pose.data import DatasetError, MpiiKeypoints, build_dataset
from pose.data.codecs import build_codec
from pose.data.mpii import official_center_scale
from pose.keypoints import MPII16
from pose.models import create_model, load_weights
from pose.vis import draw_skeleton

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("POSE_SHARED_DATA", ROOT.parent / "shared" / "data"))
MPII_SAMPLES = SHARED / "mpii_samples"
NO_AUG = AugmentConfig(flip=False, scale_factor=0.0, rot_factor=0.0, rot_prob=0.0, half_body_prob=0.0)


def _codec(size=(64, 64), heatmap=(16, 16)):
    return build_codec("gaussian", input_size=size, heatmap_size=heatmap, sigma=2, flip_index=MPII16.flip_index)


def _entry(image, center, scale, seed):
    rng = np.random.default_rng(seed)
    joints = np.stack([center[0] + rng.uniform(-40, 40, 16), center[1] + rng.uniform(-80, 80, 16)], 1)
    vis = (rng.random(16) > 0.2).astype(int)
    return {"image": image, "center": list(center), "scale": scale, "joints": joints.round(1).tolist(),
            "joints_vis": vis.tolist()}


@pytest.fixture
def mpii_root(tmp_path):
    root = tmp_path / "mpii"
    (root / "images").mkdir(parents=True)
    (root / "annot").mkdir()
    rng = np.random.default_rng(0)
    for name in ("a.jpg", "b.jpg"):
        cv2.imwrite(str(root / "images" / name), rng.integers(0, 255, (300, 400, 3), dtype=np.uint8))
    entries = [_entry("a.jpg", (200.0, 150.0), 0.9, 1), _entry("b.jpg", (180.5, 140.0), 1.1, 2),
               _entry("a.jpg", (-1.0, -1.0), 1.0, 3)]
    (root / "annot" / "valid.json").write_text(json.dumps(entries))
    test = [{k: e[k] for k in ("image", "center", "scale")} for e in entries]
    (root / "annot" / "test.json").write_text(json.dumps(test))
    return root, entries


def test_official_center_scale():
    c, s = official_center_scale([200.0, 150.0], 2.0)
    # Centre down by 15 * s, scale x 1.25, then both coordinates -1 (1-based MATLAB pixels).
    np.testing.assert_allclose(c, [199.0, 150.0 + 30.0 - 1.0])
    np.testing.assert_allclose(s, [2.5, 2.5])
    c, s = official_center_scale([-1.0, -1.0], 2.0)  # no adjustment where center[0] == -1
    np.testing.assert_allclose(c, [-2.0, -2.0])
    np.testing.assert_allclose(s, [2.0, 2.0])


def test_records_and_items(mpii_root):
    root, entries = mpii_root
    ds = MpiiKeypoints(root=root, image_set="valid", codec=_codec(), train=False)
    assert len(ds) == 3 and ds.has_ground_truth and ds.protocol == "mpii"
    assert ds.gt_file == root / "annot" / "gt_valid.mat"
    item = ds[1]
    e = entries[1]
    np.testing.assert_allclose(item["center"], [e["center"][0] - 1, e["center"][1] + 15 * 1.1 - 1], rtol=1e-6)
    np.testing.assert_allclose(item["scale"], [1.1 * 1.25] * 2, rtol=1e-6)
    joints = item["joints"].numpy()
    np.testing.assert_allclose(joints[:, :2], np.asarray(e["joints"]) - 1, rtol=1e-6)
    np.testing.assert_array_equal(joints[:, 2], e["joints_vis"])
    assert item["image_id"] == 1 and item["index"] == 1
    assert item["image"].shape == (3, 64, 64) and item["target"].shape == (16, 16, 16)
    # joints_vis is the target weight (a labelled joint outside the heatmap would also get 0).
    assert (item["target_weight"].view(-1)[np.asarray(e["joints_vis"]) == 0] == 0).all()
    # The test split has no joints: zeros, no ground truth, and no training on it.
    test = MpiiKeypoints(root=root, image_set="test", codec=_codec(), train=False)
    assert not test.has_ground_truth and not test[0]["joints"].any()
    with pytest.raises(DatasetError, match="test.json: has no 'joints'"):
        MpiiKeypoints(root=root, image_set="test", codec=_codec(), train=True, aug=NO_AUG)


def test_flip_swaps_mpii_pairs(mpii_root):
    root, _ = mpii_root
    flip = AugmentConfig(flip=True, flip_prob=1.0, scale_factor=0.0, rot_factor=0.0, rot_prob=0.0,
                         half_body_prob=0.0)
    plain = MpiiKeypoints(root=root, image_set="valid", codec=_codec(), train=True, aug=NO_AUG)[0]
    flipped = MpiiKeypoints(root=root, image_set="valid", codec=_codec(), train=True, aug=flip)[0]
    width = 400
    j0, j1 = plain["joints"].numpy(), flipped["joints"].numpy()
    swap = dict(MPII16.flip_pairs) | {b: a for a, b in MPII16.flip_pairs}
    assert swap[0] == 5 and swap[12] == 13  # right ankle <-> left ankle, right <-> left shoulder
    for k in range(16):  # pelvis, thorax, neck and head top stay (unlabelled joints are zeroed)
        src = swap.get(k, k)
        assert j1[k, 2] == j0[src, 2]
        if j0[src, 2] > 0:
            np.testing.assert_allclose(j1[k, :2], [width - 1 - j0[src, 0], j0[src, 1]], atol=1e-4)


@pytest.mark.parametrize("change, match", [
    (lambda e: e[0].pop("scale"), r"valid.json: entry 0: 'scale' must be a positive number"),
    (lambda e: e[1].update(joints=[[1, 2]] * 15), r"valid.json: entry 1: 'joints' must be 16 pairs"),
    (lambda e: e[2].update(center=[1, "x"]), r"valid.json: entry 2: 'center' must be 2 numbers"),
    (lambda e: e[0].pop("joints"), r"valid.json: 2 of 3 entries have 'joints'"),
    (lambda e: e[1].update(joints_vis=[1] * 17), r"entry 1: 'joints_vis' must be 16 numbers"),
])
def test_bad_annotations_are_named(mpii_root, change, match):
    root, entries = mpii_root
    change(entries)
    (root / "annot" / "valid.json").write_text(json.dumps(entries))
    with pytest.raises(DatasetError, match=match):
        MpiiKeypoints(root=root, image_set="valid", codec=_codec(), train=False)


def test_reduced_decode_is_refused(mpii_root):
    with pytest.raises(ValueError, match="data.reduced_decode=false"):
        MpiiKeypoints(root=mpii_root[0], image_set="valid", codec=_codec(), train=False, reduced_decode=True)


def test_missing_layout_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="MPII root not found"):
        MpiiKeypoints(root=tmp_path / "nope", image_set="valid", codec=_codec(), train=False)
    (tmp_path / "images").mkdir()
    with pytest.raises(FileNotFoundError, match=r"annot/valid.json"):
        MpiiKeypoints(root=tmp_path, image_set="valid", codec=_codec(), train=False)


def test_recipe_configs_and_factory(mpii_root):
    cfg = load_config(ROOT / "experiments/mpii/hrnet/w32_256x256_adam_lr1e-3.yaml")
    d, t, a = cfg.data, cfg.train, cfg.data.aug
    assert (d.dataset, d.train_set, d.val_set, cfg.model.num_joints) == ("mpii", "train", "valid", 16)
    assert (d.input_size, d.heatmap_size, d.sigma) == ((256, 256), (64, 64), 2.0)
    assert (a.flip, a.rot_factor, a.scale_factor, a.half_body_prob) == (True, 30.0, 0.25, 0.0)
    assert (t.optimizer, t.lr, t.epochs, t.lr_steps) == ("adam", 1e-3, 210, (170, 200))
    assert cfg.test.flip_test and cfg.test.shift_heatmap and cfg.test.use_gt_bbox
    res = load_config(ROOT / "experiments/mpii/resnet/res152_256x256_d256x3_adam_lr1e-3_psa_s.yaml")
    # The official MPII ResNet configs: 140 epochs with drops at 90/120.
    assert (res.model.arch, res.model.psa, res.train.epochs, res.train.lr_steps) == \
        ("resnet152", "sequential", 140, (90, 120))
    assert res.data.aug.rot_factor == 30.0 and res.data.input_size == (256, 256)
    root, _ = mpii_root
    small = load_config(ROOT / "experiments/mpii/hrnet/w32_256x256_adam_lr1e-3.yaml",
                        [f"data.root={root}", "data.input_size=[64,64]", "data.heatmap_size=[16,16]"])
    ds = build_dataset(small, "val")
    assert isinstance(ds, MpiiKeypoints) and ds.codec.flip_index == MPII16.flip_index
    with pytest.raises(ValueError, match="test.use_gt_bbox=true"):
        build_dataset(load_config(ROOT / "experiments/mpii/hrnet/w32_256x256_adam_lr1e-3.yaml",
                                  [f"data.root={root}", "test.use_gt_bbox=false"]), "val")
    with pytest.raises(ValueError, match="model.num_joints=16"):
        build_dataset(load_config(ROOT / "experiments/mpii/hrnet/w32_256x256_adam_lr1e-3.yaml",
                                  [f"data.root={root}", "model.num_joints=17"]), "val")


# --- official checkpoints -------------------------------------------------------------------------
# Key layouts written from the official lib/models/pose_hrnet.py and pose_resnet.py (torchvision's
# ResNet + deconv_layers + final_layer), independently of pose.models.

def _bn(prefix, c):
    return {f"{prefix}.{n}": (c,) for n in ("weight", "bias", "running_mean", "running_var")}


def _bottleneck(p, inplanes, planes, downsample):
    keys = {f"{p}.conv1.weight": (planes, inplanes, 1, 1), f"{p}.conv2.weight": (planes, planes, 3, 3),
            f"{p}.conv3.weight": (planes * 4, planes, 1, 1), **_bn(f"{p}.bn1", planes), **_bn(f"{p}.bn2", planes),
            **_bn(f"{p}.bn3", planes * 4)}
    if downsample:
        keys.update({f"{p}.downsample.0.weight": (planes * 4, inplanes, 1, 1), **_bn(f"{p}.downsample.1", planes * 4)})
    return keys


def official_resnet_keys(depth, joints=16):
    blocks = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}[depth]
    keys = {"conv1.weight": (64, 3, 7, 7), **_bn("bn1", 64)}
    inplanes = 64
    for li, (n, planes) in enumerate(zip(blocks, (64, 128, 256, 512)), start=1):
        for b in range(n):
            keys.update(_bottleneck(f"layer{li}.{b}", inplanes, planes, b == 0))
            inplanes = planes * 4
    for i, cin in zip((0, 3, 6), (2048, 256, 256)):
        keys.update({f"deconv_layers.{i}.weight": (cin, 256, 4, 4), **_bn(f"deconv_layers.{i + 1}", 256)})
    return {**keys, "final_layer.weight": (joints, 256, 1, 1), "final_layer.bias": (joints,)}


def official_hrnet_keys(width, joints=16):
    keys = {"conv1.weight": (64, 3, 3, 3), **_bn("bn1", 64), "conv2.weight": (64, 64, 3, 3), **_bn("bn2", 64)}
    for b in range(4):
        keys.update(_bottleneck(f"layer1.{b}", 64 if b == 0 else 256, 64, b == 0))
    pre = [256]
    for stage, (modules, branches) in enumerate(((1, 2), (4, 3), (3, 4)), start=2):
        chans = [width * 2 ** i for i in range(branches)]
        for i, c in enumerate(chans):  # transition{stage-1}
            t = f"transition{stage - 1}.{i}"
            if i < len(pre) and pre[i] != c:
                keys.update({f"{t}.0.weight": (c, pre[i], 3, 3), **_bn(f"{t}.1", c)})
            elif i >= len(pre):
                keys.update({f"{t}.0.0.weight": (c, pre[-1], 3, 3), **_bn(f"{t}.0.1", c)})
        for m in range(modules):
            p = f"stage{stage}.{m}"
            for br, c in enumerate(chans):
                for blk in range(4):
                    q = f"{p}.branches.{br}.{blk}"
                    keys.update({f"{q}.conv1.weight": (c, c, 3, 3), **_bn(f"{q}.bn1", c),
                                 f"{q}.conv2.weight": (c, c, 3, 3), **_bn(f"{q}.bn2", c)})
            outputs = 1 if (stage == 4 and m == modules - 1) else branches
            for i in range(outputs):
                for j in range(branches):
                    f = f"{p}.fuse_layers.{i}.{j}"
                    if j > i:
                        keys.update({f"{f}.0.weight": (chans[i], chans[j], 1, 1), **_bn(f"{f}.1", chans[i])})
                    for k in range(i - j):
                        out = chans[i] if k == i - j - 1 else chans[j]
                        keys.update({f"{f}.{k}.0.weight": (out, chans[j], 3, 3), **_bn(f"{f}.{k}.1", out)})
        pre = chans
    return {**keys, "final_layer.weight": (joints, width, 1, 1), "final_layer.bias": (joints,)}


@pytest.mark.parametrize("arch, keys", [
    ("hrnet_w32", lambda: official_hrnet_keys(32)), ("hrnet_w48", lambda: official_hrnet_keys(48)),
    ("resnet50", lambda: official_resnet_keys(50)), ("resnet101", lambda: official_resnet_keys(101)),
    ("resnet152", lambda: official_resnet_keys(152))])
def test_official_mpii_checkpoints_load_strictly(tmp_path, arch, keys):
    """pose_hrnet_w32_256x256.pth / pose_resnet_*_256x256.pth layouts (16-joint final layer) load
    strictly into the MPII networks (shapes only: meta tensors, no data)."""
    layout = keys()
    path = tmp_path / "official.pth"
    torch.save({k: torch.empty(s, device="meta") for k, s in layout.items()}, path)
    with torch.device("meta"):
        model = create_model(arch, num_joints=16)
    report = load_weights(model, path, strict=True)
    assert report.ok and len(report.loaded) == len(layout)
    with torch.device("meta"):
        coco = create_model(arch, num_joints=17)
    with pytest.raises(Exception, match="final_layer"):
        load_weights(coco, path, strict=True)


# --- real samples ---------------------------------------------------------------------------------

@pytest.mark.skipif(not MPII_SAMPLES.is_dir(), reason=f"real MPII samples not found at {MPII_SAMPLES} "
                    "(../shared/data next to the repository, or POSE_SHARED_DATA)")
def test_real_samples_load_crop_and_draw(tmp_path):
    root = tmp_path / "mpii"
    (root / "annot").mkdir(parents=True)
    shutil.copy(MPII_SAMPLES / "test_mpii.json", root / "annot" / "valid.json")
    (root / "images").symlink_to(MPII_SAMPLES / "images")
    codec = _codec((256, 256), (64, 64))
    ds = MpiiKeypoints(root=root, image_set="valid", codec=codec, train=False)
    assert len(ds) == 5
    for i in range(len(ds)):
        item = ds[i]
        joints = item["joints"].numpy()
        labelled = joints[:, 2] > 0
        crop = codec.crop_matrix(item["center"].numpy(), item["scale"].numpy(), 0.0)
        in_crop = joints[labelled, :2] @ crop[:, :2].T + crop[:, 2]
        # The official centre shift and 1.25 enlargement keep every labelled joint in the 256x256 crop.
        assert (in_crop > -1).all() and (in_crop < 257).all(), i
        weight = item["target_weight"].view(-1).numpy()
        assert (weight[labelled] == 1).all()
    image = cv2.imread(str(root / "images" / ds.records[0]["file_name"]))
    joints = ds.records[0]["joints"] + np.float32([1, 1, 0])
    drawn = draw_skeleton(image, joints, kset=MPII16)
    assert (drawn != draw_skeleton(image, joints, kset=replace(MPII16, skeleton=()))).any()  # the limbs
    assert drawn.shape == image.shape and (drawn != image).any()

"""Training-pipeline speed per DataLoader worker (one process, one thread) at 256x192.

Compares, in one run on the same samples with the same random augmentations:

- baseline: a straightforward implementation of the official steps (deep copy of the record,
  full JPEG decode, BGR->RGB of the whole image, mirrored image copy, warpAffine, per-joint affine
  transform, ToTensor/Normalize, per-joint Gaussian target loop);
- ours: ``pose.data.CocoKeypoints`` (flip folded into the warp matrix, colour swap and
  normalisation on the crop only, vectorised targets);
- ours + reduced decode: the same with ``reduced_decode=True`` (JPEG decoded at 1/2, 1/4 or 1/8
  size when the crop is at least that much smaller than the box region).

The 640x480 JPEGs (photo-like: multi-scale noise and shapes, ~COCO file sizes) and a COCO-format
annotation file are generated into a temporary folder. Person boxes follow a spread of sizes like
COCO's (heights log-uniform in [60, 460] px). Rounds of the methods are interleaved and the median
round is reported, since the machine may be shared.

    python benchmarks/bench_data.py [--images 40] [--rounds 7] [--codec gaussian]
"""

import argparse
import copy
import json
import os
import platform
import random
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from pose.config import AugmentConfig
from pose.data.coco import CocoKeypoints
from pose.data.codecs import build_codec
from pose.data.image_io import crop_zoom, read_image, reduction_for_zoom
from pose.data.transforms import get_affine_transform
from pose.keypoints import COCO17

FLIP_PAIRS, UPPER_BODY_IDS = COCO17.flip_pairs, COCO17.upper_body

INPUT, HEATMAP, SIGMA = (192, 256), (48, 64), 2.0
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def photo(seed: int, width: int = 640, height: int = 480) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = np.full((height, width, 3), 128.0, np.float32)
    for sigma, amp in ((0.5, 60.0), (2.0, 35.0), (8.0, 60.0)):
        noise = rng.normal(0, 1, (height, width, 3)).astype(np.float32)
        image += cv2.GaussianBlur(noise, (0, 0), sigma) * amp * sigma ** 0.5
    for _ in range(20):
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        colour = tuple(int(v) for v in rng.integers(0, 255, 3))
        w, h = int(rng.integers(10, 150)), int(rng.integers(10, 150))
        cv2.rectangle(image, (x, y), (x + w, y + h), colour, -1)
    return np.clip(image, 0, 255).astype(np.uint8)


def make_dataset(folder: Path, num_images: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    (folder / "images" / "train2017").mkdir(parents=True)
    (folder / "annotations").mkdir()
    images, anns = [], []
    for i in range(num_images):
        name = f"{i:012d}.jpg"
        cv2.imwrite(str(folder / "images" / "train2017" / name), photo(seed * 1000 + i),
                    [cv2.IMWRITE_JPEG_QUALITY, 90])
        images.append({"id": i, "file_name": name, "width": 640, "height": 480})
        for _ in range(3):
            h = float(np.exp(rng.uniform(np.log(60), np.log(460))))
            w = h * rng.uniform(0.35, 0.8)
            x, y = rng.uniform(-0.2 * w, 640 - 0.8 * w), rng.uniform(-0.1 * h, 480 - 0.9 * h)
            kps = np.stack([rng.uniform(x, x + w, 17), rng.uniform(y, y + h, 17),
                            np.where(rng.random(17) < 0.8, 2.0, 0.0)], 1)
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": 1, "iscrowd": 0,
                         "bbox": [x, y, w, h], "area": w * h, "keypoints": kps.ravel().tolist()})
    (folder / "annotations" / "person_keypoints_train2017.json").write_text(
        json.dumps({"images": images, "annotations": anns, "categories": [COCO17.coco_category(name="person")]}))


class Baseline:
    """The official steps written plainly (per-joint loops), sharing the dataset's records."""

    def __init__(self, ds: CocoKeypoints, aug: AugmentConfig) -> None:
        self.ds, self.aug = ds, aug
        self.mean = torch.tensor(MEAN).view(3, 1, 1)
        self.std = torch.tensor(STD).view(3, 1, 1)

    def half_body(self, joints, vis):
        upper, lower = [], []
        for k in range(len(joints)):
            if vis[k] > 0:
                (upper if k in UPPER_BODY_IDS else lower).append(joints[k])
        if np.random.randn() < 0.5 and len(upper) > 2:
            chosen = upper
        else:
            chosen = lower if len(lower) > 2 else upper
        if len(chosen) < 2:
            return None, None
        chosen = np.array(chosen, dtype=np.float32)
        center = chosen.mean(axis=0)[:2]
        w, h = chosen.max(axis=0) - chosen.min(axis=0)
        ratio = INPUT[0] / INPUT[1]
        if w > ratio * h:
            h = w / ratio
        elif w < ratio * h:
            w = h * ratio
        return center, np.array([w / 200.0, h / 200.0], dtype=np.float32) * 1.5

    def target(self, joints, vis):
        w, h = HEATMAP
        tmp = SIGMA * 3
        target = np.zeros((17, h, w), np.float32)
        weight = vis.astype(np.float32).copy()
        stride = np.array(INPUT) / np.array(HEATMAP)
        for k in range(17):
            mu_x, mu_y = int(joints[k][0] / stride[0] + 0.5), int(joints[k][1] / stride[1] + 0.5)
            ul = [int(mu_x - tmp), int(mu_y - tmp)]
            br = [int(mu_x + tmp + 1), int(mu_y + tmp + 1)]
            if ul[0] >= w or ul[1] >= h or br[0] < 0 or br[1] < 0:
                weight[k] = 0
                continue
            size = int(2 * tmp + 1)
            x = np.arange(0, size, 1, np.float32)
            y = x[:, None]
            g = np.exp(-((x - size // 2) ** 2 + (y - size // 2) ** 2) / (2 * SIGMA ** 2))
            gx = max(0, -ul[0]), min(br[0], w) - ul[0]
            gy = max(0, -ul[1]), min(br[1], h) - ul[1]
            ix = max(0, ul[0]), min(br[0], w)
            iy = max(0, ul[1]), min(br[1], h)
            if weight[k] > 0.5:
                target[k][iy[0]:iy[1], ix[0]:ix[1]] = g[gy[0]:gy[1], gx[0]:gx[1]]
        return target, weight

    def __getitem__(self, index):
        rec = copy.deepcopy(self.ds.records[index])
        image = cv2.imread(str(self.ds.image_dir / rec["file_name"]),
                           cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        joints, vis = rec["joints"][:, :2], rec["joints"][:, 2]
        c, s, aug = rec["center"], rec["scale"], self.aug
        if vis.sum() > aug.half_body_min_joints and np.random.rand() < aug.half_body_prob:
            ch, sh = self.half_body(joints, vis)
            if ch is not None:
                c, s = ch, sh
        sf, rf = aug.scale_factor, aug.rot_factor
        s = s * np.clip(np.random.randn() * sf + 1, 1 - sf, 1 + sf)
        r = np.clip(np.random.randn() * rf, -rf * 2, rf * 2) if random.random() <= aug.rot_prob else 0
        if aug.flip and random.random() <= aug.flip_prob:
            image = image[:, ::-1, :]
            joints[:, 0] = image.shape[1] - joints[:, 0] - 1
            for a, b in FLIP_PAIRS:
                joints[[a, b]] = joints[[b, a]]
                vis[[a, b]] = vis[[b, a]]
            joints *= vis[:, None]
            c = c.copy()
            c[0] = image.shape[1] - c[0] - 1
        trans = get_affine_transform(c, s, r, INPUT)
        crop = cv2.warpAffine(image, trans, INPUT, flags=cv2.INTER_LINEAR)
        for k in range(17):
            if vis[k] > 0:
                joints[k] = np.dot(trans, np.array([joints[k][0], joints[k][1], 1.0]))[:2]
        tensor = torch.from_numpy(crop.transpose(2, 0, 1)).contiguous().float().div(255)
        tensor = tensor.sub_(self.mean).div_(self.std)
        target, weight = self.target(joints, vis)
        return {"image": tensor, "target": torch.from_numpy(target),
                "target_weight": torch.from_numpy(weight)}


class DecodeOnly:
    """Only the full-size decode of each sample's image: the upper bound of any pipeline that decodes."""

    def __init__(self, ds: CocoKeypoints) -> None:
        self.ds = ds

    def __getitem__(self, index):
        return read_image(self.ds.image_dir / self.ds.records[index]["file_name"])


def run(method, order, seed) -> tuple[float, list]:
    np.random.seed(seed)
    random.seed(seed)
    start = time.perf_counter()
    out = [method[i] for i in order]
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--codec", default="gaussian", choices=("gaussian", "udp"))
    args = parser.parse_args()
    torch.set_num_threads(1)  # a DataLoader worker runs one thread
    cv2.setNumThreads(1)
    print(f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
          f"cpu_count={os.cpu_count()}, torch {torch.__version__}, torch threads={torch.get_num_threads()}, "
          f"cv2 {cv2.__version__} threads={cv2.getNumThreads()}")
    aug = AugmentConfig()  # HRNet recipe: flip .5, scale .35, rotation 45 (p .6), half-body .3
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_dataset(root, args.images)
        sizes = [p.stat().st_size for p in (root / "images" / "train2017").iterdir()]
        codec = build_codec(args.codec, input_size=INPUT, heatmap_size=HEATMAP, sigma=SIGMA)
        ours = CocoKeypoints(root=root, image_set="train2017", codec=codec, train=True, aug=aug)
        reduced = CocoKeypoints(root=root, image_set="train2017", codec=codec, train=True, aug=aug,
                                reduced_decode=True)
        base = Baseline(ours, aug)
        order = np.random.default_rng(0).permutation(len(ours)).tolist()
        print(f"settings: input {INPUT[0]}x{INPUT[1]}, heatmap {HEATMAP[0]}x{HEATMAP[1]}, sigma {SIGMA}, "
              f"codec {args.codec}, {args.images} JPEGs 640x480 (mean {np.mean(sizes) / 1024:.0f} KiB), "
              f"{len(order)} samples per round, {args.rounds} rounds interleaved, aug {aug}")
        methods = {"baseline (official steps, per-joint loops)": base, "ours": ours,
                   "ours + reduced decode": reduced, "JPEG decode alone (the floor)": DecodeOnly(ours)}
        times: dict[str, list[float]] = {name: [] for name in methods}
        outputs = {}
        for r in range(args.rounds):
            for name, method in methods.items():
                seconds, out = run(method, order, seed=r)
                times[name].append(seconds)
                if r == 0:
                    outputs[name] = out
        if args.codec == "gaussian":  # same draws -> the same targets and (nearly) the same images
            a, b = outputs["baseline (official steps, per-joint loops)"], outputs["ours"]
            t_err = max(float((x["target"] - y["target"]).abs().max()) for x, y in zip(a, b))
            i_err = float(np.mean([float((x["image"] - y["image"]).abs().mean()) for x, y in zip(a, b)]))
            print(f"check: baseline vs ours, max target difference {t_err:.2e}, mean image difference "
                  f"{i_err * 0.226 * 255:.3f} grey levels")
        np.random.seed(0)
        random.seed(0)
        n_reduced = 0
        for i in order:  # how often the reduced decode applies under this augmentation
            rec = reduced.records[i]
            joints = rec["joints"]
            c, s, rot, _ = reduced._augment(rec["center"], rec["scale"], joints[:, :2], joints[:, 2])
            n_reduced += reduction_for_zoom(crop_zoom(codec.crop_matrix(c, s, rot))) > 1
        print(f"reduced decode applies to {n_reduced} of {len(order)} samples "
              f"({100 * n_reduced / len(order):.0f}%)")
        base_rate = len(order) / statistics.median(times["baseline (official steps, per-joint loops)"])
        print(f"{'method':45s} {'samples/s (median)':>18s} {'best':>8s} {'vs baseline':>12s}")
        for name, ts in times.items():
            rate = len(order) / statistics.median(ts)
            best = len(order) / min(ts)
            print(f"{name:45s} {rate:18.1f} {best:8.1f} {rate / base_rate:11.2f}x")


if __name__ == "__main__":
    main()

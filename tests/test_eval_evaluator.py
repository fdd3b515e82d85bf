"""evaluate(): rescoring, results file, stats equal to pycocotools on the written file, test-dev, DDP."""

import contextlib
import io
import json
import os
import socket

import cv2
import eval_reference as ref
import numpy as np
import pytest
import torch
from torch import nn

from pose.config import Config, apply_overrides
from pose.data import build_dataset
from pose.engine.coco_eval import STAT_NAMES
from pose.engine.evaluator import Predictions, evaluate, postprocess, rescore, results_paths, run_inference
from pose.keypoints import COCO17

IN_W, IN_H, HM_W, HM_H = 48, 64, 12, 16


def person(ann_id, image_id, box, rng):
    """Joints near the box diagonal (what DiagonalModel predicts), with noise."""
    x, y, w, h = box
    t = np.linspace(0.05, 0.95, 17)
    xy = np.stack([x + t * w, y + t * h], axis=1) + rng.normal(0, 0.03, (17, 2)) * [w, h]
    kps = np.concatenate([xy, np.full((17, 1), 2.0)], axis=1)
    return {"id": ann_id, "image_id": image_id, "category_id": 1, "iscrowd": 0, "bbox": list(map(float, box)),
            "area": float(w * h * 0.7), "num_keypoints": 17, "keypoints": kps.ravel().tolist()}


@pytest.fixture(scope="module")
def coco_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("coco")
    rng = np.random.default_rng(0)
    boxes = {1: [(20, 10, 60, 80), (90, 30, 45, 60)], 2: [(10, 20, 120, 160)], 3: [(150, 40, 30, 40)],
             4: [(40, 40, 75, 100), (60, 50, 75, 100), (200, 10, 60, 80)]}
    images, anns = [], []
    for split in ("val2017", "test-dev2017"):
        (root / "images" / split).mkdir(parents=True)
    for image_id, bxs in boxes.items():
        image = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
        for split in ("val2017", "test-dev2017"):
            cv2.imwrite(str(root / "images" / split / f"{image_id:012d}.jpg"), image)
        images.append({"id": image_id, "file_name": f"{image_id:012d}.jpg", "width": 320, "height": 240})
        anns += [person(len(anns) + 1, image_id, b, rng) for b in bxs]
    (root / "annotations").mkdir()
    (root / "annotations" / "person_keypoints_val2017.json").write_text(
        json.dumps({"images": images, "annotations": anns, "categories": [COCO17.coco_category(name="person")]}))
    (root / "annotations" / "image_info_test-dev2017.json").write_text(
        json.dumps({"images": images, "categories": [COCO17.coco_category(name="person")]}))
    dets = [{"image_id": a["image_id"], "category_id": 1, "bbox": a["bbox"], "score": s}
            for a in anns for s in (0.9, 0.6)]  # each box twice: OKS NMS must drop the copies
    (root / "dets.json").write_text(json.dumps(dets))
    return root


def make_cfg(root, tmp_path, *overrides):
    return apply_overrides(Config(), [
        f"data.root={root}", f"data.det_file={root / 'dets.json'}", f"output_dir={tmp_path / 'out'}",
        f"data.input_size=[{IN_W},{IN_H}]", f"data.heatmap_size=[{HM_W},{HM_H}]", "data.sigma=1.0",
        "model.arch=hrnet_tiny", "test.batch_size=3", "train.workers=0", "test.flip_test=false",
        *overrides])


class DiagonalModel(nn.Module):
    """Ignores the image: Gaussian peaks along the crop diagonal, where the GT joints lie (AP > 0)."""

    def __init__(self, jitter: float = 0.0):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))
        t = np.linspace(0.05, 0.95, 17)
        ys, xs = np.mgrid[0:HM_H, 0:HM_W]
        cx = (0.1 + 0.8 * t) * HM_W - 0.5 + jitter
        cy = (0.1 + 0.8 * t) * HM_H - 0.5
        maps = np.exp(-((xs - cx[:, None, None]) ** 2 + (ys - cy[:, None, None]) ** 2) / 2.0)
        self.register_buffer("maps", torch.tensor(maps, dtype=torch.float32))

    def forward(self, x):
        # the mean of the image gives every crop a slightly different score
        gain = 0.8 + 0.1 * torch.tanh(x.mean(dim=(1, 2, 3)))
        return self.maps[None] * self.scale * gain[:, None, None, None]


def pycocotools_stats(gt_file, results_file):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_file))
        ev = COCOeval(gt, gt.loadRes(str(results_file)), "keypoints")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return [float(v) for v in ev.stats]


def test_rescore_equals_official_loop():
    rng = np.random.default_rng(0)
    maxvals = rng.uniform(0, 0.5, (500, 17)).astype(np.float32)
    maxvals[:10] = 0.1  # none above the threshold -> 0
    boxes = rng.uniform(0.1, 1, 500)
    got = rescore(maxvals, boxes, 0.2)
    assert np.array_equal(got, ref.rescore_loops(maxvals, boxes, 0.2))
    assert (got[:10] == 0).all()
    assert got[10] == pytest.approx(boxes[10] * maxvals[10][maxvals[10] > 0.2].mean(), rel=1e-6)


def test_decode_equals_per_joint_loops():
    from pose.data.codecs import build_codec
    codec = build_codec("gaussian", input_size=(IN_W, IN_H), heatmap_size=(HM_W, HM_H), sigma=1.0)
    rng = np.random.default_rng(0)
    heatmaps = rng.uniform(-0.1, 1, (20, 17, HM_H, HM_W)).astype(np.float32)
    heatmaps[5] = np.round(heatmaps[5] * 4) / 4  # ties: equal neighbours (no step), first maximum wins
    heatmaps[6] = -heatmaps[6]                    # maxima <= 0: coordinates zeroed
    heatmaps[7] = 0.0
    for j, (y, x) in enumerate([(0, 0), (0, HM_W - 1), (HM_H - 1, 0), (1, 1), (2, 2), (HM_H - 2, HM_W - 2)]):
        heatmaps[8, j, y, x] = 2.0  # peaks on and next to the border: no step there
    centers = rng.uniform(0, 300, (20, 2)).astype(np.float32)
    scales = rng.uniform(0.2, 2, (20, 2)).astype(np.float32)
    coords, maxvals = codec.decode(heatmaps)
    ours = codec.to_image(coords, centers, scales)
    loops, loop_vals = ref.decode_gaussian_loops(heatmaps, centers, scales)
    assert np.array_equal(maxvals, loop_vals) and np.array_equal(ours, loops)


@pytest.mark.parametrize("use_gt", [True, False])
def test_evaluate_stats_equal_pycocotools_on_written_file(coco_root, tmp_path, use_gt, capsys):
    cfg = make_cfg(coco_root, tmp_path, f"test.use_gt_bbox={str(use_gt).lower()}")
    dataset = build_dataset(cfg, "val")
    stats = evaluate(DiagonalModel(), dataset, cfg, cfg.output_dir, "cpu")
    results_file, stats_file = results_paths(cfg.output_dir, "val2017")
    extra = ["PCK@0.05", "AUC", "EPE"] if use_gt else []  # matched to their own box: ground truth only
    assert list(stats) == [*STAT_NAMES, *extra]
    assert [stats[n] for n in STAT_NAMES] == pycocotools_stats(dataset.annotation_file, results_file)
    assert 0.05 < stats["AP"] < 1.0, stats  # neither degenerate nor perfect: the comparison means something
    assert json.loads(stats_file.read_text()) == stats
    printed = capsys.readouterr().out
    assert f"{stats['AP']:.3f}" in printed and "AP (M)" in printed
    results = json.loads(results_file.read_text())
    assert len(results) == len(dataset.records) // (1 if use_gt else 2)  # OKS NMS drops the box copies
    for r in results:
        assert set(r) == {"image_id", "category_id", "keypoints", "score"}
        assert r["category_id"] == 1 and len(r["keypoints"]) == 51 and isinstance(r["image_id"], int)
    # no temporary files left behind
    assert sorted(p.name for p in results_file.parent.iterdir()) == sorted([results_file.name,
                                                                            stats_file.name])


def test_flip_test_with_a_real_tiny_network(coco_root, tmp_path):
    cfg = make_cfg(coco_root, tmp_path, "test.flip_test=true")
    dataset = build_dataset(cfg, "val")
    from pose.models import build_model
    torch.manual_seed(0)
    model = build_model(cfg).train()
    stats = evaluate(model, dataset, cfg, cfg.output_dir, "cpu", verbose=False)
    assert model.training  # mode restored for the trainer
    results_file, _ = results_paths(cfg.output_dir, "val2017")
    assert [stats[n] for n in STAT_NAMES] == pycocotools_stats(dataset.annotation_file, results_file)


def test_run_inference_flip_averages_flipped_heatmaps(coco_root, tmp_path):
    cfg = make_cfg(coco_root, tmp_path)
    dataset = build_dataset(cfg, "val")
    loader = torch.utils.data.DataLoader(dataset, batch_size=4)
    model = DiagonalModel()
    kwargs = dict(shift_heatmap=True, refine="default", device="cpu")
    plain = run_inference(model, loader, dataset.codec, flip_test=False, **kwargs)
    flipped = run_inference(model, loader, dataset.codec, flip_test=True, **kwargs)
    assert len(plain) == len(dataset) and plain.indices.tolist() == list(range(len(dataset)))
    assert not np.allclose(plain.coords, flipped.coords)  # the diagonal is not mirror-symmetric
    batch = next(iter(loader))
    with torch.no_grad():
        out = model(batch["image"])
        avg = (out + dataset.codec.flip_back(model(batch["image"].flip(3)), shift=True)) * 0.5
    coords, maxvals = dataset.codec.decode(avg.numpy())
    assert np.allclose(flipped.maxvals[:4], maxvals)


def test_postprocess_keeps_best_copy():
    rng = np.random.default_rng(0)
    kp = rng.uniform(0, 100, (1, 17, 2)).astype(np.float32)
    preds = Predictions(coords=np.repeat(kp, 3, 0), maxvals=np.full((3, 17), 0.5, np.float32),
                        centers=np.zeros((3, 2), np.float32), scales=np.ones((3, 2), np.float32),
                        areas=np.full(3, 4e4), box_scores=np.array([0.5, 0.9, 0.7]),
                        image_ids=np.array([1, 1, 2]), indices=np.arange(3))
    keep, scores = postprocess(preds, sigmas=COCO17.oks_sigmas)
    assert keep.tolist() == [1, 2] and scores.tolist() == pytest.approx([0.25, 0.45, 0.35])


def test_test_split_writes_submission_only(coco_root, tmp_path, capsys):
    cfg = make_cfg(coco_root, tmp_path, "data.val_set=test-dev2017", "test.use_gt_bbox=false")
    dataset = build_dataset(cfg, "val")
    assert evaluate(DiagonalModel(), dataset, cfg, cfg.output_dir, "cpu") == {}
    results_file, stats_file = results_paths(cfg.output_dir, "test-dev2017")
    assert len(json.loads(results_file.read_text())) == len(dataset.records) // 2
    assert not stats_file.exists()
    assert "submission" in capsys.readouterr().out


def test_no_predictions_reports_zero(coco_root, tmp_path):
    cfg = make_cfg(coco_root, tmp_path)
    dataset = build_dataset(cfg, "val")

    class Zero(DiagonalModel):
        def forward(self, x):
            return torch.zeros(x.shape[0], 17, HM_H, HM_W)

    # all joint scores 0 -> all instance scores 0, but still written and evaluated
    stats = evaluate(Zero(), dataset, cfg, cfg.output_dir, "cpu", verbose=False)
    assert stats["AP"] <= 0.01


def _ddp_worker(rank, world, port, root, out, queue):
    import torch.distributed as dist
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        torch.set_num_threads(1)
        cfg = make_cfg(root, out, "test.use_gt_bbox=false")
        stats = evaluate(DiagonalModel(), build_dataset(cfg, "val"), cfg, out / "out", "cpu", verbose=False)
        queue.put((rank, stats))
    finally:
        dist.destroy_process_group()


def test_ddp_two_processes_match_single(coco_root, tmp_path):
    import torch.multiprocessing as mp
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    queue = ctx.SimpleQueue()
    mp.start_processes(_ddp_worker, args=(2, port, coco_root, tmp_path / "ddp", queue), nprocs=2,
                       start_method="spawn")
    got = dict(queue.get() for _ in range(2))
    cfg = make_cfg(coco_root, tmp_path / "single", "test.use_gt_bbox=false")
    single = evaluate(DiagonalModel(), build_dataset(cfg, "val"), cfg, cfg.output_dir, "cpu", verbose=False)
    assert got[0] == got[1] == single
    ddp_file, _ = results_paths(tmp_path / "ddp" / "out", "val2017")
    single_file, _ = results_paths(cfg.output_dir, "val2017")
    assert json.loads(ddp_file.read_text()) == json.loads(single_file.read_text())


def test_amp_bf16_inference_runs_close_to_fp32(coco_root, tmp_path):
    cfg = make_cfg(coco_root, tmp_path)
    dataset = build_dataset(cfg, "val")
    loader = torch.utils.data.DataLoader(dataset, batch_size=4)
    kwargs = dict(flip_test=True, shift_heatmap=True, refine="default", device="cpu")
    full = run_inference(DiagonalModel(), loader, dataset.codec, **kwargs)
    half = run_inference(DiagonalModel(), loader, dataset.codec, amp="bf16", **kwargs)
    assert half.maxvals.dtype == np.float32 and np.abs(half.maxvals - full.maxvals).max() < 0.02
    from pose.models import build_model
    torch.manual_seed(0)
    net = run_inference(build_model(cfg, verbose=False), loader, dataset.codec, amp="bf16", **kwargs)
    assert len(net) == len(dataset) and np.isfinite(net.coords).all() and np.isfinite(net.maxvals).all()
    with pytest.raises(ValueError, match="unknown amp"):
        run_inference(DiagonalModel(), loader, dataset.codec, amp="fp8", **kwargs)

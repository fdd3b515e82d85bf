"""tools/test.py and tools/train.py on a tiny MPII-format dataset: the PCKh table, pred.mat, stats."""

import contextlib
import io
import json
import runpy
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from pose.config import load_config
from pose.engine.pckh import GT_JOINT_NAMES, TABLE_NAMES, load_mpii_gt, pckh_table
from pose.models import build_model

scipy_io = pytest.importorskip("scipy.io", reason="scipy (the mpii extra) is needed for MPII's .mat files")

REPO = Path(__file__).resolve().parents[1]


def _people(rng, n):
    entries = []
    for i in range(n):
        cx, cy, s = rng.uniform(70, 130), rng.uniform(60, 100), rng.uniform(0.5, 0.7)
        joints = np.stack([cx + rng.uniform(-30, 30, 16), cy + rng.uniform(-50, 50, 16)], 1)
        vis = (rng.random(16) > 0.15).astype(int)
        entries.append({"image": f"{i % 3}.jpg", "center": [cx, cy], "scale": s,
                        "joints": joints.round(2).tolist(), "joints_vis": vis.tolist()})
    return entries


def _gt_mat(path, entries):
    joints = np.asarray([e["joints"] for e in entries], np.float64)          # (N, 16, 2), 1-based
    vis = np.asarray([e["joints_vis"] for e in entries], np.float64)
    head = joints[:, 9]
    heads = np.stack([head - 12.0, head + 12.0])                             # (2, N, 2)
    names = np.empty((1, 16), dtype=object)
    names[0, :] = list(GT_JOINT_NAMES)
    scipy_io.savemat(str(path), {"dataset_joints": names, "jnt_missing": 1.0 - vis.T,
                                 "pos_gt_src": joints.transpose(1, 2, 0), "headboxes_src": heads.transpose(0, 2, 1)})


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mpii_tool")
    root = tmp / "mpii"
    (root / "images").mkdir(parents=True)
    (root / "annot").mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        image = cv2.GaussianBlur(rng.integers(0, 255, (160, 200, 3), dtype=np.uint8), (0, 0), 2.0)
        cv2.imwrite(str(root / "images" / f"{i}.jpg"), image)
    valid = _people(rng, 6)
    (root / "annot" / "valid.json").write_text(json.dumps(valid))
    (root / "annot" / "train.json").write_text(json.dumps(_people(rng, 8)))
    test = [{k: e[k] for k in ("image", "center", "scale")} for e in valid]
    (root / "annot" / "test.json").write_text(json.dumps(test))
    _gt_mat(root / "annot" / "gt_valid.mat", valid)
    cfg_file = tmp / "tiny_mpii.yaml"
    cfg_file.write_text(f"base: {REPO / 'experiments/mpii/hrnet/_base.yaml'}\n"
                        "model:\n  arch: hrnet_tiny\n"
                        f"data:\n  root: {root}\n  input_size: [64, 64]\n  heatmap_size: [16, 16]\n  sigma: 1.0\n"
                        "train:\n  epochs: 2\n  lr_steps: [2]\n  batch_size: 4\n  workers: 0\n  val_every: 1\n"
                        "  amp: none\n  channels_last: false\n  print_freq: 1\n"
                        f"test:\n  batch_size: 4\noutput_dir: {tmp / 'out'}\n")
    torch.manual_seed(0)
    weights = tmp / "tiny.pth"
    torch.save({"model": build_model(load_config(cfg_file), verbose=False).state_dict()}, weights)
    return tmp, root, cfg_file, weights


def _run(tool_name, *args):
    tool = runpy.run_path(str(REPO / "tools" / tool_name))
    argv = [str(a) for a in args]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):  # train.py's main parses argv itself, test.py's takes the args
        rc = tool["main"](argv if tool_name == "train.py" else tool["get_args_parser"]().parse_args(argv))
    return rc, out.getvalue()


def test_test_tool_prints_the_pckh_table_of_pred_mat(workspace):
    tmp, root, cfg_file, weights = workspace
    out = tmp / "test_out"
    rc, printed = _run("test.py", "--cfg", cfg_file, "--weights", weights, "--quiet", f"output_dir={out}")
    assert rc == 0, printed
    stats = json.loads((out / "results" / "stats_valid.json").read_text())
    preds = scipy_io.loadmat(str(out / "results" / "pred_valid.mat"))["preds"]
    assert preds.shape == (6, 16, 2)
    expected = pckh_table(preds, load_mpii_gt(root / "annot" / "gt_valid.mat"))
    assert stats == pytest.approx(expected, nan_ok=True)
    header, _, values = printed.strip().splitlines()[-3:]
    assert [h.strip() for h in header.split("|")[2:-1]] == list(TABLE_NAMES)
    assert [float(v) for v in values.split("|")[2:-1]] == [round(stats[n], 2) for n in TABLE_NAMES]


def test_test_split_writes_the_submission_only(workspace):
    tmp, root, cfg_file, weights = workspace
    out = tmp / "test_split"
    rc, printed = _run("test.py", "--cfg", cfg_file, "--weights", weights, "--quiet", f"output_dir={out}",
                       "data.val_set=test")
    assert rc == 0, printed
    assert "no ground truth" in printed
    preds = scipy_io.loadmat(str(out / "results" / "pred_test.mat"))["preds"]
    valid = scipy_io.loadmat(str(tmp / "test_out" / "results" / "pred_valid.mat"))["preds"]
    np.testing.assert_allclose(preds, valid)  # same people, same crops: same predictions
    assert not (out / "results" / "stats_test.json").exists()


def test_missing_gt_file_is_named(workspace, tmp_path):
    tmp, root, cfg_file, weights = workspace
    rc, printed = _run("test.py", "--cfg", cfg_file, "--weights", weights, "--quiet", f"output_dir={tmp_path}",
                       "data.val_set=train")
    assert rc == 1
    assert (tmp_path / "results" / "pred_train.mat").is_file()


def test_training_keeps_the_best_pckh(workspace):
    tmp, root, cfg_file, _ = workspace
    out = tmp / "train_out"
    rc, printed = _run("train.py", "--cfg", cfg_file, f"output_dir={out}")
    assert rc == 0, printed
    history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in history] == [1, 2]
    assert all(set(TABLE_NAMES) <= set(r) for r in history) and not any("AP" in r for r in history)
    top = max(r["Mean"] for r in history)
    best_epoch = max(r["epoch"] for r in history if r["Mean"] == top)  # the last of equals (official >=)
    best = torch.load(out / "model_best.pth", map_location="cpu", weights_only=False)
    assert best["epoch"] == best_epoch and best["Mean"] == max(r["Mean"] for r in history)
    assert (out / "results" / "pred_valid.mat").is_file()

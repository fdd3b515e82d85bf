"""tools/test.py end to end on a tiny generated dataset with an untrained tiny network."""

import contextlib
import io
import json
import runpy
import shutil
from pathlib import Path

import pytest
import torch
from test_eval_evaluator import pycocotools_stats  # the same independent pycocotools run

from pose.config import load_config
from pose.engine.coco_eval import STAT_NAMES
from pose.models import build_model

REPO = Path(__file__).resolve().parents[1]
TOOL = REPO / "tools" / "test.py"
synthetic = pytest.importorskip("pose.data.synthetic")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tool")
    root = synthetic.generate_synthetic_coco(tmp / "data", seed=3, num_train_images=1, num_val_images=4,
                                             image_size=(160, 120), max_people=3)
    cfg_file = tmp / "tiny.yaml"
    cfg_file.write_text(f"base: {REPO / 'experiments/synthetic/tiny.yaml'}\n"
                        f"data:\n  root: {root}\n  synthetic:\n    enabled: false\n"
                        f"output_dir: {tmp / 'out'}\n")
    cfg = load_config(cfg_file)
    torch.manual_seed(0)
    weights = tmp / "ours.pth"
    torch.save({"model": build_model(cfg, verbose=False).state_dict(), "epoch": 3}, weights)
    return tmp, Path(root), cfg_file, weights


def run_tool(*args):
    tool = runpy.run_path(str(TOOL))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = tool["main"](tool["get_args_parser"]().parse_args([str(a) for a in args]))
    return rc, out.getvalue()


@pytest.mark.parametrize("use_gt", ["true", "false"])
def test_tool_prints_the_ten_numbers_of_pycocotools(workspace, use_gt):
    tmp, root, cfg_file, weights = workspace
    out_dir = tmp / f"out_{use_gt}"
    rc, printed = run_tool("--cfg", cfg_file, "--weights", weights, "--quiet", f"output_dir={out_dir}",
                           f"test.use_gt_bbox={use_gt}")
    assert rc == 0
    stats = json.loads((out_dir / "results" / "stats_val2017.json").read_text())
    extra = ["PCK@0.05", "AUC", "EPE"] if use_gt == "true" else []
    assert list(stats) == [*STAT_NAMES, *extra]
    expected = pycocotools_stats(root / "annotations" / "person_keypoints_val2017.json",
                                 out_dir / "results" / "keypoints_val2017_results.json")
    assert [stats[n] for n in STAT_NAMES] == expected
    table_values = printed.strip().splitlines()[-1].split("|")[2:-1]
    assert [float(v) for v in table_values] == [round(v, 3) for v in expected]
    assert (out_dir / "results" / "test_config_val2017.yaml").is_file()


def test_tool_default_weights_and_errors(workspace, capsys):
    tmp, root, cfg_file, weights = workspace
    rc, _ = run_tool("--cfg", cfg_file, f"output_dir={tmp / 'empty'}")
    assert rc == 1 and "model_best.pth" in capsys.readouterr().err
    (tmp / "out").mkdir(exist_ok=True)  # the config's output_dir
    shutil.copy(weights, tmp / "out" / "model_best.pth")
    rc, printed = run_tool("--cfg", cfg_file, "--quiet")
    assert rc == 0 and "AP (M)" in printed
    rc, _ = run_tool("--cfg", cfg_file, "--weights", weights, "model.arch=resnet_tiny")
    assert rc == 1 and "does not match" in capsys.readouterr().err


def test_tool_test_split_writes_submission_only(workspace):
    tmp, root, cfg_file, weights = workspace
    shutil.copytree(root / "images" / "val2017", root / "images" / "test-dev2017", dirs_exist_ok=True)
    val = json.loads((root / "annotations" / "person_keypoints_val2017.json").read_text())
    (root / "annotations" / "image_info_test-dev2017.json").write_text(
        json.dumps({"images": val["images"], "categories": val["categories"]}))
    out_dir = tmp / "out_test"
    rc, printed = run_tool("--cfg", cfg_file, "--weights", weights, "--quiet", f"output_dir={out_dir}",
                           "data.val_set=test-dev2017", "test.use_gt_bbox=false")
    assert rc == 0 and "submission" in printed
    results = json.loads((out_dir / "results" / "keypoints_test-dev2017_results.json").read_text())
    assert results and {r["image_id"] for r in results} <= {im["id"] for im in val["images"]}
    assert not (out_dir / "results" / "stats_test-dev2017.json").exists()


@pytest.mark.parametrize("fault", ["disk_full", "unwritable"])
def test_tool_write_failure_is_named_and_keeps_the_previous_results(workspace, tmp_path, monkeypatch, capsys, fault):
    import errno
    import os

    tmp, root, cfg_file, weights = workspace
    out_dir = tmp_path / "out"
    assert run_tool("--cfg", cfg_file, "--weights", weights, "--quiet", f"output_dir={out_dir}")[0] == 0
    results = out_dir / "results" / "keypoints_val2017_results.json"
    before = results.read_bytes()
    if fault == "disk_full":
        def full(fd):
            raise OSError(errno.ENOSPC, "No space left on device")
        monkeypatch.setattr(os, "fsync", full)
        target = out_dir
    else:  # the output folder is a file
        target = tmp_path / "blocker"
        target.write_text("x")
    rc, _ = run_tool("--cfg", cfg_file, "--weights", weights, "--quiet", f"output_dir={target}")
    err = capsys.readouterr().err
    assert rc == 1 and "cannot write" in err and str(target) in err
    assert results.read_bytes() == before
    assert not [p for p in results.parent.iterdir() if p.name.endswith(".tmp")]

"""The predictor and tools/visualize.py with a real network (randomly initialised hrnet_tiny at 64x48)
on a real photograph (matplotlib's grace_hopper.jpg), a folder, a video, and the dataset browser.
"""

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import matplotlib.cbook
import numpy as np
import pytest
import torch

from pose.config import load_config
from pose.models import build_model
from pose.predictor import Predictor

ROOT = Path(__file__).resolve().parents[1]
CFG = ROOT / "experiments" / "synthetic" / "tiny.yaml"
OVERRIDES = ["model.arch=hrnet_tiny", "data.input_size=[48,64]", "data.heatmap_size=[12,16]"]
HOPPER = Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


def _load_tool():
    spec = importlib.util.spec_from_file_location("visualize_tool", ROOT / "tools" / "visualize.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tool = _load_tool()


def run(*argv) -> int:
    return tool.main(tool.get_args_parser().parse_args([str(a) for a in argv]))


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    cfg = load_config(CFG, OVERRIDES)
    path = tmp_path_factory.mktemp("weights") / "tiny.pth"
    torch.save(build_model(cfg).state_dict(), path)
    return path


def test_predictor_on_a_photograph(weights):
    cfg = load_config(CFG, OVERRIDES)
    predictor = Predictor.from_config(cfg, weights, device="cpu", flip_test=True)
    image = cv2.imread(str(HOPPER))
    people = predictor.predict(image, [(100, 50, 300, 500), (0, 0, 512, 600)], return_heatmaps=True)
    assert len(people) == 2
    for p in people:
        assert p.keypoints.shape == (17, 2) and np.isfinite(p.keypoints).all()
        assert p.heatmaps.shape == (17, 16, 12)
    # Keypoints are mapped back into (around) each box.
    kp = people[0].keypoints
    assert (kp[:, 0] > 100 - 100).all() and (kp[:, 0] < 400 + 100).all()


def test_visualize_predict_on_grace_hopper_subprocess(weights, tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "visualize.py"), "predict", "--cfg", str(CFG), "--weights",
         str(weights), "--input", str(HOPPER), "--out", str(out), "--kpt-thresh", "-1", "--heatmap",
         *OVERRIDES],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    written = out / HOPPER.name
    drawn, original = cv2.imread(str(written)), cv2.imread(str(HOPPER))
    assert drawn.shape == original.shape == (600, 512, 3)
    assert np.abs(drawn.astype(int) - original).max() > 100  # a skeleton was drawn


def test_folder_with_an_unreadable_file_and_boxes(weights, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(HOPPER, folder / "a.jpg")
    (folder / "b.jpg").write_bytes(b"not a jpeg")
    out = tmp_path / "out"
    common = ["--cfg", CFG, "--weights", weights, "--kpt-thresh", "-1", *OVERRIDES]
    boxes = ["--box", "50,40,400,520", "--box", "200,100,150,300"]
    assert run("predict", "--input", folder, *boxes, "--out", out, *common) == 1
    assert sorted(p.name for p in out.iterdir()) == ["a.jpg"]
    err = capsys.readouterr().err
    assert "b.jpg" in err and "1 failed" in err
    # A box outside the image: a clear error naming it.
    assert run("predict", "--input", HOPPER, "--box", "5000,10,20,20", "--out", out, *common) == 2
    err = capsys.readouterr().err
    assert "box 0" in err and "outside" in err
    # The output folder may not be the input folder.
    assert run("predict", "--input", folder, "--out", folder, *common) == 2
    assert "overwritten" in capsys.readouterr().err


def test_missing_inputs_and_mismatched_weights(weights, tmp_path, capsys):
    common = ["--cfg", CFG, "--out", tmp_path / "out", *OVERRIDES]
    assert run("predict", "--input", tmp_path / "nope.jpg", "--weights", weights, *common) == 2
    assert "input not found" in capsys.readouterr().err
    assert run("predict", "--input", HOPPER, "--weights", tmp_path / "nope.pth", *common) == 2
    assert "weights file not found" in capsys.readouterr().err
    bad_video = tmp_path / "clip.mp4"
    bad_video.write_bytes(b"\x00" * 100)
    assert run("predict", "--input", bad_video, "--weights", weights, *common) == 2
    assert "video" in capsys.readouterr().err
    # Weights of another architecture.
    other = load_config(CFG, OVERRIDES + ["model.psa=none"])
    other_weights = tmp_path / "other.pth"
    torch.save(build_model(other).state_dict(), other_weights)
    assert run("predict", "--input", HOPPER, "--weights", other_weights, *common, "model.psa=parallel") == 2
    assert "do not match the config" in capsys.readouterr().err


def test_video_in_video_out(weights, tmp_path):
    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10, (96, 80))
    if not writer.isOpened():
        pytest.skip("OpenCV has no mp4v encoder here")
    rng = np.random.default_rng(0)
    for _ in range(3):
        writer.write(rng.integers(0, 255, (80, 96, 3), dtype=np.uint8))
    writer.release()
    out = tmp_path / "out"
    assert run("predict", "--input", video, "--cfg", CFG, "--weights", weights, "--out", out, "--kpt-thresh",
               "-1", "--save-frames", *OVERRIDES) == 0
    cap = cv2.VideoCapture(str(out / "clip_pose.mp4"))
    frames = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        assert frame.shape == (80, 96, 3)
        frames += 1
    assert frames == 3
    assert len(list(out.glob("clip_*.jpg"))) == 3


def test_visualize_predict_with_onnxruntime(weights, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    from pose.export import export_onnx

    cfg = load_config(CFG, OVERRIDES)
    model = build_model(cfg)
    model.load_state_dict(torch.load(weights))
    onnx_file = export_onnx(model, tmp_path / "tiny.onnx", input_size=tuple(cfg.data.input_size))
    common = ["--input", HOPPER, "--kpt-thresh", "-1", "--box", "50,40,400,520", *OVERRIDES]
    assert run("predict", "--cfg", CFG, "--weights", weights, "--out", tmp_path / "eager", *common) == 0
    assert run("predict", "--cfg", CFG, "--weights", onnx_file, "--backend", "onnxruntime",
               "--out", tmp_path / "onnx", *common) == 0
    eager = cv2.imread(str(tmp_path / "eager" / HOPPER.name))
    fast = cv2.imread(str(tmp_path / "onnx" / HOPPER.name))
    assert np.abs(eager.astype(int) - fast).max() <= 40  # the same skeleton (JPEG noise aside)
    assert run("predict", "--cfg", CFG, "--random-init", "--backend", "onnxruntime", "--out", tmp_path / "x",
               *common) == 2
    assert "needs --weights" in capsys.readouterr().err

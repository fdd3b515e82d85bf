"""train.tensorboard: the scalars and drawn predictions a run writes, nothing on other ranks, and a
clear error when the package is missing."""

import json
import signal
from pathlib import Path

import numpy as np
import pytest
from test_train_loop import make_cfg, send_at

from pose.data import build_dataset
from pose.data.image_io import read_image
from pose.engine import tensorboard_log
from pose.engine.stopping import TrainingError, TrainingInterrupted
from pose.engine.trainer import train


def read_events(folder):
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    acc = event_accumulator.EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    return acc


def test_a_run_logs_loss_lr_speed_validation_and_drawn_predictions(data_root, tmp_path):
    pytest.importorskip("tensorboard")
    summary = train(make_cfg(data_root, tmp_path, "train.tensorboard=true"), verbose=False)
    acc = read_events(tmp_path / "tensorboard")
    tags = acc.Tags()
    steps = summary["history"][-1]["iterations"] * len(summary["history"])
    assert [e.step for e in acc.Scalars("train/loss")] == list(range(1, steps + 1))
    assert len(acc.Scalars("train/lr")) == steps
    history = summary["history"]
    assert [e.value for e in acc.Scalars("epoch/loss")] == pytest.approx([r["loss"] for r in history], rel=1e-6)
    assert [e.value for e in acc.Scalars("epoch/lr")] == pytest.approx([r["lr"] for r in history], rel=1e-6)
    assert all(e.value > 0 for e in acc.Scalars("epoch/samples_per_s"))
    assert [e.value for e in acc.Scalars("val/AP")] == pytest.approx([r["AP"] for r in history], abs=1e-6)
    assert {"val/AP.5", "val/AP(M)", "val/AR"} <= set(tags["scalars"])
    images = acc.Images("val/predictions")
    assert len(images) == len(history) and images[0].height == 256 and images[0].width > 256  # two images
    assert images[-1].encoded_image_string[:8] == b"\x89PNG\r\n\x1a\n"


def test_other_ranks_write_nothing(tmp_path):
    pytest.importorskip("tensorboard")
    assert tensorboard_log.open_tensorboard(tmp_path, enabled=True, is_main=False) is None
    assert tensorboard_log.open_tensorboard(tmp_path, enabled=False, is_main=True) is None
    assert not (tmp_path / "tensorboard").exists()


def test_without_the_package_the_error_says_how_to_install_it(data_root, tmp_path, monkeypatch):
    monkeypatch.setattr(tensorboard_log, "SummaryWriter", None)  # as when the import failed
    with pytest.raises(TrainingError, match=r"needs the tensorboard package.*pip install tensorboard"):
        train(make_cfg(data_root, tmp_path, "train.tensorboard=true"), verbose=False)
    assert not (tmp_path / "checkpoint.pth").exists()
    with pytest.raises(TrainingError, match="pip install tensorboard"):  # on every rank, not only rank 0
        tensorboard_log.open_tensorboard(tmp_path, enabled=True, is_main=False)


def test_the_drawn_predictions_show_the_results_skeletons(data_root, tmp_path):
    dataset = build_dataset(make_cfg(data_root, tmp_path), "val")
    first = dataset.records[0]
    person = np.zeros((17, 3))
    person[:, 0], person[:, 1], person[:, 2] = np.linspace(20, 120, 17), np.linspace(20, 100, 17), 0.9
    results = tmp_path / "results.json"
    results.write_text(json.dumps([{"image_id": first["image_id"], "category_id": 1, "score": 0.8,
                                    "keypoints": person.ravel().tolist()}]))
    drawn = tensorboard_log._draw_results(results, dataset, 2, score_thresh=0.2)
    plain = read_image(Path(dataset.image_dir) / first["file_name"])
    assert len(drawn) == 2 and drawn[0].shape == plain.shape
    changed = np.abs(drawn[0].astype(int) - plain).max(axis=2) > 0
    assert changed[20:101, 20:121].mean() > 0.01 and not changed[105:, :10].any()  # drawn where the joints are
    assert drawn[1].shape[:2] == read_image(Path(dataset.image_dir) / dataset.records[-1]["file_name"]).shape[:2]


def test_a_resumed_run_continues_the_curves_without_repeating_steps(data_root, tmp_path):
    pytest.importorskip("tensorboard")
    with pytest.raises(TrainingInterrupted):
        train(make_cfg(data_root, tmp_path, "train.tensorboard=true"), on_iteration=send_at(signal.SIGTERM, 1, 1),
              verbose=False)
    summary = train(make_cfg(data_root, tmp_path, "train.tensorboard=true"), verbose=False)
    acc = read_events(tmp_path / "tensorboard")
    steps = summary["history"][-1]["iterations"] * len(summary["history"])
    assert [e.step for e in acc.Scalars("train/loss")] == list(range(1, steps + 1))
    assert [e.step for e in acc.Scalars("epoch/loss")] == [steps // 2, steps]

"""ensure_synthetic (reuse, regenerate, refuse, concurrent callers), the make_synthetic tool, the configs."""

import importlib.util
import json
import multiprocessing
import os
from pathlib import Path

import pytest

import pose.data.synthetic as synthetic
from pose.config import apply_overrides, load_config
from pose.data import build_dataset
from pose.data.synthetic import (
    SyntheticDataError,
    det_file_name,
    ensure_synthetic,
    generate_synthetic_coco,
    read_manifest,
)

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "experiments" / "synthetic" / "tiny.yaml"
SMALL = ["data.synthetic.num_train_images=3", "data.synthetic.num_val_images=2",
         "data.synthetic.image_width=96", "data.synthetic.image_height=72"]


def _cfg(root: Path, *extra: str):
    return load_config(TINY, [f"data.root={root}", *SMALL, *extra])


def _leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if ".tmp-" in p.name or ".old-" in p.name)


def test_synthetic_configs_name_the_generated_detection_file():
    for path in sorted((ROOT / "experiments" / "synthetic").glob("*.yaml")):
        cfg = load_config(path)
        assert cfg.data.synthetic.enabled, path
        assert cfg.data.det_file == det_file_name(cfg.data.val_set), path


def test_generates_then_reuses(tmp_path, monkeypatch):
    cfg = _cfg(tmp_path / "syn")
    assert ensure_synthetic(cfg.data) == Path(cfg.data.root)
    manifest = Path(cfg.data.root) / "synthetic.json"
    stamp = manifest.stat().st_mtime_ns, manifest.stat().st_ino
    assert read_manifest(cfg.data.root)["params"]["image_size"] == [96, 72]

    def no_lock(root):
        raise AssertionError("a complete dataset is reused without taking the lock (read-only parents)")

    monkeypatch.setattr(synthetic, "_root_lock", no_lock)
    ensure_synthetic(cfg.data)
    assert (manifest.stat().st_mtime_ns, manifest.stat().st_ino) == stamp, "same parameters: reuse"
    assert _leftovers(tmp_path) == []


def test_regenerates_on_parameter_change_and_when_incomplete(tmp_path):
    root = tmp_path / "syn"
    ensure_synthetic(_cfg(root).data)
    ensure_synthetic(_cfg(root, "data.synthetic.num_train_images=4", "data.synthetic.seed=1").data)
    assert read_manifest(root)["params"]["num_train_images"] == 4
    assert len(list((root / "images" / "train2017").iterdir())) == 4
    (root / "images" / "train2017" / "000000000002.jpg").unlink()
    ensure_synthetic(_cfg(root, "data.synthetic.num_train_images=4", "data.synthetic.seed=1").data)
    assert (root / "images" / "train2017" / "000000000002.jpg").is_file()
    assert _leftovers(tmp_path) == []


def test_refuses_a_root_that_is_not_synthetic(tmp_path):
    root = tmp_path / "coco"
    (root / "annotations").mkdir(parents=True)
    real = root / "annotations" / "person_keypoints_val2017.json"
    real.write_text('{"images": []}')
    with pytest.raises(SyntheticDataError, match="not empty and has no synthetic.json"):
        ensure_synthetic(_cfg(root).data)
    with pytest.raises(SyntheticDataError, match="synthetic.json"):
        generate_synthetic_coco(root, seed=0, num_train_images=1, num_val_images=1, overwrite=True)
    assert real.read_text() == '{"images": []}' and sorted(p.name for p in root.rglob("*")) == [
        "annotations", "person_keypoints_val2017.json"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(SyntheticDataError, match="not a folder"):
        ensure_synthetic(_cfg(tmp_path / "file").data)
    assert _leftovers(tmp_path) == []


def test_empty_folder_is_filled_and_overwrite_is_explicit(tmp_path):
    root = tmp_path / "empty"
    root.mkdir()
    generate_synthetic_coco(root, seed=0, num_train_images=1, num_val_images=1, image_size=(64, 48))
    assert read_manifest(root)["params"]["seed"] == 0
    with pytest.raises(SyntheticDataError, match="overwrite=True"):
        generate_synthetic_coco(root, seed=1, num_train_images=1, num_val_images=1, image_size=(64, 48))
    generate_synthetic_coco(root, seed=1, num_train_images=1, num_val_images=1, image_size=(64, 48),
                            overwrite=True)
    assert read_manifest(root)["params"]["seed"] == 1


def test_invalid_parameters_are_named(tmp_path):
    with pytest.raises(ValueError, match="max_people"):
        generate_synthetic_coco(tmp_path / "x", seed=0, num_train_images=1, num_val_images=1, max_people=0)
    with pytest.raises(ValueError, match="image_size"):
        generate_synthetic_coco(tmp_path / "x", seed=0, num_train_images=1, num_val_images=1,
                                image_size=(8, 8))
    with pytest.raises(ValueError, match="must differ"):
        generate_synthetic_coco(tmp_path / "x", seed=0, num_train_images=1, num_val_images=1,
                                train_set="a", val_set="a")
    assert not (tmp_path / "x").exists()


def _worker(data_cfg, log: str) -> None:
    real = synthetic._write_dataset

    def logged(out, params):
        with open(log, "a") as fh:
            fh.write(f"{os.getpid()}\n")
        real(out, params)

    synthetic._write_dataset = logged   # in this forked child only
    ensure_synthetic(data_cfg)


def test_concurrent_callers_generate_once(tmp_path):
    cfg = _cfg(tmp_path / "syn")
    log = tmp_path / "writes.log"
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_worker, args=(cfg.data, str(log))) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    assert len(log.read_text().split()) == 1, "exactly one process generates, the others reuse"
    assert read_manifest(cfg.data.root) is not None and _leftovers(tmp_path) == []


def test_build_dataset_generates_and_loads(tmp_path):
    cfg = _cfg(tmp_path / "syn")
    train = build_dataset(cfg, "train")
    assert len(train) > 0 and train[0]["image"].shape[1:] == (64, 48)
    val = build_dataset(apply_overrides(cfg, ["test.use_gt_bbox=false"]), "val")
    assert len(val) > 0


def test_warns_when_det_file_is_not_the_synthetic_one(tmp_path):
    cfg = _cfg(tmp_path / "syn", "data.det_file=person_detection_results/other.json")
    with pytest.warns(UserWarning, match="synthetic_val2017_detections.json"):
        ensure_synthetic(cfg.data)


def test_make_synthetic_tool(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("make_synthetic", ROOT / "tools" / "make_synthetic.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    get_args_parser, main = tool.get_args_parser, tool.main
    root = tmp_path / "syn"
    args = ["--root", str(root), "--train", "2", "--val", "2", "--size", "96x72", "--max-people", "2"]
    assert main(get_args_parser().parse_args(args)) == 0
    out = capsys.readouterr().out
    assert "wrote" in out and "train2017: 2 images" in out and det_file_name("val2017") in out
    assert json.loads((root / "synthetic.json").read_text())["params"]["max_people"] == 2
    assert main(get_args_parser().parse_args(args)) == 0
    assert "already present" in capsys.readouterr().out
    assert main(get_args_parser().parse_args([*args, "--seed", "5"])) == 1
    assert "--force" in capsys.readouterr().err
    assert main(get_args_parser().parse_args([*args, "--seed", "5", "--force"])) == 0
    assert read_manifest(root)["params"]["seed"] == 5
    with pytest.raises(SystemExit):
        get_args_parser().parse_args(["--size", "96by72"])

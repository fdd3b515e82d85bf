"""tools/visualize.py: results and accuracy modes, bad inputs, never overwriting inputs.

Runs the tool in-process (``main(parser.parse_args(...))``) on a tiny hand-made COCO-format set;
the network modes are covered in tests/test_predictor_tools.py.
"""

import importlib.util
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from pose.keypoints import COCO17

ROOT = Path(__file__).resolve().parents[1]


def _load_tool():
    spec = importlib.util.spec_from_file_location("visualize_tool", ROOT / "tools" / "visualize.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tool = _load_tool()


def run(*argv: str) -> int:
    return tool.main(tool.get_args_parser().parse_args([str(a) for a in argv]))


def make_dataset(root: Path, num_images: int = 3, seed: int = 0) -> tuple[Path, Path, list[dict]]:
    """Images named like COCO (by id), an annotation file, and perfect results."""
    rng = np.random.default_rng(seed)
    images_dir = root / "images"
    images_dir.mkdir(parents=True)
    images, anns = [], []
    for i in range(num_images):
        image_id = 100 + i
        name = f"{image_id:012d}.jpg"
        cv2.imwrite(str(images_dir / name), rng.integers(0, 60, (90, 120, 3), dtype=np.uint8))
        images.append({"id": image_id, "file_name": name, "width": 120, "height": 90})
        kp = np.zeros((17, 3))
        kp[:, 0] = rng.uniform(20, 100, 17)
        kp[:, 1] = rng.uniform(15, 75, 17)
        kp[:, 2] = 2
        anns.append({"id": i + 1, "image_id": image_id, "category_id": 1, "iscrowd": 0, "area": 3000.0,
                     "bbox": [15, 10, 90, 70], "num_keypoints": 17, "keypoints": kp.ravel().tolist()})
    gt_file = root / "person_keypoints_val.json"
    gt_file.write_text(json.dumps({"images": images, "annotations": anns,
                                   "categories": [COCO17.coco_category(name="person")]}))
    results = [{"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 0.9}
               for a in anns]
    return images_dir, gt_file, results


def write_json(path: Path, obj) -> Path:
    path.write_text(json.dumps(obj))
    return path


def test_results_mode_one_image_per_image(tmp_path):
    images_dir, gt_file, results = make_dataset(tmp_path)
    res_file = write_json(tmp_path / "results.json", results)
    out = tmp_path / "out"
    assert run("results", "--results", res_file, "--images", images_dir, "--out", out) == 0
    written = sorted(p.name for p in out.iterdir())
    assert written == sorted(p.name for p in images_dir.iterdir())
    for name in written:
        drawn, original = cv2.imread(str(out / name)), cv2.imread(str(images_dir / name))
        assert drawn.shape == original.shape
        assert np.abs(drawn.astype(int) - original).max() > 50  # a skeleton was drawn

    # With the ground truth beside: twice as wide (plus the gap); over: same size.
    out2 = tmp_path / "out_gt"
    assert run("results", "--results", res_file, "--images", images_dir, "--gt", gt_file, "--out", out2) == 0
    drawn = cv2.imread(str(out2 / written[0]))
    assert drawn.shape[1] > 2 * 120 and drawn.shape[0] == 90
    out_m = tmp_path / "out_montage"
    assert run("results", "--results", res_file, "--images", images_dir, "--out", out_m, "--montage", "2",
               "--montage-cols", "2") == 0
    assert cv2.imread(str(out_m / "montage.jpg")).shape == (90, 2 * 120 + 4, 3)
    out3 = tmp_path / "out_over"
    assert run("results", "--results", res_file, "--images", images_dir, "--gt", gt_file, "--gt-mode", "over",
               "--out", out3) == 0
    assert cv2.imread(str(out3 / written[0])).shape == (90, 120, 3)


def test_results_person_threshold(tmp_path):
    images_dir, _, results = make_dataset(tmp_path, num_images=1)
    results[0]["score"] = 0.1
    res_file = write_json(tmp_path / "results.json", results)
    out = tmp_path / "out"
    assert run("results", "--results", res_file, "--images", images_dir, "--out", out,
               "--score-thresh", "0.5") == 0
    name = next(images_dir.iterdir()).name
    # Nothing drawn: only JPEG re-encoding differences.
    diff = np.abs(cv2.imread(str(out / name)).astype(int) - cv2.imread(str(images_dir / name)))
    assert diff.max() < 30


def test_results_unreadable_image_processes_the_rest(tmp_path, capsys):
    images_dir, gt_file, results = make_dataset(tmp_path)
    bad = sorted(images_dir.iterdir())[1]
    bad.write_bytes(b"broken")
    res_file = write_json(tmp_path / "results.json", results)
    out = tmp_path / "out"
    assert run("results", "--results", res_file, "--images", images_dir, "--out", out) == 1
    assert len(list(out.iterdir())) == 2
    err = capsys.readouterr().err
    assert "1 failed" in err and bad.name in err and "cannot decode" in err


def test_results_for_another_dataset(tmp_path, capsys):
    images_dir, gt_file, results = make_dataset(tmp_path)
    other = [{**r, "image_id": r["image_id"] + 5000} for r in results]
    res_file = write_json(tmp_path / "results.json", other)
    assert run("results", "--results", res_file, "--images", images_dir, "--gt", gt_file,
               "--out", tmp_path / "o1") == 2
    assert "another dataset" in capsys.readouterr().err
    assert run("results", "--results", res_file, "--images", images_dir, "--out", tmp_path / "o2") == 2
    assert "another dataset" in capsys.readouterr().err
    assert run("accuracy", "--results", res_file, "--gt", gt_file, "--out", tmp_path / "o3") == 2
    assert "another dataset" in capsys.readouterr().err


def test_missing_and_invalid_inputs(tmp_path, capsys):
    images_dir, gt_file, results = make_dataset(tmp_path)
    res_file = write_json(tmp_path / "results.json", results)
    out = tmp_path / "o"
    assert run("results", "--results", tmp_path / "nope.json", "--images", images_dir, "--out", out) == 2
    assert "results file not found" in capsys.readouterr().err
    assert run("results", "--results", res_file, "--images", tmp_path / "nodir", "--out", out) == 2
    assert "image folder not found" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text("[{]")
    assert run("results", "--results", tmp_path / "bad.json", "--images", images_dir, "--out", out) == 2
    assert "not valid JSON" in capsys.readouterr().err
    write_json(tmp_path / "short.json", [{"image_id": 100, "keypoints": [1, 2, 3], "score": 1}])
    assert run("results", "--results", tmp_path / "short.json", "--images", images_dir, "--out", out,
               "--keypoints", "coco") == 2
    assert "expected 51" in capsys.readouterr().err


def test_never_overwrites_inputs(tmp_path, capsys):
    images_dir, gt_file, results = make_dataset(tmp_path)
    res_file = write_json(tmp_path / "results.json", results)
    before = {p.name: p.read_bytes() for p in images_dir.iterdir()}
    assert run("results", "--results", res_file, "--images", images_dir, "--out", images_dir) == 2
    assert "overwritten" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in images_dir.iterdir()} == before
    # --out naming an existing file is refused too.
    assert run("accuracy", "--results", res_file, "--gt", gt_file, "--out", res_file) == 2
    assert "not a folder" in capsys.readouterr().err
    assert json.loads(res_file.read_text()) == results


def test_accuracy_mode(tmp_path, capsys):
    images_dir, gt_file, results = make_dataset(tmp_path)
    res_file = write_json(tmp_path / "results.json", results)
    out = tmp_path / "acc"
    assert run("accuracy", "--results", res_file, "--gt", gt_file, "--out", out) == 0
    assert (out / "keypoint_accuracy.png").read_bytes()[:4] == b"\x89PNG"
    summary = json.loads((out / "keypoint_accuracy.json").read_text())
    assert summary["mean_accuracy"] == 1.0 and summary["num_matched"] == 3
    assert "left_wrist" in capsys.readouterr().out


def test_help_documents_exit_status(capsys):
    with pytest.raises(SystemExit):
        tool.get_args_parser().parse_args(["--help"])
    assert "Exit status" in capsys.readouterr().out


def test_dataset_browser_writes_grids(tmp_path):
    # A COCO layout: annotations/person_keypoints_train2017.json + images/train2017/.
    root = tmp_path / "coco"
    images_dir, gt_file, _ = make_dataset(tmp_path / "src", num_images=5)
    (root / "annotations").mkdir(parents=True)
    (root / "images").mkdir()
    gt_file.rename(root / "annotations" / "person_keypoints_train2017.json")
    images_dir.rename(root / "images" / "train2017")
    overrides = ["data.input_size=[48,64]", "data.heatmap_size=[12,16]", f"data.root={root}",
                 "data.synthetic.enabled=false", "model.arch=hrnet_tiny"]
    out = tmp_path / "grids"
    cfg = ROOT / "experiments" / "synthetic" / "tiny.yaml"
    assert run("dataset", "--cfg", cfg, "--num", "5", "--per-grid", "4", "--cols", "2", "--out", out,
               *overrides) == 0
    grids = sorted(out.iterdir())
    assert [g.name for g in grids] == ["dataset_train_000.jpg", "dataset_train_001.jpg"]
    first, second = cv2.imread(str(grids[0])), cv2.imread(str(grids[1]))
    # Panels: crop zoomed x2 (64 -> 128 rows) | same; 2 rows vs 1.
    assert first.shape[0] == 2 * 128 + 4 and second.shape[0] == 128
    assert first.shape[1] == 2 * (2 * 96 + 2) + 4
    # The right half of a panel carries the heatmap colour map (red/yellow peaks somewhere).
    panel = second[:, 96 + 2:2 * 96 + 2].astype(int)
    assert (panel[..., 2] - panel[..., 0]).max() > 100

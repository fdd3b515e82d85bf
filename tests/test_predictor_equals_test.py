"""The predictor and tools/test.py run one pipeline: for an image and a box the predictor returns the
keypoints, keypoint scores and person score that tools/test.py writes for that image and box.

tools/test.py runs on detection boxes (test.use_gt_bbox=false) so that both sides crop the same box;
the boxes have fractional coordinates and the network has a spread of outputs (its last layer
scaled up) so that decoding, refinement and the rescoring threshold all have something to decide.
Equality is exact: the same arithmetic in the same order gives the same floats.
"""

import contextlib
import io
import json
import runpy
from pathlib import Path

import numpy as np
import pytest
import torch

from pose.config import load_config
from pose.data.image_io import read_image
from pose.models import build_model
from pose.predictor import DetectionBoxes, Predictor

REPO = Path(__file__).resolve().parents[1]
synthetic = pytest.importorskip("pose.data.synthetic")

# Two boxes per image, far apart (so OKS NMS keeps both), with fractional corners.
BOXES = ([3.25, 5.5, 61.75, 97.125], [88.5, 14.75, 58.3, 91.9])


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("same")
    root = Path(synthetic.generate_synthetic_coco(tmp / "data", seed=5, num_train_images=1, num_val_images=2,
                                                  image_size=(160, 120), max_people=2))
    gt = json.loads((root / "annotations" / "person_keypoints_val2017.json").read_text())
    dets = [{"image_id": im["id"], "category_id": 1, "bbox": box, "score": score}
            for im in gt["images"] for box, score in zip(BOXES, (0.875, 0.6))]
    det_file = tmp / "dets.json"
    det_file.write_text(json.dumps(dets))
    cfg_file = tmp / "tiny.yaml"
    cfg_file.write_text(f"base: {REPO / 'experiments/synthetic/tiny.yaml'}\n"
                        f"data:\n  root: {root}\n  det_file: {det_file}\n  synthetic:\n    enabled: false\n"
                        "test:\n  use_gt_bbox: false\n  batch_size: 2\n")
    cfg = load_config(cfg_file)
    torch.manual_seed(0)
    model = build_model(cfg, verbose=False)
    with torch.no_grad():  # spread the heatmap values so that scores straddle the threshold
        model.final_layer.weight.mul_(300.0)
    weights = tmp / "weights.pth"
    torch.save(model.state_dict(), weights)
    files = {im["id"]: root / "images" / "val2017" / im["file_name"] for im in gt["images"]}
    return tmp, cfg_file, weights, det_file, files


def run_test_tool(cfg_file: Path, weights: Path, out_dir: Path, overrides: list[str]) -> list[dict]:
    tool = runpy.run_path(str(REPO / "tools" / "test.py"))
    args = tool["get_args_parser"]().parse_args(
        ["--cfg", str(cfg_file), "--weights", str(weights), "--quiet", f"output_dir={out_dir}", *overrides])
    with contextlib.redirect_stdout(io.StringIO()):
        assert tool["main"](args) == 0
    return json.loads((out_dir / "results" / "keypoints_val2017_results.json").read_text())


@pytest.mark.parametrize("codec", ["gaussian", "dark", "udp"])
@pytest.mark.parametrize("flip", [False, True])
def test_predictor_returns_what_test_py_writes(workspace, codec, flip):
    check_same(workspace, [f"data.codec={codec}", f"test.flip_test={str(flip).lower()}"], f"{codec}_{flip}")


def test_same_in_bf16_with_channels_last(workspace):
    check_same(workspace, ["test.amp=bf16", "test.channels_last=true"], "bf16")


def check_same(workspace, overrides: list[str], name: str) -> None:
    tmp, cfg_file, weights, det_file, files = workspace
    # A threshold inside the spread of keypoint scores, so rescoring keeps some joints and drops others.
    probe = Predictor.from_config(load_config(cfg_file, overrides), weights)
    scores = np.concatenate([p.scores for f in files.values() for p in probe.predict(read_image(f), BOXES)])
    thresh = float(np.median(scores))
    assert (scores > thresh).any() and (scores <= thresh).any()
    overrides.append(f"test.kpt_score_thresh={thresh!r}")

    results = run_test_tool(cfg_file, weights, tmp / f"out_{name}", overrides)
    predictor = Predictor.from_config(load_config(cfg_file, overrides), weights)
    dets = DetectionBoxes(det_file)
    assert len(results) == 2 * len(files)
    for image_id, path in files.items():
        boxes, box_scores = dets.for_image(image_id)
        people = predictor.predict(read_image(path), boxes, box_scores=box_scores)
        written = [r for r in results if r["image_id"] == image_id]
        assert len(written) == len(people) == 2
        for person in people:  # results are in NMS order (by score): match on the keypoints
            got = person.keypoints_with_scores()
            match = [r for r in written if np.array_equal(np.asarray(r["keypoints"]).reshape(-1, 3), got)]
            assert len(match) == 1, f"image {image_id}: no result of tools/test.py equals the predictor's"
            assert match[0]["score"] == person.score
        assert sorted(r["score"] for r in written) != [0.0, 0.0]

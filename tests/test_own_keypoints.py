"""A keypoint set that is not COCO's, end to end: the synthetic animal (20 joints of its own names).

Training and evaluation run with the overrides of the COCO-synthetic training tests and only
``data.root`` changed; the resolved set then travels in config.yaml and the checkpoints, so that
test.py, the predictor and the ONNX export know the joints without the dataset.
"""

import json
import runpy
from pathlib import Path

import numpy as np
import pytest
import torch
from test_train_loop import tiny_overrides  # the same tiny deterministic run

from pose.config import config_diff, load_config
from pose.data.synthetic import generate_synthetic_coco
from pose.data.synthetic_animal import ANIMAL_NAMES, ANIMAL_SKELETON
from pose.engine.checkpoint import load_checkpoint
from pose.engine.trainer import train
from pose.keypoint_source import checkpoint_keypoints
from pose.keypoints import COCO17, DEFAULT_SIGMA
from pose.models import WeightsError, build_model, load_weights
from pose.predictor import Predictor

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "experiments" / "synthetic" / "tiny.yaml"


pytestmark = pytest.mark.usefixtures("one_thread")




@pytest.fixture(scope="module")
def animal_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("animal_data") / "synthetic_animal"
    return generate_synthetic_coco(root, seed=7, num_train_images=6, num_val_images=2, image_size=(160, 120),
                                   max_people=2, figure="animal")


@pytest.fixture(scope="module")
def animal_run(animal_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("animal_run")
    torch.set_num_threads(1)
    return out, train(load_config(TINY, tiny_overrides(animal_root, out)), verbose=False)


def test_the_animal_data_declare_their_own_set(animal_root):
    data = json.loads((animal_root / "annotations" / "person_keypoints_train2017.json").read_text())
    (cat,) = data["categories"]
    assert cat["keypoints"] == list(ANIMAL_NAMES) and len(ANIMAL_NAMES) == 20
    assert cat["skeleton"] == [[a + 1, b + 1] for a, b in ANIMAL_SKELETON]
    assert all(len(a["keypoints"]) == 60 for a in data["annotations"])


def test_train_and_evaluate_with_only_data_root_changed(animal_run, animal_root, data_root, tmp_path):
    out, summary = animal_run
    person = load_config(TINY, tiny_overrides(data_root, out))
    animal = load_config(TINY, tiny_overrides(animal_root, out))
    assert list(config_diff(person, animal)) == ["data.root"]
    # The set resolved from the annotation file is in config.yaml and in both checkpoints.
    saved = load_config(out / "config.yaml")
    kp = saved.data.keypoints
    assert kp.names == ANIMAL_NAMES and saved.model.num_joints == 20 and kp.name == "animal"
    pairs = {(ANIMAL_NAMES[a], ANIMAL_NAMES[b]) for a, b in kp.flip_pairs}
    assert {("eye_l", "eye_r"), ("l_front_paw", "r_front_paw"), ("l_hind_knee", "r_hind_knee")} <= pairs
    assert kp.sigmas == (DEFAULT_SIGMA,) * 20 and kp.upper_body == ()
    for name in ("checkpoint.pth", "model_best.pth"):
        assert load_checkpoint(out / name)["config"]["data"]["keypoints"]["names"] == list(ANIMAL_NAMES)
    # Evaluation: OKS AP with the set's sigmas, PCK / AUC / EPE, 20-joint results of its category.
    stats = summary["stats"]
    assert {"AP", "AR", "PCK@0.05", "AUC", "EPE"} <= stats.keys()
    results = json.loads((out / "results" / "keypoints_val2017_results.json").read_text())
    assert results and all(len(r["keypoints"]) == 60 and r["category_id"] == 1 for r in results)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert all("AUC" in r and "EPE" in r for r in records)


def test_predictor_and_export_know_the_joints_without_the_dataset(animal_run, tmp_path):
    out, _ = animal_run
    weights = out / "model_best.pth"
    # The predictor: the set comes from the checkpoint (the config says 'auto'; no data at hand).
    predictor = Predictor.from_config(load_config(TINY), weights)
    assert predictor.keypoints.names == ANIMAL_NAMES
    image = np.full((120, 160, 3), 90, np.uint8)
    (person,) = predictor.predict(image, [(10, 10, 100, 80)])
    assert person.keypoints.shape == (20, 2)
    from pose import vis
    drawn = vis.draw_skeleton(image, person.keypoints_with_scores(), score_thresh=-1, kset=predictor.keypoints)
    assert (drawn != image).any()
    # The ONNX file carries the set in its metadata (a network without PSA: shapes only matter here).
    pytest.importorskip("onnx")
    from pose.export import export_onnx, onnx_keypoints
    from pose.models import create_model
    onnx_file = export_onnx(create_model("hrnet_tiny", num_joints=20), tmp_path / "animal.onnx", input_size=(48, 64),
                            keypoints=predictor.keypoints)
    assert onnx_keypoints(onnx_file) == predictor.keypoints


def test_test_tool_on_the_animal_data(animal_run, animal_root, tmp_path, capsys):
    out, summary = animal_run
    tool = runpy.run_path(str(REPO / "tools" / "test.py"))
    args = ["--cfg", str(TINY), "--weights", str(out / "model_best.pth"), *tiny_overrides(animal_root, tmp_path)]
    assert tool["main"](tool["get_args_parser"]().parse_args(args)) == 0
    stats = json.loads((tmp_path / "results" / "stats_val2017.json").read_text())
    best = next(r for r in summary["history"] if r["epoch"] == summary["best_epoch"])  # model_best.pth's epoch
    assert stats["AP"] == best["AP"] and stats["EPE"] == pytest.approx(best["EPE"])
    assert "PCK@0.05" in capsys.readouterr().out


def test_fine_tuning_from_coco_weights(animal_root, data_root, tmp_path, capsys):
    # COCO-17 weights (one epoch on the person data) start an animal run with everything but the
    # final layer; without model.finetune_from they are refused, naming the option.
    coco_out = tmp_path / "coco"
    train(load_config(TINY, tiny_overrides(data_root, coco_out, "train.epochs=1")), verbose=False)
    coco_weights = coco_out / "model_best.pth"
    assert load_checkpoint(coco_weights)["model"]["final_layer.weight"].shape[0] == COCO17.num_joints
    # A checkpoint from before keypoint sets (no data.keypoints in its config) is COCO-17's.
    old = load_checkpoint(coco_weights)
    del old["config"]["data"]["keypoints"]
    old["config"]["model"]["num_joints"] = 17
    torch.save(old, tmp_path / "old.pth")
    assert checkpoint_keypoints(tmp_path / "old.pth") is None
    assert Predictor.from_config(load_config(TINY), tmp_path / "old.pth").keypoints == COCO17
    test_tool = runpy.run_path(str(REPO / "tools" / "test.py"))
    args = ["--cfg", str(TINY), "--weights", str(coco_weights), *tiny_overrides(animal_root, tmp_path / "t")]
    assert test_tool["main"](test_tool["get_args_parser"]().parse_args(args)) == 1
    err = capsys.readouterr().err
    assert "data.keypoints names ['nose', 'left_eye'" in err and "declares ['nose', 'eye_l'" in err
    animal = load_config(TINY, [*tiny_overrides(animal_root, tmp_path / "x"), "data.keypoints.name=auto",
                                "model.num_joints=20"])
    with pytest.raises(WeightsError, match="weights are for 17 joints, the network has 20 .*model.finetune_from"):
        load_weights(build_model(animal), coco_weights)
    out = tmp_path / "finetuned"
    train(load_config(TINY, tiny_overrides(animal_root, out, "train.epochs=1", f"model.finetune_from={coco_weights}")),
          verbose=False)
    log = (out / "train.log").read_text()
    assert "fine-tuning from" in log and "final_layer.weight: [17, 16, 1, 1] vs [20, 16, 1, 1]" in log
    tuned = load_checkpoint(out / "checkpoint.pth")["config"]
    assert tuned["model"]["num_joints"] == 20


def test_the_own_keypoint_path_learns(tmp_path):
    # Sixteen animals, one per image, learned and evaluated on the same images without augmentation
    # (an overfitting check): OKS AP and PCK must rise well above their early values.
    root = generate_synthetic_coco(tmp_path / "a16", seed=0, num_train_images=16, num_val_images=2,
                                   image_size=(160, 120), max_people=1, figure="animal")
    cfg = load_config(TINY, tiny_overrides(
        root, tmp_path / "out", "data.val_set=train2017", "train.epochs=12", "train.val_every=4", "train.lr=0.005",
        "train.lr_steps=[11]", "data.aug.flip=false", "data.aug.rot_factor=0", "data.aug.scale_factor=0",
        "data.aug.half_body_prob=0"))
    history = [r for r in train(cfg, verbose=False)["history"] if "AP" in r]
    assert [r["epoch"] for r in history] == [4, 8, 12]
    first, last = history[0], history[-1]
    assert last["AP"] >= 0.1 and last["AP"] > first["AP"] + 0.1, history
    assert last["PCK@0.05"] > first["PCK@0.05"] + 0.1 and last["EPE"] < first["EPE"], history

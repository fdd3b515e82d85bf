from pathlib import Path

import pytest

from pose.config import (
    ConfigError,
    apply_overrides,
    config_diff,
    from_dict,
    load_config,
    save_config,
    to_dict,
)

ROOT = Path(__file__).resolve().parents[1]
YAMLS = sorted(p for p in (ROOT / "experiments").rglob("*.yaml") if not p.name.startswith("_"))


@pytest.mark.parametrize("path", YAMLS, ids=lambda p: str(p.relative_to(ROOT / "experiments")))
def test_every_experiment_loads(path):
    cfg = load_config(path)
    w, h = cfg.data.input_size
    hw, hh = cfg.data.heatmap_size
    assert (w, h) == (4 * hw, 4 * hh), "heatmaps are at stride 4"
    assert cfg.output_dir == str(Path("output") / path.stem)


def test_official_recipe_values():
    w32 = load_config(ROOT / "experiments/coco/hrnet/w32_256x192_adam_lr1e-3_psa_p.yaml")
    assert w32.model.arch == "hrnet_w32" and w32.model.psa == "parallel"
    assert (w32.train.epochs, w32.train.lr_steps, w32.train.lr) == (210, (170, 200), 1e-3)
    assert (w32.data.aug.rot_factor, w32.data.aug.scale_factor, w32.data.aug.half_body_prob) == (45, .35, .3)
    assert w32.train.weight_decay == 0.0 and w32.train.lr_step_timing == "epoch_end"
    w48 = load_config(ROOT / "experiments/coco/hrnet/w48_384x288_adam_lr1e-3.yaml")
    assert (w48.data.input_size, w48.data.heatmap_size, w48.data.sigma) == ((288, 384), (72, 96), 3.0)
    assert w48.train.batch_size == 24
    r50 = load_config(ROOT / "experiments/coco/resnet/res50_256x192_d256x3_adam_lr1e-3.yaml")
    assert (r50.train.epochs, r50.train.lr_steps) == (140, (90, 120))
    assert (r50.data.aug.rot_factor, r50.data.aug.scale_factor, r50.data.aug.half_body_prob) == (40, .3, 0)


def test_overrides_and_types():
    cfg = load_config(None, ["train.lr=5e-4", "data.input_size=[288,384]", "model.psa=sequential"])
    assert cfg.train.lr == 5e-4 and cfg.data.input_size == (288, 384) and cfg.model.psa == "sequential"
    assert isinstance(cfg.train.lr, float)


@pytest.mark.parametrize("override, message", [
    ("train.lrr=1", "train.lrr"),
    ("train.lr=abc", "train.lr must be a number"),
    ("train.epochs=1.5", "train.epochs must be an integer"),
    ("train.amp=yes", "train.amp"),
    ("model.psa=both", "model.psa='both' is not one of none, parallel, sequential"),
    ("data.input_size=[1]", "data.input_size must be a list of 2"),
    ("data.aug.flip=2", "data.aug.flip must be true or false"),
    ("train=3", "'train' is a section"),
    ("noequals", "section.key=value"),
])
def test_bad_overrides_name_the_key(override, message):
    with pytest.raises(ConfigError, match=None) as info:
        load_config(None, [override])
    assert message in str(info.value)


def test_bad_files_name_the_file_and_key(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  lr: [1\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    bad.write_text("model:\n  archh: resnet50\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: unknown key 'model.archh'"):
        load_config(bad)
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(bad)
    loop = tmp_path / "loop.yaml"
    loop.write_text("base: loop.yaml\n")
    with pytest.raises(ConfigError, match="loops"):
        load_config(loop)


def test_base_chain_and_empty_file(tmp_path):
    (tmp_path / "a.yaml").write_text("train:\n  lr: 0.01\n  epochs: 3\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\ntrain:\n  epochs: 5\n")
    cfg = load_config(tmp_path / "b.yaml")
    assert (cfg.train.lr, cfg.train.epochs) == (0.01, 5)
    (tmp_path / "empty.yaml").write_text("")
    assert load_config(tmp_path / "empty.yaml").train.epochs == 210


def test_save_roundtrip_and_diff(tmp_path):
    cfg = load_config(None, ["model.psa=parallel", "train.workers=1"])
    save_config(cfg, tmp_path / "out" / "config.yaml")
    again = load_config(tmp_path / "out" / "config.yaml")
    assert again == cfg
    assert from_dict(to_dict(cfg)) == cfg
    assert list(tmp_path.joinpath("out").iterdir()) == [tmp_path / "out" / "config.yaml"]
    other = apply_overrides(cfg, ["train.workers=4", "data.input_size=[96,128]"])
    assert config_diff(cfg, other) == {"data.input_size": ([192, 256], [96, 128]),
                                       "train.workers": (1, 4)}

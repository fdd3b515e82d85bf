"""Every experiment YAML builds its network (on the meta device: shapes only)."""

from pathlib import Path

import pytest
import torch

from pose.config import load_config
from pose.keypoint_source import resolve_run_keypoints
from pose.models import build_model, count_params

ROOT = Path(__file__).resolve().parents[1]
YAMLS = sorted(p for p in (ROOT / "experiments").rglob("*.yaml") if not p.name.startswith("_"))


@pytest.mark.parametrize("path", YAMLS, ids=lambda p: str(p.relative_to(ROOT / "experiments")))
def test_every_experiment_builds(path):
    # ImageNet files are not in the repository; 'auto' keypoint sets (synthetic data) build as COCO-17.
    cfg = resolve_run_keypoints(load_config(path, ["model.pretrained=''"]))
    w, h = cfg.data.input_size
    with torch.device("meta"):  # shapes only: fast, and the big networks' shapes are tested elsewhere
        model = build_model(cfg)
        if cfg.model.arch.endswith(("tiny", "small")):
            assert model(torch.empty(1, 3, h, w)).shape == (1, cfg.model.num_joints, h // 4, w // 4)
    assert count_params(model) > 0
    assert (cfg.model.psa != "none") == any(n.endswith(".psa") for n, _ in model.named_modules())

"""Where a run that loads trained weights gets its keypoint set from, without the training data.

Training writes the resolved set into the config (``data.keypoints``, ``model.num_joints``) and
thus into ``config.yaml`` and every checkpoint. Evaluation, prediction, drawing and export then
take the set, in this order, from:

1. the config itself, when it names a set (a built-in ``data.keypoints.name`` or explicit
   ``names``: e.g. a run's saved ``config.yaml``);
2. the weights file, when it is a checkpoint of this toolkit with a config holding a set;
3. the dataset at hand (``tools/test.py``: its annotation file's category), when there is one;
4. otherwise COCO-17: a checkpoint written before keypoint sets existed, or an official HRNet /
   SimpleBaseline file, is COCO's.
"""

import logging
import os
from pathlib import Path
from typing import Any

import torch

from pose.config import Config, ConfigError, configured_keypoint_set, to_dict, with_keypoint_set
from pose.keypoints import COCO17, KeypointSet, KeypointSetError, from_dict, resolve

logger = logging.getLogger(__name__)

__all__ = ["checkpoint_keypoints", "resolve_run_keypoints"]


def _saved_config(path: Path) -> dict[str, Any] | None:
    try:  # memory-mapped where the format allows it: the tensors are not read, only the small config
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:
            return None  # unreadable: the weights loader reports it with its own clear error
    config = state.get("config") if isinstance(state, dict) else None
    return config if isinstance(config, dict) else None


def checkpoint_keypoints(path: str | os.PathLike) -> KeypointSet | None:
    """The keypoint set saved in a checkpoint's config (or an exported ONNX file's metadata), or None
    (no config, or one from before sets)."""
    if Path(path).suffix.lower() == ".onnx":
        from pose.export import onnx_keypoints
        return onnx_keypoints(path) if Path(path).is_file() else None
    config = _saved_config(Path(path))
    section = (config or {}).get("data", {}).get("keypoints") if isinstance(config, dict) else None
    if not isinstance(section, dict) or not section.get("names"):
        return None
    try:
        return from_dict(section, source=f"the keypoint set saved in {path}")
    except KeypointSetError as exc:
        raise ConfigError(str(exc)) from None


def resolve_run_keypoints(cfg: Config, weights: str | os.PathLike | None = None,
                          fallback: KeypointSet | None = COCO17) -> Config:
    """``cfg`` with its keypoint set resolved for a run that loads ``weights`` (the order is in the
    module docstring). Fields the config gives (e.g. ``data.keypoints.sigmas``) apply on top of the
    checkpoint's set. ``fallback=None`` leaves an unresolved 'auto' config as it is, for a dataset
    to resolve (``pose.data.with_dataset_keypoints``)."""
    if configured_keypoint_set(cfg) is not None:
        return with_keypoint_set(cfg, configured_keypoint_set(cfg))
    base, origin = (checkpoint_keypoints(weights), f"the checkpoint {weights}") if weights else (None, "")
    if base is None:
        if fallback is None:
            return cfg
        base, origin = fallback, f"{fallback.name} (no keypoint set in the config or the weights file)"
    try:
        kset = resolve(to_dict(cfg.data.keypoints), base, source="data.keypoints", declared_from=origin,
                       warn_default_sigmas=False)
    except KeypointSetError as exc:
        raise ConfigError(str(exc)) from None
    logger.info("keypoint set %r (%d joints) from %s", kset.name, kset.num_joints, origin)
    return with_keypoint_set(cfg, kset)

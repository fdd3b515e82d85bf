"""``tools/test.py`` as a function: config + weights file -> COCO keypoint stats.

The network of ``cfg.model`` is built without its ImageNet backbone file (the trained weights
replace everything), the weights are loaded strictly (official HRNet / SimpleBaseline checkpoints
and ours: ``pose.models.load_weights`` accepts raw state_dicts and dicts with a 'state_dict' or
'model' key, and strips ``module.``), the 'val' dataset of the config is built (ground-truth boxes
or ``data.det_file`` per ``test.use_gt_bbox``) and :func:`pose.engine.evaluator.evaluate` runs.

Launched by ``torchrun`` (``WORLD_SIZE`` > 1), the process group is initialised here
(:func:`pose.runtime.init_distributed`: NCCL on CUDA, gloo on CPU, with its timeout) and
each rank evaluates a shard.
"""

import logging
import os
from pathlib import Path

from pose import runtime
from pose.config import Config, save_config
from pose.data import build_dataset, with_dataset_keypoints
from pose.engine.evaluator import evaluate, results_paths
from pose.keypoint_source import resolve_run_keypoints
from pose.models import build_model, load_weights

logger = logging.getLogger(__name__)


def resolve_weights(cfg: Config, weights: str | os.PathLike | None = None) -> Path:
    """The weights to evaluate: ``weights``, else ``cfg.test.weights``, else ``output_dir/model_best.pth``.

    Raises FileNotFoundError naming the file and where the name came from.
    """
    if weights:
        path, origin = Path(weights), "--weights"
    elif cfg.test.weights:
        path, origin = Path(cfg.test.weights), "test.weights"
    else:
        path, origin = Path(cfg.output_dir) / "model_best.pth", "the default output_dir/model_best.pth"
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path} (from {origin}); pass --weights FILE or "
                                "test.weights=FILE, or train first (tools/train.py writes model_best.pth)")
    return path


def run_test(cfg: Config, weights: str | os.PathLike | None = None, *, device: str | None = None,
             amp: str | None = None, verbose: bool = True) -> dict[str, float]:
    """Evaluate the weights (see :func:`resolve_weights`) of ``cfg``'s network on its 'val' split.

    ``device`` and ``amp`` override ``cfg.device`` and ``cfg.test.amp`` ('auto': bf16 where the
    hardware has bf16 units); ``cfg.test.channels_last`` picks the memory format and
    ``cfg.test.compile`` whether the network is compiled (:class:`pose.runtime.FrozenNetwork`).

    Returns the ten stats ({} for a split without keypoint ground truth); writes the results file,
    the stats file and the merged config under ``cfg.output_dir/results/``.
    """
    path = resolve_weights(cfg, weights)
    dev, rank, _ = runtime.init_distributed(device or cfg.device)
    malloc = runtime.configure_cpu_malloc(cfg.cpu_malloc)
    cfg = resolve_run_keypoints(cfg, path, fallback=None)  # else the dataset's category decides
    dataset = build_dataset(cfg, "val")
    cfg = with_dataset_keypoints(cfg, dataset)
    model = build_model(cfg, pretrained=False, verbose=False)
    report = load_weights(model, path, strict=True)
    if verbose and rank == 0:
        print(f"=> weights {path}: {report}")
    model.to(dev)
    precision = runtime.resolve_amp(amp or cfg.test.amp, dev)
    compiled, why = runtime.resolve_compile(cfg.test.compile, dev, deterministic=False, key="test.compile")
    if not compiled and cfg.test.compile == "true" and rank == 0:
        logger.warning("=> %s: evaluating eagerly (uncompiled) instead; test.compile=false silences this", why)
    if verbose and rank == 0:
        boxes = "ground-truth boxes" if cfg.test.use_gt_bbox else f"detections {cfg.data.det_file}"
        print(f"=> {dataset.image_set}: {len(dataset)} person crops ({boxes}), flip test "
              f"{'on' if cfg.test.flip_test else 'off'}, codec {cfg.data.codec}, device {dev}, amp {precision}"
              + (", channels_last" if cfg.test.channels_last else "") + (", compiled" if compiled else ""))
        print(f"=> {malloc}")
    if rank == 0:
        results_file, _ = results_paths(cfg.output_dir, dataset.image_set)
        save_config(cfg, results_file.parent / f"test_config_{dataset.image_set}.yaml")
    return evaluate(model, dataset, cfg, cfg.output_dir, dev, amp=precision, channels_last=cfg.test.channels_last,
                    compile=compiled, verbose=verbose)

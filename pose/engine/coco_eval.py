"""COCO keypoint evaluation of a results file: the ten standard numbers.

``coco_keypoint_eval(gt_file, results_file)`` runs ``COCOeval(gt, dt, iouType='keypoints')``
(evaluate, accumulate, summarize) exactly as the official evaluation does, with pycocotools or,
optionally, faster-coco-eval (``backend='faster_coco_eval'``; a test checks that it gives the
same ten numbers on the same files). The libraries' own prints are captured and sent to this
module's logger at DEBUG level; the summary table they print is logged at INFO.

An empty results list is valid: pycocotools cannot load it (``loadRes`` indexes the first
entry), so an empty detection set is built directly; every AP/AR is then 0 (or -1 where the
ground truth has no instance in that area range, as COCOeval reports it).
"""

import contextlib
import io
import logging
import os
from pathlib import Path

import numpy as np

from pose.data.json_io import load_json
from pose.engine.results_io import RESULTS_SCHEMA, EvalError, check_results  # noqa: F401 (re-exported)
from pose.engine.tables import metrics_table
from pose.keypoints import KeypointSet, KeypointSetError, from_categories

logger = logging.getLogger(__name__)

STAT_NAMES: tuple[str, ...] = (
    "AP", "AP .5", "AP .75", "AP (M)", "AP (L)", "AR", "AR .5", "AR .75", "AR (M)", "AR (L)")
BACKENDS = ("pycocotools", "faster_coco_eval")


def _backend_modules(backend: str):
    if backend == "pycocotools":
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
        return COCO, COCOeval
    if backend == "faster_coco_eval":
        try:
            from faster_coco_eval import COCO, COCOeval_faster
        except ModuleNotFoundError as exc:
            raise ModuleNotFoundError(
                "test.eval_backend=faster_coco_eval needs the faster-coco-eval package "
                "(pip install faster-coco-eval, or pip install -e .[fast-eval]); "
                "or use test.eval_backend=pycocotools", name=exc.name) from None
        return COCO, COCOeval_faster
    raise ValueError(f"unknown eval backend {backend!r}; valid: {', '.join(BACKENDS)}")


def _declared_set(gt: dict, path: Path) -> KeypointSet | None:
    categories = gt.get("categories")
    if not isinstance(categories, list) or not any(isinstance(c, dict) and "keypoints" in c for c in categories):
        return None
    try:
        return from_categories(categories, str(path))[0]
    except KeypointSetError as exc:
        raise EvalError(str(exc)) from None


def coco_api_pair(coco_cls, gt_data: dict, results: list[dict], res_path: Path):
    """Ground truth and results as COCO API objects of ``coco_cls``; no results give an empty
    results set (``loadRes`` refuses an empty list), so every AP and AR is 0."""
    gt = coco_cls()
    gt.dataset = gt_data
    gt.createIndex()
    if results:
        return gt, gt.loadRes(results)
    logger.warning("%s: no predictions; every AP and AR is 0", res_path)
    dt = coco_cls()
    dt.dataset = {"images": list(gt_data["images"]), "annotations": [],
                  "categories": list(gt_data.get("categories", []))}
    dt.createIndex()
    return gt, dt


def coco_keypoint_eval(gt_file: str | os.PathLike, results_file: str | os.PathLike,
                       backend: str = "pycocotools", sigmas: np.ndarray | None = None) -> dict[str, float]:
    """The ten COCO keypoint stats of ``results_file`` against ``gt_file`` -> {name: value}.

    ``sigmas`` (K,): the keypoint set's OKS sigmas, given to the evaluation as
    ``params.kpt_oks_sigmas``; None takes those of the set the file's keypoint category declares
    (:func:`pose.keypoints.from_categories`; COCO's official values for COCO's names).

    Keys (in order): AP, AP .5, AP .75, AP (M), AP (L), AR, AR .5, AR .75, AR (M), AR (L).
    """
    coco_cls, eval_cls = _backend_modules(backend)
    gt_path, res_path = Path(gt_file), Path(results_file)
    gt_data = load_json(gt_path, "COCO keypoint annotation file")
    if not isinstance(gt_data, dict) or not isinstance(gt_data.get("images"), list) \
            or not isinstance(gt_data.get("annotations"), list):
        raise EvalError(f"{gt_path}: expected a COCO annotation object with 'images' and 'annotations' lists "
                        "(a split without keypoint ground truth cannot be evaluated)")
    if not gt_data["annotations"]:
        raise EvalError(f"{gt_path}: has no annotations, so there is nothing to evaluate against")
    results = load_json(res_path, "keypoint results file")
    declared = _declared_set(gt_data, gt_path)
    if sigmas is None:
        if declared is None:
            raise EvalError(f"{gt_path}: no category declares its 'keypoints' names, so the OKS sigmas are "
                            "unknown; pass the keypoint set's sigmas")
        sigmas = declared.oks_sigmas
    sigmas = np.asarray(sigmas, dtype=np.float64).reshape(-1)
    results = check_results(results, res_path, num_joints=len(sigmas),
                            known_image_ids={img["id"] for img in gt_data["images"]},
                            known_name=f"the ground truth {gt_path}")
    captured = io.StringIO()
    with contextlib.redirect_stdout(captured):
        gt, dt = coco_api_pair(coco_cls, gt_data, results, res_path)
        coco_eval = eval_cls(gt, dt, "keypoints")
        coco_eval.params.kpt_oks_sigmas = sigmas
        if backend == "pycocotools":  # as the official code (a no-op for keypoints); faster-coco-eval
            coco_eval.params.useSegm = None  # would read it as a switch to box evaluation
        coco_eval.evaluate()
        coco_eval.accumulate()
        summary = io.StringIO()
        with contextlib.redirect_stdout(summary):
            coco_eval.summarize()
    logger.debug("%s output:\n%s", backend, captured.getvalue())
    logger.info("COCOeval (%s) of %s:\n%s", backend, res_path, summary.getvalue().rstrip())
    stats = np.asarray(coco_eval.stats, dtype=np.float64).reshape(-1)
    if stats.shape[0] < len(STAT_NAMES):
        raise EvalError(f"{backend} returned {stats.shape[0]} stats; expected {len(STAT_NAMES)}")
    return {name: float(v) for name, v in zip(STAT_NAMES, stats)}


def format_stats_table(stats: dict[str, float], name: str | None = None) -> str:
    """The ten stats as a Markdown table (three decimals), optionally with a first column ``name``."""
    return metrics_table(stats, STAT_NAMES, name=name)

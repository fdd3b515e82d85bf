"""Keypoint results files: written atomically (temporary file, flush, fsync, rename) and checked
when read (by the COCO evaluation, the per-keypoint accuracy and ``tools/visualize.py``)."""

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from pose.atomic_io import atomic_write_bytes

RESULTS_SCHEMA = "a JSON list of {image_id: int, category_id: int, keypoints: [x, y, score] * K, score: number}"


class EvalError(ValueError):
    """A ground-truth or results file cannot be evaluated; the message names the file and the problem."""


def write_json_atomic(path: str | os.PathLike, obj: Any, indent: int | None = None) -> Path:
    """``json.dump(obj)`` to ``path`` through a temporary file in the same folder; never a partial file."""
    path = Path(path)
    atomic_write_bytes(path, json.dumps(obj, indent=indent).encode())
    return path


def keypoint_results(image_ids: np.ndarray, keypoints: np.ndarray, scores: np.ndarray,
                     category_ids: int | np.ndarray = 1) -> list[dict]:
    """COCO keypoint results: ``{image_id, category_id, keypoints: [x, y, score] * K, score}`` per instance.

    image_ids (N,), keypoints (N, K, 3) image px + joint score, scores (N,) instance scores,
    category_ids: one id for all (COCO's person: 1) or (N,) (the annotation file's keypoint categories).
    Values are written at full precision (float32 values as exact doubles, as the official code).
    """
    keypoints = np.asarray(keypoints)
    n = keypoints.shape[0]
    if keypoints.ndim != 3 or keypoints.shape[2] != 3 or len(image_ids) != n or len(scores) != n:
        raise ValueError(f"keypoints must be (N, K, 3) with N image ids and scores; got {keypoints.shape}, "
                         f"{len(image_ids)} ids, {len(scores)} scores")
    flat = keypoints.reshape(n, 3 * keypoints.shape[1]).astype(np.float64).tolist()  # -1 fails for n = 0
    ids = np.asarray(image_ids).astype(np.int64).tolist()
    scores = np.asarray(scores, dtype=np.float64).tolist()
    cats = np.broadcast_to(np.asarray(category_ids, np.int64), (n,)).tolist()
    return [{"image_id": i, "category_id": c, "keypoints": k, "score": s}
            for i, c, k, s in zip(ids, cats, flat, scores)]


def write_keypoint_results(path: str | os.PathLike, image_ids: np.ndarray, keypoints: np.ndarray,
                           scores: np.ndarray, category_ids: int | np.ndarray = 1) -> Path:
    """Write :func:`keypoint_results` to ``path`` atomically; returns the path."""
    return write_json_atomic(path, keypoint_results(image_ids, keypoints, scores, category_ids))


def _is_real(v: Any) -> bool:
    # NaN passes: a non-finite joint is not drawn, and COCOeval treats it as a miss.
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check_entry(r: Any, where: str, num_joints: int | None) -> None:
    if not isinstance(r["image_id"], int) or isinstance(r["image_id"], bool):
        raise EvalError(f"{where}: image_id must be an integer")
    kps = r["keypoints"]
    if not isinstance(kps, list) or not all(_is_real(v) for v in kps):
        raise EvalError(f"{where}: keypoints must be a list of numbers, got {str(kps)[:80]}")
    if num_joints is not None and len(kps) != 3 * num_joints:
        raise EvalError(f"{where} has {len(kps)} keypoint values, expected {3 * num_joints} "
                        f"(x, y, score for {num_joints} joints)")
    if len(kps) % 3:
        raise EvalError(f"{where} has {len(kps)} keypoint values, not a multiple of 3 (x, y, score)")
    if not _is_real(r["score"]):
        raise EvalError(f"{where}: score must be a number, got {r['score']!r}")
    box = r.get("bbox")
    if box is not None and not (isinstance(box, list) and len(box) == 4 and all(_is_real(v) for v in box)):
        raise EvalError(f"{where}: bbox must be 4 numbers x, y, w, h, got {str(box)[:80]}")
    if not isinstance(r.get("category_id"), int) or isinstance(r.get("category_id"), bool):
        raise EvalError(f"{where}: category_id must be an integer, got {r.get('category_id')!r}")


def check_results(results: Any, source: str | os.PathLike, *, num_joints: int | None = None,
                  known_image_ids: set[int] | None = None, known_name: str = "the ground truth") -> list[dict]:
    """Validate a loaded COCO keypoint results list (:data:`RESULTS_SCHEMA`) and return it.

    Each entry needs an integer ``image_id`` and ``category_id``, ``3 * num_joints`` numeric
    ``keypoints`` (any multiple of 3 when ``num_joints`` is None), a numeric ``score`` and, if
    present, a ``bbox`` of 4 numbers. With ``known_image_ids``, every image id must be among them (a
    results file for another dataset or split). :class:`EvalError` names ``source`` and the entry.
    """
    if not isinstance(results, list):
        raise EvalError(f"{source}: a results file must be {RESULTS_SCHEMA}, got {type(results).__name__}")
    for i, r in enumerate(results):
        if not isinstance(r, dict) or not {"image_id", "keypoints", "score"} <= set(r):
            raise EvalError(f"{source}: entry {i} is not a keypoint result with image_id, keypoints and "
                            f"score: {str(r)[:120]}")
        _check_entry(r, f"{source}: entry {i} (image_id {r['image_id']!r})", num_joints)
    if known_image_ids is not None:
        ids = {r["image_id"] for r in results}
        unknown = sorted(ids - set(known_image_ids))
        if unknown:
            raise EvalError(f"{source}: {len(unknown)} of {len(ids)} image ids are not in {known_name} (e.g. "
                            f"{unknown[:5]}); is the results file for another dataset or split?")
    return results

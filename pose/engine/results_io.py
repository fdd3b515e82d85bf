"""Writing keypoint results and stats files atomically (temporary file, flush, fsync, rename)."""

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from pose.atomic_io import atomic_write_bytes


def write_json_atomic(path: str | os.PathLike, obj: Any, indent: int | None = None) -> Path:
    """``json.dump(obj)`` to ``path`` through a temporary file in the same folder; never a partial file."""
    path = Path(path)
    atomic_write_bytes(path, json.dumps(obj, indent=indent).encode())
    return path


def keypoint_results(image_ids: np.ndarray, keypoints: np.ndarray, scores: np.ndarray,
                     category_id: int = 1) -> list[dict]:
    """COCO keypoint results: ``{image_id, category_id, keypoints: [x, y, score] * K, score}`` per instance.

    image_ids (N,), keypoints (N, K, 3) image px + joint score, scores (N,) instance scores.
    Values are written at full precision (float32 values as exact doubles, as the official code).
    """
    keypoints = np.asarray(keypoints)
    n = keypoints.shape[0]
    if keypoints.ndim != 3 or keypoints.shape[2] != 3 or len(image_ids) != n or len(scores) != n:
        raise ValueError(f"keypoints must be (N, K, 3) with N image ids and scores; got {keypoints.shape}, "
                         f"{len(image_ids)} ids, {len(scores)} scores")
    flat = keypoints.reshape(n, -1).astype(np.float64).tolist()
    ids = np.asarray(image_ids).astype(np.int64).tolist()
    scores = np.asarray(scores, dtype=np.float64).tolist()
    return [{"image_id": i, "category_id": category_id, "keypoints": k, "score": s}
            for i, k, s in zip(ids, flat, scores)]


def write_keypoint_results(path: str | os.PathLike, image_ids: np.ndarray, keypoints: np.ndarray,
                           scores: np.ndarray) -> Path:
    """Write :func:`keypoint_results` to ``path`` atomically; returns the path."""
    return write_json_atomic(path, keypoint_results(image_ids, keypoints, scores))

"""Person detections from a COCO detection-results file, read and filtered once for the dataset
(``test.use_gt_bbox=false``) and the predictor (``--det-file``).

The file is a JSON list of ``{image_id: int, category_id: int, bbox: [x, y, w, h], score: number}``
(e.g. the official ``COCO_val2017_detections_AP_H_56_person.json``; ``category_id``: the keypoint
category the boxes are for); a malformed entry raises
:class:`DatasetError` naming the file and the entry. Other categories, scores below the threshold
and boxes without area are dropped and counted.
"""

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pose.data.json_io import DatasetError, is_box, is_number, load_json

DET_SCHEMA = "a JSON list of {image_id: int, category_id: int, bbox: [x, y, w, h], score: number}"


@dataclass
class Detections:
    """Kept detections, in file order: image_ids (N,) int64, boxes (N, 4) float64 ``x, y, w, h``
    image px (as written in the file), scores (N,) float64; ``dropped``: reason -> count;
    ``total``: entries in the file."""

    path: Path
    image_ids: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray
    dropped: dict[str, int]
    total: int

    def __len__(self) -> int:
        return len(self.image_ids)


def read_detections(path: str | os.PathLike, *, score_thresh: float = 0.0, category_id: int = 1) -> Detections:
    """Read and validate a detection-results file; keep ``category_id`` boxes with a score of at least
    ``score_thresh`` and a positive width and height."""
    path = Path(path)
    dets = load_json(path, "detection-results file")
    if not isinstance(dets, list):
        raise DatasetError(f"{path}: top level is {type(dets).__name__}; expected {DET_SCHEMA}")
    low = f"score < {score_thresh:g}"
    dropped = {"other category": 0, low: 0, "empty box": 0}
    ids, boxes, scores = [], [], []
    for i, det in enumerate(dets):
        ok = isinstance(det, dict) and isinstance(det.get("image_id"), int) \
            and isinstance(det.get("category_id"), int) and is_box(det.get("bbox")) \
            and is_number(det.get("score"))
        if not ok:
            raise DatasetError(f"{path}: entry {i} is {json.dumps(det)[:200]}; expected {DET_SCHEMA}")
        if det["category_id"] != category_id:
            dropped["other category"] += 1
        elif det["score"] < score_thresh:
            dropped[low] += 1
        elif det["bbox"][2] <= 0 or det["bbox"][3] <= 0:
            dropped["empty box"] += 1
        else:
            ids.append(det["image_id"])
            boxes.append(det["bbox"])
            scores.append(det["score"])
    return Detections(path=path, image_ids=np.asarray(ids, np.int64),
                      boxes=np.asarray(boxes, np.float64).reshape(-1, 4),
                      scores=np.asarray(scores, np.float64), dropped=dropped, total=len(dets))

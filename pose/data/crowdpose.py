"""CrowdPose: COCO-format person keypoints with 14 joints (``pose.keypoints.CROWDPOSE14``).

The dataset is :class:`pose.data.coco.CocoKeypoints` (same filters, crops and targets)
with two differences: CrowdPose's annotation files carry no ``area``, so an annotation without
one takes its box area for the ``area > 0`` filter (the evaluation uses 0.53 x the box area, as
crowdposetools; see ``pose.engine.crowdpose_eval``), and evaluation follows the CrowdPose
protocol (``protocol = 'crowdpose'``: AP/AR with at most 20 people per image, AP by crowd index).

CrowdPose's own layout is read through ``ann_file='annotations/crowdpose_{set}.json'`` and
``image_dir='images'`` (``data.ann_file`` / ``data.image_dir``, as the CrowdPose configs set them)::

    annotations/crowdpose_{trainval,test}.json   (CrowdPose's files; images carry 'crowdIndex')
    images/{file_name}                           (CrowdPose's images/ holds every split)

The joints are those the file's category names (CrowdPose's 14: ``pose.keypoints.CROWDPOSE14``).
"""

from pathlib import Path
from typing import Any

from pose.data.coco import CocoKeypoints


class CrowdPoseKeypoints(CocoKeypoints):
    """CrowdPose person crops with heatmap targets; arguments as :class:`CocoKeypoints`."""

    protocol = "crowdpose"

    def _validate_annotations(self, path: Path, data: Any) -> None:
        # Called on the freshly parsed file, before the index is built: the missing areas are
        # filled here so that the filters and every later reader see a number.
        if isinstance(data, dict) and isinstance(data.get("annotations"), list):
            for ann in data["annotations"]:
                box = ann.get("bbox") if isinstance(ann, dict) else None
                if "area" not in ann and isinstance(box, list) and len(box) == 4:
                    ann["area"] = box[2] * box[3] if all(isinstance(v, (int, float)) for v in box) else None
        super()._validate_annotations(path, data)

"""TensorBoard logging of a training run (``train.tensorboard=true``), on rank 0 only.

Event files go to ``output_dir/tensorboard/`` (``tensorboard --logdir output_dir``). Every scalar is
plotted against the global training step:

* ``train/loss`` and ``train/lr`` after every iteration;
* ``epoch/loss``, ``epoch/lr`` and ``epoch/samples_per_s`` (all ranks' samples) after every epoch;
* ``val/<stat>`` (every validation number: ``val/AP``, ``val/AP.5``, ... for COCO, ``val/Mean``, ...
  for MPII) and ``val/predictions`` (a few validation images with the predicted skeletons, drawn
  by ``pose.vis``, where the evaluator writes a COCO-format results file) after every validation.

A resumed run hides what the interrupted one had logged past the resume point (``purge_step``),
so the curves do not double back. The tensorboard package is an optional extra: without it
``train.tensorboard=true`` stops the run before training, saying how to install it.
"""

import json
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from pose.data.image_io import read_image
from pose.engine.stopping import TrainingError
from pose.vis import draw_people, side_by_side

try:
    from torch.utils.tensorboard import SummaryWriter
except ImportError:  # the optional extra is missing: open_tensorboard says how to install it
    SummaryWriter = None

__all__ = ["TensorBoardLog", "open_tensorboard"]

INSTALL_HINT = "pip install tensorboard (or pip install -e '.[tensorboard]')"


class TensorBoardLog:
    """Writes a run's scalars and drawn predictions to ``log_dir`` (see the module docstring)."""

    def __init__(self, log_dir: str | os.PathLike, *, purge_step: int | None = None, num_images: int = 4,
                 image_height: int = 256):
        self.writer = SummaryWriter(log_dir=str(log_dir), purge_step=purge_step)
        self.num_images, self.image_height = num_images, image_height

    def step(self, global_step: int, *, loss: float, lr: float) -> None:
        self.writer.add_scalar("train/loss", loss, global_step)
        self.writer.add_scalar("train/lr", lr, global_step)

    def epoch(self, global_step: int, record: dict[str, Any], *, samples_per_s: float,
              stats: dict[str, float] | None = None) -> None:
        """The epoch's record (``loss``, ``lr``) and, after a validation, its ``stats``."""
        self.writer.add_scalar("epoch/loss", record["loss"], global_step)
        self.writer.add_scalar("epoch/lr", record["lr"], global_step)
        self.writer.add_scalar("epoch/samples_per_s", samples_per_s, global_step)
        for name, value in (stats or {}).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar("val/" + name.replace(" ", ""), value, global_step)
        self.writer.flush()

    def predictions(self, global_step: int, results_file: str | os.PathLike, dataset,
                    score_thresh: float) -> None:
        """The first ``num_images`` images of ``dataset`` (``records`` with image_id and file_name,
        ``image_dir``) with the skeletons of ``results_file`` (COCO keypoint results), side by side.
        Nothing is drawn where there is no such file (MPII's results are a ``pred.mat``)."""
        if not Path(results_file).is_file():
            return
        drawn = _draw_results(Path(results_file), dataset, self.num_images, score_thresh)
        if drawn:
            scaled = [cv2.resize(im, (max(1, round(im.shape[1] * self.image_height / im.shape[0])),
                                      self.image_height), interpolation=cv2.INTER_AREA) for im in drawn]
            strip = side_by_side(scaled)
            self.writer.add_image("val/predictions", np.ascontiguousarray(strip[:, :, ::-1]), global_step,
                                  dataformats="HWC")
            self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def _draw_results(results_file: Path, dataset, count: int, score_thresh: float) -> list[np.ndarray]:
    """BGR images of the first ``count`` images of ``dataset`` with their predicted people drawn."""
    with open(results_file, encoding="utf-8") as fh:
        results = json.load(fh)
    by_image: dict[int, list[dict]] = defaultdict(list)
    for r in results:
        by_image[int(r["image_id"])].append({"keypoints": r["keypoints"], "score": r["score"]})
    files: dict[int, str] = {}
    for rec in dataset.records:
        if len(files) == count:
            break
        files.setdefault(int(rec["image_id"]), rec["file_name"])
    return [draw_people(read_image(Path(dataset.image_dir) / name), by_image.get(image_id, []),
                        score_thresh=score_thresh, show_boxes=False)
            for image_id, name in files.items()]


def open_tensorboard(output_dir: str | os.PathLike, *, enabled: bool, is_main: bool,
                     purge_step: int | None = None) -> TensorBoardLog | None:
    """The run's :class:`TensorBoardLog` on rank 0 when ``enabled`` (None elsewhere: other ranks
    write nothing). Raises :class:`TrainingError` on every rank when the package is missing."""
    if not enabled:
        return None
    if SummaryWriter is None:
        raise TrainingError(f"train.tensorboard=true needs the tensorboard package, which is not installed: "
                            f"{INSTALL_HINT}; or set train.tensorboard=false")
    if not is_main:
        return None
    return TensorBoardLog(Path(output_dir) / "tensorboard", purge_step=purge_step)

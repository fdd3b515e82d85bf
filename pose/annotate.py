"""Drawing jobs over files, for ``tools/visualize.py``: a results file on its images, a predictor on
images, a folder or a video, and training samples with their targets.

The functions write the drawn images (atomically, never over an input) and return what they wrote
and, for the inputs that failed (an unreadable image or frame, bad boxes), ``(name, reason)``
pairs, so that one bad file does not stop the others. A fatal problem raises ValueError naming it.
"""

import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from pose import vis
from pose.keypoints import KeypointSet
from pose.predictor import DetectionBoxes, PersonPose, Predictor

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_EXTS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")

Failures = list[tuple[str, str]]


@dataclass(frozen=True)
class DrawOptions:
    """What to draw: keypoints scoring above ``kpt_thresh``, people scoring at least ``score_thresh``,
    boxes, person scores, joint indices; ``heatmap``: the first person's heatmaps under the skeleton;
    ``kset``: the keypoint set (skeleton and sides; None: joints only, or the predictor's set)."""

    kpt_thresh: float = 0.2
    score_thresh: float = 0.0
    show_boxes: bool = True
    show_scores: bool = True
    show_indices: bool = False
    heatmap: bool = False
    kset: KeypointSet | None = None


def safe_output(path: Path, inputs: set[Path]) -> Path:
    """``path``, unless writing it would replace one of the (resolved) ``inputs``: then ValueError."""
    if path.resolve() in inputs:
        raise ValueError(f"output {path} would overwrite the input of the same name; choose another --out")
    return path


def results_by_image(results: Iterable[Mapping], score_thresh: float) -> dict[int, list[dict]]:
    """People of a results list scoring at least ``score_thresh``, by image id, as ``vis.draw_people`` takes them."""
    by_image: dict[int, list[dict]] = {}
    for r in results:
        if float(r["score"]) >= score_thresh:
            by_image.setdefault(r["image_id"], []).append(
                {"keypoints": np.asarray(r["keypoints"], np.float64).reshape(-1, 3),
                 "box": r.get("bbox"), "score": float(r["score"])})
    return by_image


def ground_truth_by_image(gt: Mapping) -> dict[int, list[dict]]:
    """Non-crowd annotated people of a COCO annotation dict, by image id (visibility as the score)."""
    by_image: dict[int, list[dict]] = {}
    for ann in gt.get("annotations", []):
        if ann.get("iscrowd", 0) or "keypoints" not in ann:
            continue
        by_image.setdefault(ann["image_id"], []).append(
            {"keypoints": np.asarray(ann["keypoints"], np.float64).reshape(-1, 3), "box": ann.get("bbox")})
    return by_image


def images_by_id(folder: Path) -> dict[int, Path]:
    """Image id -> file for COCO-style names (the last number in the file name)."""
    index = {}
    for f in sorted(folder.iterdir()):
        digits = re.findall(r"\d+", f.stem)
        if f.suffix.lower() in IMAGE_EXTS and digits:
            index.setdefault(int(digits[-1]), f)
    return index


def draw_results(files: Mapping[int, Path], image_ids: Sequence[int], people: Mapping[int, list],
                 gt_people: Mapping[int, list] | None, out: Path, opts: DrawOptions, *, images_dir: Path,
                 gt_mode: str = "beside", montage: int = 0) -> tuple[list[Path], Failures, list[np.ndarray]]:
    """Draw ``people`` (and ``gt_people``) of each image id on its file (``files``, from ``images_dir``),
    written to ``out`` under the file's name. Returns (written files, failures, the first ``montage``
    drawn images)."""
    inputs = {p.resolve() for p in files.values()}
    written, failures, drawn_images = [], [], []
    for image_id in image_ids:
        src = files.get(image_id)
        if src is None:
            failures.append((f"image id {image_id}", f"no image file for it in {images_dir}"))
            continue
        try:
            image = vis.read_image(src)
        except ValueError as exc:
            failures.append((str(src), str(exc)))
            continue
        drawn = vis.draw_with_ground_truth(
            image, people.get(image_id, []), None if gt_people is None else gt_people.get(image_id, []),
            mode=gt_mode, score_thresh=opts.kpt_thresh, show_boxes=opts.show_boxes,
            show_scores=opts.show_scores, show_indices=opts.show_indices, kset=opts.kset)
        written.append(vis.write_image(safe_output(out / src.name, inputs), drawn))
        if len(drawn_images) < montage:
            drawn_images.append(drawn)
    return written, failures, drawn_images


def write_montage(images: Sequence[np.ndarray], path: Path, *, cols: int) -> Path:
    """The images (resized to the first one's size) in a grid of ``cols`` columns, written to ``path``."""
    size = images[0].shape[1], images[0].shape[0]
    tiles = [m if m.shape[:2] == images[0].shape[:2] else cv2.resize(m, size) for m in images]
    return vis.write_image(path, vis.make_grid(tiles, cols=cols))


def draw_prediction(image: np.ndarray, people: Sequence[PersonPose], opts: DrawOptions) -> np.ndarray:
    """The predicted people scoring at least ``opts.score_thresh`` drawn on a copy of ``image``."""
    if opts.heatmap and people and people[0].heatmaps is not None:
        image = vis.overlay_heatmaps(image, people[0].heatmaps, heatmap_to_image=people[0].heatmap_to_image)
    drawn = [{"keypoints": p.keypoints_with_scores(), "box": p.box, "score": p.score}
             for p in people if p.score >= opts.score_thresh]
    return vis.draw_people(image, drawn, score_thresh=opts.kpt_thresh, show_boxes=opts.show_boxes,
                           show_scores=opts.show_scores, show_indices=opts.show_indices, kset=opts.kset)


def predict_images(predictor: Predictor, files: Sequence[Path], out: Path, opts: DrawOptions, *,
                   boxes: Sequence | None = None, dets: DetectionBoxes | None = None) -> tuple[list[Path], Failures]:
    """Predict and draw each image file (boxes: ``boxes`` for every image, else the detections of
    the image, else the whole image). A single file's error is fatal (ValueError naming it)."""
    opts = replace(opts, kset=opts.kset or predictor.keypoints)
    inputs = {f.resolve() for f in files}
    written, failures = [], []
    for f in files:
        try:
            image = vis.read_image(f)
            image_boxes, scores = boxes or None, None
            if dets is not None:
                image_boxes, scores = dets.for_image(file_name=f.name)
                if len(image_boxes) == 0:
                    raise ValueError(f"no detection in {dets.path} for image id {dets.image_id_for(f.name)}")
            people = predictor.predict(image, image_boxes, box_scores=scores, return_heatmaps=opts.heatmap)
        except ValueError as exc:
            if len(files) == 1:
                raise ValueError(f"{f}: {exc}") from None
            failures.append((str(f), str(exc)))
            continue
        written.append(vis.write_image(safe_output(out / f.name, inputs), draw_prediction(image, people, opts)))
    return written, failures


@dataclass
class VideoResult:
    """What :func:`predict_video` wrote: the video (None when no frame was drawn), the frame images
    (``save_frames``), frames read and drawn, the output frame rate, and the failed frames."""

    video: Path | None
    frames: list[Path]
    read: int
    drawn: int
    fps: float
    failures: Failures


def predict_video(predictor: Predictor, src: Path, out: Path, opts: DrawOptions, *, boxes: Sequence | None = None,
                  every: int = 1, max_frames: int = 0, save_frames: bool = False) -> VideoResult:
    """Predict and draw every ``every``-th frame of a video (at most ``max_frames`` drawn, 0: all) into
    ``out/<name>_pose.mp4`` (mp4v), written to a temporary file and renamed when complete."""
    opts = replace(opts, kset=opts.kset or predictor.keypoints)
    cap = cv2.VideoCapture(str(src))
    if not cap.isOpened():
        raise ValueError(f"cannot open video {src} (missing codec, or not a video file)")
    every = max(every, 1)
    fps = cap.get(cv2.CAP_PROP_FPS)
    fps = fps / every if fps and math.isfinite(fps) and fps > 0 else 25.0
    dst = safe_output(out / f"{src.stem}_pose.mp4", {src.resolve()})
    out.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.stem}.tmp{os.getpid()}.mp4")
    result = VideoResult(video=None, frames=[], read=0, drawn=0, fps=fps, failures=[])
    writer = None
    try:
        while not (max_frames and result.drawn >= max_frames):
            ok, frame = cap.read()
            if not ok:
                break
            result.read += 1
            if (result.read - 1) % every:
                continue
            try:
                people = predictor.predict(frame, boxes or None, return_heatmaps=opts.heatmap)
            except ValueError as exc:
                result.failures.append((f"{src} frame {result.read - 1}", str(exc)))
                continue
            drawn = draw_prediction(frame, people, opts)
            if writer is None:
                writer = _open_writer(tmp, dst, fps, drawn.shape)
            writer.write(drawn)
            result.drawn += 1
            if save_frames:
                result.frames.append(vis.write_image(out / f"{src.stem}_{result.read - 1:06d}.jpg", drawn))
        if writer is not None:
            writer.release()
            writer = None
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, dst)
            result.video = dst
    finally:
        cap.release()
        if writer is not None:
            writer.release()
        tmp.unlink(missing_ok=True)
    if result.read == 0:
        raise ValueError(f"cannot read any frame from video {src} (empty or corrupt)")
    return result


def _open_writer(tmp: Path, dst: Path, fps: float, shape: tuple[int, ...]) -> cv2.VideoWriter:
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, (shape[1], shape[0]))
    if not writer.isOpened():
        raise ValueError(f"cannot write video {dst} (OpenCV has no mp4v encoder here)")
    return writer


def sample_panel(sample: Mapping, *, mean: Sequence[float], std: Sequence[float], color_rgb: bool,
                 kset: KeypointSet | None = None) -> np.ndarray:
    """A training sample (a ``CocoKeypoints`` item) as (crop with the skeleton read off the target
    heatmaps | crop with the summed target heatmaps); the crop is un-normalised with ``mean``/``std``."""
    image = sample["image"].numpy().transpose(1, 2, 0)
    image = image * np.asarray(std, np.float32) + np.asarray(mean, np.float32)
    image = np.clip(image * 255 + 0.5, 0, 255).astype(np.uint8)
    if color_rgb:
        image = image[:, :, ::-1]
    image = np.ascontiguousarray(image)
    target = sample["target"].numpy()
    weight = sample["target_weight"].numpy().reshape(-1)
    zoom = max(1, math.ceil(128 / image.shape[0]))
    image = cv2.resize(image, (image.shape[1] * zoom, image.shape[0] * zoom), interpolation=cv2.INTER_NEAREST)
    k, h, w = target.shape
    flat = target.reshape(k, -1).argmax(1)
    stride_x, stride_y = image.shape[1] / w, image.shape[0] / h
    kp = np.stack([(flat % w + 0.5) * stride_x, (flat // w + 0.5) * stride_y,
                   np.where((weight > 0) & (target.reshape(k, -1).max(1) > 0), 1.0, 0.0)], axis=1)
    left = vis.draw_skeleton(image, kp, score_thresh=0.5, kset=kset)
    right = vis.overlay_heatmaps(image, np.clip(target.sum(0), 0, 1))
    return vis.side_by_side([left, right], gap=2)

"""Draw pose predictions, ground truth, training samples and per-keypoint accuracy.

Subcommands:
  results   a results JSON of tools/test.py + its image folder: every person above --score-thresh,
            optionally with the ground truth (--gt) beside or over the predictions.
  predict   run a network (--cfg, --weights) on an image, a folder of images or a video; boxes from
            --box x,y,w,h (repeatable), --det-file, or the whole image. Writes images (and a video for
            a video input).
  dataset   browse augmented training samples: grids of (crop with its target skeleton | crop with
            the summed target heatmaps).
  accuracy  per-keypoint OKS accuracy bar chart (PNG + JSON) of a results file against the GT file.

Outputs go to --out (a folder, created if needed); inputs are never overwritten (an --out that is
an input, or an output file that would replace an input, is refused).

Exit status: 0 when everything was written; 1 when some inputs failed (unreadable images or
frames, bad boxes): the others are still processed and the failures are listed at the end; 2 for
a fatal error (bad arguments, missing input, unreadable results/annotation file, results for
another dataset, weights that do not match the config).
"""

import argparse
import math
import os
import random
import sys
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from pose import vis
from pose.data.json_io import load_json
from pose.engine.keypoint_accuracy import keypoint_oks_accuracy
from pose.engine.results_io import check_results
from pose.keypoints import BUILTIN_SETS, KeypointSet, KeypointSetError, from_categories

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_EXTS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")


class UserError(Exception):
    """A fatal problem with the inputs; the message says what and where (exit status 2)."""


def _add_drawing_args(p: argparse.ArgumentParser, *, score_default: float) -> None:
    p.add_argument("--out", required=True, help="output folder (created if needed)")
    p.add_argument("--kpt-thresh", type=float, default=0.2,
                   help="draw keypoints whose score is above this (default 0.2; -1 draws all)")
    p.add_argument("--score-thresh", type=float, default=score_default,
                   help=f"draw people whose score is at least this (default {score_default:g})")
    p.add_argument("--no-boxes", action="store_true", help="do not draw person boxes")
    p.add_argument("--no-scores", action="store_true", help="do not write person scores")
    p.add_argument("--show-indices", action="store_true", help="write keypoint indices")


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("results", help="draw a results JSON on its images")
    p.add_argument("--results", required=True, help="COCO keypoint results JSON (tools/test.py)")
    p.add_argument("--images", required=True, help="folder of the images")
    p.add_argument("--gt", help="COCO keypoint annotation file: map ids to files, draw the ground truth")
    p.add_argument("--keypoints", metavar="NAME|CONFIG",
                   help="the keypoint set (skeleton, sides): a built-in name (coco, mpii, crowdpose) or a "
                        "run's config.yaml; default: the one --gt declares, else joints only")
    p.add_argument("--gt-mode", choices=("beside", "over"), default="beside",
                   help="ground truth in a second panel (beside) or under the predictions (over)")
    p.add_argument("--max-images", type=int, default=0, help="stop after this many images (0: all)")
    p.add_argument("--montage", type=int, default=0, metavar="N",
                   help="also write montage.jpg: the first N drawn images in a grid (e.g. for a README)")
    p.add_argument("--montage-cols", type=int, default=3, help="columns of the montage (default 3)")
    _add_drawing_args(p, score_default=0.3)

    p = sub.add_parser("predict", help="run a network on images or a video and draw the predictions")
    p.add_argument("--cfg", required=True, help="experiment YAML")
    p.add_argument("--weights", help="trained weights (.pth); required unless --random-init")
    p.add_argument("--random-init", action="store_true", help="use an untrained network (smoke tests)")
    p.add_argument("--input", required=True, help="an image, a folder of images, or a video file")
    p.add_argument("--box", action="append", default=[], metavar="X,Y,W,H",
                   help="person box in image px (repeatable; write --box=-5,10,80,200 when x is negative); "
                   "default: the whole image")
    p.add_argument("--det-file", help="COCO detection-results JSON (boxes per image id)")
    p.add_argument("--det-score-thresh", type=float, default=0.0, help="drop detections below this score")
    p.add_argument("--gt", help="annotation file mapping image file names to ids (for --det-file)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default cpu)")
    flip = p.add_mutually_exclusive_group()
    flip.add_argument("--flip", dest="flip", action="store_true", default=None, help="flip test on")
    flip.add_argument("--no-flip", dest="flip", action="store_false", help="flip test off")
    p.add_argument("--heatmap", action="store_true", help="overlay the heatmaps of the first person")
    p.add_argument("--every", type=int, default=1, help="video: process every N-th frame (default 1)")
    p.add_argument("--max-frames", type=int, default=0, help="video: stop after this many frames (0: all)")
    p.add_argument("--save-frames", action="store_true", help="video: also write each drawn frame as a JPEG")
    _add_drawing_args(p, score_default=0.0)
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")

    p = sub.add_parser("dataset", help="browse augmented training samples with their target heatmaps")
    p.add_argument("--cfg", required=True, help="experiment YAML")
    p.add_argument("--split", choices=("train", "val"), default="train",
                   help="train (augmented) or val samples (default train)")
    p.add_argument("--num", type=int, default=16, help="number of samples (default 16)")
    p.add_argument("--per-grid", type=int, default=16, help="samples per grid image (default 16)")
    p.add_argument("--cols", type=int, default=4, help="samples per grid row (default 4)")
    p.add_argument("--seed", type=int, default=0, help="picks the samples and the augmentation")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")

    p = sub.add_parser("accuracy", help="per-keypoint OKS accuracy bar chart")
    p.add_argument("--results", required=True, help="COCO keypoint results JSON (tools/test.py)")
    p.add_argument("--gt", required=True, help="COCO keypoint annotation file")
    p.add_argument("--term-thresh", type=float, default=0.5,
                   help="a joint is correct when its OKS term exp(-d^2/(2 s^2 k^2)) is at least this")
    p.add_argument("--match-oks", type=float, default=0.1,
                   help="minimum OKS to match a predicted person to a ground-truth person")
    p.add_argument("--out", required=True, help="output folder (keypoint_accuracy.png and .json)")
    return parser


# ---------------------------------------------------------------------------------------------
# helpers


def _check_out(out: str, inputs: Sequence[str | None]) -> Path:
    """The output folder; refuse when it is (or is inside as a file) one of the inputs."""
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise UserError(f"--out {out} exists and is not a folder")
    for item in inputs:
        if item and path.resolve() == Path(item).resolve():
            raise UserError(f"--out {out} is the input {item}; choose another folder so inputs are not "
                            "overwritten")
    return path


def _safe_output(path: Path, inputs: set[Path]) -> Path:
    if path.resolve() in inputs:
        raise UserError(f"output {path} would overwrite the input of the same name; choose another --out")
    return path


def _report(written: list[Path], failures: list[tuple[str, str]], what: str) -> int:
    print(f"wrote {len(written)} {what}" + (f" to {written[0].parent}" if written else ""))
    if failures:
        print(f"{len(failures)} failed:", file=sys.stderr)
        for name, why in failures:
            print(f"  {name}: {why}", file=sys.stderr)
        return 1
    return 0


def _results_people(results: list[dict], score_thresh: float) -> dict[int, list[dict]]:
    by_image: dict[int, list[dict]] = {}
    for r in results:
        if float(r["score"]) >= score_thresh:
            by_image.setdefault(r["image_id"], []).append(
                {"keypoints": np.asarray(r["keypoints"], np.float64).reshape(-1, 3),
                 "box": r.get("bbox"), "score": float(r["score"])})
    return by_image


def _gt_people(gt: dict) -> dict[int, list[dict]]:
    by_image: dict[int, list[dict]] = {}
    for ann in gt.get("annotations", []):
        if ann.get("iscrowd", 0) or "keypoints" not in ann:
            continue
        by_image.setdefault(ann["image_id"], []).append(
            {"keypoints": np.asarray(ann["keypoints"], np.float64).reshape(-1, 3), "box": ann.get("bbox")})
    return by_image


def _index_folder(folder: Path) -> dict[int, Path]:
    """Image id -> file for COCO-style names (the number in the file name)."""
    import re

    index = {}
    for f in sorted(folder.iterdir()):
        digits = re.findall(r"\d+", f.stem)
        if f.suffix.lower() in IMAGE_EXTS and digits:
            index.setdefault(int(digits[-1]), f)
    return index


def _load_predictor(args: argparse.Namespace):
    from pose.config import load_config
    from pose.predictor import Predictor

    cfg = load_config(args.cfg, args.overrides)
    if not args.weights and not args.random_init:
        raise UserError("give --weights (or --random-init for an untrained network)")
    if args.weights and not Path(args.weights).is_file():
        raise UserError(f"weights file not found: {args.weights}")
    try:
        return Predictor.from_config(cfg, args.weights if not args.random_init else None,
                                     device=args.device, flip_test=args.flip)
    except (RuntimeError, ValueError, KeyError) as exc:
        if args.random_init:
            raise UserError(f"cannot build the network of {args.cfg}: {exc}") from None
        raise UserError(f"weights {args.weights} do not match the config {args.cfg} (model.arch="
                        f"{cfg.model.arch}, model.psa={cfg.model.psa}): {exc}") from None


def _results_keypoints(args: argparse.Namespace, gt: dict | None) -> KeypointSet | None:
    """The set to draw results with: --keypoints, else the one --gt's category declares, else None."""
    if args.keypoints:
        if args.keypoints in BUILTIN_SETS:
            return BUILTIN_SETS[args.keypoints]
        from pose.config import configured_keypoint_set, load_config

        kset = configured_keypoint_set(load_config(args.keypoints))
        if kset is None:
            raise UserError(f"--keypoints {args.keypoints}: the config names no keypoint set (data.keypoints "
                            "is 'auto'); give a run's saved config.yaml or a built-in name")
        return kset
    if gt is None:
        return None
    try:
        return from_categories(gt.get("categories"), args.gt)[0]
    except KeypointSetError as exc:
        raise UserError(f"{exc}; or pass --keypoints") from None


def _draw_prediction(image: np.ndarray, people, args: argparse.Namespace,
                     kset: KeypointSet | None = None) -> np.ndarray:
    if args.heatmap and people and people[0].heatmaps is not None:
        image = vis.overlay_heatmaps(image, people[0].heatmaps, heatmap_to_image=people[0].heatmap_to_image)
    drawn = [{"keypoints": p.keypoints_with_scores(), "box": p.box, "score": p.score}
             for p in people if p.score >= args.score_thresh]
    return vis.draw_people(image, drawn, score_thresh=args.kpt_thresh, show_boxes=not args.no_boxes,
                           show_scores=not args.no_scores, show_indices=args.show_indices, kset=kset)


# ---------------------------------------------------------------------------------------------
# subcommands


def cmd_results(args: argparse.Namespace) -> int:
    images_dir = Path(args.images)
    if not images_dir.is_dir():
        raise UserError(f"image folder not found: {images_dir}")
    out = _check_out(args.out, [args.images, args.results, args.gt])
    gt = load_json(args.gt, "annotation file") if args.gt else None
    if gt is not None and (not isinstance(gt, dict) or "images" not in gt):
        raise UserError(f"{args.gt}: not a COCO annotation file (no 'images')")
    kset = _results_keypoints(args, gt)
    results = check_results(load_json(args.results, "results file"), args.results,
                            num_joints=kset.num_joints if kset is not None else None)
    result_ids = {r["image_id"] for r in results}
    gt_by_image = None
    if gt is not None:
        check_results(results, args.results, known_image_ids={im["id"] for im in gt["images"]},
                      known_name=args.gt)
        files = {im["id"]: images_dir / im["file_name"] for im in gt["images"]}
        gt_by_image = _gt_people(gt)
        image_ids = sorted(files)  # every GT image, so missed people show too
    else:
        files = _index_folder(images_dir)
        known = result_ids & set(files)
        if result_ids and not known:
            raise UserError(f"{args.results}: none of its {len(result_ids)} image ids (e.g. "
                            f"{sorted(result_ids)[:5]}) match an image in {images_dir}; is the results file "
                            "for another dataset, or are the images named differently (pass --gt)?")
        image_ids = sorted(result_ids)
    people = _results_people(results, args.score_thresh)
    inputs = {p.resolve() for p in files.values()}
    written, failures, montage = [], [], []
    for image_id in image_ids[:args.max_images or None]:
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
            image, people.get(image_id, []),
            None if gt_by_image is None else gt_by_image.get(image_id, []), mode=args.gt_mode,
            score_thresh=args.kpt_thresh, show_boxes=not args.no_boxes, show_scores=not args.no_scores,
            show_indices=args.show_indices, kset=kset)
        written.append(vis.write_image(_safe_output(out / src.name, inputs), drawn))
        if len(montage) < args.montage:
            montage.append(drawn)
    if montage:
        size = montage[0].shape[1], montage[0].shape[0]
        tiles = [m if m.shape[:2] == montage[0].shape[:2] else cv2.resize(m, size) for m in montage]
        grid = vis.make_grid(tiles, cols=args.montage_cols)
        path = vis.write_image(_safe_output(out / "montage.jpg", inputs), grid)
        print(f"wrote {path} ({len(tiles)} images)")
    return _report(written, failures, "images")


def cmd_predict(args: argparse.Namespace) -> int:
    from pose.predictor import DetectionBoxes, parse_box

    src = Path(args.input)
    if not src.exists():
        raise UserError(f"input not found: {src}")
    out = _check_out(args.out, [args.input, args.cfg, args.weights, args.det_file])
    if args.box and args.det_file:
        raise UserError("give either --box or --det-file, not both")
    try:
        boxes = [parse_box(b) for b in args.box]
    except ValueError as exc:
        raise UserError(str(exc)) from None
    dets = DetectionBoxes(args.det_file, score_thresh=args.det_score_thresh, gt_file=args.gt) \
        if args.det_file else None
    if src.is_file() and src.suffix.lower() in VIDEO_EXTS:
        if dets is not None:
            raise UserError("--det-file cannot be used with a video (no image ids); use --box or the "
                            "whole frame")
        predictor = _load_predictor(args)
        return _predict_video(predictor, src, out, boxes, args)
    if src.is_dir():
        files = sorted(f for f in src.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_EXTS)
        if not files:
            raise UserError(f"no images ({', '.join(IMAGE_EXTS)}) in {src}")
    else:
        if src.suffix.lower() not in IMAGE_EXTS:
            raise UserError(f"{src}: not an image ({', '.join(IMAGE_EXTS)}) or video "
                            f"({', '.join(VIDEO_EXTS)})")
        files = [src]
    predictor = _load_predictor(args)
    inputs = {f.resolve() for f in files}
    written, failures = [], []
    for f in files:
        try:
            image = vis.read_image(f)
            image_boxes, scores = boxes or None, None
            if dets is not None:
                image_boxes, scores = dets.for_image(file_name=f.name)
                if len(image_boxes) == 0:
                    raise ValueError(f"no detection in {args.det_file} for image id "
                                     f"{dets.image_id_for(f.name)}")
            people = predictor.predict(image, image_boxes, box_scores=scores, return_heatmaps=args.heatmap)
        except ValueError as exc:
            if len(files) == 1:
                raise UserError(f"{f}: {exc}") from None
            failures.append((str(f), str(exc)))
            continue
        drawn = _draw_prediction(image, people, args, predictor.keypoints)
        written.append(vis.write_image(_safe_output(out / f.name, inputs), drawn))
    return _report(written, failures, "images")


def _predict_video(predictor, src: Path, out: Path, boxes: list, args: argparse.Namespace) -> int:
    cap = cv2.VideoCapture(str(src))
    if not cap.isOpened():
        raise UserError(f"cannot open video {src} (missing codec, or not a video file)")
    fps = cap.get(cv2.CAP_PROP_FPS)
    fps = fps / max(args.every, 1) if fps and math.isfinite(fps) and fps > 0 else 25.0
    dst = _safe_output(out / f"{src.stem}_pose.mp4", {src.resolve()})
    out.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.stem}.tmp{os.getpid()}.mp4")
    writer = None
    written, failures = [], []
    index = drawn_frames = 0
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            index += 1
            if (index - 1) % max(args.every, 1):
                continue
            try:
                people = predictor.predict(frame, boxes or None, return_heatmaps=args.heatmap)
            except ValueError as exc:
                failures.append((f"{src} frame {index - 1}", str(exc)))
                continue
            drawn = _draw_prediction(frame, people, args, predictor.keypoints)
            if writer is None:
                writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps,
                                         (drawn.shape[1], drawn.shape[0]))
                if not writer.isOpened():
                    raise UserError(f"cannot write video {dst} (OpenCV has no mp4v encoder here)")
            writer.write(drawn)
            drawn_frames += 1
            if args.save_frames:
                written.append(vis.write_image(out / f"{src.stem}_{index - 1:06d}.jpg", drawn))
            if args.max_frames and drawn_frames >= args.max_frames:
                break
        if writer is not None:
            writer.release()
            writer = None
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, dst)
            print(f"wrote video {dst} ({drawn_frames} frames at {fps:.1f} fps)")
    finally:
        cap.release()
        if writer is not None:
            writer.release()
        tmp.unlink(missing_ok=True)
    if index == 0:
        raise UserError(f"cannot read any frame from video {src} (empty or corrupt)")
    if args.save_frames:
        _report(written, [], "frames")
    return _report([dst] if drawn_frames else [], failures, "videos")


def cmd_dataset(args: argparse.Namespace) -> int:
    import torch

    from pose.config import load_config
    from pose.data import build_dataset

    cfg = load_config(args.cfg, args.overrides)
    out = _check_out(args.out, [args.cfg, cfg.data.root])
    if args.num < 1 or args.per_grid < 1 or args.cols < 1:
        raise UserError("--num, --per-grid and --cols must be at least 1")
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    dataset = build_dataset(cfg, args.split)
    if len(dataset) == 0:
        raise UserError(f"the {args.split} set of {cfg.data.root} is empty")
    order = np.random.default_rng(args.seed).permutation(len(dataset))[:args.num]
    panels = [_sample_panel(dataset[int(i)], cfg, dataset.keypoints) for i in order]
    written = []
    for g in range(0, len(panels), args.per_grid):
        grid = vis.make_grid(panels[g:g + args.per_grid], cols=args.cols)
        written.append(vis.write_image(out / f"dataset_{args.split}_{g // args.per_grid:03d}.jpg", grid))
    return _report(written, [], f"grids of {len(panels)} {args.split} samples")


def _sample_panel(sample: dict, cfg, kset: KeypointSet) -> np.ndarray:
    """(crop with the skeleton read off the target heatmaps | crop with the summed target heatmaps)."""
    image = sample["image"].numpy().transpose(1, 2, 0)
    image = image * np.asarray(cfg.data.std, np.float32) + np.asarray(cfg.data.mean, np.float32)
    image = np.clip(image * 255 + 0.5, 0, 255).astype(np.uint8)
    if cfg.data.color_rgb:
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


def cmd_accuracy(args: argparse.Namespace) -> int:
    out = _check_out(args.out, [args.results, args.gt])
    acc = keypoint_oks_accuracy(args.gt, args.results, term_thresh=args.term_thresh,
                                    match_oks=args.match_oks)
    png = vis.plot_keypoint_accuracy(acc, out / "keypoint_accuracy.png")
    import json

    vis.atomic_write_bytes(out / "keypoint_accuracy.json", json.dumps(acc.to_dict(), indent=1).encode())
    print(f"{acc.num_matched} of {acc.num_gt} ground-truth people matched; per-keypoint accuracy "
          f"(OKS term >= {args.term_thresh:g}):")
    for name, a, c, n in zip(acc.names, acc.accuracy, acc.correct, acc.labelled):
        print(f"  {name:<15} {a:6.3f}  ({c}/{n})" if np.isfinite(a) else f"  {name:<15}    n/a  (0 labelled)")
    print(f"wrote {png} and {out / 'keypoint_accuracy.json'}")
    return 0


COMMANDS = {"results": cmd_results, "predict": cmd_predict, "dataset": cmd_dataset, "accuracy": cmd_accuracy}


def main(args: argparse.Namespace) -> int:
    from pose.config import ConfigError

    try:
        return COMMANDS[args.command](args)
    except (UserError, ConfigError, ValueError, FileNotFoundError) as exc:
        print(f"visualize.py {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))

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
import json
import random
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from pose import annotate, vis
from pose.annotate import IMAGE_EXTS, VIDEO_EXTS, DrawOptions
from pose.config import ConfigError, load_config
from pose.data import build_dataset
from pose.data.json_io import load_json
from pose.engine.keypoint_accuracy import keypoint_oks_accuracy
from pose.engine.results_io import check_results
from pose.keypoints import BUILTIN_SETS, KeypointSet, KeypointSetError, from_categories
from pose.predictor import BACKENDS, DetectionBoxes, Predictor, parse_box


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
    p.add_argument("--weights", help="trained weights (.pth), or the .onnx file of tools/export_onnx.py with "
                   "--backend onnxruntime; required unless --random-init")
    p.add_argument("--backend", choices=BACKENDS, default="torch",
                   help="torch (default; test.amp / test.channels_last apply) or onnxruntime (the .onnx file)")
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


def _report(written: list[Path], failures: list[tuple[str, str]], what: str) -> int:
    print(f"wrote {len(written)} {what}" + (f" to {written[0].parent}" if written else ""))
    if failures:
        print(f"{len(failures)} failed:", file=sys.stderr)
        for name, why in failures:
            print(f"  {name}: {why}", file=sys.stderr)
        return 1
    return 0


def _load_predictor(args: argparse.Namespace):
    cfg = load_config(args.cfg, args.overrides)
    if not args.weights and not args.random_init:
        raise UserError("give --weights (or --random-init for an untrained network)")
    if args.weights and not Path(args.weights).is_file():
        raise UserError(f"weights file not found: {args.weights}")
    if args.backend == "onnxruntime" and args.random_init:
        raise UserError("--random-init builds a torch network; --backend onnxruntime needs --weights FILE.onnx")
    try:
        return Predictor.from_config(cfg, args.weights if not args.random_init else None,
                                     device=args.device, flip_test=args.flip, backend=args.backend)
    except (RuntimeError, ValueError, KeyError) as exc:
        if args.random_init:
            raise UserError(f"cannot build the network of {args.cfg}: {exc}") from None
        raise UserError(f"weights {args.weights} do not match the config {args.cfg} (model.arch="
                        f"{cfg.model.arch}, model.psa={cfg.model.psa}): {exc}") from None


def _draw_options(args: argparse.Namespace, kset: KeypointSet | None = None) -> DrawOptions:
    return DrawOptions(kpt_thresh=args.kpt_thresh, score_thresh=args.score_thresh, show_boxes=not args.no_boxes,
                       show_scores=not args.no_scores, show_indices=args.show_indices,
                       heatmap=getattr(args, "heatmap", False), kset=kset)


def _results_keypoints(args: argparse.Namespace, gt: dict | None) -> KeypointSet | None:
    """The set to draw results with: --keypoints, else the one --gt's category declares, else None."""
    if args.keypoints:
        if args.keypoints in BUILTIN_SETS:
            return BUILTIN_SETS[args.keypoints]
        from pose.config import configured_keypoint_set

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
        gt_by_image = annotate.ground_truth_by_image(gt)
        image_ids = sorted(files)  # every GT image, so missed people show too
    else:
        files = annotate.images_by_id(images_dir)
        known = result_ids & set(files)
        if result_ids and not known:
            raise UserError(f"{args.results}: none of its {len(result_ids)} image ids (e.g. "
                            f"{sorted(result_ids)[:5]}) match an image in {images_dir}; is the results file "
                            "for another dataset, or are the images named differently (pass --gt)?")
        image_ids = sorted(result_ids)
    people = annotate.results_by_image(results, args.score_thresh)
    written, failures, montage = annotate.draw_results(
        files, image_ids[:args.max_images or None], people, gt_by_image, out, _draw_options(args, kset),
        images_dir=images_dir, gt_mode=args.gt_mode, montage=args.montage)
    if montage:
        inputs = {p.resolve() for p in files.values()}
        path = annotate.write_montage(montage, annotate.safe_output(out / "montage.jpg", inputs),
                                      cols=args.montage_cols)
        print(f"wrote {path} ({len(montage)} images)")
    return _report(written, failures, "images")


def cmd_predict(args: argparse.Namespace) -> int:
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
        video = annotate.predict_video(_load_predictor(args), src, out, _draw_options(args), boxes=boxes,
                                       every=args.every, max_frames=args.max_frames, save_frames=args.save_frames)
        if video.video is not None:
            print(f"wrote video {video.video} ({video.drawn} frames at {video.fps:.1f} fps)")
        if args.save_frames:
            _report(video.frames, [], "frames")
        return _report([video.video] if video.video else [], video.failures, "videos")
    if src.is_dir():
        files = sorted(f for f in src.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_EXTS)
        if not files:
            raise UserError(f"no images ({', '.join(IMAGE_EXTS)}) in {src}")
    else:
        if src.suffix.lower() not in IMAGE_EXTS:
            raise UserError(f"{src}: not an image ({', '.join(IMAGE_EXTS)}) or video "
                            f"({', '.join(VIDEO_EXTS)})")
        files = [src]
    written, failures = annotate.predict_images(_load_predictor(args), files, out, _draw_options(args),
                                                boxes=boxes, dets=dets)
    return _report(written, failures, "images")


def cmd_dataset(args: argparse.Namespace) -> int:
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
    panels = [annotate.sample_panel(dataset[int(i)], mean=cfg.data.mean, std=cfg.data.std,
                                    color_rgb=cfg.data.color_rgb, kset=dataset.keypoints) for i in order]
    written = []
    for g in range(0, len(panels), args.per_grid):
        grid = vis.make_grid(panels[g:g + args.per_grid], cols=args.cols)
        written.append(vis.write_image(out / f"dataset_{args.split}_{g // args.per_grid:03d}.jpg", grid))
    return _report(written, [], f"grids of {len(panels)} {args.split} samples")


def cmd_accuracy(args: argparse.Namespace) -> int:
    out = _check_out(args.out, [args.results, args.gt])
    acc = keypoint_oks_accuracy(args.gt, args.results, term_thresh=args.term_thresh,
                                    match_oks=args.match_oks)
    png = vis.plot_keypoint_accuracy(acc, out / "keypoint_accuracy.png")
    vis.atomic_write_bytes(out / "keypoint_accuracy.json", json.dumps(acc.to_dict(), indent=1).encode())
    print(f"{acc.num_matched} of {acc.num_gt} ground-truth people matched; per-keypoint accuracy "
          f"(OKS term >= {args.term_thresh:g}):")
    for name, a, c, n in zip(acc.names, acc.accuracy, acc.correct, acc.labelled):
        print(f"  {name:<15} {a:6.3f}  ({c}/{n})" if np.isfinite(a) else f"  {name:<15}    n/a  (0 labelled)")
    print(f"wrote {png} and {out / 'keypoint_accuracy.json'}")
    return 0


COMMANDS = {"results": cmd_results, "predict": cmd_predict, "dataset": cmd_dataset, "accuracy": cmd_accuracy}


def main(args: argparse.Namespace) -> int:
    try:
        return COMMANDS[args.command](args)
    except (UserError, ConfigError, ValueError, FileNotFoundError) as exc:
        print(f"visualize.py {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))

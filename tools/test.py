"""Evaluate a trained network with the official pipeline and print its dataset's table.

COCO-format data (data.dataset=coco): the ten COCO keypoint stats; data.dataset=crowdpose: the
CrowdPose protocol (AP/AR, AP easy/medium/hard); data.dataset=mpii: the official PCKh table
(Head ... Ankle, Mean, Mean@0.1) and the official pred.mat, one prediction per annotated person.

  python tools/test.py --cfg experiments/coco/hrnet/w32_256x192_adam_lr1e-3.yaml \
      --weights pose_hrnet_w32_256x192.pth [section.key=value ...]

Flip test (shifted heatmaps), decoding by the configured codec, rescoring, OKS NMS (or
test.soft_nms=true), a COCO results JSON and COCOeval(iouType='keypoints'). Ground-truth boxes
by default; test.use_gt_bbox=false uses data.det_file. A split without keypoint ground truth
(data.val_set=test-dev2017) gets the submission file only. Outputs go to output_dir/results/.
Weights: --weights, else test.weights, else output_dir/model_best.pth; official HRNet /
SimpleBaseline checkpoints load as well as ours (the official ResNet ones were trained on BGR
input: add data.color_rgb=false). Multi-GPU: torchrun --nproc_per_node N tools/test.py ...
"""

import argparse
import logging
import sys

from pose.config import CHOICES, ConfigError, load_config
from pose.data import DatasetError
from pose.data.image_io import CorruptImageError
from pose.engine.coco_eval import EvalError
from pose.engine.pckh import MpiiEvalError
from pose.engine.tester import run_test
from pose.models import WeightsError


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cfg", required=True, help="experiment YAML")
    parser.add_argument("--weights", help="weights file (default: test.weights or output_dir/model_best.pth)")
    parser.add_argument("--device", help="cpu, cuda, cuda:N or auto (default: the config's device)")
    parser.add_argument("--amp", choices=CHOICES["test.amp"],
                        help="autocast for inference (default: test.amp, itself 'none': float32, as published; "
                        "'auto': bf16 where the CPU or GPU has bf16 units)")
    parser.add_argument("--quiet", action="store_true", help="log warnings only")
    parser.add_argument("overrides", nargs="*",
                        help="config overrides section.key=value, e.g. test.use_gt_bbox=false")
    return parser


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    try:
        cfg = load_config(args.cfg, args.overrides)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        run_test(cfg, args.weights, device=args.device, amp=args.amp)
    except (OSError, WeightsError, DatasetError, CorruptImageError, EvalError, MpiiEvalError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))

"""Train a pose network: python tools/train.py --cfg FILE [--resume CKPT] [section.key=value ...]

Multi-GPU / multi-node: torchrun --nproc_per_node=4 tools/train.py --cfg FILE (gloo on CPU).
A run in an output folder that holds checkpoint.pth continues from it (train.auto_resume).
SIGTERM / Ctrl-C saves a checkpoint at the next iteration and exits with 128 + the signal number.
"""

import argparse
import sys

from pose.config import ConfigError, load_config
from pose.engine.checkpoint import CheckpointError
from pose.engine.trainer import TrainingError, train


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cfg", required=True, help="experiment YAML")
    parser.add_argument("--resume", help="checkpoint to resume from (default: output_dir/checkpoint.pth)")
    parser.add_argument("overrides", nargs="*", metavar="section.key=value", help="config overrides")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    try:
        cfg = load_config(args.cfg, args.overrides)
        summary = train(cfg, resume=args.resume)
    except (ConfigError, CheckpointError, TrainingError, FileNotFoundError) as exc:
        print(f"train.py: error: {exc}", file=sys.stderr)
        return 2
    print(f"best AP {summary['best_ap']:.4f} at epoch {summary['best_epoch']}; outputs in {summary['output_dir']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

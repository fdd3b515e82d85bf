"""Train a pose network: python tools/train.py --cfg FILE [--resume CKPT] [section.key=value ...]

  python tools/train.py --cfg experiments/synthetic/hrnet_small_psa_p.yaml train.epochs=4
  torchrun --nproc_per_node=4 tools/train.py --cfg experiments/coco/hrnet/w32_256x192_adam_lr1e-3_psa_p.yaml

Outputs in output_dir: config.yaml, train.log, metrics.jsonl, training_curves.png, checkpoint.pth
(+ checkpoint.prev.pth), model_best.pth, results/ and, with train.tensorboard=true, tensorboard/.
Running the same command again continues from output_dir/checkpoint.pth (train.auto_resume);
--resume names another checkpoint. train.compile=true compiles the training step (torch.compile).

Exit status: 0 finished; 1 training failed (non-finite loss or weights, unreadable checkpoint,
data error, train.tensorboard=true without the tensorboard package; the message names the
epoch/iteration, the file or the command to install); 2 bad config or command line,
or a resume refused because the config differs from the checkpoint's (the keys are listed);
128 + signal (143 SIGTERM, 130 SIGINT): stopped by the signal after saving checkpoint.pth at the next
iteration boundary, resume with the same command. Under torchrun, torchrun's own status applies.
"""

import argparse
import os
import sys

from pose.config import ConfigError, load_config
from pose.data import DatasetError
from pose.data.image_io import CorruptImageError
from pose.data.synthetic import SyntheticDataError
from pose.engine.checkpoint import CheckpointError
from pose.engine.trainer import TrainingError, TrainingInterrupted, train
from pose.models import WeightsError


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cfg", required=True, help="experiment YAML")
    parser.add_argument("--resume", help="checkpoint to resume from (default: output_dir/checkpoint.pth if present)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stdout (train.log still gets them)")
    parser.add_argument("overrides", nargs="*", metavar="section.key=value", help="config overrides")
    return parser


def _error(text: str) -> None:
    rank = os.environ.get("RANK")
    prefix = f"train.py (rank {rank}): error" if rank is not None and os.environ.get("WORLD_SIZE", "1") != "1" \
        else "train.py: error"
    print(f"{prefix}: {text}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    try:
        cfg = load_config(args.cfg, args.overrides)
        summary = train(cfg, resume=args.resume, verbose=not args.quiet)
    except TrainingInterrupted as exc:
        print(f"train.py: {exc}", file=sys.stderr)
        return exc.exit_code
    except ConfigError as exc:  # includes ResumeConfigError
        _error(str(exc))
        return 2
    except (CheckpointError, TrainingError, OSError, DatasetError, CorruptImageError, WeightsError,
            SyntheticDataError) as exc:
        _error(str(exc))
        return 1
    if summary["best_epoch"]:
        print(f"best AP {summary['best_ap']:.4f} at epoch {summary['best_epoch']}; outputs in {summary['output_dir']}")
    else:
        print(f"finished {summary['epochs']} epoch(s); outputs in {summary['output_dir']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

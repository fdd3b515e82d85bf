"""The embedded default, end to end: synthetic COCO-format data, training, COCO AP, drawings.

Runs the same three tools a user runs on COCO, one after the other, with the synthetic config:

  1. tools/train.py      generates data/synthetic on first use, trains, validates, checkpoints;
  2. tools/test.py       flip test, OKS NMS, COCO AP with pycocotools on the validation split;
  3. tools/visualize.py  draws the predicted skeletons (with the ground truth beside them) and a
                         per-keypoint accuracy chart.

Extra arguments are config overrides passed to all three (e.g. ``train.epochs=2``).
"""

import argparse
import subprocess
import sys
import time
from pathlib import Path

from pose.config import load_config

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CFG = ROOT / "experiments/synthetic/hrnet_small_psa_p.yaml"


def _run(args: list[str]) -> None:
    print("\n$ " + " ".join(str(a) for a in args), flush=True)
    result = subprocess.run([sys.executable, *map(str, args)], cwd=ROOT)
    if result.returncode != 0:
        sys.exit(f"demo: step failed with exit status {result.returncode}: {' '.join(map(str, args))}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cfg", default=str(DEFAULT_CFG), help="experiment YAML (default: %(default)s)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    args = parser.parse_args(argv)

    cfg = load_config(args.cfg, args.overrides)
    out = Path(cfg.output_dir)
    if not out.is_absolute():
        out = ROOT / out
    start = time.perf_counter()
    _run(["tools/train.py", "--cfg", args.cfg, *args.overrides])
    _run(["tools/test.py", "--cfg", args.cfg, "--weights", out / "model_best.pth", *args.overrides])

    root = Path(cfg.data.root)
    gt = root / "annotations" / f"person_keypoints_{cfg.data.val_set}.json"
    results = out / "results" / f"keypoints_{cfg.data.val_set}_results.json"
    _run(["tools/visualize.py", "results", "--results", results, "--images",
          root / "images" / cfg.data.val_set, "--gt", gt, "--out", out / "vis", "--max-images", "12",
          "--montage", "6"])
    _run(["tools/visualize.py", "accuracy", "--results", results, "--gt", gt, "--out", out / "vis"])
    print(f"\ndemo finished in {time.perf_counter() - start:.0f} s; outputs in {out}:"
          f"\n  model_best.pth, metrics.jsonl, training_curves.png, results/, vis/montage.jpg")


if __name__ == "__main__":
    main()

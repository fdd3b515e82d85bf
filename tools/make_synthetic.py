"""Write the synthetic COCO-format person keypoint dataset (see pose.data.synthetic).

    python tools/make_synthetic.py --root data/synthetic --seed 0 --train 120 --val 40 \\
        --size 320x240 --max-people 3 [--force]

Without --force, an existing synthetic dataset with the same parameters is left as it is and one
with other parameters is an error; with --force it is replaced. A folder that is not a synthetic
dataset (no synthetic.json manifest) is never touched.
"""

import argparse
import json
import sys
import time
from pathlib import Path

from pose.data.synthetic import (
    VERSION,
    SyntheticDataError,
    SyntheticParams,
    describe_synthetic,
    det_file_name,
    generate_synthetic_coco,
    read_manifest,
)


def parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--size must look like 320x240 (width x height), got {text!r}") from None
    return w, h


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--root", default="data/synthetic", help="dataset folder to write (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train", type=int, default=120, help="number of training images")
    p.add_argument("--val", type=int, default=40, help="number of validation images")
    p.add_argument("--size", type=parse_size, default=(320, 240), help="image WIDTHxHEIGHT (default 320x240)")
    p.add_argument("--max-people", type=int, default=3, help="labelled people per image, at most")
    p.add_argument("--train-set", default="train2017")
    p.add_argument("--val-set", default="val2017")
    p.add_argument("--figure", choices=("person", "animal"), default="person",
                   help="person (COCO's 17 joints) or animal (a quadruped with 20 joints of its own names)")
    p.add_argument("--force", action="store_true", help="replace an existing synthetic dataset at --root")
    return p


def main(args: argparse.Namespace) -> int:
    root = Path(args.root)
    try:
        params = SyntheticParams(seed=args.seed, num_train_images=args.train, num_val_images=args.val,
                                 image_size=args.size, max_people=args.max_people, train_set=args.train_set,
                                 val_set=args.val_set, figure=args.figure)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    manifest = read_manifest(root)
    if manifest is not None and not args.force:
        if manifest.get("version") == VERSION and manifest.get("params") == params.to_json():
            print(f"{root}: synthetic dataset with these parameters already present (use --force to rewrite)")
            return 0
        print(f"error: {root} holds a synthetic dataset with other parameters "
              f"({json.dumps(manifest.get('params'))}, version {manifest.get('version')}); "
              "pass --force to replace it", file=sys.stderr)
        return 1
    start = time.perf_counter()
    try:
        generate_synthetic_coco(root, seed=params.seed, num_train_images=params.num_train_images,
                                num_val_images=params.num_val_images, image_size=params.image_size,
                                max_people=params.max_people, train_set=params.train_set,
                                val_set=params.val_set, figure=params.figure, overwrite=args.force)
    except SyntheticDataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    elapsed = time.perf_counter() - start
    width, height = params.image_size
    print(f"wrote {root} in {elapsed:.2f} s (seed {params.seed}, {width}x{height}, "
          f"max {params.max_people} {'people' if params.figure == 'person' else params.figure + 's'})")
    for name, s in describe_synthetic(root).items():
        print(f"  {name}: {s['images']} images, {s['annotations']} annotations ({s['with_keypoints']} with "
              f"keypoints, {s['no_keypoints']} without, {s['crowd']} crowd), {s['labelled_joints']} labelled "
              f"joints, {100 * s['occluded_share']:.1f}% occluded (v=1)")
        print(f"    images/{name}/  annotations/person_keypoints_{name}.json")
    print(f"  detections: {det_file_name(params.val_set)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))

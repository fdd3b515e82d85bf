"""Export a trained pose network (PSA included) to ONNX with a dynamic batch size.

    python tools/export_onnx.py --cfg experiments/synthetic/hrnet_small_psa_p.yaml \\
        --weights output/hrnet_small_psa_p/model_best.pth --out model.onnx [--opset 17] [key=value ...]

When onnxruntime is installed, the exported file is run on a random batch of 2 and compared with
PyTorch (max |difference| must be below --atol, default 1e-4); otherwise the check is skipped
and the tool says so. Exit code: 0 on success, 1 when the check fails, 2 on bad input.
"""

import argparse
import sys
from pathlib import Path

from pose.config import ConfigError, configured_keypoint_set, load_config


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cfg", required=True, help="experiment YAML")
    parser.add_argument("--weights", help="trained weights (.pth: state_dict or checkpoint); required unless "
                        "--random-init")
    parser.add_argument("--random-init", action="store_true",
                        help="export the freshly initialised network (smoke tests)")
    parser.add_argument("--out", required=True, help="output .onnx file")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    parser.add_argument("--exporter", choices=("torchscript", "dynamo"), default="torchscript",
                        help="torch.onnx path: torchscript (default; no extra package) or dynamo (needs "
                        "onnxscript)")
    parser.add_argument("--atol", type=float, default=1e-4, help="max abs difference allowed (default 1e-4)")
    parser.add_argument("--no-check", action="store_true", help="skip the onnxruntime comparison")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    return parser


def main(args: argparse.Namespace) -> int:
    from pose.export import check_onnx, export_onnx, onnxruntime_available
    from pose.keypoint_source import resolve_run_keypoints
    from pose.models import build_model, load_weights

    try:
        cfg = load_config(args.cfg, args.overrides)
    except ConfigError as exc:
        print(f"export_onnx.py: error: {exc}", file=sys.stderr)
        return 2
    if not args.weights and not args.random_init:
        print("export_onnx.py: error: give --weights (or --random-init to export an untrained network)",
              file=sys.stderr)
        return 2
    out = Path(args.out)
    if out.suffix.lower() != ".onnx":
        print(f"export_onnx.py: error: --out {out} should end in .onnx", file=sys.stderr)
        return 2
    inputs = [Path(args.cfg)] + ([Path(args.weights)] if args.weights else [])
    if any(out.resolve() == p.resolve() for p in inputs):
        print(f"export_onnx.py: error: --out {out} is one of the inputs; refusing to overwrite it",
              file=sys.stderr)
        return 2
    try:  # the joints: the config's set, else the checkpoint's, else COCO-17
        cfg = resolve_run_keypoints(cfg, args.weights or None)
    except ConfigError as exc:
        print(f"export_onnx.py: error: {exc}", file=sys.stderr)
        return 2
    model = build_model(cfg, pretrained=not args.weights)
    if args.weights:
        if not Path(args.weights).is_file():
            print(f"export_onnx.py: error: weights file not found: {args.weights}", file=sys.stderr)
            return 2
        try:
            load_weights(model, args.weights, strict=True)
        except (RuntimeError, ValueError, KeyError) as exc:
            print(f"export_onnx.py: error: weights {args.weights} do not match the config {args.cfg} "
                  f"(model.arch={cfg.model.arch}, model.psa={cfg.model.psa}): {exc}", file=sys.stderr)
            return 2
    input_size = tuple(cfg.data.input_size)
    try:
        export_onnx(model, out, input_size=input_size, opset=args.opset, exporter=args.exporter,
                    keypoints=configured_keypoint_set(cfg))
    except Exception as exc:  # the exporters raise many types; their messages embed whole graphs
        first = str(exc).strip().splitlines()[0][:600] if str(exc).strip() else type(exc).__name__
        print(f"export_onnx.py: error: the {args.exporter} exporter failed for model.arch={cfg.model.arch} "
              f"model.psa={cfg.model.psa} model.psa_variant={cfg.model.psa_variant}: "
              f"{type(exc).__name__}: {first}", file=sys.stderr)
        return 1
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB): input 'images' (N, 3, {input_size[1]}, "
          f"{input_size[0]}), output 'heatmaps' (N, {cfg.model.num_joints}, ...), N dynamic, "
          f"opset {args.opset}, {args.exporter} exporter")
    if args.no_check:
        print("onnxruntime check: skipped (--no-check)")
        return 0
    if not onnxruntime_available():
        print("onnxruntime check: skipped, onnxruntime is not installed (pip install onnxruntime)")
        return 0
    result = check_onnx(model, out, input_size=input_size, batch=2, atol=args.atol)
    verdict = "OK" if result.ok else "FAILED"
    print(f"onnxruntime check: {verdict}: max abs difference to PyTorch {result.max_abs_diff:.3g} "
          f"(limit {args.atol:g}; outputs up to {result.max_abs_value:.3g}) on a random batch of "
          f"{result.batch}, output {result.output_shape}")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))

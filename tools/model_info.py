"""Parameters and GFLOPs of the network of an experiment config, at its input size.

    python tools/model_info.py --cfg experiments/coco/hrnet/w32_256x192_adam_lr1e-3_psa_p.yaml
    python tools/model_info.py --cfg experiments/synthetic/hrnet_small.yaml model.psa=sequential
    python tools/model_info.py --all            # a table for every YAML under experiments/

GFLOPs follow the official tables (conv / deconv / linear multiply-adds, ``weight.numel() * output
H*W``, / 1024^3; see ``pose.models.flops``); ``--macs`` prints exact multiply-adds / 1e9 instead.
Networks are built on PyTorch's meta device (shapes only), so every config takes milliseconds.
"""

import argparse
import sys
from pathlib import Path

import torch

from pose.config import load_config
from pose.keypoint_source import resolve_run_keypoints
from pose.models import count_flops, count_params, create_model

ROOT = Path(__file__).resolve().parents[1]

# The published figures (HRNet README, via shared/REFERENCE.md) by (arch, input width, height).
PUBLISHED = {
    ("resnet50", 192, 256): (34.0, 8.9), ("resnet50", 288, 384): (34.0, 20.0),
    ("hrnet_w32", 192, 256): (28.5, 7.1), ("hrnet_w32", 288, 384): (28.5, 16.0),
    ("hrnet_w48", 192, 256): (63.6, 14.6), ("hrnet_w48", 288, 384): (63.6, 32.9),
}


def model_info(cfg, *, convention: str = "official") -> dict:
    """{'arch', 'psa', 'input', 'params_m', 'gflops', 'published'} of ``cfg``'s network."""
    m = resolve_run_keypoints(cfg).model  # 'auto' configs: COCO-17 (the data are not read here)
    with torch.device("meta"):
        model = create_model(m.arch, num_joints=m.num_joints, psa=m.psa, psa_variant=m.psa_variant,
                             psa_placement=m.psa_placement, init_std=m.init_std)
    w, h = cfg.data.input_size
    published = PUBLISHED.get((m.arch, w, h)) if m.psa == "none" else None
    psa = m.psa if m.psa == "none" else f"{m.psa}/{m.psa_variant}/{m.psa_placement}"
    return {"arch": m.arch, "psa": psa,
            "input": f"{w}x{h}", "params_m": count_params(model) / 1e6,
            "gflops": count_flops(model, (w, h), convention=convention), "published": published}


def _row(name: str, info: dict) -> str:
    pub = f"{info['published'][0]:.1f}M / {info['published'][1]:.1f}" if info["published"] else ""
    return (f"{name:<58} {info['arch']:<11} {info['psa']:<22} {info['input']:>8} {info['params_m']:>9.2f} "
            f"{info['gflops']:>8.2f}  {pub}")


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Parameters (M) and GFLOPs of an experiment's network.")
    p.add_argument("--cfg", help="experiment YAML")
    p.add_argument("--all", action="store_true", help="every YAML under experiments/ (_*.yaml skipped)")
    p.add_argument("--macs", action="store_true", help="exact multiply-adds / 1e9, not the official count")
    p.add_argument("overrides", nargs="*", help="section.key=value")
    return p


def main(args: argparse.Namespace) -> int:
    convention = "macs" if args.macs else "official"
    if args.all:
        paths = sorted(p for p in (ROOT / "experiments").rglob("*.yaml") if not p.name.startswith("_"))
    elif args.cfg:
        paths = [Path(args.cfg)]
    else:
        print("give --cfg FILE or --all", file=sys.stderr)
        return 2
    unit = "GMACs" if args.macs else "GFLOPs"
    print(f"{'config':<58} {'arch':<11} {'psa':<22} {'input':>8} {'params(M)':>9} {unit:>8}  "
          "published (params / GFLOPs)")
    for path in paths:
        info = model_info(load_config(path, args.overrides), convention=convention)
        exp = ROOT / "experiments"
        name = str(path.resolve().relative_to(exp)) if path.resolve().is_relative_to(exp) else str(path)
        print(_row(name, info))
    return 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))

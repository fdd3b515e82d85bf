"""A training process for the multi-process tests (not collected by pytest).

    python tests/train_child.py --cfg FILE [--die-at E,I [--die-rank R] [--how kill|raise]] [key=value ...]
    python -m torch.distributed.run --nproc_per_node=2 tests/train_child.py --cfg FILE ...

Runs ``pose.engine.trainer.train`` and, when it returns, writes ``weights_rank{R}.json`` in the
output folder: SHA-256 digests of the rank's final parameters and of its buffers (every tensor's
bytes, in key order) and the summary's metrics, so a test can check that ranks (and runs) agree.
``--die-at E,I`` ends the process right after iteration I of epoch E (0-based) on rank
``--die-rank``: ``kill`` sends itself SIGKILL (no handler, no checkpoint: a machine that
vanished), ``raise`` raises RuntimeError (a rank that failed).
"""

import argparse
import hashlib
import json
import os
import signal
from pathlib import Path

import torch

from pose.config import load_config
from pose.engine.trainer import train


def digest(named_tensors) -> str:
    h = hashlib.sha256()
    for key, value in named_tensors:
        h.update(key.encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cfg", required=True)
    parser.add_argument("--die-at", default=None)
    parser.add_argument("--die-rank", type=int, default=0)
    parser.add_argument("--how", choices=("kill", "raise"), default="kill")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cfg = load_config(args.cfg, args.overrides)
    rank = int(os.environ.get("RANK", "0"))
    last = {}

    def hook(info):
        last["model"] = info["model"]
        if args.die_at and rank == args.die_rank and f"{info['epoch']},{info['iteration']}" == args.die_at:
            if args.how == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            raise RuntimeError(f"injected failure at epoch {info['epoch']}, iteration {info['iteration']}")

    summary = train(cfg, on_iteration=hook, verbose=False)
    model = last.get("model")
    record = {"parameters": digest(model.named_parameters()) if model else None,
              "buffers": digest(model.named_buffers()) if model else None,
              "history": [{k: v for k, v in r.items() if not k.endswith("time_s")} for r in summary["history"]]}
    (Path(cfg.output_dir) / f"weights_rank{rank}.json").write_text(json.dumps(record))


if __name__ == "__main__":
    main()

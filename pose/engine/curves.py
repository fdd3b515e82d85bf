"""Training curves (loss, AP, learning rate) drawn from metrics.jsonl with matplotlib."""

import json
import os
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read_metrics(path: str | os.PathLike) -> list[dict]:
    """The records of a metrics.jsonl file (one JSON object per line)."""
    path = Path(path)
    records = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}, line {n}: not JSON ({exc})") from None
    return records


def plot_training_curves(metrics_file: str | os.PathLike, out_png: str | os.PathLike) -> Path:
    """Three panels over epochs: training loss, validation AP (and AR), learning rate. Atomic write."""
    records = read_metrics(metrics_file)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    epochs = [r["epoch"] for r in records]
    axes[0].plot(epochs, [r["loss"] for r in records], marker=".")
    axes[0].set(title="training loss", xlabel="epoch", yscale="log")
    val = [r for r in records if "AP" in r]
    axes[1].plot([r["epoch"] for r in val], [r["AP"] for r in val], marker="o", label="AP")
    axes[1].plot([r["epoch"] for r in val], [r["AR"] for r in val], marker="s", label="AR")
    axes[1].set(title="validation (COCO keypoints)", xlabel="epoch", ylim=(0, 1))
    axes[1].legend()
    axes[2].plot(epochs, [r["lr"] for r in records], marker=".")
    axes[2].set(title="learning rate", xlabel="epoch", yscale="log")
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    out_png = Path(out_png)
    fd, tmp = tempfile.mkstemp(dir=out_png.parent, prefix=f".{out_png.name}.", suffix=".png")
    try:
        with os.fdopen(fd, "wb") as fh:
            fig.savefig(fh, format="png", dpi=90)
        os.replace(tmp, out_png)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    finally:
        plt.close(fig)
    return out_png

"""Training curves (loss, AP/AR, learning rate per epoch) drawn with matplotlib's Agg backend."""

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from pose.atomic_io import atomic_file  # noqa: E402

__all__ = ["plot_training_curves"]


def plot_training_curves(history: Sequence[dict[str, Any]] | str | os.PathLike,
                         out_png: str | os.PathLike) -> Path:
    """Three panels over epochs: training loss, validation AP and AR, learning rate.

    ``history``: the per-epoch records (``epoch``, ``loss``, ``lr`` and, on validated epochs,
    ``AP``, ``AR``...) or the path of a metrics.jsonl file. The PNG is written atomically.
    """
    if isinstance(history, (str, os.PathLike)):
        from pose.engine.logging_utils import read_metrics
        history = read_metrics(history)
    epochs = [r["epoch"] for r in history]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    try:
        losses = [r["loss"] for r in history]
        axes[0].plot(epochs, losses, marker=".")
        axes[0].set(title="training loss", xlabel="epoch")
        if losses and min(losses) > 0:
            axes[0].set_yscale("log")
        # COCO-format runs report AP/AR (0..1); MPII runs the PCKh table (percent).
        pckh = not any("AP" in r for r in history) and any("Mean" in r for r in history)
        (main, other), top = (("Mean", "Mean@0.1"), 100) if pckh else (("AP", "AR"), 1)
        val = [r for r in history if main in r]
        axes[1].plot([r["epoch"] for r in val], [r[main] for r in val], marker="o", label=main)
        axes[1].plot([r["epoch"] for r in val], [r.get(other, float("nan")) for r in val], marker="s", label=other)
        axes[1].set(title="validation (MPII PCKh)" if pckh else "validation (keypoint AP)", xlabel="epoch",
                    ylim=(0, top))
        axes[1].legend(loc="lower right")
        axes[2].plot(epochs, [r["lr"] for r in history], marker=".", drawstyle="steps-post")
        axes[2].set(title="learning rate", xlabel="epoch")
        if history and min(r["lr"] for r in history) > 0:
            axes[2].set_yscale("log")
        for ax in axes:
            ax.grid(alpha=0.3)
        fig.tight_layout()
        out_png = Path(out_png)
        with atomic_file(out_png, "wb") as fh:
            fig.savefig(fh, format="png", dpi=90)
    finally:
        plt.close(fig)
    return out_png

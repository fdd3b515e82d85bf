"""Fit a training schedule to a wall-clock budget (``tools/demo.py``).

A recipe (``train.epochs`` and ``train.lr_steps``) is tuned on one machine; on a slower one the same
recipe overruns a promised time. Here the run is shortened instead: the number of epochs that fits
the time left is computed from a measured epoch and validation time, and the LR drops are kept at
the same fractions of the run. A recipe that already fits is returned unchanged, so a fast machine
reproduces the tuned run exactly.
"""

import math
from dataclasses import dataclass

__all__ = ["Schedule", "fit_schedule", "num_validations", "scale_lr_steps"]


@dataclass(frozen=True)
class Schedule:
    """``epochs`` and ``lr_steps`` for ``train.*``, and a sentence saying why they were chosen."""

    epochs: int
    lr_steps: tuple[int, ...]
    reason: str

    def overrides(self) -> list[str]:
        """The command-line overrides that select this schedule."""
        return [f"train.epochs={self.epochs}", f"train.lr_steps=[{','.join(map(str, self.lr_steps))}]"]


def num_validations(epochs: int, val_every: int) -> int:
    """Validation passes of a run: every ``val_every`` epochs and after the last (as the trainer does)."""
    if epochs <= 0:
        return 0
    return epochs // val_every + (1 if epochs % val_every else 0)


def scale_lr_steps(lr_steps: tuple[int, ...], *, from_epochs: int, to_epochs: int) -> tuple[int, ...]:
    """The LR drops of a ``from_epochs`` recipe at the same fractions of a ``to_epochs`` run.

    Rounded to whole epochs, at the latest before the last epoch (a drop at or after the end would
    never act) and each at least one epoch after the previous one; drops that find no room are
    left out.
    """
    if from_epochs <= 0 or to_epochs <= 0:
        raise ValueError(f"epochs must be positive, got from_epochs={from_epochs}, to_epochs={to_epochs}")
    if to_epochs == from_epochs:
        return tuple(lr_steps)
    out: list[int] = []
    for step in sorted(lr_steps):
        s = min(int(math.floor(step * to_epochs / from_epochs + 0.5)), to_epochs - 1)
        s = max(s, out[-1] + 1 if out else 1)
        if s < to_epochs:
            out.append(s)
    return tuple(out)


def fit_schedule(*, available_s: float, epoch_s: float, val_s: float, val_every: int, recipe_epochs: int,
                 recipe_lr_steps: tuple[int, ...], margin: float = 0.9) -> Schedule:
    """The longest run of at most ``recipe_epochs`` epochs whose training and validation fit in
    ``margin * available_s`` seconds, given ``epoch_s`` per epoch and ``val_s`` per validation.

    ``margin`` leaves room for a machine that gets slower during the run (other processes), so that
    it costs epochs chosen now rather than an overrun. At least one epoch is always chosen; the
    reason then says that it does not fit.
    """
    if epoch_s <= 0 or val_s < 0 or val_every <= 0 or recipe_epochs <= 0 or not 0 < margin <= 1:
        raise ValueError(f"invalid timing: epoch_s={epoch_s}, val_s={val_s}, val_every={val_every}, "
                         f"recipe_epochs={recipe_epochs}, margin={margin}")

    def cost(epochs: int) -> float:
        return epochs * epoch_s + num_validations(epochs, val_every) * val_s

    usable = margin * available_s
    full = cost(recipe_epochs)
    if full <= usable:
        return Schedule(recipe_epochs, tuple(recipe_lr_steps),
                        f"the recipe's {recipe_epochs} epochs fit: {full:.0f} s estimated of {usable:.0f} s usable "
                        f"({margin:.0%} of the {available_s:.0f} s left)")
    epochs = recipe_epochs
    while epochs > 1 and cost(epochs) > usable:
        epochs -= 1
    steps = scale_lr_steps(tuple(recipe_lr_steps), from_epochs=recipe_epochs, to_epochs=epochs)
    fits = "fit" if cost(epochs) <= usable else "do NOT fit (the budget is too small for this machine)"
    return Schedule(epochs, steps,
                    f"the recipe's {recipe_epochs} epochs would take {full:.0f} s, over the {usable:.0f} s usable "
                    f"({margin:.0%} of the {available_s:.0f} s left); {epochs} epochs ({cost(epochs):.0f} s) {fits}; "
                    f"LR drops moved to the same fractions of the run: {list(recipe_lr_steps)} -> {list(steps)}")

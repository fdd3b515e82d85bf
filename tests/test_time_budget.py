"""The demo's time budget: schedule fitting (pose.engine.time_budget) and resuming the chosen schedule."""

import runpy
from pathlib import Path

import pytest

from pose.config import load_config, save_config
from pose.engine.time_budget import Schedule, fit_schedule, num_validations, scale_lr_steps

REPO = Path(__file__).resolve().parents[1]


def test_num_validations_counts_every_nth_epoch_and_the_last():
    assert num_validations(42, 4) == 11  # epochs 4, 8, ..., 40 and 42
    assert num_validations(40, 4) == 10
    assert num_validations(3, 4) == 1
    assert num_validations(5, 1) == 5
    assert num_validations(0, 4) == 0


def test_scale_lr_steps_keeps_the_fractions_of_the_run():
    assert scale_lr_steps((34, 40), from_epochs=42, to_epochs=42) == (34, 40)
    assert scale_lr_steps((34, 40), from_epochs=42, to_epochs=21) == (17, 20)
    assert scale_lr_steps((34, 40), from_epochs=42, to_epochs=30) == (24, 29)
    # The last drop rounds to the end of the run: it moves to the epoch before, not out.
    assert scale_lr_steps((34, 40), from_epochs=42, to_epochs=9) == (7, 8)
    # Too short for both drops: each at least one epoch after the previous, none at the end.
    assert scale_lr_steps((34, 40), from_epochs=42, to_epochs=3) == (2,)
    assert scale_lr_steps((34, 40), from_epochs=42, to_epochs=1) == ()
    assert scale_lr_steps((), from_epochs=42, to_epochs=10) == ()
    with pytest.raises(ValueError, match="to_epochs=0"):
        scale_lr_steps((34, 40), from_epochs=42, to_epochs=0)


def test_fit_schedule_keeps_a_recipe_that_fits():
    s = fit_schedule(available_s=600, epoch_s=11.0, val_s=2.0, val_every=4, recipe_epochs=42,
                     recipe_lr_steps=(34, 40), margin=0.9)
    assert (s.epochs, s.lr_steps) == (42, (34, 40))  # 42 * 11 + 11 * 2 = 484 <= 540
    assert "fit" in s.reason


def test_fit_schedule_shortens_to_the_longest_run_that_fits():
    s = fit_schedule(available_s=500, epoch_s=15.0, val_s=3.0, val_every=4, recipe_epochs=42,
                     recipe_lr_steps=(34, 40), margin=0.9)
    usable = 450
    cost = lambda e: e * 15.0 + num_validations(e, 4) * 3.0  # noqa: E731
    assert cost(s.epochs) <= usable < cost(s.epochs + 1)
    assert s.epochs == 28
    assert s.lr_steps == scale_lr_steps((34, 40), from_epochs=42, to_epochs=28) == (23, 27)
    assert "42 epochs would take" in s.reason and "[34, 40] -> [23, 27]" in s.reason
    assert s.overrides() == ["train.epochs=28", "train.lr_steps=[23,27]"]
    # Deterministic: the same measurement gives the same schedule.
    assert fit_schedule(available_s=500, epoch_s=15.0, val_s=3.0, val_every=4, recipe_epochs=42,
                        recipe_lr_steps=(34, 40), margin=0.9) == s


def test_fit_schedule_slower_machine_gets_fewer_epochs_and_says_when_one_does_not_fit():
    kw = dict(available_s=300, val_s=2.0, val_every=4, recipe_epochs=42, recipe_lr_steps=(34, 40))
    fast, slow = fit_schedule(epoch_s=10.0, **kw), fit_schedule(epoch_s=20.0, **kw)
    assert slow.epochs < fast.epochs < 42
    hopeless = fit_schedule(epoch_s=1000.0, **kw)
    assert hopeless.epochs == 1 and "do NOT fit" in hopeless.reason
    with pytest.raises(ValueError, match="margin=1.5"):
        fit_schedule(epoch_s=10.0, margin=1.5, **kw)


def test_demo_continues_the_schedule_saved_with_a_run(tmp_path):
    demo = runpy.run_path(str(REPO / "tools" / "demo.py"))
    saved_schedule = demo["saved_schedule"]
    out = tmp_path / "run"
    out.mkdir()
    cfg = load_config(REPO / "experiments/synthetic/tiny.yaml", ["train.epochs=7", "train.lr_steps=[5,6]"])
    save_config(cfg, out / "config.yaml")
    assert saved_schedule(out) is None  # no checkpoint: nothing under way, choose afresh
    (out / "checkpoint.pth").write_bytes(b"")
    s = saved_schedule(out)
    assert isinstance(s, Schedule) and (s.epochs, s.lr_steps) == (7, (5, 6))
    assert str(out) in s.reason
    # The whole plan of the run under way, with the threads it chose, and no new probe.
    (out / demo["SCHEDULE_FILE"]).write_text('{"tail_s": 42.5, "threads": 1, "epochs": 7}')
    plan = demo["choose_plan"](REPO / "experiments/synthetic/tiny.yaml", [], cfg, out, budget_s=600.0, start=0.0)
    assert (plan.schedule, plan.tail_s, plan.threads) == (s, 42.5, 1)
    # A schedule given on the command line is used as given.
    given = demo["choose_plan"](REPO / "x.yaml", ["train.epochs=3"], cfg, out, budget_s=600.0, start=0.0)
    assert given.schedule is None and given.threads is None

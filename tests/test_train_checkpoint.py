"""Checkpoints: atomic writes, previous-version fallback, clear errors, RNG round trip; LR timing; sampler; Adam."""

import copy
import errno
import logging
import random

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from pose.atomic_io import default_file_mode
from pose.engine import checkpoint as ck
from pose.engine import optim as trainer_mod
from pose.engine.checkpoint import CheckpointError
from pose.engine.optim import build_optimizer, build_scheduler, lr_at_epoch
from pose.engine.sampling import EpochSampler, SeededDataset


def training_state(epoch=1, iteration=0):
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    sched = build_scheduler(opt, lr_steps=(2, 3), lr_factor=0.1)
    return {"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
            "epoch": epoch, "iteration": iteration, "config": {"seed": 0}, "rng": ck.rng_state()}


def test_round_trip_and_previous_kept(tmp_path):
    path = tmp_path / "out" / "checkpoint.pth"
    first = training_state(epoch=1)
    ck.save_checkpoint(first, path)
    second = training_state(epoch=2)
    ck.save_checkpoint(second, path)
    loaded = ck.load_checkpoint(path, require=ck.TRAINING_KEYS)
    assert loaded["epoch"] == 2 and ck.load_checkpoint(tmp_path / "out" / "checkpoint.prev.pth")["epoch"] == 1
    for k, v in second["model"].items():
        assert torch.equal(loaded["model"][k], v)
    assert loaded["scheduler"]["milestones"] == second["scheduler"]["milestones"]
    assert sorted(p.name for p in path.parent.iterdir()) == ["checkpoint.prev.pth", "checkpoint.pth"]  # no temp files
    assert path.stat().st_mode & 0o777 == default_file_mode()  # as open() would create it, not mkstemp's 0600


def test_rng_state_round_trip(tmp_path):
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    np.random.randn()  # leave a cached gaussian in numpy's state
    ck.save_checkpoint({"rng": ck.rng_state()}, tmp_path / "rng.pth")
    expected = (random.random(), np.random.randn(3).tolist(), torch.rand(3).tolist())
    random.seed(9)
    np.random.seed(9)
    torch.manual_seed(9)
    ck.set_rng_state(ck.load_checkpoint(tmp_path / "rng.pth")["rng"])
    assert (random.random(), np.random.randn(3).tolist(), torch.rand(3).tolist()) == expected


@pytest.mark.parametrize("damage", ["truncate", "empty", "garbage", "tensor", "missing_keys"])
def test_bad_files_give_clear_errors(tmp_path, damage):
    path = tmp_path / "checkpoint.pth"
    ck.save_checkpoint(training_state(), path)
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "garbage":
        path.write_bytes(b"this is not a checkpoint\n" * 10)
    elif damage == "tensor":
        torch.save(torch.zeros(3), path)
    else:
        torch.save({"model": {}}, path)
    with pytest.raises(CheckpointError, match=str(path)) as info:
        ck.load_checkpoint(path, require=ck.TRAINING_KEYS)
    assert "Traceback" not in str(info.value) and len(str(info.value)) < 400
    with pytest.raises(CheckpointError, match="not found"):
        ck.load_checkpoint(tmp_path / "nope.pth")


def test_resume_falls_back_to_previous_when_latest_is_truncated(tmp_path, caplog):
    ck.save_checkpoint(training_state(epoch=1), tmp_path / "checkpoint.pth")
    ck.save_checkpoint(training_state(epoch=2), tmp_path / "checkpoint.pth")
    latest = tmp_path / "checkpoint.pth"
    latest.write_bytes(latest.read_bytes()[:1000])  # as if cut off by a crash
    with caplog.at_level(logging.WARNING):
        path, state = ck.find_resume_checkpoint(tmp_path)
    assert path.name == "checkpoint.prev.pth" and state["epoch"] == 1
    assert "truncated" in caplog.text and "previous checkpoint" in caplog.text
    # latest missing (killed between the two renames): the previous one is used
    latest.unlink()
    assert ck.find_resume_checkpoint(tmp_path)[1]["epoch"] == 1
    # both unreadable: an error, never a silent fresh start over the old files
    (tmp_path / "checkpoint.prev.pth").write_bytes(b"\0" * 100)
    latest.write_bytes(b"")
    with pytest.raises(CheckpointError, match="no readable checkpoint"):
        ck.find_resume_checkpoint(tmp_path)
    assert ck.find_resume_checkpoint(tmp_path / "empty_dir") is None


def test_disk_full_keeps_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pth"
    ck.save_checkpoint(training_state(epoch=1), path)
    before = path.read_bytes()

    def full_disk(obj, fh, *a, **k):
        fh.write(b"PK\x03\x04partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ck.torch, "save", full_disk)
    with pytest.raises(CheckpointError, match="No space left on device.*previous checkpoint is intact"):
        ck.save_checkpoint(training_state(epoch=2), path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pth"]


def test_unwritable_folder_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(CheckpointError, match="cannot write checkpoint"):
        ck.save_checkpoint({"a": 1}, blocker / "checkpoint.pth")


@pytest.mark.parametrize("schedule", ["multistep", "cosine"])
def test_lr_timing_matches_pytorch_stepping_orders(schedule):
    base, steps, kw = 1e-3, (3, 5), {"schedule": schedule, "epochs": 7, "min_lr": 1e-5}
    for timing in ("epoch_end", "epoch_start"):
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=base)
        sched = build_scheduler(opt, lr_steps=steps, lr_factor=0.1, **kw)
        seen = []
        for epoch in range(7):
            if timing == "epoch_start":  # the official loop: scheduler.step() before each epoch
                with pytest.warns(UserWarning) if epoch == 0 else _nothing():
                    sched.step()
            seen.append(opt.param_groups[0]["lr"])
            opt.step()
            if timing == "epoch_end":
                sched.step()
        expected = [lr_at_epoch(e, lr=base, lr_steps=steps, lr_factor=0.1, timing=timing, **kw) for e in range(7)]
        assert seen == pytest.approx(expected, rel=1e-9)
    if schedule == "cosine":  # from lr down a half cosine; epoch_start runs one epoch ahead
        at = [lr_at_epoch(e, lr=1, lr_steps=(), lr_factor=0.1, timing="epoch_end", schedule="cosine", epochs=4)
              for e in range(4)]
        assert at == pytest.approx([1, (1 + 2 ** -0.5) / 2, 0.5, (1 - 2 ** -0.5) / 2])
        with pytest.raises(ValueError, match="min_lr"):
            build_scheduler(opt, lr_steps=(), lr_factor=0.1, schedule="cosine", epochs=3, min_lr=-1.0)
        return
    # epoch_end: drops after 3 and 5 epochs exactly; epoch_start: one epoch early (the official quirk)
    assert [lr_at_epoch(e, lr=1, lr_steps=steps, lr_factor=0.1, timing="epoch_end") for e in range(6)] == \
        pytest.approx([1, 1, 1, 0.1, 0.1, 0.01])
    assert [lr_at_epoch(e, lr=1, lr_steps=steps, lr_factor=0.1, timing="epoch_start") for e in range(6)] == \
        pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class _RandomDraws(torch.utils.data.Dataset):
    """Each sample is what the augmentation's random sources give at that moment."""

    def __len__(self):
        return 6

    def __getitem__(self, index):
        return torch.tensor([index, random.random(), np.random.rand()], dtype=torch.float64)


def test_persistent_workers_augment_each_epoch_as_a_fresh_process_would():
    seeded = SeededDataset(_RandomDraws(), seed=3)
    sampler = EpochSampler(6, seed=3)
    loader = DataLoader(seeded, batch_size=2, sampler=sampler, num_workers=2, persistent_workers=True)
    try:
        by_epoch = []
        for epoch in range(3):
            sampler.set_epoch(epoch, skip=2 if epoch == 2 else 0)
            got = torch.cat(list(loader))
            expected = torch.stack([seeded[key] for key in sampler])  # in this process, no worker history
            assert torch.equal(got, expected), epoch
            by_epoch.append({int(r[0]): tuple(r[1:].tolist()) for r in got})
    finally:
        loader._iterator._shutdown_workers()
    assert by_epoch[0][0] != by_epoch[1][0]  # a new augmentation each epoch
    assert all(by_epoch[2][i] != by_epoch[1][i] for i in by_epoch[2])


def test_sampler_is_a_function_of_seed_and_epoch_and_skips():
    s = EpochSampler(10, seed=5)
    s.set_epoch(3)
    keys = list(s)
    assert {epoch for epoch, _ in keys} == {3}  # the epoch travels with each key (persistent workers)
    full = [i for _, i in keys]
    assert sorted(full) == list(range(10)) and full == s.indices()
    s2 = EpochSampler(10, seed=5)
    s2.set_epoch(3, skip=4)
    assert list(s2) == keys[4:] and len(s2) == 6
    s.set_epoch(4)
    assert s.indices() != full and {epoch for epoch, _ in s} == {4}
    shards = []
    for rank in range(3):
        r = EpochSampler(10, seed=5, rank=rank, world=3)
        r.set_epoch(3)
        shards.append(r.indices())
    assert all(len(x) == 4 for x in shards)
    assert set(sum(shards, [])) == set(range(10))


@pytest.mark.parametrize("name", ["adam", "adamw"])
def test_built_optimizer_does_the_per_tensor_arithmetic(name):
    """build_optimizer uses the fused kernels where this PyTorch has them; its steps equal the
    per-tensor loop's (same Adam), and its state dict loads into the loop's optimizer."""
    torch.manual_seed(0)
    a = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.Linear(4, 3))
    b, init = copy.deepcopy(a), copy.deepcopy(a)
    opt_a = build_optimizer(a, name=name, lr=1e-2, weight_decay=1e-3 if name == "adamw" else 0.0)
    cls = torch.optim.Adam if name == "adam" else torch.optim.AdamW
    opt_b = cls(b.parameters(), lr=1e-2, weight_decay=1e-3 if name == "adamw" else 0.0, fused=False,
                foreach=False)
    assert opt_a.defaults["fused"] == trainer_mod._fused_supported(list(a.parameters()))
    x = torch.randn(8, 5)
    for _ in range(5):
        for model, opt in ((a, opt_a), (b, opt_b)):
            opt.zero_grad()
            model(x).square().sum().backward()
            opt.step()
    for pa, pb, p0 in zip(a.parameters(), b.parameters(), init.parameters()):
        assert (pa - p0).abs().max() > 1e-3  # they moved
        assert torch.allclose(pa, pb, rtol=1e-5, atol=1e-7)
    opt_b.load_state_dict(opt_a.state_dict())  # checkpoints move between the two

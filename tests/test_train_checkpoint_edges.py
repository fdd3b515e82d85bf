"""Checkpoint files at their edges: what resume picks and says, what a load refuses and says, CUDA RNG states.

Each test pins a behaviour that mutation testing found unpinned (``tools/mutation_test.py``).
"""

import errno
import logging

import pytest
import torch

from pose.engine import checkpoint as ck
from pose.engine.checkpoint import CheckpointError


class Foreign:
    """An object ``weights_only`` loading must refuse (arbitrary code could come with it)."""


def state(epoch, iteration=0):
    return {"model": {"w": torch.full((2,), float(epoch))}, "optimizer": {}, "scheduler": {}, "epoch": epoch,
            "iteration": iteration, "config": {}}


def test_resume_skips_a_latest_without_training_keys_and_says_where_it_resumes(tmp_path, caplog):
    ck.save_checkpoint(state(3, iteration=7), tmp_path / "checkpoint.pth")
    ck.save_checkpoint({"model": {}}, tmp_path / "checkpoint.pth")  # e.g. a model_best copied over it
    with caplog.at_level(logging.WARNING):
        path, loaded = ck.find_resume_checkpoint(tmp_path)
    assert path == tmp_path / "checkpoint.prev.pth" and loaded["epoch"] == 3
    assert "missing optimizer, scheduler, epoch, iteration, config" in caplog.text
    assert f"previous checkpoint {path} instead (epoch 3, iteration 7)" in caplog.text


def test_resume_warns_only_when_it_does_not_use_the_latest(tmp_path, caplog):
    ck.save_checkpoint(state(1), tmp_path / "checkpoint.pth")
    ck.save_checkpoint(state(2, iteration=4), tmp_path / "checkpoint.pth")
    with caplog.at_level(logging.WARNING):
        path, loaded = ck.find_resume_checkpoint(tmp_path)
    assert path.name == "checkpoint.pth" and loaded["epoch"] == 2 and caplog.text == ""
    (tmp_path / "checkpoint.pth").unlink()
    with caplog.at_level(logging.WARNING):
        path, loaded = ck.find_resume_checkpoint(tmp_path)
    assert path.name == "checkpoint.prev.pth" and loaded["epoch"] == 1
    assert f"{tmp_path / 'checkpoint.pth'} is missing; resuming from the previous checkpoint" in caplog.text
    (tmp_path / "checkpoint.prev.pth").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"(?s)is empty.*train.auto_resume=false .* to start afresh"):
        ck.find_resume_checkpoint(tmp_path)


def test_load_errors_name_the_problem(tmp_path):
    path = tmp_path / "c.pth"
    path.write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"c.pth is empty \(0 bytes\)"):
        ck.load_checkpoint(path)
    path.write_bytes(b"x")
    with pytest.raises(CheckpointError, match=r"truncated, corrupt or not a checkpoint of this toolkit \(\w+Error: "):
        ck.load_checkpoint(path)
    torch.save([1, 2], path)
    with pytest.raises(CheckpointError, match="holds a list, not a dict"):
        ck.load_checkpoint(path)
    torch.save({"model": {}, "best_ap": 0.5}, path)
    with pytest.raises(CheckpointError, match=r"missing epoch, config \(it has model, best_ap\)"):
        ck.load_checkpoint(path, require=("model", "epoch", "config"))
    torch.save({}, path)
    with pytest.raises(CheckpointError, match=r"missing model \(it has no keys\)"):
        ck.load_checkpoint(path, require=("model",))


def test_load_refuses_pickled_objects(tmp_path):
    path = tmp_path / "c.pth"
    torch.save({"model": {}, "extra": Foreign()}, path)
    with pytest.raises(CheckpointError, match="not a checkpoint of this toolkit"):
        ck.load_checkpoint(path)


def test_load_maps_tensors_where_asked(tmp_path):
    ck.save_checkpoint(state(1), tmp_path / "c.pth")
    assert ck.load_checkpoint(tmp_path / "c.pth", map_location="meta")["model"]["w"].device.type == "meta"


def test_save_creates_nested_folders(tmp_path):
    path = ck.save_checkpoint(state(1), tmp_path / "a" / "b" / "checkpoint.pth")
    assert ck.load_checkpoint(path)["epoch"] == 1


def test_reason_is_one_line_without_dangling_colon():
    assert ck._reason(OSError(errno.ENOSPC, "No space left on device")) == "No space left on device"
    assert ck._reason(ValueError("first line X\nsecond")) == "ValueError: first line X"
    assert ck._reason(RuntimeError("")) == "RuntimeError"


def test_cuda_rng_states_saved_and_restored_per_device(monkeypatch, caplog):
    saved = [torch.tensor([1], dtype=torch.uint8), torch.tensor([2], dtype=torch.uint8)]
    restored = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    assert "cuda" not in ck.rng_state()  # CUDA never used: nothing to save (and no CUDA start-up)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: saved)
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", restored.append)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    rng = ck.rng_state()
    assert rng["cuda"] is saved
    ck.set_rng_state(rng)
    assert restored == [saved]
    ck.set_rng_state({k: v for k, v in rng.items() if k != "cuda"})
    assert len(restored) == 1
    with caplog.at_level(logging.WARNING):
        ck.set_rng_state({**rng, "cuda": saved[:1]})
    assert len(restored) == 1
    assert "checkpoint has CUDA RNG states for 1 devices, this machine has 2: not restored" in caplog.text
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    ck.set_rng_state(rng)  # states from a GPU machine on a CPU-only one: ignored
    assert len(restored) == 1

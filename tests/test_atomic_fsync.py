"""The atomic writer makes its writes durable: the data is fsynced before the rename, the folder after.

A crash between a rename and the folder's fsync can lose the new name; one before the data's fsync
can leave an empty file under the final name. Neither shows up in a normal run, so the calls are
checked by wrapping ``os.fsync``.
"""

import os
import stat

import torch

from pose.atomic_io import atomic_write_bytes
from pose.engine.checkpoint import save_checkpoint


def record_fsyncs(monkeypatch, target):
    """Wrap os.fsync: per call, (is a folder, size of the fsynced file, target's bytes then)."""
    calls = []
    real = os.fsync

    def spy(fd):
        st = os.fstat(fd)
        current = target.read_bytes() if target.exists() else None
        calls.append((stat.S_ISDIR(st.st_mode), st.st_size, current))
        return real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    return calls


def test_atomic_write_fsyncs_data_before_rename_and_folder_after(tmp_path, monkeypatch):
    target = tmp_path / "out" / "a.json"
    target.parent.mkdir()
    target.write_bytes(b"old")
    calls = record_fsyncs(monkeypatch, target)
    atomic_write_bytes(target, b"new contents")
    assert [is_dir for is_dir, _, _ in calls] == [False, True]
    # the data: all of it, fsynced while the old file still holds the name
    assert calls[0][1] == len(b"new contents") and calls[0][2] == b"old"
    # the folder: after the rename
    assert calls[1][2] == b"new contents"
    assert target.read_bytes() == b"new contents"


def test_checkpoint_save_fsyncs_file_and_folder(tmp_path, monkeypatch):
    target = tmp_path / "checkpoint.pth"
    calls = record_fsyncs(monkeypatch, target)
    save_checkpoint({"epoch": 3, "w": torch.ones(4)}, target)
    files = [c for c in calls if not c[0]]
    folders = [c for c in calls if c[0]]
    assert files and files[0][1] > 0 and files[0][2] is None  # data durable before the name exists
    assert folders and folders[-1][2] == target.read_bytes()  # the folder after the rename
    assert calls.index(files[0]) < calls.index(folders[-1])

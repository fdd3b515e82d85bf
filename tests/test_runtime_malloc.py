"""cpu_malloc: what configure_cpu_malloc asks of the C library, and that 'retain' stops the page
faults of reallocating a feature-map-sized tensor (glibc only)."""

import statistics
import subprocess
import sys
import textwrap

import pytest

from pose import runtime
from pose.config import ConfigError, load_config


class FakeLibc:
    def __init__(self, result: int = 1):
        self.calls: list[tuple[int, int]] = []
        self.result = result

    def mallopt(self, param: int, value: int) -> int:
        self.calls.append((param, value))
        return self.result


@pytest.fixture
def fake_libc(monkeypatch):
    libc = FakeLibc()
    monkeypatch.setattr(runtime, "_glibc", lambda: libc)
    monkeypatch.delenv("LD_PRELOAD", raising=False)
    return libc


def test_retain_turns_off_mmap_per_block_and_trimming(fake_libc):
    said = runtime.configure_cpu_malloc("retain")
    # glibc's M_TRIM_THRESHOLD (-1) to the largest int, M_MMAP_MAX (-4) to 0.
    assert fake_libc.calls == [(-1, 2**31 - 1), (-4, 0)]
    assert "kept for reuse" in said


def test_system_changes_nothing(fake_libc):
    assert "defaults" in runtime.configure_cpu_malloc("system")
    assert fake_libc.calls == []


def test_preloaded_allocator_is_left_alone(fake_libc, monkeypatch):
    monkeypatch.setenv("LD_PRELOAD", "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2")
    assert "preloaded" in runtime.configure_cpu_malloc("retain")
    assert fake_libc.calls == []


def test_refusal_is_reported(monkeypatch):
    monkeypatch.setattr(runtime, "_glibc", lambda: FakeLibc(result=0))
    monkeypatch.delenv("LD_PRELOAD", raising=False)
    assert "refused" in runtime.configure_cpu_malloc("retain")


def test_not_glibc_is_reported(monkeypatch):
    monkeypatch.setattr(runtime, "_glibc", lambda: None)
    monkeypatch.delenv("LD_PRELOAD", raising=False)
    assert "not glibc" in runtime.configure_cpu_malloc("retain")


def test_unknown_setting_names_the_value():
    with pytest.raises(ValueError, match="'keep'"):
        runtime.configure_cpu_malloc("keep")
    with pytest.raises(ConfigError, match="cpu_malloc"):
        load_config(None, ["cpu_malloc=keep"])


@pytest.mark.skipif(runtime._glibc() is None, reason="glibc's malloc only")
def test_retain_reuses_freed_maps_without_page_faults():
    # A fresh process runs a small network forward a few times. With the C library's defaults
    # glibc hands feature maps back to the kernel and faults them in again in every forward;
    # with 'retain', once the first forwards have grown the heap, later ones reuse it.
    code = textwrap.dedent("""
        import resource, sys, torch
        from pose import runtime
        from pose.models import create_model
        print(runtime.configure_cpu_malloc("retain"), file=sys.stderr)
        torch.manual_seed(0)
        net = create_model("hrnet_tiny", init_std=0.0).eval()
        x = torch.randn(4, 3, 256, 192)
        faults = []
        with torch.inference_mode():
            for _ in range(12):
                before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
                net(x)
                faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
        print(faults)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    faults = [int(f) for f in done.stdout.strip().splitlines()[-1].strip("[]").split(",")]
    # The median: a late, rare growth of the heap is no failure; faults in every forward are.
    assert statistics.median(faults[-6:]) <= 64, (str(faults), done.stderr)

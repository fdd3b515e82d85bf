"""benchmarks/run_all.py: outputs stored per machine, the page rebuilt from them."""

import importlib
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture()
def run_all(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    module = importlib.import_module("run_all")
    monkeypatch.setattr(module, "ROOT", tmp_path)
    monkeypatch.setattr(module, "STORE", tmp_path / "docs" / "benchmarks")
    monkeypatch.setattr(module, "PAGE", tmp_path / "docs" / "benchmarks.md")
    (tmp_path / "benchmarks").mkdir()
    yield module
    sys.modules.pop("run_all", None)


def _fake(module, tmp_path, name, body):
    (tmp_path / "benchmarks" / f"{name}.py").write_text(body)
    return module.Benchmark(name, f"title of {name}")


def test_runs_are_stored_per_machine_and_replaced_on_rerun(run_all, tmp_path, monkeypatch):
    bench = _fake(run_all, tmp_path, "bench_a", "print('| row | 1.0x |')\n")
    monkeypatch.setattr(run_all, "BENCHMARKS", (bench,))
    assert run_all.run(bench, "CPU X, bf16 units: AMX, 2 cores")
    assert run_all.run(bench, "CPU Y, bf16 units: none, 2 cores")
    (tmp_path / "benchmarks" / "bench_a.py").write_text("print('| row | 2.0x |')\n")
    assert run_all.run(bench, "CPU X, bf16 units: AMX, 2 cores")
    records = run_all.load_records()
    assert sorted((r["machine"], r["output"]) for r in records) == [
        ("CPU X, bf16 units: AMX, 2 cores", "| row | 2.0x |"), ("CPU Y, bf16 units: none, 2 cores", "| row | 1.0x |")]
    page = run_all.render(records)
    order = [page.index(s) for s in ("### CPU X", "| row | 2.0x |", "### CPU Y", "| row | 1.0x |")]
    assert order == sorted(order)
    assert "1.0x" in page and page.count("## title of bench_a") == 1


def test_a_failing_benchmark_keeps_the_previous_entry(run_all, tmp_path, monkeypatch):
    bench = _fake(run_all, tmp_path, "bench_b", "print('first')\n")
    assert run_all.run(bench, "CPU X")
    (tmp_path / "benchmarks" / "bench_b.py").write_text("print('partial'); raise SystemExit(3)\n")
    assert not run_all.run(bench, "CPU X")
    [record] = run_all.load_records()
    assert record["output"] == "first"


def test_a_corrupt_stored_output_is_named(run_all, tmp_path):
    bad = tmp_path / "docs" / "benchmarks" / "cpu-x" / "bench_c.json"
    bad.parent.mkdir(parents=True)
    bad.write_text("{not json")
    with pytest.raises(SystemExit, match="bench_c.json"):
        run_all.load_records()


def test_every_benchmark_script_is_on_the_page():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        module = importlib.import_module("run_all")
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
        sys.modules.pop("run_all", None)
    scripts = {p.stem for p in (ROOT / "benchmarks").glob("bench_*.py")}
    assert scripts <= {b.name for b in module.BENCHMARKS}, "a benchmark script is missing from run_all.BENCHMARKS"


def test_an_entry_may_run_another_script_with_its_own_args(run_all, tmp_path, monkeypatch):
    (tmp_path / "benchmarks" / "bench_d.py").write_text("import sys; print('args', sys.argv[1:])\n")
    plain = run_all.Benchmark("bench_d", "plain")
    extra = run_all.Benchmark("bench_d_more", "with args", ("--more",), long=True, program="bench_d")
    monkeypatch.setattr(run_all, "BENCHMARKS", (plain, extra))
    assert extra.command == "python benchmarks/bench_d.py --more"
    assert run_all.run(plain, "CPU X") and run_all.run(extra, "CPU X")
    outputs = {r["benchmark"]: r["output"] for r in run_all.load_records()}
    assert outputs == {"bench_d": "args []", "bench_d_more": "args ['--more']"}
    assert (tmp_path / "docs" / "benchmarks" / "cpu-x" / "bench_d_more.json").is_file()


def test_the_compiled_entries_name_real_scripts_and_options():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        module = importlib.import_module("run_all")
        for bench in module.BENCHMARKS:
            assert bench.script.is_file(), bench.name
            if bench.program:  # its args must parse
                script = importlib.import_module(bench.program)
                script.get_args_parser().parse_args(list(bench.args))
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
        sys.modules.pop("run_all", None)

"""benchmarks/bench_malloc.py runs both settings in child processes and reports every row."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_malloc_times_every_row_under_both_settings(capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import bench_malloc
    args = bench_malloc.get_args_parser().parse_args(
        ["--rounds", "1", "--reps", "1", "--warmup", "0", "--threads", "1", "--arch", "hrnet_tiny",
         "--train-arch", "hrnet_tiny"])
    medians = bench_malloc.main(args)
    out = capsys.readouterr().out
    rows = {row for row, _ in medians}
    assert {"hrnet_tiny forward fp32, baseline", "hrnet_tiny forward fp32, PSA_p",
            "hrnet_tiny train step fp32, baseline", "hrnet_tiny train step fp32, PSA_p"} <= rows
    assert {setting for _, setting in medians} == {"retain", "system"}
    assert all(t > 0 for t in medians.values())
    assert "PSA_p time / baseline time" in out

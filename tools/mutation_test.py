"""Mutation testing of one numeric module with mutmut (a development tool, not part of CI).

    python tools/mutation_test.py pose/engine/nms.py              # its usual test files
    python tools/mutation_test.py pose/data/codecs.py --tests tests/test_data_codecs.py
    python tools/mutation_test.py pose/engine/loss.py --jobs 2 --nice 10
    python tools/mutation_test.py pose/engine/evaluator.py --mutants 'pose.engine.evaluator.x_postprocess*'

mutmut makes small changes ("mutants") to the module one at a time (``>`` for ``>=``, ``+`` for
``-``, a constant changed, an argument dropped) and runs the tests that reach the changed function.
A mutant the tests do not notice ("survived") is a behaviour no test pins. The run happens in a
copy of the working tree under ``build/mutation/<module>/`` (mutmut writes its mutated copy and
its state there), so the checkout is never touched. At the end the survivors are listed with
their diffs (``mutmut show NAME`` in that folder shows one again) and the survival rate printed.

The test files that exercise each module are listed in ``MODULE_TESTS``; the whole set is also the
``[mutmut]`` section of setup.cfg, for ``mutmut run`` over every numeric module at once (hours).
"""

import argparse
import importlib.util
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

MODULE_TESTS: dict[str, tuple[str, ...]] = {
    "pose/data/codecs.py": ("tests/test_data_codecs.py", "tests/test_data_codecs_edges.py",
                            "tests/test_eval_wiring.py"),
    "pose/data/transforms.py": ("tests/test_data_transforms.py", "tests/test_data_coco.py",
                                "tests/test_defaults_official.py"),
    "pose/engine/nms.py": ("tests/test_eval_nms.py", "tests/test_eval_wiring.py", "tests/test_eval_nms_edges.py",
                           "tests/test_defaults_official.py"),
    "pose/engine/evaluator.py": ("tests/test_eval_evaluator.py", "tests/test_eval_evaluator_edges.py",
                                 "tests/test_eval_wiring.py", "tests/test_eval_finish_wiring.py",
                                 "tests/test_defaults_official.py"),
    "pose/engine/loss.py": ("tests/test_train_loss.py", "tests/test_train_loss_options.py"),
    "pose/engine/checkpoint.py": ("tests/test_train_checkpoint.py", "tests/test_train_checkpoint_edges.py",
                                  "tests/test_atomic_fsync.py"),
    "pose/engine/trainer.py": ("tests/test_train_loop.py", "tests/test_train_resume_midepoch.py"),
    "pose/models/psa.py": ("tests/test_models_psa.py", "tests/test_models_golden.py"),
    "pose/models/hrnet.py": ("tests/test_models_nets.py", "tests/test_models_golden.py"),
    "pose/models/resnet.py": ("tests/test_models_nets.py", "tests/test_models_golden.py"),
}
STATUS = re.compile(r"^\s*(\S+__mutmut_\d+): (.+)$")


def tracked_files() -> list[str]:
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    return [f for f in out.splitlines() if (ROOT / f).is_file()]


def mutmut_section(module: str, tests: list[str]) -> str:
    lines = ["[mutmut]", "source_paths = pose", f"only_mutate = {module}",
             "pytest_add_cli_args_test_selection ="] + [f"    {t}" for t in tests]
    # forkserver: forking mutmut's own process after torch has started its thread pools can deadlock
    # benchmarks: pytest's pythonpath (the evaluation tests import its plain reference loops)
    return "\n".join(lines + ["also_copy =", "    benchmarks", "    experiments", "    tools",
                               "process_isolation = forkserver", ""])


def prepare(module: str, tests: list[str], work: Path) -> None:
    """A fresh copy of the working tree in ``work`` whose setup.cfg selects ``module`` and ``tests``."""
    shutil.rmtree(work, ignore_errors=True)
    for name in tracked_files():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, work / name)
    cfg = (work / "setup.cfg").read_text()
    cfg = re.sub(r"^\[mutmut\].*?(?=^\[|\Z)", "", cfg, flags=re.S | re.M)
    (work / "setup.cfg").write_text(cfg.rstrip() + "\n\n" + mutmut_section(module, tests))


def summarize(work: Path, mutmut: list[str]) -> Counter:
    out = subprocess.run([*mutmut, "results", "--all", "true"], cwd=work, capture_output=True, text=True).stdout
    statuses = {m.group(1): m.group(2).strip() for m in map(STATUS.match, out.splitlines()) if m}
    counts = Counter(s for s in statuses.values() if s != "not checked")  # outside --mutants
    survivors = sorted(name for name, s in statuses.items() if s == "survived")
    for name in survivors:
        diff = subprocess.run([*mutmut, "show", name], cwd=work, capture_output=True, text=True).stdout
        changed = [x for x in diff.splitlines() if x[:1] in "+-" and x[:3] not in ("+++", "---")]
        print(f"\n{name}\n  " + "\n  ".join(changed))
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("module", choices=sorted(MODULE_TESTS), help="the module to mutate")
    parser.add_argument("--tests", nargs="+", help="test files to run (default: the module's usual ones)")
    parser.add_argument("--mutants", nargs="+", default=[],
                        help="only these mutants (fnmatch patterns of mutmut's names, e.g. "
                             "'pose.engine.evaluator.x_postprocess*'); default: all")
    parser.add_argument("--jobs", type=int, default=2, help="mutants tested in parallel")
    parser.add_argument("--nice", type=int, default=10, help="niceness of the run (the machine may be shared)")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default build/mutation/<name>)")
    args = parser.parse_args(argv)
    if importlib.util.find_spec("mutmut") is None:
        print("mutmut is not installed: pip install -e '.[dev]'", file=sys.stderr)
        return 2
    # through this interpreter, not the console script: a venv that was moved keeps stale shebangs
    mutmut = [sys.executable, "-m", "mutmut"]
    tests = args.tests or list(MODULE_TESTS[args.module])
    missing = [t for t in tests if not (ROOT / t).is_file()]
    if missing:
        print(f"no such test file: {', '.join(missing)}", file=sys.stderr)
        return 2
    work = args.work or ROOT / "build" / "mutation" / Path(args.module).stem
    prepare(args.module, tests, work)
    print(f"mutating {args.module} with {', '.join(tests)} in {work}", flush=True)
    run = subprocess.run(["nice", "-n", str(args.nice), *mutmut, "run", "--max-children", str(args.jobs),
                          *args.mutants], cwd=work)
    if run.returncode != 0:
        print(f"mutmut run failed ({run.returncode})", file=sys.stderr)
        return 1
    counts = summarize(work, mutmut)
    total = sum(counts.values())
    print(f"\n{args.module}: {total} mutants, " + ", ".join(f"{n} {s}" for s, n in counts.most_common()))
    if total:
        print(f"survival rate {counts['survived'] / total:.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

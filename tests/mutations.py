"""Does the regression suite still catch real changes, and only them?

Each mutation below is a real change (a default, the threshold rule, the split seed, a
statistics formula, a chapter's table column) made in a scratch copy of the working tree;
the regression tests that should notice it are run there, and at least one must fail,
with a message naming what moved. Then the unchanged copy runs the same tests under a
capped instruction set (`ONEDNN_MAX_CPU_ISA`, another CPU's arithmetic), where none may
fail. Not collected by pytest (no `test_` prefix); run it by hand:

    .venv/bin/python tests/mutations.py [--only NAME,...] [--isa AVX] [--keep]
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NBVAL = ["--nbval-lax", "--nbval-sanitize-with", "tests/nbval_sanitize.cfg"]


@dataclass(frozen=True)
class Mutation:
    name: str
    file: str
    before: str
    after: str
    tests: tuple[str, ...]


MUTATIONS = (
    Mutation("default learning rate", "brainlib/config/params.py",
             'Parameter("learning_rate", float, 1e-3,', 'Parameter("learning_rate", float, 2e-3,',
             ("tests/test_recording.py", "notebooks/04_training.ipynb")),
    Mutation("default epoch count", "brainlib/config/params.py",
             'Parameter("epochs", int, 8,', 'Parameter("epochs", int, 7,',
             ("tests/test_recording.py", "notebooks/04_training.ipynb")),
    Mutation("threshold rule (ties broken towards the lowest threshold)", "brainlib/training/scores.py",
             "chosen = best[np.argmin(np.abs(candidates[best] - default))]",
             "chosen = best[np.argmin(candidates[best])]",
             ("tests/test_recording.py",)),
    Mutation("split seed", "brainlib/data/splits.py",
             'out["fold_patient"] = _patient_bins(out, [1 / n_folds] * n_folds, seed)',
             'out["fold_patient"] = _patient_bins(out, [1 / n_folds] * n_folds, seed + 1)',
             ("tests/test_recording.py", "notebooks/02_data.ipynb")),
    Mutation("McNemar mid-p formula (the observed split weighted 1/4, not 1/2)",
             "brainlib/stats/mcnemar.py",
             "doubled_tail - sps.binom.pmf(k, n, 0.5)", "doubled_tail - 0.5 * sps.binom.pmf(k, n, 0.5)",
             ("tests/test_stats.py", "notebooks/06_statistics.ipynb")),
    Mutation("a column of chapter 5's Table IV", "brainlib/chapters/evaluation_report.py",
             '"paper (%)": values["paper_percent"]', '"paper": values["paper_percent"]',
             ("notebooks/05_evaluation.ipynb",)),
)


def scratch_copy(target: Path) -> Path:
    """The working tree's tracked and unignored files (what a commit would hold)."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
                            cwd=ROOT, capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def apply(mutation: Mutation, tree: Path) -> None:
    path = tree / mutation.file
    text = path.read_text()
    if text.count(mutation.before) != 1:
        raise SystemExit(f"mutation {mutation.name!r}: {mutation.before!r} is not found once in "
                         f"{mutation.file}; update tests/mutations.py")
    path.write_text(text.replace(mutation.before, mutation.after))


def run_tests(tree: Path, tests: tuple[str, ...], env: dict) -> tuple[int, list[tuple[str, str]], float]:
    """Run `tests` in `tree`; return pytest's exit code, (test, first lines of the failure
    message) for each failure, and the seconds taken."""
    report = tree / "junit.xml"
    nbval = NBVAL if any(t.endswith(".ipynb") for t in tests) else []
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           f"--junitxml={report}", *nbval, *tests], cwd=tree,
                          env={**os.environ, "PYTHONPATH": str(tree), **env},
                          capture_output=True, text=True)
    seconds = time.perf_counter() - started
    failures = []
    if report.exists():
        for case in ET.parse(report).getroot().iter("testcase"):
            for failed in list(case.findall("failure")) + list(case.findall("error")):
                text = (failed.get("message") or "") + "\n" + (failed.text or "")
                failures.append((f"{case.get('classname')}::{case.get('name')}",
                                 summary(text)))
    elif done.returncode:
        failures.append(("pytest", done.stdout[-800:] + done.stderr[-800:]))
    return done.returncode, failures, seconds


def summary(text: str, lines: int = 4) -> str:
    """The failure's most telling lines: the assertion or error message, not the traceback."""
    keep = [line.strip() for line in text.splitlines()
            if line.strip() and not line.strip().startswith(("File ", "raise ", "^"))]
    for marker in ("AssertionError", "ReplayMiss", "Error:", "assert ", "Expected", "moved"):
        hits = [i for i, line in enumerate(keep) if marker in line]
        if hits:
            return " | ".join(keep[hits[0]:hits[0] + lines])[:700]
    return " | ".join(keep[:lines])[:700]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated parts of mutation names")
    parser.add_argument("--isa", default="AVX",
                        help="ONEDNN_MAX_CPU_ISA for the unchanged run (default AVX: below "
                             "every machine this project has run on)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch copies")
    args = parser.parse_args(argv)
    chosen = [m for m in MUTATIONS
              if not args.only or any(part in m.name for part in args.only.split(","))]
    every_test = tuple(dict.fromkeys(t for m in chosen for t in m.tests))
    scratch = Path(tempfile.mkdtemp(prefix="brainlib-mutations-"))
    verdicts = []
    try:
        for index, mutation in enumerate(chosen):
            tree = scratch_copy(scratch / f"mutant{index}")
            apply(mutation, tree)
            code, failures, seconds = run_tests(tree, mutation.tests, {})
            caught = code != 0 and bool(failures)
            verdicts.append(caught)
            print(f"\n== {mutation.name} ({mutation.file}): "
                  f"{'caught' if caught else 'NOT CAUGHT'} by {len(failures)} failing test(s), "
                  f"{seconds:.0f} s", flush=True)
            for test, message in failures[:4]:
                print(f"   {test}\n      {message}")
        tree = scratch_copy(scratch / "unchanged")
        code, failures, seconds = run_tests(tree, every_test, {"ONEDNN_MAX_CPU_ISA": args.isa})
        print(f"\n== unchanged, ONEDNN_MAX_CPU_ISA={args.isa}: {len(failures)} failing test(s) "
              f"of {', '.join(every_test)} ({seconds:.0f} s)", flush=True)
        for test, message in failures[:6]:
            print(f"   {test}\n      {message}")
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
    ok = all(verdicts) and code == 0
    print(f"\nmutations caught: {sum(verdicts)} of {len(verdicts)}; unchanged suite under "
          f"ONEDNN_MAX_CPU_ISA={args.isa}: {'passes' if code == 0 else 'FAILS'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

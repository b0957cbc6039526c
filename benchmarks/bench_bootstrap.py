"""Benchmark: paired slice-level bootstrap of five metrics for two models.

10,000 resamples of accuracy, precision, recall, specificity and F1 for both models (and
their differences) on 3,929 paired synthetic predictions, as in the paper's data set.

- vectorised: ``brainlib.stats.bootstrap_metrics`` with BCa intervals, timed on all 10,000
  resamples, with its default ``engine="counts"`` (multinomial cell counts, exact jackknife)
  and, for reference, ``engine="scipy"`` (scipy.stats.bootstrap on the slices, which also
  runs a 3,929 x 3,928 jackknife); the BENCH line is for the default engine;
- baseline: a plain Python loop over resamples that indexes the arrays and computes the
  metrics with numpy, percentile only (no jackknife), timed on fewer resamples and scaled
  linearly to 10,000 (its cost per resample is constant).

Run: python benchmarks/bench_bootstrap.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from brainlib import stats as st

# The synthetic predictions table is a test fixture: it lives in the repository's tests folder.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from simulated import simulate_predictions  # noqa: E402

N_RESAMPLES = 10_000
LOOP_RESAMPLES = 1_000
TIME_GOAL_S = 2.0
RATIO_GOAL = 10.0


def loop_bootstrap(y_true, pred_a, pred_b, n_resamples, seed=0):
    """The straightforward version: one resample at a time."""
    rng = np.random.default_rng(seed)
    n = y_true.size
    replicates = np.empty((n_resamples, 15))
    for r in range(n_resamples):
        index = rng.integers(0, n, n)
        truth = y_true[index]
        row = []
        for pred in (pred_a[index], pred_b[index]):
            tp = int(np.sum((truth == 1) & (pred == 1)))
            fp = int(np.sum((truth == 0) & (pred == 1)))
            fn = int(np.sum((truth == 1) & (pred == 0)))
            tn = int(np.sum((truth == 0) & (pred == 0)))
            precision = tp / (tp + fp) if tp + fp else float("nan")
            recall = tp / (tp + fn) if tp + fn else float("nan")
            row += [(tp + tn) / n, precision, recall, tn / (tn + fp) if tn + fp else float("nan"),
                    2 * tp / (2 * tp + fp + fn) if tp + fp and tp + fn else float("nan")]
        row += [row[i] - row[i + 5] for i in range(5)]
        replicates[r] = row
    return np.nanquantile(replicates, [0.025, 0.975], axis=0)


def main() -> None:
    paired = st.pair_predictions(simulate_predictions(n_slices=3929, seed=0), "resnet50", "vgg16")
    y_true = paired["y_true"].to_numpy()
    pred_a, pred_b = paired["y_pred_a"].to_numpy(), paired["y_pred_b"].to_numpy()
    print(f"{len(paired)} paired slices, {N_RESAMPLES} resamples, 5 metrics x 2 models + differences")

    st.bootstrap_metrics(paired, n_resamples=200)  # warm-up: imports, caches
    seconds = {}
    for engine in ("counts", "scipy"):
        timings = []
        for _ in range(3):
            start = time.perf_counter()
            result = st.bootstrap_metrics(paired, n_resamples=N_RESAMPLES, engine=engine)
            timings.append(time.perf_counter() - start)
        seconds[engine] = min(timings)
        methods = ", ".join(f"{m}: {k}" for m, k in result.to_frame()["ci_method"].value_counts().items())
        print(f"vectorised, engine={engine!r}: {seconds[engine]:.3f} s for {N_RESAMPLES} resamples "
              f"(best of 3; intervals {methods})")
    vectorised_s = seconds["counts"]

    start = time.perf_counter()
    loop_bootstrap(y_true, pred_a, pred_b, LOOP_RESAMPLES)
    loop_measured_s = time.perf_counter() - start
    loop_s = loop_measured_s * N_RESAMPLES / LOOP_RESAMPLES
    print(f"plain Python loop (percentile only): {loop_measured_s:.3f} s for {LOOP_RESAMPLES} "
          f"resamples, scaled to {loop_s:.3f} s for {N_RESAMPLES}")

    print(f"engine='scipy' vs loop: {loop_s / seconds['scipy']:.1f}x")
    verdict = "meets" if vectorised_s < TIME_GOAL_S else "MISSES"
    print(f"absolute time (default engine): {vectorised_s:.3f} s vs goal < {TIME_GOAL_S:.0f} s "
          f"({verdict}); engine='scipy': {seconds['scipy']:.3f} s")
    print(f"BENCH bootstrap: {loop_s / vectorised_s:.1f}x (goal >= {RATIO_GOAL:.0f}x)")


if __name__ == "__main__":
    main()

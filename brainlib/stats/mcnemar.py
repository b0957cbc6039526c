"""McNemar's test of equal accuracy on paired slices, with a CI of the accuracy difference.

Four variants (exact, mid-p, chi-square with and without continuity correction), the
Newcombe (or Wald) interval of accuracy a - accuracy b, and the per-class tests of
accuracy, sensitivity and specificity adjusted together by Holm's correction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps

from .holm import HolmResult, holm_correction
from .pairing import check_one_experiment, model_names, paired_table
from .results import Result

MCNEMAR_METHODS = ("exact", "midp", "chi2", "chi2_corrected")


def mcnemar_pvalue(b: int, c: int, method: str) -> tuple[float, float]:
    """(statistic, p-value) of McNemar's test on the discordant counts b and c."""
    n = b + c
    if method in ("exact", "midp"):
        k = min(b, c)
        if n == 0:
            return float(k), 1.0
        doubled_tail = 2 * sps.binom.cdf(k, n, 0.5)
        if method == "exact":
            return float(k), float(min(1.0, doubled_tail))
        # mid-p: the doubled tail counts the observed split with weight 1/2
        return float(k), float(min(1.0, doubled_tail - sps.binom.pmf(k, n, 0.5)))
    if method in ("chi2", "chi2_corrected"):
        if n == 0:
            return np.nan, 1.0
        gap = abs(b - c) - (1 if method == "chi2_corrected" else 0)
        statistic = max(gap, 0) ** 2 / n  # Edwards' correction, clipped at 0 when b == c
        return float(statistic), float(sps.chi2.sf(statistic, 1))
    raise ValueError(f"McNemar method: expected one of {MCNEMAR_METHODS}, found {method!r}")


def _wilson(successes, n, z):
    p = successes / n
    centre = (2 * n * p + z**2) / (2 * (n + z**2))
    half = z * np.sqrt(z**2 + 4 * n * p * (1 - p)) / (2 * (n + z**2))
    return centre - half, centre + half


def paired_difference_ci(table, confidence: float = 0.95,
                         method: str = "newcombe") -> tuple[float, float, float]:
    """(difference, low, high) of accuracy a - accuracy b from a paired 2x2 table.

    ``newcombe``: Newcombe (1998) method 10, Wilson score limits of each accuracy combined
    with the phi correlation of the table. ``wald``: difference +- z * sqrt(b + c - (b-c)^2/n)/n.
    """
    (n11, n10), (n01, n00) = paired_table(table).tolist()
    n = n11 + n10 + n01 + n00
    if n == 0:
        return np.nan, np.nan, np.nan
    z = sps.norm.ppf(0.5 + confidence / 2)
    p1, p2 = (n11 + n10) / n, (n11 + n01) / n
    difference = p1 - p2
    if method == "wald":
        se = np.sqrt(max(n10 + n01 - (n10 - n01) ** 2 / n, 0.0)) / n
        return difference, max(-1.0, difference - z * se), min(1.0, difference + z * se)
    if method != "newcombe":
        raise ValueError(f"paired_difference_ci: expected method 'newcombe' or 'wald', found {method!r}")
    l1, u1 = _wilson(n11 + n10, n, z)
    l2, u2 = _wilson(n11 + n01, n, z)
    denominator = (n11 + n10) * (n01 + n00) * (n11 + n01) * (n10 + n00)
    phi = (n11 * n00 - n10 * n01) / np.sqrt(denominator) if denominator > 0 else 0.0
    delta = np.sqrt(max((p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2, 0.0))
    epsilon = np.sqrt(max((u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2, 0.0))
    return difference, max(-1.0, difference - delta), min(1.0, difference + epsilon)


@dataclass
class McNemarResult(Result):
    """McNemar's test of equal accuracy on paired slices, with the accuracy difference."""

    model_a: str
    model_b: str
    both_correct: int
    b: int
    """Slices model a got right and model b wrong."""
    c: int
    """Slices model a got wrong and model b right."""
    both_wrong: int
    statistic: float
    pvalue: float
    method: str
    accuracy_a: float
    accuracy_b: float
    difference: float
    ci_low: float
    ci_high: float
    ci_method: str
    confidence: float

    @property
    def n(self) -> int:
        return self.both_correct + self.b + self.c + self.both_wrong

    def title(self) -> str:
        return f"McNemar test ({self.method}), {self.model_a} vs {self.model_b}, n = {self.n} paired slices"

    def notes(self) -> list[str]:
        return [f"difference = accuracy {self.model_a} - accuracy {self.model_b}; "
                f"{self.confidence:.0%} CI by {self.ci_method}; b = {self.model_a} right and "
                f"{self.model_b} wrong, c = the reverse"]

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([{
            "model_a": self.model_a, "model_b": self.model_b, "b": self.b, "c": self.c,
            "n": self.n, "method": self.method, "statistic": self.statistic, "pvalue": self.pvalue,
            "accuracy_a": self.accuracy_a, "accuracy_b": self.accuracy_b,
            "difference": self.difference, "ci_low": self.ci_low, "ci_high": self.ci_high}])


def mcnemar_test(paired, method: str = "exact", confidence: float = 0.95,
                 ci_method: str = "newcombe") -> McNemarResult:
    """McNemar's test on a paired table (from ``pair_predictions``) or a 2x2 count table
    (rows a correct/wrong, columns b correct/wrong).

    ``exact``: two-sided binomial test of b against b + c with p = 1/2; ``midp``: the same
    doubled tail with the observed split counted one half; ``chi2``:
    (b-c)^2/(b+c); ``chi2_corrected``: (|b-c|-1)^2/(b+c), clipped at 0. No discordant pair
    gives p = 1.
    """
    table = paired_table(paired)
    model_a, model_b = model_names(paired)
    (n11, n10), (n01, n00) = table.tolist()
    statistic, pvalue = mcnemar_pvalue(n10, n01, method)
    difference, low, high = paired_difference_ci(table, confidence, ci_method)
    n = table.sum()
    return McNemarResult(
        model_a=model_a, model_b=model_b, both_correct=n11, b=n10, c=n01, both_wrong=n00,
        statistic=statistic, pvalue=pvalue, method=method,
        accuracy_a=(n11 + n10) / n if n else np.nan, accuracy_b=(n11 + n01) / n if n else np.nan,
        difference=difference, ci_low=low, ci_high=high, ci_method=ci_method,
        confidence=confidence)


def mcnemar_methods(paired, confidence: float = 0.95) -> pd.DataFrame:
    """All four McNemar variants side by side, one row each."""
    return pd.concat([mcnemar_test(paired, m, confidence).to_frame() for m in MCNEMAR_METHODS],
                     ignore_index=True)


def paired_metric_tests(paired: pd.DataFrame, method: str = "exact",
                        alpha: float = 0.05) -> HolmResult:
    """McNemar tests of accuracy (all slices), sensitivity (tumor slices) and specificity
    (non-tumor slices), Holm-adjusted together."""
    check_one_experiment(paired, "paired_metric_tests")
    subsets = {"accuracy": np.ones(len(paired), bool),
               "sensitivity": paired["y_true"].to_numpy() == 1,
               "specificity": paired["y_true"].to_numpy() == 0}
    results = {name: mcnemar_test(paired[mask], method) for name, mask in subsets.items()}
    holm = holm_correction([r.pvalue for r in results.values()], alpha, names=list(results))
    frame = holm.frame
    frame.insert(1, "b", [r.b for r in results.values()])
    frame.insert(2, "c", [r.c for r in results.values()])
    frame.insert(3, "difference", [r.difference for r in results.values()])
    return HolmResult(frame=frame, alpha=alpha)

"""McNemar's test of equal accuracy on paired slices, with a CI of the accuracy difference.

Four slice-level variants (exact, mid-p, chi-square with and without continuity correction),
two patient-clustered variants (Durkalski et al. 2003; Obuchowski 1998) for slices that are
not independent, the Newcombe (or Wald) interval of accuracy a - accuracy b, and the
per-class tests of accuracy, sensitivity and specificity adjusted together by Holm's
correction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps

from .holm import HolmResult, holm_correction
from .pairing import check_one_experiment, model_names, paired_table
from ..measures.results import Result

MCNEMAR_METHODS = ("exact", "midp", "chi2", "chi2_corrected")
"""Slice-level variants: every slice is an independent pair."""
CLUSTERED_MCNEMAR_METHODS = ("durkalski", "obuchowski")
"""Cluster-level variants: slices of one cluster (patient) may err together."""


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


def discordance_by_cluster(paired: pd.DataFrame, cluster: str) -> pd.DataFrame:
    """One row per cluster (e.g. patient): ``n`` slices, ``b`` (a right, b wrong) and ``c``
    (a wrong, b right), the input of the clustered McNemar tests."""
    if not isinstance(paired, pd.DataFrame):
        raise ValueError(f"clustered McNemar: expected a paired table (DataFrame) with a cluster "
                         f"column, found {type(paired).__name__}; a 2x2 table has no clusters")
    if cluster is None:
        raise ValueError("clustered McNemar: expected cluster= a column name such as "
                         "'patient_id', found None")
    if cluster not in paired.columns:
        raise ValueError(f"clustered McNemar: expected a column {cluster!r}, found columns "
                         f"{list(paired.columns)}")
    missing = paired[cluster].isna()
    if missing.any():
        raise ValueError(f"clustered McNemar: expected a {cluster!r} on every slice, found "
                         f"{int(missing.sum())} missing, first at row {paired.index[missing][0]!r}")
    a = paired["correct_a"].to_numpy().astype(bool)
    b = paired["correct_b"].to_numpy().astype(bool)
    slices = pd.DataFrame({cluster: paired[cluster].to_numpy(), "n": 1,
                           "b": (a & ~b).astype(np.int64), "c": (~a & b).astype(np.int64)})
    return slices.groupby(cluster, sort=True).sum()


def clustered_mcnemar_pvalue(b, c, n, method: str) -> tuple[float, float]:
    """(chi-square statistic, p-value) of a clustered McNemar test from per-cluster counts:
    ``b[k]``, ``c[k]`` discordant slices and ``n[k]`` slices of cluster k (K >= 2 clusters).
    Both statistics X are referred to chi-square with 1 df.

    ``durkalski`` (Durkalski et al. 2003, doi:10.1002/sim.1438, as written by Yang, Sun &
    Hardin 2010): on the cluster proportions, X = [sum_k (b_k - c_k)/n_k]^2 /
    sum_k [(b_k - c_k)/n_k]^2, so every cluster weighs the same; with one slice per
    cluster it is McNemar's (b - c)^2/(b + c).
    ``obuchowski`` (Obuchowski 1998, Stat Med 17:1495): D = (B - C)/N, the difference of the
    marginal proportions, over its cluster variance under the null (each cluster centred on
    the pooled proportion): var = K/(K-1) * sum_k (b_k - c_k)^2 / N^2, so
    X = (K-1)/K * (B - C)^2 / sum_k (b_k - c_k)^2. Centring on each model's own proportion,
    sum_k (b_k - c_k - n_k D)^2, is the variance of D away from the null (Yang et al.'s
    modified test averages the two). The count form (B - C)^2 / sum_k (b_k - c_k)^2 is X
    without (K-1)/K, and Durkalski's X when the clusters have equal size.
    No cluster with b_k != c_k gives X = 0, p = 1.
    """
    b, c, n = (np.asarray(x, dtype=np.float64) for x in (b, c, n))
    if not b.shape == c.shape == n.shape or b.ndim != 1:
        raise ValueError(f"clustered McNemar: expected b, c and n of one length, found shapes "
                         f"{b.shape}, {c.shape}, {n.shape}")
    if len(n) < 2:
        raise ValueError(f"clustered McNemar: expected at least 2 clusters, found {len(n)}")
    if (n <= 0).any() or (b < 0).any() or (c < 0).any() or (b + c > n).any():
        raise ValueError("clustered McNemar: expected 0 <= b_k, c_k and b_k + c_k <= n_k, n_k > 0")
    gap = b - c
    if method == "durkalski":
        share = gap / n
        numerator, denominator = share.sum() ** 2, np.sum(share**2)
    elif method == "obuchowski":
        n_clusters = len(n)
        numerator, denominator = gap.sum() ** 2, n_clusters / (n_clusters - 1) * np.sum(gap**2)
    else:
        raise ValueError(f"clustered McNemar method: expected one of {CLUSTERED_MCNEMAR_METHODS}, "
                         f"found {method!r}")
    if denominator == 0:  # every cluster has b_k == c_k: no evidence of a difference
        return 0.0, 1.0
    statistic = float(numerator / denominator)
    return statistic, float(sps.chi2.sf(statistic, 1))


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
    cluster: str | None = None
    """Column whose values group slices (clustered methods only)."""
    n_clusters: int | None = None

    @property
    def n(self) -> int:
        return self.both_correct + self.b + self.c + self.both_wrong

    def title(self) -> str:
        clusters = (f" in {self.n_clusters} clusters ({self.cluster})"
                    if self.n_clusters is not None else "")
        return (f"McNemar test ({self.method}), {self.model_a} vs {self.model_b}, "
                f"n = {self.n} paired slices{clusters}")

    def notes(self) -> list[str]:
        notes = [f"difference = accuracy {self.model_a} - accuracy {self.model_b}; "
                 f"{self.confidence:.0%} CI by {self.ci_method}; b = {self.model_a} right and "
                 f"{self.model_b} wrong, c = the reverse"]
        if self.n_clusters is not None:
            notes.append(f"the test treats the {self.n_clusters} clusters as independent, not "
                         f"the slices; the CI of the difference is slice-level")
        if self.method == "durkalski":
            notes.append("Durkalski weighs every cluster the same: it tests the mean over "
                         "clusters of their accuracy differences")
        return notes

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([{
            "model_a": self.model_a, "model_b": self.model_b, "b": self.b, "c": self.c,
            "n": self.n, "method": self.method, "statistic": self.statistic, "pvalue": self.pvalue,
            "accuracy_a": self.accuracy_a, "accuracy_b": self.accuracy_b,
            "difference": self.difference, "ci_low": self.ci_low, "ci_high": self.ci_high}])


def mcnemar_test(paired, method: str = "exact", confidence: float = 0.95,
                 ci_method: str = "newcombe", cluster: str | None = None) -> McNemarResult:
    """McNemar's test on a paired table (from ``pair_predictions``) or a 2x2 count table
    (rows a correct/wrong, columns b correct/wrong).

    ``exact``: two-sided binomial test of b against b + c with p = 1/2; ``midp``: the same
    doubled tail with the observed split counted one half; ``chi2``:
    (b-c)^2/(b+c); ``chi2_corrected``: (|b-c|-1)^2/(b+c), clipped at 0. No discordant pair
    gives p = 1. ``durkalski`` and ``obuchowski`` need a paired table and ``cluster`` (e.g.
    "patient_id"): see ``clustered_mcnemar_pvalue``.
    """
    methods = MCNEMAR_METHODS + CLUSTERED_MCNEMAR_METHODS
    if method not in methods:
        raise ValueError(f"mcnemar_test: expected method in {methods}, found {method!r}")
    table = paired_table(paired)
    model_a, model_b = model_names(paired)
    (n11, n10), (n01, n00) = table.tolist()
    n_clusters = None
    if method in CLUSTERED_MCNEMAR_METHODS:
        counts = discordance_by_cluster(paired, cluster)
        statistic, pvalue = clustered_mcnemar_pvalue(counts["b"], counts["c"], counts["n"], method)
        n_clusters = len(counts)
    elif cluster is not None:
        raise ValueError(f"mcnemar_test: cluster={cluster!r} needs a clustered method "
                         f"{CLUSTERED_MCNEMAR_METHODS}, found method={method!r}")
    else:
        statistic, pvalue = mcnemar_pvalue(n10, n01, method)
    difference, low, high = paired_difference_ci(table, confidence, ci_method)
    n = table.sum()
    return McNemarResult(
        model_a=model_a, model_b=model_b, both_correct=n11, b=n10, c=n01, both_wrong=n00,
        statistic=statistic, pvalue=pvalue, method=method,
        accuracy_a=(n11 + n10) / n if n else np.nan, accuracy_b=(n11 + n01) / n if n else np.nan,
        difference=difference, ci_low=low, ci_high=high, ci_method=ci_method,
        confidence=confidence, cluster=cluster if n_clusters is not None else None,
        n_clusters=n_clusters)


def mcnemar_methods(paired, confidence: float = 0.95) -> pd.DataFrame:
    """All four McNemar variants side by side, one row each."""
    return pd.concat([mcnemar_test(paired, m, confidence).to_frame() for m in MCNEMAR_METHODS],
                     ignore_index=True)


def clustered_mcnemar_methods(paired: pd.DataFrame, cluster: str = "patient_id",
                              confidence: float = 0.95) -> pd.DataFrame:
    """The exact slice-level test beside the two clustered tests, one row each, with a
    ``unit`` column saying what the test counts as independent."""
    unit = "patients" if cluster == "patient_id" else cluster
    rows = [(mcnemar_test(paired, "exact", confidence), "slices")]
    rows += [(mcnemar_test(paired, m, confidence, cluster=cluster), unit)
             for m in CLUSTERED_MCNEMAR_METHODS]
    frames = []
    for result, counted in rows:
        frame = result.to_frame()
        frame.insert(frame.columns.get_loc("method") + 1, "unit", counted)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def paired_metric_tests(paired: pd.DataFrame, method: str = "exact",
                        alpha: float = 0.05, cluster: str | None = None) -> HolmResult:
    """McNemar tests of accuracy (all slices), sensitivity (tumor slices) and specificity
    (non-tumor slices), Holm-adjusted together; a clustered ``method`` (e.g. "durkalski")
    with ``cluster`` counts patients, not slices."""
    check_one_experiment(paired, "paired_metric_tests")
    subsets = {"accuracy": np.ones(len(paired), bool),
               "sensitivity": paired["y_true"].to_numpy() == 1,
               "specificity": paired["y_true"].to_numpy() == 0}
    results = {name: mcnemar_test(paired[mask], method, cluster=cluster)
               for name, mask in subsets.items()}
    holm = holm_correction([r.pvalue for r in results.values()], alpha, names=list(results))
    frame = holm.frame
    frame.insert(1, "b", [r.b for r in results.values()])
    frame.insert(2, "c", [r.c for r in results.values()])
    frame.insert(3, "difference", [r.difference for r in results.values()])
    return HolmResult(frame=frame, alpha=alpha)

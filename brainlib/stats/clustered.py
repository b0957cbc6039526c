"""Patient-clustered inference on a paired table: the per-patient sums, the
cluster-robust standard error of the accuracy difference and its interval (t with K - 1
degrees of freedom for few patients), the detectable difference, and the exact sign-flip
test over patients. The primary endpoint (``brainlib.chapters.primary``) and every chapter's
patient-level accuracy interval use these.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps

from .pairing import check_one_experiment
from ..measures.results import Result


SMALL_SAMPLE_PATIENTS = 20
"""Below this many patients (clusters) the primary result uses t with K - 1 degrees of
freedom instead of the normal. A cluster-robust standard error is estimated from K numbers:
with few clusters it is biased low and noisy, and normal quantiles under-cover (Cameron &
Miller 2015, "A practitioner's guide to cluster-robust inference", sec. VI: few clusters
means roughly 20-50 or fewer; t(K - 1) is Stata's and their recommended correction). 20 is
the low end of that range, fixed here before any run; at 20 patients t(19) and the normal
differ by 4.5% in the 95% quantile (2.093 against 1.960)."""


# ---------------------------------------------------------------------------- per patient sums

def _patient_sums(paired: pd.DataFrame, where: str) -> pd.DataFrame:
    """Per patient: slices, correct slices of a and of b. Refuses a table that cannot give a
    patient-level answer (missing columns, mixed experiments, fewer than 2 patients)."""
    check_one_experiment(paired, where)
    needed = ["patient_id", "correct_a", "correct_b"]
    missing = [c for c in needed if c not in paired.columns]
    if missing:
        raise ValueError(f"{where}: expected a paired table (stats.pair_predictions) with "
                         f"columns {needed}, missing {missing}; found {list(paired.columns)}")
    sums = (paired.groupby("patient_id", sort=True)
            .agg(n_slices=("correct_a", "size"), correct_a=("correct_a", "sum"),
                 correct_b=("correct_b", "sum")))
    if len(sums) < 2:
        found = ", ".join(repr(p) for p in sums.index)
        raise ValueError(f"{where}: expected at least 2 patients, found {len(sums)} ({found}); "
                         "a patient-level standard error, bootstrap or test needs 2 or more "
                         "patients")
    return sums.astype(np.int64)


def cluster_standard_error(n_slices, difference_counts) -> tuple[float, float]:
    """Pooled difference D and its patient-cluster (sandwich) standard error.

    For patient i with n_i slices and d_i = sum over its slices of (correct_a - correct_b),
    D = sum d_i / N with N = sum n_i, and, with m patients,

        SE(D)^2 = m / (m - 1) * sum_i (d_i - D n_i)^2 / N^2,

    the linearisation variance of a ratio estimator (Cochran 1977, sec. 6.3), i.e. the
    cluster-robust variance of an intercept-only regression with the m/(m-1) small-sample
    factor. Slices of one patient may err together; this SE allows for it.
    """
    n = np.asarray(n_slices, dtype=np.float64)
    d = np.asarray(difference_counts, dtype=np.float64)
    m, total = n.size, n.sum()
    estimate = d.sum() / total
    residual = d - estimate * n
    variance = m / (m - 1) * np.sum(residual**2) / total**2
    return float(estimate), float(np.sqrt(variance))


def reference_distribution(n_patients: int):
    """The distribution the primary interval's quantiles come from: Student's t with
    K - 1 degrees of freedom below ``SMALL_SAMPLE_PATIENTS`` patients, else the normal."""
    if n_patients < SMALL_SAMPLE_PATIENTS:
        return sps.t(df=n_patients - 1)
    return sps.norm()


def distribution_name(n_patients: int) -> str:
    """How the reference distribution is written in the book."""
    if n_patients < SMALL_SAMPLE_PATIENTS:
        return f"t with {n_patients - 1} degrees of freedom"
    return "the normal"


def cluster_interval(paired: pd.DataFrame, confidence: float = 0.95) -> tuple[float, float, float]:
    """Pooled accuracy difference a - b of a paired table and its interval from the
    patient-cluster standard error (t with K - 1 df below ``SMALL_SAMPLE_PATIENTS``
    patients): (estimate, low, high), the primary endpoint's decision rule for any pair."""
    sums = _patient_sums(paired, "cluster_interval")
    estimate, se = cluster_standard_error(sums["n_slices"], sums["correct_a"] - sums["correct_b"])
    q = reference_distribution(len(sums)).ppf(1 - (1 - confidence) / 2)
    return estimate, estimate - q * se, estimate + q * se


def minimum_detectable_difference(se: float, alpha: float = 0.05, power: float = 0.8,
                                  n_patients: int | None = None) -> float:
    """(q_{1-alpha/2} + q_power) * SE: the true difference a two-sided test at ``alpha``
    detects with probability ``power``, assuming the SE at that difference is the observed
    one; q from the normal, or from t with K - 1 df when ``n_patients`` is below
    ``SMALL_SAMPLE_PATIENTS``. NaN when SE is 0 (no patient-to-patient variation to size a
    difference by)."""
    if not se > 0:
        return float("nan")
    q = sps.norm() if n_patients is None else reference_distribution(n_patients)
    return float((q.ppf(1 - alpha / 2) + q.ppf(power)) * se)


# ---------------------------------------------------------------------------- exact sign flips

@dataclass
class SignFlipTest(Result):
    """The exact patient-level permutation test of a paired difference: under "the models
    are equally accurate", each patient's difference is as likely to have either sign."""

    statistic: float
    """The observed pooled difference sum(d_i) / sum(n_i)."""
    pvalue: float
    """Two-sided: the share of all 2^K sign assignments whose pooled difference is at least
    as far from 0 as the observed one."""
    n_patients: int
    n_informative: int
    """Patients whose difference is not 0 (flipping a 0 changes nothing)."""
    smallest_pvalue: float
    """The smallest p-value this test can give with these patients: 2 / 2^n_informative."""

    def title(self) -> str:
        return f"Exact sign-flip test over {self.n_patients} patients"

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([{"statistic": self.statistic, "pvalue": self.pvalue,
                              "n_patients": self.n_patients,
                              "n_informative": self.n_informative,
                              "smallest_pvalue": self.smallest_pvalue}])


def sign_flip_test(difference_counts, n_slices) -> SignFlipTest:
    """Exact two-sided sign-flip (randomisation) test of sum(d_i) / sum(n_i) = 0 over all
    2^K sign assignments of the K patients' integer differences d_i.

    The null distribution of sum(s_i d_i), s_i = +-1 with probability 1/2 each, is the
    product of the K two-point distributions, computed exactly by convolving them over the
    integers (no enumeration, so any K works); the p-value is P(|sum s_i d_i| >= |sum d_i|).
    This is ``scipy.stats.permutation_test(..., permutation_type="samples")`` on one sample,
    computed without listing the 2^K flips.
    """
    d = np.asarray(difference_counts)
    n = np.asarray(n_slices, dtype=np.float64)
    if d.ndim != 1 or d.size != n.size or d.size < 1:
        raise ValueError(f"sign_flip_test: expected one integer difference per patient and as "
                         f"many slice counts, found shapes {d.shape} and {n.shape}")
    if not np.array_equal(d, np.round(d)):
        raise ValueError("sign_flip_test: expected integer differences (correct slices of a "
                         f"minus of b per patient), found {d[d != np.round(d)][:3]}")
    d = np.abs(d.astype(np.int64))
    observed = int(np.asarray(difference_counts, dtype=np.int64).sum())
    total = int(d.sum())
    # probabilities of sum s_i |d_i| = v, v in [-total, total], index v + total
    distribution = np.zeros(2 * total + 1)
    distribution[total] = 1.0
    for di in d[d > 0]:
        distribution = 0.5 * (np.roll(distribution, di) + np.roll(distribution, -di))
    values = np.arange(-total, total + 1)
    pvalue = float(min(1.0, distribution[np.abs(values) >= abs(observed)].sum()))
    informative = int((d > 0).sum())
    return SignFlipTest(statistic=float(observed / n.sum()), pvalue=pvalue,
                        n_patients=int(d.size), n_informative=informative,
                        smallest_pvalue=float(min(1.0, 2.0 * 0.5**informative)))


def proportion_interval(rows: pd.DataFrame, confidence: float = 0.95
                        ) -> tuple[float, float, float]:
    """Share of correct calls in `rows` (patient_id, y_true, y_pred) as (estimate, low, high):
    the interval from the patient-cluster standard error, with t on K - 1 degrees of
    freedom below ``SMALL_SAMPLE_PATIENTS`` patients, as every patient-level interval here
    (clipped to [0, 1]); NaN limits without 2 patients."""
    correct = (rows["y_pred"] == rows["y_true"]).astype(np.int64)
    sums = correct.groupby(rows["patient_id"]).agg(["size", "sum"])
    if len(sums) == 0:
        return np.nan, np.nan, np.nan
    estimate = float(sums["sum"].sum() / sums["size"].sum())
    if len(sums) < 2:
        return estimate, np.nan, np.nan
    _, se = cluster_standard_error(sums["size"], sums["sum"])
    q = reference_distribution(len(sums)).ppf(1 - (1 - confidence) / 2)
    return estimate, max(0.0, estimate - q * se), min(1.0, estimate + q * se)

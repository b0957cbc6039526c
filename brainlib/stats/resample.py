"""Resampling whole patients: every slice of a drawn patient comes along, so a resampled
statistic varies as it would across new patients, not new slices of the same ones. Used by
chapter 8's calibration and referral intervals and by the benchmarks.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import stats as sps

from ..measures.results import Result, as_rng


class PatientInterval(NamedTuple):
    """A statistic and its percentile interval from resampling whole patients."""
    estimate: float
    low: float
    high: float


def patient_members(frame: pd.DataFrame) -> list[np.ndarray]:
    """Row positions of each patient of `frame` (its `patient_id` column)."""
    patients, codes = np.unique(frame["patient_id"].to_numpy(), return_inverse=True)
    return [np.flatnonzero(codes == k) for k in range(len(patients))]


def patient_resamples(frame: pd.DataFrame, n_resamples: int, seed=0) -> list[np.ndarray]:
    """`n_resamples` row-position arrays of `frame`, each drawing as many patients as it
    has, with replacement, every slice of a drawn patient included."""
    members = patient_members(frame.reset_index(drop=True))
    rng = as_rng(seed)
    return [np.concatenate([members[k] for k in rng.integers(0, len(members), len(members))])
            for _ in range(n_resamples)]


def patient_bootstrap(frame: pd.DataFrame, statistic, n_resamples: int = 2000,
                      confidence: float = 0.95, seed=0) -> PatientInterval:
    """`statistic(frame)` with a percentile interval from resampling whole patients (a
    patient drawn twice counts twice). Resamples where the statistic is undefined (NaN)
    are left out."""
    frame = frame.reset_index(drop=True)
    values = np.array([statistic(frame.iloc[rows])
                       for rows in patient_resamples(frame, n_resamples, seed)], dtype=np.float64)
    tail = (1 - confidence) / 2 * 100
    low, high = np.nanpercentile(values, [tail, 100 - tail])
    return PatientInterval(float(statistic(frame)), float(low), float(high))


@dataclass
class MeanDiceInterval(Result):
    """Mean per-patient Dice with a bootstrap CI that resamples whole patients."""

    mean: float
    ci_low: float
    ci_high: float
    n_patients: int
    confidence: float
    n_resamples: int
    method: str

    def title(self) -> str:
        return (f"Mean per-patient Dice, {self.confidence:.0%} {self.method} bootstrap CI over "
                f"{self.n_patients} patients ({self.n_resamples} resamples)")

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([{"mean_dice": self.mean, "ci_low": self.ci_low,
                              "ci_high": self.ci_high, "n_patients": self.n_patients}])


def mean_dice_interval(patient_dice, confidence: float = 0.95, n_resamples: int = 10_000,
                       method: str = "BCa", seed=0) -> MeanDiceInterval:
    """Patient-cluster bootstrap of the mean Dice (`scipy.stats.bootstrap` over patients:
    each patient's volume Dice is one unit, so its slices stay together)."""
    values = np.asarray(patient_dice, dtype=np.float64)
    values = values[~np.isnan(values)]
    if values.size < 2:
        raise ValueError(f"mean_dice_interval: expected at least 2 patients, found {values.size}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sps.DegenerateDataWarning)  # all-equal Dice values
        result = sps.bootstrap((values,), np.mean, n_resamples=n_resamples,
                               confidence_level=confidence, method=method,
                               rng=np.random.default_rng(seed))
    low, high = result.confidence_interval
    return MeanDiceInterval(float(values.mean()), float(low), float(high), int(values.size),
                            confidence, n_resamples, method)

"""Resampling whole patients: every slice of a drawn patient comes along, so a resampled
statistic varies as it would across new patients, not new slices of the same ones. Used by
chapter 8's calibration and referral intervals and by the benchmarks.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

from .results import as_rng


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

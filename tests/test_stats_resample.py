"""Resampling whole patients (`brainlib.stats.resample`): whole patients per draw, the
draws by hand, and the percentile interval against scipy's bootstrap of patient means."""
import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from brainlib import stats


def patients(n_patients=12, per_patient=3, seed=0):
    rng = np.random.default_rng(seed)
    level = rng.normal(0, 1, n_patients)
    return pd.DataFrame({"patient_id": np.repeat([f"P{k:02d}" for k in range(n_patients)],
                                                 per_patient),
                         "value": np.repeat(level, per_patient)
                         + rng.normal(0, 0.1, n_patients * per_patient)})


def test_each_draw_takes_whole_patients_as_drawn_by_hand():
    frame = patients(5, 2)
    draws = stats.patient_resamples(frame, 4, seed=3)
    rng = np.random.default_rng(3)
    members = stats.patient_members(frame)
    for rows in draws:
        chosen = rng.integers(0, 5, 5)
        assert np.array_equal(rows, np.concatenate([members[k] for k in chosen]))
        assert len(rows) == len(frame)  # equal-sized patients: as many slices as the table


def test_the_interval_matches_scipys_bootstrap_of_patient_means():
    frame = patients(12, 3)
    mean = lambda part: float(part["value"].mean())  # noqa: E731
    ours = stats.patient_bootstrap(frame, mean, n_resamples=20_000, seed=1)
    by_patient = frame.groupby("patient_id")["value"].mean().to_numpy()
    theirs = sps.bootstrap((by_patient,), np.mean, n_resamples=20_000, method="percentile",
                           rng=np.random.default_rng(2)).confidence_interval
    assert ours.estimate == pytest.approx(frame["value"].mean())
    assert ours.low == pytest.approx(theirs.low, abs=0.03)
    assert ours.high == pytest.approx(theirs.high, abs=0.03)
    # undefined resamples are left out, not turned into an error
    odd = stats.patient_bootstrap(frame, lambda part: float("nan") if len(part) < 0 else
                                  mean(part), n_resamples=50, seed=0)
    assert np.isfinite(odd.low) and odd.low <= odd.estimate <= odd.high

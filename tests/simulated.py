"""A synthetic predictions table with known structure: the test fixture of the stats tests.

Tests import it as ``from simulated import simulate_predictions`` (pytest puts this folder
on ``sys.path``); ``benchmarks/bench_bootstrap.py`` adds the folder itself.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from brainlib.measures.results import as_rng


def simulate_predictions(n_patients: int = 110, n_slices: int = 3929, n_folds: int = 8,
                         separations=(("resnet50", 3.0), ("vgg16", 2.0)),
                         tumor_fraction: float = 0.35, patient_sd: float = 1.0,
                         shared_sd: float = 0.7, seed=0) -> pd.DataFrame:
    """A predictions table with known structure, for tests and demonstrations without training.

    Each model's logit is ``separation * (2 y_true - 1)`` plus a patient effect (so slices of
    a patient err together), a slice effect shared by the models (so they err on the same
    slices) and its own noise; ``y_pred = p_tumor >= 0.5``. Folds group whole patients.
    """
    rng = as_rng(seed)
    if n_slices < n_patients:
        raise ValueError(f"simulate_predictions: expected n_slices >= n_patients, found "
                         f"{n_slices} < {n_patients}")
    per_patient = 1 + rng.multinomial(n_slices - n_patients, np.full(n_patients, 1 / n_patients))
    patient = np.repeat(np.arange(n_patients), per_patient)
    slice_number = np.concatenate([np.arange(1, k + 1) for k in per_patient])
    concentration = 4.0
    fraction = rng.beta(tumor_fraction * concentration, (1 - tumor_fraction) * concentration,
                        n_patients)
    y_true = (rng.random(n_slices) < fraction[patient]).astype(np.int64)
    fold_of_patient = rng.permutation(n_patients) % n_folds
    patient_effect = rng.normal(0, patient_sd, n_patients)
    shared = rng.normal(0, shared_sd, n_slices)
    frames = []
    for model, separation in separations:
        own_patient = rng.normal(0, patient_sd / 2, n_patients)
        logit = (separation * (2 * y_true - 1) + (patient_effect + own_patient)[patient]
                 * (2 * y_true - 1) * -1 + shared + rng.normal(0, 1.0, n_slices))
        p_tumor = 1 / (1 + np.exp(-logit))
        frames.append(pd.DataFrame({
            "model": model, "scheme": "patient", "control": "none",
            "fold": fold_of_patient[patient], "patient_id": [f"P{p:03d}" for p in patient],
            "slice_number": slice_number, "y_true": y_true, "p_tumor": p_tumor,
            "y_pred": (p_tumor >= 0.5).astype(np.int64)}))
    return pd.concat(frames, ignore_index=True)

"""Seeded train/test splits and k-fold cross-validation, recorded as manifest columns.

Two schemes:
- `patient`: grouped by patient and stratified by label, so no patient is on both sides
  (the honest evaluation);
- `slice`: slices dealt out independently, stratified by label, which is what the paper did
  (slices of one patient on both sides); kept only to measure how much that leaks.

`add_splits` writes `split_<scheme>` ("train"/"test", the paper's 70:30) and
`fold_<scheme>` (the cross-validation test fold, 0..n_folds-1) for both schemes.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

SCHEMES = ("patient", "slice")


class LeakageError(AssertionError):
    """A patient appears on both sides of a patient-level split."""


def add_splits(manifest: pd.DataFrame, *, n_folds: int = 8, test_fraction: float = 0.3,
               seed: int = 0) -> pd.DataFrame:
    """Return a copy of the manifest with holdout and fold columns for both schemes."""
    n_patients = manifest["patient_id"].nunique()
    if n_folds < 2 or n_folds > n_patients:
        raise ValueError(f"n_folds must be between 2 and the number of patients "
                         f"({n_patients}), got {n_folds}")
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    out = manifest.copy()
    holdout = _patient_bins(out, [1 - test_fraction, test_fraction], seed)
    out["split_patient"] = np.where(holdout == 1, "test", "train")
    out["fold_patient"] = _patient_bins(out, [1 / n_folds] * n_folds, seed)
    holdout = _slice_bins(out, [1 - test_fraction, test_fraction], seed)
    out["split_slice"] = np.where(holdout == 1, "test", "train")
    out["fold_slice"] = _slice_bins(out, [1 / n_folds] * n_folds, seed)
    for column in ("split_patient", "fold_patient"):
        check_no_patient_leakage(out, column)
    return out


def _patient_bins(manifest: pd.DataFrame, weights: list[float], seed: int,
                  n_tries: int = 200) -> np.ndarray:
    """Assign whole patients to bins of the given weights, balancing slices and tumor slices.

    Greedy stratified group split: patients in a seeded random order each go to the bin
    least full relative to its slice and tumor-slice targets. Of `n_tries` such orders the
    one closest to the targets is kept (with few patients one greedy pass can be lopsided).
    """
    per_patient = manifest.groupby("patient_id", sort=True)["label"].agg(["size", "sum"])
    counts = per_patient[["size", "sum"]].to_numpy(dtype=float)
    weights = np.asarray(weights, dtype=float) / np.sum(weights)
    targets = weights[:, None] * np.maximum(counts.sum(axis=0), 1)[None, :]
    rng = np.random.default_rng(seed)
    best_bins, best_error = None, np.inf
    for _ in range(n_tries):
        bins = np.empty(len(counts), dtype=int)
        filled = np.zeros_like(targets)
        for patient in rng.permutation(len(counts)):
            chosen = int(np.argmin(((filled + counts[patient]) / targets).sum(axis=1)))
            filled[chosen] += counts[patient]
            bins[patient] = chosen
        error = np.abs(filled / targets - 1).max()
        if error < best_error:
            best_bins, best_error = bins, error
    bin_of = dict(zip(per_patient.index, best_bins))
    return manifest["patient_id"].map(bin_of).to_numpy(dtype=int)


def _slice_bins(manifest: pd.DataFrame, weights: list[float], seed: int) -> np.ndarray:
    """Deal slices to bins of the given weights, stratified by label, ignoring patients."""
    rng = np.random.default_rng(seed + 1)
    weights = np.asarray(weights, dtype=float) / np.sum(weights)
    bins = np.empty(len(manifest), dtype=int)
    labels = manifest["label"].to_numpy()
    for label in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == label))
        edges = np.round(np.cumsum(weights) * len(rows)).astype(int)
        bins[rows] = np.searchsorted(edges, np.arange(len(rows)), side="right")
    return bins


def check_no_patient_leakage(manifest: pd.DataFrame, column: str) -> None:
    """Raise `LeakageError` if any patient has rows in more than one group of `column`."""
    groups_per_patient = manifest.groupby("patient_id")[column].nunique()
    leaking = groups_per_patient[groups_per_patient > 1]
    if len(leaking):
        raise LeakageError(f"{len(leaking)} patient(s) on both sides of '{column}': "
                           f"{', '.join(leaking.index[:5])}")


def train_test_rows(manifest: pd.DataFrame, scheme: str, fold: int | None = None
                    ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Training and test rows of one fold (or of the 70:30 holdout when `fold` is None).

    Under the patient scheme it asserts, every time, that no patient is on both sides.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {SCHEMES}, got {scheme!r}")
    if fold is None:
        is_test = manifest[f"split_{scheme}"].eq("test").to_numpy()
    else:
        is_test = manifest[f"fold_{scheme}"].eq(fold).to_numpy()
    train, test = manifest[~is_test], manifest[is_test]
    if scheme == "patient":
        shared = set(train["patient_id"]) & set(test["patient_id"])
        if shared:
            raise LeakageError(f"patients on both sides of fold {fold}: {sorted(shared)[:5]}")
    if len(test) == 0 or len(train) == 0:
        raise ValueError(f"fold {fold} of the {scheme} scheme has an empty side")
    return train, test


def split_summary(manifest: pd.DataFrame) -> pd.DataFrame:
    """Patients, slices and tumor fraction per fold and scheme (to show a split is balanced)."""
    rows = []
    for scheme in SCHEMES:
        for fold, part in manifest.groupby(f"fold_{scheme}"):
            rows.append({"scheme": scheme, "fold": int(fold),
                         "patients": part["patient_id"].nunique(), "slices": len(part),
                         "tumor_fraction": part["label"].mean()})
    return pd.DataFrame(rows)

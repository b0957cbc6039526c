"""Evaluation beyond patient cross-validation: folds that are institutions, and a hold-out
set of other patients.

Both only rewrite the manifest's patient fold column (`fold_patient`), so every model
trains and scores through the same runner and protocol as the cross-validation:
- `institution_folds`: fold k holds every patient of the k-th institution (sorted codes),
  so each model trains on the other institutions and is tested on one it never saw;
- `holdout_manifest`: the training patients (all of one dataset) and the test patients
  (another folder) in one manifest, the test patients as fold 0 and the training patients
  as fold 1; the run trains fold 0's unit only (`HOLDOUT_FOLD`).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..config.params import HOLDOUT_FOLD
from .splits import check_no_patient_leakage

TRAINING_FOLD = 1


def institution_folds(manifest: pd.DataFrame) -> pd.DataFrame:
    """A copy of `manifest` whose `fold_patient` is the index of each slice's institution
    among the sorted institution codes. Refuses a manifest with fewer than 2 institutions
    or a patient recorded under two institutions."""
    codes = sorted(manifest["institution"].astype(str).unique())
    if len(codes) < 2:
        raise ValueError(f"institution folds need at least 2 institutions; the manifest has "
                         f"{codes or 'none'}")
    per_patient = manifest.groupby("patient_id")["institution"].nunique()
    if (per_patient > 1).any():
        raise ValueError("patients under two institutions: "
                         f"{sorted(per_patient[per_patient > 1].index)[:5]}")
    out = manifest.copy()
    out["fold_patient"] = out["institution"].astype(str).map(
        {code: k for k, code in enumerate(codes)}).astype(np.int64)
    check_no_patient_leakage(out, "fold_patient")
    return out


def institution_of_fold(manifest: pd.DataFrame) -> dict[int, str]:
    """fold -> institution code of an `institution_folds` manifest."""
    pairs = manifest[["fold_patient", "institution"]].drop_duplicates()
    if pairs["fold_patient"].duplicated().any():
        raise ValueError("this manifest's folds are not institutions (a fold holds several)")
    return {int(f): str(i) for f, i in pairs.itertuples(index=False)}


def holdout_manifest(train: pd.DataFrame, test: pd.DataFrame) -> pd.DataFrame:
    """One manifest: `train`'s patients as fold 1, `test`'s as fold 0 (`HOLDOUT_FOLD`),
    with a `source` column ("train" or "test"). Refuses a patient in both and a mix of
    phantom and real data."""
    shared = sorted(set(train["patient_id"]) & set(test["patient_id"]))
    if shared:
        raise ValueError(f"the hold-out shares {len(shared)} patient(s) with the training "
                         f"data, e.g. {shared[:3]}: a hold-out needs patients the models never "
                         "saw")
    kinds = {str(k) for k in pd.concat([train["dataset"], test["dataset"]]).unique()}
    if len(kinds) > 1:
        raise ValueError(f"training and hold-out data are of different kinds ({sorted(kinds)}): "
                         "train and test on phantom data, or on real data, not a mix")
    out = pd.concat([train.assign(source="train", fold_patient=TRAINING_FOLD),
                     test.assign(source="test", fold_patient=HOLDOUT_FOLD)],
                    ignore_index=True)
    out["fold_patient"] = out["fold_patient"].astype(np.int64)
    check_no_patient_leakage(out, "fold_patient")
    return out

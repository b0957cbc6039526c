"""Splits: patient-grouped and stratified, seeded, recorded in the manifest."""
import numpy as np
import pandas as pd
import pytest

from brainlib.data import splits
from brainlib.data import scan_dataset


def synthetic_manifest(n_patients=40, seed=0) -> pd.DataFrame:
    """Patients of 20-40 slices; about half have a run of tumor slices."""
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(n_patients):
        n = int(rng.integers(20, 41))
        tumor = np.zeros(n, int)
        if rng.random() < 0.8:
            start = int(rng.integers(0, n // 2))
            tumor[start:start + int(rng.integers(5, n // 2))] = 1
        rows += [{"patient_id": f"TCGA_DU_P{p:03d}_20000101", "institution": "DU",
                  "slice_number": s + 1, "label": int(tumor[s])} for s in range(n)]
    return pd.DataFrame(rows)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_no_patient_is_on_both_sides(seed):
    manifest = splits.add_splits(synthetic_manifest(seed=seed), n_folds=8, seed=seed)
    for column in ("split_patient", "fold_patient"):
        assert manifest.groupby("patient_id")[column].nunique().max() == 1
    for fold in range(8):
        train, test = splits.train_test_rows(manifest, "patient", fold)
        assert not set(train["patient_id"]) & set(test["patient_id"])
        assert len(train) + len(test) == len(manifest)


def test_patient_split_is_stratified_and_near_70_30():
    manifest = splits.add_splits(synthetic_manifest(n_patients=60), seed=0)
    test_share = manifest["split_patient"].eq("test").mean()
    assert abs(test_share - 0.3) < 0.05
    fractions = manifest.groupby("split_patient")["label"].mean()
    assert abs(fractions["test"] - fractions["train"]) < 0.05
    fold_sizes = manifest["fold_patient"].value_counts()
    assert fold_sizes.max() / fold_sizes.min() < 1.5
    fold_tumor = manifest.groupby("fold_patient")["label"].mean()
    assert fold_tumor.max() - fold_tumor.min() < 0.15


def test_slice_split_mixes_patients_like_the_paper():
    manifest = splits.add_splits(synthetic_manifest(), seed=0)
    on_both_sides = manifest.groupby("patient_id")["split_slice"].nunique().gt(1).mean()
    assert on_both_sides > 0.9
    assert abs(manifest["split_slice"].eq("test").mean() - 0.3) < 0.01
    with pytest.raises(splits.LeakageError):
        splits.check_no_patient_leakage(manifest, "split_slice")


def test_same_seed_same_split_other_seed_other_split():
    base = synthetic_manifest()
    a, b = splits.add_splits(base, seed=5), splits.add_splits(base, seed=5)
    c = splits.add_splits(base, seed=6)
    assert a.equals(b)
    assert not a["fold_patient"].equals(c["fold_patient"])


def test_leakage_is_refused_in_code():
    manifest = splits.add_splits(synthetic_manifest(), seed=0)
    leaky = manifest.copy()
    leaky.loc[leaky.index[0], "fold_patient"] = (leaky.loc[leaky.index[0], "fold_patient"] + 1) % 8
    with pytest.raises(splits.LeakageError):
        splits.train_test_rows(leaky, "patient", int(leaky.loc[leaky.index[0], "fold_patient"]))


def test_bad_split_parameters_are_refused():
    manifest = synthetic_manifest(n_patients=5)
    with pytest.raises(ValueError, match="n_folds"):
        splits.add_splits(manifest, n_folds=8)
    with pytest.raises(ValueError, match="test_fraction"):
        splits.add_splits(manifest, n_folds=2, test_fraction=1.5)


def test_real_sample_grouped_split_leaks_no_patient(real_sample):
    manifest = splits.add_splits(scan_dataset(real_sample).manifest, n_folds=8, seed=0)
    assert len(manifest) == 647
    for fold in range(8):
        train, test = splits.train_test_rows(manifest, "patient", fold)
        assert not set(train["patient_id"]) & set(test["patient_id"])
        assert test["patient_id"].nunique() >= 2
    train, test = splits.train_test_rows(manifest, "patient")
    assert not set(train["patient_id"]) & set(test["patient_id"])

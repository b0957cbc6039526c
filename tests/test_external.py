"""Evaluation beyond cross-validation: institution folds, a hold-out set, and the tables of
chapter 05's "Does it travel?"."""
import numpy as np
import pandas as pd
import pytest
import scipy.stats as sps
from simulated import simulate_predictions

from brainlib.data import external, splits
from brainlib.config import params
from brainlib.chapters import runcard, travel_report
from brainlib import stats


def manifest(institutions=("CS", "DU", "FG", "HT"), patients_each=(3, 4, 1, 2), dataset="real",
             slices=5, prefix="P"):
    rows = []
    for code, n in zip(institutions, patients_each):
        for p in range(n):
            pid = f"TCGA_{code}_{prefix}{p:03d}_20000101"
            for s in range(1, slices + 1):
                rows.append({"dataset": dataset, "patient_id": pid, "institution": code,
                             "slice_number": s, "label": int(s % 2 == 0)})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------- institution folds

def test_institution_folds_hold_one_institution_each_and_no_shared_patient():
    folded = external.institution_folds(manifest())
    assert folded.groupby("fold_patient")["institution"].nunique().eq(1).all()
    assert folded.groupby("institution")["fold_patient"].nunique().eq(1).all()
    assert folded.groupby("patient_id")["fold_patient"].nunique().eq(1).all()
    assert external.institution_of_fold(folded) == {0: "CS", 1: "DU", 2: "FG", 3: "HT"}
    for fold in range(4):  # the runner's split of each fold: no patient, no institution shared
        train, test = splits.train_test_rows(folded, "patient", fold)
        assert not set(train["patient_id"]) & set(test["patient_id"])
        assert not set(train["institution"]) & set(test["institution"])


def test_institution_folds_refuse_one_institution_and_a_patient_in_two():
    with pytest.raises(ValueError, match="at least 2 institutions"):
        external.institution_folds(manifest(("CS",), (3,)))
    twice = manifest()
    twice.loc[0, "institution"] = "DU"
    with pytest.raises(ValueError, match="two institutions"):
        external.institution_folds(twice)


# ---------------------------------------------------------------------------- hold-out

def test_holdout_manifest_puts_the_test_patients_in_fold_zero():
    train, test = manifest(prefix="T"), manifest(("EZ",), (2,), prefix="H")
    both = external.holdout_manifest(train, test)
    assert set(both.loc[both["source"] == "test", "fold_patient"]) == {params.HOLDOUT_FOLD}
    assert set(both.loc[both["source"] == "train", "fold_patient"]) == {external.TRAINING_FOLD}
    fit, scored = splits.train_test_rows(both, "patient", params.HOLDOUT_FOLD)
    assert set(scored["patient_id"]) == set(test["patient_id"])
    assert set(fit["patient_id"]) == set(train["patient_id"])


def test_holdout_manifest_refuses_shared_patients_and_mixed_data():
    train = manifest(prefix="T")
    with pytest.raises(ValueError, match="shares 10 patient"):
        external.holdout_manifest(train, train)
    with pytest.raises(ValueError, match="different kinds"):
        external.holdout_manifest(train, manifest(dataset="phantom", prefix="H"))


def test_holdout_parameters_are_checked_and_train_only_the_test_fold():
    with pytest.raises(params.ParameterError, match="needs test_data_source"):
        params.resolve("default", {"evaluation": "holdout"})
    with pytest.raises(params.ParameterError, match="only with evaluation='holdout'"):
        params.resolve("default", {"test_data_source": "/data/new"})
    held = params.resolve("default", {"evaluation": "holdout", "test_data_source": "/data/new"})
    assert held.folds == [params.HOLDOUT_FOLD]
    assert params.resolve("default", {"models": "unet"}).all_model_names == ["unet"]  # train
    assert params.resolve("default", {"models": "vgg16,unet"}).model_names == ["vgg16"]


def test_the_study_needs_the_classifiers_its_chapters_compare(tmp_path):
    from brainlib import study

    for models in ("unet", "vgg16,unet"):
        with pytest.raises(params.ParameterError, match="compare two classifiers: models must"):
            study.run_study("default", {"models": models, "run_dir": str(tmp_path / "run")})
    assert not (tmp_path / "run").exists()  # refused before anything is written


def test_run_card_says_how_test_patients_were_kept_apart():
    folded = external.institution_folds(manifest())
    card = runcard.run_card(params.resolve("default", {"evaluation": "institution"}), folded)
    sentence = card.evaluation_sentence()
    assert sentence.startswith("Each test fold is one institution (4; patients: CS 3, DU 4, "
                               "FG 1, HT 2)")
    assert card.n_folds == 4 and sentence in card.can_test()
    both = external.holdout_manifest(manifest(prefix="T"), manifest(("EZ",), (2,), prefix="H"))
    held = runcard.run_card(params.resolve("default", {"evaluation": "holdout",
                                                       "test_data_source": "/data/new"}), both)
    assert "trains on all 10 patients" in held.evaluation_sentence()
    assert "tested once on the 2 patients of /data/new" in held.evaluation_sentence()
    assert held.n_folds == 1


# ---------------------------------------------------------------------------- the tables

def test_proportion_interval_is_the_patient_cluster_interval_with_t_for_few_patients():
    rows = pd.DataFrame({"patient_id": ["a"] * 4 + ["b"] * 2 + ["c"] * 3,
                         "y_true": [1, 1, 0, 0, 1, 0, 1, 1, 1],
                         "y_pred": [1, 0, 0, 0, 1, 1, 1, 1, 0]})
    estimate, low, high = stats.proportion_interval(rows)
    # by hand: correct per patient a 3/4, b 1/2, c 2/3 -> D = 6/9
    n, d = np.array([4, 2, 3.0]), np.array([3, 1, 2.0])
    D = d.sum() / n.sum()
    se = np.sqrt(3 / 2 * np.sum((d - D * n) ** 2) / n.sum() ** 2)
    z = sps.t(df=2).ppf(0.975)  # 3 patients: t with 2 degrees of freedom
    assert estimate == pytest.approx(6 / 9)
    assert (low, high) == pytest.approx((D - z * se, min(1.0, D + z * se)))
    assert stats.cluster_standard_error(n, d)[1] == pytest.approx(se)


@pytest.fixture(scope="module")
def by_institution():
    predictions = simulate_predictions(n_patients=24, n_slices=480, n_folds=4, seed=5)
    codes = {0: "CS", 1: "DU", 2: "FG", 3: "HT"}
    return predictions, codes


def test_institution_table_and_gap(by_institution):
    predictions, codes = by_institution
    dice = pd.DataFrame({"patient_id": predictions["patient_id"].unique(), "dice": 0.5})
    table = travel_report.institution_table(predictions.assign(model=predictions["model"]),
                                            codes, dice)
    models = sorted(predictions["model"].unique())
    assert len(table) == 4 * len(models) * 4  # institutions x models x metrics (no unet)
    assert set(table["institution"]) == set(codes.values())
    finite = table.dropna(subset=["ci_low"])
    assert ((finite["ci_low"] <= finite["estimate"]) & (finite["estimate"] <= finite["ci_high"])).all()
    shown = travel_report.display_table(table)
    assert shown.shape == (4 * len(models), 4)
    assert list(shown.index.names) == ["institution", "patients", "model"]
    # the gap against itself is zero; against a worse copy it is negative for accuracy
    same = travel_report.travel_gap(predictions, predictions)
    assert np.allclose(same["difference"], 0)
    worse = predictions.assign(y_pred=1 - predictions["y_pred"])
    gap = travel_report.travel_gap(predictions, worse)
    assert (gap.loc[gap["metric"] == "accuracy", "difference"] < 0).all()
    lines = travel_report.travel_sentences(table)
    assert lines[0].startswith("Patients per institution: CS ")

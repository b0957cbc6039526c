"""Tests of brainlib.measures.metrics: eqs. (30)-(35), ROC/AUC, and per fold / per patient tables."""

import numpy as np
import pandas as pd
import pytest

from brainlib.measures import metrics as me


def brute_force_auc(y_true, score):
    """P(positive score > negative score) + 1/2 P(tie), over all pairs: O(n^2)."""
    y_true, score = np.asarray(y_true), np.asarray(score)
    pos, neg = score[y_true == 1], score[y_true == 0]
    return np.mean((pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :]))


def small_table():
    """Three patients, two folds; P1 has tumor slices, P2 none, P3 one missed tumor slice."""
    return pd.DataFrame({
        "model": "m", "scheme": "patient", "control": "none",
        "fold": [0, 0, 0, 1, 1, 1, 1],
        "patient_id": ["P1", "P1", "P1", "P2", "P2", "P3", "P3"],
        "slice_number": [1, 2, 3, 1, 2, 1, 2],
        "y_true": [0, 1, 1, 0, 0, 0, 1],
        "p_tumor": [0.2, 0.9, 0.4, 0.1, 0.7, 0.3, 0.45],
        "y_pred": [0, 1, 0, 0, 1, 0, 0],
    })


def test_confusion_counts_and_equations_30_to_35():
    y_true = np.array([1] * 30 + [0] * 70)
    y_pred = np.array([1] * 24 + [0] * 6 + [1] * 7 + [0] * 63)
    counts = me.confusion_counts(y_true, y_pred)
    assert (counts.tp, counts.fn, counts.fp, counts.tn) == (24, 6, 7, 63)
    result = me.classification_metrics(y_true, y_pred)
    assert result.accuracy == pytest.approx((24 + 63) / 100)
    assert result.precision == pytest.approx(24 / 31)
    assert result.recall == pytest.approx(24 / 30)
    assert result.sensitivity == result.recall
    assert result.specificity == pytest.approx(63 / 70)
    harmonic = 2 * result.precision * result.recall / (result.precision + result.recall)
    assert result.f1 == pytest.approx(harmonic)
    assert not result.notes.get("precision")
    frame = result.to_frame()
    assert frame.loc["f1", "definition"].startswith("eq. (33)")
    assert "TP=24" in result.summary()


def test_known_accuracy_when_exactly_k_labels_are_flipped():
    rng = np.random.default_rng(1)
    y_true = rng.integers(0, 2, 500)
    y_pred = y_true.copy()
    flipped = rng.choice(500, size=37, replace=False)
    y_pred[flipped] = 1 - y_pred[flipped]
    assert me.classification_metrics(y_true, y_pred).accuracy == pytest.approx(1 - 37 / 500)


@pytest.mark.parametrize("y_true, y_pred, undefined", [
    ([0, 0, 0], [0, 1, 0], {"recall", "f1"}),                 # no actual positives
    ([1, 0, 1], [0, 0, 0], {"precision", "f1"}),              # no predicted positives
    ([1, 1, 1], [1, 0, 1], {"specificity"}),                  # no actual negatives
])
def test_edge_cases_are_nan_with_a_reason(y_true, y_pred, undefined):
    result = me.classification_metrics(y_true, y_pred)
    for name in me.METRIC_NAMES:
        assert np.isnan(getattr(result, name)) == (name in undefined), name
    assert set(result.notes) - {"auc"} == undefined
    for name in undefined:
        assert result.notes[name] == me.NAN_REASONS[name]
        assert "NaN" in result.summary()


def test_f1_is_zero_not_nan_when_defined_and_no_true_positive():
    result = me.classification_metrics([1, 0], [0, 1])
    assert result.precision == 0 and result.recall == 0
    assert result.f1 == 0  # defined: 2TP/(2TP+FP+FN) = 0, not NaN
    assert "f1" not in result.notes


def test_vectorised_counts_agree_with_scalar_metrics():
    rng = np.random.default_rng(2)
    cells = rng.integers(0, 6, size=(200, 4))
    vector = me.metrics_from_counts(*cells.T)
    for row, (tp, fp, fn, tn) in enumerate(cells):
        scalar = me.metrics_from_confusion(me.ConfusionCounts(tp, fp, fn, tn))
        for name in me.METRIC_NAMES:
            np.testing.assert_equal(vector[name][row], getattr(scalar, name))


def test_bad_labels_and_lengths_are_refused():
    with pytest.raises(ValueError, match="0/1"):
        me.confusion_counts([0, 2], [0, 1])
    with pytest.raises(ValueError, match="differ in length"):
        me.confusion_counts([0, 1, 1], [0, 1])


def test_auc_matches_pairwise_definition_with_ties():
    rng = np.random.default_rng(3)
    y_true = rng.integers(0, 2, 300)
    score = np.round(rng.random(300) * 0.6 + 0.4 * y_true, 1)  # coarse: many ties
    assert me.roc_auc(y_true, score) == pytest.approx(brute_force_auc(y_true, score))
    assert me.roc_auc(y_true, 1 - score) == pytest.approx(1 - me.roc_auc(y_true, score))


def test_auc_hanley_mcneil_1982_rating_example():
    # Hanley & McNeil (1982), Radiology 143:29-36, Table 1: 58 normal, 51 abnormal CT images
    # rated 1-5; the published area is 0.893.
    normal, abnormal = [33, 6, 6, 11, 2], [3, 2, 2, 11, 33]
    score = np.r_[np.repeat(np.arange(1, 6), normal), np.repeat(np.arange(1, 6), abnormal)]
    y_true = np.r_[np.zeros(58, int), np.ones(51, int)]
    assert round(me.roc_auc(y_true, score), 3) == 0.893


def test_roc_curve_is_monotone_and_its_area_is_the_auc():
    rng = np.random.default_rng(4)
    y_true = rng.integers(0, 2, 400)
    score = np.round(rng.normal(y_true, 1.0), 1)
    curve = me.roc_curve(y_true, score)
    assert (curve.fpr[0], curve.tpr[0]) == (0, 0) and (curve.fpr[-1], curve.tpr[-1]) == (1, 1)
    assert np.all(np.diff(curve.fpr) >= 0) and np.all(np.diff(curve.tpr) >= 0)
    trapezoid = np.sum(np.diff(curve.fpr) * (curve.tpr[1:] + curve.tpr[:-1]) / 2)
    assert trapezoid == pytest.approx(curve.auc)
    # each point is the rate at which slices with score >= threshold are called tumor
    for k in (5, 20):
        t = curve.thresholds[k]
        assert curve.tpr[k] == pytest.approx(np.mean(score[y_true == 1] >= t))
        assert curve.fpr[k] == pytest.approx(np.mean(score[y_true == 0] >= t))
    assert len(curve.to_frame()) == len(curve.fpr)


def test_auc_needs_both_classes():
    result = me.classification_metrics([1, 1, 1], [1, 1, 0], [0.9, 0.8, 0.2])
    assert np.isnan(result.auc)
    assert "both classes" in result.notes["auc"]


def test_patient_rule_any_slice_and_max_score():
    patients = me.patient_predictions(small_table()).set_index("patient_id")
    assert patients.loc["P1", "y_true"] == 1 and patients.loc["P1", "y_pred"] == 1
    assert patients.loc["P2", "y_true"] == 0 and patients.loc["P2", "y_pred"] == 1
    assert patients.loc["P3", "y_true"] == 1 and patients.loc["P3", "y_pred"] == 0
    assert patients.loc["P1", "p_tumor"] == 0.9 and patients.loc["P3", "n_slices"] == 2
    table = me.patient_metrics(small_table())
    assert table.loc[0, "n"] == 3 and table.loc[0, "tp"] == 1 and table.loc[0, "fp"] == 1


def test_fold_counts_add_up_to_pooled_counts():
    table = small_table()
    folds = me.fold_metrics(table)
    pooled = me.slice_metrics(table)
    assert list(folds["fold"]) == [0, 1]
    for cell in ("tp", "fp", "fn", "tn", "n"):
        assert folds[cell].sum() == pooled.loc[0, cell]
    assert pooled.loc[0, "auc"] == pytest.approx(brute_force_auc(table.y_true, table.p_tumor))


def test_undefined_fold_metric_is_explained_in_note():
    table = small_table()
    table.loc[table.fold == 1, "y_pred"] = 0  # fold 1: nothing predicted positive
    folds = me.fold_metrics(table).set_index("fold")
    assert np.isnan(folds.loc[1, "precision"])
    assert "no predicted positives" in folds.loc[1, "note"]


def test_check_predictions_names_what_is_wrong():
    table = small_table()
    with pytest.raises(ValueError, match="missing \\['p_tumor'\\]"):
        me.check_predictions(table.drop(columns="p_tumor"))
    bad = table.copy()
    bad.loc[4, "p_tumor"] = 1.5
    with pytest.raises(ValueError, match="patient 'P2', slice 2"):
        me.check_predictions(bad)


def test_a_patient_flagged_only_by_a_false_alarm_is_positive_but_not_found():
    from brainlib.measures.metrics import patient_detection, patient_predictions
    rows = pd.DataFrame({
        "model": "m", "patient_id": ["a", "a", "b", "b", "c", "c"],
        "y_true": [1, 0, 1, 0, 0, 0],
        "y_pred": [0, 1, 1, 0, 0, 1],  # a: false alarm only; b: its tumor slice found
        "p_tumor": [0.2, 0.9, 0.8, 0.1, 0.1, 0.7]})
    patients = patient_predictions(rows).set_index("patient_id")
    assert patients.loc["a", "y_pred"] == 1 and patients.loc["a", "found"] == 0
    assert patients.loc["b", "found"] == 1 and patients.loc["c", "found"] == 0
    table = patient_detection(rows).iloc[0]
    assert (table["tumor_patients"], table["any_slice_positive"], table["found"]) == (2, 2, 1)
    assert table["found rule sensitivity"] == 0.5 and table["any-slice rule sensitivity"] == 1.0

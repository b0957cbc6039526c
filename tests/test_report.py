"""Tests of the chapters' tables and sentences (brainlib.chapters.report and the *_report modules),
on small synthetic predictions tables and hand-built examples with known answers."""

import numpy as np
import pandas as pd
import pytest
from simulated import simulate_predictions

from brainlib.chapters import audit, primary
from brainlib.measures import metrics
from brainlib import stats
from brainlib.chapters import comparison_report as cr
from brainlib.chapters import evaluation_report as er
from brainlib.chapters import leakage_report as lr
from brainlib.chapters import report
from brainlib.chapters import segmentation_report as sr

MODELS = ("resnet50", "vgg16")
N_RESAMPLES = 300


# ---------------------------------------------------------------------------- tables to test on

def small_run(n_patients=18, n_slices=360, n_folds=3, separations=(("resnet50", 3.0),
                                                                     ("vgg16", 2.0)), seed=1):
    """Main predictions with the extra columns a real run carries (manifest, protocol)."""
    p = simulate_predictions(n_patients=n_patients, n_slices=n_slices, n_folds=n_folds,
                             separations=separations, seed=seed)
    return p.assign(tumor_pixels=np.where(p["y_true"] == 1, 50 + 7 * p["slice_number"], 0),
                    institution="CS", protocol="validated", threshold=0.5)


def with_experiment(main, scheme, control, shift, n_folds=3, seed=0):
    """Copies of the main rows as another experiment: slice folds by slice number, the logit
    moved towards the truth by ``shift`` (or pure noise for shuffled labels)."""
    rng = np.random.default_rng(seed)
    rows = main.copy()
    rows["scheme"], rows["control"] = scheme, control
    if scheme == "slice":
        rows["fold"] = rows["slice_number"] % n_folds
    if control == "shuffled_labels":
        rows["p_tumor"] = rng.uniform(0, 1, len(rows))
    else:
        logit = np.log(rows["p_tumor"] / (1 - rows["p_tumor"])) + shift * (2 * rows["y_true"] - 1)
        rows["p_tumor"] = 1 / (1 + np.exp(-logit))
    rows["y_pred"] = (rows["p_tumor"] >= 0.5).astype(np.int64)
    return rows


@pytest.fixture(scope="module")
def main():
    return small_run()


@pytest.fixture(scope="module")
def full(main):
    """A run with the leakage experiment: both splits, true and shuffled labels."""
    return pd.concat([main, with_experiment(main, "slice", "none", 2.0),
                      with_experiment(main, "patient", "shuffled_labels", 0, seed=1),
                      with_experiment(main, "slice", "shuffled_labels", 0, seed=2)],
                     ignore_index=True)


# ---------------------------------------------------------------------------- words

def test_interval_text_and_side():
    assert report.interval_text(0.7134, 0.65, 0.7704) == "0.713 [0.650, 0.770]"
    assert report.interval_text(0.01, -0.02, 0.04, signed=True) == "+0.010 [-0.020, +0.040]"
    names = ("resnet50", "vgg16")
    assert report.interval_side(0.01, 0.05, 0.0, names) == "lies above 0: favours resnet50"
    assert report.interval_side(-0.05, -0.01, 0.0, names) == "lies below 0: favours vgg16"
    side = report.interval_side(-0.02, 0.03, 0.0, names)
    assert side == "includes 0: no difference detected"
    assert report.interval_side(0.45, 0.62, 0.5, names=None) == \
        "includes 0.5: no difference from 0.5 detected"
    assert report.interval_side(0.55, 0.62, 0.5, names=None) == "lies above 0.5"
    assert report.interval_side(0.40, 0.48, 0.69444, None, "chance") == "lies below chance (0.694)"
    assert report.interval_side(0.45, 0.62, 0.5, None, "chance") == \
        "includes chance (0.5): no difference from chance detected"
    assert report.interval_side(np.nan, 0.1) == "is undefined"


# ---------------------------------------------------------------------------- chapter 05

def test_table_iv_patient_estimate_is_pooled_accuracy_and_other_rows_are_ignored(main, full):
    result = er.table_iv(full, *MODELS, n_resamples=N_RESAMPLES, seed=0)
    values = result.values.set_index(["model", "metric"])
    for model in MODELS:
        own = main[main["model"] == model]
        pooled = float((own["y_true"] == own["y_pred"]).mean())
        assert values.loc[(model, "accuracy"), "estimate"] == pytest.approx(pooled)
        assert values.loc[(model, "auc"), "estimate"] == pytest.approx(
            metrics.roc_auc(own["y_true"], own["p_tumor"]))
        text = result.table.loc[(model, "accuracy"), "patients resampled"]
        assert text.startswith(f"{pooled:.3f} [")
    assert values.loc[("resnet50", "accuracy"), "paper_percent"] == 99.8
    assert np.isnan(values.loc[("vgg16", "auc"), "paper_percent"])
    assert list(result.table.index.get_level_values("model")[:6]) == ["resnet50"] * 6
    # the patient bootstrap is the shared one, so it equals report.patient_intervals directly
    paired = stats.pair_predictions(main, *MODELS)
    shared = report.patient_intervals(paired, N_RESAMPLES, 0)
    row = shared[(shared["metric"] == "f1") & (shared["model"] == "vgg16")].iloc[0]
    assert values.loc[("vgg16", "f1"), "patients_low"] == row["ci_low"]
    assert result.width_ratio == pytest.approx(float(np.median(
        result.widths["patients"] / result.widths["slices"])))
    assert result.n_patients == main["patient_id"].nunique()


def test_patient_summary_on_a_hand_built_table():
    def rows(model, patient, y_true, y_pred):
        return pd.DataFrame({"model": model, "scheme": "patient", "control": "none", "fold": 0,
                             "patient_id": patient, "slice_number": range(len(y_true)),
                             "y_true": y_true, "y_pred": y_pred,
                             "p_tumor": np.where(np.array(y_pred) == 1, 0.9, 0.1)})
    table = pd.concat([
        rows("a", "P1", [1, 1, 0, 0], [1, 0, 0, 1]), rows("b", "P1", [1, 1, 0, 0], [0, 0, 0, 0]),
        rows("a", "P2", [0, 0], [0, 0]), rows("b", "P2", [0, 0], [1, 0])], ignore_index=True)
    result = er.patient_summary(table, ["a", "b"])
    assert result.missed_patients == {"a": [], "b": ["P1"]}  # P2 has no tumor to miss
    assert result.table.loc["P1", "b missed"] == 2
    assert result.table.loc["P1", "a false alarms"] == 1
    assert result.table.loc["P2", "tumor_slices"] == 0
    assert result.macro.loc["a", "pooled slice accuracy"] == pytest.approx(4 / 6)
    assert result.macro.loc["a", "mean of per-patient accuracy"] == pytest.approx((0.5 + 1) / 2)
    assert result.macro.loc["b", "worst patient"] == pytest.approx(0.5)
    assert any("b: patients with a tumor and not one tumor slice found: 1 ['P1']" in line
               for line in result.lines())


def test_leakage_on_a_run_without_the_experiment_says_so(main):
    table = lr.leakage_table(main, MODELS, N_RESAMPLES, seed=0)
    inflation = lr.leakage_inflation(main, MODELS, N_RESAMPLES, seed=0)
    for result in (table, inflation):
        assert result.available is False
        assert "leakage experiment was not run" in result.reason
        assert result.frame.empty
        assert result.reason in result.summary()
    lines = lr.leakage_sentences(table, inflation)
    assert any("not computed" in line and "not run" in line for line in lines)


def test_leakage_table_and_inflation_on_a_full_run(full, main):
    table = lr.leakage_table(full, MODELS, N_RESAMPLES, seed=0)
    assert table.available and not table.skipped
    assert len(table.frame) == 4 * 2 * 2  # split x labels x model x metric
    assert set(table.frame.loc[table.frame["metric"] == "auc", "chance"]) == {0.5}
    prevalence = main.drop_duplicates(["patient_id", "slice_number"])["y_true"].mean()
    assert table.majority_rate == pytest.approx(max(prevalence, 1 - prevalence))
    assert table.table.shape == (4, 4)
    inflation = lr.leakage_inflation(full, MODELS, N_RESAMPLES, seed=0)
    assert inflation.available
    n_slices = main["patient_id"].size // 2
    assert inflation.common_slices == {m: n_slices for m in MODELS}
    accuracy = inflation.frame[inflation.frame["metric"] == "accuracy"]
    assert (accuracy["slice_minus_patient"] > 0).all()  # the slice copies were made better
    lines = lr.leakage_sentences(table, inflation)
    assert any(line.startswith("resnet50: the slice split raised accuracy") for line in lines)
    assert lines[-1].endswith(".") and "control intervals lie above chance" in lines[-1]
    # prose names the metric as a reader writes it, never the table's lower-case key
    assert any(" AUC by " in line for line in lines) and any("labels: AUC " in line for line in lines)
    assert not any(" auc" in line for line in lines)


def test_leakage_intervals_carry_percentile_limits_beside_bca(full):
    table = lr.leakage_table(full, MODELS, N_RESAMPLES, seed=0)
    inflation = lr.leakage_inflation(full, MODELS, N_RESAMPLES, seed=0)
    for frame, estimate in ((table.frame, "estimate"), (inflation.frame, "slice_minus_patient")):
        assert frame[["percentile_low", "percentile_high"]].notna().all().all()
        assert (frame["percentile_low"] <= frame[estimate]).all()
        assert (frame[estimate] <= frame["percentile_high"]).all()
    # the percentile limits are those of report.patient_intervals(method="percentile")
    patient_true = full[(full["scheme"] == "patient") & (full["control"] == "none")]
    pct = report.patient_intervals(stats.pair_predictions(patient_true, *MODELS), N_RESAMPLES, 0,
                                   method="percentile").set_index(["metric", "model"])
    row = table.frame[(table.frame["split"] == "patient") & (table.frame["labels"] == "true")
                      & (table.frame["metric"] == "accuracy")].iloc[0]
    assert row["percentile_low"] == pct.loc[("accuracy", row["model"]), "ci_low"]
    assert "(percentile 95% interval)" in table.summary()
    cell = table.table.iloc[0, 0]
    assert cell.count("[") == 1 and cell.count("(") == 1


def test_leakage_sentences_say_when_the_interval_method_decides(full):
    table = lr.leakage_table(full, MODELS, N_RESAMPLES, seed=0)
    inflation = lr.leakage_inflation(full, MODELS, N_RESAMPLES, seed=0)
    frame = inflation.frame.copy()
    # BCa above 0, percentile made to include 0: the sentence must flag it
    frame.loc[0, ["ci_low", "ci_high", "percentile_low", "percentile_high"]] = [0.01, 0.2, -0.01,
                                                                               0.2]
    inflation.frame = frame
    lines = lr.leakage_sentences(table, inflation)
    assert "lies above 0" in lines[0] and "depends on the interval method: fragile" in lines[0]
    assert "fragile" not in lines[1] or _disagrees(frame.iloc[1])


def _disagrees(row) -> bool:
    side = lr._side
    return side(row.ci_low, row.ci_high, 0) != side(row.percentile_low, row.percentile_high, 0)


def test_inflation_uses_exactly_the_slices_both_splits_scored(main):
    # folds_to_run=0: fold 0 of the patient folds and fold 0 of the slice folds
    slice_split = with_experiment(main, "slice", "none", 2.0)
    partial = pd.concat([main[main["fold"] == 0], slice_split[slice_split["fold"] == 0]],
                        ignore_index=True)
    patient_keys = set(map(tuple, main.loc[(main["fold"] == 0) & (main["model"] == "vgg16"),
                                           ["patient_id", "slice_number"]].to_numpy()))
    slice_keys = set(map(tuple, slice_split.loc[(slice_split["fold"] == 0)
                                                & (slice_split["model"] == "vgg16"),
                                                ["patient_id", "slice_number"]].to_numpy()))
    expected = len(patient_keys & slice_keys)
    assert 0 < expected < len(patient_keys)
    result = lr.leakage_inflation(partial, MODELS, N_RESAMPLES, seed=0)
    assert result.available, result.reason
    assert result.common_slices == {m: expected for m in MODELS}
    assert set(result.frame["n_slices"]) == {expected}
    assert f"compared on the {expected} slices both splits scored" in result.summary()
    # the table does not fail either: each experiment is paired on its own slices
    assert lr.leakage_table(partial, MODELS, N_RESAMPLES, seed=0).available


def test_inflation_without_a_common_slice_says_so(main):
    slice_split = with_experiment(main, "slice", "none", 2.0)
    fold0_patients = set(main.loc[main["fold"] == 0, "patient_id"])
    disjoint = pd.concat([main[main["fold"] == 0],
                          slice_split[~slice_split["patient_id"].isin(fold0_patients)]],
                         ignore_index=True)
    result = lr.leakage_inflation(disjoint, MODELS, N_RESAMPLES, seed=0)
    assert result.available is False
    assert "no slice in common" in result.reason
    assert result.common_slices == {m: 0 for m in MODELS}


def test_a_table_that_mixes_protocols_is_refused(main):
    mixed = pd.concat([main, main.assign(protocol="paper")], ignore_index=True)
    with pytest.raises(ValueError, match="one protocol"):
        er.table_iv(mixed, *MODELS, n_resamples=N_RESAMPLES, seed=0)


# ---------------------------------------------------------------------------- chapter 06

def primary_of(result):
    """The primary endpoint on the comparison's paired table (chapter 06's order)."""
    return primary.primary_endpoint(result.paired, n_resamples=N_RESAMPLES, seed=0)


def test_secondary_disagreeing_with_the_primary_is_named_and_never_overrules_it(b_better):
    result = cr.compare_models(b_better, *MODELS, rope=0.01, n_resamples=N_RESAMPLES, seed=0,
                               slice_resamples=1000)
    decision = primary_of(result)
    # a primary that (artificially) includes 0 while the secondary intervals exclude it
    decision.wald_low, decision.wald_high, decision.interval_excludes_zero = -0.5, 0.5, False
    text = "\n".join(cr.conclusions(result, decision, audit.audit_paper(), "REAL"))
    assert "-0.500 to +0.500: it includes 0: no difference detected" in text
    assert "do not all agree with the primary one about 0. The primary decides" in text
    assert "contradicts the claim's direction" not in text
    assert "PHANTOM" not in text


def test_estimates_leaning_different_ways_are_each_named(b_better):
    """No "do not lean one way" beside a primary that leans: each estimate's side is said."""
    result = cr.compare_models(b_better, *MODELS, rope=0.01, n_resamples=N_RESAMPLES, seed=0,
                               slice_resamples=1000)
    decision = primary_of(result)
    assert result.delong.difference != 0
    decision.estimate = -result.delong.difference  # accuracy against the AUC's side
    text = "\n".join(cr.conclusions(result, decision, audit.audit_paper(), "REAL"))
    assert "do not all lean the same way" in text
    a_side, b_side = (MODELS[0], MODELS[1]) if decision.estimate > 0 else MODELS[::-1]
    assert f"accuracy difference {decision.estimate:+.3f} leans towards {a_side}" in text
    assert f"AUC difference {result.delong.difference:+.3f} leans towards {b_side}" in text


@pytest.fixture(scope="module")
def b_better():
    return small_run(separations=(("resnet50", 1.0), ("vgg16", 3.5)), seed=2)


def test_compare_models_with_one_fold_skips_the_fold_tests(main):
    one_fold = main.assign(fold=0)
    result = cr.compare_models(one_fold, *MODELS, rope=0.01, n_resamples=N_RESAMPLES, seed=0,
                               slice_resamples=1000)
    assert result.n_folds == 1 and result.fold_tests == {}
    assert set(result.fold_skipped) == set(cr.FOLD_METRICS)
    assert all("needs at least 2 folds" in why for why in result.fold_skipped.values())
    assert result.holm_folds is None
    assert list(result.holm.index.get_level_values("family").unique()) == \
        [cr.SLICE_FAMILY, cr.PATIENT_FAMILY]
    assert "fold-level correlated t-test" not in cr.priors_table(result).index
    lines = cr.conclusions(result, primary_of(result), audit.audit_paper(), "PHANTOM")
    assert any("one test set: nothing to test split by split" in line for line in lines)
    assert "not tested across folds" in result.summary()


def test_compare_models_fields_agree_with_the_stats_calls(main):
    result = cr.compare_models(main, *MODELS, rope=0.01, n_resamples=N_RESAMPLES, seed=0,
                               slice_resamples=1000)
    paired = stats.pair_predictions(main, *MODELS)
    assert result.mcnemar.pvalue == stats.mcnemar_test(paired).pvalue
    assert result.delong_clustered.pvalue == stats.delong_test(paired, "patient_id").pvalue
    assert set(result.fold_tests) == set(cr.FOLD_METRICS) and not result.fold_skipped
    assert len(result.holm) == 4 + 4 + 6
    # the patient-level family corrects the patient-level p-values, not the slice-level ones
    patients = result.holm.xs(cr.PATIENT_FAMILY, level="family").set_index("test")
    durkalski = stats.mcnemar_test(paired[paired["y_true"] == 1], "durkalski",
                                   cluster="patient_id")
    assert patients.loc["sensitivity", "pvalue"] == durkalski.pvalue
    assert patients.loc["auc", "pvalue"] == result.delong_clustered.pvalue
    assert patients.loc["accuracy", "pvalue"] == stats.mcnemar_test(
        paired, "durkalski", cluster="patient_id").pvalue
    assert result.accuracy_patients["estimate"] == pytest.approx(result.mcnemar.difference)
    assert result.counts.to_numpy().sum() == len(paired)
    assert set(result.beta_posteriors) == {f"{m} {k}" for m in MODELS
                                           for k in ("accuracy", "sensitivity", "specificity")}
    assert result.to_frame()["metric"].tolist().count("auc") == 4  # DeLong x2, BCa, percentile


def test_conclusions_say_which_way_the_estimates_lean(b_better):
    result = cr.compare_models(b_better, *MODELS, rope=0.01, n_resamples=N_RESAMPLES, seed=0,
                               slice_resamples=1000)
    assert result.mcnemar.difference < 0 and result.patient_posterior.p_a_better < 0.5
    lines = cr.conclusions(result, primary_of(result), audit.audit_paper(), "PHANTOM")
    assert lines[lines.index("") + 2].startswith("- Primary (declared before the results)")
    assert any("The estimates lean towards vgg16" in line for line in lines)
    assert any("which lies below 0: favours vgg16" in line for line in lines)
    assert any("contradicts the claim's direction" in line for line in lines)
    assert lines[-1].startswith("- These are PHANTOM numbers")


def test_conclusions_when_nothing_was_detected():
    same = small_run(separations=(("resnet50", 2.0), ("vgg16", 2.0)), n_patients=12,
                     n_slices=200, seed=4)
    result = cr.compare_models(same, *MODELS, rope=0.01, n_resamples=N_RESAMPLES, seed=0,
                               slice_resamples=1000)
    acc = result.accuracy_patients
    assert acc["ci_low"] < 0 < acc["ci_high"] and acc["ci_high"] - acc["ci_low"] > 0.011
    text = "\n".join(cr.conclusions(result, primary_of(result), audit.audit_paper(), "KAGGLE"))
    assert "includes 0: no difference detected" in text
    assert "never shows equivalence" in text
    assert "wider than the paper's claimed difference of +0.011 (1.1 points)" in text
    assert "can neither confirm nor refute" in text
    assert "no difference shown" not in text and "PHANTOM" not in text


# ---------------------------------------------------------------------------- computed once per run

def test_cached_frame_reads_back_without_recomputing(tmp_path, main):
    calls = []
    paired = stats.pair_predictions(main, *MODELS)

    def compute():
        calls.append(1)
        return report.patient_intervals(paired, N_RESAMPLES, 0)

    key = {"paired": report.frame_digest(paired), "n_resamples": N_RESAMPLES, "seed": 0}
    first = report.cached_frame(tmp_path, "intervals", key, compute)
    second = report.cached_frame(tmp_path, "intervals", dict(reversed(key.items())), compute)
    assert len(calls) == 1
    pd.testing.assert_frame_equal(first, second, check_exact=True)  # exact round trip
    assert len(list(tmp_path.glob("intervals-*.csv"))) == 1
    report.cached_frame(tmp_path, "intervals", {**key, "seed": 1}, compute)
    report.cached_frame(None, "intervals", key, compute)
    assert len(calls) == 3


def test_chapters_share_the_patient_bootstrap_through_the_cache(tmp_path, main, monkeypatch):
    er.table_iv(main, *MODELS, n_resamples=N_RESAMPLES, seed=0, analysis_dir=tmp_path)

    def fail(*args, **kwargs):
        raise AssertionError("the patient bootstrap was computed twice")
    monkeypatch.setattr(stats, "cluster_bootstrap_auc", fail)
    result = cr.compare_models(main, *MODELS, rope=0.01, n_resamples=N_RESAMPLES, seed=0,
                               slice_resamples=1000, analysis_dir=tmp_path)
    assert result.auc_patients["estimate"] == pytest.approx(result.delong.difference)


# ---------------------------------------------------------------------------- chapter 07

def test_missed_overlap_counts_a_hand_built_example():
    # 5 tumor slices and one tumor-free slice; P2's two tumor slices are missed by "c" only
    truth = pd.DataFrame({"patient_id": ["P1", "P1", "P1", "P2", "P2", "P1"],
                          "slice_number": [1, 2, 3, 1, 2, 4], "y_true": [1, 1, 1, 1, 1, 0],
                          "tumor_pixels": [10, 20, 300, 400, 500, 0]})
    found = {"a": [0, 0, 1, 1, 1, 0], "b": [0, 1, 1, 1, 1, 1], "c": [0, 0, 1, 0, 0, 0]}
    table = pd.concat([truth.assign(model=m, y_pred=v, p_tumor=np.array(v) * 0.8 + 0.1,
                                    fold=0, scheme="patient", control="none")
                       for m, v in found.items()], ignore_index=True)
    result = sr.missed_overlap(table, ["a", "b", "c"])
    counts = result.table
    assert counts["tumor_slices"].tolist() == [5, 5, 5]
    assert counts["missed"].tolist() == [2, 1, 4]
    assert counts.loc["a", "also missed by b"] == 1 and counts.loc["a", "also missed by c"] == 2
    assert counts.loc["c", "also missed by a"] == 2 and counts.loc["b", "also missed by c"] == 1
    assert counts["missed by every model"].tolist() == [1, 1, 1]
    assert counts.loc["a", "median tumor_pixels, missed"] == 15
    assert counts.loc["a", "median tumor_pixels, found"] == 400
    assert counts.loc["c", "median tumor_pixels, missed"] == np.median([10, 20, 400, 500])
    assert counts["patients with no tumor slice found"].tolist() == [0, 0, 1]
    assert result.combinations.to_dict() == {"c": 2, "a+b+c": 1, "a+c": 1, "none": 1}
    first_slices = result.slices[result.slices["slice_number"] == 1]
    assert first_slices["n_models_missed"].tolist() == [3, 1]


def test_paired_comparison_signs_and_rows(main):
    third = main[main["model"] == "vgg16"].assign(model="unet")
    third["p_tumor"] = np.clip(third["p_tumor"] * 0.5, 0, 1)  # a worse ranking of the same slices
    third["y_pred"] = (third["p_tumor"] >= 0.5).astype(np.int64)
    table = sr.paired_comparison(pd.concat([main, third]), "resnet50", ["vgg16", "unet"])
    assert table["comparison"].tolist() == ["resnet50 - vgg16", "resnet50 - unet"]
    assert (table["accuracy difference"] > 0).all()
    paired = stats.pair_predictions(main, "resnet50", "vgg16")
    assert table.loc[0, "DeLong p (patient-clustered)"] == \
        stats.delong_test(paired, cluster="patient_id").pvalue
    decision = primary.primary_endpoint(paired, n_resamples=N_RESAMPLES, seed=0)
    assert table.loc[0, "ci_low (patients)"] == pytest.approx(decision.wald_low)
    assert table.loc[0, "ci_high (patients)"] == pytest.approx(decision.wald_high)
    real = sr.worth_sentences(table, "REAL")
    phantom = sr.worth_sentences(table, "PHANTOM")
    assert real[:2] == phantom[:2] and real[0].startswith("resnet50 - vgg16: accuracy +")
    assert "PHANTOM" not in " ".join(real) and real[-1] == "These are REAL patients."
    assert phantom[-1].startswith("These are PHANTOM numbers")


def test_auc_by_fold_per_fold_and_pooled():
    scores = pd.DataFrame({"fold": [0, 0, 0, 0, 1, 1], "label": [0, 0, 1, 1, 0, 0],
                           "max_logit": [0.1, 0.3, 0.2, 0.9, 0.5, 0.6],
                           "max_logit_3d": [0.1, 0.2, 0.3, 0.9, 0.5, 0.6]})
    table = sr.auc_by_fold(scores)
    assert table.index.tolist() == [0, 1, "pooled"]
    assert table.loc[0, "AUC, own maximum"] == pytest.approx(0.75)
    assert table.loc[0, "AUC, with neighbours"] == pytest.approx(1.0)
    assert np.isnan(table.loc[1, "AUC, own maximum"])  # one class in fold 1
    assert table.loc["pooled", "slices"] == 6
    assert sr.auc_by_fold(pd.DataFrame()).empty


def test_head_intensity_spread_of_two_patients():
    manifest = pd.DataFrame({"patient_id": ["A", "A", "B"], "institution": ["X", "X", "Y"]})
    as_read = np.zeros((3, 4, 4, 3))
    as_read[:2, :2] = 200.0  # patient A twice as bright as B in every sequence
    as_read[2, :2] = 100.0
    rescaled = np.where(as_read > 0, 255.0, 0.0)
    result = sr.head_intensity_spread(as_read, rescaled, manifest)
    read = result.per_patient[result.per_patient["version"] == "as read"]
    assert read.loc[read["patient_id"] == "A", "relative to the mean"].tolist() == \
        pytest.approx([4 / 3] * 3)
    coefficient = np.std([200, 100], ddof=1) / 150
    assert result.spread.loc["as read"].tolist() == pytest.approx([coefficient] * 3)
    assert result.spread.loc["rescaled per volume"].tolist() == pytest.approx([0.0] * 3)
    assert list(result.spread.columns) == list(report.SEQUENCES)
    with pytest.raises(ValueError, match="one per manifest row"):
        sr.head_intensity_spread(as_read[:2], rescaled, manifest)


def test_protocol_table_puts_both_protocols_side_by_side(main):
    paper = main.assign(protocol="paper", threshold=0.5)
    validated = main.assign(protocol="validated", threshold=0.3)
    validated["y_pred"] = (validated["p_tumor"] > 0.3).astype(int)
    table = er.protocol_table(pd.concat([paper, validated], ignore_index=True))
    assert list(table.index) == [(m, p) for m in MODELS for p in ("paper", "validated")]
    for model in MODELS:
        rows = validated[validated["model"] == model]
        expected = metrics.confusion_counts(rows["y_true"], rows["y_pred"])
        assert table.loc[(model, "validated"), "sensitivity"] == pytest.approx(
            expected.tp / (expected.tp + expected.fn))
        assert table.loc[(model, "validated"), "median threshold"] == 0.3
        assert table.loc[(model, "paper"), "median threshold"] == 0.5


def test_seed_spread_gives_each_seed_then_mean_and_sd(main):
    runs = pd.concat([main.assign(training_seed=0),
                      main.assign(training_seed=1, y_pred=1 - main["y_pred"])], ignore_index=True)
    table = cr.seed_spread(runs, *MODELS)
    assert list(table.index) == [0, 1, "mean", "sd"]
    first = main[main["model"] == MODELS[0]]
    accuracy = (first["y_pred"] == first["y_true"]).mean()
    assert table.loc[0, f"{MODELS[0]} accuracy"] == pytest.approx(accuracy)
    assert table.loc[1, f"{MODELS[0]} accuracy"] == pytest.approx(1 - accuracy)
    assert table.loc["mean", f"{MODELS[0]} accuracy"] == pytest.approx(0.5)
    assert table.loc["sd", "accuracy difference"] >= 0


def test_seed_verdict_stands_only_if_every_seed_agrees(main, b_better):
    """Two seeds that agree (the same predictions twice) keep the verdict; a seed whose
    predictions are reversed makes the seeds disagree and the spread is named."""
    same = pd.concat([b_better.assign(training_seed=0), b_better.assign(training_seed=1)],
                     ignore_index=True)
    lines = cr.seed_verdict(same, *MODELS, n_resamples=N_RESAMPLES, seed=0)
    assert "SD over seeds 0.000" in lines[0]
    assert "the verdict holds across seeds" in lines[1]
    reversed_b = b_better.assign(model=b_better["model"].map({MODELS[0]: MODELS[1],
                                                               MODELS[1]: MODELS[0]}))
    mixed = pd.concat([b_better.assign(training_seed=0), reversed_b.assign(training_seed=1)],
                      ignore_index=True)
    lines = cr.seed_verdict(mixed, *MODELS, n_resamples=N_RESAMPLES, seed=0)
    assert "no verdict stands across seeds" in " ".join(lines)
    assert "not two architectures" in " ".join(lines)
    one = cr.seed_verdict(b_better.assign(training_seed=0), *MODELS, N_RESAMPLES, 0)
    assert one[0].startswith("One training seed only (0)")


def test_table_iv_shows_percentile_patient_intervals_beside_bca(main):
    table = er.table_iv(main, *MODELS, n_resamples=N_RESAMPLES, seed=0)
    assert "patients, percentile" in table.table.columns
    values = table.values.set_index(["model", "metric"])
    for key, row in values.iterrows():
        assert row["percentile_low"] <= row["estimate"] <= row["percentile_high"], key
    pct = report.patient_intervals(stats.pair_predictions(report.main_predictions(main), *MODELS),
                                   N_RESAMPLES, 0, method="percentile")
    accuracy = pct[(pct["metric"] == "accuracy") & (pct["model"] == MODELS[0])].iloc[0]
    assert values.loc[(MODELS[0], "accuracy"), "percentile_low"] == accuracy["ci_low"]
    assert set(pct["ci_method"]) == {"percentile"}


def test_the_closing_sentence_of_chapter_7_counts_the_looked_at_test_patients():
    table = pd.DataFrame([{"comparison": "unet - resnet50", "slices": 100, "patients": 10,
                           "accuracy difference": 0.1, "ci_low (patients)": 0.02,
                           "ci_high (patients)": 0.18, "AUC difference": 0.05,
                           "DeLong p (patient-clustered)": 0.01}])
    from brainlib.chapters import runcard

    groups = list(runcard.looked_at_groups().values())
    tested = sorted(groups[0][1])[:2] + sorted(groups[1][1])[:1] + ["TCGA_XX_0000_20000101"] * 4
    last = sr.worth_sentences(table, "REAL", (7, runcard.looked_at_counts(tested)))[-1]
    assert last.startswith("These are REAL patients. 3 of this run's 7 test patients had their "
                           "results looked at while a setting was chosen (2 as the 20-patient")
    assert f"; 1 {groups[1][0]}; see the choices-made page)" in last
    assert sr.worth_sentences(table, "REAL", (7, runcard.looked_at_counts(tested[3:])))[
        -1].endswith("None of this run's 7 test patients had their results looked at while a "
                     "setting was chosen.")
    assert "PHANTOM numbers" in sr.worth_sentences(table, "PHANTOM", (7, ()))[-1]


def test_a_holdout_names_both_folders_in_the_closing_summary():
    from brainlib import study

    rows = pd.DataFrame({"patient_id": ["a", "a", "b", "c"], "label": [1, 0, 0, 1],
                         "source": ["train", "train", "train", "test"],
                         "image_path": ["/d/train/kaggle_3m/a/a_1.tif", "/d/train/kaggle_3m/a/a_2.tif",
                                        "/d/train/kaggle_3m/b/b_1.tif", "/d/test/kaggle_3m/c/c_1.tif"]})
    text = study.data_in_words(rows)
    assert text == ("train /d/train/kaggle_3m (2 patients), test /d/test/kaggle_3m (1 patient); "
                    "in all 3 patients, 4 slices, 2 with tumor")
    assert study.data_in_words(rows.drop(columns="source")) == (
        "/d/train/kaggle_3m (3 patients, 4 slices, 2 with tumor)")


# ---------------------------------------------------------------------------- chapter 06's calls

def test_the_chapters_bootstrap_calls_give_the_comparisons_intervals(main):
    """Chapter 06 shows bl.stats.bootstrap_metrics; its table must be the one compare_models
    keeps for the conclusions (same resamples, same seed)."""
    result = cr.compare_models(main, *MODELS, rope=0.01, n_resamples=N_RESAMPLES, seed=3,
                               slice_resamples=1000)
    paired = result.paired
    by_slice = stats.bootstrap_metrics(paired, n_resamples=1000, seed=3).to_frame()
    by_patient = stats.bootstrap_metrics(paired, cluster="patient_id",
                                         n_resamples=N_RESAMPLES, seed=3).to_frame()
    table = cr.intervals_table(by_slice, by_patient)
    kept = result.intervals.loc[table.index, table.columns]
    pd.testing.assert_frame_equal(table, kept)
    assert table.index.get_level_values("model").unique().tolist() == [*MODELS,
                                                                        "resnet50 - vgg16"]
    assert "auc" not in table.index.get_level_values("metric")  # only in the comparison's
    assert "percentile_low" in result.intervals


def test_the_chapters_posterior_table_is_the_comparisons(main):
    result = cr.compare_models(main, *MODELS, rope=0.01, n_resamples=N_RESAMPLES, seed=0,
                               slice_resamples=1000)
    shown = stats.posterior_table(report.main_predictions(main), prior=stats.DEFAULT_PRIOR)
    pd.testing.assert_frame_equal(shown, result.posteriors)


def test_fold_section_and_holm_sentence(main):
    result = cr.compare_models(main, *MODELS, rope=0.01, n_resamples=N_RESAMPLES, seed=0,
                               slice_resamples=1000)
    lines, tables, line = cr.fold_section(result, "patient_cv")
    assert lines[0].startswith("6 metrics tested across 3 folds") and len(tables) == 2
    accuracy = result.fold_tests["accuracy"]
    assert f"p = {accuracy.corrected_ttest.pvalue:.3g}" in line
    one_fold = main.assign(fold=0)
    single = cr.compare_models(one_fold, *MODELS, rope=0.01, n_resamples=N_RESAMPLES, seed=0,
                               slice_resamples=1000)
    lines, tables, line = cr.fold_section(single, "holdout")
    assert tables == [] and line == "" and "evaluation=holdout" in lines[0]
    sentence = cr.holm_sentence(result)
    rejected = result.rejected
    assert sentence.startswith("After Holm's correction, ")
    assert f"{rejected.get(cr.SLICE_FAMILY, 0)} of 4 slice-level tests" in sentence
    assert f"{rejected.get(cr.FOLD_FAMILY, 0)} of 6 fold-level tests" in sentence
    assert "fold-level" not in cr.holm_sentence(single)


def test_audit_values_are_the_tables_numbers():
    found = audit.audit_paper()
    allowed = found.mcnemar[found.matching_orientation]
    values = allowed.values(prefix="paper")
    frame = allowed.to_frame()
    assert values["paper_p_exact_max"] == frame["exact"].max()
    assert values["paper_p_chi2_min"] == frame["chi2"].min()
    assert values["paper_both_wrong_min"] == frame["both_wrong"].min()
    assert values["paper_ci_high"] == frame["ci_high"].max()
    assert len([k for k in values if k.startswith("paper_p_")]) == 2 * len(stats.MCNEMAR_METHODS)
    rounding = found.rounding_values()
    scores = found.rounding.set_index("orientation").loc[found.matching_orientation]
    assert rounding["table_iv_entries"] == scores["entries"]
    assert 0 <= rounding["f1_from_counts"] <= rounding["f1_models"]


def test_range_text():
    assert report.range_text([3, 7, 5], ".0f") == "3 to 7"
    assert report.range_text([0.5, 0.5], ".2f") == "0.50"
    assert report.range_text([np.nan], ".2f") == "-"


def test_headline_values_are_the_patient_intervals(main, full):
    table = er.table_iv(full, *MODELS, n_resamples=N_RESAMPLES, seed=0)
    values = table.headline_values()
    assert set(values) == {"a_accuracy", "b_accuracy", "a_auc", "b_auc"}
    row = table.values.set_index(["model", "metric"]).loc[("vgg16", "accuracy")]
    assert values["b_accuracy"] == report.interval_text(row["estimate"], row["patients_low"],
                                                        row["patients_high"])


def test_p_values_below_the_shown_digits_read_as_a_bound_not_zero():
    table = pd.DataFrame({"comparison": ["a", "b", "c"], "accuracy difference": [0.1, 0.0, 0.2],
                          "McNemar p (exact)": [0.0004, 0.4612, np.nan],
                          "DeLong p (patient-clustered)": [2.2e-9, 0.999, 0.05],
                          "pvalue": [1e-12, 0.001, 1.0]})
    shown = report.p_values_shown(table)
    assert shown["McNemar p (exact)"].tolist() == ["< 0.001", "0.461", "—"]
    assert shown["DeLong p (patient-clustered)"].tolist() == ["< 0.001", "0.999", "0.050"]
    assert shown["pvalue"].tolist() == ["< 0.001", "0.001", "1.000"]
    assert shown["accuracy difference"].tolist() == [0.1, 0.0, 0.2]  # not a p column
    assert report.p_values_shown(table, digits=4)["McNemar p (exact)"][0] == "0.0004"
    assert not report.is_p_column("p_tumor") and not report.is_p_column("patients")


@pytest.mark.parametrize("tumor_free, n, expected", [
    (0, 15, "None of the 15 test patients is tumor-free, so the patient rule's specificity "
            "and AUC cannot be computed here"),
    (1, 7, "1 of the 7 test patients is tumor-free: the patient rule's specificity and AUC "
           "rest on that one negative, so read them as anecdotes"),
    (3, 20, "3 of the 20 test patients are tumor-free: the patient rule's specificity and "
            "AUC rest on those 3 negatives"),
    (12, 110, "12 of the 110 test patients are tumor-free, the negatives the patient rule's"),
])
def test_the_tumor_free_sentence_follows_the_count(tumor_free, n, expected):
    from brainlib.chapters import evaluation_report

    assert evaluation_report.tumor_free_sentence(tumor_free, n).startswith(expected)

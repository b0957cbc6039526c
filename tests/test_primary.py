"""Tests of the primary endpoint, its power and the per-patient analysis (brainlib.chapters.primary),
on a hand-built table with known answers and on small simulated predictions tables."""

import math
import re

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from simulated import simulate_predictions

from brainlib.chapters import primary
from brainlib import stats

N_RESAMPLES = 400


def paired_run(n_patients, slices_per_patient=20, separations=(("resnet50", 3.0),
                                                               ("vgg16", 2.0)), seed=1):
    p = simulate_predictions(n_patients=n_patients, n_slices=n_patients * slices_per_patient,
                             n_folds=4, separations=separations, seed=seed)
    return stats.pair_predictions(p, "resnet50", "vgg16")


def hand_table():
    """Three patients, every slice a tumor slice, y_pred = whether the model got it right.

    P1: 4 slices, a right on 3, b on 1 -> d = +2;  P2: 2 slices, both right on 2 -> d = 0;
    P3: 3 slices, a right on 2, b on 3 -> d = -1.  N = 9, D = 1/9.
    """
    correct = {"P1": ([1, 1, 1, 0], [1, 0, 0, 0]), "P2": ([1, 1], [1, 1]),
               "P3": ([0, 1, 1], [1, 1, 1])}
    rows = []
    for patient, (right_a, right_b) in correct.items():
        for model, right in (("resnet50", right_a), ("vgg16", right_b)):
            for slice_number, r in enumerate(right, start=1):
                rows.append({"model": model, "scheme": "patient", "control": "none", "fold": 0,
                             "patient_id": patient, "slice_number": slice_number, "y_true": 1,
                             "p_tumor": 0.9 if r else 0.1, "y_pred": r})
    return stats.pair_predictions(pd.DataFrame(rows), "resnet50", "vgg16")


def identical_models_table():
    """Both models give the same prediction on every slice."""
    p = simulate_predictions(n_patients=12, n_slices=240, n_folds=3, seed=3)
    a = p[p["model"] == "resnet50"]
    return stats.pair_predictions(pd.concat([a, a.assign(model="vgg16")], ignore_index=True),
                                  "resnet50", "vgg16")


# ---------------------------------------------------------------------------- cluster SE and MDD

def test_cluster_se_matches_hand_computation():
    result = primary.primary_endpoint(hand_table(), n_resamples=N_RESAMPLES, seed=0)
    estimate = 1 / 9
    residuals = [2 - 4 * estimate, 0 - 2 * estimate, -1 - 3 * estimate]   # d_i - D n_i
    se = math.sqrt(3 / 2 * sum(r * r for r in residuals) / 9**2)           # m/(m-1) ... / N^2
    assert result.estimate == pytest.approx(estimate, abs=1e-12)
    assert result.se == pytest.approx(se, rel=1e-12)
    assert se == pytest.approx(math.sqrt(516) / 81, rel=1e-12)            # the same by hand
    assert (result.n_patients, result.n_slices) == (3, 9)
    assert result.accuracy_a == pytest.approx(7 / 9) and result.accuracy_b == pytest.approx(6 / 9)
    # 3 patients: t with 2 degrees of freedom, not the normal
    t975, t80 = 4.302652729911275, 1.0606601717798212
    assert (result.wald_low, result.wald_high) == pytest.approx((estimate - t975 * se,
                                                                 estimate + t975 * se), rel=1e-9)
    assert result.mdd == pytest.approx((t975 + t80) * se, rel=1e-9)
    assert result.reference == "t with 2 degrees of freedom"
    assert result.pvalue == pytest.approx(2 * sps.t(2).sf(estimate / se), rel=1e-9)


def test_t_below_the_small_sample_threshold_and_the_normal_from_it():
    k = stats.SMALL_SAMPLE_PATIENTS
    below = primary.primary_endpoint(paired_run(k - 1), n_resamples=N_RESAMPLES, seed=0)
    at = primary.primary_endpoint(paired_run(k), n_resamples=N_RESAMPLES, seed=0)
    q_below = (below.wald_high - below.wald_low) / (2 * below.se)
    q_at = (at.wald_high - at.wald_low) / (2 * at.se)
    assert q_below == pytest.approx(sps.t(k - 2).ppf(0.975), rel=1e-9)
    assert q_at == pytest.approx(1.959963984540054, rel=1e-9)
    assert below.small_sample and not at.small_sample
    small = " ".join(below.sentences())
    assert f"With {k - 1} patients" in small and f"t with {k - 2} degrees of freedom" in small
    assert "cannot go below" in small
    assert "cannot go below" not in " ".join(at.sentences())
    assert below.to_frame().index[0] == "patient-cluster SE, t(K-1)"


# ---------------------------------------------------------------------------- exact sign flips

def test_sign_flip_test_by_hand():
    """d = (3, 1, 2): the 8 flips give sums 6, 4, 2, 0, 0, -2, -4, -6, each 1/8; the observed
    6 is matched in size by 6 and -6 only: p = 2/8."""
    result = stats.sign_flip_test([3, 1, 2], [4, 4, 4])
    assert result.pvalue == pytest.approx(0.25, abs=1e-15)
    assert result.statistic == pytest.approx(6 / 12)
    assert (result.n_patients, result.n_informative, result.smallest_pvalue) == (3, 3, 0.25)
    # |observed| = 2 is reached by 6, 4, 2, -2, -4, -6: p = 6/8; zeros change nothing
    assert stats.sign_flip_test([3, -1, 0], [4, 4, 4]).pvalue == pytest.approx(1.0)
    assert stats.sign_flip_test([3, 1, -2, 0], [4, 4, 4, 4]).pvalue == pytest.approx(6 / 8)
    assert stats.sign_flip_test([3, 1, -2, 0], [4, 4, 4, 4]).smallest_pvalue == 0.25


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sign_flip_test_matches_scipy_permutation_test(seed):
    rng = np.random.default_rng(seed)
    d = rng.integers(-6, 9, size=9)
    n = rng.integers(8, 20, size=9)
    ours = stats.sign_flip_test(d, n)
    theirs = sps.permutation_test((d,), lambda x, axis=-1: x.sum(axis=axis) / n.sum(),
                                  permutation_type="samples", n_resamples=np.inf,
                                  vectorized=True, alternative="two-sided")
    assert ours.statistic == pytest.approx(theirs.statistic)
    assert ours.pvalue == pytest.approx(theirs.pvalue, rel=1e-12)


def test_sign_flip_test_works_for_many_patients_and_refuses_fractions():
    d = np.r_[np.full(60, 1), np.full(50, -1)]
    result = stats.sign_flip_test(d, np.full(110, 10))
    # the sum of 110 random signs has |sum| >= 10 with this exact binomial probability
    exact = 2 * sps.binom(110, 0.5).sf(59)
    assert result.pvalue == pytest.approx(exact, rel=1e-9)
    with pytest.raises(ValueError, match="integer differences"):
        stats.sign_flip_test([0.5, 1], [2, 2])


def test_primary_endpoint_carries_the_sign_flip_test():
    paired = paired_run(8)
    result = primary.primary_endpoint(paired, n_resamples=N_RESAMPLES, seed=0)
    sums = paired.groupby("patient_id")[["correct_a", "correct_b"]].sum()
    direct = stats.sign_flip_test((sums["correct_a"] - sums["correct_b"]).to_numpy(),
                                    paired.groupby("patient_id").size().to_numpy())
    assert result.sign_flip_pvalue == pytest.approx(direct.pvalue)
    assert f"exact sign-flip test over the 8 patients: p = {direct.pvalue:.3g}" in \
        " ".join(result.sentences())


def test_minimum_detectable_difference_formula():
    assert stats.minimum_detectable_difference(0.01) == pytest.approx(0.028016, abs=1e-6)
    assert stats.minimum_detectable_difference(0.01, alpha=0.01, power=0.9) == pytest.approx(
        (2.5758293 + 1.2815516) * 0.01, rel=1e-6)
    assert math.isnan(stats.minimum_detectable_difference(0.0))


def test_mdd_shrinks_as_patients_grow():
    few = primary.primary_endpoint(paired_run(20), n_resamples=N_RESAMPLES, seed=0)
    many = primary.primary_endpoint(paired_run(200), n_resamples=N_RESAMPLES, seed=0)
    assert (few.n_patients, many.n_patients) == (20, 200)
    # ten times the patients: about sqrt(10) ~ 3.2 times smaller
    assert many.mdd < 0.5 * few.mdd
    assert many.se < few.se


def test_paper_difference_decides_what_the_run_can_detect():
    paired = paired_run(20)
    small = primary.primary_endpoint(paired, n_resamples=N_RESAMPLES, seed=0)
    large = primary.primary_endpoint(paired, n_resamples=N_RESAMPLES, seed=0,
                                     paper_difference=0.5)
    assert small.mdd > 0.011 and not small.can_detect_paper_difference
    assert large.mdd <= 0.5 and large.can_detect_paper_difference
    assert any("1.1-point difference is smaller than that: had it been the true difference, "
               "this run would most likely not have detected it" in s for s in small.sentences())
    assert any("50-point difference is larger than that: a true difference of that size would "
               "most likely have been detected" in s for s in large.sentences())


def test_claim_sentence_places_the_claim_against_the_decision_interval():
    result = primary.primary_endpoint(paired_run(20), n_resamples=N_RESAMPLES, seed=0)
    inside = (result.wald_low + result.wald_high) / 2
    for claim, words in ((inside, "includes the paper's claimed"),
                         (result.wald_high + 0.01, "lies below the paper's claimed"),
                         (result.wald_low - 0.01, "lies above the paper's claimed")):
        result.paper_difference = claim
        assert words in result.claim_sentence()
        assert result.claim_sentence() in result.sentences()


# ---------------------------------------------------------------------------- verdicts in words

def test_identical_models_no_difference_detected():
    result = primary.primary_endpoint(
        paired_run(200, separations=(("resnet50", 2.0), ("vgg16", 2.0))),
        n_resamples=N_RESAMPLES, seed=0)
    assert result.wald_low <= 0 <= result.wald_high
    assert result.percentile_low <= 0 <= result.percentile_high
    assert not result.interval_excludes_zero
    text = " ".join(result.sentences())
    assert text.startswith("Primary question (declared before the results):")
    assert "No difference was detected" in text
    assert "not evidence that the models are equal" in text
    # "no difference" only ever as "no difference was detected"
    assert not re.search(r"no difference(?! was detected)", text, flags=re.IGNORECASE)
    assert "favours" not in text


@pytest.mark.parametrize("separations, side, favoured", [
    ((("resnet50", 4.0), ("vgg16", 0.5)), "above", "resnet50"),
    ((("resnet50", 0.5), ("vgg16", 4.0)), "below", "vgg16"),
])
def test_clearly_better_model_is_favoured(separations, side, favoured):
    result = primary.primary_endpoint(paired_run(40, separations=separations),
                                      n_resamples=N_RESAMPLES, seed=0)
    assert result.interval_excludes_zero
    if side == "above":
        assert result.wald_low > 0 and result.percentile_low > 0
    else:
        assert result.wald_high < 0 and result.percentile_high < 0
    assert result.bootstrap_agrees
    text = " ".join(result.sentences())
    assert f"interval lies {side} zero: favours {favoured}" in text
    assert "No difference was detected" not in text


def test_identical_predictions_have_zero_se_and_no_mdd():
    result = primary.primary_endpoint(identical_models_table(), n_resamples=N_RESAMPLES, seed=0)
    assert result.estimate == 0 and result.se == 0
    assert math.isnan(result.mdd) and not result.can_detect_paper_difference
    assert not result.interval_excludes_zero
    assert math.isnan(result.bca_low)             # every resample the same: BCa degenerate
    assert any("patient-cluster SE is 0" in s for s in result.sentences())


# ---------------------------------------------------------------------------- bootstrap intervals

def test_percentile_and_bca_both_present_and_contain_estimate():
    result = primary.primary_endpoint(paired_run(40), n_resamples=1000, seed=0)
    frame = result.to_frame()
    assert list(frame.index) == [result.decision_label(), "patient bootstrap, percentile",
                                 "patient bootstrap, BCa"]
    for low, high in [(result.percentile_low, result.percentile_high),
                      (result.bca_low, result.bca_high)]:
        assert np.isfinite(low) and np.isfinite(high)
        assert low < result.estimate < high
    assert (result.percentile_low, result.percentile_high) != (result.bca_low, result.bca_high)
    assert result.distribution.shape == (1000,)
    # the bootstrap SE of the patient resamples agrees with the cluster SE (same target)
    assert result.bootstrap_se == pytest.approx(result.se, rel=0.25)


def test_bootstrap_is_seeded():
    paired = paired_run(20)
    first = primary.primary_endpoint(paired, n_resamples=N_RESAMPLES, seed=7)
    again = primary.primary_endpoint(paired, n_resamples=N_RESAMPLES, seed=7)
    other = primary.primary_endpoint(paired, n_resamples=N_RESAMPLES, seed=8)
    assert (first.percentile_low, first.bca_high) == (again.percentile_low, again.bca_high)
    assert not np.array_equal(first.distribution, other.distribution)


# ---------------------------------------------------------------------------- per patient

def test_per_patient_tests_match_scipy():
    paired = paired_run(30, slices_per_patient=15)
    result = primary.per_patient_differences(paired)
    # the per-patient differences computed independently of the module
    by_patient = paired.assign(d=paired["correct_a"] - paired["correct_b"]).groupby("patient_id")
    difference = by_patient["d"].mean().to_numpy()
    np.testing.assert_array_equal(result.to_frame()["difference"].to_numpy(), difference)
    n_a, n_b = int((difference > 0).sum()), int((difference < 0).sum())
    assert (result.n_a_better, result.n_b_better, result.n_tied) == (n_a, n_b, 30 - n_a - n_b)
    assert n_a > 0 and n_b > 0 and result.n_tied > 0          # a case with all three kinds
    expected = sps.wilcoxon(difference, zero_method="wilcox")
    assert result.wilcoxon_pvalue == pytest.approx(expected.pvalue, rel=1e-12)
    assert result.wilcoxon_statistic == pytest.approx(expected.statistic, rel=1e-12)
    assert result.sign_pvalue == pytest.approx(sps.binomtest(n_a, n_a + n_b, 0.5).pvalue,
                                               rel=1e-12)
    assert result.mean_difference == pytest.approx(difference.mean())
    assert result.median_difference == pytest.approx(np.median(difference))
    assert "sign test" in result.summary() and "Wilcoxon" in result.summary()


def test_per_patient_table_on_hand_table():
    result = primary.per_patient_differences(hand_table())
    frame = result.to_frame().set_index("patient_id")
    assert frame.loc["P1", "n_slices"] == 4
    assert frame["difference"].to_dict() == pytest.approx({"P1": 0.5, "P2": 0.0, "P3": -1 / 3})
    assert (result.n_a_better, result.n_b_better, result.n_tied) == (1, 1, 1)
    assert result.sign_pvalue == pytest.approx(1.0)


def test_per_patient_all_tied_gives_no_test():
    result = primary.per_patient_differences(identical_models_table())
    assert result.n_tied == 12 and result.n_a_better == result.n_b_better == 0
    assert math.isnan(result.sign_pvalue) and math.isnan(result.wilcoxon_pvalue)


# ---------------------------------------------------------------------------- refusals

def test_one_patient_is_refused():
    paired = hand_table()
    one = paired[paired["patient_id"] == "P1"]
    with pytest.raises(ValueError, match=r"expected at least 2 patients, found 1 \('P1'\)"):
        primary.primary_endpoint(one, n_resamples=N_RESAMPLES, seed=0)
    with pytest.raises(ValueError, match="at least 2 patients"):
        primary.per_patient_differences(one)


def test_missing_columns_are_named():
    with pytest.raises(ValueError, match=r"missing \['correct_b'\]"):
        primary.primary_endpoint(hand_table().drop(columns="correct_b"), N_RESAMPLES, 0)


# ---------------------------------------------------------------------------- secondary family

def test_secondary_family_is_holm_and_labelled():
    pvalues = {"McNemar exact": 0.01, "DeLong clustered": 0.04, "fold t-test": 0.30}
    result = primary.secondary_family(pvalues)
    frame = result.to_frame()
    holm = stats.holm_correction(list(pvalues.values()), names=list(pvalues)).to_frame()
    np.testing.assert_allclose(frame["adjusted"], holm["adjusted"])
    np.testing.assert_allclose(frame["adjusted"], [0.03, 0.08, 0.30])
    assert list(frame["test"]) == list(pvalues)
    assert set(frame["family"]) == {"secondary"}
    assert "Secondary" in result.summary()
    with pytest.raises(ValueError, match="found none"):
        primary.secondary_family({})


def test_a_run_that_cannot_test_the_claim_does_not_measure_it():
    """Random bases or phantom data: the paper's claimed difference is named but not set
    against the interval ("consistent with", "lies below" are not said)."""
    paired = paired_run(20)
    testable = primary.primary_endpoint(paired, n_resamples=N_RESAMPLES, seed=0)
    untestable = primary.primary_endpoint(paired, n_resamples=N_RESAMPLES, seed=0,
                                          claim_testable=False)
    assert "paper's claimed" in testable.claim_sentence()
    assert "is not measured against this interval" in untestable.claim_sentence()
    text = " ".join(untestable.sentences())
    assert "consistent with" not in text and "lies below the paper" not in text

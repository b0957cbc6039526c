"""Tests of brainlib.stats against statsmodels, scipy, textbook examples and direct computation."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint

from brainlib.measures import metrics as me
from brainlib import stats as st
from brainlib.stats import bootstrap, roc
from simulated import simulate_predictions

MODELS = ("resnet50", "vgg16")


# ---------------------------------------------------------------------------- helpers

def predictions_from_arrays(y_true, pred_a, pred_b, p_a=None, p_b=None, patient=None):
    n = len(y_true)
    patient = np.arange(n) // 10 if patient is None else np.asarray(patient)
    p_a = np.where(np.asarray(pred_a) == 1, 0.8, 0.2) if p_a is None else p_a
    p_b = np.where(np.asarray(pred_b) == 1, 0.8, 0.2) if p_b is None else p_b
    common = {"scheme": "patient", "control": "none", "fold": 0,
              "patient_id": [f"P{p:03d}" for p in patient], "slice_number": np.arange(n),
              "y_true": y_true}
    return pd.concat([pd.DataFrame({"model": "resnet50", **common, "p_tumor": p_a, "y_pred": pred_a}),
                      pd.DataFrame({"model": "vgg16", **common, "p_tumor": p_b, "y_pred": pred_b})],
                     ignore_index=True)


def paired_from_arrays(*args, **kwargs):
    return st.pair_predictions(predictions_from_arrays(*args, **kwargs), *MODELS)


def paired_with_cells(n11, n10, n01, n00, positives_first=True, seed=0):
    """A paired table with given counts of (both right, only a right, only b right, both wrong)."""
    rng = np.random.default_rng(seed)
    correct_a = np.r_[np.ones(n11 + n10, int), np.zeros(n01 + n00, int)]
    correct_b = np.r_[np.ones(n11, int), np.zeros(n10, int), np.ones(n01, int), np.zeros(n00, int)]
    y_true = rng.integers(0, 2, correct_a.size)
    pred_a = np.where(correct_a == 1, y_true, 1 - y_true)
    pred_b = np.where(correct_b == 1, y_true, 1 - y_true)
    return paired_from_arrays(y_true, pred_a, pred_b)


@pytest.fixture(scope="module")
def simulated():
    return simulate_predictions(n_patients=60, n_slices=1200, seed=7)


@pytest.fixture(scope="module")
def simulated_paired(simulated):
    return st.pair_predictions(simulated, *MODELS)


# ---------------------------------------------------------------------------- pairing

def test_pairing_is_one_to_one_and_keeps_names(simulated, simulated_paired):
    assert len(simulated_paired) == len(simulated) // 2
    assert simulated_paired.attrs == {"model_a": "resnet50", "model_b": "vgg16"}
    merged = simulated[simulated.model == "vgg16"].merge(
        simulated_paired, on=["fold", "patient_id", "slice_number"])
    assert (merged["p_tumor"] == merged["p_tumor_b"]).all()


def test_pairing_refuses_duplicates_missing_rows_and_label_conflicts(simulated):
    duplicated = pd.concat([simulated, simulated.iloc[[0]]], ignore_index=True)
    with pytest.raises(ValueError, match="one row per"):
        st.pair_predictions(duplicated, *MODELS)
    missing = simulated.drop(index=simulated.index[-1])
    with pytest.raises(ValueError, match="0 rows only in 'resnet50' and 1 only|1 rows only in 'resnet50'"):
        st.pair_predictions(missing, *MODELS)
    conflict = simulated.copy()
    conflict.loc[conflict.index[-1], "y_true"] = 1 - conflict.loc[conflict.index[-1], "y_true"]
    conflict.loc[conflict.index[-1], "y_pred"] = 0
    with pytest.raises(ValueError, match="share y_true"):
        st.pair_predictions(conflict, *MODELS)
    with pytest.raises(ValueError, match="expected model 'densenet'"):
        st.pair_predictions(simulated, "resnet50", "densenet")


def test_mixed_experiments_are_refused(simulated):
    other = simulated.copy()
    other["control"] = "shuffled_labels"
    paired = st.pair_predictions(pd.concat([simulated, other], ignore_index=True), *MODELS)
    assert len(paired) == len(simulated)  # control is part of the key
    with pytest.raises(ValueError, match="one \\(scheme, control\\) experiment"):
        st.bootstrap_metrics(paired, n_resamples=10)


# ---------------------------------------------------------------------------- McNemar

@pytest.mark.parametrize("cells", [(50, 12, 3, 5), (100, 7, 9, 4), (30, 1, 7, 2), (10, 0, 4, 1),
                                   (500, 48, 5, 0), (20, 25, 24, 3)])
def test_mcnemar_agrees_with_statsmodels(cells):
    n11, n10, n01, n00 = cells
    table = np.array([[n11, n10], [n01, n00]])
    ours = {m: st.mcnemar_test(table, m) for m in st.MCNEMAR_METHODS}
    exact = sm_mcnemar(table, exact=True)
    assert ours["exact"].pvalue == pytest.approx(exact.pvalue, rel=1e-10)
    assert ours["exact"].statistic == exact.statistic
    plain = sm_mcnemar(table, exact=False, correction=False)
    assert ours["chi2"].pvalue == pytest.approx(plain.pvalue, rel=1e-10)
    assert ours["chi2"].statistic == pytest.approx(plain.statistic)
    corrected = sm_mcnemar(table, exact=False, correction=True)
    assert ours["chi2_corrected"].pvalue == pytest.approx(corrected.pvalue, rel=1e-10)
    assert ours["midp"].pvalue <= ours["exact"].pvalue
    # the paired table built from slices gives the same counts as the 2x2 input
    assert st.mcnemar_test(paired_with_cells(*cells)).b == n10


def test_mcnemar_textbook_example_fagerland_2013():
    # Fagerland, Lydersen & Laake (2013), BMC Med Res Methodol 13:91: airway
    # hyper-responsiveness before/after stem cell transplantation, discordant pairs 1 and 7.
    # Published: exact 0.070, mid-p 0.039, asymptotic 0.034, with continuity correction 0.077.
    table = np.array([[1, 1], [7, 12]])
    expected = {"exact": 0.070, "midp": 0.039, "chi2": 0.034, "chi2_corrected": 0.077}
    for method, published in expected.items():
        assert round(st.mcnemar_test(table, method).pvalue, 3) == published


def test_identical_models_give_p_one_and_no_difference():
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 2, 200)
    pred = np.where(rng.random(200) < 0.9, y_true, 1 - y_true)
    paired = paired_from_arrays(y_true, pred, pred)
    for method in st.MCNEMAR_METHODS:
        result = st.mcnemar_test(paired, method)
        assert result.pvalue == 1.0 and result.b == result.c == 0
        assert result.difference == 0 and result.ci_low <= 0 <= result.ci_high
    assert "McNemar" in str(st.mcnemar_test(paired)) and len(st.mcnemar_methods(paired)) == 4


def test_equal_discordant_counts_give_p_one_for_exact_and_midp():
    table = np.array([[40, 6], [6, 3]])
    assert st.mcnemar_test(table, "exact").pvalue == 1.0
    assert st.mcnemar_test(table, "midp").pvalue == pytest.approx(1.0)
    assert st.mcnemar_test(table, "chi2_corrected").statistic == 0.0  # clipped, not (0-1)^2


def test_newcombe_interval_coverage_and_narrowing():
    # coverage of the paired-difference CI under known cell probabilities
    rng = np.random.default_rng(11)
    probabilities = np.array([0.80, 0.10, 0.04, 0.06])
    truth = probabilities[1] - probabilities[2]
    tables = rng.multinomial(150, probabilities, size=1500)
    covered = 0
    for cells in tables:
        _, low, high = st.paired_difference_ci(cells.reshape(2, 2))
        covered += low <= truth <= high
    assert 0.925 <= covered / len(tables) <= 0.975
    small = np.array([[80, 10], [4, 6]])
    width = lambda t: np.subtract(*st.paired_difference_ci(t)[2:0:-1])
    assert width(4 * small) < 0.6 * width(small)
    d, low, high = st.paired_difference_ci(small, method="wald")
    se = np.sqrt(10 + 4 - 36 / 100) / 100
    assert high - d == pytest.approx(sps.norm.ppf(0.975) * se)


def test_paired_metric_tests_split_accuracy_into_classes_and_apply_holm(simulated_paired):
    result = st.paired_metric_tests(simulated_paired).to_frame().set_index("test")
    for cell in ("b", "c"):
        assert result.loc["accuracy", cell] == result.loc["sensitivity", cell] + result.loc["specificity", cell]
    assert (result["adjusted"] >= result["pvalue"]).all()


# ---------------------------------------------------------------------------- Holm

def test_holm_matches_statsmodels():
    p = np.array([0.01, 0.04, 0.03, 0.005, 0.2, 0.04])
    ours = st.holm_correction(p, alpha=0.05).to_frame()
    reject, adjusted, *_ = multipletests(p, alpha=0.05, method="holm")
    np.testing.assert_allclose(ours["adjusted"], adjusted)
    np.testing.assert_array_equal(ours["reject"], reject)
    with pytest.raises(ValueError, match="p-values in \\[0, 1\\]"):
        st.holm_correction([0.1, 1.2])


# ---------------------------------------------------------------------------- bootstrap

def test_slice_bootstrap_equals_scipy_bootstrap_on_raw_arrays(simulated_paired):
    result = st.bootstrap_metrics(simulated_paired, n_resamples=2000, seed=5, batch=500,
                                  engine="scipy")
    row = result.to_frame().query("metric == 'accuracy' and model == 'resnet50 - vgg16'").iloc[0]
    reference = sps.bootstrap(
        (simulated_paired["correct_a"].to_numpy(), simulated_paired["correct_b"].to_numpy()),
        lambda a, b, axis=-1: a.mean(axis=axis) - b.mean(axis=axis), paired=True,
        n_resamples=2000, batch=500, method="BCa", rng=np.random.default_rng(5))
    assert row["ci_method"] == "BCa"
    assert row["ci_low"] == pytest.approx(reference.confidence_interval.low, abs=1e-12)
    assert row["ci_high"] == pytest.approx(reference.confidence_interval.high, abs=1e-12)
    assert row["se"] == pytest.approx(reference.standard_error)
    estimates = result.to_frame().set_index(["metric", "model"])["estimate"]
    pooled = me.slice_metrics(st_predictions_of(simulated_paired)).set_index("model")
    for metric in me.METRIC_NAMES:
        assert estimates[(metric, "resnet50")] == pytest.approx(pooled.loc["resnet50", metric])
        assert estimates[(metric, "vgg16")] == pytest.approx(pooled.loc["vgg16", metric])


def test_count_engine_bca_reproduces_scipy_bca_on_the_same_resamples(simulated_paired):
    # feed scipy's own bootstrap distribution to the counts engine's BCa with its exact
    # jackknife (one value per paired cell): the limits must agree to rounding error
    codes = bootstrap._codes(simulated_paired)
    statistic = lambda sample, axis=-1: bootstrap._metric_stack(bootstrap._count_codes(sample))
    estimate, distribution, low, high = bootstrap.scipy_engine(
        codes, statistic, 2000, 0.95, "BCa", np.random.default_rng(9), 1000)
    cells = np.bincount(codes, minlength=8)
    present = np.flatnonzero(cells)
    jackknife = bootstrap._metric_stack(cells[None, :] - np.eye(8, dtype=cells.dtype)[present])
    ours_low, ours_high = bootstrap._bca_limits(estimate, distribution, jackknife, cells[present],
                                                0.95)
    np.testing.assert_allclose(ours_low, low, atol=1e-12)
    np.testing.assert_allclose(ours_high, high, atol=1e-12)


def test_count_engine_and_scipy_engine_agree(simulated_paired):
    counts = st.bootstrap_metrics(simulated_paired, n_resamples=8000, seed=1).to_frame()
    scipy_ = st.bootstrap_metrics(simulated_paired, n_resamples=8000, seed=2,
                                  engine="scipy").to_frame()
    np.testing.assert_allclose(counts["estimate"], scipy_["estimate"])
    np.testing.assert_allclose(counts["se"], scipy_["se"], rtol=0.05)
    for limit in ("ci_low", "ci_high"):
        assert np.all(np.abs(counts[limit] - scipy_[limit]) < 0.25 * scipy_["se"])
    assert (counts["ci_method"] == "BCa").all()


def st_predictions_of(paired):
    """The long predictions table back from a paired one."""
    frames = []
    for side, model in (("a", "resnet50"), ("b", "vgg16")):
        frames.append(pd.DataFrame({"model": model, "y_true": paired["y_true"],
                                    "p_tumor": paired[f"p_tumor_{side}"],
                                    "y_pred": paired[f"y_pred_{side}"]}))
    return pd.concat(frames, ignore_index=True)


def test_singleton_clusters_reproduce_the_slice_bootstrap(simulated_paired):
    paired = simulated_paired.copy()
    paired["row_id"] = np.arange(len(paired))
    by_slice = st.bootstrap_metrics(paired, n_resamples=300, seed=3, engine="scipy")
    by_row = st.bootstrap_metrics(paired, cluster="row_id", n_resamples=300, seed=3)
    np.testing.assert_allclose(by_slice.distribution, by_row.distribution)
    np.testing.assert_allclose(by_slice.to_frame()["ci_low"], by_row.to_frame()["ci_low"])


def test_patient_bootstrap_is_wider_when_patients_cluster(simulated_paired):
    by_slice = st.bootstrap_metrics(simulated_paired, n_resamples=1000).differences()
    by_patient = st.bootstrap_metrics(simulated_paired, cluster="patient_id",
                                      n_resamples=1000).differences()
    width = lambda f: (f["ci_high"] - f["ci_low"]).to_numpy()
    assert np.all(width(by_patient) > width(by_slice))
    assert by_patient.loc[0, "model"] == "resnet50 - vgg16"


def test_bootstrap_interval_narrows_with_more_data():
    small = paired_with_cells(80, 12, 4, 4)
    large = paired_with_cells(320, 48, 16, 16)
    width = lambda p: (lambda f: f["ci_high"] - f["ci_low"])(
        st.bootstrap_metrics(p, n_resamples=1000).differences().set_index("metric"))
    assert width(large)["accuracy"] < 0.65 * width(small)["accuracy"]


def test_identical_and_perfect_models_fall_back_to_percentile():
    y_true = np.r_[np.ones(30, int), np.zeros(50, int)]
    paired = paired_from_arrays(y_true, y_true, y_true)  # both models perfect
    frame = st.bootstrap_metrics(paired, n_resamples=200).to_frame()
    scipy_frame = st.bootstrap_metrics(paired, n_resamples=200, engine="scipy").to_frame()
    assert frame[["ci_low", "ci_high", "ci_method"]].equals(scipy_frame[["ci_low", "ci_high", "ci_method"]])
    assert (frame["ci_method"] == "percentile").all()
    differences = frame[frame["model"] == "resnet50 - vgg16"]
    assert (differences[["estimate", "ci_low", "ci_high"]] == 0).all().all()
    accuracy = frame[(frame["metric"] == "accuracy") & (frame["model"] == "resnet50")].iloc[0]
    assert accuracy["ci_low"] == accuracy["ci_high"] == 1.0


def test_metric_undefined_in_some_resamples_is_counted():
    y_true = np.r_[1, np.zeros(39, int)]  # one tumor slice: many resamples have none
    pred = np.r_[1, np.zeros(39, int)]
    for engine in ("counts", "scipy"):
        frame = st.bootstrap_metrics(paired_from_arrays(y_true, pred, pred), n_resamples=300,
                                     engine=engine).to_frame()
        recall = frame[(frame["metric"] == "recall") & (frame["model"] == "resnet50")].iloc[0]
        assert recall["n_undefined"] > 0 and recall["ci_method"] == "percentile"
    with pytest.raises(ValueError, match="engine"):
        st.bootstrap_metrics(paired_from_arrays(y_true, pred, pred), engine="gpu")


# ---------------------------------------------------------------------------- Bayesian

def test_beta_posterior_rule_of_succession_and_jeffreys_interval():
    uniform = st.beta_posterior(7, 10)
    assert uniform.mean == pytest.approx(8 / 12)  # Laplace: (k+1)/(n+2)
    jeffreys = st.beta_posterior(37, 50, prior=(0.5, 0.5))
    np.testing.assert_allclose(jeffreys.interval(),
                               proportion_confint(37, 50, alpha=0.05, method="jeffreys"))
    assert jeffreys.prob_above(0.5) == pytest.approx(sps.beta.sf(0.5, 37.5, 13.5))
    with pytest.raises(ValueError, match="successes <= trials"):
        st.beta_posterior(11, 10)


def test_metric_posteriors_use_each_metric_denominator():
    counts = me.ConfusionCounts(tp=40, fp=5, fn=10, tn=45)
    frame = st.metric_posteriors(counts, model="x").to_frame().set_index("quantity")
    assert frame.loc["sensitivity", "trials"] == 50 and frame.loc["precision", "trials"] == 45
    assert frame.loc["accuracy", "successes"] == 85


def test_posterior_table_covers_every_model_with_pooled_counts(simulated):
    table = st.posterior_table(simulated)
    pooled = me.slice_metrics(simulated).set_index("model")
    assert list(table.columns[:3]) == ["model", "scheme", "control"]
    accuracy = table[table["quantity"] == "accuracy"].set_index("model")
    for model in ("resnet50", "vgg16"):
        assert accuracy.loc[model, "trials"] == pooled.loc[model, "n"]
        assert accuracy.loc[model, "observed"] == pytest.approx(pooled.loc[model, "accuracy"])


def test_dirichlet_posterior_exact_probability_matches_draws():
    table = np.array([[300, 14], [6, 10]])
    post = st.paired_posterior(table, n_draws=200_000, seed=1)
    assert post.p_a_better == pytest.approx(np.mean(post.draws > 0), abs=0.005)
    assert post.mean_difference == pytest.approx((15 - 7) / 334)  # alpha = counts + 1
    assert post.mean_difference == pytest.approx(post.draws.mean(), abs=5e-4)
    total = post.p_a_better_beyond_rope + post.p_rope + post.p_b_better_beyond_rope
    assert total == pytest.approx(1.0)
    tighter = st.paired_posterior(table * 9, n_draws=50_000)
    assert tighter.ci_high - tighter.ci_low < 0.5 * (post.ci_high - post.ci_low)


def test_identical_models_posterior_is_symmetric():
    post = st.paired_posterior(np.array([[90, 0], [0, 10]]))
    assert post.p_a_better == pytest.approx(0.5) and post.mean_difference == 0
    assert post.p_a_better_beyond_rope == pytest.approx(post.p_b_better_beyond_rope, abs=0.01)
    assert post.p_rope > max(post.p_a_better_beyond_rope, post.p_b_better_beyond_rope)


def test_patient_posterior_with_one_slice_per_patient_is_the_haldane_dirichlet():
    rng = np.random.default_rng(4)
    y_true = rng.integers(0, 2, 300)
    pred_a = np.where(rng.random(300) < 0.9, y_true, 1 - y_true)
    pred_b = np.where(rng.random(300) < 0.8, y_true, 1 - y_true)
    paired = paired_from_arrays(y_true, pred_a, pred_b, patient=np.arange(300))
    patient_level = st.patient_paired_posterior(paired, n_draws=20_000, seed=2)
    slice_level = st.paired_posterior(paired, prior=0.0, n_draws=20_000, seed=3)
    # the Bayesian bootstrap over single slices is exactly Dirichlet(counts) on the cells
    assert patient_level.mean_difference == pytest.approx(slice_level.mean_difference, abs=1e-3)
    assert patient_level.ci_low == pytest.approx(slice_level.ci_low, abs=4e-3)
    assert patient_level.ci_high == pytest.approx(slice_level.ci_high, abs=4e-3)


def test_patient_posterior_is_wider_than_slice_posterior(simulated_paired):
    slice_level = st.paired_posterior(simulated_paired)
    patient_level = st.patient_paired_posterior(simulated_paired)
    assert (patient_level.ci_high - patient_level.ci_low) > (slice_level.ci_high - slice_level.ci_low)
    assert patient_level.n_units == simulated_paired["patient_id"].nunique()


# ---------------------------------------------------------------------------- DeLong

def direct_delong(y_true, scores):
    """DeLong et al. (1988) structural components by explicit O(n^2) pair comparisons."""
    pos, neg = scores[:, y_true == 1], scores[:, y_true == 0]
    psi = (pos[:, :, None] > neg[:, None, :]) + 0.5 * (pos[:, :, None] == neg[:, None, :])
    v10, v01 = psi.mean(axis=2), psi.mean(axis=1)
    return (psi.mean(axis=(1, 2)),
            np.atleast_2d(np.cov(v10)) / pos.shape[1] + np.atleast_2d(np.cov(v01)) / neg.shape[1])


def test_fast_delong_equals_direct_computation_with_ties():
    rng = np.random.default_rng(8)
    y_true = rng.integers(0, 2, 250)
    scores = np.round(np.stack([rng.normal(y_true, 1), rng.normal(0.5 * y_true, 1)]), 1)
    aucs, cov = st.delong_covariance(y_true, scores)
    direct_aucs, direct_cov = direct_delong(y_true, scores)
    np.testing.assert_allclose(aucs, direct_aucs)
    np.testing.assert_allclose(cov, direct_cov)


def test_delong_hanley_mcneil_example():
    # Hanley & McNeil (1982) data: area 0.893; their approximate SE formula gives 0.032,
    # and the nonparametric DeLong SE must agree with it to within a few thousandths.
    normal, abnormal = [33, 6, 6, 11, 2], [3, 2, 2, 11, 33]
    score = np.r_[np.repeat(np.arange(1, 6), normal), np.repeat(np.arange(1, 6), abnormal)]
    y_true = np.r_[np.zeros(58, int), np.ones(51, int)]
    result = st.auc_interval(y_true, score)
    assert round(result.auc, 3) == 0.893
    assert abs(result.se - 0.032) < 0.003
    assert result.se == pytest.approx(np.sqrt(direct_delong(y_true, score[None])[1][0, 0]))


def test_clustered_delong_with_singleton_clusters_is_delong(simulated_paired):
    paired = simulated_paired.copy()
    paired["row_id"] = np.arange(len(paired))
    plain = st.delong_test(paired)
    singletons = st.delong_test(paired, cluster="row_id")
    assert singletons.se == pytest.approx(plain.se, rel=1e-10)
    clustered = st.delong_test(paired, cluster="patient_id")
    assert clustered.se > plain.se  # the simulation has patient effects
    swapped = paired.rename(columns={"p_tumor_a": "p_tumor_b", "p_tumor_b": "p_tumor_a"})
    assert st.delong_test(swapped).difference == pytest.approx(-plain.difference)
    assert st.delong_test(swapped).pvalue == pytest.approx(plain.pvalue)


def test_identical_scores_give_p_one(simulated_paired):
    paired = simulated_paired.assign(p_tumor_b=simulated_paired["p_tumor_a"])
    result = st.delong_test(paired, cluster="patient_id")
    assert result.difference == 0 and result.pvalue == 1.0


def test_clustered_variance_tracks_the_true_sampling_variance():
    # simulate many clustered data sets: Obuchowski's variance should match the empirical
    # variance of the AUC difference, and the naive DeLong variance should underestimate it
    rng = np.random.default_rng(12)
    n_clusters, per_cluster, repeats = 30, 8, 250
    cluster = np.repeat(np.arange(n_clusters), per_cluster)
    differences, clustered, naive = [], [], []
    for _ in range(repeats):
        y_true = (rng.random(n_clusters * per_cluster) < 0.4).astype(int)
        # a patient hard for a model pulls its tumor slices down and its other slices up
        difficulty = rng.normal(0, 0.8, (2, n_clusters))[:, cluster] * (2 * y_true - 1)
        scores = np.stack([y_true * 1.5 - difficulty[0] + rng.normal(0, 1, y_true.size),
                           y_true * 1.0 - difficulty[1] + rng.normal(0, 1, y_true.size)])
        aucs, cov = st.delong_covariance(y_true, scores, cluster)
        _, cov_naive = st.delong_covariance(y_true, scores)
        differences.append(aucs[0] - aucs[1])
        clustered.append(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
        naive.append(cov_naive[0, 0] + cov_naive[1, 1] - 2 * cov_naive[0, 1])
    empirical = np.var(differences, ddof=1)
    assert 0.75 < np.mean(clustered) / empirical < 1.35
    assert np.mean(naive) / empirical < 0.6


def test_cluster_pair_sums_give_the_exact_auc_of_a_resample():
    rng = np.random.default_rng(6)
    cluster = np.repeat(np.arange(12), 5)
    y_true = rng.integers(0, 2, 60)
    score = np.round(rng.normal(y_true, 1), 1)
    pair_sums = roc._cluster_pair_sums(y_true, score, cluster, 12)
    drawn = rng.integers(0, 12, 12)  # a patient resample, with repeats
    weights = np.bincount(drawn, minlength=12).astype(float)
    rows = np.concatenate([np.flatnonzero(cluster == c) for c in drawn])
    n_pos = np.bincount(cluster, weights=y_true, minlength=12)
    n_neg = np.bincount(cluster, weights=1 - y_true, minlength=12)
    formula = weights @ pair_sums @ weights / ((weights @ n_pos) * (weights @ n_neg))
    assert formula == pytest.approx(me.roc_auc(y_true[rows], score[rows]))


def test_cluster_bootstrap_auc_agrees_with_clustered_delong(simulated_paired):
    boot = st.cluster_bootstrap_auc(simulated_paired, n_resamples=1500).to_frame()
    delong = st.delong_test(simulated_paired, cluster="patient_id")
    assert boot.loc[0, "estimate"] == pytest.approx(delong.auc_a)
    assert boot.loc[2, "estimate"] == pytest.approx(delong.difference)
    assert 0.7 < boot.loc[2, "se"] / delong.se < 1.4


def test_roc_band_brackets_the_curve(simulated_paired):
    band = st.roc_confidence_band(simulated_paired["y_true"], simulated_paired["p_tumor_b"],
                                  cluster=simulated_paired["patient_id"], n_resamples=200)
    inside = (band.tpr_low <= band.tpr + 1e-12) & (band.tpr <= band.tpr_high + 1e-12)
    assert inside.mean() > 0.95
    assert np.all(np.diff(band.tpr) >= 0)
    curve = me.roc_curve(simulated_paired["y_true"], simulated_paired["p_tumor_b"])
    at = np.searchsorted(curve.fpr, 0.2, side="right") - 1
    assert band.to_frame().set_index("fpr").loc[0.2, "tpr"] == pytest.approx(curve.tpr[at])


# ---------------------------------------------------------------------------- across folds

def test_corrected_ttest_without_correction_is_the_paired_ttest():
    a = np.array([0.91, 0.93, 0.90, 0.95, 0.92, 0.94, 0.89, 0.93])
    b = np.array([0.90, 0.90, 0.91, 0.92, 0.90, 0.93, 0.90, 0.91])
    plain = st.corrected_resampled_ttest(a, b, test_train_ratio=0.0)
    reference = sps.ttest_rel(a, b)
    assert plain.statistic == pytest.approx(reference.statistic)
    assert plain.pvalue == pytest.approx(reference.pvalue)
    corrected = st.corrected_resampled_ttest(a, b, test_train_ratio=1 / 7)
    d = a - b
    by_hand = d.mean() / np.sqrt((1 / 8 + 1 / 7) * d.var(ddof=1))
    assert corrected.statistic == pytest.approx(by_hand)
    assert corrected.pvalue > plain.pvalue and corrected.uncorrected_pvalue == pytest.approx(plain.pvalue)


def test_bayesian_correlated_ttest_by_hand_and_against_baycomp():
    a = np.array([0.91, 0.93, 0.90, 0.95, 0.92, 0.94, 0.89, 0.93])
    b = np.array([0.90, 0.90, 0.91, 0.92, 0.90, 0.93, 0.90, 0.91])
    result = st.bayesian_correlated_ttest(a, b, rho=1 / 8, rope=0.01)
    d = a - b
    scale = np.sqrt((1 / 8 + (1 / 8) / (7 / 8)) * d.var(ddof=1))
    assert result.scale == pytest.approx(scale)
    assert result.p_b_better == pytest.approx(sps.t.cdf(-0.01, 7, d.mean(), scale))
    assert result.p_a_better == pytest.approx(sps.t.sf(0.01, 7, d.mean(), scale))
    # baycomp 1.0.3, CorrelatedTTest.probs(b, a, rope=0.01, runs=1), computed in a side venv
    np.testing.assert_allclose((result.p_b_better, result.p_rope, result.p_a_better),
                               (0.014261333664384736, 0.37017176422995723, 0.615566902105658),
                               rtol=1e-9)


def test_compare_folds_uses_fold_sizes_and_identical_models_give_no_difference(simulated):
    comparison = st.compare_folds(simulated, "accuracy", *MODELS)
    per_fold = comparison.per_fold
    assert comparison.bayesian.rho == pytest.approx(per_fold["n"].mean() / per_fold["n"].sum())
    assert comparison.corrected_ttest.n_folds == simulated["fold"].nunique()
    same = simulated.copy()
    same.loc[same.model == "vgg16", ["p_tumor", "y_pred"]] = \
        same.loc[same.model == "resnet50", ["p_tumor", "y_pred"]].to_numpy()
    identical = st.compare_folds(same, "accuracy", *MODELS)
    assert identical.corrected_ttest.pvalue == 1.0 and identical.bayesian.p_rope == 1.0
    assert "Nadeau-Bengio" in str(comparison)


def test_simulated_table_has_whole_patients_in_folds(simulated):
    assert len(simulated) == 2 * 1200
    assert (simulated.groupby("patient_id")["fold"].nunique() == 1).all()
    me.check_predictions(simulated)

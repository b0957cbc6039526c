"""Patient-clustered McNemar tests and the logit DeLong interval of one AUC.

The clustered statistics are checked against arithmetic written out here from small tables
of per-patient counts, not against the code under test.
"""
import math

import numpy as np
import pandas as pd
import pytest
from simulated import simulate_predictions

import brainlib.stats as st


def chi2_1df_pvalue(statistic):
    """Upper tail of chi-square with 1 df: P(Z^2 > x) = erfc(sqrt(x / 2))."""
    return math.erfc(math.sqrt(statistic / 2))


def paired_from_counts(counts):
    """A paired table from per-patient (n, b, c): b slices a right and b wrong, c the
    reverse, the rest right for both."""
    rows = []
    for index, (n, b, c) in enumerate(counts):
        patient = f"P{index:02d}"
        flags = [(1, 0)] * b + [(0, 1)] * c + [(1, 1)] * (n - b - c)
        rows += [{"patient_id": patient, "slice_number": s + 1, "y_true": 1,
                  "correct_a": a, "correct_b": bb} for s, (a, bb) in enumerate(flags)]
    paired = pd.DataFrame(rows)
    paired.attrs["model_a"], paired.attrs["model_b"] = "resnet50", "vgg16"
    return paired


# Four patients: (n_k, b_k, c_k). B = 6, C = 2, N = 15, K = 4.
FOUR_PATIENTS = [(4, 3, 0), (2, 0, 1), (5, 1, 1), (4, 2, 0)]


@pytest.fixture(scope="module")
def simulated_paired():
    return st.pair_predictions(simulate_predictions(n_patients=30, n_slices=900, seed=5),
                              "resnet50", "vgg16")


# ------------------------------------------------------------------ clustered McNemar

def test_durkalski_by_hand():
    # cluster proportions (b_k - c_k)/n_k: 3/4, -1/2, 0, 1/2
    # X = (3/4 - 1/2 + 0 + 1/2)^2 / (9/16 + 1/4 + 0 + 1/4) = (9/16) / (17/16) = 9/17
    result = st.mcnemar_test(paired_from_counts(FOUR_PATIENTS), "durkalski", cluster="patient_id")
    assert result.statistic == pytest.approx(9 / 17)
    assert result.pvalue == pytest.approx(chi2_1df_pvalue(9 / 17))
    assert (result.b, result.c, result.n, result.n_clusters) == (6, 2, 15, 4)
    assert result.method == "durkalski" and result.cluster == "patient_id"
    assert "4 clusters" in result.title()


def test_obuchowski_by_hand():
    # D = (B - C)/N = 4/15; var = K/(K-1) * sum (b_k - c_k)^2 / N^2 = 4/3 * (9+1+0+4) / 225
    # X = D^2 / var = (16/225) / (56/675) = 6/7, i.e. (K-1)/K * (B-C)^2 / sum d_k^2 = 3/4 * 16/14
    result = st.mcnemar_test(paired_from_counts(FOUR_PATIENTS), "obuchowski", cluster="patient_id")
    assert result.statistic == pytest.approx(6 / 7)
    assert result.pvalue == pytest.approx(chi2_1df_pvalue(6 / 7))
    # the difference and its CI stay the slice-level ones: (B - C)/N
    assert result.difference == pytest.approx(4 / 15)
    slice_level = st.mcnemar_test(paired_from_counts(FOUR_PATIENTS), "chi2")
    assert (result.ci_low, result.ci_high) == (slice_level.ci_low, slice_level.ci_high)


def test_clustered_pvalue_from_counts_matches_the_table_route():
    n, b, c = zip(*FOUR_PATIENTS)
    assert st.clustered_mcnemar_pvalue(b, c, n, "durkalski")[0] == pytest.approx(9 / 17)
    assert st.clustered_mcnemar_pvalue(b, c, n, "obuchowski")[0] == pytest.approx(6 / 7)
    counts = st.discordance_by_cluster(paired_from_counts(FOUR_PATIENTS), "patient_id")
    assert counts[["n", "b", "c"]].to_numpy().tolist() == [list(row) for row in FOUR_PATIENTS]


def test_durkalski_with_one_slice_per_cluster_is_mcnemar_chi2(simulated_paired):
    paired = simulated_paired.copy()
    paired["row_id"] = np.arange(len(paired))
    plain = st.mcnemar_test(paired, "chi2")
    durkalski = st.mcnemar_test(paired, "durkalski", cluster="row_id")
    b, c = plain.b, plain.c
    assert durkalski.statistic == pytest.approx((b - c) ** 2 / (b + c))
    assert durkalski.pvalue == pytest.approx(plain.pvalue)
    # Obuchowski differs from it only by the small-sample factor (K-1)/K
    obuchowski = st.mcnemar_test(paired, "obuchowski", cluster="row_id")
    k = len(paired)
    assert obuchowski.statistic == pytest.approx((k - 1) / k * (b - c) ** 2 / (b + c))


def test_discordance_in_one_patient_counts_once():
    # patient 0 holds all 8 discordant slices; four more patients agree everywhere.
    counts = [(10, 8, 0)] + [(10, 0, 0)] * 4
    paired = paired_from_counts(counts)
    slice_chi2 = st.mcnemar_test(paired, "chi2").statistic
    assert slice_chi2 == pytest.approx(8**2 / 8)
    durkalski = st.mcnemar_test(paired, "durkalski", cluster="patient_id")
    obuchowski = st.mcnemar_test(paired, "obuchowski", cluster="patient_id")
    assert durkalski.statistic == pytest.approx(0.8**2 / 0.8**2)  # one cluster: X = 1
    assert obuchowski.statistic == pytest.approx(4 / 5 * 8**2 / 8**2)
    assert max(durkalski.statistic, obuchowski.statistic) < slice_chi2
    assert min(durkalski.pvalue, obuchowski.pvalue) > 0.3 > st.mcnemar_test(paired, "chi2").pvalue


def test_no_discordant_slice_gives_p_one():
    paired = paired_from_counts([(3, 0, 0), (4, 0, 0), (2, 0, 0)])
    for method in st.CLUSTERED_MCNEMAR_METHODS:
        result = st.mcnemar_test(paired, method, cluster="patient_id")
        assert (result.statistic, result.pvalue) == (0.0, 1.0)
    # discordant slices that cancel within every patient: no evidence either
    balanced = paired_from_counts([(3, 1, 1), (4, 2, 2)])
    assert st.mcnemar_test(balanced, "obuchowski", cluster="patient_id").pvalue == 1.0


def test_clustered_methods_refuse_bad_input():
    paired = paired_from_counts(FOUR_PATIENTS)
    with pytest.raises(ValueError, match="cluster"):
        st.mcnemar_test(paired, "durkalski")
    with pytest.raises(ValueError, match="2x2 table has no clusters"):
        st.mcnemar_test(np.array([[10, 3], [1, 4]]), "obuchowski", cluster="patient_id")
    with pytest.raises(ValueError, match="column 'hospital'"):
        st.mcnemar_test(paired, "durkalski", cluster="hospital")
    with pytest.raises(ValueError, match="at least 2 clusters, found 1"):
        st.mcnemar_test(paired_from_counts([(6, 3, 1)]), "obuchowski", cluster="patient_id")
    with pytest.raises(ValueError, match="needs a clustered method"):
        st.mcnemar_test(paired, "exact", cluster="patient_id")
    with pytest.raises(ValueError, match="expected method in"):
        st.mcnemar_test(paired, "eliasziw", cluster="patient_id")
    missing = paired.copy()
    missing.loc[2, "patient_id"] = None
    with pytest.raises(ValueError, match="1 missing"):
        st.mcnemar_test(missing, "durkalski", cluster="patient_id")


def test_clustered_mcnemar_methods_rows(simulated_paired):
    table = st.clustered_mcnemar_methods(simulated_paired)
    slice_level = st.mcnemar_methods(simulated_paired)
    assert table["method"].tolist() == ["exact", "durkalski", "obuchowski"]
    assert table["unit"].tolist() == ["slices", "patients", "patients"]
    assert [c for c in table.columns if c != "unit"] == list(slice_level.columns)
    exact = slice_level[slice_level["method"] == "exact"].reset_index(drop=True)
    pd.testing.assert_frame_equal(table.drop(columns="unit").iloc[[0]], exact)
    # the counts and the difference are the same table whatever the unit
    assert table["b"].nunique() == table["c"].nunique() == table["difference"].nunique() == 1
    # the simulation has patient effects: counting patients weakens the evidence
    chi2 = st.mcnemar_test(simulated_paired, "chi2")
    assert (table.loc[1:, "statistic"] < chi2.statistic).all()


# ------------------------------------------------------------------ AUC interval

def near_one_sample():
    """10 negatives and 10 positives with one discordant pair of 100: AUC = 0.99."""
    negatives = np.r_[np.arange(9) / 10, 1.05]
    positives = 1.0 + np.arange(10) / 10
    return np.r_[np.zeros(10, int), np.ones(10, int)], np.r_[negatives, positives]


def test_logit_interval_near_one_stays_inside_and_is_asymmetric():
    y_true, score = near_one_sample()
    result = st.auc_interval(y_true, score)
    assert result.auc == pytest.approx(0.99)
    assert result.method == "DeLong, logit"
    assert 0 < result.ci_low < result.auc < result.ci_high < 1
    assert result.ci_high - result.auc < result.auc - result.ci_low
    # by hand: logit(0.99) +- z * se / (0.99 * 0.01), mapped back
    z = 1.959963984540054
    half = z * result.se / (0.99 * 0.01)
    expit = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    centre = math.log(0.99 / 0.01)
    assert result.ci_low == pytest.approx(expit(centre - half))
    assert result.ci_high == pytest.approx(expit(centre + half))
    # the clipped Wald interval runs into 1 on the same data
    assert st.auc_interval(y_true, score, transform="none").ci_high == 1.0


def test_no_transform_reproduces_the_clipped_wald_interval():
    # Hanley & McNeil (1982) data, as in test_stats: AUC +- z * DeLong SE, clipped to [0, 1]
    normal, abnormal = [33, 6, 6, 11, 2], [3, 2, 2, 11, 33]
    score = np.r_[np.repeat(np.arange(1, 6), normal), np.repeat(np.arange(1, 6), abnormal)]
    y_true = np.r_[np.zeros(58, int), np.ones(51, int)]
    aucs, cov = st.delong_covariance(y_true, score)
    se = math.sqrt(cov[0, 0])
    z = 1.959963984540054
    result = st.auc_interval(y_true, score, transform="none")
    assert result.method == "DeLong, Wald"
    assert (result.auc, result.se) == (pytest.approx(aucs[0]), pytest.approx(se))
    assert result.ci_low == pytest.approx(max(0.0, aucs[0] - z * se))
    assert result.ci_high == pytest.approx(min(1.0, aucs[0] + z * se))
    assert result.ci_low == pytest.approx(0.832952, abs=1e-6)  # the value before the logit default
    assert result.ci_high == pytest.approx(0.953390, abs=1e-6)


def test_auc_at_the_boundary_falls_back_to_wald_and_says_so(simulated_paired):
    y_true, score = near_one_sample()
    perfect = np.where(y_true == 1, score + 5, score)
    result = st.auc_interval(y_true, perfect)
    assert result.auc == 1.0 and result.ci_high == 1.0
    assert result.method == "DeLong, Wald (AUC at the boundary)"
    clustered = st.auc_interval(simulated_paired["y_true"], simulated_paired["p_tumor_a"],
                                cluster=simulated_paired["patient_id"])
    assert clustered.method == "DeLong, clustered, logit"
    assert 0 < clustered.ci_low < clustered.auc < clustered.ci_high < 1
    with pytest.raises(ValueError, match="transform"):
        st.auc_interval(y_true, score, transform="probit")

"""Chapter 8's tables on synthetic predictions whose answers are known."""
import numpy as np
import pandas as pd
import pytest

from brainlib.chapters import trust_report


def synthetic(n_patients=30, per_patient=20, seed=0, calibrated=True):
    rng = np.random.default_rng(seed)
    p = rng.uniform(0, 1, n_patients * per_patient)
    y = (rng.uniform(size=p.size) < p).astype(int)
    y_pred = (p > 0.5).astype(int)
    wrong = (y_pred != y).astype(float)
    return pd.DataFrame({
        "model": "m", "scheme": "patient", "control": "none", "protocol": "validated",
        "patient_id": np.repeat([f"p{k:02d}" for k in range(n_patients)], per_patient),
        "slice_number": np.tile(np.arange(per_patient), n_patients),
        "fold": np.repeat(np.arange(n_patients) % 3, per_patient),
        "y_true": y, "p_tumor": p, "y_pred": y_pred,
        # entropy knows the errors exactly; mutual information is noise; margin is |p - 0.5|
        "entropy": wrong + rng.uniform(0, 0.01, p.size),
        "mutual_information": rng.uniform(size=p.size),
        "margin": -np.abs(p - 0.5),
        "temperature": 1.0, "p_calibrated": p if calibrated else np.nan})


def test_a_measure_that_knows_the_errors_refers_them_all():
    rows = synthetic()
    error_share = (rows["y_pred"] != rows["y_true"]).mean()
    table = trust_report.referral_table(rows, ["m"], fractions=(0.0, 0.5))
    by = table.set_index(["measure", "referred"])
    assert by.loc[("entropy", 0.0), "accuracy"] == pytest.approx(1 - error_share)
    assert error_share < 0.5 and by.loc[("entropy", 0.5), "accuracy"] == 1.0
    errors = trust_report.error_detection_table(rows, ["m"]).set_index("measure")
    assert errors.loc["entropy", "AUROC"] == 1.0 and errors.loc["entropy", "low"] == 1.0
    assert errors.loc["mutual_information", "low"] < 0.5 < errors.loc["mutual_information", "high"]
    sentences = trust_report.referral_sentences(table.assign(referred=table["referred"]).pipe(
        lambda t: pd.concat([t, t.assign(referred=0.1), t.assign(referred=0.2)])), errors.reset_index())
    assert "entropy flags its errors best" in sentences[0]
    assert "mutual_information cannot be told from chance" in sentences[0]


def test_a_calibrated_model_scores_a_small_ece_and_bands_cover_the_diagonal():
    rows = synthetic(n_patients=60)
    table = trust_report.calibration_table(rows, ["m"])
    assert set(table["probability"]) == {"as trained", "temperature-scaled"}
    trained = table[table["probability"] == "as trained"].iloc[0]
    assert trained["ECE"] < 0.06 and trained["ECE low"] <= trained["ECE"] <= trained["ECE high"]
    bands = trust_report.reliability_bands(rows, ["m"])
    inside = (bands["band_low"] <= bands["mean_probability"] + 0.05) & \
             (bands["mean_probability"] - 0.05 <= bands["band_high"])
    assert inside.mean() >= 0.9


def test_without_temperatures_only_the_trained_probabilities_are_reported():
    rows = synthetic(calibrated=False)
    assert not trust_report.has_temperature(rows)
    assert set(trust_report.calibration_table(rows, ["m"])["probability"]) == {"as trained"}


def test_predictions_without_uncertainty_columns_are_refused():
    with pytest.raises(ValueError, match="run_trust_analyses"):
        trust_report.trust_predictions(synthetic().drop(columns=["margin"]), ["m"])


def test_gradcam_table_means_and_baseline():
    scores = pd.DataFrame({"model": "m", "patient_id": ["a", "a", "b", "c"],
                           "slice_number": [1, 2, 1, 1], "pointing": [True, False, True, True],
                           "energy_inside": [0.5, 0.1, 0.3, 0.3], "baseline": [0.1] * 4,
                           "peak_on_rim": [False, True, False, False],
                           "empty_map": [False] * 4})
    row = trust_report.gradcam_table(scores).iloc[0]
    assert row["pointing game value"] == 0.75 and row["energy inside value"] == pytest.approx(0.3)
    assert row["tumor slices"] == 4 and row["patients"] == 3
    sentence = trust_report.gradcam_sentences(trust_report.gradcam_table(scores), {"m": 4})[0]
    # paired slice by slice: (0.9 - 0.1 + 0.9 + 0.9) / 4
    assert row["pointing - baseline value"] == pytest.approx(0.65)
    assert "75.0% of 4 tumor slices, which " in sentence and "4x4 cells" in sentence
    assert trust_report.beyond_baseline(row) in sentence
    always = scores.assign(pointing=True, patient_id=list("abcd"))
    row = trust_report.gradcam_table(always).iloc[0]
    assert trust_report.beyond_baseline(row) == "above"  # every resample: 1.0 - 0.1
    assert "which is above the 10.0%" in trust_report.gradcam_sentences(
        trust_report.gradcam_table(always), {})[0]
    never = scores.assign(pointing=False, patient_id=list("abcd"))
    assert trust_report.beyond_baseline(trust_report.gradcam_table(never).iloc[0]) == "below"
    assert "25.0% of its maxima lie on the head's outer rim" in sentence
    patients = trust_report.gradcam_patients(scores).set_index("patient_id")
    assert patients.loc["a", "pointing"] == 0.5 and patients.loc["a", "tumor_slices"] == 2


def test_a_temperature_at_the_end_of_its_range_is_reported():
    rows = synthetic()
    rows.loc[rows["fold"] == 1, "temperature"] = 20.0
    table = trust_report.calibration_table(rows, ["m"])
    assert table.set_index("probability").loc["temperature-scaled", "fits at a bound"] == 1
    assert "In 1 fold(s) the fitted T reached the end" in trust_report.calibration_sentences(table)[0]


def error_rows(measures: dict) -> pd.DataFrame:
    """An error-detection table of one model: measure -> (AUROC, low, high)."""
    return pd.DataFrame([{"model": "m", "measure": m, "AUROC": a, "low": lo, "high": hi}
                         for m, (a, lo, hi) in measures.items()])


def flat_referral(measures) -> pd.DataFrame:
    return pd.DataFrame([{"model": "m", "measure": m, "referred": r, "accuracy": 0.8}
                         for m in measures for r in (0.0, 0.1, 0.2)])


@pytest.mark.parametrize("measures, says, never", [
    ({"entropy": (0.8, 0.7, 0.9), "margin": (0.3, 0.2, 0.4), "mi": (0.5, 0.4, 0.6)},
     ["entropy flags its errors best", "margin is below chance",
      "mi cannot be told from chance"], ["no measure flags"]),
    ({"entropy": (0.55, 0.45, 0.65), "mi": (0.3, 0.2, 0.4)},
     ["no measure flags its errors better than chance; the highest AUROC is entropy's",
      "mi is below chance"], ["flags its errors best", "entropy cannot be told"]),
    ({"entropy": (0.4, 0.3, 0.45), "mi": (0.3, 0.2, 0.35)},
     ["no measure flags", "mi is below chance"], ["flags its errors best"]),
])
def test_referral_sentences_follow_each_interval_against_chance(measures, says, never):
    """Each branch on a hand-made table: above, below and not told from chance; "best" only
    for a measure above chance, and never "best" and "chance" of one measure at once."""
    text = trust_report.referral_sentences(flat_referral(measures), error_rows(measures))[0]
    for phrase in says:
        assert phrase in text, (phrase, text)
    for phrase in never:
        assert phrase not in text, (phrase, text)


def test_an_ece_at_its_intervals_edge_is_said_to_be():
    assert trust_report.at_interval_edge(0.05, 0.05, 0.12)
    assert trust_report.at_interval_edge(0.04, 0.05, 0.12)  # outside: below the low end
    assert not trust_report.at_interval_edge(0.08, 0.05, 0.12)
    assert not trust_report.at_interval_edge(0.08, float("nan"), 0.12)
    table = pd.DataFrame([
        {"model": "m", "probability": "as trained", "ECE": 0.050, "ECE low": 0.051,
         "ECE high": 0.120, "brier": 0.1, "temperature": "", "fits at a bound": 0},
        {"model": "m", "probability": "temperature-scaled", "ECE": 0.080, "ECE low": 0.050,
         "ECE high": 0.120, "brier": 0.1, "temperature": "1.10-1.30", "fits at a bound": 0}])
    [sentence] = trust_report.calibration_sentences(table)
    assert "For the ECE as trained, the estimate sits at the edge of its interval" in sentence
    centred = table.assign(**{"ECE low": 0.03})
    assert "edge" not in trust_report.calibration_sentences(centred)[0]


def test_recap_values_count_what_the_tables_say():
    calibration = pd.DataFrame({
        "model": ["a", "a", "b", "b", "c"],
        "probability": ["as trained", "temperature-scaled"] * 2 + ["as trained"],
        "ECE": [0.10, 0.05, 0.04, 0.06, 0.2]})
    errors = error_rows({"entropy": (0.8, 0.7, 0.9), "margin": (0.5, 0.4, 0.6)})
    errors = pd.concat([errors, errors.assign(model="n", low=0.45)], ignore_index=True)
    gradcam = pd.DataFrame({"model": ["a", "b", "c"], "pointing - baseline low": [0.05, -0.1,
                                                                                  -0.2]})
    values = trust_report.recap_values(calibration, errors, gradcam)
    assert values == {"n_scaled": 2, "scaling_lowered": 1, "n_flagged_models": 2,
                      "flagging_models": 1, "n_heatmap_models": 3, "pointing_models": 1}


def test_the_calibration_sentence_says_when_scaling_moved_nothing_beyond_noise():
    row = {"model": "m", "temperature": "", "fits at a bound": 0}
    table = pd.DataFrame([
        {**row, "probability": "as trained", "ECE": 0.130, "ECE low": 0.076, "ECE high": 0.211,
         "brier": 0.1652},
        {**row, "probability": "temperature-scaled", "ECE": 0.111, "ECE low": 0.073,
         "ECE high": 0.192, "brier": 0.1649, "temperature": "1.29"}])
    [sentence] = trust_report.calibration_sentences(table)
    assert ("lowered it to 0.111 [0.073, 0.192] (a change inside that interval, so within "
            "resampling noise) and left the Brier score at 0.165.") in sentence
    apart = table.assign(**{"ECE low": [0.076, 0.010], "ECE high": [0.211, 0.050],
                            "ECE": [0.130, 0.030], "brier": [0.165, 0.150]})
    [sentence] = trust_report.calibration_sentences(apart)
    assert "within resampling noise" not in sentence
    assert "took the Brier score from 0.165 to 0.150" in sentence


def test_tile_names_that_would_overflow_the_title_get_a_line_each():
    tiles = [np.zeros((8, 8, 3), np.uint8)] * 4
    short = ["resnet50 best: P03", "resnet50 worst: P17", "vgg16 best: P01", "vgg16 worst: P09"]
    title = trust_report._tiles_figure(tiles, short, "t").layout.title.text
    assert title == "t<br>resnet50 best: P03 | resnet50 worst: P17<br>vgg16 best: P01 | vgg16 worst: P09"
    real = [name.replace("P", "TCGA_CS_5396_2001030") for name in short]
    lines = trust_report._tiles_figure(tiles, real, "t").layout.title.text.split("<br>")
    assert lines[1:] == real
    assert max(map(len, lines)) <= trust_report.TITLE_LINE_CHARACTERS

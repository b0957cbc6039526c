"""The trivial baselines (`brainlib.chapters.baselines`): their features from the images, their
score rule on hand-computed cases, the classifiers' protocol unit by unit, and the
sentences that say whether a model beats them."""
import numpy as np
import pandas as pd
import pytest
import tifffile

from brainlib.chapters import baselines, segmentation_report
from brainlib.training import runner, scores
from simulated import simulate_predictions

PREDICTION_COLUMNS = ["patient_id", "slice_number", "model", "protocol", "scheme", "control",
                      "fold", "y_true", "p_tumor", "threshold", "y_pred"]


def volume_manifest(tmp_path, n_patients=12, n_slices=10, n_folds=3):
    """Patients whose middle slices hold the tumor and show the most head, as in a brain."""
    rows = []
    for p in range(n_patients):
        for k in range(1, n_slices + 1):
            middle = 3 <= k <= n_slices - 2
            width = 16 if middle else 4 + (p % 3)
            image = np.zeros((16, 16, 3), np.uint8)
            image[:, :width] = 200
            path = tmp_path / f"P{p:02d}_{k}.tif"
            tifffile.imwrite(path, image)
            rows.append({"patient_id": f"P{p:02d}", "slice_number": k, "image_path": str(path),
                         "label": int(middle),
                         "fold_patient": p % n_folds})
    return pd.DataFrame(rows)


def test_features_are_the_place_in_the_volume_and_the_share_of_head(tmp_path):
    manifest = volume_manifest(tmp_path, n_patients=2, n_slices=5)
    features = baselines.slice_features(manifest)
    first = features[features["patient_id"] == "P00"]
    assert np.allclose(first["position"], [0, 0.25, 0.5, 0.75, 1])
    # the middle slices are all head; the ends show 4 (P00) or 5 (P01) columns of 16
    assert np.allclose(first["brain_share"], [4 / 16, 4 / 16, 1, 4 / 16, 4 / 16])
    assert np.allclose(features[features["patient_id"] == "P01"]["brain_share"].iloc[0], 5 / 16)
    # a cache folder keeps them: the second call reads back what the first wrote
    again = baselines.slice_features(manifest, tmp_path / "cache")
    assert len(list((tmp_path / "cache").glob("slice-features-*.csv"))) == 1
    pd.testing.assert_frame_equal(baselines.slice_features(manifest, tmp_path / "cache"), again)


def test_the_rate_score_by_hand():
    score = baselines.RateScore([0, 0, 1, 1], [0, 0, 1, 1], n_bins=2)
    # one edge at the median 0.5; each bin's tumors + 1 over slices + 2
    assert np.allclose(score.edges, [0.5])
    assert np.allclose(score([0.2, 0.9, 0.5]), [1 / 4, 3 / 4, 3 / 4])
    with pytest.raises(ValueError, match="needs fit slices"):
        baselines.RateScore([], [])


def test_baselines_follow_the_classifiers_protocol(tmp_path):
    manifest = volume_manifest(tmp_path)
    predictions = baselines.baseline_predictions(manifest, folds=None, protocol="validated",
                                                 seed=3, validation_fraction=0.25)
    assert list(predictions.columns) == PREDICTION_COLUMNS
    assert set(predictions["model"]) == set(baselines.BASELINES)
    features = baselines.slice_features(manifest)
    keyed = manifest.merge(features, on=["patient_id", "slice_number"])
    for (model, fold), own in predictions.groupby(["model", "fold"]):
        rows = runner.unit_rows(keyed, "patient", "none", fold, "validated", 3, 0.25, model)
        # every test slice of the fold is scored once, by a model fit without its patients
        assert sorted(own["patient_id"].unique()) == sorted(keyed.loc[rows.test, "patient_id"]
                                                            .unique())
        assert len(own) == len(rows.test)
        column = baselines.FEATURES[model]
        score = baselines.RateScore(keyed.loc[rows.fit, column], rows.fit_labels)
        chosen = scores.choose_threshold(rows.validation_labels,
                                         score(keyed.loc[rows.validation, column]), 0.5)
        assert own["threshold"].unique().tolist() == [chosen.threshold]
        assert ((own["p_tumor"] > chosen.threshold).astype(int) == own["y_pred"]).all()
    # the middle of the volume holds the tumors: position alone separates them
    position = predictions[predictions["model"] == "slice_position"]
    middle = position["slice_number"].between(3, 8)
    assert position.loc[middle, "p_tumor"].min() > position.loc[~middle, "p_tumor"].max()
    # without inner validation (the paper's protocol) the threshold is the fixed 0.5
    paper = baselines.baseline_predictions(manifest, folds=[0], protocol="paper", seed=3,
                                           validation_fraction=0.25, features=features)
    assert paper["threshold"].eq(baselines.DEFAULT_THRESHOLD).all()
    assert set(paper["fold"]) == {0}


def test_missing_features_are_refused(tmp_path):
    manifest = volume_manifest(tmp_path, n_patients=3, n_slices=4)
    features = baselines.slice_features(manifest).iloc[1:]
    with pytest.raises(ValueError, match="slice features are missing"):
        baselines.baseline_predictions(manifest, folds=None, protocol="validated", seed=0,
                                       validation_fraction=0.34, features=features)


def comparison_row(low, high, model="resnet50", baseline="slice_position"):
    return {"comparison": f"{model} - {baseline}", "slices": 100, "patients": 10,
            "accuracy difference": (low + high) / 2, "ci_low (patients)": low,
            "ci_high (patients)": high, "McNemar p (exact)": 0.5, "AUC difference": 0.01,
            "DeLong p (patient-clustered)": 0.4}


def test_the_sentences_follow_the_interval():
    table = pd.DataFrame([comparison_row(0.02, 0.10), comparison_row(-0.05, 0.03),
                          comparison_row(-0.12, -0.01, baseline="brain_area")])
    lines = baselines.beat_sentences(table)
    assert lines[0].startswith("resnet50 beats the slice_position baseline: accuracy +0.060")
    assert lines[1].startswith("resnet50 does not beat the slice_position baseline")
    assert lines[2].startswith("resnet50 does worse than the brain_area baseline")
    assert all("10 patients" in line for line in lines)
    verdict = baselines.baseline_verdict(table)
    assert verdict.startswith("Not every model beats the trivial baselines")
    assert "resnet50 does not beat slice_position; resnet50 does not beat brain_area" in verdict
    assert baselines.baseline_verdict(table.iloc[:1]).startswith("Every model beats both")


def test_versus_baselines_is_the_paired_comparison_per_model():
    predictions = simulate_predictions(
        n_patients=30, n_slices=600, n_folds=3, seed=2,
        separations=(("resnet50", 3.0), ("vgg16", 2.0), ("slice_position", 0.5),
                     ("brain_area", 0.2)))
    table = baselines.versus_baselines(predictions, ["resnet50", "vgg16"])
    assert table["comparison"].tolist() == [f"{m} - {b}" for m in ("resnet50", "vgg16")
                                            for b in baselines.BASELINES]
    direct = segmentation_report.paired_comparison(predictions, "vgg16", ["brain_area"])
    pd.testing.assert_frame_equal(table.iloc[[3]].reset_index(drop=True), direct)
    # a model far better than a weak baseline beats it
    assert (table["ci_low (patients)"] > 0).all()

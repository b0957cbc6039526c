"""MC dropout over cached features: stochastic, reproducible under a seed, centred on the
deterministic prediction."""
import numpy as np
import pytest

from brainlib.trust import calibration, uncertainty
from brainlib.training import experiment
from brainlib import models


def head_and_features(seed=0):
    head = models.build_head((2, 2, 8), seed=seed)
    features = np.random.default_rng(1).normal(size=(64, 2, 2, 8)).astype(np.float32)
    return head, features


def test_passes_are_reproducible_under_a_seed_and_differ_between_passes():
    head, features = head_and_features()
    first = uncertainty.mc_dropout_passes(head, features, passes=20, seed=7)
    again_head, _ = head_and_features()  # same build seed: same weights and dropout seeds
    again = uncertainty.mc_dropout_passes(again_head, features, passes=20, seed=7)
    assert first.shape == (20, 64)
    np.testing.assert_array_equal(first, again)
    assert np.ptp(first, axis=0).max() > 0  # dropout is on: passes differ
    deterministic = np.asarray(head(features, training=False))[:, 1]
    assert np.abs(first.mean(axis=0) - deterministic).mean() < 0.05
    mi = calibration.mutual_information(first)
    assert (mi >= 0).all() and (mi <= calibration.predictive_entropy(first) + 1e-12).all()


def test_zero_passes_is_refused():
    head, features = head_and_features()
    with pytest.raises(ValueError, match="at least 1"):
        uncertainty.mc_dropout_passes(head, features, passes=0)


# ----------------------------------------------------------------------------- the U-Net's views

def smooth_images(n=3, size=32):
    """Round bright blobs, centred: rotation and flip move them little."""
    yy, xx = np.mgrid[:size, :size]
    blob = np.exp(-((yy - size / 2 + 0.5) ** 2 + (xx - size / 2 + 0.5) ** 2) / (2 * 5.0 ** 2))
    return (np.repeat(blob[None, :, :, None], 3, axis=-1) * np.linspace(100, 250, n)[:, None, None, None]
            ).astype(np.uint8)


def test_each_view_maps_back_onto_the_slice():
    images = smooth_images()
    logits = images[..., 0].astype(np.float32) / 10 - 5
    for flip, angle in uncertainty.TTA_VIEWS:
        seen = uncertainty._view(images, flip, angle)[..., 0].astype(np.float32) / 10 - 5
        back = uncertainty._unview(seen, flip, angle)
        inner = (slice(None), slice(8, 24), slice(8, 24))  # away from the rotated corners
        np.testing.assert_allclose(back[inner], logits[inner], atol=0.6)
    flipped = uncertainty._view(images, True, 0.0)
    np.testing.assert_array_equal(uncertainty._unview(flipped[..., 0], True, 0.0), images[..., 0])


def test_a_model_that_ignores_the_views_has_no_mutual_information():
    import pandas as pd

    images = smooth_images()
    rows = pd.DataFrame({"patient_id": ["a"] * 3, "slice_number": [1, 2, 3]})
    constant = lambda batch: np.full(batch.shape[:3], 0.3, np.float32)
    samples, entropy, information = uncertainty.tta_passes(constant, images, rows, "max_probability")
    assert samples.shape == (len(uncertainty.TTA_VIEWS), 3)
    np.testing.assert_allclose(samples, 1 / (1 + np.exp(-0.3)))
    np.testing.assert_allclose(calibration.mutual_information(samples), 0, atol=1e-12)
    inner = (slice(None), slice(8, 24), slice(8, 24))
    np.testing.assert_allclose(information[inner], 0, atol=1e-9)
    np.testing.assert_allclose(entropy[inner], calibration.binary_entropy(1 / (1 + np.exp(-0.3))))


def test_views_that_disagree_carry_mutual_information():
    import pandas as pd

    images = smooth_images()
    rows = pd.DataFrame({"patient_id": ["a"] * 3, "slice_number": [1, 2, 3]})
    calls = iter(range(100))
    alternating = lambda batch: np.full(batch.shape[:3], 4.0 if next(calls) % 2 else -4.0, np.float32)
    samples, _, information = uncertainty.tta_passes(alternating, images, rows, "max_probability")
    assert calibration.mutual_information(samples).min() > 0.5  # near ln 2 - H(sigmoid(4))
    assert information[:, 16, 16].min() > 0.5


# ----------------------------------------------------------------------------- per unit

class FakeUnit:
    def __init__(self, predictions):
        self.predictions = predictions


def test_unit_table_fits_the_temperature_on_validation_only_and_keeps_calls():
    import pandas as pd

    rng = np.random.default_rng(0)
    p_test = rng.uniform(0.05, 0.95, 40)
    unit = FakeUnit(pd.DataFrame({"patient_id": ["p"] * 40, "slice_number": range(40),
                                  "p_tumor": p_test}))
    samples = np.clip(p_test + rng.normal(0, 0.05, (10, 40)), 0.01, 0.99)
    # validation probabilities twice as confident (in log-odds) as their labels warrant
    z = rng.normal(0, 2, 4000)
    labels = (rng.uniform(size=4000) < 1 / (1 + np.exp(-z))).astype(int)
    sharp = 1 / (1 + np.exp(-2 * z))
    table = uncertainty.unit_table(unit, p_test, samples, sharp, 0.4, labels)
    assert abs(table["temperature"].iloc[0] - 2.0) < 0.2
    order = np.argsort(p_test)
    assert (np.diff(table["p_calibrated"].to_numpy()[order]) >= 0).all()  # same ranking, same calls
    np.testing.assert_allclose(table["margin"], -np.abs(calibration.logit(p_test) - calibration.logit(0.4)))
    np.testing.assert_allclose(table["mutual_information"], calibration.mutual_information(samples))
    no_validation = uncertainty.unit_table(unit, p_test, samples, np.empty(0), 0.5, np.empty(0))
    assert no_validation["temperature"].isna().all() and no_validation["p_calibrated"].isna().all()


def test_uncertainty_columns_join_their_units_predictions(tmp_path):
    import pandas as pd

    unit = tmp_path / "patient-none-fold0"
    unit.mkdir()
    pd.DataFrame({"patient_id": ["007", "007"], "slice_number": [1, 2], "p_tumor": [0.2, 0.9]}
                 ).to_csv(unit / "predictions.csv", index=False)
    plain = tmp_path / "patient-none-fold1"
    plain.mkdir()
    pd.DataFrame({"patient_id": ["008"], "slice_number": [1], "p_tumor": [0.4]}
                 ).to_csv(plain / "predictions.csv", index=False)
    pd.DataFrame({"patient_id": ["007", "007"], "slice_number": [2, 1], "entropy": [0.1, 0.6]}
                 ).to_csv(unit / "uncertainty.csv", index=False)
    table = experiment.with_uncertainty([unit, plain])
    assert table["patient_id"].tolist() == ["007", "007", "008"]  # ids stay text
    assert table["entropy"].tolist()[:2] == [0.6, 0.1] and np.isnan(table["entropy"].iloc[2])

"""Calibration and uncertainty measures against cases with known answers."""
import numpy as np
import pandas as pd
import pytest

from brainlib.trust import calibration as cal


def calibrated(n_patients=60, per_patient=40, seed=0):
    """Slices whose label is drawn with exactly the probability the model states."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(0, 1, n_patients * per_patient)
    return pd.DataFrame({"patient_id": np.repeat(np.arange(n_patients), per_patient),
                         "p_tumor": p, "y_true": (rng.uniform(size=p.size) < p).astype(int)})


def test_a_perfectly_calibrated_model_has_ece_near_zero_within_its_interval():
    frame = calibrated()
    ece, low, high = cal.ece_interval(frame, n_resamples=300, seed=1)
    assert ece < 0.03 and low <= ece <= high
    assert low < 0.02  # zero-ish lies at the interval's low end
    # an over-confident copy (probabilities pushed to 0/1) is clearly miscalibrated
    sharp = frame.assign(p_tumor=cal.apply_temperature(frame["p_tumor"], 0.3))
    assert cal.ece_interval(sharp, n_resamples=300, seed=1)[1] > high


def test_ece_and_brier_by_hand():
    y = np.array([0, 0, 1, 1])
    p = np.array([0.1, 0.15, 0.8, 0.95])  # bins 1, 1, 8, 9
    # bin 1: mean p 0.125, rate 0 -> 0.125 x 2; bin 8: 0.8 vs 1 -> 0.2; bin 9: 0.95 vs 1 -> 0.05
    assert cal.expected_calibration_error(y, p) == pytest.approx((0.25 + 0.2 + 0.05) / 4)
    parts = cal.brier_decomposition(y, p)
    assert parts["brier"] == pytest.approx(np.mean((p - y) ** 2))
    assert parts["uncertainty"] == pytest.approx(0.25)
    # with one probability per bin the decomposition is exact
    q = np.array([0.1, 0.1, 0.9, 0.9])
    exact = cal.brier_decomposition(y, q)
    assert exact["brier"] == pytest.approx(exact["reliability"] - exact["resolution"]
                                           + exact["uncertainty"])


def test_entropy_and_mutual_information_by_hand():
    # two passes per slice; slice 0 agrees (0.5, 0.5), slice 1 disagrees (0.1, 0.9)
    samples = np.array([[0.5, 0.1], [0.5, 0.9]])
    h = lambda q: -(q * np.log(q) + (1 - q) * np.log(1 - q))  # noqa: E731
    assert cal.predictive_entropy(samples) == pytest.approx([np.log(2), np.log(2)])
    assert cal.mutual_information(samples) == pytest.approx([0.0, np.log(2) - h(0.1)])
    assert cal.binary_entropy([0.0, 1.0]) == pytest.approx([0.0, 0.0], abs=1e-5)


def test_temperature_scaling_recovers_a_known_temperature():
    rng = np.random.default_rng(3)
    z = rng.normal(0, 2, 20_000)
    y = (rng.uniform(size=z.size) < 1 / (1 + np.exp(-z))).astype(int)
    overconfident = 1 / (1 + np.exp(-z * 2.5))  # the model's logits are 2.5x too large
    assert cal.fit_temperature(y, overconfident) == pytest.approx(2.5, rel=0.05)
    fixed = cal.apply_temperature(overconfident, cal.fit_temperature(y, overconfident))
    assert cal.expected_calibration_error(y, fixed) < cal.expected_calibration_error(
        y, overconfident)


def test_referral_keeps_the_confident_slices_and_uncertainty_flags_errors():
    frame = calibrated(seed=4)
    y, p = frame["y_true"], frame["p_tumor"]
    uncertainty = cal.binary_entropy(p)
    curve = cal.referral_curve(y, p, uncertainty)
    assert curve["kept"].iloc[0] == len(frame) and curve["referred"].tolist()[-1] == 0.5
    assert curve["accuracy"].is_monotonic_increasing
    assert cal.error_detection_auroc(y, p, uncertainty) > 0.6
    noise = np.random.default_rng(5).uniform(size=len(frame))
    assert abs(cal.error_detection_auroc(y, p, noise) - 0.5) < 0.05


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="0/1"):
        cal.expected_calibration_error([0, 2], [0.1, 0.2])
    with pytest.raises(ValueError, match="probabilities"):
        cal.expected_calibration_error([0, 1], [0.1, 1.2])

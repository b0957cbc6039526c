"""MC dropout over cached features: stochastic, reproducible under a seed, centred on the
deterministic prediction."""
import numpy as np
import pytest

from brainlib import calibration, models, uncertainty


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

"""Tests of brainlib.chapters.plots: each helper returns a go.Figure drawing the numbers it was given."""

import numpy as np
import plotly.graph_objects as go
import pytest

from brainlib.measures import metrics as me
from brainlib.chapters import plots
from brainlib import stats as st
from simulated import simulate_predictions


@pytest.fixture(scope="module")
def paired():
    return st.pair_predictions(simulate_predictions(n_patients=30, n_slices=500, seed=2),
                              "resnet50", "vgg16")


def test_confusion_matrix_figure_shows_the_counts():
    counts = me.ConfusionCounts(tp=40, fp=5, fn=10, tn=45)
    figure = plots.confusion_matrix_figure(counts)
    assert isinstance(figure, go.Figure)
    np.testing.assert_array_equal(figure.data[0].z, [[40, 10], [5, 45]])
    shares = plots.confusion_matrix_figure(counts, normalise=True).data[0].z
    np.testing.assert_allclose(np.sum(shares, axis=1), 1.0)


def test_roc_figure_draws_curves_bands_and_chance(paired):
    curves = {m: me.roc_curve(paired["y_true"], paired[f"p_tumor_{s}"])
              for m, s in (("resnet50", "a"), ("vgg16", "b"))}
    band = st.roc_confidence_band(paired["y_true"], paired["p_tumor_a"], n_resamples=50)
    figure = plots.roc_figure(curves, {"resnet50": band})
    assert len(figure.data) == 1 + 2 + 1
    assert any("AUC" in trace.name for trace in figure.data)
    np.testing.assert_allclose(figure.data[1].x, curves["resnet50"].fpr)


def test_forest_figure_from_bootstrap_differences(paired):
    differences = st.bootstrap_metrics(paired, n_resamples=200).differences()
    figure = plots.forest_figure(differences, rope=0.01)
    trace = figure.data[0]
    assert list(trace.y) == list(differences["metric"])
    np.testing.assert_allclose(np.asarray(trace.error_x.array) + trace.x, differences["ci_high"])
    with pytest.raises(ValueError, match="expected columns"):
        plots.forest_figure(differences.drop(columns="ci_low"))


def test_posterior_figure_accepts_densities_and_draws(paired):
    posteriors = {
        "accuracy": st.beta_posterior(90, 100),
        "folds": st.bayesian_correlated_ttest([0.9, 0.92, 0.91], [0.88, 0.9, 0.9], rho=1 / 3),
        "paired": st.paired_posterior(paired, n_draws=2000),
        "point": st.bayesian_correlated_ttest([0.9, 0.9], [0.8, 0.8], rho=0.5),
    }
    figure = plots.posterior_figure(posteriors, rope=0.01)
    kinds = [type(trace).__name__ for trace in figure.data]
    assert kinds == ["Scatter", "Scatter", "Histogram"]
    x, y = figure.data[0].x, figure.data[0].y
    assert np.trapezoid(y, x) == pytest.approx(1.0, abs=1e-3)  # a density over its support

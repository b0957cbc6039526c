"""Plotly figures of the study's results; every function returns a ``go.Figure``.

The figures draw result objects of ``metrics`` and ``stats`` (or their frames) and compute
nothing of their own beyond what is needed to draw.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from ..measures.metrics import ConfusionCounts, RocCurve

CLASS_LABELS = ("tumor", "no tumor")


def confusion_matrix_figure(counts: ConfusionCounts, title: str = "Confusion matrix",
                            normalise: bool = False) -> go.Figure:
    """Heatmap with true class down, predicted class across, counts (or row shares) printed."""
    table = counts.to_frame().to_numpy().astype(np.float64)
    shown = table / table.sum(axis=1, keepdims=True) if normalise else table
    text = [[f"{v:.1%}" if normalise else f"{int(v)}" for v in row] for row in shown]
    figure = go.Figure(go.Heatmap(
        z=shown, x=[f"predicted {c}" for c in CLASS_LABELS], y=[f"true {c}" for c in CLASS_LABELS],
        text=text, texttemplate="%{text}", colorscale="Blues", showscale=False,
        hovertemplate="%{y}, %{x}: %{text}<extra></extra>"))
    figure.update_yaxes(autorange="reversed")
    # wide enough for a two-line title beside the "true no tumor" labels (no cut-off)
    figure.update_layout(title=dict(text=title, font=dict(size=14)), width=520, height=400,
                         margin=dict(t=90))
    return figure


def roc_figure(curves: dict[str, RocCurve], bands: dict | None = None,
               title: str = "ROC curves") -> go.Figure:
    """ROC curves (``metrics.roc_curve``), with bootstrap bands (``stats.roc_confidence_band``)
    drawn behind them when given, keyed by the same model names."""
    figure = go.Figure()
    for name, band in (bands or {}).items():
        figure.add_trace(go.Scatter(
            x=np.r_[band.fpr, band.fpr[::-1]], y=np.r_[band.tpr_high, band.tpr_low[::-1]],
            fill="toself", mode="lines", line=dict(width=0), opacity=0.25, hoverinfo="skip",
            name=f"{name} {band.confidence:.0%} band ({band.unit})"))
    for name, curve in curves.items():
        figure.add_trace(go.Scatter(x=curve.fpr, y=curve.tpr, mode="lines", line_shape="hv",
                                    name=f"{name} (AUC {curve.auc:.3f})"))
    figure.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="chance",
                                line=dict(dash="dot", color="grey")))
    figure.update_layout(title=title, xaxis_title="false-positive rate (1 - specificity)",
                         yaxis_title="true-positive rate (sensitivity)", width=560, height=500)
    figure.update_xaxes(range=[0, 1])
    figure.update_yaxes(range=[0, 1.02])
    return figure


def forest_figure(frame: pd.DataFrame, label: str = "metric", estimate: str = "estimate",
                  low: str = "ci_low", high: str = "ci_high", rope: float | None = None,
                  title: str = "Differences with confidence intervals") -> go.Figure:
    """Forest plot: one row per line of ``frame`` (e.g. ``BootstrapResult.differences()``),
    a point at the estimate, a bar for the interval, a line at zero and an optional ROPE."""
    missing = [c for c in (label, estimate, low, high) if c not in frame.columns]
    if missing:
        raise ValueError(f"forest_figure: expected columns {missing} in the frame, found "
                         f"{list(frame.columns)}")
    labels = frame[label].astype(str).tolist()
    figure = go.Figure(go.Scatter(
        x=frame[estimate], y=labels, mode="markers", marker=dict(size=9),
        error_x=dict(type="data", symmetric=False, array=frame[high] - frame[estimate],
                     arrayminus=frame[estimate] - frame[low]),
        hovertemplate="%{y}: %{x:.4f}<extra></extra>", name="estimate"))
    if rope:
        figure.add_vrect(x0=-rope, x1=rope, fillcolor="grey", opacity=0.15, line_width=0,
                         annotation_text="ROPE", annotation_position="top left")
    figure.add_vline(x=0, line_dash="dot", line_color="grey")
    figure.update_yaxes(autorange="reversed")
    figure.update_layout(title=title, xaxis_title="difference", width=620,
                         height=160 + 40 * len(labels), showlegend=False)
    return figure


def posterior_figure(posteriors: dict, rope: float | None = None, points: int = 400,
                     title: str = "Posterior densities") -> go.Figure:
    """Densities of posteriors keyed by name: objects with ``pdf`` and ``interval``
    (``BetaPosterior``, ``CorrelatedTTestResult``), or draws (an array, or an object with
    ``draws`` such as ``PairedPosterior``) shown as a normalised histogram."""
    figure = go.Figure()
    for name, posterior in posteriors.items():
        if hasattr(posterior, "pdf") and hasattr(posterior, "interval"):
            low, high = posterior.interval(0.9999)
            if low == high:  # a point mass
                figure.add_vline(x=low, annotation_text=name)
                continue
            x = np.linspace(low, high, points)
            figure.add_trace(go.Scatter(x=x, y=posterior.pdf(x), mode="lines", name=name))
        else:
            draws = np.asarray(getattr(posterior, "draws", posterior), dtype=np.float64)
            figure.add_trace(go.Histogram(x=draws, histnorm="probability density", nbinsx=80,
                                          opacity=0.6, name=name))
    if rope:
        figure.add_vrect(x0=-rope, x1=rope, fillcolor="grey", opacity=0.15, line_width=0,
                         annotation_text="ROPE", annotation_position="top left")
    figure.update_layout(title=title, xaxis_title="value", yaxis_title="density",
                         barmode="overlay", width=620, height=420)
    return figure


def learning_curves_figure(histories: pd.DataFrame, title: str = "Learning curves",
                           quantities=("accuracy", "loss")) -> go.Figure:
    """Training and inner-validation curves per epoch (`runner.read_histories`): one
    column per quantity, one row per fold, one line per model and set; the validation
    lines appear when the protocol had validation patients."""
    import plotly.express as px

    curves = [c for q in quantities for c in (q, f"val_{q}") if c in histories.columns]
    long = histories.melt(id_vars=["model", "fold", "epoch"], value_vars=curves,
                          var_name="curve", value_name="value").dropna(subset=["value"])
    long["quantity"] = long["curve"].str.replace("val_", "", regex=False)
    long["set"] = np.where(long["curve"].str.startswith("val_"), "inner validation", "training")
    fig = px.line(long, x="epoch", y="value", color="set", line_dash="model",
                  facet_col="quantity",
                  facet_row="fold" if long["fold"].nunique() > 1 else None,
                  markers=True, title=title)
    return fig.update_yaxes(matches=None)


def leakage_figure(frame: pd.DataFrame, majority_rate: float,
                   title: str = "Slice split vs patient split") -> go.Figure:
    """Accuracy and AUC per experiment and model with their intervals
    (`leakage_report.LeakageTable.frame`), chance drawn as a dotted line."""
    import plotly.express as px

    frame = frame.assign(experiment=frame["split"] + " split, " + frame["labels"] + " labels")
    order = ["accuracy", "auc"]
    fig = px.scatter(frame, x="experiment", y="estimate", color="model", facet_col="metric",
                     category_orders={"metric": order},
                     error_y=frame["ci_high"] - frame["estimate"],
                     error_y_minus=frame["estimate"] - frame["ci_low"], title=title)
    for column, metric in enumerate(order, start=1):
        fig.add_hline(y=0.5 if metric == "auc" else majority_rate, line_dash="dot",
                      line_color="grey", col=column, row=1, annotation_text="chance",
                      annotation_position="bottom right")
    fig.update_traces(marker_size=10)
    return fig.update_layout(width=900, height=480)


def t_posterior_figure(posterior, rope: float | None = None, title: str = "Posterior",
                       label: str = "mean difference", points: int = 400) -> go.Figure:
    """The density of a Student-t posterior (`stats.bayesian_correlated_ttest`), with the
    ROPE shaded and zero dotted."""
    import plotly.express as px

    x = np.linspace(*posterior.interval(0.99), points)
    fig = px.line(x=x, y=posterior.pdf(x), labels={"x": label, "y": "density"}, title=title)
    if rope is not None:
        fig.add_vrect(x0=-rope, x1=rope, fillcolor="grey", opacity=0.15, line_width=0,
                      annotation_text="ROPE", annotation_position="top left")
    fig.add_vline(x=0, line_dash="dot", line_color="grey")
    return fig

"""Bootstrap of the ROC curve and its area: patient-cluster CIs of two AUCs and their
difference, and a pointwise band of one ROC curve, resampling slices or whole patients."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .bootstrap import BootstrapResult, intervals_frame, scipy_engine
from .pairing import check_one_experiment, model_names
from ..measures.results import Result, as_rng


def _cluster_pair_sums(y_true, score, cluster_index, n_clusters) -> np.ndarray:
    """M[p, q] = sum over tumor slices i of patient p and non-tumor slices j of patient q of
    [s_i > s_j] + 1/2 [s_i = s_j]; an AUC of any patient resample is w'Mw / (w.m1 * w.m0)."""
    positive = y_true == 1
    x, x_cluster = score[positive], cluster_index[positive]
    placements = np.zeros((x.size, n_clusters))
    negatives = ~positive
    for q in range(n_clusters):
        y_q = np.sort(score[negatives & (cluster_index == q)])
        if y_q.size:
            placements[:, q] = (np.searchsorted(y_q, x, "left") + np.searchsorted(y_q, x, "right")) / 2
    pair_sums = np.zeros((n_clusters, n_clusters))
    np.add.at(pair_sums, x_cluster, placements)
    return pair_sums


def cluster_bootstrap_auc(paired: pd.DataFrame, cluster: str = "patient_id",
                          n_resamples: int = 2000, confidence: float = 0.95,
                          method: str = "BCa", seed=0) -> BootstrapResult:
    """Patient-cluster bootstrap CIs of AUC a, AUC b and AUC a - AUC b (patients resampled
    with their slices; every resample's AUC computed exactly from per-patient pair sums)."""
    check_one_experiment(paired, "cluster_bootstrap_auc")
    model_a, model_b = model_names(paired)
    y_true = paired["y_true"].to_numpy()
    cluster_index, names = pd.factorize(paired[cluster], sort=True)
    n_clusters = len(names)
    pair_sums = [_cluster_pair_sums(y_true, paired[f"p_tumor_{s}"].to_numpy(np.float64),
                                    cluster_index, n_clusters) for s in ("a", "b")]
    n_pos = np.bincount(cluster_index, weights=y_true, minlength=n_clusters)
    n_neg = np.bincount(cluster_index, weights=1 - y_true, minlength=n_clusters)

    def statistic(sample, axis=-1):
        sample = sample.astype(np.int64)
        lead = sample.shape[:-1]
        flat = sample.reshape(-1, sample.shape[-1])
        offsets = (n_clusters * np.arange(flat.shape[0]))[:, None]
        weights = np.bincount((flat + offsets).ravel(), minlength=n_clusters * flat.shape[0])
        weights = weights.reshape(flat.shape[0], n_clusters).astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            pairs = (weights @ n_pos) * (weights @ n_neg)
            aucs = [np.einsum("rp,pq,rq->r", weights, m, weights) / pairs for m in pair_sums]
        out = np.stack([aucs[0], aucs[1], aucs[0] - aucs[1]])
        return out.reshape((3,) + lead)

    labels = [("auc", model_a), ("auc", model_b), ("auc", f"{model_a} - {model_b}")]
    estimate, distribution, low, high = scipy_engine(np.arange(n_clusters), statistic,
                                                      n_resamples, confidence, method,
                                                      as_rng(seed), batch=None)
    frame = intervals_frame(labels, estimate, distribution, low, high, method, confidence)
    return BootstrapResult(frame=frame, unit=cluster, n_units=n_clusters,
                           n_resamples=n_resamples, confidence=confidence,
                           distribution=distribution)


@dataclass
class RocBand(Result):
    """Pointwise bootstrap band of the ROC curve: TPR quantiles at fixed false-positive rates."""

    fpr: np.ndarray
    tpr: np.ndarray
    tpr_low: np.ndarray
    tpr_high: np.ndarray
    confidence: float
    unit: str
    n_resamples: int

    def title(self) -> str:
        return (f"ROC {self.confidence:.0%} band, {self.n_resamples} resamples of {self.unit} "
                "(TPR at each FPR = best TPR reached without exceeding it)")

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame({"fpr": self.fpr, "tpr": self.tpr, "tpr_low": self.tpr_low,
                             "tpr_high": self.tpr_high})


def roc_confidence_band(y_true, p_tumor, cluster=None, n_resamples: int = 500,
                        confidence: float = 0.95, fpr_grid=None, seed=0) -> RocBand:
    """Percentile band of TPR over a grid of FPR, resampling slices or whole clusters."""
    y_true = np.asarray(y_true).astype(np.int64)
    score = np.asarray(p_tumor, dtype=np.float64)
    grid = np.linspace(0, 1, 101) if fpr_grid is None else np.asarray(fpr_grid, dtype=np.float64)
    order = np.argsort(-score, kind="mergesort")
    truth = y_true[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(score[order]) != 0), score.size - 1]
    rng = as_rng(seed)
    if cluster is None:
        weights = rng.multinomial(score.size, np.full(score.size, 1 / score.size), size=n_resamples)
        unit = "slices"
    else:
        cluster_index, names = pd.factorize(np.asarray(cluster), sort=True)
        drawn = rng.multinomial(len(names), np.full(len(names), 1 / len(names)), size=n_resamples)
        weights = drawn[:, cluster_index]
        unit = "clusters"
    weights = np.vstack([np.ones(score.size), weights])[:, order].astype(np.float64)

    tp = np.cumsum(weights * truth, axis=1)[:, last_of_tie]
    fp = np.cumsum(weights * (1 - truth), axis=1)[:, last_of_tie]
    with np.errstate(divide="ignore", invalid="ignore"):
        tpr = np.hstack([np.zeros((tp.shape[0], 1)), tp / tp[:, -1:]])
        fpr = np.hstack([np.zeros((fp.shape[0], 1)), fp / fp[:, -1:]])
    curves = np.empty((tpr.shape[0], grid.size))
    for row in range(tpr.shape[0]):
        at = np.searchsorted(fpr[row], grid, side="right") - 1
        curves[row] = tpr[row, np.clip(at, 0, None)]
    alpha = (1 - confidence) / 2
    low, high = np.nanquantile(curves[1:], [alpha, 1 - alpha], axis=0)
    return RocBand(fpr=grid, tpr=curves[0], tpr_low=low, tpr_high=high, confidence=confidence,
                   unit=unit, n_resamples=n_resamples)

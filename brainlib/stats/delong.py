"""DeLong's test of two correlated AUCs, with Obuchowski's patient-clustered variant, and
the DeLong CI of one AUC (on the logit scale by default, so it stays inside (0, 1))."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import special
from scipy import stats as sps

from .pairing import check_one_experiment, model_names
from ..measures.results import Result


def _placements(y_true: np.ndarray, scores: np.ndarray):
    """Structural components of DeLong et al. (1988) by midranks (Sun & Xu 2014):
    v10[r, i] = P(score of negative < positive i) (+1/2 ties), v01[r, j] = P(positive > negative j)."""
    positive = y_true == 1
    m, n = int(positive.sum()), int((~positive).sum())
    if m == 0 or n == 0:
        raise ValueError(f"DeLong: expected both classes, found {m} positives and {n} negatives")
    x, y = scores[:, positive], scores[:, ~positive]
    tz = sps.rankdata(np.concatenate([x, y], axis=1), axis=1)
    tx = sps.rankdata(x, axis=1)
    ty = sps.rankdata(y, axis=1)
    v10 = (tz[:, :m] - tx) / n
    v01 = 1.0 - (tz[:, m:] - ty) / m
    return v10, v01, v10.mean(axis=1)


def delong_covariance(y_true, scores, cluster=None) -> tuple[np.ndarray, np.ndarray]:
    """AUCs and their covariance matrix for k score vectors on the same cases (fast DeLong).

    With ``cluster`` (one label per case, e.g. patient_id) the covariance is Obuchowski's
    (1997) clustered form: structural components summed within each cluster; with one case
    per cluster it equals DeLong's.
    """
    y_true = np.asarray(y_true).astype(np.int64)
    scores = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    if scores.shape[1] != y_true.size:
        raise ValueError(f"delong_covariance: expected scores with {y_true.size} columns, "
                         f"found shape {scores.shape}")
    v10, v01, aucs = _placements(y_true, scores)
    m, n = v10.shape[1], v01.shape[1]
    if cluster is None:
        s10 = np.atleast_2d(np.cov(v10))
        s01 = np.atleast_2d(np.cov(v01))
        return aucs, s10 / m + s01 / n
    cluster_index, names = pd.factorize(np.asarray(cluster), sort=True)
    n_clusters = len(names)
    positive = y_true == 1
    pos_cluster, neg_cluster = cluster_index[positive], cluster_index[~positive]
    u = np.stack([np.bincount(pos_cluster, weights=row - auc, minlength=n_clusters)
                  for row, auc in zip(v10, aucs)])
    w = np.stack([np.bincount(neg_cluster, weights=row - auc, minlength=n_clusters)
                  for row, auc in zip(v01, aucs)])
    i10 = np.unique(pos_cluster).size
    i01 = np.unique(neg_cluster).size
    if min(i10, i01) < 2:
        raise ValueError(f"clustered DeLong: expected >= 2 clusters with positives and with "
                         f"negatives, found {i10} and {i01}")
    covariance = (i10 / (i10 - 1) * (u @ u.T) / m**2 + i01 / (i01 - 1) * (w @ w.T) / n**2
                  + n_clusters / (n_clusters - 1) * (u @ w.T + w @ u.T) / (m * n))
    return aucs, covariance


@dataclass
class DeLongResult(Result):
    """DeLong's test of two correlated AUCs (difference a - b)."""

    model_a: str
    model_b: str
    auc_a: float
    auc_b: float
    difference: float
    se: float
    statistic: float
    pvalue: float
    ci_low: float
    ci_high: float
    confidence: float
    method: str
    n_positive: int
    n_negative: int
    n_clusters: int | None

    def title(self) -> str:
        return f"{self.method}: AUC {self.model_a} vs {self.model_b}"

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([{
            "model_a": self.model_a, "model_b": self.model_b, "auc_a": self.auc_a,
            "auc_b": self.auc_b, "difference": self.difference, "se": self.se,
            "statistic": self.statistic, "pvalue": self.pvalue, "ci_low": self.ci_low,
            "ci_high": self.ci_high, "method": self.method, "n_positive": self.n_positive,
            "n_negative": self.n_negative, "n_clusters": self.n_clusters}])


def delong_test(paired: pd.DataFrame, cluster: str | None = None,
                confidence: float = 0.95) -> DeLongResult:
    """DeLong's z-test of AUC a = AUC b on paired slices; ``cluster="patient_id"`` uses the
    Obuchowski clustered variance so correlated slices of a patient are not over-counted."""
    check_one_experiment(paired, "delong_test")
    model_a, model_b = model_names(paired)
    y_true = paired["y_true"].to_numpy()
    scores = np.stack([paired["p_tumor_a"].to_numpy(), paired["p_tumor_b"].to_numpy()])
    clusters = None if cluster is None else paired[cluster].to_numpy()
    aucs, cov = delong_covariance(y_true, scores, clusters)
    difference = float(aucs[0] - aucs[1])
    variance = float(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    se = float(np.sqrt(max(variance, 0.0)))
    if se > 0:
        statistic = difference / se
        pvalue = float(2 * sps.norm.sf(abs(statistic)))
    else:  # identical rankings: no evidence of a difference
        statistic, pvalue = (0.0, 1.0) if difference == 0 else (np.sign(difference) * np.inf, 0.0)
    z = sps.norm.ppf(0.5 + confidence / 2)
    method = "DeLong" if cluster is None else f"DeLong, Obuchowski-clustered by {cluster}"
    return DeLongResult(
        model_a=model_a, model_b=model_b, auc_a=float(aucs[0]), auc_b=float(aucs[1]),
        difference=difference, se=se, statistic=float(statistic), pvalue=pvalue,
        ci_low=difference - z * se, ci_high=difference + z * se, confidence=confidence,
        method=method, n_positive=int(y_true.sum()), n_negative=int((y_true == 0).sum()),
        n_clusters=None if cluster is None else int(paired[cluster].nunique()))


@dataclass
class AucInterval(Result):
    """AUC of one model with a normal-theory CI from the DeLong (or clustered) variance."""

    auc: float
    se: float
    ci_low: float
    ci_high: float
    confidence: float
    method: str

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([{"auc": self.auc, "se": self.se, "ci_low": self.ci_low,
                              "ci_high": self.ci_high, "method": self.method}])


AUC_TRANSFORMS = ("logit", "none")


def auc_interval(y_true, p_tumor, cluster=None, confidence: float = 0.95,
                 transform: str = "logit") -> AucInterval:
    """AUC with a CI from the DeLong SE (clustered when ``cluster`` labels are given).

    ``logit`` (default): logit(AUC) +- z * SE / (AUC (1 - AUC)) (delta method), mapped back,
    so the interval stays inside (0, 1) and is shorter on the side of the nearer boundary;
    at AUC = 0 or 1 the logit is infinite and the clipped Wald interval is used instead, as
    ``method`` says. ``none``: AUC +- z * SE, clipped to [0, 1].
    """
    if transform not in AUC_TRANSFORMS:
        raise ValueError(f"auc_interval: expected transform in {AUC_TRANSFORMS}, "
                         f"found {transform!r}")
    aucs, cov = delong_covariance(y_true, p_tumor, cluster)
    auc = float(aucs[0])
    se = float(np.sqrt(max(cov[0, 0], 0.0)))
    z = sps.norm.ppf(0.5 + confidence / 2)
    method = "DeLong" if cluster is None else "DeLong, clustered"
    if transform == "logit" and 0.0 < auc < 1.0:
        centre = np.log(auc / (1 - auc))
        half = z * se / (auc * (1 - auc))
        low, high = special.expit(centre - half), special.expit(centre + half)
        method += ", logit"
    else:
        low, high = max(0.0, auc - z * se), min(1.0, auc + z * se)
        method += ", Wald" if transform == "none" else ", Wald (AUC at the boundary)"
    return AucInterval(auc=auc, se=se, ci_low=float(low), ci_high=float(high),
                       confidence=confidence, method=method)

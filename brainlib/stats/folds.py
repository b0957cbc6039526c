"""Tests across cross-validation folds: the Nadeau-Bengio corrected resampled t-test and
the Bayesian correlated t-test of the per-fold differences a - b."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps

from ..measures.metrics import METRIC_NAMES, fold_metrics
from ..measures.results import Result


@dataclass
class CorrectedTTestResult(Result):
    """Nadeau-Bengio corrected resampled t-test of per-fold differences a - b."""

    model_a: str
    model_b: str
    metric: str
    n_folds: int
    mean_difference: float
    se: float
    statistic: float
    df: int
    pvalue: float
    ci_low: float
    ci_high: float
    test_train_ratio: float
    uncorrected_pvalue: float

    def title(self) -> str:
        return (f"Nadeau-Bengio corrected t-test of {self.metric}, {self.model_a} - {self.model_b}, "
                f"{self.n_folds} folds, n_test/n_train = {self.test_train_ratio:.3g}")

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([{
            "metric": self.metric, "model_a": self.model_a, "model_b": self.model_b,
            "n_folds": self.n_folds, "mean_difference": self.mean_difference, "se": self.se,
            "statistic": self.statistic, "df": self.df, "pvalue": self.pvalue,
            "ci_low": self.ci_low, "ci_high": self.ci_high,
            "uncorrected_pvalue": self.uncorrected_pvalue}])


def _fold_differences(scores_a, scores_b) -> np.ndarray:
    a = np.asarray(scores_a, dtype=np.float64)
    b = np.asarray(scores_b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or a.size < 2:
        raise ValueError(f"expected two equal-length 1-D arrays of >= 2 per-fold scores, found "
                         f"shapes {a.shape} and {b.shape}")
    if np.isnan(a).any() or np.isnan(b).any():
        raise ValueError("expected per-fold scores without NaN; drop or explain undefined folds")
    return a - b


def _t_from_moments(mean, variance, df):
    if variance > 0:
        statistic = mean / np.sqrt(variance)
        return float(statistic), float(2 * sps.t.sf(abs(statistic), df))
    return (0.0, 1.0) if mean == 0 else (float(np.sign(mean) * np.inf), 0.0)


def corrected_resampled_ttest(scores_a, scores_b, test_train_ratio: float,
                              confidence: float = 0.95, metric: str = "score",
                              model_a: str = "a", model_b: str = "b") -> CorrectedTTestResult:
    """Nadeau & Bengio (2003): t = mean(d) / sqrt((1/k + n_test/n_train) * var(d)), df = k-1.
    With ``test_train_ratio = 0`` it is the ordinary paired t-test."""
    d = _fold_differences(scores_a, scores_b)
    k = d.size
    mean, var = float(d.mean()), float(d.var(ddof=1))
    corrected_var = (1 / k + test_train_ratio) * var
    statistic, pvalue = _t_from_moments(mean, corrected_var, k - 1)
    _, uncorrected = _t_from_moments(mean, var / k, k - 1)
    half = sps.t.ppf(0.5 + confidence / 2, k - 1) * np.sqrt(corrected_var)
    return CorrectedTTestResult(
        model_a=model_a, model_b=model_b, metric=metric, n_folds=k, mean_difference=mean,
        se=float(np.sqrt(corrected_var)), statistic=statistic, df=k - 1, pvalue=pvalue,
        ci_low=mean - half, ci_high=mean + half, test_train_ratio=test_train_ratio,
        uncorrected_pvalue=uncorrected)


@dataclass
class CorrelatedTTestResult(Result):
    """Bayesian correlated t-test (Benavoli et al. 2017): Student posterior of the mean
    per-fold difference a - b."""

    model_a: str
    model_b: str
    metric: str
    n_folds: int
    mean: float
    scale: float
    df: int
    rho: float
    rope: float
    credible: float
    p_a_better: float
    """P(difference > rope)."""
    p_rope: float
    p_b_better: float
    """P(difference < -rope)."""

    def interval(self, mass: float | None = None) -> tuple[float, float]:
        mass = self.credible if mass is None else mass
        if self.scale == 0:
            return self.mean, self.mean
        low, high = sps.t.ppf([(1 - mass) / 2, (1 + mass) / 2], self.df, self.mean, self.scale)
        return float(low), float(high)

    def pdf(self, x) -> np.ndarray:
        return sps.t.pdf(x, self.df, self.mean, self.scale)

    def title(self) -> str:
        return (f"Bayesian correlated t-test of {self.metric}, {self.model_a} - {self.model_b}: "
                f"Student t(df={self.df}), rho = {self.rho:.3g}, ROPE +-{self.rope:g}")

    def to_frame(self) -> pd.DataFrame:
        low, high = self.interval()
        return pd.DataFrame([{
            "metric": self.metric, "model_a": self.model_a, "model_b": self.model_b,
            "n_folds": self.n_folds, "mean": self.mean, "scale": self.scale, "ci_low": low,
            "ci_high": high, "p_a_better": self.p_a_better, "p_rope": self.p_rope,
            "p_b_better": self.p_b_better}])


def bayesian_correlated_ttest(scores_a, scores_b, rho: float, rope: float = 0.01,
                              credible: float = 0.95, metric: str = "score", model_a: str = "a",
                              model_b: str = "b") -> CorrelatedTTestResult:
    """Posterior of the mean difference: t(df = k-1, loc = mean(d),
    scale^2 = (1/k + rho/(1-rho)) var(d)), rho = n_test/n_total (1/k for k-fold CV);
    the same correction as Nadeau-Bengio, read as a posterior under a flat prior."""
    if not 0 <= rho < 1:
        raise ValueError(f"bayesian_correlated_ttest: expected 0 <= rho < 1, found {rho}")
    d = _fold_differences(scores_a, scores_b)
    k = d.size
    mean = float(d.mean())
    scale = float(np.sqrt((1 / k + rho / (1 - rho)) * d.var(ddof=1)))
    if scale > 0:
        p_b = float(sps.t.cdf(-rope, k - 1, mean, scale))
        p_a = float(sps.t.sf(rope, k - 1, mean, scale))
    else:
        p_b, p_a = float(mean < -rope), float(mean > rope)
    return CorrelatedTTestResult(
        model_a=model_a, model_b=model_b, metric=metric, n_folds=k, mean=mean, scale=scale,
        df=k - 1, rho=rho, rope=rope, credible=credible, p_a_better=p_a,
        p_rope=max(0.0, 1.0 - p_a - p_b), p_b_better=p_b)


@dataclass
class FoldComparison(Result):
    """Per-fold metric of two models and both fold-level tests of their difference."""

    per_fold: pd.DataFrame
    corrected_ttest: CorrectedTTestResult
    bayesian: CorrelatedTTestResult

    def title(self) -> str:
        return f"{self.corrected_ttest.title()}\n{self.bayesian.title()}"

    def to_frame(self) -> pd.DataFrame:
        left = self.corrected_ttest.to_frame()[["metric", "model_a", "model_b", "n_folds",
                                                 "mean_difference", "ci_low", "ci_high",
                                                 "pvalue", "uncorrected_pvalue"]]
        right = self.bayesian.to_frame()[["p_a_better", "p_rope", "p_b_better"]]
        return pd.concat([left, right], axis=1)


def compare_folds(predictions: pd.DataFrame, metric: str, model_a: str, model_b: str,
                  rope: float = 0.01,
                  confidence: float = 0.95) -> FoldComparison:
    """Fold-level tests of one (scheme, control) experiment. Every fold's test set is its own
    rows and its training set is taken to be all other scored rows, so
    n_test/n_train = mean fold size / (total - mean fold size) and rho = n_test/n_total."""
    table = fold_metrics(predictions)
    keys = [k for k in ("scheme", "control") if k in table.columns]
    if keys and len(table[keys].drop_duplicates()) > 1:
        raise ValueError(f"compare_folds: expected one (scheme, control) experiment, found "
                         f"{table[keys].drop_duplicates().to_dict('records')}; filter first")
    if metric not in table.columns:
        raise ValueError(f"compare_folds: expected a metric in {list(METRIC_NAMES) + ['auc']}, "
                         f"found {metric!r}")
    sides = {m: table[table["model"] == m].set_index("fold") for m in (model_a, model_b)}
    for m, rows in sides.items():
        if rows.empty:
            raise ValueError(f"compare_folds: model {m!r} not in the predictions table")
    if set(sides[model_a].index) != set(sides[model_b].index):
        raise ValueError(f"compare_folds: expected the same folds, found {sorted(sides[model_a].index)} "
                         f"for {model_a!r} and {sorted(sides[model_b].index)} for {model_b!r}")
    folds = sorted(sides[model_a].index)
    a = sides[model_a].loc[folds, metric].to_numpy(np.float64)
    b = sides[model_b].loc[folds, metric].to_numpy(np.float64)
    fold_size = sides[model_a].loc[folds, "n"].to_numpy(np.float64)
    n_total = fold_size.sum()
    rho = float(fold_size.mean() / n_total)
    per_fold = pd.DataFrame({"fold": folds, "n": fold_size.astype(int), model_a: a, model_b: b,
                             "difference": a - b})
    names = dict(metric=metric, model_a=model_a, model_b=model_b)
    return FoldComparison(
        per_fold=per_fold,
        corrected_ttest=corrected_resampled_ttest(a, b, rho / (1 - rho), confidence, **names),
        bayesian=bayesian_correlated_ttest(a, b, rho, rope, confidence, **names))

"""Paired comparison of two models on the same slices, aware that slices come from patients.

The paper compares ResNet50 with VGG16 by two confusion matrices and no test. This module
gives the tests it promised: McNemar (exact, mid-p, chi-square with and without continuity
correction) with a CI of the accuracy difference; bootstrap CIs of eqs. (30)-(35) for both
models and their difference, resampling slices or whole patients; Beta-Binomial and
Dirichlet posteriors (Bayes' rule, eq. 13) with a region of practical equivalence (ROPE) and
a patient-level variant; DeLong's test of two correlated AUCs with a patient-clustered
variant; Nadeau-Bengio and Bayesian correlated t-tests across folds; Holm's correction.

Model "a" is the first model passed to ``pair_predictions`` (ResNet50 by default) and every
difference is a - b. Slices of one patient are not independent: where a method has a
patient-level form, prefer it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats as sps

from .metrics import (
    METRIC_NAMES, ConfusionCounts, check_predictions, fold_metrics, metrics_from_counts,
    slice_metrics,
)

PAIR_KEYS = ("scheme", "control", "fold", "patient_id", "slice_number")
"""Columns that identify one scored slice; two models are paired on these."""

MCNEMAR_METHODS = ("exact", "midp", "chi2", "chi2_corrected")


class _Result:
    """Mixin: ``summary()`` and ``str()`` from ``title()``, ``to_frame()`` and ``notes()``."""

    def title(self) -> str:
        return type(self).__name__

    def notes(self) -> list[str]:
        return []

    def to_frame(self) -> pd.DataFrame:
        raise NotImplementedError

    def summary(self) -> str:
        with pd.option_context("display.width", 120, "display.max_columns", 20,
                               "display.float_format", "{:.6g}".format):
            table = self.to_frame().to_string()
        return "\n".join([self.title(), table, *self.notes()])

    def __str__(self) -> str:
        return self.summary()

    def _repr_html_(self) -> str:
        """Notebook display: the title, the frame as a table, the notes."""
        notes = "".join(f"<p><small>{n}</small></p>" for n in self.notes())
        return f"<p><b>{self.title()}</b></p>{self.to_frame().to_html()}{notes}"


def _rng(seed) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


# ============================================================================ pairing

def pair_predictions(predictions: pd.DataFrame, model_a: str = "resnet50",
                     model_b: str = "vgg16") -> pd.DataFrame:
    """One row per slice scored by both models, joined on scheme, control, fold, patient_id
    and slice_number (those present). Raises ValueError unless the pairing is one-to-one
    and both models agree on ``y_true``.

    Columns: the keys, ``y_true``, ``p_tumor_a``, ``p_tumor_b``, ``y_pred_a``, ``y_pred_b``,
    ``correct_a``, ``correct_b``; ``attrs`` holds the model names.
    """
    check_predictions(predictions)
    keys = [k for k in PAIR_KEYS if k in predictions.columns]
    found = sorted(map(str, predictions["model"].unique()))
    for model in (model_a, model_b):
        if model not in found:
            raise ValueError(f"pair_predictions: expected model {model!r} in the predictions "
                             f"table, found models {found}")
    if model_a == model_b:
        raise ValueError(f"pair_predictions: expected two different models, got {model_a!r} twice")
    value_columns = ["y_true", "p_tumor", "y_pred"]
    sides = {}
    for model in (model_a, model_b):
        rows = predictions.loc[predictions["model"] == model, keys + value_columns]
        duplicated = rows.duplicated(keys, keep=False)
        if duplicated.any():
            first = rows[duplicated].iloc[0]
            raise ValueError(
                f"pair_predictions: expected one row per {tuple(keys)} for model {model!r}, "
                f"found {int(duplicated.sum())} rows sharing a key, first at "
                + ", ".join(f"{k}={first[k]!r}" for k in keys))
        sides[model] = rows
    merged = sides[model_a].merge(sides[model_b], on=keys, how="outer", suffixes=("_a", "_b"),
                                  indicator=True)
    unmatched = merged["_merge"] != "both"
    if unmatched.any():
        only_a = int((merged["_merge"] == "left_only").sum())
        only_b = int((merged["_merge"] == "right_only").sum())
        first = merged[unmatched].iloc[0]
        raise ValueError(
            f"pair_predictions: expected the same slices for {model_a!r} and {model_b!r}, found "
            f"{only_a} rows only in {model_a!r} and {only_b} only in {model_b!r}; first at "
            + ", ".join(f"{k}={first[k]!r}" for k in keys))
    disagree = merged["y_true_a"] != merged["y_true_b"]
    if disagree.any():
        first = merged[disagree].iloc[0]
        raise ValueError(
            f"pair_predictions: expected both models to share y_true, found {int(disagree.sum())} "
            "slices where they differ; first at " + ", ".join(f"{k}={first[k]!r}" for k in keys))
    paired = merged[keys].copy()
    paired["y_true"] = merged["y_true_a"].astype(np.int64)
    for side in ("a", "b"):
        paired[f"p_tumor_{side}"] = merged[f"p_tumor_{side}"].astype(np.float64)
        paired[f"y_pred_{side}"] = merged[f"y_pred_{side}"].astype(np.int64)
        paired[f"correct_{side}"] = (paired[f"y_pred_{side}"] == paired["y_true"]).astype(np.int64)
    paired = paired.sort_values(keys, kind="mergesort").reset_index(drop=True)
    paired.attrs["model_a"], paired.attrs["model_b"] = model_a, model_b
    return paired


def _names(paired) -> tuple[str, str]:
    attrs = getattr(paired, "attrs", {}) or {}
    return attrs.get("model_a", "a"), attrs.get("model_b", "b")


def _one_experiment(paired: pd.DataFrame, where: str) -> None:
    """Refuse a paired table that mixes schemes or controls: their slices are not one sample."""
    keys = [k for k in ("scheme", "control") if k in paired.columns]
    if keys:
        combos = paired[keys].drop_duplicates()
        if len(combos) > 1:
            raise ValueError(f"{where}: expected one (scheme, control) experiment, found "
                             f"{len(combos)}: {combos.to_dict('records')}; filter the table first")
    if len(paired) == 0:
        raise ValueError(f"{where}: expected paired slices, found none")


def paired_table(paired) -> np.ndarray:
    """2x2 counts: rows model a correct/wrong, columns model b correct/wrong
    (the layout of ``statsmodels.stats.contingency_tables.mcnemar``)."""
    if isinstance(paired, pd.DataFrame):
        a = paired["correct_a"].to_numpy().astype(bool)
        b = paired["correct_b"].to_numpy().astype(bool)
        return np.array([[np.sum(a & b), np.sum(a & ~b)], [np.sum(~a & b), np.sum(~a & ~b)]],
                        dtype=np.int64)
    table = np.asarray(paired)
    if table.shape != (2, 2) or (table < 0).any():
        raise ValueError(f"expected a 2x2 table of non-negative counts, found {table!r}")
    return table.astype(np.int64)


# ============================================================================ McNemar

def _mcnemar_pvalue(b: int, c: int, method: str) -> tuple[float, float]:
    """(statistic, p-value) of McNemar's test on the discordant counts b and c."""
    n = b + c
    if method in ("exact", "midp"):
        k = min(b, c)
        if n == 0:
            return float(k), 1.0
        doubled_tail = 2 * sps.binom.cdf(k, n, 0.5)
        if method == "exact":
            return float(k), float(min(1.0, doubled_tail))
        # mid-p: the doubled tail counts the observed split with weight 1/2
        return float(k), float(min(1.0, doubled_tail - sps.binom.pmf(k, n, 0.5)))
    if method in ("chi2", "chi2_corrected"):
        if n == 0:
            return np.nan, 1.0
        gap = abs(b - c) - (1 if method == "chi2_corrected" else 0)
        statistic = max(gap, 0) ** 2 / n  # Edwards' correction, clipped at 0 when b == c
        return float(statistic), float(sps.chi2.sf(statistic, 1))
    raise ValueError(f"McNemar method: expected one of {MCNEMAR_METHODS}, found {method!r}")


def _wilson(successes, n, z):
    p = successes / n
    centre = (2 * n * p + z**2) / (2 * (n + z**2))
    half = z * np.sqrt(z**2 + 4 * n * p * (1 - p)) / (2 * (n + z**2))
    return centre - half, centre + half


def paired_difference_ci(table, confidence: float = 0.95,
                         method: str = "newcombe") -> tuple[float, float, float]:
    """(difference, low, high) of accuracy a - accuracy b from a paired 2x2 table.

    ``newcombe``: Newcombe (1998) method 10, Wilson score limits of each accuracy combined
    with the phi correlation of the table. ``wald``: difference +- z * sqrt(b + c - (b-c)^2/n)/n.
    """
    (n11, n10), (n01, n00) = paired_table(table).tolist()
    n = n11 + n10 + n01 + n00
    if n == 0:
        return np.nan, np.nan, np.nan
    z = sps.norm.ppf(0.5 + confidence / 2)
    p1, p2 = (n11 + n10) / n, (n11 + n01) / n
    difference = p1 - p2
    if method == "wald":
        se = np.sqrt(max(n10 + n01 - (n10 - n01) ** 2 / n, 0.0)) / n
        return difference, max(-1.0, difference - z * se), min(1.0, difference + z * se)
    if method != "newcombe":
        raise ValueError(f"paired_difference_ci: expected method 'newcombe' or 'wald', found {method!r}")
    l1, u1 = _wilson(n11 + n10, n, z)
    l2, u2 = _wilson(n11 + n01, n, z)
    denominator = (n11 + n10) * (n01 + n00) * (n11 + n01) * (n10 + n00)
    phi = (n11 * n00 - n10 * n01) / np.sqrt(denominator) if denominator > 0 else 0.0
    delta = np.sqrt(max((p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2, 0.0))
    epsilon = np.sqrt(max((u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2, 0.0))
    return difference, max(-1.0, difference - delta), min(1.0, difference + epsilon)


@dataclass
class McNemarResult(_Result):
    """McNemar's test of equal accuracy on paired slices, with the accuracy difference."""

    model_a: str
    model_b: str
    both_correct: int
    b: int
    """Slices model a got right and model b wrong."""
    c: int
    """Slices model a got wrong and model b right."""
    both_wrong: int
    statistic: float
    pvalue: float
    method: str
    accuracy_a: float
    accuracy_b: float
    difference: float
    ci_low: float
    ci_high: float
    ci_method: str
    confidence: float

    @property
    def n(self) -> int:
        return self.both_correct + self.b + self.c + self.both_wrong

    def title(self) -> str:
        return f"McNemar test ({self.method}), {self.model_a} vs {self.model_b}, n = {self.n} paired slices"

    def notes(self) -> list[str]:
        return [f"difference = accuracy {self.model_a} - accuracy {self.model_b}; "
                f"{self.confidence:.0%} CI by {self.ci_method}; b = {self.model_a} right and "
                f"{self.model_b} wrong, c = the reverse"]

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([{
            "model_a": self.model_a, "model_b": self.model_b, "b": self.b, "c": self.c,
            "n": self.n, "method": self.method, "statistic": self.statistic, "pvalue": self.pvalue,
            "accuracy_a": self.accuracy_a, "accuracy_b": self.accuracy_b,
            "difference": self.difference, "ci_low": self.ci_low, "ci_high": self.ci_high}])


def mcnemar_test(paired, method: str = "exact", confidence: float = 0.95,
                 ci_method: str = "newcombe") -> McNemarResult:
    """McNemar's test on a paired table (from ``pair_predictions``) or a 2x2 count table
    (rows a correct/wrong, columns b correct/wrong).

    ``exact``: two-sided binomial test of b against b + c with p = 1/2; ``midp``: the same
    doubled tail with the observed split counted one half; ``chi2``:
    (b-c)^2/(b+c); ``chi2_corrected``: (|b-c|-1)^2/(b+c), clipped at 0. No discordant pair
    gives p = 1.
    """
    table = paired_table(paired)
    model_a, model_b = _names(paired)
    (n11, n10), (n01, n00) = table.tolist()
    statistic, pvalue = _mcnemar_pvalue(n10, n01, method)
    difference, low, high = paired_difference_ci(table, confidence, ci_method)
    n = table.sum()
    return McNemarResult(
        model_a=model_a, model_b=model_b, both_correct=n11, b=n10, c=n01, both_wrong=n00,
        statistic=statistic, pvalue=pvalue, method=method,
        accuracy_a=(n11 + n10) / n if n else np.nan, accuracy_b=(n11 + n01) / n if n else np.nan,
        difference=difference, ci_low=low, ci_high=high, ci_method=ci_method,
        confidence=confidence)


def mcnemar_methods(paired, confidence: float = 0.95) -> pd.DataFrame:
    """All four McNemar variants side by side, one row each."""
    return pd.concat([mcnemar_test(paired, m, confidence).to_frame() for m in MCNEMAR_METHODS],
                     ignore_index=True)


# ============================================================================ Holm

@dataclass
class HolmResult(_Result):
    """Holm's step-down adjustment of several p-values (family-wise error rate)."""

    frame: pd.DataFrame
    alpha: float

    def title(self) -> str:
        return f"Holm correction of {len(self.frame)} tests at alpha = {self.alpha}"

    def to_frame(self) -> pd.DataFrame:
        return self.frame.copy()


def holm_correction(pvalues, alpha: float = 0.05, names=None) -> HolmResult:
    """Holm (1979): sort p ascending, adjusted p_(i) = max_{j<=i} min(1, (m-j+1) p_(j))."""
    p = np.asarray(pvalues, dtype=np.float64)
    if p.ndim != 1 or np.isnan(p).any() or ((p < 0) | (p > 1)).any():
        raise ValueError(f"holm_correction: expected a 1-D array of p-values in [0, 1], found {p!r}")
    m = p.size
    order = np.argsort(p, kind="mergesort")
    stepped = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adjusted = np.empty(m)
    adjusted[order] = np.maximum.accumulate(stepped)
    names = list(names) if names is not None else [f"test {i + 1}" for i in range(m)]
    frame = pd.DataFrame({"test": names, "pvalue": p, "adjusted": adjusted,
                          "reject": adjusted <= alpha})
    return HolmResult(frame=frame, alpha=alpha)


def paired_metric_tests(paired: pd.DataFrame, method: str = "exact",
                        alpha: float = 0.05) -> HolmResult:
    """McNemar tests of accuracy (all slices), sensitivity (tumor slices) and specificity
    (non-tumor slices), Holm-adjusted together."""
    _one_experiment(paired, "paired_metric_tests")
    subsets = {"accuracy": np.ones(len(paired), bool),
               "sensitivity": paired["y_true"].to_numpy() == 1,
               "specificity": paired["y_true"].to_numpy() == 0}
    results = {name: mcnemar_test(paired[mask], method) for name, mask in subsets.items()}
    holm = holm_correction([r.pvalue for r in results.values()], alpha, names=list(results))
    frame = holm.frame
    frame.insert(1, "b", [r.b for r in results.values()])
    frame.insert(2, "c", [r.c for r in results.values()])
    frame.insert(3, "difference", [r.difference for r in results.values()])
    return HolmResult(frame=frame, alpha=alpha)


# ============================================================================ bootstrap

# Every slice falls in one of 8 cells, code = 4*y_true + 2*y_pred_a + y_pred_b, and all five
# metrics of both models are functions of the 8 cell counts: resampling reduces to counting.

def _codes(paired: pd.DataFrame) -> np.ndarray:
    return (4 * paired["y_true"].to_numpy() + 2 * paired["y_pred_a"].to_numpy()
            + paired["y_pred_b"].to_numpy()).astype(np.int8)


def _count_codes(codes: np.ndarray) -> np.ndarray:
    """Counts of the 8 cells along the last axis, for any leading shape: (..., n) -> (..., 8)."""
    lead = codes.shape[:-1]
    flat = codes.reshape(-1, codes.shape[-1]).astype(np.int64)
    rows = flat.shape[0]
    flat += (8 * np.arange(rows, dtype=np.int64))[:, None]
    counts = np.bincount(flat.ravel(), minlength=8 * rows)
    return counts.reshape(lead + (8,))


def _metric_stack(cells: np.ndarray) -> np.ndarray:
    """(..., 8) cell counts -> (15, ...): five metrics of a, of b, and a - b."""
    c = np.moveaxis(cells, -1, 0)
    model_a = metrics_from_counts(tp=c[6] + c[7], fp=c[2] + c[3], fn=c[4] + c[5], tn=c[0] + c[1])
    model_b = metrics_from_counts(tp=c[5] + c[7], fp=c[1] + c[3], fn=c[4] + c[6], tn=c[0] + c[2])
    a = np.stack([model_a[m] for m in METRIC_NAMES])
    b = np.stack([model_b[m] for m in METRIC_NAMES])
    return np.concatenate([a, b, a - b])


@dataclass
class BootstrapResult(_Result):
    """Bootstrap confidence intervals; one row per (metric, model), differences a - b included."""

    frame: pd.DataFrame
    unit: str
    """What was resampled: "slice", or the cluster column such as "patient_id"."""
    n_units: int
    n_resamples: int
    confidence: float
    distribution: np.ndarray = field(repr=False)
    """Bootstrap replicates, one row per frame row, one column per resample."""
    engine: str = "scipy"

    def title(self) -> str:
        return (f"Bootstrap {self.confidence:.0%} CIs, {self.n_resamples} resamples of "
                f"{self.n_units} {self.unit} units ({self.engine} engine)")

    def notes(self) -> list[str]:
        return ["ci_method: BCa where it exists; percentile where BCa is degenerate or some "
                "resamples leave the metric undefined (n_undefined)"]

    def to_frame(self) -> pd.DataFrame:
        return self.frame.copy()

    def differences(self) -> pd.DataFrame:
        """Rows of the a - b differences only (input of ``plots.forest_figure``)."""
        return self.frame[self.frame["model"].str.contains(" - ")].reset_index(drop=True)


def _bca_limits(estimate, distribution, jackknife, multiplicity, confidence):
    """BCa quantile levels and limits (Efron & Tibshirani 1993, ch. 14), computed as
    ``scipy.stats.bootstrap`` does, from jackknife values listed once per distinct
    leave-one-out outcome with their multiplicities."""
    n_resamples = distribution.shape[-1]
    column = estimate[:, None]
    z0 = sps.norm.ppf((np.count_nonzero(distribution < column, axis=-1)
                       + np.count_nonzero(distribution <= column, axis=-1)) / (2 * n_resamples))
    n = multiplicity.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = (jackknife * multiplicity).sum(axis=-1, keepdims=True) / n
        u = (n - 1) * (mean - jackknife)
        acceleration = ((multiplicity * u**3).sum(axis=-1) / n**3
                        / (6 * ((multiplicity * u**2).sum(axis=-1) / n**2) ** 1.5))
        z_alpha = sps.norm.ppf((1 - confidence) / 2)
        levels = [sps.norm.cdf(z0 + (z0 + z) / (1 - acceleration * (z0 + z)))
                  for z in (z_alpha, -z_alpha)]
    low, high = np.full(estimate.shape, np.nan), np.full(estimate.shape, np.nan)
    for row in range(estimate.size):
        if np.isfinite(levels[0][row]) and np.isfinite(levels[1][row]):
            low[row], high[row] = np.quantile(distribution[row], [levels[0][row], levels[1][row]])
    return low, high


def _count_engine(cells, n_resamples, confidence, method, rng):
    """Slice bootstrap by counts: a resample of n slices has cell counts
    Multinomial(n, observed cell shares), and each jackknife value removes one slice of a cell."""
    n = cells.sum()
    distribution = _metric_stack(rng.multinomial(n, cells / n, size=n_resamples))
    estimate = _metric_stack(cells)
    if method == "percentile":
        return estimate, distribution, None, None
    present = np.flatnonzero(cells)
    jackknife = _metric_stack(cells[None, :] - np.eye(8, dtype=cells.dtype)[present])
    low, high = _bca_limits(estimate, distribution, jackknife, cells[present], confidence)
    return estimate, distribution, low, high


def _scipy_engine(data, statistic, n_resamples, confidence, method, rng, batch):
    """``scipy.stats.bootstrap`` with a vector statistic (15 or 3 values per resample)."""
    with warnings.catch_warnings():
        # a degenerate BCa (e.g. every resample at 100% accuracy) is handled row by row later
        warnings.simplefilter("ignore", sps.DegenerateDataWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        result = sps.bootstrap((data,), statistic, n_resamples=n_resamples, batch=batch,
                               vectorized=True, confidence_level=confidence, method=method,
                               rng=rng)
    low = np.atleast_1d(np.asarray(result.confidence_interval.low, dtype=np.float64))
    high = np.atleast_1d(np.asarray(result.confidence_interval.high, dtype=np.float64))
    return statistic(data), result.bootstrap_distribution, low, high


def _intervals_frame(labels, estimate, distribution, low, high, method, confidence) -> pd.DataFrame:
    """One row per statistic; BCa limits kept where they exist and every resample defined,
    percentile limits otherwise (BCa is degenerate near 100% accuracy)."""
    low = np.full(estimate.shape, np.nan) if low is None else np.array(low, dtype=np.float64)
    high = np.full(estimate.shape, np.nan) if high is None else np.array(high, dtype=np.float64)
    n_undefined = np.isnan(distribution).sum(axis=-1)
    ci_method = np.full(estimate.shape, method, dtype=object)
    alpha = (1 - confidence) / 2
    for row in range(estimate.size):
        if method != "percentile" and np.isfinite(low[row]) and np.isfinite(high[row]) \
                and n_undefined[row] == 0:
            continue
        if n_undefined[row] == distribution.shape[-1] or np.isnan(estimate[row]):
            low[row] = high[row] = np.nan
            ci_method[row] = "undefined"
            continue
        low[row], high[row] = np.nanquantile(distribution[row], [alpha, 1 - alpha])
        ci_method[row] = "percentile"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        se = np.nanstd(distribution, axis=-1, ddof=1)
    frame = pd.DataFrame(labels, columns=["metric", "model"])
    frame["estimate"] = estimate
    frame["ci_low"], frame["ci_high"], frame["se"] = low, high, se
    frame["ci_method"], frame["n_undefined"] = ci_method, n_undefined
    return frame


def _metric_labels(model_a: str, model_b: str) -> list[tuple[str, str]]:
    return [(metric, model) for model in (model_a, model_b, f"{model_a} - {model_b}")
            for metric in METRIC_NAMES]


def bootstrap_metrics(paired: pd.DataFrame, cluster: str | None = None,
                      n_resamples: int = 10_000, confidence: float = 0.95, method: str = "BCa",
                      seed=0, engine: str = "counts", batch: int = 1000) -> BootstrapResult:
    """Paired bootstrap CIs of eqs. (30)-(33), (35) for both models and their difference.

    ``cluster=None`` resamples slices; ``cluster="patient_id"`` resamples patients and keeps
    each patient's slices together (``scipy.stats.bootstrap`` over patients), the honest
    unit when slices of a patient are correlated. For slices, ``engine="scipy"`` runs
    ``scipy.stats.bootstrap`` on the slices; ``engine="counts"`` draws the 8 paired cell
    counts of each resample from their multinomial law (the same resampling distribution)
    and applies scipy's BCa formulas with an exact jackknife, about 50x faster.
    """
    _one_experiment(paired, "bootstrap_metrics")
    if method not in ("BCa", "percentile"):
        raise ValueError(f"bootstrap_metrics: expected method 'BCa' or 'percentile', found {method!r}")
    model_a, model_b = _names(paired)
    labels = _metric_labels(model_a, model_b)
    codes = _codes(paired)
    rng = _rng(seed)
    if cluster is None:
        unit, n_units = "slice", codes.size
        if engine == "counts":
            cells = np.bincount(codes, minlength=8).astype(np.int64)
            estimate, distribution, low, high = _count_engine(cells, n_resamples, confidence,
                                                              method, rng)
        elif engine == "scipy":
            def statistic(sample, axis=-1):
                return _metric_stack(_count_codes(sample))
            estimate, distribution, low, high = _scipy_engine(codes, statistic, n_resamples,
                                                              confidence, method, rng, batch)
        else:
            raise ValueError(f"bootstrap_metrics: expected engine 'counts' or 'scipy', found {engine!r}")
    else:
        cluster_index, cluster_names = pd.factorize(paired[cluster], sort=True)
        n_units = len(cluster_names)
        if n_units < 2:
            raise ValueError(f"bootstrap_metrics: expected at least 2 clusters in {cluster!r}, "
                             f"found {n_units}")
        cluster_cells = np.bincount(cluster_index * 8 + codes, minlength=8 * n_units)
        cluster_cells = cluster_cells.reshape(n_units, 8)

        def statistic(sample, axis=-1):
            return _metric_stack(cluster_cells[sample.astype(np.intp)].sum(axis=-2))
        unit = cluster
        estimate, distribution, low, high = _scipy_engine(np.arange(n_units), statistic,
                                                          n_resamples, confidence, method, rng,
                                                          batch)
    frame = _intervals_frame(labels, estimate, distribution, low, high, method, confidence)
    return BootstrapResult(frame=frame, unit=unit, n_units=n_units, n_resamples=n_resamples,
                           confidence=confidence, distribution=distribution,
                           engine=engine if cluster is None else "scipy")


# ============================================================================ Bayesian

@dataclass
class BetaPosterior(_Result):
    """Beta posterior of a proportion: Beta(prior_alpha + successes, prior_beta + failures)."""

    name: str
    successes: int
    trials: int
    prior_alpha: float
    prior_beta: float
    credible: float

    @property
    def alpha(self) -> float:
        return self.prior_alpha + self.successes

    @property
    def beta(self) -> float:
        return self.prior_beta + self.trials - self.successes

    @property
    def mean(self) -> float:
        return self.alpha / (self.alpha + self.beta)

    def interval(self, mass: float | None = None) -> tuple[float, float]:
        """Equal-tailed credible interval."""
        mass = self.credible if mass is None else mass
        low, high = sps.beta.ppf([(1 - mass) / 2, (1 + mass) / 2], self.alpha, self.beta)
        return float(low), float(high)

    def pdf(self, x) -> np.ndarray:
        return sps.beta.pdf(x, self.alpha, self.beta)

    def prob_above(self, threshold: float) -> float:
        return float(sps.beta.sf(threshold, self.alpha, self.beta))

    def title(self) -> str:
        return (f"Beta posterior of {self.name}: prior Beta({self.prior_alpha:g}, "
                f"{self.prior_beta:g}), {self.successes}/{self.trials}")

    def to_frame(self) -> pd.DataFrame:
        low, high = self.interval()
        return pd.DataFrame([{"quantity": self.name, "successes": self.successes,
                              "trials": self.trials, "observed": self.successes / self.trials
                              if self.trials else np.nan, "posterior_mean": self.mean,
                              "ci_low": low, "ci_high": high, "alpha": self.alpha,
                              "beta": self.beta}])


def beta_posterior(successes: int, trials: int, prior=(1.0, 1.0), credible: float = 0.95,
                   name: str = "proportion") -> BetaPosterior:
    """Beta-Binomial posterior (Bayes' rule, eq. 13); the default prior Beta(1, 1) is uniform,
    Beta(0.5, 0.5) is Jeffreys'."""
    if not 0 <= successes <= trials:
        raise ValueError(f"beta_posterior: expected 0 <= successes <= trials, found "
                         f"{successes} of {trials}")
    return BetaPosterior(name=name, successes=int(successes), trials=int(trials),
                         prior_alpha=float(prior[0]), prior_beta=float(prior[1]),
                         credible=credible)


@dataclass
class MetricPosteriors(_Result):
    """Beta posteriors of one model's accuracy, sensitivity, specificity and precision."""

    model: str
    posteriors: dict[str, BetaPosterior]

    def title(self) -> str:
        first = next(iter(self.posteriors.values()))
        return (f"Posteriors of {self.model}, prior Beta({first.prior_alpha:g}, "
                f"{first.prior_beta:g}) on each, {first.credible:.0%} equal-tailed intervals")

    def to_frame(self) -> pd.DataFrame:
        frame = pd.concat([p.to_frame() for p in self.posteriors.values()], ignore_index=True)
        frame.insert(0, "model", self.model)
        return frame


def metric_posteriors(counts: ConfusionCounts, prior=(1.0, 1.0), credible: float = 0.95,
                      model: str = "model") -> MetricPosteriors:
    """Beta posteriors of accuracy (30), sensitivity (34), specificity (35), precision (31),
    each treated as a binomial proportion of its own denominator."""
    parts = {"accuracy": (counts.tp + counts.tn, counts.n),
             "sensitivity": (counts.tp, counts.tp + counts.fn),
             "specificity": (counts.tn, counts.tn + counts.fp),
             "precision": (counts.tp, counts.tp + counts.fp)}
    return MetricPosteriors(model=model, posteriors={
        name: beta_posterior(k, n, prior, credible, name) for name, (k, n) in parts.items()})


def posterior_table(predictions: pd.DataFrame, prior=(1.0, 1.0),
                    credible: float = 0.95) -> pd.DataFrame:
    """``metric_posteriors`` for every model (and scheme, control) of a predictions table,
    slices pooled over folds."""
    rows = []
    for row in slice_metrics(predictions).to_dict("records"):
        counts = ConfusionCounts(tp=row["tp"], fp=row["fp"], fn=row["fn"], tn=row["tn"])
        frame = metric_posteriors(counts, prior, credible, model=row["model"]).to_frame()
        for key in ("control", "scheme"):  # inserted in front of each other: scheme first
            if key in row:
                frame.insert(1, key, row[key])
        rows.append(frame)
    return pd.concat(rows, ignore_index=True)


@dataclass
class PairedPosterior(_Result):
    """Posterior of accuracy a - accuracy b, with P(a better) and a ROPE."""

    model_a: str
    model_b: str
    method: str
    prior: str
    n_units: int
    rope: float
    credible: float
    mean_difference: float
    ci_low: float
    ci_high: float
    p_a_better: float
    """P(difference > 0)."""
    p_a_better_beyond_rope: float
    p_rope: float
    p_b_better_beyond_rope: float
    accuracy_a: float
    accuracy_b: float
    draws: np.ndarray = field(repr=False)
    """Posterior draws of the difference a - b."""

    def title(self) -> str:
        return (f"Posterior of accuracy {self.model_a} - {self.model_b} ({self.method}; "
                f"prior {self.prior}; ROPE +-{self.rope:g})")

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([{
            "model_a": self.model_a, "model_b": self.model_b, "method": self.method,
            "n_units": self.n_units, "mean_difference": self.mean_difference,
            "ci_low": self.ci_low, "ci_high": self.ci_high, "p_a_better": self.p_a_better,
            "p_a_better_beyond_rope": self.p_a_better_beyond_rope, "p_rope": self.p_rope,
            "p_b_better_beyond_rope": self.p_b_better_beyond_rope,
            "accuracy_a": self.accuracy_a, "accuracy_b": self.accuracy_b}])


def _rope_probabilities(draws, rope):
    return (float(np.mean(draws > rope)), float(np.mean(np.abs(draws) <= rope)),
            float(np.mean(draws < -rope)))


def paired_posterior(paired, prior: float = 1.0, rope: float = 0.01, credible: float = 0.95,
                     n_draws: int = 100_000, seed=0) -> PairedPosterior:
    """Dirichlet posterior over the four paired cells (both right, only a right, only b right,
    both wrong), prior Dirichlet(prior, ..., prior). P(a better) = P(theta_10 > theta_01) is
    exact (a Beta tail); the ROPE probabilities and the interval come from draws."""
    table = paired_table(paired)
    model_a, model_b = _names(paired)
    (n11, n10), (n01, n00) = table.tolist()
    alpha = np.array([n11, n10, n01, n00], dtype=np.float64) + prior
    if (alpha <= 0).any():
        raise ValueError(f"paired_posterior: prior {prior} leaves a Dirichlet parameter <= 0: {alpha}")
    theta = _rng(seed).dirichlet(alpha, size=n_draws)
    draws = theta[:, 1] - theta[:, 2]
    low, high = np.quantile(draws, [(1 - credible) / 2, (1 + credible) / 2])
    beyond_a, in_rope, beyond_b = _rope_probabilities(draws, rope)
    total = alpha.sum()
    return PairedPosterior(
        model_a=model_a, model_b=model_b, method="Dirichlet over paired slice outcomes",
        prior=f"Dirichlet({prior:g}, {prior:g}, {prior:g}, {prior:g})", n_units=int(table.sum()),
        rope=rope, credible=credible, mean_difference=float((alpha[1] - alpha[2]) / total),
        ci_low=float(low), ci_high=float(high),
        p_a_better=float(sps.beta.sf(0.5, alpha[1], alpha[2])),
        p_a_better_beyond_rope=beyond_a, p_rope=in_rope, p_b_better_beyond_rope=beyond_b,
        accuracy_a=float((alpha[0] + alpha[1]) / total),
        accuracy_b=float((alpha[0] + alpha[2]) / total), draws=draws)


def patient_paired_posterior(paired: pd.DataFrame, cluster: str = "patient_id",
                             rope: float = 0.01, credible: float = 0.95, n_draws: int = 20_000,
                             seed=0) -> PairedPosterior:
    """Patient-level posterior of the accuracy difference: Bayesian bootstrap (Rubin 1981)
    over patients, weights ~ Dirichlet(1, ..., 1), so a patient's slices move together and
    count as one piece of evidence, not many."""
    _one_experiment(paired, "patient_paired_posterior")
    model_a, model_b = _names(paired)
    per_patient = paired.groupby(cluster, observed=True).agg(
        n=("y_true", "size"), correct_a=("correct_a", "sum"), correct_b=("correct_b", "sum"))
    n = per_patient["n"].to_numpy(np.float64)
    gain = (per_patient["correct_a"] - per_patient["correct_b"]).to_numpy(np.float64)
    n_patients = len(per_patient)
    rng = _rng(seed)
    draws = np.empty(n_draws)
    accuracy_a = np.empty(n_draws)
    accuracy_b = np.empty(n_draws)
    chunk = max(1, 2_000_000 // n_patients)  # keep the weight matrix near 16 MB
    for start in range(0, n_draws, chunk):
        stop = min(n_draws, start + chunk)
        weights = rng.dirichlet(np.ones(n_patients), size=stop - start)
        slices = weights @ n
        draws[start:stop] = weights @ gain / slices
        accuracy_a[start:stop] = weights @ per_patient["correct_a"].to_numpy(np.float64) / slices
        accuracy_b[start:stop] = weights @ per_patient["correct_b"].to_numpy(np.float64) / slices
    low, high = np.quantile(draws, [(1 - credible) / 2, (1 + credible) / 2])
    beyond_a, in_rope, beyond_b = _rope_probabilities(draws, rope)
    return PairedPosterior(
        model_a=model_a, model_b=model_b, method=f"Bayesian bootstrap over {cluster}",
        prior=f"Dirichlet(1, ..., 1) weights on {n_patients} patients", n_units=n_patients,
        rope=rope, credible=credible, mean_difference=float(draws.mean()), ci_low=float(low),
        ci_high=float(high), p_a_better=float(np.mean(draws > 0)),
        p_a_better_beyond_rope=beyond_a, p_rope=in_rope, p_b_better_beyond_rope=beyond_b,
        accuracy_a=float(accuracy_a.mean()), accuracy_b=float(accuracy_b.mean()), draws=draws)


# ============================================================================ DeLong

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
class DeLongResult(_Result):
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
    _one_experiment(paired, "delong_test")
    model_a, model_b = _names(paired)
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
class AucInterval(_Result):
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


def auc_interval(y_true, p_tumor, cluster=None, confidence: float = 0.95) -> AucInterval:
    """AUC +- z * DeLong SE, clipped to [0, 1]; clustered when ``cluster`` labels are given."""
    aucs, cov = delong_covariance(y_true, p_tumor, cluster)
    se = float(np.sqrt(max(cov[0, 0], 0.0)))
    z = sps.norm.ppf(0.5 + confidence / 2)
    return AucInterval(auc=float(aucs[0]), se=se, ci_low=max(0.0, aucs[0] - z * se),
                       ci_high=min(1.0, aucs[0] + z * se), confidence=confidence,
                       method="DeLong" if cluster is None else "DeLong, clustered")


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
    _one_experiment(paired, "cluster_bootstrap_auc")
    model_a, model_b = _names(paired)
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
    estimate, distribution, low, high = _scipy_engine(np.arange(n_clusters), statistic,
                                                      n_resamples, confidence, method,
                                                      _rng(seed), batch=None)
    frame = _intervals_frame(labels, estimate, distribution, low, high, method, confidence)
    return BootstrapResult(frame=frame, unit=cluster, n_units=n_clusters,
                           n_resamples=n_resamples, confidence=confidence,
                           distribution=distribution)


@dataclass
class RocBand(_Result):
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
    rng = _rng(seed)
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


# ============================================================================ across folds

@dataclass
class CorrectedTTestResult(_Result):
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
class CorrelatedTTestResult(_Result):
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
class FoldComparison(_Result):
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


def compare_folds(predictions: pd.DataFrame, metric: str = "accuracy", model_a: str = "resnet50",
                  model_b: str = "vgg16", rope: float = 0.01,
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


# ============================================================================ synthetic tables

def simulate_predictions(n_patients: int = 110, n_slices: int = 3929, n_folds: int = 8,
                         separations=(("resnet50", 3.0), ("vgg16", 2.0)),
                         tumor_fraction: float = 0.35, patient_sd: float = 1.0,
                         shared_sd: float = 0.7, seed=0) -> pd.DataFrame:
    """A predictions table with known structure, for tests and demonstrations without training.

    Each model's logit is ``separation * (2 y_true - 1)`` plus a patient effect (so slices of
    a patient err together), a slice effect shared by the models (so they err on the same
    slices) and its own noise; ``y_pred = p_tumor >= 0.5``. Folds group whole patients.
    """
    rng = _rng(seed)
    if n_slices < n_patients:
        raise ValueError(f"simulate_predictions: expected n_slices >= n_patients, found "
                         f"{n_slices} < {n_patients}")
    per_patient = 1 + rng.multinomial(n_slices - n_patients, np.full(n_patients, 1 / n_patients))
    patient = np.repeat(np.arange(n_patients), per_patient)
    slice_number = np.concatenate([np.arange(1, k + 1) for k in per_patient])
    concentration = 4.0
    fraction = rng.beta(tumor_fraction * concentration, (1 - tumor_fraction) * concentration,
                        n_patients)
    y_true = (rng.random(n_slices) < fraction[patient]).astype(np.int64)
    fold_of_patient = rng.permutation(n_patients) % n_folds
    patient_effect = rng.normal(0, patient_sd, n_patients)
    shared = rng.normal(0, shared_sd, n_slices)
    frames = []
    for model, separation in separations:
        own_patient = rng.normal(0, patient_sd / 2, n_patients)
        logit = (separation * (2 * y_true - 1) + (patient_effect + own_patient)[patient]
                 * (2 * y_true - 1) * -1 + shared + rng.normal(0, 1.0, n_slices))
        p_tumor = 1 / (1 + np.exp(-logit))
        frames.append(pd.DataFrame({
            "model": model, "scheme": "patient", "control": "none",
            "fold": fold_of_patient[patient], "patient_id": [f"P{p:03d}" for p in patient],
            "slice_number": slice_number, "y_true": y_true, "p_tumor": p_tumor,
            "y_pred": (p_tumor >= 0.5).astype(np.int64)}))
    return pd.concat(frames, ignore_index=True)

"""Can the tumor probability be trusted? Calibration, per-prediction uncertainty and referral.

Functions of a predictions table's columns (`y_true`, `p_tumor`, `patient_id`), so every
model family is measured the same way:

- `reliability_table` and `expected_calibration_error` (equal-width bins, ECE = sum over
  bins of the bin's share times |observed rate - mean probability|), with a
  patient-cluster bootstrap interval (`ece_interval`);
- `brier_decomposition`: Murphy's (1973) Brier = reliability - resolution + uncertainty on
  the same bins (exact when every slice in a bin has the bin's mean probability);
- `fit_temperature` / `apply_temperature`: temperature scaling (Guo et al. 2017), one
  scalar fitted by maximum likelihood on inner-validation slices only;
- `predictive_entropy` and `mutual_information` of T stochastic passes (MC dropout; Gal &
  Ghahramani 2016): the total and the epistemic part of a binary prediction's uncertainty;
- `referral_curve` and `error_detection_auroc`: accuracy and AUC on the slices kept when
  the most uncertain share is referred to a human, and how well uncertainty flags errors.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import optimize

from ..measures.metrics import roc_auc
from ..stats.resample import PatientInterval, patient_bootstrap

EPS = 1e-7


def _checked(y_true, p_tumor) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(p_tumor, dtype=np.float64)
    if y.shape != p.shape or y.ndim != 1:
        raise ValueError(f"expected two 1-D arrays of one length; found {y.shape} and {p.shape}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("y_true must be 0/1")
    if ((p < 0) | (p > 1) | ~np.isfinite(p)).any():
        raise ValueError("p_tumor must be probabilities in [0, 1]")
    return y, p


def bin_index(p_tumor, n_bins: int = 10) -> np.ndarray:
    """Equal-width bin of each probability: [0, 1/n), ..., [(n-1)/n, 1]."""
    return np.minimum((np.asarray(p_tumor) * n_bins).astype(int), n_bins - 1)


def reliability_table(y_true, p_tumor, n_bins: int = 10) -> pd.DataFrame:
    """Per non-empty bin: slices, mean probability, observed tumor rate, and the gap."""
    y, p = _checked(y_true, p_tumor)
    bins = bin_index(p, n_bins)
    frame = pd.DataFrame({"bin": bins, "p": p, "y": y}).groupby("bin").agg(
        slices=("y", "size"), mean_probability=("p", "mean"), observed_rate=("y", "mean"))
    frame["gap"] = frame["observed_rate"] - frame["mean_probability"]
    frame["low"], frame["high"] = frame.index / n_bins, (frame.index + 1) / n_bins
    return frame.reset_index()


def expected_calibration_error(y_true, p_tumor, n_bins: int = 10) -> float:
    """Sum over bins of (bin share) x |observed rate - mean probability|, i.e. the sum over
    bins of |tumors - summed probability| over all slices."""
    y, p = _checked(y_true, p_tumor)
    bins = bin_index(p, n_bins)
    gaps = np.bincount(bins, weights=y, minlength=n_bins) - np.bincount(bins, weights=p, minlength=n_bins)
    return float(np.abs(gaps).sum() / len(y))


def ece_interval(predictions: pd.DataFrame, n_bins: int = 10, n_resamples: int = 2000,
                 confidence: float = 0.95, seed=0) -> PatientInterval:
    """ECE with a percentile interval from resampling whole patients."""
    _checked(predictions["y_true"], predictions["p_tumor"])
    return patient_bootstrap(
        predictions, lambda part: expected_calibration_error(part["y_true"], part["p_tumor"], n_bins),
        n_resamples, confidence, seed)


def brier_decomposition(y_true, p_tumor, n_bins: int = 10) -> dict[str, float]:
    """Brier score and Murphy's reliability, resolution and uncertainty on `n_bins` bins."""
    y, p = _checked(y_true, p_tumor)
    table = reliability_table(y, p, n_bins)
    share = table["slices"] / len(y)
    base = y.mean()
    reliability = float((share * (table["mean_probability"] - table["observed_rate"]) ** 2).sum())
    resolution = float((share * (table["observed_rate"] - base) ** 2).sum())
    return {"brier": float(np.mean((p - y) ** 2)), "reliability": reliability,
            "resolution": resolution, "uncertainty": float(base * (1 - base))}


# ----------------------------------------------------------------------------- temperature

def logit(p_tumor) -> np.ndarray:
    p = np.clip(np.asarray(p_tumor, dtype=np.float64), EPS, 1 - EPS)
    return np.log(p) - np.log1p(-p)


def apply_temperature(p_tumor, temperature: float) -> np.ndarray:
    """sigmoid(logit(p) / T): T > 1 softens over-confident probabilities."""
    return 1 / (1 + np.exp(-logit(p_tumor) / temperature))


TEMPERATURE_BOUNDS = (0.05, 20.0)


def fit_temperature(y_true, p_tumor, bounds=TEMPERATURE_BOUNDS) -> float:
    """The T that minimises the binary cross-entropy of `apply_temperature(p, T)` on these
    (inner-validation) slices; fit it on validation patients only, apply it to the test."""
    y, p = _checked(y_true, p_tumor)
    z = logit(p)

    def loss(log_t):
        q = np.clip(1 / (1 + np.exp(-z / np.exp(log_t))), EPS, 1 - EPS)
        return -np.mean(y * np.log(q) + (1 - y) * np.log1p(-q))

    found = optimize.minimize_scalar(loss, bounds=np.log(bounds), method="bounded")
    return float(np.exp(found.x))


# ----------------------------------------------------------------------------- uncertainty

def binary_entropy(p) -> np.ndarray:
    """H(p) in nats of a Bernoulli probability (0 at p = 0 or 1)."""
    p = np.clip(np.asarray(p, dtype=np.float64), EPS, 1 - EPS)
    return -(p * np.log(p) + (1 - p) * np.log1p(-p))


def predictive_entropy(samples) -> np.ndarray:
    """Total uncertainty: the entropy of the mean of T passes (array T x N) -> (N,)."""
    return binary_entropy(np.asarray(samples, dtype=np.float64).mean(axis=0))


def mutual_information(samples) -> np.ndarray:
    """Epistemic part (BALD): entropy of the mean minus the mean entropy of the passes."""
    samples = np.asarray(samples, dtype=np.float64)
    return np.maximum(predictive_entropy(samples) - binary_entropy(samples).mean(axis=0), 0.0)


# ----------------------------------------------------------------------------- referral

def referral_curve(y_true, p_tumor, uncertainty, fractions=(0.0, 0.1, 0.2, 0.3, 0.4, 0.5),
                   threshold: float = 0.5, y_pred=None) -> pd.DataFrame:
    """Accuracy and AUC on the slices kept when the `fraction` most uncertain are referred
    (ties broken by position, stably). Calls are `y_pred` when given (each unit's own
    threshold), else p_tumor > `threshold`."""
    y, p = _checked(y_true, p_tumor)
    calls = (p > threshold) if y_pred is None else np.asarray(y_pred).astype(bool)
    points = referral_points(y, p, calls, np.asarray(uncertainty, dtype=np.float64), fractions)
    return pd.DataFrame({"referred": list(fractions),
                         "kept": [len(y) - int(round(f * len(y))) for f in fractions],
                         "accuracy": points[:, 0], "auc": points[:, 1]})


def referral_points(y: np.ndarray, p: np.ndarray, calls: np.ndarray, uncertainty: np.ndarray,
                    fractions) -> np.ndarray:
    """`referral_curve`'s (fractions, 2) accuracy and AUC on checked arrays: the same
    numbers without a table, for the thousand resamples of a bootstrap."""
    order = np.argsort(-uncertainty, kind="stable")
    points = np.full((len(fractions), 2), np.nan)
    for index, fraction in enumerate(fractions):
        kept = np.sort(order[int(round(fraction * len(y))):])
        yk = y[kept]
        if len(kept):
            points[index, 0] = float((calls[kept] == yk).mean())
        if len(np.unique(yk)) == 2:
            points[index, 1] = roc_auc(yk, p[kept])
    return points


def error_detection_auroc(y_true, p_tumor, uncertainty, threshold: float = 0.5) -> float:
    """AUROC of uncertainty as a score for "this slice's call is wrong" (0.5: no better than
    chance at flagging the model's own errors)."""
    y, p = _checked(y_true, p_tumor)
    wrong = ((p > threshold) != y).astype(int)
    if wrong.min() == wrong.max():
        return float("nan")
    return roc_auc(wrong, np.asarray(uncertainty, dtype=np.float64))

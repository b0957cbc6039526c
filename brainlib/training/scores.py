"""Slice scores and decision thresholds: one place, used by every model family.

A classifier scores a slice by its tumor probability. A segmenter scores it from its
predicted mask: the maximum pixel logit (`slice_score="max_probability"`, reported as
`p_tumor = sigmoid(max logit)` in float64), that maximum averaged with the two neighbouring
slices' of the same volume (`"max_probability_3d"`), or the predicted tumor area
(`"tumor_area"`). Float32 probabilities saturate at 1.0 for logits above about 17 and tie
many slices; float64 ties only above about 37, and the exact max logit is kept.

The decision threshold on a score is chosen by one rule for every model: on the inner
validation slices of the training side (never the test fold), the threshold with the
highest accuracy, ties broken towards the family's default (0.5 for a probability, 0 for a
logit: "any pixel predicted tumor"). The paper's protocol keeps the default.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import expit

from ..data.transform import volume_neighbours

SLICE_SCORES = ("max_probability", "max_probability_3d", "tumor_area")
SCORE_COLUMNS = {"max_probability": "max_logit", "max_probability_3d": "max_logit_3d",
                 "tumor_area": "tumor_area"}


def slice_scores(logits, rows: pd.DataFrame) -> pd.DataFrame:
    """Per slice (`rows`: its manifest rows, for patient and slice number): `max_logit`
    (float64), `max_logit_3d` (the mean of the max logits of the slice and of its two
    neighbours in the patient's volume; an end slice counts itself for the missing one) and
    `tumor_area` (fraction of pixels with logit > 0)."""
    logits = np.asarray(logits)
    if len(rows) != len(logits):
        raise ValueError(f"rows has {len(rows)} entries; logits has {len(logits)} slices")
    max_logit = logits.max(axis=(1, 2)).astype(np.float64) if len(logits) else np.empty(0)
    return pd.DataFrame({"max_logit": max_logit,
                         "max_logit_3d": neighbour_mean(max_logit, rows),
                         "tumor_area": (logits > 0).mean(axis=(1, 2))})


def neighbour_mean(values, rows: pd.DataFrame) -> np.ndarray:
    """Each slice's value averaged with the slices just below and above it in the same
    patient's volume (by slice number; an end slice repeats itself).

    A tumor is a 3-D object spanning several slices while a false positive blob rarely
    repeats on the next slice, so a slice's neighbours carry evidence about it (Buda et
    al. 2019 keep only 3-D connected components for the same reason).
    """
    values = np.asarray(values, dtype=np.float64)
    below, above = volume_neighbours(rows)
    return (values[below] + values + values[above]) / 3


def score_values(scores: pd.DataFrame, slice_score: str) -> np.ndarray:
    """The column a slice is ranked and thresholded by (`SCORE_COLUMNS[slice_score]`)."""
    if slice_score not in SLICE_SCORES:
        raise ValueError(f"slice_score must be one of {SLICE_SCORES}; found {slice_score!r}")
    return scores[SCORE_COLUMNS[slice_score]].to_numpy(np.float64)


def p_tumor_from_score(values, slice_score: str) -> np.ndarray:
    """Map a score into [0, 1] monotonically: sigmoid in float64 of a max logit (the
    maximum pixel probability, or its 3-D neighbour mean), or the predicted area as it is."""
    values = np.asarray(values, dtype=np.float64)
    return values if slice_score == "tumor_area" else expit(values)


@dataclass(frozen=True)
class SliceThreshold:
    """A slice is called tumor when its score > `threshold` (score units: max logit or area)."""

    threshold: float
    rule: str
    n_validation: int
    validation_accuracy: float


def choose_threshold(y_true, scores, default: float = 0.0) -> SliceThreshold:
    """Threshold on validation slices: the midpoint between adjacent distinct scores with
    the highest accuracy, ties broken towards `default` (0: "any pixel predicted tumor",
    for both scores). With no validation slices or one class only, `default` is kept."""
    y_true, scores = np.asarray(y_true, int), np.asarray(scores, np.float64)
    if y_true.size == 0 or y_true.min() == y_true.max():
        accuracy = float(np.mean((scores > default) == y_true)) if y_true.size else float("nan")
        return SliceThreshold(default, "default (validation lacks a class)", int(y_true.size), accuracy)
    distinct = np.unique(scores)
    candidates = np.r_[default, (distinct[:-1] + distinct[1:]) / 2, distinct[0] - 1]
    accuracies = ((scores[None, :] > candidates[:, None]) == y_true[None, :]).mean(axis=1)
    best = np.flatnonzero(accuracies == accuracies.max())
    chosen = best[np.argmin(np.abs(candidates[best] - default))]
    return SliceThreshold(float(candidates[chosen]), "max validation accuracy",
                          int(y_true.size), float(accuracies[chosen]))



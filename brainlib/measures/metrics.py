"""Classification metrics of the paper, eqs. (30)-(35), and ROC/AUC from the predictions table.

Everything here reads the predictions table (one row per scored slice, columns ``model``,
``fold``, ``patient_id``, ``slice_number``, ``y_true``, ``p_tumor``, ``y_pred`` and the
grouping keys ``scheme`` and ``control``) or plain arrays, and returns numbers, never plots.

A metric whose denominator is empty (no actual positives, no predicted positives, ...) is
NaN, and the result says why: a silent 0 or a crash would both mislead.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.stats import rankdata

METRIC_NAMES = ("accuracy", "precision", "recall", "specificity", "f1")
"""The five metrics computed for every model; sensitivity (eq. 34) equals recall (eq. 32)."""

EQUATIONS = {
    "accuracy": "eq. (30) (TP+TN)/N",
    "precision": "eq. (31) TP/(TP+FP)",
    "recall": "eq. (32) TP/(TP+FN)",
    "sensitivity": "eq. (34) TP/(TP+FN)",
    "specificity": "eq. (35) TN/(TN+FP)",
    "f1": "eq. (33) 2PR/(P+R)",
    "auc": "area under the ROC curve",
}

REQUIRED_COLUMNS = ("model", "fold", "patient_id", "slice_number", "y_true", "p_tumor", "y_pred")
GROUP_KEYS = ("model", "scheme", "control")
"""Columns that split the predictions table into separate experiments when present."""

NAN_REASONS = {
    "accuracy": "no slices (N = 0)",
    "precision": "no predicted positives (TP + FP = 0)",
    "recall": "no actual positives (TP + FN = 0)",
    "specificity": "no actual negatives (TN + FP = 0)",
    "f1": "precision or recall undefined",
}


# ---------------------------------------------------------------------------- counts

@dataclass(frozen=True)
class ConfusionCounts:
    """The four cells of a binary confusion matrix; class 1 is "tumor"."""

    tp: int
    fp: int
    fn: int
    tn: int

    @property
    def n(self) -> int:
        return self.tp + self.fp + self.fn + self.tn

    @property
    def n_positive(self) -> int:
        """Slices whose true class is tumor (TP + FN)."""
        return self.tp + self.fn

    @property
    def n_negative(self) -> int:
        """Slices whose true class is no tumor (TN + FP)."""
        return self.tn + self.fp

    def to_frame(self) -> pd.DataFrame:
        """Rows: true class; columns: predicted class."""
        return pd.DataFrame(
            [[self.tp, self.fn], [self.fp, self.tn]],
            index=pd.Index(["tumor", "no tumor"], name="true"),
            columns=pd.Index(["tumor", "no tumor"], name="predicted"),
        )

    def __str__(self) -> str:
        return f"ConfusionCounts(TP={self.tp}, FP={self.fp}, FN={self.fn}, TN={self.tn}, N={self.n})"


def _as_binary(values, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array, found shape {array.shape}")
    if array.size and not np.isin(array, (0, 1)).all():
        bad = np.unique(array[~np.isin(array, (0, 1))])[:5]
        raise ValueError(f"{name}: expected only 0/1 labels, found {bad.tolist()}")
    return array.astype(np.int64)


def confusion_counts(y_true, y_pred) -> ConfusionCounts:
    """Count TP, FP, FN, TN from 0/1 labels (1 = tumor)."""
    y_true = _as_binary(y_true, "y_true")
    y_pred = _as_binary(y_pred, "y_pred")
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred differ in length: {y_true.size} vs {y_pred.size}")
    tp = int(np.sum((y_true == 1) & (y_pred == 1)))
    fp = int(np.sum((y_true == 0) & (y_pred == 1)))
    fn = int(np.sum((y_true == 1) & (y_pred == 0)))
    tn = int(np.sum((y_true == 0) & (y_pred == 0)))
    return ConfusionCounts(tp, fp, fn, tn)


def metrics_from_counts(tp, fp, fn, tn) -> dict[str, np.ndarray]:
    """Eqs. (30)-(35) on arrays of counts, vectorised; NaN where a denominator is 0.

    F1 is written 2TP/(2TP+FP+FN), equal to eq. (33) whenever precision and recall exist,
    and is NaN when either does not.
    """
    tp, fp, fn, tn = (np.asarray(x, dtype=np.float64) for x in (tp, fp, fn, tn))
    n = tp + fp + fn + tn
    with np.errstate(divide="ignore", invalid="ignore"):
        accuracy = np.where(n > 0, (tp + tn) / n, np.nan)
        precision = np.where(tp + fp > 0, tp / (tp + fp), np.nan)
        recall = np.where(tp + fn > 0, tp / (tp + fn), np.nan)
        specificity = np.where(tn + fp > 0, tn / (tn + fp), np.nan)
        f1 = np.where(np.isnan(precision) | np.isnan(recall), np.nan, 2 * tp / (2 * tp + fp + fn))
    return {"accuracy": accuracy, "precision": precision, "recall": recall,
            "specificity": specificity, "f1": f1}


# ---------------------------------------------------------------------------- one set of metrics

@dataclass
class ClassificationMetrics:
    """Accuracy, precision, recall (= sensitivity), specificity, F1 and AUC of one model."""

    counts: ConfusionCounts
    accuracy: float
    precision: float
    recall: float
    specificity: float
    f1: float
    auc: float = np.nan
    notes: dict[str, str] = field(default_factory=dict)
    """Why a metric is NaN, keyed by metric name."""

    @property
    def sensitivity(self) -> float:
        """Eq. (34), the same quantity as recall, eq. (32)."""
        return self.recall

    def as_dict(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in (*METRIC_NAMES, "auc")}

    def to_frame(self) -> pd.DataFrame:
        rows = [
            {"metric": name, "value": getattr(self, name), "definition": EQUATIONS[name],
             "note": self.notes.get(name, "")}
            for name in ("accuracy", "precision", "recall", "sensitivity", "specificity", "f1", "auc")
        ]
        return pd.DataFrame(rows).set_index("metric")

    def summary(self) -> str:
        lines = [str(self.counts)]
        for name, row in self.to_frame().iterrows():
            value = "NaN" if np.isnan(row["value"]) else f"{row['value']:.4f}"
            note = f"  ({row['note']})" if row["note"] else ""
            lines.append(f"  {name:<12} {value:>8}  {row['definition']}{note}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


def metrics_from_confusion(counts: ConfusionCounts, auc: float = np.nan,
                           auc_note: str = "") -> ClassificationMetrics:
    """Eqs. (30)-(35) from a confusion matrix, with the reason for every NaN."""
    values = {name: float(v) for name, v in
              metrics_from_counts(counts.tp, counts.fp, counts.fn, counts.tn).items()}
    notes = {name: NAN_REASONS[name] for name, v in values.items() if np.isnan(v)}
    if np.isnan(auc):
        notes["auc"] = auc_note or "no scores given"
    return ClassificationMetrics(counts=counts, auc=float(auc), notes=notes, **values)


def classification_metrics(y_true, y_pred, p_tumor=None) -> ClassificationMetrics:
    """Metrics of one model from labels, and AUC when tumor probabilities are given."""
    counts = confusion_counts(y_true, y_pred)
    if p_tumor is None:
        return metrics_from_confusion(counts)
    auc, note = _auc_with_reason(y_true, p_tumor)
    return metrics_from_confusion(counts, auc=auc, auc_note=note)


# ---------------------------------------------------------------------------- ROC and AUC

@dataclass
class RocCurve:
    """Empirical ROC curve: one point per distinct threshold, from (0, 0) to (1, 1)."""

    fpr: np.ndarray
    tpr: np.ndarray
    thresholds: np.ndarray
    auc: float

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame({"threshold": self.thresholds, "fpr": self.fpr, "tpr": self.tpr})

    def summary(self) -> str:
        return f"ROC curve with {len(self.fpr)} points, AUC = {self.auc:.4f}"

    __str__ = summary


def _check_scores(y_true, p_tumor) -> tuple[np.ndarray, np.ndarray]:
    y_true = _as_binary(y_true, "y_true")
    scores = np.asarray(p_tumor, dtype=np.float64)
    if scores.shape != y_true.shape:
        raise ValueError(f"y_true and p_tumor differ in shape: {y_true.shape} vs {scores.shape}")
    if np.isnan(scores).any():
        raise ValueError(f"p_tumor: expected no NaN, found {int(np.isnan(scores).sum())}")
    return y_true, scores


def _auc_with_reason(y_true, p_tumor) -> tuple[float, str]:
    y_true, scores = _check_scores(y_true, p_tumor)
    n_pos = int(y_true.sum())
    n_neg = y_true.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return np.nan, f"needs both classes, found {n_pos} positives and {n_neg} negatives"
    ranks = rankdata(scores)  # midranks: a tie between classes counts one half
    auc = (ranks[y_true == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    return float(auc), ""


def roc_auc(y_true, p_tumor) -> float:
    """AUC as the Mann-Whitney probability P(score of a tumor slice > score of a non-tumor
    slice), ties counted one half; NaN when a class is missing."""
    return _auc_with_reason(y_true, p_tumor)[0]


def roc_curve(y_true, p_tumor) -> RocCurve:
    """ROC points at every distinct score; a slice is called tumor when p_tumor >= threshold."""
    y_true, scores = _check_scores(y_true, p_tumor)
    order = np.argsort(-scores, kind="mergesort")
    sorted_scores = scores[order]
    sorted_truth = y_true[order]
    # last index of every run of equal scores: the curve moves once per distinct threshold
    last_of_tie = np.r_[np.flatnonzero(np.diff(sorted_scores) != 0), sorted_scores.size - 1]
    tp = np.cumsum(sorted_truth)[last_of_tie]
    fp = np.cumsum(1 - sorted_truth)[last_of_tie]
    n_pos, n_neg = int(y_true.sum()), int(y_true.size - y_true.sum())
    with np.errstate(divide="ignore", invalid="ignore"):
        tpr = np.r_[0.0, tp / n_pos] if n_pos else np.full(tp.size + 1, np.nan)
        fpr = np.r_[0.0, fp / n_neg] if n_neg else np.full(fp.size + 1, np.nan)
    thresholds = np.r_[np.inf, sorted_scores[last_of_tie]]
    return RocCurve(fpr=fpr, tpr=tpr, thresholds=thresholds, auc=roc_auc(y_true, scores))


# ---------------------------------------------------------------------------- the predictions table

def _where(row) -> str:
    return f"patient {str(row.get('patient_id'))!r}, slice {row.get('slice_number')}"


def check_predictions(predictions: pd.DataFrame, columns=REQUIRED_COLUMNS) -> None:
    """Raise ValueError naming missing columns or out-of-range values of the predictions table."""
    missing = [c for c in columns if c not in predictions.columns]
    if missing:
        raise ValueError(f"predictions table: expected columns {list(columns)}, "
                         f"missing {missing}; found {list(predictions.columns)}")
    for name in ("y_true", "y_pred"):
        if name in predictions.columns:
            bad = ~predictions[name].isin((0, 1))
            if bad.any():
                row = predictions[bad].iloc[0]
                raise ValueError(f"predictions table: {name} must be 0/1, found {row[name]} "
                                 f"at {_where(row)}")
    if "p_tumor" in predictions.columns:
        p = predictions["p_tumor"].to_numpy(dtype=np.float64)
        bad = np.isnan(p) | (p < 0) | (p > 1)
        if bad.any():
            row = predictions[bad].iloc[0]
            raise ValueError(f"predictions table: p_tumor must lie in [0, 1], found {row['p_tumor']} "
                             f"at {_where(row)}")


def _present(predictions: pd.DataFrame, keys) -> list[str]:
    return [k for k in keys if k in predictions.columns]


def patient_predictions(predictions: pd.DataFrame, within_fold: bool = False) -> pd.DataFrame:
    """One row per patient (per model, scheme, control; and per fold if ``within_fold``).

    A patient is tumor-positive when any of its slices is (``y_true`` = max), is predicted
    positive when any slice is predicted positive (``y_pred`` = max: the any-slice rule),
    and its score is its highest slice ``p_tumor`` (so with a threshold rule, y_pred =
    [max p_tumor >= threshold]). ``found`` is 1 when one of its true tumor slices is called
    tumor: a patient flagged only by a false alarm is positive but not found.
    """
    check_predictions(predictions, ("patient_id", "y_true", "p_tumor", "y_pred"))
    keys = _present(predictions, GROUP_KEYS + (("fold",) if within_fold else ())) + ["patient_id"]
    hit = predictions.assign(hit=(predictions["y_true"] == 1) & (predictions["y_pred"] == 1))
    grouped = hit.groupby(keys, sort=True, observed=True)
    patients = grouped.agg(y_true=("y_true", "max"), y_pred=("y_pred", "max"),
                           p_tumor=("p_tumor", "max"), n_slices=("y_true", "size"),
                           found=("hit", "max"))
    patients["found"] = patients["found"].astype(np.int64)
    return patients.reset_index()


def patient_detection(predictions: pd.DataFrame) -> pd.DataFrame:
    """Per model (scheme, control): of the patients with a tumor, how many the **any-slice
    rule** calls positive (any slice called tumor, a false alarm included) and how many are
    **found** (one of their true tumor slices called tumor), with both shares."""
    patients = patient_predictions(predictions)
    tumor = patients[patients["y_true"] == 1]
    keys = _present(tumor, GROUP_KEYS)
    table = tumor.groupby(keys, sort=True, observed=True).agg(
        tumor_patients=("patient_id", "size"), any_slice_positive=("y_pred", "sum"),
        found=("found", "sum"))
    table["any-slice rule sensitivity"] = table["any_slice_positive"] / table["tumor_patients"]
    table["found rule sensitivity"] = table["found"] / table["tumor_patients"]
    return table.reset_index()


def metrics_table(predictions: pd.DataFrame, by=("model", "scheme", "control")) -> pd.DataFrame:
    """Counts, eqs. (30)-(35) and AUC for every group of rows; a ``note`` column explains NaNs."""
    check_predictions(predictions, ("y_true", "y_pred", "p_tumor"))
    keys = _present(predictions, by)
    groups = predictions.groupby(keys, sort=True, observed=True) if keys else [((), predictions)]
    rows = []
    for key, rows_of_group in groups:
        key = key if isinstance(key, tuple) else (key,)
        result = classification_metrics(rows_of_group["y_true"].to_numpy(),
                                        rows_of_group["y_pred"].to_numpy(),
                                        rows_of_group["p_tumor"].to_numpy())
        c = result.counts
        rows.append({**dict(zip(keys, key)), "n": c.n, "tp": c.tp, "fp": c.fp, "fn": c.fn,
                     "tn": c.tn, **result.as_dict(),
                     "note": "; ".join(f"{k}: {v}" for k, v in result.notes.items())})
    return pd.DataFrame(rows)


def slice_metrics(predictions: pd.DataFrame) -> pd.DataFrame:
    """Metrics over all scored slices pooled across folds, per model (and scheme, control)."""
    return metrics_table(predictions, by=GROUP_KEYS)


def fold_metrics(predictions: pd.DataFrame) -> pd.DataFrame:
    """Metrics per fold, per model (and scheme, control): the input of fold-level tests."""
    return metrics_table(predictions, by=GROUP_KEYS + ("fold",))


def patient_metrics(predictions: pd.DataFrame, within_fold: bool = False) -> pd.DataFrame:
    """Metrics with the patient as the unit (see ``patient_predictions`` for the rule)."""
    patients = patient_predictions(predictions, within_fold=within_fold)
    return metrics_table(patients, by=GROUP_KEYS + (("fold",) if within_fold else ()))

"""Chapter 05's "Does it travel?": every model tested on an institution it never saw.

``institution_table``: per institution and model, accuracy, sensitivity, specificity and
AUC with 95% intervals that take the patient as the unit (proportions:
`stats.proportion_interval`, the patient-cluster standard error with t for few patients;
AUC: the patient-clustered DeLong interval), and for the U-Net the mean per-patient Dice. ``travel_gap``: pooled over
institutions, the institution hold-out minus the patient cross-validation, per model and
metric, on the same slices.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..measures import metrics
from .. import stats
from ..config.params import SEGMENTER
from .report import main_predictions

PROPORTIONS = {"accuracy": None, "sensitivity": 1, "specificity": 0}
"""Each proportion and the true class it is measured on (None: every slice)."""


def _metric_rows(rows: pd.DataFrame) -> list[tuple[str, float, float, float]]:
    out = []
    for name, label in PROPORTIONS.items():
        subset = rows if label is None else rows[rows["y_true"] == label]
        out.append((name, *stats.proportion_interval(subset)))
    if rows["y_true"].nunique() < 2:
        out.append(("auc", np.nan, np.nan, np.nan))  # one class: no ranking to measure
        return out
    try:
        auc = stats.auc_interval(rows["y_true"], rows["p_tumor"], cluster=rows["patient_id"])
        out.append(("auc", auc.auc, auc.ci_low, auc.ci_high))
    except ValueError:  # too few patients with both classes for a clustered variance
        out.append(("auc", metrics.roc_auc(rows["y_true"], rows["p_tumor"]), np.nan, np.nan))
    return out


def institution_table(predictions: pd.DataFrame, institution_of_fold: dict[int, str],
                      patient_dice: pd.DataFrame | None = None) -> pd.DataFrame:
    """Long table: institution, model, metric, estimate, ci_low, ci_high, patients, slices.

    `predictions`: the institution hold-out's predictions (`study.run_institution_holdout`);
    `patient_dice`: optional per-patient Dice of the U-Net (patient_id, dice) from its
    masks, added as metric "dice" (mean over that institution's patients with a tumor, no
    interval: a handful of patients)."""
    main = main_predictions(predictions)
    records = []
    for (fold, model), rows in main.groupby(["fold", "model"], sort=True):
        code = institution_of_fold[int(fold)]
        base = {"institution": code, "model": model, "patients": rows["patient_id"].nunique(),
                "slices": len(rows)}
        for metric, estimate, low, high in _metric_rows(rows):
            records.append({**base, "metric": metric, "estimate": estimate, "ci_low": low,
                            "ci_high": high})
        if patient_dice is not None and model == SEGMENTER:
            own = patient_dice[patient_dice["patient_id"].isin(rows["patient_id"])]
            records.append({**base, "metric": "dice", "estimate": float(own["dice"].mean())
                            if len(own) else np.nan, "ci_low": np.nan, "ci_high": np.nan})
    return pd.DataFrame(records, columns=["institution", "model", "metric", "estimate", "ci_low",
                                          "ci_high", "patients", "slices"])


def display_table(table: pd.DataFrame) -> pd.DataFrame:
    """Rows (institution, patients, model), columns the metrics: "estimate [low, high]"
    (one model per row keeps the table as wide as the text, not three models wide)."""
    def text(row) -> str:
        if not np.isfinite(row.estimate):
            return "n/a"
        if not (np.isfinite(row.ci_low) and np.isfinite(row.ci_high)):
            return f"{row.estimate:.3f}"
        return f"{row.estimate:.3f} [{row.ci_low:.3f}, {row.ci_high:.3f}]"

    shown = table.assign(value=[text(r) for r in table.itertuples()])
    shown = shown.pivot(index=["institution", "patients", "model"], columns="metric",
                        values="value")
    return shown.rename_axis(columns=None)


def travel_gap(cross_validation: pd.DataFrame, institution: pd.DataFrame) -> pd.DataFrame:
    """Per model and metric, pooled over all slices: the institution hold-out, the patient
    cross-validation, and their difference (institution - cross-validation). Both score
    every slice once, so the two pools hold the same slices."""
    held_out, cross = main_predictions(institution), main_predictions(cross_validation)
    tables = {name: metrics.metrics_table(frame, by=("model",)).set_index("model")
              for name, frame in (("institution", held_out), ("cross-validation", cross))}
    rows = []
    for model in sorted(set(tables["institution"].index) & set(tables["cross-validation"].index)):
        held, cv = tables["institution"].loc[model], tables["cross-validation"].loc[model]
        for metric, column in (("accuracy", "accuracy"), ("sensitivity", "recall"),
                               ("specificity", "specificity"), ("auc", "auc")):
            rows.append({"model": model, "metric": metric, "institution hold-out": held[column],
                         "cross-validation": cv[column], "difference": held[column] - cv[column],
                         "slices": int(held["n"])})
    return pd.DataFrame(rows)


def travel_sentences(table: pd.DataFrame, few: int = 5) -> list[str]:
    """How many patients each institution has, and which have too few for a steady
    interval (computed from `institution_table`)."""
    counts = table.groupby("institution")["patients"].first()
    lines = ["Patients per institution: " + ", ".join(f"{k} {n}" for k, n in counts.items())
             + "."]
    small = [k for k, n in counts.items() if n < few]
    if small:
        lines.append(f"{', '.join(small)} {'has' if len(small) == 1 else 'have'} fewer than "
                     f"{few} patients: an interval from so few clusters is itself unsteady, "
                     "so read those rows as anecdotes, not estimates.")
    return lines

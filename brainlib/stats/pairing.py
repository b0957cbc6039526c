"""Pairing two models' predictions slice by slice, the input of every paired method.

Model "a" is the first model passed to ``pair_predictions`` (the study passes its classifiers
in the order of its ``models`` setting, ResNet50 first) and every difference is a - b. A
paired table holds one (scheme, control) experiment: the methods refuse a table that mixes
them (``check_one_experiment``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..measures.metrics import check_predictions

PAIR_KEYS = ("scheme", "control", "fold", "patient_id", "slice_number")
"""Columns that identify one scored slice; two models are paired on these."""


def pair_predictions(predictions: pd.DataFrame, model_a: str, model_b: str) -> pd.DataFrame:
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


def model_names(paired) -> tuple[str, str]:
    """(model a, model b) as ``pair_predictions`` recorded them; ("a", "b") otherwise."""
    attrs = getattr(paired, "attrs", {}) or {}
    return attrs.get("model_a", "a"), attrs.get("model_b", "b")


def check_one_experiment(paired: pd.DataFrame, where: str) -> None:
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

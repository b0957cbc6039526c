"""Chapter 05's leakage experiment: the paper's slice split and the shuffled-label control.

The paper split slices, not patients, so slices of one patient sat on both sides of its
split. The training chapter can train both models again on the slice folds, and on both
splits with shuffled training labels (a model that learned nothing must score at chance).

``leakage_table`` gives accuracy and AUC with patient-resampled intervals for every split x
labels x model, beside chance; ``leakage_inflation`` the paired difference slice split minus
patient split on the slices both splits scored; ``leakage_sentences`` the verdicts in words.
A run without the experiment, or with different slices scored by the two splits, gives a
result that says so (``.available``, ``.reason``) instead of failing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .. import stats
from ..config.params import MAIN_CONTROL, MAIN_SCHEME, METRIC_DISPLAY_NAMES
from .report import (
    BOTH_INTERVALS_NOTE,
    both_intervals_text,
    check_one_protocol,
    differences_only,
    interval_side,
    main_predictions,
    models_only,
    with_percentile,
)

NOT_RUN = ("the leakage experiment was not run: the predictions hold only the patient split "
           "with true labels (run with leakage_experiment=true to train the slice split and "
           "the shuffled-label controls)")
SLICE_KEYS = ["patient_id", "slice_number"]


def not_run_line(leakage_experiment: bool, evaluation: str) -> str:
    """One line for a run whose leakage experiment did not run, saying why: not asked for,
    or asked for under an evaluation it does not apply to (it re-splits the patients of a
    cross-validation; a hold-out or institution folds have no slice split to compare)."""
    if leakage_experiment and evaluation != "cv":
        return (f"Not run in this study: the leakage experiment compares a slice split with "
                f"a patient split of the same patients, and this run's evaluation is "
                f"{evaluation!r}.")
    return "Not run in this study (leakage_experiment=false)."


def _labels(control: str) -> str:
    return "true" if control == MAIN_CONTROL else "shuffled"


def _only_main_experiment(predictions: pd.DataFrame) -> bool:
    if not {"scheme", "control"} <= set(predictions.columns):
        return True
    experiments = predictions[["scheme", "control"]].drop_duplicates()
    return len(experiments) <= 1 and (experiments.empty or (
        experiments.iloc[0]["scheme"] == MAIN_SCHEME
        and experiments.iloc[0]["control"] == MAIN_CONTROL))


def _majority_rate(y_true) -> float:
    prevalence = float(np.mean(y_true)) if len(y_true) else np.nan
    return max(prevalence, 1 - prevalence)


@dataclass
class LeakageTable(stats.Result):
    """Accuracy and AUC per split x labels x model, 95% intervals resampling patients."""

    available: bool
    reason: str
    frame: pd.DataFrame
    """Long form: split, labels, model, metric, estimate, ci_low, ci_high (BCa),
    percentile_low, percentile_high (the same patient bootstrap), chance, n_slices,
    n_patients."""
    majority_rate: float
    """Accuracy of always answering the majority class on the main experiment's slices."""
    skipped: list[str] = field(default_factory=list)
    """Experiments that could not be computed, with the reason."""

    @property
    def table(self) -> pd.DataFrame:
        """Display table: rows (labels, split), columns (metric, model),
        "estimate [BCa low, high] (percentile low, high)"."""
        if self.frame.empty:
            return pd.DataFrame()
        text = self.frame.assign(value=[both_intervals_text(*v) for v in self.frame[
            ["estimate", "ci_low", "ci_high", "percentile_low", "percentile_high"]].to_numpy()])
        return text.pivot(index=["labels", "split"], columns=["metric", "model"], values="value")

    @property
    def controls(self) -> pd.DataFrame:
        """The shuffled-label rows, with ``above_chance``: the whole interval above chance."""
        rows = self.frame[self.frame["labels"] == "shuffled"]
        return rows.assign(above_chance=rows["ci_low"] > rows["chance"])

    def title(self) -> str:
        return "Slice split vs patient split, true and shuffled labels; 95% CIs resample patients"

    def notes(self) -> list[str]:
        head = [] if self.available else [self.reason]
        head.append(BOTH_INTERVALS_NOTE)
        if np.isfinite(self.majority_rate):
            head.append(f"chance: AUC 0.5; accuracy {self.majority_rate:.3f} by always answering "
                        "the majority class")
        return head + [f"skipped: {s}" for s in self.skipped]

    def to_frame(self) -> pd.DataFrame:
        return self.table


def leakage_table(predictions: pd.DataFrame, models, n_resamples: int, seed: int,
                  confidence: float = 0.95, analysis_dir=None) -> LeakageTable:
    """Accuracy and AUC of each experiment (scheme x control) and model, with patient-resampled
    BCa intervals, and chance: AUC 0.5 and the majority-class accuracy of the experiment's
    own slices. ``models``: the two models, paired within each experiment."""
    check_one_protocol(predictions, "leakage_table")
    model_a, model_b = list(models)[:2]
    main = main_predictions(predictions)
    majority = _majority_rate(main.drop_duplicates(SLICE_KEYS)["y_true"]) if len(main) else np.nan
    columns = ["split", "labels", "model", "metric", "estimate", "ci_low", "ci_high",
               "percentile_low", "percentile_high", "chance", "n_slices", "n_patients"]
    if _only_main_experiment(predictions):
        return LeakageTable(available=False, reason=NOT_RUN, frame=pd.DataFrame(columns=columns),
                            majority_rate=majority)
    rows, skipped = [], []
    for (scheme, control), experiment in predictions.groupby(["scheme", "control"], sort=True):
        where = f"{scheme} split, {_labels(control)} labels"
        try:
            pair = stats.pair_predictions(experiment, model_a, model_b)
            intervals = with_percentile(pair, n_resamples, seed, confidence, analysis_dir)
        except ValueError as error:  # a model missing, one patient, one class, ...
            skipped.append(f"{where}: {error}")
            continue
        chosen = models_only(intervals[intervals["metric"].isin(["accuracy", "auc"])])
        chance = _majority_rate(pair["y_true"])
        for r in chosen.itertuples():
            rows.append({"split": scheme, "labels": _labels(control), "model": r.model,
                         "metric": r.metric, "estimate": r.estimate, "ci_low": r.ci_low,
                         "ci_high": r.ci_high, "percentile_low": r.percentile_low,
                         "percentile_high": r.percentile_high,
                         "chance": 0.5 if r.metric == "auc" else chance,
                         "n_slices": len(pair), "n_patients": pair["patient_id"].nunique()})
    frame = pd.DataFrame(rows, columns=columns)
    reason = "" if rows else "no experiment could be computed: " + "; ".join(skipped)
    return LeakageTable(available=bool(rows), reason=reason, frame=frame, majority_rate=majority,
                        skipped=skipped)


# ---------------------------------------------------------------------------- inflation

@dataclass
class LeakageInflation(stats.Result):
    """Slice split minus patient split, per model, on the slices both splits scored."""

    available: bool
    reason: str
    frame: pd.DataFrame
    """model, metric, slice_minus_patient, ci_low, ci_high (BCa), percentile_low,
    percentile_high, n_slices, n_patients."""
    common_slices: dict[str, int]
    """Per model, the slices both splits scored with true labels."""
    scored: dict[str, tuple[int, int]]
    """Per model, the slices scored by (slice split, patient split)."""
    skipped: list[str] = field(default_factory=list)

    def title(self) -> str:
        return ("Inflation by the slice split: slice split - patient split, paired on the same "
                "slices; 95% CIs resample patients")

    def notes(self) -> list[str]:
        out = [] if self.available else [self.reason]
        out.append("ci_low, ci_high: BCa; percentile_low, percentile_high: percentile limits of "
                   "the same patient bootstrap, steadier with few patients")
        for model, n in self.common_slices.items():
            slice_split, patient_split = self.scored[model]
            out.append(f"{model}: compared on the {n} slices both splits scored (slice split "
                       f"{slice_split}, patient split {patient_split})")
        return out + [f"skipped: {s}" for s in self.skipped]

    def to_frame(self) -> pd.DataFrame:
        return self.frame.copy()


def leakage_inflation(predictions: pd.DataFrame, models, n_resamples: int, seed: int,
                      confidence: float = 0.95, analysis_dir=None) -> LeakageInflation:
    """Per model, accuracy and AUC of its slice-split predictions minus its patient-split
    predictions (true labels), paired slice by slice, patient-resampled BCa intervals.

    Only slices scored under both splits enter (with every fold run, all of them; with some
    folds, the two splits' folds hold different slices); ``common_slices`` says how many.
    """
    check_one_protocol(predictions, "leakage_inflation")
    columns = ["model", "metric", "slice_minus_patient", "ci_low", "ci_high", "percentile_low",
               "percentile_high", "n_slices", "n_patients"]
    empty = pd.DataFrame(columns=columns)
    if _only_main_experiment(predictions):
        return LeakageInflation(False, NOT_RUN, empty, {}, {})
    true_labels = predictions[predictions["control"] == MAIN_CONTROL]
    if "slice" not in set(true_labels["scheme"]):
        return LeakageInflation(False, "the slice split was not trained with true labels, so "
                                "there is nothing to compare the patient split with", empty, {}, {})
    rows, common, scored, skipped = [], {}, {}, []
    for model in models:
        own = true_labels[true_labels["model"] == model]
        by_scheme = {s: own[own["scheme"] == s] for s in ("slice", "patient")}
        scored[model] = (len(by_scheme["slice"]), len(by_scheme["patient"]))
        both = by_scheme["slice"][SLICE_KEYS].drop_duplicates().merge(
            by_scheme["patient"][SLICE_KEYS].drop_duplicates(), on=SLICE_KEYS)
        common[model] = len(both)
        if both.empty:
            skipped.append(f"{model}: the two splits scored no slice in common")
            continue
        # each split plays one "model" of the paired bootstrap; fold and scheme differ by design
        within = own.merge(both, on=SLICE_KEYS)
        by_split = within.assign(model=within["scheme"], scheme="both", fold=0)
        try:
            pair = stats.pair_predictions(by_split, "slice", "patient")
            intervals = differences_only(with_percentile(pair, n_resamples, seed, confidence,
                                                         analysis_dir))
        except ValueError as error:
            skipped.append(f"{model}: {error}")
            continue
        for r in intervals[intervals["metric"].isin(["accuracy", "auc"])].itertuples():
            rows.append({"model": model, "metric": r.metric, "slice_minus_patient": r.estimate,
                         "ci_low": r.ci_low, "ci_high": r.ci_high,
                         "percentile_low": r.percentile_low,
                         "percentile_high": r.percentile_high, "n_slices": len(pair),
                         "n_patients": pair["patient_id"].nunique()})
    frame = pd.DataFrame(rows, columns=columns)
    if rows:
        reason = ""
    elif common and not any(common.values()):
        reason = "the slice split and the patient split scored no slice in common"
    else:
        reason = "no model could be compared: " + "; ".join(skipped)
    return LeakageInflation(bool(rows), reason, frame, common, scored, skipped)


def _side(low, high, reference) -> int:
    return 1 if low > reference else -1 if high < reference else 0


def _percentile_check(row, reference: float) -> str:
    """Empty when the percentile interval says the same about ``reference`` as BCa; else
    the disagreement, in words (a verdict that depends on the interval method is fragile)."""
    if _side(row.ci_low, row.ci_high, reference) == _side(row.percentile_low,
                                                          row.percentile_high, reference):
        return ""
    return (f"; the percentile interval ({row.percentile_low:+.3f} to {row.percentile_high:+.3f}) "
            f"{interval_side(row.percentile_low, row.percentile_high, reference, None)}, so "
            "this verdict depends on the interval method: fragile")


def metric_name(metric: str) -> str:
    """A metric as prose names it: 'AUC', not the table's 'auc'."""
    return METRIC_DISPLAY_NAMES.get(metric, metric)


def leakage_sentences(table: LeakageTable, inflation: LeakageInflation) -> list[str]:
    """The verdicts, computed from the two tables: what the slice split did to each metric,
    and where each shuffled-label control lies relative to chance."""
    lines = []
    if not inflation.available:
        lines.append(f"Inflation by the slice split: not computed ({inflation.reason}).")
    for r in inflation.frame.itertuples():
        change = r.slice_minus_patient
        direction = "raised" if change > 0 else "lowered" if change < 0 else "did not change"
        lines.append(f"{r.model}: the slice split {direction} {metric_name(r.metric)} by {abs(change):.3f} on "
                     f"{r.n_slices} slices both splits scored (the 95% interval "
                     f"{interval_side(r.ci_low, r.ci_high, 0.0, names=None)}: "
                     f"{r.ci_low:+.3f} to {r.ci_high:+.3f})"
                     + _percentile_check(r, 0.0) + ".")
    if not table.available:
        lines.append(f"Shuffled-label controls: not computed ({table.reason}).")
        return lines
    controls = table.controls
    if controls.empty:
        lines.append("No shuffled-label control was scored.")
        return lines
    for r in controls.itertuples():
        lines.append(f"{r.model}, {r.split} split, shuffled labels: {metric_name(r.metric)} "
                     f"{r.estimate:.3f}; "
                     "the 95% interval "
                     f"{interval_side(r.ci_low, r.ci_high, r.chance, None, 'chance')}"
                     + _percentile_check(r, r.chance) + ".")
    above = controls[controls["above_chance"]]
    listed = ", ".join(f"{r.model} {r.split} split {metric_name(r.metric)}"
                       for r in above.itertuples())
    lines.append(f"{len(above)} of {len(controls)} control intervals lie above chance"
                 + (f": {listed}." if listed else "."))
    return lines

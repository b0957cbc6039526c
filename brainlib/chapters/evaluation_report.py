"""Chapter 05's tables of the main experiment: Table IV with intervals, and the per-patient view.

``table_iv`` gives the paper's Table IV for this run's held-out predictions, each metric with
95% intervals: slices resampled (too narrow: slices of a patient err together) and
patients resampled (the honest one; BCa, and percentile beside it, which is steadier with
few patients), beside the value the paper printed.
``patient_summary`` makes the patient the unit of the slice results: per-patient accuracy,
misses and false alarms, their mean, worst and best, and the patients with a tumor of
which not one tumor slice was found.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from . import audit
from ..config.params import main_experiment
from ..measures import metrics
from .. import stats
from .report import interval_text, main_predictions, models_only, patient_intervals


@dataclass
class TableIV(stats.Result):
    """Table IV of the paper for one run, with slice- and patient-resampled 95% intervals."""

    table: pd.DataFrame
    """Display table, index (model, metric): "slices resampled", "patients resampled" (BCa),
    "patients, percentile"
    (each "estimate [low, high]") and "paper (%)" (the paper's printed value)."""
    values: pd.DataFrame
    """The same numbers unformatted, one row per (model, metric): estimate, slices_low,
    slices_high, patients_low, patients_high, paper_percent."""
    widths: pd.DataFrame
    """Interval widths per (model, metric) of eqs. (30)-(35), slices and patients resampled."""
    width_ratio: float
    """Median of the width ratios patients / slices."""
    model_a: str
    model_b: str
    n_slices: int
    n_patients: int
    n_resamples: int

    def title(self) -> str:
        return (f"Table IV with 95% intervals: {self.n_slices} held-out slices of "
                f"{self.n_patients} patients, {self.n_resamples} bootstrap resamples")

    def notes(self) -> list[str]:
        return ["slices resampled: BCa bootstrap of slices (DeLong for AUC); patients resampled:"
                " BCa bootstrap of patients (clustered DeLong for AUC)",
                f"median interval width, patients / slices resampled: {self.width_ratio:.2f}"]

    def to_frame(self) -> pd.DataFrame:
        return self.table.copy()

    def headline_values(self) -> dict:
        """Accuracy and AUC of model a and model b as "estimate [low, high]", patients
        resampled (BCa; clustered DeLong for AUC), named ``a_accuracy`` ... ``b_auc``."""
        found = {}
        for role, model in (("a", self.model_a), ("b", self.model_b)):
            for r in self.values[(self.values["model"] == model)
                                 & self.values["metric"].isin(["accuracy", "auc"])].itertuples():
                found[f"{role}_{r.metric}"] = interval_text(r.estimate, r.patients_low,
                                                            r.patients_high)
        return found


def table_iv(predictions: pd.DataFrame, model_a: str, model_b: str, n_resamples: int,
             seed: int, confidence: float = 0.95, analysis_dir=None) -> TableIV:
    """Table IV of the main experiment (patient folds, true labels) with intervals.

    Eqs. (30)-(33), (35): paired BCa bootstraps of slices and of patients; AUC: DeLong's and
    the patient-clustered DeLong interval (``stats.auc_interval``). The patient bootstrap
    goes through ``report.patient_intervals`` and so is shared with chapter 06 via
    ``analysis_dir``.
    """
    paired = stats.pair_predictions(main_predictions(predictions), model_a, model_b)
    by_slice = models_only(stats.bootstrap_metrics(
        paired, n_resamples=n_resamples, confidence=confidence, seed=seed).to_frame())
    by_patient = patient_intervals(paired, n_resamples, seed, confidence, analysis_dir)
    by_patient = models_only(by_patient[by_patient["metric"] != "auc"])
    percentile = models_only(patient_intervals(paired, n_resamples, seed, confidence, analysis_dir,
                                               method="percentile"))
    both = by_slice.merge(by_patient, on=["metric", "model"], suffixes=("_s", "_p"),
                          validate="one_to_one")
    values = pd.DataFrame({"model": both["model"], "metric": both["metric"],
                           "estimate": both["estimate_s"],
                           "slices_low": both["ci_low_s"], "slices_high": both["ci_high_s"],
                           "patients_low": both["ci_low_p"], "patients_high": both["ci_high_p"]})
    widths = pd.DataFrame({"model": values["model"], "metric": values["metric"],
                           "slices": values["slices_high"] - values["slices_low"],
                           "patients": values["patients_high"] - values["patients_low"]})
    aucs = []
    for model, side in ((model_a, "a"), (model_b, "b")):
        plain = stats.auc_interval(paired["y_true"], paired[f"p_tumor_{side}"],
                                   confidence=confidence)
        clustered = stats.auc_interval(paired["y_true"], paired[f"p_tumor_{side}"],
                                       cluster=paired["patient_id"], confidence=confidence)
        aucs.append({"model": model, "metric": "auc", "estimate": plain.auc,
                     "slices_low": plain.ci_low, "slices_high": plain.ci_high,
                     "patients_low": clustered.ci_low, "patients_high": clustered.ci_high})
    values = pd.concat([values, pd.DataFrame(aucs)], ignore_index=True)
    values = values.merge(percentile[["metric", "model", "ci_low", "ci_high"]].rename(
        columns={"ci_low": "percentile_low", "ci_high": "percentile_high"}),
        on=["metric", "model"], how="left")
    values["paper_percent"] = [audit.PRINTED_TABLE_IV.get(m, {}).get(k, np.nan)
                               for m, k in zip(values["model"], values["metric"])]
    order = {model_a: 0, model_b: 1}
    values = values.sort_values("model", key=lambda s: s.map(order), kind="stable")
    values = values.reset_index(drop=True)
    table = pd.DataFrame({
        "model": values["model"], "metric": values["metric"],
        "slices resampled": [interval_text(e, lo, hi) for e, lo, hi in
                             values[["estimate", "slices_low", "slices_high"]].to_numpy()],
        "patients resampled": [interval_text(e, lo, hi) for e, lo, hi in
                               values[["estimate", "patients_low", "patients_high"]].to_numpy()],
        "patients, percentile": [interval_text(e, lo, hi) for e, lo, hi in values[
            ["estimate", "percentile_low", "percentile_high"]].to_numpy()],
        "paper (%)": values["paper_percent"]}).set_index(["model", "metric"])
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = float(np.nanmedian(widths["patients"] / widths["slices"]))
    return TableIV(table=table, values=values, widths=widths, width_ratio=ratio,
                   model_a=model_a, model_b=model_b, n_slices=len(paired),
                   n_patients=int(paired["patient_id"].nunique()), n_resamples=n_resamples)


# ---------------------------------------------------------------------------- per patient

@dataclass
class PatientSummary(stats.Result):
    """The slice results of each patient, and what they say about the patients as a group."""

    table: pd.DataFrame
    """One row per patient: n, tumor_slices, and per model accuracy, missed, false alarms."""
    macro: pd.DataFrame
    """Per model: mean, worst and best per-patient slice accuracy beside pooled accuracy."""
    per_patient: pd.DataFrame
    """``metrics.metrics_table`` by model and patient, with tumor_slices (long form)."""
    missed_patients: dict[str, list[str]]
    """Per model, the patients with a tumor and not one tumor slice found."""
    worst: pd.DataFrame
    """Per model, its patient with the lowest slice accuracy."""
    models: list[str] = field(default_factory=list)

    def title(self) -> str:
        return f"Per-patient slice results of {', '.join(self.models)}, {len(self.table)} patients"

    def lines(self) -> list[str]:
        """The sentences chapter 05 prints under the table."""
        out = []
        for model in self.models:
            names = self.missed_patients.get(model, [])
            out.append(f"{model}: patients with a tumor and not one tumor slice found: "
                       f"{len(names)}" + (f" {names}" if names else ""))
        for r in self.worst.itertuples():
            out.append(f"{r.model}: worst patient {r.patient_id}, slice accuracy "
                       f"{r.accuracy:.3f}: {r.fn} of its {r.tumor_slices} tumor slices missed, "
                       f"{r.fp} of its {r.n - r.tumor_slices} tumor-free slices flagged")
        return out

    notes = lines

    def to_frame(self) -> pd.DataFrame:
        return self.macro.copy()


def patient_summary(main_predictions_table: pd.DataFrame, models) -> PatientSummary:
    """Per-patient slice results of the main experiment (rows of other experiments are
    dropped): each patient's slice accuracy, missed tumor slices and false alarms per model,
    and the macro summary that weighs every patient equally."""
    main = main_predictions(main_predictions_table)
    models = list(models)
    main = main[main["model"].isin(models)]
    missing = [m for m in models if m not in set(main["model"])]
    if missing:
        raise ValueError(f"patient_summary: expected models {models} in the main predictions, "
                         f"missing {missing}")
    per_patient = metrics.metrics_table(main, by=("model", "patient_id"))
    per_patient["tumor_slices"] = per_patient["tp"] + per_patient["fn"]
    table = per_patient.groupby("patient_id")[["n", "tumor_slices"]].first()
    for model in models:
        own = per_patient[per_patient["model"] == model].set_index("patient_id")
        table[f"{model} accuracy"] = own["accuracy"]
        table[f"{model} missed"] = own["fn"]
        table[f"{model} false alarms"] = own["fp"]
    macro = per_patient.groupby("model")["accuracy"].agg(["mean", "min", "max"])
    macro.columns = ["mean of per-patient accuracy", "worst patient", "best patient"]
    pooled = per_patient.groupby("model")[["tp", "tn", "n"]].sum()
    macro["pooled slice accuracy"] = (pooled["tp"] + pooled["tn"]) / pooled["n"]
    macro = macro.loc[models]
    missed = per_patient[(per_patient["tumor_slices"] > 0) & (per_patient["tp"] == 0)]
    missed_patients = {m: missed.loc[missed["model"] == m, "patient_id"].tolist() for m in models}
    worst = per_patient.sort_values(["accuracy", "patient_id"]).groupby("model").head(1)
    worst = worst.set_index("model").loc[models].reset_index()
    return PatientSummary(table=table, macro=macro, per_patient=per_patient,
                          missed_patients=missed_patients, worst=worst, models=models)


def tumor_free_sentence(tumor_free: int, n_patients: int) -> str:
    """What the patient rule's specificity and AUC rest on, from the count of tumor-free
    test patients: nothing (none: they are undefined), anecdotes (a few), or estimates."""
    if tumor_free == 0:
        return (f"None of the {n_patients} test patients is tumor-free, so the patient rule's "
                "specificity and AUC cannot be computed here (dashes in the table): on these "
                "patients it measures sensitivity only.")
    counted = (f"{tumor_free} of the {n_patients} test patients "
               f"{'is' if tumor_free == 1 else 'are'} tumor-free")
    if tumor_free < 10:
        return (f"{counted}: the patient rule's specificity and AUC rest on "
                f"{'that one negative' if tumor_free == 1 else f'those {tumor_free} negatives'}"
                ", so read them as anecdotes, not estimates.")
    return f"{counted}, the negatives the patient rule's specificity and AUC rest on."


def protocol_table(predictions: pd.DataFrame) -> pd.DataFrame:
    """The main experiment (patient folds, true labels) per model and protocol, side by
    side: accuracy, sensitivity, specificity, AUC and the median of the units' thresholds
    (`study.run_protocol_comparison` gives both protocols' predictions)."""
    main = main_experiment(predictions)
    table = metrics.metrics_table(main, by=("model", "protocol"))
    table = table.rename(columns={"recall": "sensitivity"})
    thresholds = main.groupby(["model", "protocol"])["threshold"].median().rename("median threshold")
    table = table.set_index(["model", "protocol"]).join(thresholds)
    return table[["n", "accuracy", "sensitivity", "specificity", "auc", "median threshold"]]

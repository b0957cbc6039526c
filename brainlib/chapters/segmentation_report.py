"""Chapter 07's tables: the U-Net's slice scores beside the two classifiers.

``head_intensity_spread``: how far each MRI sequence's scale varies between patients, as read
and after the per-volume rescaling. ``auc_by_fold``: the AUC of a slice's own maximum logit
against the score averaged with its neighbours. ``paired_comparison``: paired tests of one
model against the others on the same slices. ``missed_overlap``: which models miss which
tumor slices, and whether the misses are the small tumors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..measures import metrics
from .. import stats
from .report import SEQUENCES, interval_side, main_predictions

SLICE_KEYS = ["patient_id", "slice_number"]


# ---------------------------------------------------------------------------- intensity

@dataclass
class HeadIntensitySpread(stats.Result):
    """Each patient's bright end of the head per sequence, as read and rescaled per volume."""

    per_patient: pd.DataFrame
    """version, sequence, patient_id, institution, p90, "relative to the mean"."""
    spread: pd.DataFrame
    """Coefficient of variation of p90 between patients: index version, columns sequence."""

    def title(self) -> str:
        return ("Spread between patients of the 90th percentile of the head's non-zero pixels "
                "(coefficient of variation)")

    def to_frame(self) -> pd.DataFrame:
        return self.spread.copy()


def head_intensity_spread(images_as_read, images_rescaled, manifest: pd.DataFrame,
                          sequences=SEQUENCES) -> HeadIntensitySpread:
    """Per patient and sequence (channel), the 90th percentile of the non-zero pixels of all
    its slices, in both stacks; relative to the mean over patients, and the coefficient of
    variation (std / mean) between patients. A patient without a non-zero pixel in a channel
    gets NaN there."""
    patients = manifest["patient_id"].to_numpy()
    rows = []
    for version, stack in (("as read", images_as_read), ("rescaled per volume", images_rescaled)):
        stack = np.asarray(stack)
        if len(stack) != len(manifest):
            raise ValueError(f"head_intensity_spread: expected {len(manifest)} images ({version}),"
                             f" one per manifest row, found {len(stack)}")
        for patient, positions in pd.Series(range(len(patients))).groupby(patients).groups.items():
            positions = np.asarray(positions)
            for channel, sequence in enumerate(sequences):
                values = stack[positions][..., channel]
                values = values[values > 0]
                rows.append({"version": version, "sequence": sequence, "patient_id": patient,
                             "institution": (manifest["institution"].iloc[positions[0]]
                                             if "institution" in manifest.columns else ""),
                             "p90": float(np.percentile(values, 90)) if values.size else np.nan})
    per_patient = pd.DataFrame(rows)
    groups = per_patient.groupby(["version", "sequence"], sort=False)["p90"]
    per_patient["relative to the mean"] = per_patient["p90"] / groups.transform("mean")
    spread = (groups.std() / groups.mean()).unstack("sequence")[list(sequences)]
    return HeadIntensitySpread(per_patient=per_patient, spread=spread)


# ---------------------------------------------------------------------------- slice scores

def auc_by_fold(slice_scores: pd.DataFrame) -> pd.DataFrame:
    """AUC of the U-Net's slice score from its own maximum logit (``max_logit``) and averaged
    with its neighbours (``max_logit_3d``), per fold and pooled; NaN where a fold has one class."""
    columns = ["slices", "AUC, own maximum", "AUC, with neighbours"]

    def row(scores):
        return [len(scores), metrics.roc_auc(scores["label"], scores["max_logit"]),
                metrics.roc_auc(scores["label"], scores["max_logit_3d"])]

    if len(slice_scores) == 0:
        return pd.DataFrame(columns=columns).rename_axis("fold")
    table = pd.DataFrame([row(s) for _, s in slice_scores.groupby("fold")], columns=columns,
                         index=pd.Index(sorted(slice_scores["fold"].unique()), name="fold",
                                        dtype=object))
    table.loc["pooled"] = row(slice_scores)
    return table.astype({"slices": int})


# ---------------------------------------------------------------------------- three classifiers

def paired_comparison(predictions: pd.DataFrame, reference_model: str,
                         other_models) -> pd.DataFrame:
    """Per other model, on the main experiment's slices both scored: accuracy difference
    (reference - other) with its patient-cluster 95% interval (``stats.cluster_interval``)
    and the exact McNemar p, and AUC difference with the patient-clustered DeLong p."""
    main = main_predictions(predictions)
    rows = []
    for other in other_models:
        paired = stats.pair_predictions(main, reference_model, other)
        mcnemar = stats.mcnemar_test(paired, method="exact")
        delong = stats.delong_test(paired, cluster="patient_id")
        _, low, high = stats.cluster_interval(paired)
        rows.append({"comparison": f"{reference_model} - {other}", "slices": len(paired),
                     "patients": paired["patient_id"].nunique(),
                     "accuracy difference": mcnemar.difference,
                     "ci_low (patients)": low, "ci_high (patients)": high,
                     "McNemar p (exact)": mcnemar.pvalue,
                     "AUC difference": delong.difference,
                     "DeLong p (patient-clustered)": delong.pvalue})
    return pd.DataFrame(rows)


def worth_sentences(comparison: pd.DataFrame, dataset: str,
                    looked_at: tuple[int, tuple] | None = None) -> list[str]:
    """Chapter 07's closing words, from ``paired_comparison``: each difference with the
    side of 0 its patient-level interval lies on, and what the dataset lets them mean.
    ``looked_at``: (test patients, ``runcard.looked_at_counts`` of them)."""
    from .runcard import looked_at_words

    lines = []
    for r in comparison.to_dict("records"):
        a, b = r["comparison"].split(" - ")
        low, high = r["ci_low (patients)"], r["ci_high (patients)"]
        lines.append(f"{r['comparison']}: accuracy {r['accuracy difference']:+.3f}, 95% interval "
                     f"with patients as the unit {low:+.3f} to {high:+.3f}, which "
                     f"{interval_side(low, high, 0.0, (a, b))}; AUC {r['AUC difference']:+.3f} "
                     f"(patient-clustered DeLong p = {r['DeLong p (patient-clustered)']:.3g}); "
                     f"{r['patients']} patients.")
    if dataset.upper() == "PHANTOM":
        lines.append("These are PHANTOM numbers: they show the machinery works and say nothing "
                     "about what masks are worth on real MRI.")
    elif looked_at is None:
        lines.append(f"These are {dataset.upper()} patients.")
    else:
        n_test, by_reason = looked_at
        seen = sum(n for _, n in by_reason)
        lines.append(f"These are {dataset.upper()} patients. " + (
            f"{seen} of this run's {n_test} test patients had their results looked at while "
            f"a setting was chosen ({looked_at_words(by_reason)}; see the choices-made "
            "page): on them the numbers may be optimistic." if seen else
            f"None of this run's {n_test} test patients had their results looked at while a "
            "setting was chosen."))
    return lines


@dataclass
class MissedOverlap(stats.Result):
    """Tumor slices each model missed, and how far the models miss the same ones."""

    slices: pd.DataFrame
    """One row per tumor slice scored by every model: patient_id, slice_number, tumor_pixels,
    "missed by <model>" (bool) per model, n_models_missed, missed_by ("+"-joined or "none")."""
    table: pd.DataFrame
    """Per model: tumor_slices, missed, "also missed by <other>" per other model, "missed by
    every model", median tumor_pixels of missed and found slices, patients with a tumor and not
    one tumor slice found."""
    combinations: pd.Series
    """Tumor slices per set of models that missed them."""
    models: list
    n_not_common: int
    """Tumor slices left out because not every model scored them."""

    def title(self) -> str:
        return (f"Missed tumor slices of {', '.join(self.models)}: {len(self.slices)} tumor "
                "slices scored by every model")

    def notes(self) -> list[str]:
        return ([f"{self.n_not_common} tumor slices were not scored by every model and are left "
                 "out"] if self.n_not_common else [])

    def to_frame(self) -> pd.DataFrame:
        return self.table.copy()


def missed_overlap(predictions: pd.DataFrame, models) -> MissedOverlap:
    """For the tumor slices (y_true == 1) of the main experiment: which models missed each
    (y_pred == 0), per model how many of its misses each other model also missed, the median
    true tumor area (``tumor_pixels``) of missed and of found slices, and the patients with a
    tumor of which the model found not one tumor slice."""
    models = list(models)
    main = main_predictions(predictions)
    tumor = main[(main["y_true"] == 1) & main["model"].isin(models)]
    area = (tumor.groupby(SLICE_KEYS)["tumor_pixels"].first() if "tumor_pixels" in tumor.columns
            else None)
    missed = tumor.assign(missed=tumor["y_pred"] == 0).pivot_table(
        index=SLICE_KEYS, columns="model", values="missed", aggfunc="max")
    missing = [m for m in models if m not in missed.columns]
    if missing:
        raise ValueError(f"missed_overlap: expected tumor slices scored by {models}, found none "
                         f"for {missing}")
    complete = missed[models].notna().all(axis=1)
    n_not_common = int((~complete).sum())
    missed = missed.loc[complete, models].astype(bool)
    slices = missed.rename(columns=lambda m: f"missed by {m}")
    slices.columns.name = None
    slices.insert(0, "tumor_pixels", area.loc[missed.index] if area is not None else np.nan)
    slices["n_models_missed"] = missed.sum(axis=1)
    slices["missed_by"] = ["+".join(m for m, hit in zip(models, row) if hit) or "none"
                           for row in missed.to_numpy()]
    slices = slices.reset_index()
    areas = slices["tumor_pixels"].to_numpy(np.float64)
    rows = []
    for model in models:
        own = missed[model]
        row = {"model": model, "tumor_slices": len(own), "missed": int(own.sum())}
        for other in models:  # the diagonal is the model's own count of misses
            row[f"also missed by {other}"] = int((own & missed[other]).sum())
        row["missed by every model"] = int(missed.all(axis=1).sum())
        for label, chosen in (("missed", own.to_numpy()), ("found", ~own.to_numpy())):
            row[f"median tumor_pixels, {label}"] = (float(np.median(areas[chosen]))
                                                    if chosen.any() else np.nan)
        by_patient = own.groupby(level="patient_id").all()
        row["patients with no tumor slice found"] = int(by_patient.sum())
        rows.append(row)
    table = pd.DataFrame(rows).set_index("model")
    combinations = slices["missed_by"].value_counts().rename("tumor slices")
    return MissedOverlap(slices=slices, table=table, combinations=combinations, models=models,
                         n_not_common=n_not_common)


# ---------------------------------------------------------------------------- figures

def best_worst_masks_figure(folder, manifest: pd.DataFrame, per_patient: pd.DataFrame,
                            dataset: str):
    """The best and the worst patient by volume Dice (``per_patient`` sorted by Dice), each
    at its slice with the largest tumor: true mask red, predicted blue (purple: both)."""
    import plotly.express as px

    from ..data import eda, pipeline
    from ..training import masks

    rows, predicted = masks.predicted_masks(folder, manifest)
    rows = rows.reset_index()
    scored = per_patient[per_patient["n_tumor_slices"] > 0]
    tiles, names = [], []
    for label, patient in (("best", scored["patient_id"].iloc[-1]),
                           ("worst", scored["patient_id"].iloc[0])):
        position = rows[rows["patient_id"] == patient]["tumor_pixels"].idxmax()
        image = pipeline.load_images(rows.loc[[position]], predicted.shape[1])[0]
        true = pipeline.load_masks(rows.loc[[position]], predicted.shape[1])[0] > 0
        tile = eda.overlay(image, true, color=(255, 40, 40))
        tiles.append(eda.overlay(tile, predicted[position], color=(40, 90, 255)))
        names.append(f"{label}: {patient}, slice {rows.loc[position, 'slice_number']}")
    # one line per tile: two real patient IDs with slice numbers overflow the figure's width
    figure = px.imshow(np.concatenate(tiles, axis=1),
                       title=f"{'<br>'.join(names)} ({dataset})")
    figure.update_xaxes(showticklabels=False).update_yaxes(showticklabels=False)
    figure.update_layout(margin=dict(t=90))
    return figure

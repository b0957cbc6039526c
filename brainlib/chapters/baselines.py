"""Trivial baselines: what a slice's place in its volume, or how much head it shows, says
about a tumor with no pixel learned.

Gliomas sit in the middle of the brain, so slices near a volume's ends rarely show one and
a score from position alone separates the classes well. A classifier that does not beat
these two has not shown that it reads the tumor. Each baseline follows the classifiers'
protocol (``runner.unit_rows``): the same folds, fit on the same fit patients, threshold
chosen on the same inner-validation patients by the same rule, test patients never seen,
and its predictions have the classifiers' columns, so every paired test of chapters 5-7
applies unchanged.

- ``slice_position``: the slice's place in its patient's volume, 0 (first) to 1 (last);
- ``brain_area``: the share of the image that is head, not background (a pixel's mean over
  the three sequences above ``gradcam.BRAIN_LEVEL``, the head Grad-CAM scores over).

Each is turned into a tumor probability by one fixed rule, chosen before any result:
the fit slices' tumor rate in ``N_BINS`` quantile bins of the feature, with one pseudo-count
of each class per bin (a bin of few slices does not claim certainty).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..training import runner, scores
from ..data import read_tiff
from ..config.params import MAIN_CONTROL, MAIN_SCHEME
from ..trust.gradcam import brain_masks  # one meaning of "head": the one Grad-CAM scores over
from .report import cached_frame, frame_digest

BASELINES = ("slice_position", "brain_area")
"""The baselines' model names in a predictions table."""
FEATURES = {"slice_position": "position", "brain_area": "brain_share"}
"""The column of ``slice_features`` each baseline scores by."""
N_BINS = 10
"""Quantile bins of a feature; fixed before any result (deciles), not tuned."""
DEFAULT_THRESHOLD = 0.5
"""The threshold where the protocol keeps no inner-validation patients (as the paper's 0.5)."""


def slice_features(manifest: pd.DataFrame, analysis_dir=None) -> pd.DataFrame:
    """Per slice of the manifest: patient_id, slice_number, ``position`` (0 at the volume's
    first slice, 1 at its last) and ``brain_share`` (share of the image's pixels that are
    head). Reading every image once, kept in the run's ``analysis_dir``."""
    rows = manifest[["patient_id", "slice_number", "image_path"]].reset_index(drop=True)

    def compute() -> pd.DataFrame:
        numbers = rows.groupby("patient_id")["slice_number"]
        first, last = numbers.transform("min"), numbers.transform("max")
        span = (last - first).where(last > first, 1)
        shares = [float(brain_masks(read_tiff(path)).mean()) for path in rows["image_path"]]
        return pd.DataFrame({"patient_id": rows["patient_id"],
                             "slice_number": rows["slice_number"],
                             "position": ((rows["slice_number"] - first) / span).to_numpy(),
                             "brain_share": shares})

    return cached_frame(analysis_dir, "slice-features", {"slices": frame_digest(rows)}, compute)


class RateScore:
    """A feature's tumor rate: quantile bins of the fit values, the fit slices' tumor share in
    each (one pseudo-count per class), looked up for new values."""

    def __init__(self, values, labels, n_bins: int = N_BINS):
        values, labels = np.asarray(values, float), np.asarray(labels, int)
        if values.size == 0:
            raise ValueError("a rate score needs fit slices, got none")
        self.edges = np.unique(np.quantile(values, np.linspace(0, 1, n_bins + 1)[1:-1]))
        bins = np.searchsorted(self.edges, values, side="right")
        tumors = np.bincount(bins, weights=labels, minlength=len(self.edges) + 1)
        counts = np.bincount(bins, minlength=len(self.edges) + 1)
        self.rates = (tumors + 1) / (counts + 2)

    def __call__(self, values) -> np.ndarray:
        return self.rates[np.searchsorted(self.edges, np.asarray(values, float), side="right")]


def baseline_predictions(manifest: pd.DataFrame, *, folds, protocol: str, seed: int,
                         validation_fraction: float, features: pd.DataFrame | None = None,
                         analysis_dir=None) -> pd.DataFrame:
    """Both baselines' predictions of the main experiment (patient folds, true labels), unit
    by unit as the classifiers' (``folds`` None: every fold of the manifest): the columns
    of a unit's ``scores.csv``."""
    if features is None:
        features = slice_features(manifest, analysis_dir)
    keyed = manifest.reset_index(drop=True).merge(
        features, on=["patient_id", "slice_number"], how="left", validate="one_to_one")
    if keyed[list(FEATURES.values())].isna().any().any():
        raise ValueError("slice features are missing for some manifest slices: "
                         "compute them from this manifest (slice_features)")
    available = sorted(int(f) for f in keyed["fold_patient"].unique())
    chosen = available if folds is None else [f for f in available if f in set(folds)]
    frames = []
    for model, feature in FEATURES.items():
        for fold in chosen:
            rows = runner.unit_rows(keyed, MAIN_SCHEME, MAIN_CONTROL, fold, protocol, seed,
                                    validation_fraction, model)
            score = RateScore(keyed.loc[rows.fit, feature], rows.fit_labels)
            if len(rows.validation):
                threshold = scores.choose_threshold(
                    rows.validation_labels, score(keyed.loc[rows.validation, feature]),
                    default=DEFAULT_THRESHOLD).threshold
            else:
                threshold = DEFAULT_THRESHOLD
            test = keyed.loc[rows.test]
            p_tumor = score(test[feature])
            frames.append(pd.DataFrame({
                "patient_id": test["patient_id"].to_numpy(),
                "slice_number": test["slice_number"].to_numpy(), "model": model,
                "protocol": protocol, "scheme": MAIN_SCHEME, "control": MAIN_CONTROL, "fold": fold,
                "y_true": test["label"].to_numpy().astype(int), "p_tumor": p_tumor,
                "threshold": threshold, "y_pred": (p_tumor > threshold).astype(int)}))
    return pd.concat(frames, ignore_index=True)


def run_baselines(params, manifest: pd.DataFrame, analysis_dir=None) -> pd.DataFrame:
    """``baseline_predictions`` with a run's folds, protocol, seed and inner-validation share."""
    return baseline_predictions(manifest, folds=params.folds, protocol=params.protocol,
                                seed=params.seed,
                                validation_fraction=params.validation_fraction,
                                analysis_dir=analysis_dir)


def beat_sentences(comparison: pd.DataFrame) -> list[str]:
    """One sentence per row of a paired comparison (``segmentation_report.paired_comparison``
    of a model against the baselines): the model beats the baseline when the patient-level
    95% interval of the accuracy difference lies above 0, does worse when it lies below,
    and does not beat it otherwise."""
    lines = []
    for r in comparison.to_dict("records"):
        model, baseline = r["comparison"].split(" - ")
        low, high = r["ci_low (patients)"], r["ci_high (patients)"]
        if low > 0:
            verdict = f"{model} beats the {baseline} baseline"
        elif high < 0:
            verdict = f"{model} does worse than the {baseline} baseline"
        else:
            verdict = f"{model} does not beat the {baseline} baseline"
        lines.append(f"{verdict}: accuracy {r['accuracy difference']:+.3f} (95% interval "
                     f"with patients as the unit {low:+.3f} to {high:+.3f}); AUC "
                     f"{r['AUC difference']:+.3f} (patient-clustered DeLong p = "
                     f"{r['DeLong p (patient-clustered)']:.3g}); {r['patients']} patients.")
    return lines


def versus_baselines(predictions: pd.DataFrame, models) -> pd.DataFrame:
    """Each of ``models`` against each baseline on the same slices: the paired tests of
    ``segmentation_report.paired_comparison`` (accuracy difference with its patient-level
    interval, exact McNemar, AUC difference with the patient-clustered DeLong p)."""
    from .segmentation_report import paired_comparison

    return pd.concat([paired_comparison(predictions, model, BASELINES) for model in models],
                     ignore_index=True)


def baseline_verdict(comparison: pd.DataFrame) -> str:
    """One sentence for the conclusions: whether every model beats every baseline, and if
    not, which do not, in plain words."""
    lost = []
    for r in comparison.to_dict("records"):
        if not r["ci_low (patients)"] > 0:
            lost.append(r["comparison"].replace(" - ", " does not beat "))
    if not lost:
        return ("Every model beats both trivial baselines (slice position, brain area) with "
                "patients as the unit: its accuracy is more than a slice's place in the volume "
                "or the size of the head on it gives.")
    return ("Not every model beats the trivial baselines with patients as the unit: "
            + "; ".join(lost) + ". Such a model's accuracy is not shown to come from the "
            "tumor rather than from where the slice lies in the volume or how much head it "
            "shows.")

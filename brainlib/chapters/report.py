"""The chapters' tables and sentences, computed from the predictions table: shared pieces.

Chapters 05-07 report their results as tables and as sentences. Both are computed here, so
a unit test reaches them and a sentence can never say more than its numbers. This module
holds what the chapter-specific report modules share:

- the words: ``interval_text`` ("0.713 [0.650, 0.770]") and ``interval_side``, where a
  95% interval of a difference sits relative to a reference, in words that do not confuse
  "no difference detected" with "no difference";
- the rows a chapter reads: ``main_predictions`` (patient folds, true labels);
- one computation per run: ``cached_frame`` keeps a result table in a CSV named by what
  decides it, and ``patient_intervals``, the patient bootstrap that chapters 05 and 06
  both report, goes through it.

The chapters' own tables are in ``evaluation_report`` (05: Table IV, per patient),
``leakage_report`` (05: the slice split and the shuffled-label control),
``comparison_report`` (06: the paired tests and the conclusions) and
``segmentation_report`` (07: the U-Net beside the classifiers).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from .. import __version__, stats
from ..data import write_csv_atomic
from ..config.params import main_experiment

SEQUENCES = ("pre-contrast", "FLAIR", "post-contrast")
"""The three MRI sequences of the dataset's TIFF channels, in channel order."""

PATIENT_RESAMPLES = 5000
"""Patient bootstrap resamples of every interval the chapters report (one value, so 05 and
06 share one computation)."""

SLICE_RESAMPLES = 10_000
"""Slice bootstrap resamples (chapter 06): the counts engine makes 10,000 cheap."""

CACHE_FORMAT = 1
"""Bump when a cached computation changes its method: old cache files then no longer match."""


def analysis_dir(run_dir) -> Path:
    """Where a run keeps the analysis results that two chapters share."""
    return Path(run_dir) / "analysis"


# ---------------------------------------------------------------------------- words

def range_text(values, spec: str = ".3g") -> str:
    """``"3 to 7"``, or ``"5"`` where all are equal: the smallest and the
    largest of some values, a dash when there are none."""
    values = pd.Series(values).dropna()
    if values.empty:
        return "-"
    low, high = values.min(), values.max()
    return f"{low:{spec}}" if low == high else f"{low:{spec}} to {high:{spec}}"


def interval_text(estimate, low, high, digits: int = 3, signed: bool = False) -> str:
    """``"0.713 [0.650, 0.770]"``: an estimate and its interval in one string;
    ``signed=True`` writes the signs (for differences)."""
    spec = f"{'+' if signed else ''}.{digits}f"
    return f"{estimate:{spec}} [{low:{spec}}, {high:{spec}}]"


def interval_side(low, high, reference: float = 0.0, names=("a", "b"),
                  reference_name: str | None = None) -> str:
    """Where a 95% interval of a difference ``names[0] - names[1]`` sits relative to
    ``reference``, in words.

    An interval that includes the reference means the data could not tell the difference
    from the reference: "no difference detected", which is not evidence that there is none.
    ``names=None`` leaves out whom the difference favours (e.g. an estimate against chance);
    ``reference_name`` names the reference ("chance" -> "lies above chance (0.694)").
    """
    where = f"{reference:.3g}" if reference_name is None else f"{reference_name} ({reference:.3g})"
    if low is None or high is None or not (np.isfinite(low) and np.isfinite(high)):
        return "is undefined"
    if low > reference:
        return f"lies above {where}" + (f": favours {names[0]}" if names else "")
    if high < reference:
        return f"lies below {where}" + (f": favours {names[1]}" if names else "")
    short = where if reference_name is None else reference_name
    return f"includes {where}: no difference " + ("detected" if names else f"from {short} detected")


def joined_intervals(frame: pd.DataFrame, intervals: dict[str, tuple[str, str]],
                     digits: int = 3) -> pd.DataFrame:
    """A table as a chapter shows it: each pair of (low, high) columns named in
    ``intervals`` becomes one "[low, high]" column (its key), where the low column was, so
    a table of several intervals fits the page. An undefined limit shows as "—"."""
    shown = frame.copy()
    for name, (low, high) in intervals.items():
        text = [f"[{a:.{digits}f}, {b:.{digits}f}]" if np.isfinite(a) and np.isfinite(b)
                else "—" for a, b in zip(shown[low].astype(float), shown[high].astype(float))]
        shown.insert(shown.columns.get_loc(low), name, text)
        shown = shown.drop(columns=[low, high])
    return shown


def is_p_column(name) -> bool:
    """A p-value column of a chapter's table: "pvalue", Holm's "adjusted", "... p",
    "... p (...)"."""
    name = str(name)
    return name in ("pvalue", "adjusted") or name.endswith(" p") or " p (" in f" {name}"


def p_values_shown(frame: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """A table's p-value columns (``is_p_column``) as text: below 10^-digits as "< 0.001"
    (not a rounded 0.000, which reads as impossible), else ``digits`` decimals; undefined
    as "—". The other columns are left as they are."""
    shown = frame.copy()
    floor = 10.0 ** -digits
    for column in filter(is_p_column, shown.columns):
        shown[column] = ["—" if not np.isfinite(p) else f"< {floor:.{digits}f}" if p < floor
                         else f"{p:.{digits}f}" for p in shown[column].astype(float)]
    return shown


def lean(difference: float, names=("a", "b")) -> str:
    """Which way a point estimate of ``names[0] - names[1]`` leans: a name, or "neither"."""
    if not np.isfinite(difference) or difference == 0:
        return "neither"
    return names[0] if difference > 0 else names[1]


# ---------------------------------------------------------------------------- the rows

def check_one_protocol(predictions: pd.DataFrame, where: str) -> None:
    """Refuse a table that mixes protocols: the same slice would then be scored twice."""
    if "protocol" in predictions.columns:
        found = sorted(map(str, predictions["protocol"].dropna().unique()))
        if len(found) > 1:
            raise ValueError(f"{where}: expected the predictions of one protocol, found "
                             f"{found}; filter the table to one protocol first")


def main_predictions(predictions: pd.DataFrame) -> pd.DataFrame:
    """The rows of the main experiment (`params.main_experiment`) of a one-protocol
    predictions table."""
    check_one_protocol(predictions, "main_predictions")
    return main_experiment(predictions)


# ---------------------------------------------------------------------------- computed once per run

def frame_digest(frame: pd.DataFrame) -> str:
    """A hash of a table's column names and values (not its index): a cache key of data."""
    digest = hashlib.sha256(json.dumps(list(map(str, frame.columns))).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


# pandas 3 reads floats back exactly by default; pandas 2 needs the round-trip parser
_EXACT_FLOATS = {} if int(pd.__version__.split(".")[0]) >= 3 else {"float_precision": "round_trip"}


def cached_frame(analysis_dir, name: str, key: dict,
                 compute: Callable[[], pd.DataFrame]) -> pd.DataFrame:
    """``compute()``, kept as ``<analysis_dir>/<name>-<hash of key>.csv`` and read back on the
    next call with the same key (from any chapter of the run).

    ``key`` must hold everything that decides the result (data digest, parameters, seed); it
    is hashed as JSON with sorted keys, with the library version and ``CACHE_FORMAT``. The
    file is written atomically, so a chapter never reads a half-written table. With
    ``analysis_dir=None`` the frame is computed and nothing is kept.
    """
    if analysis_dir is None:
        return compute()
    text = json.dumps({"key": key, "brainlib": __version__, "format": CACHE_FORMAT},
                      sort_keys=True, default=str)
    path = Path(analysis_dir) / f"{name}-{hashlib.sha256(text.encode()).hexdigest()[:16]}.csv"
    if path.exists():
        return pd.read_csv(path, keep_default_na=False, na_values=[""], **_EXACT_FLOATS)
    frame = compute()
    write_csv_atomic(frame, path)
    return frame


def patient_intervals(paired: pd.DataFrame, n_resamples: int, seed: int,
                      confidence: float = 0.95, analysis_dir=None,
                      method: str = "BCa") -> pd.DataFrame:
    """Patient-resampled intervals (BCa, or ``method="percentile"``, which is steadier with
    few patients) of eqs. (30)-(35) (``stats.bootstrap_metrics``) and of
    the AUC (``stats.cluster_bootstrap_auc``) for both models of a paired table and their
    difference a - b: one row per (metric, model), differences included.

    Chapters 05 and 06 both report these; with one ``analysis_dir`` per run they are computed
    once and read back (the key is the paired table's digest, n_resamples, seed, confidence).
    """
    model_a, model_b = paired.attrs.get("model_a", "a"), paired.attrs.get("model_b", "b")
    key = {"models": [model_a, model_b], "paired": frame_digest(paired),
           "n_resamples": int(n_resamples), "seed": int(seed), "confidence": confidence,
           "cluster": "patient_id", "method": method}

    def compute() -> pd.DataFrame:
        metrics = stats.bootstrap_metrics(paired, cluster="patient_id", n_resamples=n_resamples,
                                          confidence=confidence, method=method, seed=seed)
        aucs = stats.cluster_bootstrap_auc(paired, n_resamples=n_resamples,
                                           confidence=confidence, method=method, seed=seed)
        return pd.concat([metrics.to_frame(), aucs.to_frame()], ignore_index=True)

    name = "patient-intervals" if method == "BCa" else f"patient-intervals-{method.lower()}"
    return cached_frame(analysis_dir, name, key, compute)


def with_percentile(paired: pd.DataFrame, n_resamples: int, seed: int,
                    confidence: float = 0.95, analysis_dir=None) -> pd.DataFrame:
    """``patient_intervals`` (BCa) with the percentile limits of the same patient bootstrap
    beside them (``percentile_low``, ``percentile_high``): with few patients BCa's
    corrections are themselves noisy, so a reader sees both."""
    bca = patient_intervals(paired, n_resamples, seed, confidence, analysis_dir)
    percentile = patient_intervals(paired, n_resamples, seed, confidence, analysis_dir,
                                   method="percentile")
    return bca.merge(percentile[["metric", "model", "ci_low", "ci_high"]].rename(
        columns={"ci_low": "percentile_low", "ci_high": "percentile_high"}),
        on=["metric", "model"], how="left", validate="one_to_one")


BOTH_INTERVALS_NOTE = ("estimate [BCa 95% interval] (percentile 95% interval), both from one "
                       "bootstrap of patients; the percentile one is steadier with few patients")


def both_intervals_text(estimate, low, high, percentile_low, percentile_high,
                        digits: int = 3, signed: bool = False) -> str:
    """``"0.713 [0.650, 0.770] (0.655, 0.772)"``: BCa in brackets, percentile in parentheses."""
    spec = f"{'+' if signed else ''}.{digits}f"
    return (f"{interval_text(estimate, low, high, digits, signed)} "
            f"({percentile_low:{spec}}, {percentile_high:{spec}})")


def models_only(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of single models of an intervals table (differences "a - b" dropped)."""
    return frame[~frame["model"].astype(str).str.contains(" - ", regex=False)]


def differences_only(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of differences "a - b" of an intervals table."""
    return frame[frame["model"].astype(str).str.contains(" - ", regex=False)]


def percent_points(proportion: float) -> str:
    """0.011 -> "1.1 points": a difference of proportions in percentage points."""
    return f"{proportion * 100:.1f} points"


def per_split(n_folds: int) -> str:
    """How a title names the evaluation's splits: "per patient fold" in a cross-validation,
    "on the hold-out" for one train/test split (which has no folds)."""
    return "per patient fold" if n_folds > 1 else "on the hold-out"


def without_single_fold(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` without its fold columns ("fold", "folds") where they hold one value only:
    a hold-out has one test set, and a column of zeros would call it a fold."""
    constant = [c for c in ("fold", "folds") if c in frame.columns and frame[c].nunique() <= 1]
    return frame.drop(columns=constant)

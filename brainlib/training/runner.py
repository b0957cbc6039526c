"""One runner of cross-validation units for every model family, and one predictions table.

A *unit* is (model, scheme, control, fold): one model trained on all folds of a split
scheme but one and scoring that one, with true or shuffled training labels. A model family
(`ModelFamily`: `classifier.ClassifierFamily`, `segmenter.SegmenterFamily`) supplies only "fit one unit,
score its slices"; the runner owns the rest, the same for every model:

- **the protocol**: under `"validated"`, inner validation patients, drawn from the unit's
  training patients only (the same patients for every model, scheme and control of a
  fold), pick the epoch (lowest validation loss) and the decision threshold (highest
  validation accuracy, `scores.choose_threshold`); the test fold is never evaluated during
  training. `"paper"` keeps the paper's procedure: all training patients, last epoch,
  the family's default threshold (p_tumor 0.5);
- seeds: the fold alone seeds a unit (head start, dropout, batch order, augmentation,
  inner validation draw), so units of a fold are paired across schemes and controls;
- resume and cache keys: units live in `units/<model>-<key>/<scheme>-<control>-fold<k>/`,
  where the key hashes everything that decides the result (the family's settings, the
  protocol, the manifest's patients, slices, labels and folds, and the source of the
  training code), so other settings or changed code train anew and `force` retrains;
- atomic writes, progress, and the predictions table: manifest columns + model, protocol,
  scheme, control, fold, y_true, p_tumor, threshold, y_pred.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

import numpy as np
import pandas as pd
from ..data import machine, recorded, splits
from ..config import progress as progress_report
from . import scores
from .fingerprint import code_fingerprint, module_fingerprints
from ..data import write_csv_atomic, write_text_atomic

CONTROLS = ("none", "shuffled_labels")
PROTOCOLS = ("validated", "paper")
UNIT_COLUMNS = ("model", "scheme", "control", "fold")
REQUIRED_MANIFEST_COLUMNS = ("patient_id", "slice_number", "label")

@dataclass
class UnitRows:
    """What a family needs to fit one unit: manifest positions of its fit, inner
    validation and test rows, the training-side labels (shuffled under the control) and
    the unit's seed."""

    name: str
    fit: np.ndarray
    validation: np.ndarray
    test: np.ndarray
    fit_labels: np.ndarray
    validation_labels: np.ndarray
    seed: int


@dataclass
class UnitResult:
    """What a family returns: history, the epoch kept, the scores of the validation and
    test rows (the threshold is chosen on the first), test p_tumor, and a writer of the
    family's own files (weights, masks) into the unit folder."""

    history: pd.DataFrame
    best_epoch: int
    validation_scores: np.ndarray
    test_scores: np.ndarray
    p_tumor: np.ndarray
    save: Callable[[Path], object] = field(repr=False)


class ModelFamily(Protocol):
    """What the runner needs of a model family, and all it relies on."""

    name: str
    """The model's name (`params.MODEL_CHOICES`): the unit folders and the predictions'
    `model` column."""
    default_threshold: float
    """The threshold the paper's protocol keeps, on the family's own score."""

    def settings(self) -> dict:
        """Everything of the family that decides a unit's result (hashed into its key)."""

    def prepare(self, manifest: pd.DataFrame, run_dir: Path, progress: bool) -> None:
        """Load or compute what every unit of the family reads (images, features)."""

    def release(self) -> None:
        """Free what `prepare` loaded: one family's arrays in memory at a time."""

    def fit(self, unit: UnitRows, keep_best: bool, progress: bool) -> UnitResult:
        """Train one unit on its fit rows and score its validation and test rows."""


def unit_seed(seed: int, fold: int) -> int:
    """The fold alone (with the run's seed) seeds a unit: paired across schemes, controls
    and models."""
    return seed * 1000 + int(fold)


def inner_validation(train_rows: pd.DataFrame, scheme: str, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask over train_rows: the inner validation set (whole patients under the
    patient scheme, single slices under the slice scheme)."""
    rng = np.random.default_rng(seed)
    if scheme == "patient":
        patients = train_rows["patient_id"].unique()
        n_chosen = max(1, round(fraction * len(patients)))
        if n_chosen >= len(patients):
            raise ValueError(f"inner validation needs patients to spare, but the training side "
                             f"has only {len(patients)} patient(s)")
        chosen = rng.choice(patients, n_chosen, replace=False)
        return train_rows["patient_id"].isin(chosen).to_numpy()
    mask = np.zeros(len(train_rows), dtype=bool)
    mask[rng.choice(len(train_rows), max(1, round(fraction * len(train_rows))), replace=False)] = True
    return mask


def shuffle_labels(labels, seed: int) -> np.ndarray:
    """A seeded permutation of the labels (the random-label control; class counts kept)."""
    return np.random.default_rng(seed).permutation(np.asarray(labels))


def manifest_fingerprint(manifest: pd.DataFrame) -> str:
    """A hash of what a unit's result depends on in the manifest: patients, slices, labels,
    folds and splits."""
    return _columns_hash(manifest, ("patient_id", "slice_number", "label", "fold_patient",
                                    "fold_slice", "split_patient", "split_slice"))


def images_fingerprint(manifest: pd.DataFrame) -> str:
    """A hash of which images a manifest holds, in order: all a frozen base's features
    depend on (folds, splits and labels do not), so every experiment of a run on the same
    images shares one feature file."""
    return _columns_hash(manifest, ("patient_id", "slice_number", "image_path"))


def _columns_hash(manifest: pd.DataFrame, columns) -> str:
    """16 hex digits of the SHA-1 of those of `columns` the manifest has, as CSV."""
    present = [c for c in columns if c in manifest.columns]
    return hashlib.sha1(manifest[present].to_csv(index=False).encode()).hexdigest()[:16]


def unit_key(family, protocol: str, manifest: pd.DataFrame, *, seed: int,
             validation_fraction: float) -> dict:
    """Everything that decides one model's units under one setting (hashed into its folder)."""
    return {"family": family.settings(), "protocol": protocol, "seed": seed,
            "validation_fraction": validation_fraction if protocol == "validated" else None,
            "manifest": manifest_fingerprint(manifest), "code": code_fingerprint()}


def model_dir(run_dir, family, protocol: str, manifest: pd.DataFrame, *, seed: int,
              validation_fraction: float) -> Path:
    """The folder of one model's units under one setting: `units/<model>-<key>`."""
    key = unit_key(family, protocol, manifest, seed=seed, validation_fraction=validation_fraction)
    digest = hashlib.sha1(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:10]
    return Path(run_dir) / "units" / f"{family.name}-{digest}"


def check_manifest(manifest: pd.DataFrame, schemes) -> None:
    expected = list(REQUIRED_MANIFEST_COLUMNS) + [f"fold_{s}" for s in schemes]
    missing = [c for c in expected if c not in manifest.columns]
    if missing:
        raise ValueError(f"manifest lacks columns {missing} (expected {expected}; add split "
                         "columns with brainlib.data.splits.add_splits)")


def unit_rows(manifest: pd.DataFrame, scheme: str, control: str, fold: int, protocol: str,
              seed: int, validation_fraction: float, name: str) -> UnitRows:
    """The unit's fit, inner validation and test rows by the protocol."""
    seed = unit_seed(seed, fold)
    train_rows, test_rows = splits.train_test_rows(manifest, scheme, fold)
    train_index = train_rows.index.to_numpy()
    labels = train_rows["label"].to_numpy().astype(int)
    if control == "shuffled_labels":
        labels = shuffle_labels(labels, seed=seed + 1)
    is_validation = np.zeros(len(train_rows), bool)
    if protocol == "validated":
        is_validation = inner_validation(train_rows, scheme, validation_fraction, seed + 2)
    return UnitRows(name, train_index[~is_validation], train_index[is_validation],
                    test_rows.index.to_numpy(), labels[~is_validation], labels[is_validation], seed)


def choose_unit_threshold(rows: UnitRows, result: UnitResult, family, protocol: str):
    """The protocol's threshold: the family default under "paper", else chosen on the
    inner validation rows (`scores.choose_threshold`)."""
    if protocol == "paper":
        return scores.SliceThreshold(family.default_threshold, "paper: fixed", 0, float("nan"))
    return scores.choose_threshold(rows.validation_labels, result.validation_scores,
                                   default=family.default_threshold)


def list_units(manifest, models, schemes, controls, folds) -> list[tuple]:
    units = []
    for model in models:
        for scheme in schemes:
            available = sorted(int(f) for f in manifest[f"fold_{scheme}"].unique())
            chosen = available if folds is None else [f for f in available if f in set(folds)]
            units += [(model, scheme, control, fold) for control in controls for fold in chosen]
    return units


def run_units(manifest: pd.DataFrame, run_dir, families: list[ModelFamily], *,
              protocol: str = "validated", schemes=("patient",), controls=("none",), folds=None, seed: int = 0,
              validation_fraction: float = 0.15, force: bool = False,
              progress: bool | str = True) -> pd.DataFrame:
    """Train (or read back) every unit of `families` x schemes x controls x folds; return
    their rows of the predictions table.

    A finished unit is read back, not retrained, unless `force`. `progress=True`: bars for
    units and epochs; "log": one printed line per finished unit; False: silent.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}; found {protocol!r}")
    unknown = [c for c in controls if c not in CONTROLS] + \
        [s for s in schemes if s not in splits.SCHEMES]
    if unknown:
        raise ValueError(f"unknown schemes/controls {unknown}: expected {splits.SCHEMES} and {CONTROLS}")
    manifest = manifest.reset_index(drop=True)
    check_manifest(manifest, schemes)
    families = {family.name: family for family in families}
    folders = {name: model_dir(run_dir, family, protocol, manifest, seed=seed,
                               validation_fraction=validation_fraction)
               for name, family in families.items()}
    for name, family in families.items():  # the key beside the units: what decided them
        recorded.write_key(folders[name], {
            **unit_key(family, protocol, manifest, seed=seed,
                       validation_fraction=validation_fraction),
            "code_modules": module_fingerprints()})
    units = list_units(manifest, list(families), schemes, controls, folds)
    if force:
        for model, scheme, control, fold in units:
            shutil.rmtree(folders[model] / f"{scheme}-{control}-fold{fold}", ignore_errors=True)
    finished = lambda u: (folders[u[0]] / unit_path(*u[1:]) / "predictions.csv").exists()
    for unit in units:  # a run folder that replays a recording reads its units from there
        if not finished(unit):
            recorded.replay_unit(run_dir, folders[unit[0]], unit_path(*unit[1:]), manifest)
    todo = [u for u in units if not finished(u)]
    log, bars = progress == "log", progress is True
    for index, (model, scheme, control, fold) in enumerate(
            progress_report.bar(todo, "units", "unit", enabled=bars)):
        family, started = families[model], time.perf_counter()
        if index == 0 or todo[index - 1][0] != model:
            for other in families.values():
                if other is not family:
                    other.release()  # one family's arrays in memory at a time
            family.prepare(manifest, Path(run_dir), bars)
        unit_dir = folders[model] / unit_path(scheme, control, fold)
        rows = unit_rows(manifest, scheme, control, fold, protocol, seed, validation_fraction,
                         f"{model}-{unit_path(scheme, control, fold)}")
        with progress_report.unit(rows.name, index + 1, len(todo), run_dir, lines=log):
            predictions = train_unit(manifest, family, rows, protocol, unit_dir,
                                     dict(model=model, protocol=protocol, scheme=scheme,
                                          control=control, fold=int(fold)), bars)
        if log:
            print(f"[{index + 1}/{len(todo)}] {rows.name}: accuracy "
                  f"{(predictions['y_pred'] == predictions['y_true']).mean():.3f} on "
                  f"{len(predictions)} held-out slices ({time.perf_counter() - started:.1f} s)",
                  flush=True)
    return read_units(folders[u[0]] / unit_path(*u[1:]) for u in units)


def unit_path(scheme: str, control: str, fold: int) -> str:
    return f"{scheme}-{control}-fold{int(fold)}"


def train_unit(manifest, family, rows: UnitRows, protocol: str, unit_dir: Path, labels: dict,
               progress: bool) -> pd.DataFrame:
    """Fit one unit, choose its threshold, write its files; its predictions last, so a unit
    with a predictions file is finished."""
    result = family.fit(rows, keep_best=protocol == "validated", progress=progress)
    threshold = choose_unit_threshold(rows, result, family, protocol)
    unit_dir.mkdir(parents=True, exist_ok=True)
    result.save(unit_dir)
    write_text_atomic(unit_dir / "machine.json", json.dumps(machine.machine_record(), indent=2))
    validation = manifest.iloc[rows.validation][["patient_id", "slice_number"]].assign(
        label=rows.validation_labels, score=np.asarray(result.validation_scores, np.float64))
    write_csv_atomic(validation, unit_dir / "validation_scores.csv")  # what chose the threshold
    write_csv_atomic(result.history.assign(**labels), unit_dir / "history.csv")
    write_text_atomic(unit_dir / "threshold.json", json.dumps(
        {**vars(threshold), "best_epoch": int(result.best_epoch),
         "n_fit": len(rows.fit), "n_validation": len(rows.validation)}, indent=2))
    predictions = manifest.iloc[rows.test].copy()
    for column, value in labels.items():
        predictions[column] = value
    predictions["y_true"] = predictions["label"].to_numpy().astype(int)
    predictions["p_tumor"] = result.p_tumor
    predictions["threshold"] = threshold.threshold
    predictions["y_pred"] = (np.asarray(result.test_scores) > threshold.threshold).astype(int)
    write_csv_atomic(predictions, unit_dir / "predictions.csv")
    return predictions


def read_units(unit_dirs) -> pd.DataFrame:
    """The predictions of finished units, one table (units without predictions skipped)."""
    frames = [pd.read_csv(path / "predictions.csv", dtype={"patient_id": str, "institution": str})
              for path in unit_dirs if (path / "predictions.csv").exists()]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def read_histories(model_dirs) -> pd.DataFrame:
    """Every unit's per-epoch history under the given model folders, one table."""
    frames = [pd.read_csv(path) for folder in model_dirs
              for path in sorted(Path(folder).glob("*/history.csv"))]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def read_thresholds(model_dirs) -> pd.DataFrame:
    """Every unit's chosen threshold and epoch (`threshold.json`), one table."""
    rows = []
    for folder in model_dirs:
        for path in sorted(Path(folder).glob("*/threshold.json")):
            scheme, control, fold = path.parent.name.split("-")
            rows.append({"model": Path(folder).name.rsplit("-", 1)[0], "scheme": scheme,
                         "control": control, "fold": int(fold.removeprefix("fold")),
                         **json.loads(path.read_text())})
    return pd.DataFrame(rows)

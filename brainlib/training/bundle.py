"""Train once, predict anywhere: one model bundle per model, read back with every check.

`train_bundles` trains every model of `models` (classifiers and the U-Net) on **all**
patients of `data_source`, through the runner's own unit code: under the validated
protocol inner validation patients pick the epoch and the threshold, under the paper's the
last epoch and 0.5 are kept; there is no test fold. Each model gets a folder:

- `bundle.json`: bundle format, library versions, the resolved parameters, the model's
  config (input size, normalisation, feature standardisation), its threshold and slice-score
  rule, the training manifest's fingerprint and patients, the training code's fingerprint,
  and the SHA-256 of every file;
- Keras weights files (`*.weights.h5`, read with `load_weights`; nothing is unpickled),
  the training history, and the inner validation slices' scores as trained (a reloaded
  bundle reproduces them; the tests check it).

`load_bundle` refuses a bundle of another format, library version or training code, or
with a missing or changed file, before it builds anything. `Bundle.predict` scores a
manifest with exactly the training preprocessing; `predict_folder` scans a folder (masks
optional), checks it like `scan`, and writes the predictions table in the study's format
and, for a segmenter, its predicted masks, atomically.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .. import __version__, data
from ..config import params as schema
from ..config.params import SEGMENTER

BUNDLE_FORMAT = 1
BUNDLE_FILE = "bundle.json"


class BundleError(ValueError):
    """A bundle that cannot be used: missing, damaged, or made by other code."""


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def library_versions() -> dict[str, str]:
    import keras
    import tensorflow as tf

    return {"brainlib": __version__, "keras": keras.__version__, "tensorflow": tf.__version__,
            "numpy": np.__version__}


# ----------------------------------------------------------------------------- train

def training_manifest(params: schema.Params) -> pd.DataFrame:
    """Every patient of `data_source`, scanned and checked (`study.prepare_manifest`)."""
    from .experiment import prepare_manifest

    return prepare_manifest(params).reset_index(drop=True)


def all_patient_rows(manifest: pd.DataFrame, params: schema.Params, name: str):
    """A unit with no test fold: every patient fits, but the validated protocol's inner
    validation patients (drawn as the runner draws them, seeded like fold 0's unit)."""
    from . import runner

    seed = runner.unit_seed(params.seed, 0)
    labels = manifest["label"].to_numpy().astype(int)
    is_validation = np.zeros(len(manifest), bool)
    if params.protocol == "validated":
        is_validation = runner.inner_validation(manifest, "patient", params.validation_fraction,
                                                seed + 2)
    index = np.arange(len(manifest))
    return runner.UnitRows(name, index[~is_validation], index[is_validation],
                           np.empty(0, np.int64), labels[~is_validation],
                           labels[is_validation], seed)


def train_bundles(params: schema.Params, out_dir, progress: bool = True) -> list[Path]:
    """Train every model of `params.models` on all patients and write one bundle each
    into `out_dir`; returns the bundle folders. Scratch files (the base features, the
    manifest) go to `out_dir/.work`."""
    from ..config.progress import is_terminal, unit

    out_dir = Path(out_dir)
    work = schema.Params({**params, "run_dir": str(out_dir / ".work")})
    manifest = training_manifest(work)
    folders, models = [], params.all_model_names
    for index, model in enumerate(models, 1):
        if progress:
            print(f"{model}: training on {manifest['patient_id'].nunique()} patients "
                  f"({len(manifest)} slices), model {index} of {len(models)}", flush=True)
        # epochs: bars on a terminal, one line each in a log
        with unit(model, index, len(models), lines=progress and not is_terminal()):
            folders.append(train_bundle(work, model, manifest, out_dir, progress))
        if progress:
            meta = json.loads((folders[-1] / BUNDLE_FILE).read_text())
            print(f"{model}: done in {meta['seconds']} s: epoch {meta['best_epoch']} kept, "
                  f"threshold {meta['threshold']:.4g} -> {folders[-1]}", flush=True)
    return folders


def train_bundle(params: schema.Params, model: str, manifest: pd.DataFrame, out_dir,
                 progress: bool = True) -> Path:
    """One model trained on `manifest`'s patients, written as `out_dir/<model>` (staged in
    a hidden folder, renamed when complete)."""
    from . import runner
    from .experiment import family
    from .train import save_weights_atomic

    started = time.perf_counter()
    model_family = family(params, model)
    model_family.prepare(manifest, Path(params.run_dir), progress)
    rows = all_patient_rows(manifest, params, f"{model}-bundle")
    result = model_family.fit(rows, keep_best=params.protocol == "validated", progress=progress)
    threshold = runner.choose_unit_threshold(rows, result, model_family, params.protocol)
    staging = Path(out_dir) / f".{model}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    result.save(staging)
    for scratch in ("masks.npz", "slice_scores.csv"):  # the segmenter's (empty) test outputs
        (staging / scratch).unlink(missing_ok=True)
    is_segmenter = model == SEGMENTER
    if not is_segmenter and (staging / "head.weights.h5").exists():
        from .classifier import build_frozen_base

        base = model_family.base or build_frozen_base(model, model_family.config)
        save_weights_atomic(base, staging / "base.weights.h5")
    data.write_csv_atomic(result.history, staging / "history.csv")
    # the inner validation slices' scores as trained: a reloaded bundle must reproduce them
    data.write_csv_atomic(manifest.iloc[rows.validation][["patient_id", "slice_number"]].assign(
        score=np.asarray(result.validation_scores, dtype=np.float64)),
        staging / "validation_scores.csv")
    config = model_family.config
    meta = {
        "format": BUNDLE_FORMAT, "model": model,
        "kind": "segmenter" if is_segmenter else "classifier",
        "versions": library_versions(), "code": runner.code_fingerprint(),
        "params": dict(params), "config": {k: (list(v) if isinstance(v, tuple) else v)
                                           for k, v in vars(config).items()},
        "threshold": float(threshold.threshold), "threshold_rule": threshold.rule,
        "best_epoch": int(result.best_epoch), "protocol": params.protocol,
        "slice_score": getattr(config, "slice_score", "p_tumor"),
        "training": {"manifest": runner.manifest_fingerprint(manifest),
                     "patients": int(manifest["patient_id"].nunique()),
                     "slices": len(manifest), "fit_slices": len(rows.fit),
                     "validation_slices": len(rows.validation),
                     "data_source": params.data_source},
        "seconds": round(time.perf_counter() - started, 1),
    }
    meta["files"] = {path.name: sha256(path) for path in sorted(staging.iterdir())}
    data.write_text_atomic(staging / BUNDLE_FILE, json.dumps(meta, indent=2, default=str))
    target = Path(out_dir) / model
    shutil.rmtree(target, ignore_errors=True)
    os.replace(staging, target)
    if hasattr(model_family, "release"):
        model_family.release()
    return target


# ----------------------------------------------------------------------------- load

@dataclass
class Bundle:
    """A checked bundle: its folder and metadata (`bundle.json`)."""

    folder: Path
    meta: dict

    @property
    def model(self) -> str:
        return self.meta["model"]

    @property
    def threshold(self) -> float:
        return float(self.meta["threshold"])

    def predict(self, manifest: pd.DataFrame, progress: bool = False):
        """(p_tumor, score, logits or None) for every row of `manifest`, preprocessed as in
        training; y_pred is score > threshold."""
        if self.meta["kind"] == "segmenter":
            return self._predict_segmenter(manifest)
        return self._predict_classifier(manifest, progress)

    def _predict_classifier(self, manifest, progress):
        from .. import models
        from ..data import pipeline
        from .classifier import TrainConfig, TrainedClassifier, build_frozen_base

        config = TrainConfig(**{**self.meta["config"], "weights": None})  # weights: our files
        if (self.folder / "model.weights.h5").exists():  # an unfrozen base: the whole model
            classifier = models.build_classifier(
                self.model, config.image_size, None, config.freeze_base,
                config.trainable_top_blocks, seed=config.seed,
                standardize_features=config.standardize_features)
            classifier.load_weights(self.folder / "model.weights.h5")
            base, head = models.base_of(classifier), models.head_of(classifier)
        else:
            base = build_frozen_base(self.model, config)
            base.load_weights(self.folder / "base.weights.h5")
            head = models.build_head(models.pooled_feature_shape(base), seed=config.seed,
                                     standardize_features=config.standardize_features)
            head.load_weights(self.folder / "head.weights.h5")
        trained = TrainedClassifier(self.model, "bundle", base, head, pd.DataFrame(), 0, 0.0)
        images = pipeline.load_images(manifest, config.image_size)
        p_tumor = trained.predict_p_tumor(images, progress=progress)
        return p_tumor, p_tumor, None

    def _predict_segmenter(self, manifest):
        from ..data import pipeline
        from . import scores, segmenter
        from ..data.transform import add_neighbour_flair, normalize_volumes

        values = dict(self.meta["config"])
        values["widths"] = tuple(values["widths"])
        config = segmenter.SegmentationConfig(**values)
        model = segmenter.build_model(config)
        model.load_weights(self.folder / "model.weights.h5")
        images = pipeline.load_images(manifest, config.image_size)
        if config.intensity_normalization == "volume":
            images = normalize_volumes(images, manifest["patient_id"].to_numpy())
        if config.neighbour_slices:
            images = add_neighbour_flair(images, manifest)
        logits = segmenter.predict_logits(model, config.model, images)
        table = scores.slice_scores(logits, manifest)
        score = scores.score_values(table, config.slice_score)
        return scores.p_tumor_from_score(score, config.slice_score), score, logits


def load_bundle(folder) -> Bundle:
    """A bundle folder read back and checked: its format, brainlib version and training
    code must be this checkout's, and every listed file present with its SHA-256."""
    from .runner import code_fingerprint

    folder = Path(folder)
    path = folder / BUNDLE_FILE
    if not path.exists():
        raise BundleError(f"{folder}: not a model bundle (no {BUNDLE_FILE}); make one with "
                          "`python -m brainlib train --out DIR`")
    try:
        meta = json.loads(path.read_text())
    except ValueError as error:
        raise BundleError(f"{path}: not valid JSON ({error})") from None
    if meta.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{path}: bundle format {meta.get('format')!r}; this brainlib reads "
                          f"format {BUNDLE_FORMAT}: retrain it with `python -m brainlib train`")
    made_by = meta.get("versions", {}).get("brainlib")
    if made_by != __version__:
        raise BundleError(f"{path}: made by brainlib {made_by}, this is {__version__}: retrain "
                          "it, or predict with the version that made it")
    if meta.get("code") != code_fingerprint():
        raise BundleError(f"{path}: trained by other training code (fingerprint "
                          f"{meta.get('code')}, this checkout {code_fingerprint()}), so its "
                          "preprocessing may differ: retrain it with this checkout")
    for name, digest in meta.get("files", {}).items():
        file = folder / name
        if not file.exists():
            raise BundleError(f"{file}: missing from the bundle")
        if sha256(file) != digest:
            raise BundleError(f"{file}: changed since the bundle was written (SHA-256 differs)")
    return Bundle(folder, meta)


# ----------------------------------------------------------------------------- predict

def bundle_folders(path) -> list[Path]:
    """`path` itself if it is a bundle, else every bundle folder directly inside it."""
    path = Path(path)
    if (path / BUNDLE_FILE).exists():
        return [path]
    found = sorted(p for p in path.iterdir() if (p / BUNDLE_FILE).exists()) \
        if path.is_dir() else []
    if not found:
        raise BundleError(f"{path}: no model bundle here (expected {BUNDLE_FILE} in it or in "
                          "its subfolders)")
    return found


def scan_for_prediction(data_folder) -> pd.DataFrame:
    """The folder's manifest, every file checked like `scan` (masks optional); a damaged
    input raises `data.DatasetError` naming every bad file."""
    scan = data.scan_dataset(data_folder, collect_problems=True, masks_required=False)
    if not scan.ok:
        raise data.DatasetError(scan.problems)
    return scan.manifest


def predict_folder(bundles, data_folder, out_csv, progress: bool = True) -> pd.DataFrame:
    """Score every slice of `data_folder` with every bundle of `bundles` (a bundle or a
    folder of bundles): the study's predictions table (manifest columns + model, p_tumor,
    threshold, y_pred, and y_true where the slice has a mask), written atomically to
    `out_csv`; a segmenter's predicted masks go beside it (`<out>.<model>-masks.npz`)."""
    from . import masks as mask_store
    from .segmenter import original_size

    loaded = [load_bundle(folder) for folder in bundle_folders(bundles)]
    manifest = scan_for_prediction(data_folder)
    out_csv = Path(out_csv)
    frames = []
    for bundle in loaded:
        started = time.perf_counter()
        if progress:
            print(f"{bundle.model}: scoring {len(manifest)} slices of "
                  f"{manifest['patient_id'].nunique()} patients", flush=True)
        p_tumor, score, logits = bundle.predict(manifest, progress=progress)
        frame = manifest.assign(model=bundle.model, p_tumor=p_tumor,
                                threshold=bundle.threshold,
                                y_pred=(np.asarray(score) > bundle.threshold).astype(int))
        known = frame["label"] != data.UNKNOWN_LABEL
        if known.any():
            frame["y_true"] = frame["label"].where(known)
        frames.append(frame)
        if logits is not None:
            target = out_csv.with_name(f"{out_csv.stem}.{bundle.model}-masks.npz")
            mask_store.save_unit_masks(target, manifest, logits,
                                       original_size(manifest[manifest["mask_path"] != ""])
                                       if known.any() else 256)
        if progress:
            print(f"{bundle.model}: done in {time.perf_counter() - started:.1f} s", flush=True)
    table = pd.concat(frames, ignore_index=True)
    data.write_csv_atomic(table, out_csv)
    return table


# ----------------------------------------------------------------------------- commands

def train_main(argv: list[str]) -> int:
    """`python -m brainlib train [--profile NAME] [-p key=value ...] --out DIR`."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m brainlib train",
        description="Train every model of `models` on all patients of `data_source` and "
                    "write one bundle per model into DIR.")
    parser.add_argument("--profile", default="default")
    parser.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out", required=True, help="folder for the bundles")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show TensorFlow's start-up notices instead of logging them")
    args = parser.parse_args(argv)
    try:
        params = schema.resolve(args.profile, schema.parse_pairs(args.param))
    except schema.ParameterError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    try:
        with quiet_tensorflow(out / "train.log", args.verbose):
            folders = train_bundles(params, out)
    except (schema.ParameterError, data.DatasetError, BundleError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"trained {len(folders)} bundle(s) in {time.perf_counter() - started:.0f} s: "
          + ", ".join(folder.name for folder in folders))
    return 0


@contextlib.contextmanager
def quiet_tensorflow(log_path: Path, verbose: bool):
    """TensorFlow's C++ start-up notices (absl, oneDNN, XLA) to `log_path`, said once;
    with `verbose`, on the terminal."""
    from ..config.progress import native_stderr_to

    if not verbose:
        print(f"TensorFlow's start-up notices go to {log_path} (-v shows them)", flush=True)
    with native_stderr_to(log_path, not verbose):
        yield


def predict_main(argv: list[str]) -> int:
    """`python -m brainlib predict BUNDLES DATA --out FILE.csv`."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m brainlib predict",
        description="Score a kaggle_3m-layout folder (masks optional) with trained bundles.")
    parser.add_argument("bundles", help="a bundle folder, or a folder of bundles")
    parser.add_argument("data", help="a kaggle_3m-layout folder of the patients to score")
    parser.add_argument("--out", required=True, help="the predictions table (.csv)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show TensorFlow's start-up notices instead of logging them")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        with quiet_tensorflow(out.with_suffix(".log"), args.verbose):
            table = predict_folder(args.bundles, args.data, out)
    except (data.DatasetError, BundleError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{args.out}: {len(table)} rows, {table['patient_id'].nunique()} patients, models "
          f"{', '.join(table['model'].unique())}")
    return 0

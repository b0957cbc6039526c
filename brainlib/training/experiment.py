"""The experiment of a run: its manifest, each model's family and unit folder, and the
units run for it (the main experiment, the protocol comparison, the seed repeats, the
institution hold-out), read back from the run folder when they are finished.

`study` runs the chapters on top of this; the chapters call these through `bl.study`,
which re-exports them.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd

from .. import data
from ..data import external, machine, splits
from ..config import params as schema
from ..config.params import MAIN_CONTROL, MAIN_SCHEME, REPO_ROOT, SEGMENTER, main_experiment


# ----------------------------------------------------------------------------- data


def resolve_data_source(source: str) -> str:
    """Keep 'phantom'/'kaggle'; resolve a relative path from here, then from the repository."""
    if source in ("phantom", "kaggle", "auto", "", None):
        return source
    path = Path(source).expanduser()
    if not path.is_absolute() and not path.exists() and (REPO_ROOT / path).exists():
        path = REPO_ROOT / path
    return str(path.resolve())


def prepare_manifest(params: schema.Params) -> pd.DataFrame:
    """The run's manifest with split columns, written to `<run_dir>/manifest.csv`.

    Scans the dataset every time (the scan cache makes a repeat cost one `stat` per file),
    failing with every problem listed before any long work starts, adds the patient and
    slice splits, and rewrites `manifest.csv` (atomically) only when it changed.
    """
    run_dir = Path(params.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    manifest = scan_source(params.data_source, params)
    if params.evaluation == "holdout":
        test = scan_source(params.test_data_source, params)
        manifest = external.holdout_manifest(manifest, test)
    manifest = splits.add_splits(manifest, n_folds=params.n_folds,
                                 test_fraction=params.test_fraction, seed=params.seed)
    if params.evaluation == "holdout":  # the patient folds are the two sources
        manifest = external.holdout_manifest(manifest[manifest["source"] == "train"],
                                             manifest[manifest["source"] == "test"])
    elif params.evaluation == "institution":
        manifest = external.institution_folds(manifest)
    path = run_dir / "manifest.csv"
    if not path.exists() or not read_manifest(run_dir).equals(manifest):
        data.write_csv_atomic(manifest, path)
    return manifest


def scan_source(source: str, params: schema.Params) -> pd.DataFrame:
    """One data source scanned and checked (every problem listed, nothing trained yet),
    with its `dataset` column: "phantom" or "real"."""
    folder = data.locate_dataset(resolve_data_source(source),
                                 phantom_patients=params.phantom_patients, seed=params.seed)
    scan = data.scan_dataset(folder, collect_problems=True)
    if not scan.ok:
        raise data.DatasetError(scan.problems)
    readme = folder / "README.md"
    is_phantom = readme.exists() and "phantom" in readme.read_text()[:2000].lower()
    manifest = scan.manifest.copy()
    manifest.insert(0, "dataset", "phantom" if is_phantom else "real")
    return manifest


def read_manifest(run_dir) -> pd.DataFrame:
    return pd.read_csv(Path(run_dir) / "manifest.csv",
                       dtype={"patient_id": str, "institution": str})


# ----------------------------------------------------------------------------- models


def classifier_config(params: schema.Params):
    """The parameters of the classifiers as a `classifier.TrainConfig`."""
    from .classifier import TrainConfig

    weights = None if params.weights.lower() in ("none", "") else params.weights
    return TrainConfig(image_size=params.image_size, weights=weights, epochs=params.epochs,
                       batch_size=params.batch_size, learning_rate=params.learning_rate,
                       lr_decay=params.lr_decay, augment=params.augment,
                       bank_views=params.bank_views,
                       base_precision=base_precision(params.base_precision,
                                                     params.run_dir),
                       standardize_features=params.standardize_features, seed=params.seed)


def unet_epochs(params: schema.Params, manifest: pd.DataFrame | None = None) -> int:
    """The U-Net's epochs: `unet_epochs`, or from `unet_slice_visits` and the run's training
    pool (its manifest, without a hold-out's test slices; `Params.unet_epochs_for`)."""
    if not params.unet_slice_visits:
        return params.unet_epochs
    if manifest is None:
        path = Path(params.run_dir) / "manifest.csv"
        if not path.exists():
            raise FileNotFoundError(
                f"unet_slice_visits={params.unet_slice_visits} sets the U-Net's epochs from the "
                f"run's slices, and {path} does not exist yet: run the study's first chapters "
                "(python -m brainlib study) or give -p unet_slice_visits=0 and unet_epochs")
        manifest = read_manifest(params.run_dir)
    if "source" in manifest:
        manifest = manifest[manifest["source"] != "test"]
    return params.unet_epochs_for(len(manifest), int((manifest["label"] == 1).sum()))


def base_precision(setting: str, run_dir=None) -> str:
    """The frozen base's arithmetic on this machine: "auto" becomes bfloat16 where the
    hardware has it and the run's probe found it faster (`precision_probe`), else float32;
    an explicit bfloat16 that cannot run is refused, saying why."""
    if setting == "float32":
        return setting
    if setting == "auto":
        return "bfloat16" if precision_probe(run_dir)["chosen"] == "bfloat16" else "float32"
    if not machine.bfloat16_convolution_works():
        raise schema.ParameterError(machine.bfloat16_refused(f"base_precision={setting}"))
    return setting


PRECISION_PROBE_FILE = "precision_probe.json"


def precision_probe(run_dir=None) -> dict:
    """The bfloat16 probe that decides every `auto` precision of a run
    (`machine.bfloat16_probe`), measured once and kept in the run folder, so a resumed run
    chooses as it first did and the run card can show the measurement."""
    import json

    path = Path(run_dir) / PRECISION_PROBE_FILE if run_dir else None
    if path is not None and path.exists():
        return json.loads(path.read_text())
    probe = dict(machine.bfloat16_probe())
    probe["machine"] = machine.in_words(machine.machine_record())
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        data.write_text_atomic(path, json.dumps(probe, indent=2))
    return probe


def segmentation_config(params: schema.Params):
    """The parameters of the U-Net as a `segmenter.SegmentationConfig`."""
    from .segmenter import SegmentationConfig

    precision = params.unet_precision
    if precision == "auto":
        chosen = precision_probe(params.run_dir)["chosen"]
        precision = "mixed_bfloat16" if chosen == "bfloat16" else "float32"
    elif precision == "mixed_bfloat16" and not machine.bfloat16_convolution_works():
        raise schema.ParameterError(machine.bfloat16_refused(
            f"unet_precision={params.unet_precision}"))

    widths = tuple(int(w) for w in params.unet_widths.split(",") if w.strip())
    return SegmentationConfig(image_size=params.unet_image_size, widths=widths,
                              epochs=unet_epochs(params), precision=precision,
                              batch_size=params.unet_batch_size,
                              tumor_free_ratio=params.unet_tumor_free_ratio,
                              seed=params.seed)


def family(params: schema.Params, model: str):
    """The model family that trains `model` under these parameters."""
    if model == SEGMENTER:
        from .segmenter import SegmenterFamily

        return SegmenterFamily(segmentation_config(params))
    from .classifier import ClassifierFamily

    return ClassifierFamily(model, classifier_config(params))


def experiments(params: schema.Params, model: str) -> tuple[tuple, tuple]:
    """The schemes and controls a model is trained under: the classifiers also on the
    paper's slice split and with shuffled labels when `leakage_experiment` is on."""
    from . import runner

    if model != SEGMENTER and params.runs_leakage_experiment:
        return splits.SCHEMES, runner.CONTROLS
    return (MAIN_SCHEME,), (MAIN_CONTROL,)


def model_folder(params: schema.Params, model: str, manifest: pd.DataFrame | None = None) -> Path:
    """The folder of `model`'s units under these parameters (`units/<model>-<key>`)."""
    from . import runner

    manifest = read_manifest(params.run_dir) if manifest is None else manifest
    return runner.model_dir(params.run_dir, family(params, model), params.protocol, manifest,
                            seed=params.seed, validation_fraction=params.validation_fraction)


def run_models(params: schema.Params, models=None, *, force: bool = False,
               progress: bool | str = "log") -> pd.DataFrame:
    """Train (or read back) `models` (default: the classifiers of `params.models`) on the
    run's manifest; return the run's predictions table for them.

    Every model follows `params.protocol` through one runner. `<run_dir>/predictions.csv`
    is rewritten with every finished unit of the current parameters, all models.
    """
    from . import runner

    manifest = prepare_manifest(params)
    models = params.model_names if models is None else list(models)
    frames = []
    for model in models:
        schemes, controls = experiments(params, model)
        frames.append(runner.run_units(
            manifest, params.run_dir, [family(params, model)], protocol=params.protocol,
            schemes=schemes, controls=controls, folds=params.folds, seed=params.seed,
            validation_fraction=params.validation_fraction, force=force, progress=progress))
    write_predictions_table(params, manifest)
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def run_protocol_comparison(params: schema.Params, progress: bool | str = "log") -> pd.DataFrame:
    """The classifiers' main experiment (patient folds, true labels) under both protocols:
    the run's own (read back) and the other one, trained here if need be; one table with
    a `protocol` column."""
    from . import runner

    own = run_models(params, progress=progress)
    other = "paper" if params.protocol == "validated" else "validated"
    manifest = read_manifest(params.run_dir)
    frames = [main_experiment(own)]
    for model in params.model_names:
        frames.append(runner.run_units(
            manifest, params.run_dir, [family(params, model)], protocol=other, folds=params.folds,
            seed=params.seed, validation_fraction=params.validation_fraction, progress=progress))
    return pd.concat(frames, ignore_index=True)


def run_seed_repeats(params: schema.Params, progress: bool | str = "log") -> pd.DataFrame:
    """The classifiers' main experiment (patient folds, true labels) once per training seed
    (`params.training_seeds`), on the same folds: each seed sets the head's initial weights,
    its dropout, the batch order and the inner validation draw. The base is the run seed's
    for every training seed: with ImageNet weights it could not differ, and with random
    weights (`weights=none`) keeping it makes the spread the same quantity and lets every
    seed train on the run's one feature file instead of computing the features again.
    One table with a `training_seed` column."""
    from . import runner

    manifest = prepare_manifest(params)
    frames = []
    for seed in params.training_seeds:
        for model in params.model_names:
            frames.append(runner.run_units(
                manifest, params.run_dir, [family(params, model)], protocol=params.protocol,
                folds=params.folds, seed=seed, validation_fraction=params.validation_fraction,
                progress=progress).assign(training_seed=seed))
    return pd.concat(frames, ignore_index=True)


def run_institution_holdout(params: schema.Params, progress: bool | str = "log"
                            ) -> tuple[pd.DataFrame, dict[str, Path]]:
    """Every model of the run (classifiers and U-Net), trained once per institution on the
    other institutions and scored on that one, under the run's protocol, seed and settings
    (`external.institution_folds`): the predictions (a `fold` per institution, main
    experiment only) and each model's unit folder. Units are keyed by the institution
    manifest, so they sit beside the cross-validation's in the same run folder."""
    from . import runner

    manifest = external.institution_folds(prepare_manifest(params))
    frames, folders = [], {}
    for model in all_models(params):
        model_family = family(params, model)
        folders[model] = runner.model_dir(params.run_dir, model_family, params.protocol, manifest,
                                          seed=params.seed,
                                          validation_fraction=params.validation_fraction)
        frames.append(runner.run_units(
            manifest, params.run_dir, [model_family], protocol=params.protocol, seed=params.seed,
            validation_fraction=params.validation_fraction, progress=progress))
    return pd.concat(frames, ignore_index=True), folders


def all_models(params: schema.Params) -> list[str]:
    return params.model_names + [SEGMENTER]


def write_predictions_table(params: schema.Params, manifest: pd.DataFrame) -> pd.DataFrame:
    """`<run_dir>/predictions.csv`: every finished unit of the current parameters, with
    the uncertainty columns of the units chapter 8 annotated (`run_trust_analyses`)."""
    from . import runner

    units = []
    for model in all_models(params):
        folder = model_folder(params, model, manifest)
        schemes, controls = experiments(params, model)
        units += [folder / runner.unit_path(*u[1:])
                  for u in runner.list_units(manifest, [model], schemes, controls, params.folds)]
    table = with_uncertainty(units)
    data.write_csv_atomic(table, Path(params.run_dir) / "predictions.csv")
    return table


def unit_histories(params: schema.Params, models=None) -> pd.DataFrame:
    """Every unit's per-epoch history (training and inner-validation loss and accuracy)."""
    from . import runner

    return runner.read_histories(model_folder(params, m) for m in (models or params.model_names))


def unit_thresholds(params: schema.Params, models=None) -> pd.DataFrame:
    """Every unit's chosen epoch and threshold, with how many rows fitted and validated."""
    from . import runner

    return runner.read_thresholds(model_folder(params, m) for m in (models or params.model_names))


def forget_models(params: schema.Params) -> None:
    """Delete the trained units of the current parameters (all models), so they retrain."""
    manifest = prepare_manifest(params)
    for model in all_models(params):
        shutil.rmtree(model_folder(params, model, manifest), ignore_errors=True)


def with_uncertainty(unit_dirs) -> pd.DataFrame:
    """The predictions of finished units, with each unit's `uncertainty.csv` columns where
    it has one."""
    from . import runner

    frames = []
    for folder in unit_dirs:
        predictions = runner.read_units([folder])
        extra = Path(folder) / "uncertainty.csv"
        if len(predictions) and extra.exists():
            columns = pd.read_csv(extra, dtype={"patient_id": str})
            predictions = predictions.merge(columns, on=["patient_id", "slice_number"],
                                            how="left", validate="one_to_one")
        frames.append(predictions)
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

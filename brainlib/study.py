"""Run the study: the run folder, its manifest and models, and the chapters via papermill.

A run folder (`runs/<profile>/`) holds everything a run makes: `params.json`, the
manifest with its split columns, the trained units (`units/`), the one predictions table
(`predictions.csv`), and the executed notebooks. A notebook already executed with the same
parameters and source is not run again unless forced, and finished units are read back,
so a stopped study resumes where it stopped.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path

import pandas as pd

from . import data, external, machine, params as schema, splits
from .progress import StudyConsole, duration, native_stderr_to

REPO_ROOT = schema.REPO_ROOT
NOTEBOOKS = REPO_ROOT / "notebooks"
SEGMENTER = "unet"


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
                       base_precision=base_precision(params.base_precision),
                       standardize_features=params.standardize_features, seed=params.seed)


def base_precision(setting: str) -> str:
    """The frozen base's arithmetic on this machine: "auto" becomes bfloat16 where the
    hardware has it and a bfloat16 convolution runs here (`machine.bfloat16_convolution_works`),
    else float32; an explicit bfloat16 that cannot run is refused, saying why."""
    if setting == "float32":
        return setting
    from .classifier import has_bfloat16

    works = machine.bfloat16_convolution_works()
    if setting == "auto":
        return "bfloat16" if has_bfloat16() and works else "float32"
    if not works:
        raise schema.ParameterError(machine.bfloat16_refused(f"base_precision={setting}"))
    return setting


def segmentation_config(params: schema.Params):
    """The parameters of the U-Net as a `segmenter.SegmentationConfig`."""
    from .segmenter import SegmentationConfig

    if params.unet_precision == "mixed_bfloat16" and not machine.bfloat16_convolution_works():
        raise schema.ParameterError(machine.bfloat16_refused(
            f"unet_precision={params.unet_precision}"))

    widths = tuple(int(w) for w in params.unet_widths.split(",") if w.strip())
    return SegmentationConfig(image_size=params.unet_image_size, widths=widths,
                              epochs=params.unet_epochs, precision=params.unet_precision,
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
    if model != SEGMENTER and params.runs_leakage_experiment:
        return splits.SCHEMES, ("none", "shuffled_labels")
    return ("patient",), ("none",)


def model_dir(params: schema.Params, model: str, manifest: pd.DataFrame | None = None) -> Path:
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
    frames = [own[(own["scheme"] == "patient") & (own["control"] == "none")]]
    for model in params.model_names:
        frames.append(runner.run_units(
            manifest, params.run_dir, [family(params, model)], protocol=other, folds=params.folds,
            seed=params.seed, validation_fraction=params.validation_fraction, progress=progress))
    return pd.concat(frames, ignore_index=True)


def run_seed_repeats(params: schema.Params, progress: bool | str = "log") -> pd.DataFrame:
    """The classifiers' main experiment (patient folds, true labels) once per training seed
    (`params.training_seeds`), on the same folds: each seed sets the initial weights, the
    batch order and the inner validation draw. One table with a `training_seed` column."""
    from . import runner

    manifest = prepare_manifest(params)
    frames = []
    for seed in params.training_seeds:
        seeded = schema.Params({**params, "seed": seed})
        for model in params.model_names:
            frames.append(runner.run_units(
                manifest, params.run_dir, [family(seeded, model)], protocol=params.protocol,
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


def run_trust_analyses(params: schema.Params, progress: bool = True
                       ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Chapter 8's analyses of every trained unit of the main experiment, computed once and
    kept in the unit folders: each model's per-slice uncertainty and temperature
    (`uncertainty.annotate_unit`) and the classifiers' Grad-CAM scores
    (`gradcam.gradcam_unit`). Returns the predictions table, rewritten with the uncertainty
    columns, and the Grad-CAM scores."""
    from . import gradcam, uncertainty, unit_models
    from .progress import bar

    manifest = prepare_manifest(params)
    run_models(params, all_models(params), progress=False)  # trained, read back or replayed
    heatmap_scores = []
    for model in all_models(params):
        units = unit_models.main_units(params, model, manifest)
        model_family = family(params, model)
        model_family.prepare(manifest, Path(params.run_dir), False)
        for unit in bar(units, f"{model}: uncertainty" + ("" if model == SEGMENTER
                                                          else " and Grad-CAM"),
                        "unit", enabled=progress):
            uncertainty.annotate_unit(params, model_family, unit, seed=params.seed)
            if model != SEGMENTER:
                heatmap_scores.append(gradcam.gradcam_unit(model_family, unit, manifest))
        model_family.release()
    predictions = write_predictions_table(params, manifest)
    return predictions, pd.concat(heatmap_scores, ignore_index=True)


def write_predictions_table(params: schema.Params, manifest: pd.DataFrame) -> pd.DataFrame:
    """`<run_dir>/predictions.csv`: every finished unit of the current parameters, with
    the uncertainty columns of the units chapter 8 annotated (`run_trust_analyses`)."""
    from . import runner, uncertainty

    units = []
    for model in all_models(params):
        folder = model_dir(params, model, manifest)
        schemes, controls = experiments(params, model)
        units += [folder / runner.unit_path(*u[1:])
                  for u in runner.list_units(manifest, [model], schemes, controls, params.folds)]
    table = uncertainty.with_uncertainty(units)
    data.write_csv_atomic(table, Path(params.run_dir) / "predictions.csv")
    return table


def read_histories(params: schema.Params, models=None) -> pd.DataFrame:
    """Every unit's per-epoch history (training and inner-validation loss and accuracy)."""
    from . import runner

    return runner.read_histories(model_dir(params, m) for m in (models or params.model_names))


def read_thresholds(params: schema.Params, models=None) -> pd.DataFrame:
    """Every unit's chosen epoch and threshold, with how many rows fitted and validated."""
    from . import runner

    return runner.read_thresholds(model_dir(params, m) for m in (models or params.model_names))


def forget_models(params: schema.Params) -> None:
    """Delete the trained units of the current parameters (all models), so they retrain."""
    manifest = prepare_manifest(params)
    for model in all_models(params):
        shutil.rmtree(model_dir(params, model, manifest), ignore_errors=True)


# ----------------------------------------------------------------------------- notebooks


def notebook_sources() -> list[Path]:
    """The study's notebooks, in order (`notebooks/NN_name.py`, jupytext percent format)."""
    return sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py"))


class RunFolderBusy(RuntimeError):
    """Another study holds the run folder."""


@contextlib.contextmanager
def run_folder_lock(run_dir: Path):
    """Hold `run_dir/.lock` for the whole study, so two studies on one folder cannot race;
    the second fails at once naming the process that holds it."""
    import fcntl

    path = Path(run_dir) / ".lock"
    handle = open(path, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise RunFolderBusy(f"{run_dir} is in use by a study running as {holder}; wait for it "
                            "or give this run another folder (-p run_dir=...)") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}")
    handle.flush()
    try:
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def run_study(profile: str = "default", overrides: dict | None = None, *, force: bool = False,
              only: list[str] | None = None, verbose: bool = True) -> Path:
    """Resolve the parameters, prepare the manifest, then execute each notebook with
    papermill into the run folder. A notebook executed with the same resolved parameters,
    source and library code is not run again; `force` retrains every model and re-runs
    every notebook. Without `verbose` the kernels' start-up noise goes to
    `<run_dir>/kernels.log`. An interrupted notebook leaves `NN_name.interrupted.ipynb`."""
    params = schema.resolve(profile, overrides)
    chosen = [s for s in notebook_sources() if not only or any(p in s.stem for p in only)]
    if not chosen:
        raise ValueError(f"--only {' '.join(only)} matches no notebook; the notebooks are "
                         f"{', '.join(s.stem for s in notebook_sources())}")
    comparing = [s.stem for s in chosen if "MODEL_B" in s.read_text()]
    using = [s.stem for s in chosen if "model_names" in s.read_text()]
    if comparing:
        schema.require_classifiers(params, 2, f"chapters {', '.join(comparing)} compare two "
                                              "classifiers")
    elif using:
        schema.require_classifiers(params, 1, f"chapters {', '.join(using)} use a classifier")
    run_dir = Path(params.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    with run_folder_lock(run_dir), native_stderr_to(run_dir / "kernels.log", not verbose):
        _run_notebooks(params, profile, overrides, chosen, force=force)
    return run_dir


def _run_notebooks(params, profile, overrides, sources, *, force) -> None:
    import jupytext
    import papermill

    run_dir = Path(params.run_dir)
    data.write_text_atomic(run_dir / "params.json", json.dumps(params, indent=2))
    print(f"study '{profile}' -> {run_dir}", flush=True)
    prepare_manifest(params)
    if force:
        forget_models(params)
    injected = {"profile": profile, "overrides": {**(overrides or {}), "run_dir": str(run_dir)}}
    for source in sources:
        digest = hashlib.sha1(json.dumps([params, source.read_text(), library_fingerprint()],
                                         sort_keys=True, default=str).encode()).hexdigest()
        output, stamp = run_dir / f"{source.stem}.ipynb", run_dir / f".{source.stem}.done"
        if not force and output.exists() and stamp.exists() and stamp.read_text() == digest:
            print(f"  {source.stem}: up to date, not re-run", flush=True)
            continue
        print(f"  {source.stem}: running", flush=True)
        tmp_in = run_dir / f".{source.stem}.input.ipynb"
        tmp_out = run_dir / f"{source.stem}.failed.ipynb"
        jupytext.write(jupytext.read(source), tmp_in)
        started = time.perf_counter()
        try:
            # the console shows the unit training in the kernel (its status file), not cells
            with StudyConsole(run_dir, source.stem):
                papermill.execute_notebook(str(tmp_in), str(tmp_out), parameters=injected,
                                           cwd=str(run_dir), progress_bar=False,
                                           kernel_name="python3")
        except papermill.PapermillExecutionError as error:
            raise NotebookFailed(source.stem, error, tmp_out) from None
        except KeyboardInterrupt:
            if tmp_out.exists():
                os.replace(tmp_out, run_dir / f"{source.stem}.interrupted.ipynb")
            raise
        finally:
            tmp_in.unlink(missing_ok=True)
        os.replace(tmp_out, output)
        print(f"  {source.stem}: done in {duration(time.perf_counter() - started)}", flush=True)
        data.write_text_atomic(stamp, digest)
        (run_dir / f"{source.stem}.interrupted.ipynb").unlink(missing_ok=True)


def library_fingerprint() -> str:
    """A hash of brainlib's source: an executed notebook is current only for the parameters,
    notebook source and library code it was executed with."""
    digest = hashlib.sha1()
    for path in sorted(Path(__file__).parent.rglob("*.py")) + [schema.PROFILES]:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


class NotebookFailed(RuntimeError):
    """A study notebook raised; says which, the error, and where its executed copy is."""

    def __init__(self, notebook: str, error, executed: Path):
        super().__init__(f"notebook {notebook} failed in cell {error.exec_count}: "
                         f"{error.ename}: {error.evalue}\n"
                         f"The executed notebook, up to the error: {executed}\n"
                         "Finished notebooks and training units are kept; run the same "
                         "command again to resume after fixing the cause.")


def declared_parameters(notebook) -> set[str]:
    """Names assigned in the cell tagged `parameters` (the notebook's interface)."""
    import ast

    for cell in notebook.cells:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            tree = ast.parse(cell.source)
            return {target.id for node in tree.body if isinstance(node, ast.Assign)
                    for target in node.targets if isinstance(target, ast.Name)}
    return set()


def closing_summary(run_dir, seconds: float, book_index: Path | None = None) -> str:
    """What a finished study ran on and found, in a few lines: the time, the profile, the
    data (its folder, patients and slices), each model's pooled accuracy and AUC on the main
    experiment, the machines that trained the units, and where the book is."""
    from . import machine, metrics
    from .report import main_predictions

    run_dir = Path(run_dir)
    saved = json.loads((run_dir / "params.json").read_text())
    manifest = read_manifest(run_dir)
    folder = Path(manifest["image_path"].iloc[0]).parents[1]
    dataset = str(manifest["dataset"].iloc[0]).upper()
    minutes, rest = divmod(round(seconds), 60)
    lines = [f"study done in {minutes} min {rest:02d} s: profile {saved['profile']}, run folder "
             f"{schema.relative_to_repo(run_dir)}",
             f"data: {dataset}, {folder} ({manifest['patient_id'].nunique()} patients, "
             f"{len(manifest)} slices, {int((manifest['label'] == 1).sum())} with tumor)"]
    predictions_path = run_dir / "predictions.csv"
    if predictions_path.exists():
        predictions = pd.read_csv(predictions_path, dtype={"patient_id": str})
        main = main_predictions(predictions)
        if len(main):
            table = metrics.metrics_table(main, by=("model",))
            pooled = ("test slices of the hold-out" if main["fold"].nunique() == 1
                      else "held-out slices, pooled over folds")
            lines.append(f"{pooled} ({dataset}): " + "; ".join(
                f"{r.model} accuracy {r.accuracy:.3f}, AUC {r.auc:.3f}"
                for r in table.itertuples()))
    trained_on = sorted({machine.in_words(json.loads(path.read_text()))
                         for path in run_dir.glob("units/*/*/machine.json")})
    if trained_on:
        lines.append("trained on: " + " | ".join(trained_on))
    if book_index is not None:
        lines.append(f"book: {book_index}")
    return "\n".join(lines)


def study_main(argv: list[str]) -> int:
    """`python -m brainlib study --profile NAME [-p key=value ...] [--force] [--book] [-v]`."""
    parser = argparse.ArgumentParser(
        prog="python -m brainlib study", description="Run the study notebooks with papermill.",
        epilog=schema.describe(), formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="default", choices=list(schema.profiles()))
    parser.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
                        help="override a parameter (repeatable); listed below")
    parser.add_argument("--force", action="store_true",
                        help="retrain every model and re-run every notebook")
    parser.add_argument("--only", nargs="*", help="run only notebooks whose name has one of these")
    parser.add_argument("--book", action="store_true",
                        help="then build the book from this run and print where it is")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show the kernels' own output (TensorFlow start-up notices ...)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        run_dir = run_study(args.profile, schema.parse_pairs(args.param), force=args.force,
                            only=args.only, verbose=args.verbose)
        index = None
        if args.book:
            from .book import build_book

            print("  book: building", flush=True)
            index = build_book(run_dir)
    except KeyboardInterrupt:
        print("\ninterrupted; run the same command to resume (finished notebooks and trained "
              "units are kept)", file=sys.stderr)
        return 130
    except (ValueError, data.DataUnavailableError, RunFolderBusy) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except (NotebookFailed, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(closing_summary(run_dir, time.perf_counter() - started, index))
    return 0

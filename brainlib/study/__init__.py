"""The study stage, the top layer. This module runs the study: the run folder, its manifest
and models, and the chapters via papermill; beside it the chapters' start and display
helpers (`notebook`) and the Jupyter Book (`book`).

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
import sys
import time
from pathlib import Path

import pandas as pd

from ..config import lazy_submodules
from .. import data
from ..data import machine
from ..config import params as schema
from ..config.progress import StudyConsole, duration, native_stderr_to

from ..training.experiment import (  # noqa: F401  (the chapters call them as bl.study.*)
    SEGMENTER, all_models, base_precision, classifier_config, experiments, family,
    forget_models, model_folder, prepare_manifest, read_manifest, resolve_data_source,
    run_institution_holdout, run_models, run_protocol_comparison, run_seed_repeats,
    scan_source, segmentation_config, unit_histories, unit_thresholds, with_uncertainty,
    write_predictions_table)
from ..config.params import REPO_ROOT, notebook_sources  # noqa: F401  (re-exported)


def run_trust_analyses(params: schema.Params, progress: bool = True
                       ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Chapter 8's analyses of every trained unit of the main experiment, computed once and
    kept in the unit folders: each model's per-slice uncertainty and temperature
    (`uncertainty.annotate_unit`) and the classifiers' Grad-CAM scores
    (`gradcam.gradcam_unit`). Returns the predictions table, rewritten with the uncertainty
    columns, and the Grad-CAM scores."""
    from ..trust import gradcam, uncertainty
    from ..training import unit_models
    from ..config.progress import bar

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


# ----------------------------------------------------------------------------- notebooks


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
    if params.weights == "imagenet":  # before the data and the first chapter
        from ..models import require_imagenet_weights

        for model in params.model_names:
            require_imagenet_weights(model)
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
    package = Path(__file__).parents[1]
    for path in sorted(package.rglob("*.py")) + sorted(package.rglob("*.toml")):
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
    from ..measures import metrics
    from ..chapters.report import main_predictions

    run_dir = Path(run_dir)
    saved = json.loads((run_dir / "params.json").read_text())
    manifest = read_manifest(run_dir)
    dataset = str(manifest["dataset"].iloc[0]).upper()
    minutes, rest = divmod(round(seconds), 60)
    lines = [f"study done in {minutes} min {rest:02d} s: profile {saved['profile']}, run folder "
             f"{schema.relative_to_repo(run_dir)}",
             f"data: {dataset}, {data_in_words(manifest)}"]
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


def data_in_words(manifest: pd.DataFrame) -> str:
    """The data folder and its counts; for a hold-out, both folders with their patients."""
    def folder(rows):
        return Path(rows["image_path"].iloc[0]).parents[1]

    counts = (f"{manifest['patient_id'].nunique()} patients, {len(manifest)} slices, "
              f"{int((manifest['label'] == 1).sum())} with tumor")
    if "source" not in manifest or manifest["source"].nunique() < 2:
        return f"{folder(manifest)} ({counts})"
    def patients(rows):
        n = rows["patient_id"].nunique()
        return f"{n} patient{'' if n == 1 else 's'}"

    parts = [f"{source} {folder(rows)} ({patients(rows)})"
             for source, rows in ((s, manifest[manifest["source"] == s])
                                  for s in ("train", "test"))]
    return ", ".join(parts) + f"; in all {counts}"


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


SUBMODULES = ('notebook', 'book')


__getattr__ = lazy_submodules(__name__, SUBMODULES)

"""Run the study: profiles of parameters, the run folder, and the notebooks via papermill.

A run folder (`runs/<profile>/`) holds everything a run makes: `params.json`, the
manifest with its split columns, the predictions table, and the executed notebooks.
A notebook already executed with the same parameters is not run again unless forced, so
a stopped study resumes where it stopped.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tomllib
from pathlib import Path

import pandas as pd

from . import data, splits

REPO_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO_ROOT / "notebooks"
PROFILES = Path(__file__).with_name("profiles.toml")
# Parameters that change the manifest; anything else leaves it as it is.
PLOTLY_RENDERER_ENV_VAR = "BRAINLIB_PLOTLY_RENDERER"
# The reference notebooks (committed, checked by nbval) keep figures as JSON only.
REFERENCE_RENDERER = "plotly_mimetype"
MANIFEST_KEYS = ("data_source", "phantom_patients", "seed", "n_folds", "test_fraction")


def _manifest_settings(params: dict) -> dict:
    """The settings that fix a run's manifest, for folder hashes: `phantom_patients` only
    counts where the data may be the phantom, so a notebook (which always carries it) and a
    script on real data share their trained folders."""
    settings = {k: params.get(k) for k in MANIFEST_KEYS}
    if params.get("data_source", "phantom") not in ("phantom", "auto", "", None):
        settings["phantom_patients"] = None
    return settings


def profile_names() -> list[str]:
    return list(tomllib.loads(PROFILES.read_text()))


def load_profile(name: str = "default", overrides: dict | None = None) -> dict:
    """A profile's parameters with overrides applied (each checked against the profile)."""
    profiles = tomllib.loads(PROFILES.read_text())
    if name not in profiles:
        raise ValueError(f"unknown profile {name!r}; profiles in {PROFILES.name}: "
                         f"{', '.join(profiles)}")
    params = dict(profiles[name])
    params.pop("description", None)
    for key, value in (overrides or {}).items():
        if key not in params and key not in ("phantom_patients", "run_dir"):
            raise ValueError(f"unknown parameter {key!r} for profile {name!r}; known: "
                             f"{', '.join(sorted(params))}")
        params[key] = value
    params["profile"] = name
    return params


def parse_overrides(pairs: list[str], reference: dict) -> dict:
    """`["epochs=2", "augment=true"]` -> typed values, using the profile's types."""
    overrides = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep:
            raise ValueError(f"parameter {pair!r} is not key=value")
        kind = type(reference.get(key, ""))
        if kind is bool:
            if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(f"parameter {key} expects true/false, got {text!r}")
            value = text.lower() in ("true", "1", "yes")
        elif kind in (int, float):
            try:
                value = kind(text)
            except ValueError:
                raise ValueError(f"parameter {key} expects {kind.__name__}, got {text!r}") from None
        else:
            value = text
        overrides[key] = value
    return overrides


def resolve_data_source(source: str) -> str:
    """Keep 'phantom'/'kaggle'; resolve a relative path from here, then from the repository."""
    if source in ("phantom", "kaggle", "auto", "", None):
        return source
    path = Path(source).expanduser()
    if not path.is_absolute() and not path.exists() and (REPO_ROOT / path).exists():
        path = REPO_ROOT / path
    return str(path.resolve())


def prepare_manifest(run_dir: str | os.PathLike, *, data_source: str = "phantom",
                     seed: int = 0, n_folds: int = 8, test_fraction: float = 0.3,
                     phantom_patients: int | None = None, **_ignored) -> pd.DataFrame:
    """The run's manifest with split columns, written to `run_dir/manifest.csv`.

    Scans the dataset every time (the scan cache makes a repeat cost one `stat` per file),
    failing with every problem listed before any long work starts, adds the patient and
    slice splits, and rewrites `manifest.csv` (atomically) only when it changed: a fixed or
    regenerated file never leaves a stale manifest behind.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    source = resolve_data_source(data_source)
    folder = data.locate_dataset(source, phantom_patients=phantom_patients, seed=seed)
    scan = data.scan_dataset(folder, collect_problems=True)
    if not scan.ok:
        raise data.DatasetError(scan.problems)
    manifest = splits.add_splits(scan.manifest, n_folds=n_folds, test_fraction=test_fraction,
                                 seed=seed)
    readme = folder / "README.md"
    is_phantom = readme.exists() and "phantom" in readme.read_text()[:2000].lower()
    manifest.insert(0, "dataset", "phantom" if is_phantom else "real")
    manifest_path = run_dir / "manifest.csv"
    if not manifest_path.exists() or not read_manifest(run_dir).equals(manifest):
        data.write_csv_atomic(manifest, manifest_path)
    return manifest


def training_config(*, image_size: int = 64, weights: str = "none", epochs: int = 20,
                    batch_size: int = 32, learning_rate: float = 1e-3, lr_decay: float = 0.0,
                    augment: bool = False, standardize_features: bool = False,
                    seed: int = 0, **_ignored):
    """A profile's training parameters as a `brainlib.train.TrainConfig`."""
    from .train import TrainConfig

    return TrainConfig(image_size=image_size,
                       weights=None if str(weights).lower() in ("none", "") else weights,
                       epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                       lr_decay=lr_decay, augment=augment,
                       standardize_features=standardize_features, seed=seed)


def train_models(run_dir: str | os.PathLike, *, models: str = "resnet50,vgg16",
                 folds_to_run: str = "all", leakage_experiment: bool = True,
                 progress: bool = True, **params) -> pd.DataFrame:
    """Cross-validate the classifiers on the run's manifest; return the predictions table.

    Trains every model on the patient folds and, with `leakage_experiment`, also on the
    slice folds (the paper's split) and with shuffled training labels under both. Results
    go to `run_dir/training-<settings hash>/`, so other settings never overwrite these and
    a stopped run resumes. The other keyword parameters are the manifest's (see
    `prepare_manifest`) and the training's (see `training_config`).
    """
    from . import train

    manifest = prepare_manifest(run_dir, **params)
    config = training_config(**params)
    names = [m.strip() for m in models.split(",") if m.strip()]
    folds = None if folds_to_run in ("all", "", None) else \
        [int(f) for f in str(folds_to_run).split(",")]
    schemes = ("patient", "slice") if leakage_experiment else ("patient",)
    controls = ("none", "shuffled_labels") if leakage_experiment else ("none",)
    folder = training_dir(run_dir, models=models, folds_to_run=folds_to_run,
                          leakage_experiment=leakage_experiment, **params)
    return train.run_cross_validation(manifest, folder, config, models_to_run=names,
                                      schemes=schemes, controls=controls, folds=folds,
                                      progress=progress)


def segmentation_config(*, unet_image_size: int = 128, unet_widths: str = "16,32,64,128",
                        unet_epochs: int = 30, unet_precision: str = "float32", seed: int = 0,
                        **_ignored):
    """A profile's U-Net parameters as a `brainlib.segmentation.SegmentationConfig`."""
    from .segmentation import SegmentationConfig

    widths = tuple(int(w) for w in str(unet_widths).split(",") if w.strip())
    return SegmentationConfig(image_size=unet_image_size, widths=widths, epochs=unet_epochs,
                              precision=unet_precision, seed=seed)


def segmentation_dir(run_dir: str | os.PathLike, **params) -> Path:
    """The folder of one segmentation setting inside a run (named by a settings hash)."""
    from dataclasses import asdict

    settings = {"config": asdict(segmentation_config(**params)),
                "manifest": _manifest_settings(params),
                "folds_to_run": params.get("folds_to_run")}
    digest = hashlib.sha1(json.dumps(settings, sort_keys=True, default=str).encode())
    return Path(run_dir) / f"segmentation-{digest.hexdigest()[:10]}"


def segment_tumors(run_dir: str | os.PathLike, *, folds_to_run: str = "all",
                   progress: bool = True, **params) -> pd.DataFrame:
    """Cross-validate the U-Net on the run's patient folds (the classifiers' folds); return
    its rows of the predictions table (`model="unet"`). Resumes like `train_models`."""
    from . import segmentation

    manifest = prepare_manifest(run_dir, **params)
    folds = None if folds_to_run in ("all", "", None) else \
        [int(f) for f in str(folds_to_run).split(",")]
    folder = segmentation_dir(run_dir, folds_to_run=folds_to_run, **params)
    return segmentation.run_segmentation_cv(manifest, folder, segmentation_config(**params),
                                            scheme="patient", folds=folds, progress=progress)


def read_histories(run_dir: str | os.PathLike, **params) -> pd.DataFrame:
    """Every unit's per-epoch history (loss and accuracy, training and validation)."""
    folder = training_dir(run_dir, **params)
    frames = [pd.read_csv(path) for path in sorted(folder.glob("units/*/history.csv"))]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def training_dir(run_dir: str | os.PathLike, **params) -> Path:
    """The folder of one training setting inside a run (named by a hash of the settings)."""
    from dataclasses import asdict

    settings = {"config": asdict(training_config(**params)),
                "manifest": _manifest_settings(params),
                **{k: params.get(k) for k in ("models", "folds_to_run", "leakage_experiment")}}
    digest = hashlib.sha1(json.dumps(settings, sort_keys=True, default=str).encode())
    return Path(run_dir) / f"training-{digest.hexdigest()[:10]}"


def read_manifest(run_dir: str | os.PathLike) -> pd.DataFrame:
    return pd.read_csv(Path(run_dir) / "manifest.csv",
                       dtype={"patient_id": str, "institution": str})


def notebook_setup() -> None:
    """Notebook display settings: plotly figures embed their JavaScript (interactive in the
    HTML book and offline, no CDN), tables show a sensible number of rows and digits.
    `$BRAINLIB_PLOTLY_RENDERER` overrides the renderer (the reference notebooks keep only
    the figures' JSON, so the repository does not carry plotly.js once per notebook)."""
    import plotly.io as pio

    in_colab = "google.colab" in sys.modules
    pio.renderers.default = os.environ.get(PLOTLY_RENDERER_ENV_VAR) or (
        "colab" if in_colab else "plotly_mimetype+notebook")
    pd.set_option("display.max_rows", 40)
    pd.set_option("display.precision", 4)


def glue_value(name: str, value) -> None:
    """Paste a computed value into the book's prose (myst-nb `glue`), floats cut to 6
    significant digits so no float noise reaches the text. Outside a myst-nb build (e.g.
    on Colab) it does nothing: the cells still show every result."""
    import numpy as np

    try:
        from myst_nb import glue
    except ImportError:
        return
    if isinstance(value, (float, np.floating)):
        value = float(f"{value:.6g}")
    elif isinstance(value, np.integer):
        value = int(value)
    glue(name, value, display=False)


def notebook_sources() -> list[Path]:
    """The study's notebooks, in order (`notebooks/NN_name.py`, jupytext percent format)."""
    return sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py"))


def run_study(profile: str = "default", overrides: dict | None = None, *,
              run_root: str | os.PathLike = "runs", force: bool = False,
              only: list[str] | None = None) -> Path:
    """Prepare the manifest, then execute each notebook with papermill into the run folder."""
    import jupytext
    import papermill

    params = load_profile(profile, overrides)
    run_dir = Path(params.pop("run_dir", None) or Path(run_root) / profile).resolve()
    params["run_dir"] = str(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    data.write_text_atomic(run_dir / "params.json", json.dumps(params, indent=2))
    print(f"study '{profile}' -> {run_dir}", flush=True)
    prepare_manifest(run_dir, **{k: params.get(k) for k in MANIFEST_KEYS if k in params})
    for source in notebook_sources():
        if only and not any(name in source.stem for name in only):
            continue
        notebook = jupytext.read(source)
        declared = _declared_parameters(notebook)
        given = {k: v for k, v in params.items() if k in declared}
        digest = hashlib.sha1(json.dumps([given, source.read_text()], sort_keys=True,
                                         default=str).encode()).hexdigest()
        output, stamp = run_dir / f"{source.stem}.ipynb", run_dir / f".{source.stem}.done"
        if not force and output.exists() and stamp.exists() and stamp.read_text() == digest:
            print(f"  {source.stem}: up to date, not re-run", flush=True)
            continue
        print(f"  {source.stem}: running", flush=True)
        tmp_in = run_dir / f".{source.stem}.input.ipynb"
        tmp_out = run_dir / f"{source.stem}.failed.ipynb"
        jupytext.write(notebook, tmp_in)
        try:
            papermill.execute_notebook(str(tmp_in), str(tmp_out), parameters=given,
                                       cwd=str(run_dir), progress_bar=True, kernel_name="python3")
        except papermill.PapermillExecutionError as error:
            raise NotebookFailed(source.stem, error, tmp_out) from None
        finally:
            tmp_in.unlink(missing_ok=True)
        os.replace(tmp_out, output)
        data.write_text_atomic(stamp, digest)
    return run_dir


class NotebookFailed(RuntimeError):
    """A study notebook raised; says which, the error, and where its executed copy is."""

    def __init__(self, notebook: str, error, executed: Path):
        super().__init__(f"notebook {notebook} failed in cell {error.exec_count}: "
                         f"{error.ename}: {error.evalue}\n"
                         f"The executed notebook, up to the error: {executed}\n"
                         "Finished notebooks and training units are kept; run the same "
                         "command again to resume after fixing the cause.")


def _declared_parameters(notebook) -> set[str]:
    """Names assigned in the cell tagged `parameters` (the notebook's interface)."""
    import ast

    for cell in notebook.cells:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            tree = ast.parse(cell.source)
            return {target.id for node in tree.body if isinstance(node, ast.Assign)
                    for target in node.targets if isinstance(target, ast.Name)}
    return set()


def execute_reference_notebooks(only: list[str] | None = None, timeout: int = 1800) -> None:
    """Execute each notebook in place with its own default parameters (the fast ones) and
    save the outputs into its paired `.ipynb`: the reference that nbval checks."""
    import jupytext
    import nbclient

    os.environ[PLOTLY_RENDERER_ENV_VAR] = REFERENCE_RENDERER  # inherited by the kernels
    for source in notebook_sources():
        if only and not any(name in source.stem for name in only):
            continue
        print(f"  {source.stem}: executing reference", flush=True)
        notebook = jupytext.read(source)
        nbclient.NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                                record_timing=False,
                                resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
        target = source.with_suffix(".ipynb")
        tmp = target.with_name(f".{target.stem}.tmp.ipynb")
        jupytext.write(notebook, tmp, fmt="ipynb")
        os.replace(tmp, target)


BOOK_FILES = ("_config.yml", "_toc.yml", "book")


def stage_book(run_dir: str | os.PathLike, stage_dir: str | os.PathLike = "_build/src") -> Path:
    """Lay out the book's sources with the run's executed notebooks as its chapters.

    The written chapters and configuration come from the repository; each
    `notebooks/NN_name.ipynb` is the executed copy from `run_dir`, so the book shows the
    latest run and never executes anything itself.
    """
    import shutil

    run_dir, stage = Path(run_dir), Path(stage_dir)
    missing = [s.stem for s in notebook_sources() if not (run_dir / f"{s.stem}.ipynb").exists()]
    if missing:
        raise FileNotFoundError(f"{run_dir} lacks executed notebooks {missing}: run "
                                f"`make study` (or `python -m brainlib study`) first")
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir(parents=True)
    for name in BOOK_FILES:
        source = REPO_ROOT / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, stage / name)
    (stage / "notebooks").mkdir()
    for source in notebook_sources():
        shutil.copy(run_dir / f"{source.stem}.ipynb", stage / "notebooks")
    return stage


def study_main(argv: list[str]) -> int:
    """`python -m brainlib study --profile NAME [-p key=value ...] [--force]`."""
    parser = argparse.ArgumentParser(prog="python -m brainlib study",
                                     description="Run the study notebooks with papermill.")
    parser.add_argument("--profile", default="default", choices=profile_names())
    parser.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
                        help="override a profile parameter (repeatable)")
    parser.add_argument("--run-root", default="runs", help="folder of run folders")
    parser.add_argument("--force", action="store_true", help="re-run finished notebooks")
    parser.add_argument("--only", nargs="*", help="run only notebooks whose name has one of these")
    args = parser.parse_args(argv)
    try:
        overrides = parse_overrides(args.param, load_profile(args.profile))
        run_study(args.profile, overrides, run_root=args.run_root, force=args.force,
                  only=args.only)
    except (ValueError, data.DataUnavailableError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except NotebookFailed as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0

"""A run's training outputs, recorded without weights, and replayed into another run folder.

Training is the one step whose numbers move between machines (oneDNN and Eigen round
differently on different CPUs, and training amplifies last bits); everything after it
(statistics, tables, figures, the audit) is a pure function of the units' predictions. So
the reference notebooks are executed on a *recording*: every unit's test scores, history,
threshold, the machine that trained it and chapter 8's analyses, without the weights
(`notebooks/recorded/`, written by `make notebooks`). A run folder holding `replay.json`
reads its units from a recording instead of training them, so nbval checks every chapter
exactly on any machine; whether training itself reproduces is a separate check, with
tolerances from the measured spread (`tests/test_training_travels.py`).

Under `strict` replay a unit the recording lacks is an error that says what moved: the
settings, the manifest or the training module whose source changed since the recording.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd

from . import write_csv_atomic, write_text_atomic
from ..config.params import REPO_ROOT

RECORDING = REPO_ROOT / "notebooks" / "recorded"
MARKER = "replay.json"
KEY_FILE = "key.json"
SCORES = "scores.csv"
# Columns a unit adds to the manifest's rows in its predictions (the rest are the manifest's).
SCORE_COLUMNS = ("model", "protocol", "scheme", "control", "fold", "y_true", "p_tumor",
                 "threshold", "y_pred")
MATCH_COLUMNS = ("patient_id", "slice_number")
NOT_RECORDED = (".weights.h5",)  # weights: large, and nothing after training needs them


class ReplayMiss(RuntimeError):
    """A strict replay found no recorded unit for the current settings or code."""


# ----------------------------------------------------------------------------- replay


def replay_into(run_dir, recording=RECORDING, *, strict: bool = True) -> Path:
    """Make `run_dir` read its units from `recording` (`replay.json`); strict: a unit the
    recording lacks is a `ReplayMiss` instead of being trained."""
    run_dir = Path(run_dir)
    write_text_atomic(run_dir / MARKER, json.dumps(
        {"recording": str(Path(recording).resolve()), "strict": strict}, indent=2))
    return run_dir


def replay_settings(run_dir) -> dict | None:
    """The run folder's replay settings, or None when it trains its own units."""
    marker = Path(run_dir) / MARKER
    return json.loads(marker.read_text()) if marker.exists() else None


def replay_unit(run_dir, model_folder: Path, unit_name: str, manifest: pd.DataFrame) -> bool:
    """Copy one recorded unit into `model_folder/unit_name` (its predictions rebuilt on this
    run's manifest, so paths are this machine's); False when the run folder does not replay
    or, not strict, when the recording lacks the unit."""
    settings = replay_settings(run_dir)
    if settings is None:
        return False
    recording = Path(settings["recording"])
    source = recording / "units" / model_folder.name / unit_name
    if not (source / SCORES).exists():
        if settings.get("strict", True):
            raise ReplayMiss(miss_message(recording, model_folder, unit_name))
        return False
    target = model_folder / unit_name
    target.mkdir(parents=True, exist_ok=True)
    for path in sorted(source.iterdir()):
        if path.name != SCORES:
            shutil.copyfile(path, target / path.name)
    scores = pd.read_csv(source / SCORES, dtype={"patient_id": str})
    rows = manifest.merge(scores, on=list(MATCH_COLUMNS), how="inner", validate="one_to_one")
    if len(rows) != len(scores):
        raise ReplayMiss(f"recorded unit {source} scores {len(scores)} slices, of which only "
                         f"{len(rows)} are in this run's manifest")
    order = scores[list(MATCH_COLUMNS)].merge(rows, on=list(MATCH_COLUMNS), how="left")
    write_csv_atomic(order[list(manifest.columns) + list(SCORE_COLUMNS)],
                     target / "predictions.csv")  # last: it marks the unit finished
    return True


def miss_message(recording: Path, model_folder: Path, unit_name: str) -> str:
    """Why a strict replay found nothing: the unit or the whole key is not recorded, and
    what moved since the closest recorded key of the same model (`what_moved`)."""
    head = (f"replay: the recording {recording} has no unit {model_folder.name}/{unit_name} "
            f"for the current settings and code")
    if (recording / "units" / model_folder.name).is_dir():
        return head + f"; it has that model folder but not the unit {unit_name}"
    current = read_key(model_folder)
    model = model_folder.name.rsplit("-", 1)[0]
    return head + ". " + what_moved(recording, model, current or {})


def what_moved(recording: Path, model: str, current: dict) -> str:
    """The closest recorded key of `model` compared field by field with `current`."""
    recorded = {path.parent.name: json.loads(path.read_text())
                for path in sorted((Path(recording) / "units").glob(f"{model}-*/{KEY_FILE}"))}
    if not recorded:
        return f"The recording holds no {model} units at all. Re-record with `make notebooks`."
    closest, changes = min(((name, key_differences(key, current)) for name, key in recorded.items()),
                           key=lambda item: len(item[1]))
    return (f"Closest recorded {model} folder: {closest}; what moved since it (recorded -> "
            f"now): " + "; ".join(changes) + ". If the change is meant, re-record with "
            "`make notebooks`.")


def key_differences(recorded: dict, current: dict, prefix: str = "") -> list[str]:
    """'field: recorded -> current' for every leaf that differs between two unit keys."""
    changes = []
    for name in sorted(set(recorded) | set(current)):
        before, after = recorded.get(name), current.get(name)
        label = f"{prefix}{name}"
        if isinstance(before, dict) and isinstance(after, dict):
            changes += key_differences(before, after, f"{label}.")
        elif before != after:
            if name == "code" and "code_modules" in current:
                continue  # named module by module below
            changes.append(f"{label}: {before!r} -> {after!r}")
    return changes


def write_key(model_folder: Path, key: dict) -> None:
    """Keep a model folder's key beside its units (`key.json`), once."""
    path = Path(model_folder) / KEY_FILE
    if not path.exists():
        write_text_atomic(path, json.dumps(key, indent=2, sort_keys=True, default=str))


def read_key(model_folder: Path) -> dict | None:
    path = Path(model_folder) / KEY_FILE
    return json.loads(path.read_text()) if path.exists() else None


# ----------------------------------------------------------------------------- recording


def record_run(run_dir, recording=RECORDING, *, keep_others: bool = False) -> Path:
    """Write every finished unit of `run_dir` into `recording`: the unit's files without
    weights, its predictions cut to `scores.csv` (the match columns and the unit's own
    columns). The recording is replaced whole, or, with `keep_others` (a partial run),
    only in the model folders the run has."""
    recording = Path(recording)
    staging = recording.with_name(f".{recording.name}.staging")
    shutil.rmtree(staging, ignore_errors=True)
    if keep_others and recording.exists():
        shutil.copytree(recording, staging)
        for model_folder in (Path(run_dir) / "units").glob("*"):
            shutil.rmtree(staging / "units" / model_folder.name, ignore_errors=True)
    units = Path(run_dir) / "units"
    for model_folder in sorted(units.iterdir() if units.is_dir() else []):
        if not (model_folder / KEY_FILE).exists():
            continue
        target_model = staging / "units" / model_folder.name
        for unit in sorted(p for p in model_folder.iterdir() if (p / "predictions.csv").exists()):
            target = target_model / unit.name
            target.mkdir(parents=True, exist_ok=True)
            for path in sorted(unit.iterdir()):
                if path.name == "predictions.csv" or path.name.endswith(NOT_RECORDED) \
                        or path.name.startswith("."):
                    continue
                shutil.copyfile(path, target / path.name)
            predictions = pd.read_csv(unit / "predictions.csv", dtype={"patient_id": str})
            predictions[list(MATCH_COLUMNS + SCORE_COLUMNS)].to_csv(target / SCORES, index=False)
        if target_model.exists():
            shutil.copyfile(model_folder / KEY_FILE, target_model / KEY_FILE)
    staging.mkdir(parents=True, exist_ok=True)
    readme = recording / "README.md"
    if readme.exists() and not keep_others:
        shutil.copyfile(readme, staging / "README.md")
    old = recording.with_name(f".{recording.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if recording.exists():
        recording.rename(old)
    staging.rename(recording)
    shutil.rmtree(old, ignore_errors=True)
    return recording


def recorded_predictions(recording=RECORDING, model_folder_prefix: str = "",
                         unit_prefix: str = "") -> pd.DataFrame:
    """The recorded scores of the units whose model folder and unit names start with the
    given prefixes, one table (the match columns and the units' own columns)."""
    frames = [pd.read_csv(path, dtype={"patient_id": str}) for path in
              sorted(Path(recording).glob(f"units/{model_folder_prefix}*/{unit_prefix}*/{SCORES}"))]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def recorded_machines(recording=RECORDING) -> pd.DataFrame:
    """One row per recorded unit: its model folder, unit and the machine that trained it."""
    rows = []
    for path in sorted(Path(recording).glob("units/*/*/machine.json")):
        rows.append({"model_folder": path.parent.parent.name, "unit": path.parent.name,
                     **json.loads(path.read_text())})
    return pd.DataFrame(rows)

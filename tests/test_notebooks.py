"""Notebook pairs are in sync, each has a papermill interface, Colab links agree with
the book's configuration, and the study runner executes and resumes."""
import json
from pathlib import Path

import jupytext
import papermill
import pytest
import yaml

from brainlib import study

ROOT = Path(__file__).resolve().parents[1]
SOURCES = study.notebook_sources()
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())


def cells(notebook):
    return [(c.cell_type, c.source.strip(), sorted(c.metadata.get("tags", [])))
            for c in notebook.cells]


def test_there_are_notebooks():
    assert SOURCES, "no notebooks/NN_name.py found"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_py_and_ipynb_pair_is_in_sync(source):
    paired = source.with_suffix(".ipynb")
    assert paired.exists(), f"{source.name} has no paired .ipynb (run make notebooks)"
    assert cells(jupytext.read(source)) == cells(jupytext.read(paired)), \
        f"{source.name} and {paired.name} differ: run `make notebooks`"
    executed = jupytext.read(paired)
    assert all(c.get("execution_count") for c in executed.cells if c.cell_type == "code"
               and c.source.strip()), f"{paired.name} is not fully executed"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_each_notebook_has_a_parameters_cell_with_run_dir(source):
    parameters = papermill.inspect_notebook(str(source.with_suffix(".ipynb")))
    assert "run_dir" in parameters
    assert study._declared_parameters(jupytext.read(source)) == set(parameters)


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_colab_badge_points_at_the_configured_repository(source):
    text = source.read_text()
    repo = CONFIG["repository"]["url"].removeprefix("https://github.com/")
    branch = CONFIG["repository"]["branch"]
    badge = f"https://colab.research.google.com/github/{repo}/blob/{branch}/notebooks/{source.stem}.ipynb"
    assert badge in text
    assert f"git+https://github.com/{repo}@{branch}" in text  # the Colab set-up cell


def test_every_notebook_is_a_chapter_of_the_book():
    toc = (ROOT / "_toc.yml").read_text()
    for source in SOURCES:
        assert f"notebooks/{source.stem}" in toc


def test_profiles_load_and_overrides_are_typed():
    for name in study.profile_names():
        params = study.load_profile(name)
        assert {"data_source", "seed", "n_folds", "epochs"} <= set(params)
    default = study.load_profile("default")
    overrides = study.parse_overrides(["epochs=2", "augment=true", "learning_rate=0.01"], default)
    assert overrides == {"epochs": 2, "augment": True, "learning_rate": 0.01}
    with pytest.raises(ValueError, match="epochs expects int"):
        study.parse_overrides(["epochs=two"], default)
    with pytest.raises(ValueError, match="unknown parameter"):
        study.load_profile("default", {"epoch": 3})
    with pytest.raises(ValueError, match="unknown profile"):
        study.load_profile("nope")


def test_notebooks_and_scripts_share_trained_folders_on_real_data():
    """A notebook always carries `phantom_patients`; on real data it must not change the
    folder the models are trained into, on the phantom it must."""
    real = {k: v for k, v in study.load_profile("sample").items() if k != "phantom_patients"}
    for folder in (study.training_dir, study.segmentation_dir):
        assert folder("run", **real) == folder("run", **real, phantom_patients=12)
    phantom = {k: v for k, v in study.load_profile("default").items() if k != "phantom_patients"}
    for folder in (study.training_dir, study.segmentation_dir):
        assert folder("run", **phantom, phantom_patients=12) != \
            folder("run", **phantom, phantom_patients=24)


def test_study_runs_a_notebook_with_overrides_then_resumes(tmp_path, monkeypatch, capsys):
    """papermill overrides the parameters cell; a finished notebook is not run again."""
    overrides = {"phantom_patients": 6, "n_folds": 3}
    run_dir = study.run_study("default", overrides, run_root=tmp_path, only=["02_data"])
    executed = json.loads((run_dir / "02_data.ipynb").read_text())
    injected = [c for c in executed["cells"]
                if "injected-parameters" in c["metadata"].get("tags", [])]
    assert injected and "phantom_patients = 6" in "".join(injected[0]["source"])
    manifest = study.read_manifest(run_dir)
    assert manifest["patient_id"].nunique() == 6
    assert set(manifest["fold_patient"]) == {0, 1, 2}
    assert (manifest["dataset"] == "phantom").all()
    capsys.readouterr()
    study.run_study("default", overrides, run_root=tmp_path, only=["02_data"])
    assert "up to date, not re-run" in capsys.readouterr().out


def test_a_failing_notebook_is_reported_plainly_and_keeps_its_executed_copy(tmp_path):
    overrides = {"phantom_patients": 6, "n_folds": 3, "image_size": 16}  # too small: refused
    with pytest.raises(study.NotebookFailed) as error:
        study.run_study("default", overrides, run_root=tmp_path, only=["04_training"])
    message = str(error.value)
    assert "04_training" in message and "input_size" in message
    executed = tmp_path / "default" / "04_training.failed.ipynb"
    assert executed.exists() and str(executed) in message
    assert not (tmp_path / "default" / "04_training.ipynb").exists()

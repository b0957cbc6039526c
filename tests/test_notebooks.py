"""Notebook pairs are in sync, each has a papermill interface, Colab links agree with
the book's configuration, and the study runner executes and resumes."""
import json
import re
import shutil
from pathlib import Path

import jupytext
import papermill
import pytest
import yaml

from brainlib.config import params, progress
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
def test_each_notebook_declares_only_profile_and_overrides(source):
    """Every chapter reads the one schema: its parameters cell holds what papermill injects."""
    parameters = papermill.inspect_notebook(str(source.with_suffix(".ipynb")))
    assert set(parameters) == {"profile", "overrides"}
    assert study.declared_parameters(jupytext.read(source)) == set(parameters)
    assert "notebook.start(globals())" in source.read_text() or \
        "notebook.open_run(globals())" in source.read_text()


GLUE_ROLE = re.compile(r"\{glue:text\}`([A-Za-z0-9_]+)")


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_each_chapter_ends_with_a_recap_of_glued_values(source):
    """A recap closes every chapter and quotes computed values; every value a chapter's prose
    pastes in is glued by one of its executed cells (a missing one is an error in the book)."""
    executed = jupytext.read(source.with_suffix(".ipynb"))
    last = executed.cells[-1]
    assert last.cell_type == "markdown" and last.source.startswith("## Recap"), source.name
    assert GLUE_ROLE.search(last.source), f"{source.name}: its recap quotes no computed value"
    quoted = {name for cell in executed.cells if cell.cell_type == "markdown"
              for name in GLUE_ROLE.findall(cell.source)}
    glued = {output.get("metadata", {}).get("scrapbook", {}).get("name")
             for cell in executed.cells for output in cell.get("outputs", [])}
    assert not quoted - glued, f"{source.name}: quoted but never glued: {sorted(quoted - glued)}"


def copy_pairs(target: Path) -> list[Path]:
    """Copies of the notebook pairs under `target/notebooks`; their `.py` sources."""
    (target / "notebooks").mkdir(parents=True)
    for source in SOURCES:
        for path in (source, source.with_suffix(".ipynb")):
            shutil.copy(path, target / "notebooks" / path.name)
    return [target / "notebooks" / source.name for source in SOURCES]


def test_the_repository_is_named_in_one_place():
    """`_config.yml`'s repository.url is the one setting: the only other files that name
    the repository are the notebook pairs, in the Colab lines written from it."""
    import subprocess

    from brainlib.study import book

    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    if listed.returncode != 0:
        pytest.skip("not a git checkout: cannot list the tracked files")
    name, _ = book.repository()
    pairs = {f"notebooks/{s.stem}{suffix}" for s in SOURCES for suffix in (".py", ".ipynb")}
    carriers = set()
    for relative in listed.stdout.split():
        path = ROOT / relative
        try:
            text = path.read_text()
        except (UnicodeDecodeError, FileNotFoundError, IsADirectoryError):
            continue
        if name in text:
            carriers.add(relative)
    assert carriers - {"_config.yml"} <= pairs, carriers - pairs - {"_config.yml"}
    for source in SOURCES:
        lines = book.colab_lines(source.stem)
        for line in source.read_text().splitlines():
            if name in line:
                assert lines["badge"] in line or f'"{lines["install"]}"' in line, line


def test_the_notebooks_agree_with_the_repository_setting(tmp_path):
    from brainlib.study import book

    assert book.write_repository_lines(sources=copy_pairs(tmp_path)) == [], (
        "a notebook's Colab lines differ from _config.yml: run `python -m brainlib repository`")


def test_a_fork_points_every_colab_line_at_itself(tmp_path):
    import nbformat

    from brainlib.study import book

    sources = copy_pairs(tmp_path)
    config = tmp_path / "_config.yml"
    config.write_text((ROOT / "_config.yml").read_text().replace(
        CONFIG["repository"]["url"], "https://github.com/a-fork/its-book").replace(
        "branch: main", "branch: dev"))
    changed = book.write_repository_lines(config, sources)
    assert len(changed) == 2 * len(SOURCES)
    original, _ = book.repository()
    for source in sources:
        lines = book.colab_lines(source.stem, config)
        for path in (source, source.with_suffix(".ipynb")):
            assert original not in path.read_text()
        text = source.read_text()
        assert lines["badge"] in text and f'"{lines["install"]}"' in text
        assert "a-fork/its-book/blob/dev/notebooks/" in text
        notebook = nbformat.read(source.with_suffix(".ipynb"), as_version=4)
        assert any(lines["install"] in cell.source for cell in notebook.cells)
    assert book.write_repository_lines(config, sources) == []


DATASET_WORDS = ("PHANTOM", "synthetic", "REAL data", "real patients show", "the phantom")


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_prose_never_assumes_which_dataset_the_run_used(source):
    """A chapter's own markdown is the same for a phantom and a real run, so it may not say
    which one it is: that comes from computed output (the run card, glued values, verdicts)."""
    for kind, text, _ in cells(jupytext.read(source)):
        if kind == "markdown":
            found = [word for word in DATASET_WORDS if word in text]
            assert not found, f"{source.name}: markdown assumes the dataset ({found}): {text[:200]}"


def test_every_notebook_is_a_chapter_of_the_book():
    toc = (ROOT / "_toc.yml").read_text()
    for source in SOURCES:
        assert f"notebooks/{source.stem}" in toc


def test_study_runs_a_notebook_with_overrides_then_resumes(tmp_path, monkeypatch, capsys):
    """papermill overrides the parameters cell; a finished notebook is not run again."""
    overrides = {"phantom_patients": 6, "n_folds": 3, "run_dir": str(tmp_path / "default")}
    run_dir = study.run_study("default", overrides, only=["02_data"])
    executed = json.loads((run_dir / "02_data.ipynb").read_text())
    injected = [c for c in executed["cells"]
                if "injected-parameters" in c["metadata"].get("tags", [])]
    assert injected and '"phantom_patients": 6' in "".join(injected[0]["source"])
    manifest = study.read_manifest(run_dir)
    assert manifest["patient_id"].nunique() == 6
    assert set(manifest["fold_patient"]) == {0, 1, 2}
    assert (manifest["dataset"] == "phantom").all()
    capsys.readouterr()
    study.run_study("default", overrides, only=["02_data"])
    assert "up to date, not re-run" in capsys.readouterr().out


def test_a_failing_notebook_is_reported_plainly_and_keeps_its_executed_copy(tmp_path):
    overrides = {"phantom_patients": 6, "n_folds": 3, "image_size": 32,  # too small for the head
                 "run_dir": str(tmp_path / "default")}
    with pytest.raises(study.NotebookFailed) as error:
        study.run_study("default", overrides, only=["04_training"])
    message = str(error.value)
    assert "04_training" in message and "input_size" in message
    executed = tmp_path / "default" / "04_training.failed.ipynb"
    assert executed.exists() and str(executed) in message
    assert not (tmp_path / "default" / "04_training.ipynb").exists()


def test_study_force_retrains_the_models_of_the_current_settings(tmp_path, monkeypatch):
    """`study --force` deletes the trained units of the current parameters (other settings'
    units stay), so every model retrains; a plain run reads them back."""
    overrides = {"phantom_patients": 6, "n_folds": 3, "epochs": 1, "leakage_experiment": False,
                 "models": "vgg16", "run_dir": str(tmp_path / "run")}
    resolved = params.resolve("default", overrides)
    study.run_models(resolved, progress=False)
    folder = study.model_folder(resolved, "vgg16")
    other = study.model_folder(params.resolve("default", {**overrides, "epochs": 2}), "vgg16")
    other.mkdir(parents=True)
    stamp = (folder / "patient-none-fold0" / "predictions.csv").stat().st_mtime_ns
    study.run_models(resolved, progress=False)
    assert (folder / "patient-none-fold0" / "predictions.csv").stat().st_mtime_ns == stamp
    import papermill as pm

    # the notebook itself is not the point here: a stand-in that writes its output
    monkeypatch.setattr(pm, "execute_notebook", lambda source, target, **_: Path(target)
                        .write_text(Path(source).read_text()))
    assert study.study_main(["-p", "phantom_patients=6", "-p", "n_folds=3", "-p", "epochs=1",
                             "-p", "leakage_experiment=false", "-p", "models=vgg16",
                             "-p", f"run_dir={tmp_path / 'run'}", "--force",
                             "--only", "01_equations"]) == 0
    assert not folder.exists() and other.exists()


# ---------------------------------------------------------------------------- the study command

def test_a_second_study_on_the_same_folder_fails_fast(tmp_path):
    with study.run_folder_lock(tmp_path):
        with pytest.raises(study.RunFolderBusy, match=f"in use by a study running as pid "):
            study.run_study("default", {"run_dir": str(tmp_path)})
    with study.run_folder_lock(tmp_path):  # released: the next study may take it
        pass


def test_native_stderr_goes_to_the_log_and_ours_stays(tmp_path, capfd):
    import subprocess
    import sys

    log = tmp_path / "kernels.log"
    with progress.native_stderr_to(log):
        subprocess.run([sys.executable, "-c", "import sys; sys.stderr.write('noise\\n')"],
                       check=True)
        print("progress", file=sys.stderr)
    assert log.read_text() == "noise\n"
    assert "progress" in capfd.readouterr().err


def test_ctrl_c_prints_one_line(monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(study, "run_study", interrupted)
    assert study.study_main([]) == 130
    said = capsys.readouterr().err.strip().splitlines()
    assert said == ["interrupted; run the same command to resume (finished notebooks and "
                    "trained units are kept)"]


def test_overrides_get_their_own_run_folder():
    own = params.resolve("default")
    changed = params.resolve("default", {"epochs": 2})
    assert Path(own.run_dir).name == "default"
    assert Path(changed.run_dir).name.startswith("default-")
    assert params.resolve("default", {"epochs": "2"}).run_dir == changed.run_dir
    assert params.resolve("default", {"run_dir": "/x/y"}).run_dir == "/x/y"


def test_an_interrupted_notebook_is_not_called_failed(tmp_path, monkeypatch):
    import papermill as pm

    def stopped(source, target, **kwargs):
        Path(target).write_text("{}")  # what papermill had written when Ctrl-C came
        raise KeyboardInterrupt

    monkeypatch.setattr(pm, "execute_notebook", stopped)
    with pytest.raises(KeyboardInterrupt):
        study.run_study("default", {"run_dir": str(tmp_path), "phantom_patients": 6},
                        only=["01_equations"])
    assert (tmp_path / "01_equations.interrupted.ipynb").exists()
    assert not list(tmp_path.glob("*.failed.ipynb"))


def test_only_with_no_matching_notebook_is_an_error(tmp_path, capsys):
    assert study.study_main(["--only", "no_such_chapter", "-p", f"run_dir={tmp_path}"]) == 2
    assert "matches no notebook" in capsys.readouterr().err


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_regression_checks_are_cell_tags_not_comments(source):
    """nbval reads tags, and the book hides them; a `# NBVAL_...` comment would show."""
    notebook = jupytext.read(source)
    assert not [c for c in notebook.cells if "NBVAL_" in c.source]
    assert any("nbval-check-output" in c.metadata.get("tags", []) for c in notebook.cells)

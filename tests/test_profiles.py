"""Every profile's code path, and every documented edge value, gives a complete study at
toy scale (tiny phantom, one epoch): no profile reaches a user untried."""
import json
import re
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import REAL_SAMPLE

from brainlib.data import machine
from brainlib import study

# Toy scale: the fewest passes and units that still take every code path (two folds: the
# fold-level tests need two; a third costs a third more training in every chapter). The institution
# hold-out units and the default profile's own chapters are the reference notebooks' (nbval).
TOY = {"data_source": "phantom", "phantom_patients": 8, "n_folds": 2, "image_size": 64,
       "epochs": 1, "weights": "none", "unet_image_size": 32, "unet_widths": "4,8",
       "unet_epochs": 1, "unet_slice_visits": 0, "mc_passes": 2, "institution_holdout": False}
CHAPTERS = ["02_data", "04_training", "05_evaluation", "06_statistics", "07_segmentation",
            "08_trust"]
REAL_TOY = {"data_source": str(REAL_SAMPLE), "n_folds": 2, "image_size": 64, "epochs": 1,
            "weights": "none", "unet_image_size": 32, "unet_widths": "4,8", "unet_epochs": 1, "unet_slice_visits": 0,
            "leakage_experiment": False, "compare_protocols": False, "repeat_seeds": "",
            "mc_passes": 2, "institution_holdout": False}


def chapter_text(executed: dict) -> str:
    """What a reader of an executed chapter sees: its markdown, printed text and displayed
    text or markdown (glued values included)."""
    parts = []
    for cell in executed["cells"]:
        if cell["cell_type"] == "markdown":
            parts.append("".join(cell["source"]))
        for output in cell.get("outputs", []):
            parts.append("".join(output.get("text", "")))
            data = output.get("data", {})
            for kind in ("text/markdown", "text/plain"):
                parts.append("".join(data.get(kind, "")))
    return "\n".join(parts)


def computed_text(executed: dict) -> list[tuple[str, str]]:
    """What a chapter's cells printed and displayed (their outputs, glued sentences
    included), not its fixed markdown: (kind, text) per output, kind 'text' for streams and
    plain or Markdown text, 'html' for the HTML a book page shows."""
    parts = []
    for cell in executed["cells"]:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream" and output.get("name") == "stderr":
                continue  # progress bars and warnings: not the chapter's statements
            parts.append(("text", "".join(output.get("text", ""))))
            data = output.get("data", {})
            for kind in ("text/markdown", "text/plain"):
                parts.append(("text", "".join(data.get(kind, ""))))
            parts.append(("html", "".join(data.get("text/html", ""))))
    return parts


def about_this_run(lines: list[str]) -> list[str]:
    """The lines of an output about this run: without the audit of the paper's own tables
    (chapter 6), whose folds are the paper's."""
    kept, in_audit = [], False
    for line in lines:
        if line.startswith("The paper's own tables") or "the table counts" in line:
            in_audit = True
        if in_audit and not line.strip():
            in_audit = False
        if not in_audit:
            kept.append(line)
    return kept


FOLD_WORDS = re.compile(r"\bfolds?\b|cross-valid", re.IGNORECASE)


def check_holdout_statements(run_dir, chapters) -> None:
    """What a hold-out run prints is true of a hold-out: no folds, no cross-validation, no
    experiment reported as run that did not run, nothing undefined left in a table."""
    for chapter in chapters:
        executed = json.loads((run_dir / f"{chapter}.ipynb").read_text())
        for kind, text in computed_text(executed):
            lines = about_this_run(text.splitlines())
            if kind == "text":
                # a table's text form may say NaN; the page shows its HTML
                printed = [line for line in lines if not re.search(r"\s{2,}\S", line)]
                assert not [line for line in lines if FOLD_WORDS.search(line)], \
                    (chapter, [line for line in lines if FOLD_WORDS.search(line)])
                assert not [line for line in printed if re.search(r"\bnan\b", line, re.I)], \
                    (chapter, printed)
            else:
                assert not FOLD_WORDS.search(re.sub(r"<[^>]+>", " ", text)), (chapter, text[:300])
                assert not re.search(r">\s*(NaN|nan|None)\s*<", text), (chapter, text[:300])
            assert "Empty DataFrame" not in text, chapter
            assert "leakage experiment | yes" not in text, chapter
            assert "needs at least 2" not in text, chapter


def check_prose(run_dir, chapters, dataset: str) -> None:
    """Every chapter names its dataset, and no phantom wording reaches a real run or the
    reverse."""
    for chapter in chapters:
        text = chapter_text(json.loads((run_dir / f"{chapter}.ipynb").read_text()))
        if dataset == "PHANTOM":
            assert "These are PHANTOM results" in text, chapter
            assert "These are REAL" not in text, chapter
        else:
            assert "These are REAL LGG MRI slices" in text, chapter
            assert "PHANTOM" not in text, (chapter, [line for line in text.splitlines()
                                                     if "PHANTOM" in line])


PROFILE_RUNS = {
    # the paper's path: augmentation (end to end), the paper's protocol; one fold only, so
    # the two splits score different slices
    "full-one-fold": ("full", {**TOY, "folds_to_run": "0"}),
    # the lgg (and sample) path offline: a bfloat16 U-Net on balanced epochs, both
    # protocols, a repeated seed (one: the path, not the profile's two); no leakage experiment
    "lgg-offline": ("lgg", {**TOY, "leakage_experiment": False, "repeat_seeds": "1"}),
}


STUDIES_AT_ONCE = 2
"""Toy studies run side by side. Two keep the two cores 1.7 busy (316 s for the five,
2026-12-03); three took 310 s, no real gain, with a third kernel's memory."""


def study_command(profile: str, overrides: dict) -> list[str]:
    pairs = [item for key, value in overrides.items() for item in ("-p", f"{key}={value}")]
    return [sys.executable, "-m", "brainlib", "study", "--profile", profile, *pairs,
            "--only", *CHAPTERS]


@pytest.fixture(scope="module")
def toy_runs(tmp_path_factory, phantom_kaggle_3m) -> dict:
    """Every toy study of this module, run as `python -m brainlib study`, STUDIES_AT_ONCE at
    a time: name -> (run folder, exit status, console). The phantom is written first, so no two studies race for it."""
    import concurrent.futures
    import subprocess

    from brainlib.config import params

    root = tmp_path_factory.mktemp("toy-runs")
    study.prepare_manifest(params.resolve("default", {**TOY, "run_dir": str(root / "phantom")}))
    runs = {name: (profile, {**overrides, "run_dir": str(root / name)})
            for name, (profile, overrides) in PROFILE_RUNS.items()}
    # the bfloat16 U-Net's path wherever it can run (the profile's "auto" follows a probe)
    runs["lgg-offline"][1]["unet_precision"] = (
        "mixed_bfloat16" if machine.bfloat16_convolution_works() else "float32")
    if (REAL_SAMPLE / "kaggle_3m").is_dir():
        runs["real"] = ("sample", {**REAL_TOY, "run_dir": str(root / "real")})
    train, test = root / "holdout-data" / "train" / "kaggle_3m", root / "holdout-data" / "test" / "kaggle_3m"
    shutil.copytree(phantom_kaggle_3m, train)
    test.mkdir(parents=True)
    shutil.copy(train / "README.md", test / "README.md")
    for patient in sorted(p for p in train.iterdir() if p.is_dir())[:3]:
        shutil.move(patient, test / patient.name)
    runs["holdout"] = ("default", {**TOY, "data_source": str(train), "n_folds": 2,
                                   "test_data_source": str(test), "evaluation": "holdout",
                                   "run_dir": str(root / "holdout")})

    runs["institution"] = ("default", {**TOY, "evaluation": "institution",
                                       "run_dir": str(root / "institution")})

    def run(item):
        name, (profile, overrides) = item
        done = subprocess.run(study_command(profile, overrides), capture_output=True, text=True)
        return name, (Path(overrides["run_dir"]), done.returncode, done.stdout + done.stderr)

    with concurrent.futures.ThreadPoolExecutor(max_workers=STUDIES_AT_ONCE) as pool:
        return dict(pool.map(run, runs.items())) | {"holdout-test": test}


def finished(toy_runs, name) -> Path:
    run_dir, status, console = toy_runs[name]
    assert status == 0, f"study {name} failed:\n{console[-4000:]}"
    return run_dir


@pytest.mark.slow
@pytest.mark.parametrize("name", list(PROFILE_RUNS))
def test_a_profile_at_toy_scale_runs_every_training_chapter(name, toy_runs):
    profile = PROFILE_RUNS[name][0]
    run_dir = finished(toy_runs, name)
    for chapter in CHAPTERS:
        executed = json.loads((run_dir / f"{chapter}.ipynb").read_text())
        errors = [o for c in executed["cells"] for o in c.get("outputs", [])
                  if o.get("output_type") == "error"]
        assert not errors, (chapter, errors)
    table = study.read_manifest(run_dir)
    assert table["patient_id"].nunique() == 8
    predictions = pd.read_csv(run_dir / "predictions.csv")
    assert {"resnet50", "vgg16", "unet"} == set(predictions["model"])
    expected = "paper" if profile == "full" else "validated"
    assert set(predictions["protocol"]) == {expected}
    main = predictions[(predictions["scheme"] == "patient") & (predictions["control"] == "none")]
    assert main[["entropy", "mutual_information", "margin"]].notna().all().all()  # chapter 8's
    assert main["p_calibrated"].isna().all() == (profile == "full")  # no inner validation there
    check_prose(run_dir, CHAPTERS, "PHANTOM")
    if profile == "lgg":  # its U-Net's balanced epochs, said on the run card
        card = chapter_text(json.loads((run_dir / "02_data.ipynb").read_text()))
        assert "every tumor slice, 1 tumor-free per tumor slice" in card


@pytest.mark.slow
def test_a_real_run_reads_as_real_in_every_chapter(toy_runs):
    """The real 20-patient sample at toy scale: every chapter's prose, the run card's
    sentences and the closing verdicts carry no phantom wording."""
    if "real" not in toy_runs:
        pytest.skip(f"real LGG sample not found at {REAL_SAMPLE}")
    run_dir = finished(toy_runs, "real")
    assert set(pd.read_csv(run_dir / "manifest.csv")["dataset"]) == {"real"}
    check_prose(run_dir, CHAPTERS, "REAL")


@pytest.mark.slow
def test_a_holdout_run_trains_on_one_folder_and_tests_on_another(toy_runs):
    """evaluation='holdout': every model trains on all patients of one folder and every
    chapter reports on the patients of another, as one fold."""
    run_dir = finished(toy_runs, "holdout")
    for chapter in CHAPTERS:
        executed = json.loads((run_dir / f"{chapter}.ipynb").read_text())
        assert not [o for c in executed["cells"] for o in c.get("outputs", [])
                    if o.get("output_type") == "error"], chapter
    predictions = pd.read_csv(run_dir / "predictions.csv")
    held_out = {p.name for p in toy_runs["holdout-test"].iterdir() if p.is_dir()}
    assert set(predictions["patient_id"]) == held_out
    assert set(predictions["fold"]) == {0} and set(predictions["scheme"]) == {"patient"}
    assert {"resnet50", "vgg16", "unet"} == set(predictions["model"])
    text = chapter_text(json.loads((run_dir / "05_evaluation.ipynb").read_text()))
    assert "tested once on the 3 patients of" in text
    check_holdout_statements(run_dir, CHAPTERS)


@pytest.mark.slow
def test_an_institution_run_says_what_it_ran(toy_runs):
    """evaluation='institution': every chapter runs, the run card and chapter 5 say that the
    folds are institutions, and that the leakage experiment and the extra institution
    hold-out did not run (and why), once each."""
    run_dir = finished(toy_runs, "institution")
    for chapter in CHAPTERS:
        executed = json.loads((run_dir / f"{chapter}.ipynb").read_text())
        assert not [o for c in executed["cells"] for o in c.get("outputs", [])
                    if o.get("output_type") == "error"], chapter
        printed = "\n".join(text for _, text in computed_text(executed))
        assert "| evaluation | one fold per institution |" in printed, chapter
        assert "| leakage experiment | no |" in printed, chapter
        assert "Empty DataFrame" not in printed and "needs at least 2" not in printed, chapter
    printed = "\n".join(text for _, text in computed_text(
        json.loads((run_dir / "05_evaluation.ipynb").read_text())))
    assert printed.count("the leakage experiment compares a slice split") == 1
    assert "This run's own folds are institutions" in printed
    predictions = pd.read_csv(run_dir / "predictions.csv")
    assert set(predictions["scheme"]) == {"patient"} and predictions["fold"].nunique() > 1

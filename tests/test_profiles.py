"""Every profile's code path, and every documented edge value, gives a complete study at
toy scale (tiny phantom, one epoch): no profile reaches a user untried."""
import json
import shutil

import pandas as pd
import pytest
from conftest import REAL_SAMPLE

from brainlib import study

# Toy scale: the fewest passes and units that still take every code path. The institution
# hold-out units and the default profile's own chapters are the reference notebooks' (nbval).
TOY = {"data_source": "phantom", "phantom_patients": 8, "n_folds": 3, "image_size": 64,
       "epochs": 1, "weights": "none", "unet_image_size": 32, "unet_widths": "4,8",
       "unet_epochs": 1, "mc_passes": 2, "institution_holdout": False}
CHAPTERS = ["02_data", "04_training", "05_evaluation", "06_statistics", "07_segmentation",
            "08_trust"]
REAL_TOY = {"data_source": str(REAL_SAMPLE), "n_folds": 3, "image_size": 64, "epochs": 1,
            "weights": "none", "unet_image_size": 32, "unet_widths": "4,8", "unet_epochs": 1,
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


@pytest.mark.slow
@pytest.mark.parametrize("profile, edge", [
    # the paper's path: augmentation (end to end), the paper's protocol; one fold only, so
    # the two splits score different slices
    ("full", {"folds_to_run": "0"}),
    # the sample's path: a bfloat16 U-Net; and no leakage experiment
    ("sample", {"leakage_experiment": False}),
], ids=["full-one-fold", "sample-no-leakage"])
def test_a_profile_at_toy_scale_runs_every_training_chapter(profile, edge, tmp_path):
    run_dir = study.run_study(profile, {**TOY, **edge, "run_dir": str(tmp_path / profile)},
                              only=CHAPTERS)
    for chapter in CHAPTERS:
        executed = json.loads((run_dir / f"{chapter}.ipynb").read_text())
        errors = [o for c in executed["cells"] for o in c.get("outputs", [])
                  if o.get("output_type") == "error"]
        assert not errors, (chapter, errors)
    table = study.read_manifest(run_dir)
    assert table["patient_id"].nunique() == 8
    predictions = __import__("pandas").read_csv(run_dir / "predictions.csv")
    assert {"resnet50", "vgg16", "unet"} == set(predictions["model"])
    expected = "paper" if profile == "full" else "validated"
    assert set(predictions["protocol"]) == {expected}
    main = predictions[(predictions["scheme"] == "patient") & (predictions["control"] == "none")]
    assert main[["entropy", "mutual_information", "margin"]].notna().all().all()  # chapter 8's
    assert main["p_calibrated"].isna().all() == (profile == "full")  # no inner validation there
    check_prose(run_dir, CHAPTERS, "PHANTOM")


@pytest.mark.slow
def test_a_real_run_reads_as_real_in_every_chapter(tmp_path):
    """The real 20-patient sample at toy scale: every chapter's prose, the run card's
    sentences and the closing verdicts carry no phantom wording."""
    if not (REAL_SAMPLE / "kaggle_3m").is_dir():
        pytest.skip(f"real LGG sample not found at {REAL_SAMPLE}")
    run_dir = study.run_study("sample", {**REAL_TOY, "run_dir": str(tmp_path / "real")},
                              only=CHAPTERS)
    assert set(pd.read_csv(run_dir / "manifest.csv")["dataset"]) == {"real"}
    check_prose(run_dir, CHAPTERS, "REAL")


@pytest.mark.slow
def test_a_holdout_run_trains_on_one_folder_and_tests_on_another(phantom_kaggle_3m, tmp_path):
    """evaluation='holdout': every model trains on all patients of one folder and every
    chapter reports on the patients of another, as one fold."""
    train, test = tmp_path / "train" / "kaggle_3m", tmp_path / "test" / "kaggle_3m"
    shutil.copytree(phantom_kaggle_3m, train)
    test.mkdir(parents=True)
    shutil.copy(train / "README.md", test / "README.md")
    held_out = sorted(p for p in train.iterdir() if p.is_dir())[:3]
    for patient in held_out:
        shutil.move(patient, test / patient.name)
    run_dir = study.run_study("default", {**TOY, "data_source": str(train), "n_folds": 2,
                                          "test_data_source": str(test),
                                          "evaluation": "holdout",
                                          "run_dir": str(tmp_path / "holdout")},
                              only=CHAPTERS)
    for chapter in CHAPTERS:
        executed = json.loads((run_dir / f"{chapter}.ipynb").read_text())
        assert not [o for c in executed["cells"] for o in c.get("outputs", [])
                    if o.get("output_type") == "error"], chapter
    predictions = pd.read_csv(run_dir / "predictions.csv")
    assert set(predictions["patient_id"]) == {p.name for p in held_out}
    assert set(predictions["fold"]) == {0} and set(predictions["scheme"]) == {"patient"}
    assert {"resnet50", "vgg16", "unet"} == set(predictions["model"])
    text = chapter_text(json.loads((run_dir / "05_evaluation.ipynb").read_text()))
    assert "tested once on the 3 patients of" in text


"""Every profile's code path, and every documented edge value, gives a complete study at
toy scale (tiny phantom, one epoch): no profile reaches a user untried."""
import json

import pytest

from brainlib import study

TOY = {"data_source": "phantom", "phantom_patients": 8, "n_folds": 3, "image_size": 64,
       "epochs": 1, "weights": "none", "unet_image_size": 32, "unet_widths": "4,8",
       "unet_epochs": 1}
CHAPTERS = ["04_training", "05_evaluation", "06_statistics", "07_segmentation"]


@pytest.mark.slow
@pytest.mark.parametrize("profile, edge", [
    # the paper's path: augmentation (end to end), the paper's protocol; one fold only, so
    # the two splits score different slices
    ("full", {"folds_to_run": "0"}),
    # the sample's path: a bfloat16 U-Net; and no leakage experiment
    ("sample", {"leakage_experiment": False}),
    ("default", {}),
], ids=["full-one-fold", "sample-no-leakage", "default"])
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

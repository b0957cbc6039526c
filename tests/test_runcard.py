"""The run card says what a run can and cannot test, computed from its parameters and
manifest: PHANTOM or REAL, random or pretrained bases, and whether it repeats the paper's
setting, which it claims only when every setting matches."""
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from brainlib.config import params as schema
from brainlib.chapters import runcard
from brainlib.chapters.runcard import (
    PAPER_SETTING,
    RANDOM_WEIGHTS,
    UNSTATED_BY_PAPER,
    run_card,
)

PHANTOM_SENTENCE = "These are PHANTOM results"
REAL_SENTENCE = "These are REAL LGG MRI slices"
RANDOM_SENTENCE = "This run uses randomly initialised bases: it cannot test the paper's"
IMAGENET_SENTENCE = "This run uses frozen ImageNet bases"
REPEATS = "repeats the paper's setting"
INSTITUTIONS = ("CS", "DU", "HT", "FG")


def make_manifest(n_patients: int, n_slices: int, dataset: str, n_tumor: int,
                  n_institutions: int = 3) -> pd.DataFrame:
    """One row per slice, slices dealt to patients as evenly as possible, the first
    `n_tumor` slices of the table labelled tumor."""
    patient_index = np.arange(n_slices) % n_patients
    institution = [INSTITUTIONS[p % n_institutions] for p in patient_index]
    return pd.DataFrame({
        "dataset": dataset,
        "patient_id": [f"TCGA_{i}_{p:04d}_19990101" for i, p in zip(institution, patient_index)],
        "institution": institution,
        "label": (np.arange(n_slices) < n_tumor).astype(int),
    })


def full_lgg(dataset: str = "real") -> pd.DataFrame:
    """A manifest the size of the paper's dataset (110 patients, 3929 slices, 1373 tumor)."""
    return make_manifest(110, 3929, dataset, 1373, n_institutions=4)


def resolve(profile: str, **overrides) -> schema.Params:
    return schema.resolve(profile, {"run_dir": "/tmp/runcard-test", **overrides})


# ----------------------------------------------------------------------------- counts


@pytest.mark.parametrize("n_patients, n_slices, n_tumor, n_institutions", [
    (20, 97, 31, 3), (7, 40, 0, 1), (110, 3929, 1373, 4)])
def test_counts_come_from_the_manifest(n_patients, n_slices, n_tumor, n_institutions):
    manifest = make_manifest(n_patients, n_slices, "real", n_tumor, n_institutions)
    card = run_card(resolve("sample"), manifest)
    assert (card.n_patients, card.n_slices, card.n_tumor_slices) == (n_patients, n_slices,
                                                                      n_tumor)
    assert card.institutions == tuple(sorted(INSTITUTIONS[:n_institutions]))
    table = dict(card.to_frame().itertuples(index=False))
    assert table["patients"] == str(n_patients) and table["slices"] == str(n_slices)
    assert table["tumor slices"].startswith(f"{n_tumor} (")
    assert f"{n_patients} patients from {n_institutions} institution(s)" in card.can_test()[0]


def test_tumor_slices_count_label_one_only():
    manifest = make_manifest(4, 10, "phantom", 3)
    manifest.loc[9, "label"] = 2     # not a tumor label: must not count
    assert run_card(resolve("default"), manifest).n_tumor_slices == 3


def test_settings_come_from_the_parameters():
    card = run_card(resolve("sample", seed=7, folds_to_run="1,3", weights="/w/vgg_notop.h5"),
                    make_manifest(20, 60, "real", 20))
    assert (card.profile, card.image_size, card.n_folds, card.epochs) == ("sample", 128, 5, 15)
    assert card.folds_run == (1, 3) and not card.all_folds_run
    assert card.seed == 7 and card.weights == "file vgg_notop.h5"
    assert card.unet_widths == (16, 32, 64, 128) and card.unet_epochs == 45
    assert card.protocol.startswith("validated:") and card.protocol_name == "validated"
    assert card.data_source == "../shared/data/lgg-sample"


# ----------------------------------------------------------------------------- wording


@pytest.mark.parametrize("profile", ["default", "sample", "full"])
@pytest.mark.parametrize("dataset", ["phantom", "real"])
def test_phantom_and_real_wording_never_mix(profile, dataset):
    card = run_card(resolve(profile), make_manifest(12, 50, dataset, 15))
    text = card.markdown()
    assert card.dataset == dataset.upper()
    if dataset == "phantom":
        assert PHANTOM_SENTENCE in text and REAL_SENTENCE not in text
    else:
        assert REAL_SENTENCE in text and PHANTOM_SENTENCE not in text


@pytest.mark.parametrize("weights, words, transfer", [
    ("none", RANDOM_WEIGHTS, False),
    ("imagenet", "ImageNet", True),
    ("/somewhere/resnet50_notop.h5", "file resnet50_notop.h5", True),
])
def test_random_and_pretrained_wording(weights, words, transfer):
    card = run_card(resolve("sample", weights=weights), make_manifest(20, 80, "real", 30))
    sentences = " ".join(card.can_test())
    assert card.weights == words and card.is_transfer_learning is transfer
    assert (RANDOM_SENTENCE in sentences) is (weights == "none")
    assert (IMAGENET_SENTENCE in sentences) is (weights == "imagenet")
    if weights.endswith(".h5"):
        assert "cannot check that they are the paper's ImageNet weights" in sentences


def test_imagenet_on_phantom_does_not_bear_on_the_claim():
    card = run_card(resolve("full"), full_lgg("phantom"))
    sentences = " ".join(card.can_test())
    assert "on PHANTOM data it checks the transfer-learning pipeline, not the paper's claim" \
        in sentences
    assert "bears on the paper's" not in sentences


def test_one_model_cannot_compare_architectures():
    card = run_card(resolve("sample", models="vgg16"), make_manifest(20, 80, "real", 30))
    assert "Only VGG16 is trained: this run cannot compare" in " ".join(card.can_test())
    both = run_card(resolve("sample"), make_manifest(20, 80, "real", 30))
    assert "cannot compare the two architectures" not in " ".join(both.can_test())


# ----------------------------------------------------------------------------- the paper's setting


def test_the_full_profile_on_the_whole_real_dataset_repeats_the_papers_setting():
    card = run_card(resolve("full"), full_lgg())
    assert card.reproduces_paper_setting is True and card.paper_differences() == []
    assert card.intro_claim().startswith("This run repeats the paper's setting")
    assert "evaluated on patient folds" in card.intro_claim()
    assert card.intro_claim() in card.can_test()
    assert dict(card.to_frame().itertuples(index=False))["repeats the paper's setting"] == "yes"


def test_the_full_profile_holds_the_papers_values():
    """PAPER_SETTING and UNSTATED_BY_PAPER are what the `full` profile sets: if one drifts,
    the card's claim would no longer describe the profile named for the paper."""
    full = resolve("full")
    assert full.weights == "imagenet" and PAPER_SETTING["weights"] == "ImageNet"
    assert set(full.model_names) == set(PAPER_SETTING["models"])
    for name in ("image_size", "n_folds", "epochs", "augment", "standardize_features"):
        assert full[name] == PAPER_SETTING[name], name
    for name, value in UNSTATED_BY_PAPER.items():
        assert full[name] == value, name


# One setting changed from the full profile on the whole real dataset, and a word the clause
# that names it must contain.
ONE_DIFFERENCE = {
    "random weights": ({"weights": "none"}, None, "randomly initialised"),
    "weights file": ({"weights": "/w/resnet50_notop.h5"}, None, "resnet50_notop.h5"),
    "smaller input": ({"image_size": 128}, None, "128x128 inputs"),
    "larger input": ({"image_size": 512}, None, "512x512 inputs"),
    "fewer folds": ({"n_folds": 5}, None, "5 folds instead of 8"),
    "some folds": ({"folds_to_run": "0,2"}, None, "only fold(s) 0, 2 of 8"),
    "fewer epochs": ({"epochs": 19}, None, "19 epochs instead of 20"),
    "no augmentation": ({"augment": False}, None, "no augmentation"),
    "learning rate": ({"learning_rate": 1e-3}, None, "learning rate 0.001"),
    "validated protocol": ({"protocol": "validated"}, None, "inner validation patients"),
    "standardised features": ({"standardize_features": True}, None, "standardised"),
    "one model": ({"models": "resnet50"}, None, "only ResNet50"),
    "phantom data": ({}, full_lgg("phantom"), "PHANTOM data"),
    "20 real patients": ({}, make_manifest(20, 700, "real", 250), "20 patients and 700 slices"),
    "fewer real slices": ({}, make_manifest(110, 3900, "real", 1373), "3900 slices"),
}


@pytest.mark.parametrize("case", list(ONE_DIFFERENCE))
def test_any_one_difference_stops_the_claim_and_is_named(case):
    overrides, manifest, words = ONE_DIFFERENCE[case]
    card = run_card(resolve("full", **overrides), full_lgg() if manifest is None else manifest)
    assert card.reproduces_paper_setting is False
    differences = card.paper_differences()
    assert len(differences) == 1 and words in differences[0]
    assert REPEATS not in card.intro_claim() and differences[0] in card.intro_claim()
    assert all(REPEATS not in sentence for sentence in card.can_test())
    assert dict(card.to_frame().itertuples(index=False))["repeats the paper's setting"] == "no"


@pytest.mark.parametrize("profile", ["default", "sample"])
@pytest.mark.parametrize("dataset", ["phantom", "real"])
def test_the_small_profiles_never_claim_to_repeat_the_paper(profile, dataset):
    card = run_card(resolve(profile), full_lgg(dataset))
    assert not card.reproduces_paper_setting
    assert REPEATS not in card.intro_claim() and REPEATS not in " ".join(card.can_test())
    assert card.intro_claim().startswith("This run does not repeat the paper's setting")
    assert f"{card.image_size}x{card.image_size} inputs instead of 256x256" in card.intro_claim()
    assert "no augmentation" in card.intro_claim()


# ----------------------------------------------------------------------------- display


def test_to_frame_and_markdown_show_every_setting_and_sentence():
    card = run_card(resolve("sample"), make_manifest(20, 80, "real", 30))
    frame = card.to_frame()
    assert list(frame.columns) == ["setting", "value"]
    assert frame["setting"].is_unique and frame["setting"].iloc[0] == "profile"
    text = card.markdown()
    assert text.startswith("**Run card: profile sample, REAL data**")
    for setting, value in frame.itertuples(index=False):
        assert f"| {setting} | {value} |" in text
    for sentence in card.can_test():
        assert f"- {sentence}" in text
    assert card.summary().splitlines()[0] == card.title()


def test_a_pipe_in_a_value_does_not_break_the_markdown_table():
    card = run_card(resolve("sample", data_source="/data/a|b"), make_manifest(4, 8, "real", 2))
    assert "| data source | /data/a\\|b |" in card.markdown()


@pytest.mark.parametrize("change, message", [
    (lambda m: m.drop(columns="institution"), "lacks column"),
    (lambda m: m.assign(dataset=["phantom"] * 5 + ["real"] * 5), "found \\['phantom', 'real'\\]"),
    (lambda m: m.assign(dataset="synthetic"), "found \\['synthetic'\\]"),
    (lambda m: m.iloc[:0], "no slices"),
])
def test_a_malformed_manifest_fails_saying_what_was_expected(change, message):
    with pytest.raises(ValueError, match=message):
        run_card(resolve("default"), change(make_manifest(4, 10, "phantom", 3)))


def test_the_module_does_not_import_tensorflow():
    code = "import sys, brainlib.chapters.runcard; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_module_docstring_names_a_source_for_every_paper_value():
    doc = runcard.__doc__
    for name in PAPER_SETTING:
        assert name in doc, name
    assert "no learning rate" in doc


@pytest.mark.parametrize("dataset", ["phantom", "real"])
def test_the_books_run_page_says_what_the_run_is(tmp_path, dataset):
    """`book.write_run_page` renders the run card of a run folder: phantom wording only for
    a phantom run, real wording only for a real one, and no reproduction claim."""
    import json

    from brainlib.study import book
    from brainlib.config import params

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    resolved = params.resolve("sample" if dataset == "real" else "default",
                              {"run_dir": str(run_dir)})
    (run_dir / "params.json").write_text(json.dumps(resolved))
    manifest = pd.DataFrame({"patient_id": ["P1", "P1", "P2", "P3"], "label": [1, 0, 0, 1],
                             "institution": ["CS", "CS", "DU", "HT"], "dataset": dataset,
                             "slice_number": [1, 2, 1, 1]})
    manifest.to_csv(run_dir / "manifest.csv", index=False)
    text = book.write_run_page(run_dir, tmp_path / "run.md").read_text()
    assert ("PHANTOM results" in text) == (dataset == "phantom")
    assert ("REAL LGG MRI slices" in text) == (dataset == "real")
    assert "randomly initialised bases" in text and "repeats the paper's setting (" not in text
    assert "3 patients" in text or "| 3 |" in text


def test_the_card_says_when_augmentation_comes_from_a_feature_bank():
    banked = run_card(resolve("full"), full_lgg()).markdown()
    assert f"yes, from a bank of {schema.SCHEMA['bank_views'].default} views per image" in banked
    on_the_fly = run_card(resolve("full", bank_views=0), full_lgg()).markdown()
    assert "yes, from a bank" not in on_the_fly
    assert "from a bank" not in run_card(resolve("default"), full_lgg("phantom")).markdown()
    assert "bfloat16 where the hardware has it" in banked  # the full profile's base_precision


RECORD = {"cpu_model": "Example CPU (family 1, model 2)", "cpu_cores": 8, "onednn_isa": "Intel AVX2",
          "onednn_max_cpu_isa": "AVX2", "onednn_enabled": True, "threads": 8, "python": "3.11.7",
          "tensorflow": "2.21.0", "keras": "3.15.1", "numpy": "2.4.6", "gpus": [],
          "platform": "Linux x86_64"}


def test_the_card_lists_the_machine_it_ran_on():
    card = run_card(resolve("default"), full_lgg("phantom"), RECORD)
    rows = dict(card.to_frame().itertuples(index=False))
    assert rows["CPU"] == "Example CPU (family 1, model 2) (8 cores)"
    assert rows["oneDNN instruction set"] == "Intel AVX2 (capped: ONEDNN_MAX_CPU_ISA=AVX2)"
    assert rows["threads"] == "8" and rows["GPU"] == "none"
    assert rows["TensorFlow / Keras / NumPy"] == "2.21.0 / 3.15.1 / 2.4.6"
    assert "bit for bit" in card.markdown()
    assert "CPU" not in dict(run_card(resolve("default"), full_lgg("phantom"))
                             .to_frame().itertuples(index=False))


@pytest.mark.parametrize("profile", ["default", "sample"])
def test_the_run_page_names_the_machines_that_trained_and_the_measured_spread(tmp_path, profile):
    import json

    from brainlib.study import book
    from brainlib.data import machine
    from brainlib.config import params

    run_dir = tmp_path / "run"
    unit = run_dir / "units" / "vgg16-0123456789" / "patient-none-fold0"
    unit.mkdir(parents=True)
    (unit / "machine.json").write_text(json.dumps(RECORD))
    (run_dir / "params.json").write_text(json.dumps(params.resolve(profile, {"run_dir": str(run_dir)})))
    full_lgg("phantom" if profile == "default" else "real").to_csv(run_dir / "manifest.csv",
                                                                   index=False)
    text = book.write_run_page(run_dir, tmp_path / "run.md").read_text()
    assert "## Where these numbers reproduce" in text
    assert f"- {machine.in_words(RECORD)} (1 units)" in text
    spread = machine.measured_spread()
    tolerance = spread["tolerance"]["resnet50"]["accuracy"]
    assert f"| ResNet50 | accuracy | {spread['measured']['resnet50']['accuracy']['seed_sd']:.3f} |" in text
    assert f"±{tolerance:.3f}" in text
    assert ("whose spread was not measured" in text) == (profile != "default")


@pytest.mark.parametrize("profile, weights, dataset, testable", [
    ("sample", "none", "real", False), ("sample", "imagenet", "real", True),
    ("default", "imagenet", "phantom", False)])
def test_the_card_says_whether_the_run_can_test_the_papers_claim(profile, weights, dataset,
                                                                 testable):
    card = run_card(resolve(profile, weights=weights), make_manifest(20, 80, dataset, 30))
    assert card.can_test_paper_claim == testable
    line = card.can_test_line()
    assert line.startswith("What this run can test: ")
    assert ("cannot test the paper's ImageNet claim" in line) == (not testable)
    assert ("randomly initialised bases (no ImageNet)" in line) == (weights == "none")


# ----------------------------------------------------------------------------- who was tested

def test_a_holdout_card_says_where_its_test_patients_come_from_and_what_was_looked_at():
    looked_at = sorted(runcard.looked_at_patients())
    assert len(looked_at) == 30 and all(p.startswith("TCGA_") for p in looked_at)
    training = make_manifest(12, 60, "real", 20, n_institutions=2).assign(source="train")
    test = pd.DataFrame({"dataset": "real", "patient_id": [looked_at[0], "TCGA_FG_9999_20000101",
                                                             "TCGA_CS_9998_20000101"],
                         "institution": ["CS", "FG", "CS"], "label": [1, 0, 1],
                         "source": "test"})
    params = resolve("sample", evaluation="holdout", test_data_source="/data/new")
    card = run_card(params, pd.concat([training, test], ignore_index=True))
    table = dict(card.to_frame().itertuples(index=False))
    assert table["test patients"] == "3"
    assert table["test patients' institutions"] == ("CS 2, FG 1; not among the training "
                                                    "patients: FG")
    assert table["test patients looked at when choosing settings"].startswith("1 of 3: 1 as ")
    text = " ".join(card.can_test())
    assert "Test institution(s) FG appear in no training patient" in text
    assert ("1 of its 3 test patients had their results looked at while a setting was chosen "
            "(1 as the 20-patient real sample's test folds") in text
    # test patients of training sites only, none looked at: said as such
    same_sites = test.assign(patient_id=[f"TCGA_CS_99{i}_20000101" for i in range(3)],
                             institution="CS")
    card = run_card(params, pd.concat([training, same_sites], ignore_index=True))
    text = " ".join(card.can_test())
    assert "it is not external validation" in text
    assert "None of its test patients is among those" in text
    assert dict(card.to_frame().itertuples(index=False))[
        "test patients' institutions"] == "CS 3; all also among the training patients"


def test_a_cross_validation_counts_every_patient_as_tested():
    looked_at = sorted(runcard.looked_at_patients())
    manifest = make_manifest(20, 80, "real", 30)
    manifest["patient_id"] = manifest["patient_id"].map(
        dict(zip(sorted(manifest["patient_id"].unique()), looked_at)))
    card = run_card(resolve("sample"), manifest)
    assert (card.n_test_patients, card.looked_at_test_patients) == (20, 20)
    # counted group by group (the groups do not overlap), with each group's reason
    assert sum(n for _, n in card.looked_at_by_reason) == 20
    assert dict(card.to_frame().itertuples(index=False))[
        "test patients looked at when choosing settings"].startswith("20 of 20: ")
    phantom = run_card(resolve("default"), make_manifest(6, 30, "phantom", 10))
    assert dict(phantom.to_frame().itertuples(index=False))[
        "test patients looked at when choosing settings"] == "none (PHANTOM patients)"


def test_the_first_chapter_of_an_auto_precision_run_times_the_probe_every_card_shows(
        tmp_path, monkeypatch):
    """`notebook.open_run` (every chapter's first cell) times the probe once, kept in the run
    folder, and every card reads it back; a run without `auto` neither times nor shows it."""
    from brainlib.study import notebook
    from brainlib.training.experiment import PRECISION_PROBE_FILE

    manifest = make_manifest(20, 97, "real", 31, 3)
    monkeypatch.setattr(notebook, "show_run_card", lambda *args: None)
    monkeypatch.setattr("brainlib.training.experiment.prepare_manifest", lambda p: manifest)
    shown = {}
    for name, profile in (("auto", "sample"), ("fixed", "default")):
        run = schema.resolve(profile, {"run_dir": str(tmp_path / name)})
        monkeypatch.setattr(notebook, "start", lambda namespace, run=run: run)
        notebook.open_run({})
        shown[name] = dict(run_card(run, manifest).to_frame().itertuples(index=False))
    kept = tmp_path / "auto" / PRECISION_PROBE_FILE
    assert kept.exists() and not (tmp_path / "fixed" / PRECISION_PROBE_FILE).exists()
    assert shown["auto"]["bfloat16 probe (decides 'auto')"].endswith(
        f"{json.loads(kept.read_text())['chosen']} chosen")
    assert "bfloat16 probe (decides 'auto')" not in shown["fixed"]

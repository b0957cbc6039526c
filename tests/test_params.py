"""One parameter schema: profiles override it, and the command line, papermill and notebooks
all fail the same way on an unknown name, a wrong type or an out-of-range value."""
import jupytext
import papermill
import pytest

from brainlib.config import params
from brainlib import study

ROOT = study.REPO_ROOT


def test_every_profile_resolves_to_typed_values_of_the_schema():
    for name in params.profiles():
        resolved = params.resolve(name)
        assert set(resolved) == set(params.SCHEMA) | {"profile"}
        for key, parameter in params.SCHEMA.items():
            assert isinstance(resolved[key], parameter.kind), (name, key)
    assert params.resolve("full").protocol == "paper"
    assert params.resolve("default").run_dir == str(params.default_run_root() / "default")


def test_the_run_root_is_the_checkouts_runs_unless_the_environment_names_one(monkeypatch, tmp_path):
    monkeypatch.delenv(params.RUN_ROOT_ENV_VAR, raising=False)
    assert params.resolve("default").run_dir == str(params.REPO_ROOT / "runs" / "default")
    monkeypatch.setenv(params.RUN_ROOT_ENV_VAR, str(tmp_path))
    assert params.resolve("default").run_dir == str(tmp_path / "default")


def test_a_cli_value_for_a_key_the_profile_does_not_set_gets_the_schemas_type():
    """Found in the full profile: `-p phantom_patients=16` stayed a string and crashed."""
    resolved = params.resolve("full", params.parse_pairs(["data_source=phantom",
                                                          "phantom_patients=16"]))
    assert resolved.phantom_patients == 16 and isinstance(resolved.phantom_patients, int)


@pytest.mark.parametrize("pair, message", [
    ("epoch=3", "unknown parameter 'epoch'; did you mean 'epochs'"),
    ("sed=1", "unknown parameter 'sed'; did you mean 'seed'"),
    ("epochs=two", "epochs expects int, got 'two'"),
    ("epochs=-3", r"epochs=-3 is out of range: expected int in \[1, 1000\]"),
    ("augment=maybe", "augment expects true/false"),
    ("protocol=best", "expected one of validated, paper"),
    ("models=resnet50,alexnet", "a comma-separated list of resnet50, vgg16"),
    ("folds_to_run=7", r"folds \[7\] are outside 0..3"),
    ("test_fraction=1.5", "out of range"),
    ("repeat_seeds=1,x", "expected comma-separated whole numbers"),
])
def test_bad_cli_parameters_fail_before_anything_runs(pair, message, tmp_path, capsys):
    code = study.study_main(["-p", pair, "-p", f"run_dir={tmp_path}"])
    assert code == 2
    assert __import__("re").search(message, capsys.readouterr().err)
    assert not any(tmp_path.iterdir())  # nothing written


def test_study_help_lists_every_parameter(capsys):
    with pytest.raises(SystemExit):
        study.study_main(["--help"])
    text = capsys.readouterr().out
    for name, parameter in params.SCHEMA.items():
        assert name in text and parameter.help[:30] in text


def test_notebook_namespace_is_checked_against_the_schema(monkeypatch):
    monkeypatch.delenv(params.DATA_ENV_VAR, raising=False)
    import numpy

    namespace = {"profile": "auto", "overrides": {"epochs": 2}, "np": numpy, "print": print,
                 "_": None, "In": [], "seed": 3}
    resolved = params.notebook_parameters(namespace)
    assert (resolved.profile, resolved.epochs, resolved.seed) == ("default", 2, 3)
    with pytest.raises(params.ParameterError, match="did you mean 'epochs'"):
        params.notebook_parameters({**namespace, "epoch": 2})
    with pytest.raises(params.ParameterError, match="expects int"):
        params.notebook_parameters({**namespace, "overrides": {"epochs": "2.5"}})


def test_auto_profile_follows_brainlib_data(monkeypatch, tmp_path):
    monkeypatch.setenv(params.DATA_ENV_VAR, str(tmp_path))
    resolved = params.resolve("auto")
    assert resolved.profile == "lgg" and resolved.data_source == str(tmp_path)
    monkeypatch.delenv(params.DATA_ENV_VAR)
    assert params.resolve("auto").profile == "default"


@pytest.mark.parametrize("gpu, profile", [(True, "full"), (False, "lgg")])
def test_auto_profile_on_colab_picks_full_with_a_gpu_and_lgg_without(monkeypatch, gpu,
                                                                    profile):
    import sys
    import types

    monkeypatch.delenv(params.DATA_ENV_VAR, raising=False)
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.setattr(params, "_has_gpu", lambda: gpu)
    assert params.resolve("auto").profile == profile


@pytest.mark.parametrize("injected, message", [
    ({"sed": 1}, "unknown parameter 'sed'; did you mean 'seed'"),
    ({"overrides": {"epochs": -3}}, "out of range"),
    ({"epochs": "two"}, "epochs expects int"),
])
def test_papermill_parameters_are_checked_by_the_notebook(injected, message, tmp_path):
    """papermill only warns about a name the notebook does not declare; the notebook's
    first call fails on it, naming the closest valid one."""
    source = tmp_path / "02_data.ipynb"
    jupytext.write(jupytext.read(ROOT / "notebooks" / "02_data.py"), source)
    with pytest.raises(papermill.PapermillExecutionError, match=message):
        papermill.execute_notebook(str(source), str(tmp_path / "out.ipynb"), parameters=injected,
                                   kernel_name="python3", progress_bar=False, cwd=str(tmp_path))


def test_study_refuses_bfloat16_where_it_cannot_run(monkeypatch):
    """Where a bfloat16 convolution fails (oneDNN capped below bfloat16), `auto` computes
    the frozen base in float32 and an explicit bfloat16 setting is refused, naming the
    setting to change; nothing falls back silently."""
    from brainlib.data import machine
    from brainlib import study

    monkeypatch.setattr(machine, "bfloat16_convolution_works", lambda: False)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    machine.bfloat16_probe.cache_clear()
    assert study.base_precision("auto") == "float32"
    assert study.base_precision("float32") == "float32"
    with pytest.raises(params.ParameterError,
                       match=r"base_precision=bfloat16 asks for bfloat16.*ONEDNN_MAX_CPU_ISA=AVX2"
                             r".*-p base_precision=float32"):
        study.base_precision("bfloat16")
    machine.bfloat16_probe.cache_clear()
    asked = params.resolve("sample", {"unet_precision": "mixed_bfloat16"})
    with pytest.raises(params.ParameterError, match=r"-p unet_precision=float32"):
        study.segmentation_config(asked)
    assert study.segmentation_config(params.resolve("sample")).precision == "float32"
    assert study.segmentation_config(params.resolve("sample", {"unet_precision": "float32"}))



def test_auto_precision_follows_the_probe_and_keeps_its_choice_in_the_run(monkeypatch,
                                                                         tmp_path):
    """`auto` is decided by timing bfloat16 against float32 here, not by CPU flags; the
    measurement is kept in the run folder, so a resumed run chooses as it first did, and the
    run card shows it."""
    import pandas as pd

    from brainlib import study
    from brainlib.chapters import runcard
    from brainlib.data import machine

    # unet_slice_visits=0: the U-Net's epochs are then the profile's, needing no manifest
    run = params.resolve("lgg", {"run_dir": str(tmp_path / "run"), "unet_slice_visits": 0})
    faster = {"shape": "16x128x128x32->64", "float32_ms": 90.0, "bfloat16_ms": 60.0,
              "speedup": 1.5, "chosen": "bfloat16", "why": "bfloat16 ran 1.50x as fast"}
    slower = {**faster, "bfloat16_ms": 135.0, "speedup": 0.667, "chosen": "float32",
              "why": "bfloat16 ran 0.67x as fast"}
    monkeypatch.setattr(machine, "bfloat16_probe", lambda: faster)
    assert study.segmentation_config(run).precision == "mixed_bfloat16"
    monkeypatch.setattr(machine, "bfloat16_probe", lambda: slower)
    assert study.base_precision("auto", run.run_dir) == "bfloat16"  # the run's first probe
    assert study.base_precision("auto", tmp_path / "other") == "float32"
    assert study.segmentation_config(params.resolve("lgg", {"run_dir": str(tmp_path / "other"),
                                                            "unet_slice_visits": 0})
                                     ).precision == "float32"
    manifest = pd.DataFrame({"patient_id": ["a", "b"], "label": [0, 1],
                             "institution": ["CS", "CS"], "dataset": ["real", "real"]})
    card = runcard.run_card(run, manifest).to_frame().set_index("setting")["value"]
    assert card["bfloat16 probe (decides 'auto')"] == (
        "16x128x128x32->64 convolution: 90 ms float32, 60 ms bfloat16; "
        "bfloat16 ran 1.50x as fast: bfloat16 chosen")


def test_bfloat16_is_never_chosen_where_the_hardware_has_none(monkeypatch):
    """The probe's one rule covers both `auto`s (a run's and `classifier.resolve_precision`):
    however fast bfloat16 times, no bfloat16 arithmetic means float32, and the reason."""
    from brainlib.data import machine
    from brainlib.training import classifier

    monkeypatch.setattr(machine, "has_bfloat16", lambda: False)
    monkeypatch.setattr(machine, "BFLOAT16_MIN_SPEEDUP", 0.0)  # any timing is "faster"
    machine.bfloat16_probe.cache_clear()
    try:
        probe = machine.bfloat16_probe()
        assert classifier.resolve_precision("auto") == "float32" == probe["chosen"]
        if "speedup" in probe:
            assert probe["why"].endswith("but this CPU or GPU has no bfloat16 arithmetic")
    finally:
        machine.bfloat16_probe.cache_clear()


def test_the_bfloat16_probe_times_both_precisions_here():
    from brainlib.data import machine

    probe = machine.bfloat16_probe()
    assert probe["chosen"] in ("float32", "bfloat16") and probe["why"]
    if "speedup" in probe:
        assert probe["speedup"] == pytest.approx(probe["float32_ms"] / probe["bfloat16_ms"],
                                                 rel=0.01)
        assert (probe["chosen"] == "bfloat16") == (probe["speedup"]
                                                   >= machine.BFLOAT16_MIN_SPEEDUP)

def test_unet_slice_visits_set_the_epochs_from_the_runs_pool(tmp_path):
    """`unet_slice_visits` trains the U-Net about as long on 60 patients as on 110: the
    epochs are the count whose visits over a unit's fit slices come closest to it, read from
    the run's manifest (a hold-out's test slices left out). Asking for epochs on a profile
    that sets visits is refused, saying how to do it."""
    import pandas as pd

    from brainlib import study
    from brainlib.chapters import runcard

    lgg = params.resolve("lgg", {"run_dir": str(tmp_path / "run")})
    assert lgg.unet_slice_visits > 0
    # the Kaggle set (3,929 slices, 1,373 with tumor) and lgg-dev60 (2,076, 722): 5 folds,
    # 15% inner validation, one tumor-free slice per tumor slice each epoch
    for slices, tumor in ((3929, 1373), (2076, 722), (300, 40)):
        epochs = lgg.unet_epochs_for(slices, tumor)
        per_epoch = 2 * tumor * (1 - 1 / 5) * (1 - 0.15)
        assert abs(epochs * per_epoch - lgg.unet_slice_visits) <= per_epoch / 2
    assert lgg.unet_epochs_for(3929, 1373) == 5 and lgg.unet_epochs_for(2076, 722) == 9
    every_slice = params.resolve("lgg", {"unet_tumor_free_ratio": 0.0})
    assert every_slice.unet_epochs_for(3929, 1373) == round(lgg.unet_slice_visits / (3929 * 0.8 * 0.85))
    assert params.resolve("lgg", {"unet_slice_visits": 0, "unet_epochs": 9}).unet_epochs_for(
        3929, 1373) == 9
    with pytest.raises(params.ParameterError, match=r"unet_epochs=8 would be ignored.*"
                                                    r"-p unet_slice_visits=0"):
        params.resolve("lgg", {"unet_epochs": 8})

    with pytest.raises(FileNotFoundError, match=r"manifest.csv does not exist yet"):
        study.segmentation_config(lgg)
    (tmp_path / "run").mkdir(exist_ok=True)
    manifest = pd.DataFrame({"patient_id": [f"p{i // 10}" for i in range(2076 + 500)],
                             "label": [1] * 722 + [0] * (2076 - 722) + [1] * 500,
                             "source": ["train"] * 2076 + ["test"] * 500,
                             "institution": "CS", "dataset": "real"})
    manifest.to_csv(tmp_path / "run" / "manifest.csv", index=False)
    assert study.segmentation_config(lgg).epochs == 9  # the 500 test slices left out
    card = runcard.run_card(lgg, manifest).to_frame().set_index("setting")["value"]
    assert card["U-Net epochs"] == ("9 (the count closest to 9,000 slice visits per unit "
                                    "on this run's slices)")


def test_unet_batch_size_reaches_the_segmenter_and_the_run_card(tmp_path):
    """The U-Net's batch is its own parameter (the classifiers' is `batch_size`): the
    segmenter trains with it and the run card shows both."""
    import pandas as pd

    from brainlib import study
    from brainlib.chapters import runcard

    default = params.resolve("default", {"run_dir": str(tmp_path / "a")})
    assert study.segmentation_config(default).batch_size == default.unet_batch_size == 16
    eight = params.resolve("default", {"run_dir": str(tmp_path / "b"), "unet_batch_size": 8,
                                       "batch_size": 64})
    assert study.segmentation_config(eight).batch_size == 8
    manifest = pd.DataFrame({"patient_id": ["a", "b"], "label": [0, 1],
                             "institution": ["CS", "CS"], "dataset": ["real", "real"]})
    card = runcard.run_card(eight, manifest).to_frame().set_index("setting")["value"]
    assert card["U-Net batch size"] == "8" and card["batch size (classifiers)"] == "64"
    with pytest.raises(params.ParameterError):
        params.resolve("default", {"unet_batch_size": 0})

"""The recording the notebooks' regression tests replay (notebooks/recorded) matches the
current settings, data and training code; when it does not, the failure says what moved."""
import json

import pytest

from brainlib.data import external, machine, recorded
from brainlib.config import params
from brainlib.training import runner
from brainlib import study


@pytest.fixture(scope="module")
def default_keys(tmp_path_factory):
    """Folder name -> key of every model folder the reference notebooks train or read
    under the default profile: the cross-validation's and the institution hold-out's."""
    resolved = params.resolve("default", {"run_dir": str(tmp_path_factory.mktemp("keys"))})
    manifest = study.prepare_manifest(resolved)
    manifests = {"cross-validation": manifest}
    if resolved.institution_holdout:
        manifests["institution hold-out"] = external.institution_folds(manifest)
    keys = {}
    for purpose, rows in manifests.items():
        for model in resolved.all_model_names:
            family = study.family(resolved, model)
            options = dict(seed=resolved.seed, validation_fraction=resolved.validation_fraction)
            folder = runner.model_dir("", family, resolved.protocol, rows, **options)
            keys[folder.name] = (purpose, model, {
                **runner.unit_key(family, resolved.protocol, rows, **options),
                "code_modules": runner.module_fingerprints()})
    return keys


def test_every_unit_the_references_need_is_recorded(default_keys):
    missing = [f"{purpose} {model} ({name}): " + recorded.what_moved(recorded.RECORDING, model, key)
               for name, (purpose, model, key) in default_keys.items()
               if not (recorded.RECORDING / "units" / name).is_dir()]
    assert not missing, "the recording does not match the code:\n" + "\n".join(missing)


def test_every_recorded_unit_says_which_machine_trained_it():
    machines = recorded.recorded_machines()
    units = list(recorded.RECORDING.glob(f"units/*/*/{recorded.SCORES}"))
    assert units and len(machines) == len(units)
    assert set(machine.ARITHMETIC_FIELDS) <= set(machines.columns)


def test_what_moved_names_the_setting_and_the_module(tmp_path):
    recording = tmp_path / "recorded"
    key = {"family": {"learning_rate": 0.001, "epochs": 8}, "seed": 0, "code": "aaa",
           "code_modules": {"scores": "111", "train": "222"}}
    folder = recording / "units" / "vgg16-0123456789"
    folder.mkdir(parents=True)
    (folder / recorded.KEY_FILE).write_text(json.dumps(key))
    now = {**key, "family": {"learning_rate": 0.002, "epochs": 8}, "code": "bbb",
           "code_modules": {"scores": "333", "train": "222"}}
    said = recorded.what_moved(recording, "vgg16", now)
    assert "family.learning_rate: 0.001 -> 0.002" in said
    assert "code_modules.scores: '111' -> '333'" in said
    assert "epochs" not in said and "train" not in said


def test_a_strict_replay_refuses_to_train_and_says_why(tmp_path):
    run_dir = recorded.replay_into(tmp_path / "run", tmp_path / "empty-recording")
    (tmp_path / "empty-recording" / "units").mkdir(parents=True)
    folder = run_dir / "units" / "unet-0123456789"
    recorded.write_key(folder, {"seed": 0})
    with pytest.raises(recorded.ReplayMiss, match="holds no unet units"):
        recorded.replay_unit(run_dir, folder, "patient-none-fold0", None)


def test_each_recorded_threshold_follows_the_threshold_rule():
    """A threshold is a pure function of the unit's inner-validation scores (recorded
    beside it): the rule applied to them now must give the recorded threshold exactly."""
    import pandas as pd

    from brainlib.training import scores

    resolved = params.resolve("default")
    defaults = {m: study.family(resolved, m).default_threshold for m in resolved.all_model_names}
    checked, moved = 0, []
    for path in sorted(recorded.RECORDING.glob("units/*/*/validation_scores.csv")):
        key = recorded.read_key(path.parent.parent)
        if key["protocol"] != "validated":
            continue
        model = path.parent.parent.name.rsplit("-", 1)[0]
        validation = pd.read_csv(path)
        chosen = scores.choose_threshold(validation["label"], validation["score"],
                                         default=defaults[model]).threshold
        then = json.loads((path.parent / "threshold.json").read_text())["threshold"]
        checked += 1
        if chosen != then:
            moved.append(f"{path.parent.parent.name}/{path.parent.name}: recorded {then!r}, "
                         f"the rule gives {chosen!r}")
    assert checked, "no recorded unit keeps its inner-validation scores"
    assert not moved, (f"the threshold rule (scores.choose_threshold) moved: {len(moved)} of "
                       f"{checked} recorded thresholds differ:\n" + "\n".join(moved[:10]))


@pytest.mark.slow
def test_a_recorded_run_replays_into_identical_predictions(phantom_kaggle_3m, tmp_path):
    """Record a trained run without its weights, replay it into a fresh run folder: the same
    predictions table, with this run's paths, and nothing trained."""
    import pandas as pd

    toy = {"data_source": str(phantom_kaggle_3m), "n_folds": 2, "folds_to_run": "0",
           "epochs": 1, "image_size": 64, "models": "vgg16", "leakage_experiment": False}
    trained_run = params.resolve("default", {**toy, "run_dir": str(tmp_path / "trained")})
    trained = study.run_models(trained_run, progress=False)
    recording = recorded.record_run(trained_run.run_dir, tmp_path / "recording")
    assert not list(recording.rglob("*.weights.h5")) and list(recording.rglob("scores.csv"))
    replayed_run = params.resolve("default", {**toy, "run_dir": str(tmp_path / "replayed")})
    recorded.replay_into(replayed_run.run_dir, recording, strict=True)
    replayed = study.run_models(replayed_run, progress=False)
    pd.testing.assert_frame_equal(replayed, trained)
    unit = study.model_folder(replayed_run, "vgg16") / "patient-none-fold0"
    assert not list(unit.glob("*.weights.h5"))  # read from the recording, not trained
    assert json.loads((unit / "machine.json").read_text())["cpu_model"] == machine.cpu_model()

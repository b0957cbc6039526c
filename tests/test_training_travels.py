"""Training reproduces: bit for bit on a machine whose arithmetic matches the recording's
(one fold per model),
within the measured spread (brainlib/data/training_spread.toml) on any other.

The notebooks' regression tests replay the recorded units (brainlib.data.recorded), so they
check everything after training exactly; this module retrains the default profile's main
experiment here and compares it with the recording."""
import pytest

from brainlib.data import machine, recorded
from brainlib.measures import metrics
from brainlib.config import params
from brainlib import study

SPREAD_FILE = machine.SPREAD_FILE
TOLERANCES = machine.measured_spread()["tolerance"]
MAIN_UNITS = "patient-none-"




BIT_FOR_BIT_FOLDS = "0"
"""On a machine with the recording's arithmetic one fold per model is retrained: a unit
depends on its own fold only (fold 0 trained alone equals fold 0 of the whole run, bit for
bit: measured 2026-12-03), so one fold shows reproducibility in a quarter of the time. On any
other machine every fold is retrained: the measured spread is a spread of pooled metrics."""


def _recorded_machines(folder_name: str) -> list[dict]:
    machines = recorded.recorded_machines()
    machines = machines[(machines["model_folder"] == folder_name)
                        & machines["unit"].str.startswith(MAIN_UNITS)]
    return machines.drop(columns=["model_folder", "unit"]).to_dict("records")


@pytest.fixture(scope="module")
def retrained(tmp_path_factory):
    """The default profile's main experiment (every model, patient folds, true labels)
    trained here in a fresh run folder, beside the recording of the same units."""
    run_dir = tmp_path_factory.mktemp("retrain") / "default"
    settings = {"run_dir": str(run_dir), "leakage_experiment": False,
                "institution_holdout": False}
    resolved = params.resolve("default", settings)
    study.prepare_manifest(resolved)
    here = machine.machine_record()
    machines = {model: _recorded_machines(study.model_folder(resolved, model).name)
                for model in resolved.all_model_names}
    same = all(machine.same_arithmetic(m, here) for found in machines.values() for m in found)
    trained_settings = (params.resolve("default", {**settings, "folds_to_run": BIT_FOR_BIT_FOLDS})
                        if same else resolved)
    trained = study.run_models(trained_settings, models=resolved.all_model_names,
                               progress=False)
    pairs = {}
    for model in resolved.all_model_names:
        folder = study.model_folder(resolved, model)
        recording = recorded.recorded_predictions(model_folder_prefix=folder.name,
                                                  unit_prefix=MAIN_UNITS)
        assert len(recording), (
            f"the recording {recorded.RECORDING} has no {model} units of the default profile "
            f"({folder.name}): the settings or training code moved since it was recorded "
            "(tests/test_recording.py says what); re-record with `make notebooks`")
        if same:
            recording = recording[recording["fold"].isin(trained_settings.folds)]
        pairs[model] = (trained[trained["model"] == model], recording, machines[model])
    return pairs, here


@pytest.mark.slow
@pytest.mark.parametrize("model", params.MODEL_CHOICES)
def test_retraining_scores_the_recorded_slices(retrained, model):
    """The splits are a pure function of the manifest and seed: the same slices, exactly."""
    pairs, _ = retrained
    here, recording = pairs[model][:2]
    keys = ["fold", "patient_id", "slice_number", "y_true"]
    assert here[keys].sort_values(keys).to_numpy().tolist() == \
        recording[keys].sort_values(keys).to_numpy().tolist(), f"{model}: the held-out slices moved"


@pytest.mark.slow
@pytest.mark.parametrize("model", params.MODEL_CHOICES)
def test_retraining_reproduces_the_recording(retrained, model):
    """Same arithmetic (CPU, oneDNN instruction set, threads, versions): bit for bit.
    Other arithmetic: pooled accuracy and AUC within the measured spread."""
    pairs, here_machine = retrained
    here, recording, recorded_machines = pairs[model]
    keys = ["fold", "patient_id", "slice_number"]
    here, recording = (t.sort_values(keys).reset_index(drop=True) for t in (here, recording))
    same = all(machine.same_arithmetic(m, here_machine) for m in recorded_machines)
    if same:
        moved = int((here["p_tumor"].to_numpy() != recording["p_tumor"].to_numpy()).sum())
        assert moved == 0, (
            f"{model}: trained on a machine with the recording's arithmetic "
            f"({machine.in_words(here_machine)}), yet {moved} of {len(here)} test "
            "probabilities differ from the recording: training is not reproducible bit for "
            "bit on one machine")
        return
    recorded_words = "; ".join(sorted({machine.in_words(m) for m in recorded_machines}))
    differences = sorted({d for m in recorded_machines
                          for d in machine.arithmetic_differences(m, here_machine)})
    for metric in ("accuracy", "auc"):
        now = metrics.metrics_table(here, by=("model",))[metric].iloc[0]
        then = metrics.metrics_table(recording, by=("model",))[metric].iloc[0]
        tolerance = TOLERANCES[model][metric]
        assert abs(now - then) <= tolerance, (
            f"{model} {metric} moved {now - then:+.4f} (recorded {then:.4f}, here {now:.4f}), "
            f"more than the measured spread allows (±{tolerance}, {SPREAD_FILE.name}). "
            f"Recorded on: {recorded_words}. Here: {machine.in_words(here_machine)}. "
            f"Arithmetic that differs: {', '.join(differences)}")


def test_the_tolerances_follow_their_rule_from_the_measurement():
    """Each tolerance is computed from the measurement written beside it, by the stated rule."""
    import numpy as np

    spread = machine.measured_spread()
    assert spread["measurement"]["rule"] == machine.SPREAD_RULE
    for model, by_metric in spread["measured"].items():
        for metric, values in by_metric.items():
            assert values["seed_sd"] == pytest.approx(np.std(values["seeds"], ddof=1), abs=1e-6)
            moves = [abs(v - values["recorded"]) for v in values["machines"].values()]
            assert values["largest_machine_move"] == pytest.approx(max(moves), abs=1e-6)
            assert spread["tolerance"][model][metric] == pytest.approx(
                machine.spread_tolerance(values["largest_machine_move"], values["seed_sd"]))

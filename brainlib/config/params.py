"""The study's parameters: one typed schema, the profiles that override it, and the checks.

Every study parameter is defined once here (name, type, default, allowed values, one line
of help). `profiles.toml` only overrides defaults; the command line (`-p key=value`),
papermill runs and notebooks opened on their own all read the same schema, so a misspelled
name, a wrong type or an out-of-range value fails the same way everywhere, naming the
closest valid name or the allowed range.
"""
from __future__ import annotations

import difflib
import hashlib
import json
import os
import sys
import tomllib
import types
from dataclasses import dataclass
from pathlib import Path

PROFILES = Path(__file__).with_name("profiles.toml")
REPO_ROOT = Path(__file__).resolve().parents[2]
DATA_ENV_VAR = "BRAINLIB_DATA"
RUN_ROOT_ENV_VAR = "BRAINLIB_RUN_ROOT"
CLASSIFIERS = ("resnet50", "vgg16")
SEGMENTER = "unet"
"""The one model that is not a classifier: the U-Net, trained on the masks."""
MODEL_CHOICES = (*CLASSIFIERS, SEGMENTER)
DISPLAY_NAMES = {"resnet50": "ResNet50", "vgg16": "VGG16", SEGMENTER: "U-Net"}
# Metrics whose table key is not how prose writes them.
METRIC_DISPLAY_NAMES = {"auc": "AUC"}
"""How the book writes each model's name."""
MAIN_SCHEME, MAIN_CONTROL = "patient", "none"
"""The main experiment: patient-grouped folds and true labels (the leakage experiment adds
the slice scheme and the shuffled-labels control)."""


def main_experiment(frame):
    """The rows of `frame` (predictions, thresholds, histories) from the main experiment;
    an absent `scheme` or `control` column is taken to mean the main experiment."""
    keep = [True] * len(frame)
    for column, main in (("scheme", MAIN_SCHEME), ("control", MAIN_CONTROL)):
        if column in frame.columns:
            keep = (frame[column] == main).to_numpy() & keep
    return frame[keep]


PROTOCOLS = ("validated", "paper")
EVALUATIONS = ("cv", "institution", "holdout")
HOLDOUT_FOLD = 0
"""Under evaluation='holdout' the test patients are fold 0, the training patients fold 1."""
NOTEBOOKS = REPO_ROOT / "notebooks"


def notebook_sources() -> list[Path]:
    """The study's notebooks, in order (`notebooks/NN_name.py`, jupytext percent format)."""
    return sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py"))


class ParameterError(ValueError):
    """A study parameter that is unknown, of the wrong type or out of range."""


@dataclass(frozen=True)
class Parameter:
    """One study parameter: its type, default, allowed values and help line."""

    name: str
    kind: type
    default: object
    help: str
    low: float | None = None
    high: float | None = None
    choices: tuple | None = None
    list_of: tuple | None = None  # a comma-separated list drawn from these

    def check(self, value):
        """The value converted to this parameter's type (from text too), or a
        ParameterError that names the parameter and what it allows."""
        value = self._convert(value)
        if self.low is not None and value < self.low or self.high is not None and value > self.high:
            raise ParameterError(f"parameter {self.name}={value!r} is out of range: "
                                 f"expected {self.allowed()}")
        if self.choices is not None and value not in self.choices:
            raise ParameterError(f"parameter {self.name}={value!r}: expected {self.allowed()}")
        if self.list_of is not None:
            items = [item.strip() for item in value.split(",") if item.strip()]
            unknown = [item for item in items if item not in self.list_of]
            if unknown or not items:
                raise ParameterError(f"parameter {self.name}={value!r}: expected {self.allowed()}")
            value = ",".join(items)
        return value

    def _convert(self, value):
        if self.kind is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
                return value.lower() in ("true", "1", "yes")
            raise ParameterError(f"parameter {self.name} expects true/false, got {value!r}")
        if self.kind in (int, float):
            if isinstance(value, bool) or (self.kind is int and isinstance(value, float)
                                           and not value.is_integer()):
                raise ParameterError(f"parameter {self.name} expects {self.kind.__name__}, "
                                     f"got {value!r}")
            try:
                return self.kind(value)
            except (TypeError, ValueError):
                raise ParameterError(f"parameter {self.name} expects {self.kind.__name__}, "
                                     f"got {value!r}") from None
        if not isinstance(value, (str, int)) or isinstance(value, bool):
            raise ParameterError(f"parameter {self.name} expects text, got {value!r}")
        return str(value)

    def allowed(self) -> str:
        """The allowed values in words, for errors and `--help`."""
        if self.choices is not None:
            return "one of " + ", ".join(map(str, self.choices))
        if self.list_of is not None:
            return "a comma-separated list of " + ", ".join(self.list_of)
        if self.low is not None or self.high is not None:
            low = "-inf" if self.low is None else f"{self.low:g}"
            high = "inf" if self.high is None else f"{self.high:g}"
            return f"{self.kind.__name__} in [{low}, {high}]"
        return {bool: "true/false", str: "text"}.get(self.kind, self.kind.__name__)


EQUIVALENCE_MARGIN = 0.01
"""The region of practical equivalence of chapter 6: accuracy differences within +-1 point
count as "too small to choose a network by". Fixed here, before any run, from the paper
alone: the paper's claimed advantage is 1.1 points (99.8% against 98.7%), so a margin of 1
point is the largest that still lets a difference of the paper's size count as a real one;
no result of this study was looked at to set it."""


SCHEMA = {p.name: p for p in (
    # data and splits
    Parameter("data_source", str, "phantom",
              "'phantom', 'kaggle' (download), or a path to a kaggle_3m folder"),
    Parameter("phantom_patients", int, 24, "patients of the phantom dataset (phantom only)",
              low=4, high=400),
    Parameter("seed", int, 0, "one seed for splits, initial weights, batch order, resamples",
              low=0, high=2**31 - 1),
    Parameter("n_folds", int, 4, "patient-grouped cross-validation folds", low=2, high=20),
    Parameter("folds_to_run", str, "all", "'all' or comma-separated fold numbers to train"),
    Parameter("test_fraction", float, 0.3, "share held out by the 70:30 split columns",
              low=0.05, high=0.95),
    Parameter("evaluation", str, "cv",
              "'cv': patient folds; 'institution': each fold is one institution (train on "
              "the others); 'holdout': train on all of data_source, test on test_data_source",
              choices=EVALUATIONS),
    Parameter("test_data_source", str, "",
              "evaluation='holdout' only: the patients to test on (a kaggle_3m folder, "
              "'phantom' or 'kaggle'), none of them in data_source"),
    Parameter("institution_holdout", bool, True,
              "also train every model with one fold per institution, for chapter 5's "
              "'Does it travel?' beside the cross-validation"),
    # the classifiers (the paper's Table I)
    Parameter("models", str, "resnet50,vgg16,unet",
              "models to train: the classifiers compared, and the U-Net", list_of=MODEL_CHOICES),
    Parameter("image_size", int, 64, "classifier input size in pixels (the paper: 256)",
              low=32, high=1024),
    Parameter("weights", str, "none", "base weights: 'none', 'imagenet' or a weights file"),
    Parameter("epochs", int, 8, "classifier training epochs", low=1, high=1000),
    Parameter("batch_size", int, 32,
              "batch size of the classifiers (the U-Net trains in batches of 16)",
              low=1, high=4096),
    Parameter("learning_rate", float, 1e-3, "Adam learning rate of the classifiers",
              low=1e-7, high=1.0),
    Parameter("lr_decay", float, 0.0, "eq. (20) decay per epoch of the classifiers",
              low=0.0, high=100.0),
    Parameter("augment", bool, False, "random rotation/zoom/flip of training images"),
    Parameter("bank_views", int, 2,
              "with augment and a frozen base: base features of this many views per image "
              "(view 0 unaugmented) computed once, one drawn per image per epoch; 0: the "
              "paper's on-the-fly augmentation through the base every epoch", low=0, high=64),
    Parameter("base_precision", str, "float32",
              "arithmetic of the frozen base when computing features: 'float32', 'bfloat16', "
              "or 'auto' (bfloat16 where the hardware has it and a probe on this machine "
              "finds it faster)",
              choices=("float32", "bfloat16", "auto")),
    Parameter("standardize_features", bool, True,
              "standardise the base's pooled features (not in the paper; needed without ImageNet)"),
    Parameter("leakage_experiment", bool, True,
              "also train on the paper's slice split and with shuffled labels"),
    # the protocol every model follows
    Parameter("protocol", str, "validated",
              "'validated': inner validation patients pick epoch and threshold; "
              "'paper': last epoch, threshold 0.5", choices=PROTOCOLS),
    Parameter("compare_protocols", bool, False,
              "also train the classifiers' main experiment under the other protocol "
              "(reported side by side)"),
    Parameter("repeat_seeds", str, "",
              "extra training seeds (comma-separated) for the classifiers' main experiment on "
              "the same folds, to show seed noise; empty: none"),
    Parameter("validation_fraction", float, 0.15,
              "share of training patients held out as inner validation", low=0.05, high=0.5),
    # the U-Net of the segmentation chapter
    Parameter("unet_image_size", int, 64, "U-Net input size in pixels", low=32, high=1024),
    Parameter("unet_widths", str, "8,16,32", "U-Net filters per level, comma-separated"),
    Parameter("unet_epochs", int, 6, "U-Net training epochs", low=1, high=1000),
    Parameter("unet_batch_size", int, 16, "U-Net training batch size (slices per step)",
              low=1, high=1024),
    Parameter("unet_precision", str, "float32",
              "U-Net compute precision: 'float32', 'mixed_bfloat16' (bfloat16 arithmetic, "
              "float32 weights), or 'auto' (bfloat16 where a probe on this machine finds it "
              "faster)", choices=("float32", "mixed_bfloat16", "auto")),
    Parameter("unet_tumor_free_ratio", float, 0.0,
              "tumor-free slices drawn per tumor slice for each U-Net epoch (a fresh draw "
              "each epoch); 0: every slice every epoch", low=0.0, high=100.0),
    Parameter("unet_slice_visits", int, 0,
              "U-Net training length in slice visits, when > 0: the epochs become those whose "
              "visits over a unit's fit slices come closest to it (at least 1), so the U-Net "
              "trains as long on 20 patients as on 110; 0: unet_epochs", low=0, high=10_000_000),
    # can the predictions be trusted (chapter 8)
    Parameter("mc_passes", int, 50,
              "Monte Carlo dropout passes per slice for the classifiers' uncertainty",
              low=2, high=1000),
    # where the run goes
    Parameter("run_dir", str, "", "run folder; empty: runs/<profile> in the checkout"),
)}


class Params(dict):
    """A resolved parameter set: a dict of checked values with attribute access
    (`params.epochs`), plus the profile it came from."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(unknown_message(name)) from None

    @property
    def model_names(self) -> list[str]:
        """The classifiers of `models` (the chapters compare these)."""
        return [m for m in self["models"].split(",") if m in CLASSIFIERS]

    @property
    def all_model_names(self) -> list[str]:
        """Every model of `models`, the U-Net included (what `brainlib train` trains)."""
        return self["models"].split(",")

    @property
    def runs_leakage_experiment(self) -> bool:
        """Whether the leakage experiment (slice split, shuffled labels) is trained: asked for
        and the evaluation is patient cross-validation (it compares splits of one pool)."""
        return bool(self["leakage_experiment"]) and self["evaluation"] == "cv"

    @property
    def runs_institution_holdout(self) -> bool:
        """Whether every model is also trained once per institution beside the
        cross-validation (asked for, and the evaluation is patient cross-validation)."""
        return bool(self["institution_holdout"]) and self["evaluation"] == "cv"

    @property
    def is_holdout(self) -> bool:
        """One train folder, one test folder: no folds to speak of."""
        return self["evaluation"] == "holdout"

    @property
    def training_seeds(self) -> list[int]:
        """The run's seed, then `repeat_seeds`."""
        extra = [int(s) for s in self["repeat_seeds"].split(",") if s.strip()]
        return [self["seed"]] + [s for s in extra if s != self["seed"]]

    def unet_epochs_for(self, n_slices: int, n_tumor_slices: int) -> int:
        """The U-Net's epochs on a training pool of `n_slices` (`n_tumor_slices` with a
        tumor): `unet_epochs`, or with `unet_slice_visits` the epochs whose visits come
        closest to it. A unit fits on about (1 - 1/n_folds)(1 - validation_fraction) of the
        pool (all of it but the inner validation share for a hold-out); an epoch visits every
        slice, or every tumor slice and `unet_tumor_free_ratio` tumor-free ones per tumor
        slice, as many as there are."""
        visits = self["unet_slice_visits"]
        if not visits:
            return self["unet_epochs"]
        share = 1 - self["validation_fraction"]
        if not self.is_holdout:
            share *= 1 - 1 / self["n_folds"]
        ratio = self["unet_tumor_free_ratio"]
        per_epoch = min(n_slices, n_tumor_slices * (1 + ratio)) if ratio else n_slices
        return max(1, round(visits / max(1.0, per_epoch * share)))

    @property
    def folds(self) -> list[int] | None:
        """The folds to train, or None for all (a hold-out trains only its test fold's unit)."""
        if self.get("evaluation") == "holdout":
            return [HOLDOUT_FOLD]
        text = self["folds_to_run"]
        return None if text == "all" else [int(f) for f in text.split(",")]


def unknown_message(name: str) -> str:
    close = difflib.get_close_matches(name, list(SCHEMA) + ["profile"], n=1)
    hint = f"; did you mean {close[0]!r}?" if close else \
        "; `python -m brainlib params` lists them"
    return f"unknown parameter {name!r}{hint}"


def check(name: str, value):
    """One parameter's value, converted and checked against the schema."""
    if name not in SCHEMA:
        raise ParameterError(unknown_message(name))
    return SCHEMA[name].check(value)


def profiles() -> dict[str, dict]:
    """The named profiles of `profiles.toml` (each a description plus overrides)."""
    return tomllib.loads(PROFILES.read_text())


def auto_profile() -> tuple[str, dict]:
    """The profile a notebook opened on its own uses: on Colab the paper's `full` with a
    GPU and the real study for ordinary machines, `lgg`, without one; elsewhere `lgg` on
    $BRAINLIB_DATA when it is set, else the phantom `default`."""
    if os.environ.get(DATA_ENV_VAR):
        return "lgg", {"data_source": os.environ[DATA_ENV_VAR]}
    if "google.colab" in sys.modules:
        return ("full" if _has_gpu() else "lgg"), {}
    return "default", {}


def _has_gpu() -> bool:
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def resolve(profile: str = "default", overrides: dict | None = None) -> Params:
    """Schema defaults, then the profile's values, then `overrides`; every value checked.

    `profile="auto"` picks one as `auto_profile` says. Text values (from `-p key=value`)
    are converted to the parameter's type. The run folder defaults to `runs/<profile>`.
    """
    overrides = dict(overrides or {})
    chosen = dict(overrides)  # what the user asked for (not what `auto` implied)
    if profile == "auto":
        profile, implied = auto_profile()
        overrides = {**implied, **overrides}
    known = profiles()
    if profile not in known:
        raise ParameterError(f"unknown profile {profile!r}; profiles in {PROFILES.name}: "
                             f"{', '.join(known)}")
    values = {name: p.default for name, p in SCHEMA.items()}
    given = {k: v for k, v in known[profile].items() if k != "description"}
    for name, value in {**given, **overrides}.items():
        values[name] = check(name, value)
    if not values["run_dir"]:
        values["run_dir"] = str(default_run_root() / run_name(profile, {
            name: values[name] for name in chosen if name != "run_dir"}))
    _check_folds(values["folds_to_run"], values["n_folds"])
    _check_evaluation(values)
    _check_seeds(values["repeat_seeds"])
    if "unet_epochs" in chosen and values["unet_slice_visits"] and "unet_slice_visits" not in chosen:
        raise ParameterError(
            f"unet_epochs={values['unet_epochs']} would be ignored: the {profile!r} profile sets the "
            f"U-Net's epochs from unet_slice_visits={values['unet_slice_visits']}; give "
            "-p unet_slice_visits=0 as well to set the epochs yourself")
    params = Params(values)
    params["profile"] = profile
    return params


def _check_evaluation(values: dict) -> None:
    has_test = bool(values["test_data_source"].strip())
    if values["evaluation"] == "holdout" and not has_test:
        raise ParameterError("evaluation='holdout' needs test_data_source (the patients to "
                             "test on, e.g. -p test_data_source=/path/to/kaggle_3m)")
    if values["evaluation"] != "holdout" and has_test:
        raise ParameterError(f"test_data_source is used only with evaluation='holdout'; "
                             f"found evaluation={values['evaluation']!r}")


def require_classifiers(params: Params, needed: int, why: str) -> None:
    """`models` lists at least `needed` classifiers (`why`: who needs them), else a
    ParameterError; `train` takes any models, the study's chapters compare classifiers."""
    if len(params.model_names) < needed:
        raise ParameterError(f"{why}: models must list at least {needed} of the classifiers "
                             f"{CLASSIFIERS}; found {params['models']!r}")


def _check_folds(text: str, n_folds: int) -> None:
    if text == "all":
        return
    try:
        folds = [int(f) for f in text.split(",")]
    except ValueError:
        raise ParameterError(f"parameter folds_to_run={text!r}: expected 'all' or "
                             "comma-separated fold numbers") from None
    outside = [f for f in folds if not 0 <= f < n_folds]
    if outside:
        raise ParameterError(f"parameter folds_to_run={text!r}: folds {outside} are outside "
                             f"0..{n_folds - 1} (n_folds={n_folds})")


def _check_seeds(text: str) -> None:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ParameterError(f"parameter repeat_seeds={text!r}: expected comma-separated "
                             "whole numbers, e.g. '1,2'") from None
    if any(s < 0 for s in seeds):
        raise ParameterError(f"parameter repeat_seeds={text!r}: seeds must be >= 0")


def run_name(profile: str, changed: dict) -> str:
    """The run folder's name: the profile's, or, when parameters were overridden, the
    profile's with a short hash of them, so an experiment with `-p` never replaces the
    profile's own run (the one its book shows)."""
    if not changed:
        return profile
    text = json.dumps(sorted((name, repr(value)) for name, value in changed.items()))
    return f"{profile}-{hashlib.sha1(text.encode()).hexdigest()[:8]}"


def relative_to_repo(path) -> str:
    """`path` relative to the checkout when inside it (what a reader's own clone shows)."""
    try:
        return str(Path(path).resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def default_run_root() -> Path:
    """`$BRAINLIB_RUN_ROOT` when set (the regression tests' own runs), else `runs/` in the
    checkout when brainlib runs from one, else in the working folder."""
    if os.environ.get(RUN_ROOT_ENV_VAR):
        return Path(os.environ[RUN_ROOT_ENV_VAR]).resolve()
    if (REPO_ROOT / "notebooks").is_dir() and (REPO_ROOT / "brainlib").is_dir():
        return REPO_ROOT / "runs"
    return Path("runs").resolve()


def parse_pairs(pairs: list[str]) -> dict:
    """`["epochs=2", "augment=true"]` -> checked, typed values."""
    overrides = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep:
            raise ParameterError(f"parameter {pair!r} is not key=value")
        overrides[name.strip()] = check(name.strip(), text)
    return overrides


def notebook_parameters(namespace: dict) -> Params:
    """A notebook's parameters from its namespace after the (papermill) parameters cell.

    The parameters cell holds `profile` and `overrides`; papermill may also inject any
    schema name directly (`-p epochs 2`). Any other plain value in the namespace at this
    point is a misspelled parameter and fails, naming the closest valid one.
    """
    overrides = dict(namespace.get("overrides") or {})
    for name, value in namespace.items():
        if name in ("profile", "overrides", "In", "Out") or name.startswith("_") \
                or isinstance(value, types.ModuleType) or callable(value):
            continue
        overrides[name] = value
    return resolve(namespace.get("profile", "auto"), overrides)


def describe() -> str:
    """Every parameter with its type, default, allowed values and help (`params` command)."""
    lines = ["Study parameters (override with -p key=value; profiles in brainlib/config/profiles.toml):"]
    for p in SCHEMA.values():
        lines.append(f"  {p.name:<21} {p.allowed():<40} default {p.default!r}")
        lines.append(f"  {'':<21} {p.help}")
    lines.append("Profiles: " + "; ".join(f"{name}: {body.get('description', '')}"
                                         for name, body in profiles().items()))
    return "\n".join(lines)


def params_main(argv: list[str]) -> int:
    """`python -m brainlib params [--profile NAME] [-p key=value ...]`: the schema, or the
    resolved values of a profile."""
    import argparse
    import json

    parser = argparse.ArgumentParser(prog="python -m brainlib params",
                                     description="List the study parameters, or resolve a profile.")
    parser.add_argument("--profile", help="print this profile's resolved values")
    parser.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    if args.profile is None and not args.param:
        print(describe())
        return 0
    try:
        params = resolve(args.profile or "default", parse_pairs(args.param))
    except ParameterError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(params, indent=2))
    return 0

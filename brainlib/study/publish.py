"""What the Pages workflow (`.github/workflows/book.yml`) runs around the study: the cache
key of a run's trained units, the fetch of the ImageNet weights, and the guard that refuses
to publish a book whose run was not the real study.

- `units_fingerprint`: `<code>-<parameters>`, two hashes. The first is the training code's
  (`training.fingerprint.code_fingerprint`, read from the source, no TensorFlow), the
  second the resolved parameters' (where the run goes left out). A cache of units saved
  under it is current exactly when neither changed (the runner keys its unit folders on
  the code and the settings too, so a stale cache is never read, only retrained).
- `real_run_problems`: what makes a run folder unfit to be published as the real study
  (PHANTOM data, bases without ImageNet weights, another profile, an unfinished run), read
  from the run's own record: `params.json` and `manifest.csv`, through the same run card
  the book's run page shows (`study.book.write_run_page`).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

from ..config import params as schema

# Where a run goes does not decide what it trains (and differs between checkouts).
NOT_IN_FINGERPRINT = ("run_dir",)


def parameters_fingerprint(params: dict) -> str:
    """A hash of the resolved parameters (`config.params.resolve`), `NOT_IN_FINGERPRINT` left
    out."""
    kept = {k: v for k, v in params.items() if k not in NOT_IN_FINGERPRINT}
    text = json.dumps(kept, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def units_fingerprint(profile: str = "default", overrides: dict | None = None) -> str:
    """`<code>-<parameters>`: the training code's fingerprint and the resolved parameters'
    hash, the key of a cache of the run's trained units (see the module docstring)."""
    from ..training.fingerprint import code_fingerprint

    return f"{code_fingerprint()}-{parameters_fingerprint(schema.resolve(profile, overrides))}"


def fingerprint_main(argv: list[str]) -> int:
    """`python -m brainlib fingerprint [--profile NAME] [-p key=value ...]`: one line,
    `<code>-<parameters>`, for a cache key of the run's units (TensorFlow is not imported)."""
    parser = argparse.ArgumentParser(
        prog="python -m brainlib fingerprint",
        description="Print <training code hash>-<resolved parameters hash>: the key of a "
                    "cache of a run's trained units (book.yml).")
    parser.add_argument("--profile", default="default")
    parser.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    try:
        print(units_fingerprint(args.profile, schema.parse_pairs(args.param)))
    except schema.ParameterError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


# ----------------------------------------------------------------------------- weights


def fetch_imagenet_weights(profile: str) -> list[str]:
    """Download (or find in Keras' cache, ~/.keras/models) the ImageNet weights of the
    profile's classifiers before the study, so a failed download fails here, saying why."""
    from .. import models

    fetched = []
    for name in schema.resolve(profile).model_names:
        models.build_base(name, weights="imagenet")
        fetched.append(name)
    return fetched


# ----------------------------------------------------------------------------- the guard


class NotARunFolder(ValueError):
    """The folder lacks the files a study writes first (`params.json`, `manifest.csv`)."""


def real_run_problems(run_dir, profile: str | None = None,
                      patients: int | None = None) -> list[str]:
    """Why the run in `run_dir` may not be published as the real study; empty when it may.

    Refused: PHANTOM data, bases without ImageNet weights, a profile other than `profile`,
    a patient count other than `patients`, no predictions of a model the run trains.
    """
    import pandas as pd

    from ..chapters.runcard import run_card
    from ..training.experiment import read_manifest

    run_dir = Path(run_dir)
    params_file, manifest_file = run_dir / "params.json", run_dir / "manifest.csv"
    missing = [p.name for p in (params_file, manifest_file) if not p.is_file()]
    if missing:
        raise NotARunFolder(f"{run_dir}: no {' or '.join(missing)}; not a study run folder, "
                            "or its study did not get as far as its data")
    saved = json.loads(params_file.read_text())
    run_profile = saved.pop("profile", None)
    if run_profile is None:
        raise NotARunFolder(f"{params_file}: no 'profile' entry; not written by a study")
    try:
        params = schema.resolve(run_profile, saved)
    except schema.ParameterError as error:
        raise NotARunFolder(f"{params_file}: {error}") from None
    card = run_card(params, read_manifest(run_dir))
    problems = []
    if profile is not None and run_profile != profile:
        problems.append(f"{params_file}: the run is of profile {run_profile!r}, not {profile!r}")
    if card.dataset != "REAL":
        problems.append(f"{manifest_file}: the data is the {card.dataset} (data_source="
                        f"{params['data_source']!r}), not the real LGG slices; a book of it "
                        "must not be published as the real study")
    if card.weights != "ImageNet":
        problems.append(f"{params_file}: weights={params['weights']!r} ({card.weights}), not "
                        "ImageNet; the run cannot test the paper's transfer-learning claim")
    if patients is not None and card.n_patients != patients:
        problems.append(f"{manifest_file}: {card.n_patients} patients, expected {patients}")
    predictions_file = run_dir / "predictions.csv"
    if not predictions_file.is_file():
        problems.append(f"{predictions_file}: missing; the study did not finish training")
    else:
        found = set(pd.read_csv(predictions_file, usecols=["model"])["model"].astype(str))
        absent = [m for m in params.all_model_names if m not in found]
        if absent:
            problems.append(f"{predictions_file}: no predictions of {', '.join(absent)}; "
                            "the study did not finish training")
    return problems


def check_real_main(argv: list[str]) -> int:
    """`python -m brainlib check-real RUN_DIR [--profile NAME] [--patients N]`: exit 0 when
    the run is the real study (real LGG data, ImageNet weights), else 1 with every reason."""
    parser = argparse.ArgumentParser(
        prog="python -m brainlib check-real",
        description="Refuse (exit 1, saying why) a run folder whose book must not be published "
                    "as the real study: PHANTOM data, bases without ImageNet weights.")
    parser.add_argument("run_dir", help="the study's run folder, e.g. runs/lgg")
    parser.add_argument("--profile", help="the profile the run must be of")
    parser.add_argument("--patients", type=int, help="the number of patients it must have")
    args = parser.parse_args(argv)
    try:
        problems = real_run_problems(args.run_dir, args.profile, args.patients)
    except NotARunFolder as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if problems:
        print(f"{args.run_dir} is not the real study; its book must not be published:\n"
              + "\n".join(f"  - {p}" for p in problems), file=sys.stderr)
        return 1
    print(f"{args.run_dir}: real LGG data with ImageNet weights; its book may be published")
    return 0

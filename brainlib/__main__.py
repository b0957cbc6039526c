"""Command line: `python -m brainlib scan|phantom|download|summary|study ...`."""
from __future__ import annotations

import argparse
import json
import sys


def scan_main(argv: list[str]) -> int:
    """Check a dataset folder before a long study: counts and every problem found."""
    from .data import DatasetError, scan_dataset

    parser = argparse.ArgumentParser(prog="python -m brainlib scan",
                                     description="Scan and check a kaggle_3m dataset folder.")
    parser.add_argument("path", help="a kaggle_3m folder or a folder above it")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--no-cache", action="store_true", help="check every file again")
    args = parser.parse_args(argv)
    try:
        result = scan_dataset(args.path, collect_problems=True, use_cache=not args.no_cache)
    except DatasetError as error:  # the folder itself is wrong: nothing to scan
        if args.json:
            print(json.dumps({"root": args.path, "patients": 0, "slices": 0,
                              "tumor_slices": 0, "problems": [str(p) for p in error.problems]},
                             indent=2))
        else:
            print(error, file=sys.stderr)
        return 2
    print(json.dumps(result.counts(), indent=2) if args.json else result.summary())
    return 0 if result.ok else 1


def phantom_main(argv: list[str]) -> int:
    """Write the synthetic phantom dataset in the Kaggle layout."""
    from .data.phantom import FULL_SIZE, write_phantom_dataset

    parser = argparse.ArgumentParser(prog="python -m brainlib phantom",
                                     description="Write a phantom dataset (kaggle_3m layout).")
    parser.add_argument("path", help="output folder (kaggle_3m is created inside)")
    parser.add_argument("--patients", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--full-size", action="store_true",
                        help="the real dataset's size: 110 patients, 3,929 slices, 256x256")
    args = parser.parse_args(argv)
    options = {**(FULL_SIZE if args.full_size else {}), "seed": args.seed}
    if args.patients:
        options["n_patients"] = args.patients
    print(write_phantom_dataset(args.path, **options))
    return 0


def download_main(argv: list[str]) -> int:
    """Download the Kaggle dataset with kagglehub and print its kaggle_3m folder."""
    from .data import DataUnavailableError, download_kaggle

    argparse.ArgumentParser(prog="python -m brainlib download").parse_args(argv)
    try:
        print(download_kaggle())
    except DataUnavailableError as error:
        print(error, file=sys.stderr)
        return 2
    return 0


# What a command needs beyond the base install, and the extra that brings it.
NEEDS = {"tensorflow": ("cpu", "TensorFlow"), "ipykernel": ("book", "a Jupyter kernel"),
         "nbval": ("test", "nbval")}
COMMAND_NEEDS = {"summary": ["tensorflow"], "train": ["tensorflow"], "predict": ["tensorflow"],
                 "study": ["tensorflow", "ipykernel"]}


def missing_extras(command: str) -> list[str]:
    """One line per module `command` needs and cannot import, naming the extra to install."""
    from importlib.util import find_spec

    lines = []
    for module in COMMAND_NEEDS.get(command, []):
        if find_spec(module) is None:
            extra, what = NEEDS[module]
            lines.append(f"`{command}` needs {what} ({module}), which is not installed: "
                         f"pip install -e '.[{extra}]' (or `make install` for everything)")
    return lines


def _lazy(module: str, function: str, command: str):
    def run(argv):
        from importlib import import_module

        missing = missing_extras(command)
        if missing:
            print("\n".join(missing), file=sys.stderr)
            return 3
        return getattr(import_module(f".{module}", __package__), function)(argv)
    return run


COMMANDS = {
    "scan": scan_main,
    "phantom": phantom_main,
    "download": download_main,
    "summary": _lazy("models", "summary_main", "summary"),
    "study": _lazy("study", "study_main", "study"),
    "params": _lazy("config.params", "params_main", "params"),
    "train": _lazy("training.bundle", "train_main", "train"),
    "predict": _lazy("training.bundle", "predict_main", "predict"),
    "repository": lambda argv: repository_main(argv),
    # book.yml's: the units cache key, and the guard before publishing (no TensorFlow)
    "fingerprint": _lazy("study.publish", "fingerprint_main", "fingerprint"),
    "check-real": _lazy("study.publish", "check_real_main", "check-real"),
}


def repository_main(argv: list[str]) -> int:
    """`python -m brainlib repository`: write every notebook's Colab badge and install line
    from `_config.yml`'s repository.url and branch (after pointing them at a fork)."""
    from .study.book import CONFIG, repository, write_repository_lines

    argparse.ArgumentParser(prog="python -m brainlib repository",
                            description=repository_main.__doc__.split("\n")[0]).parse_args(argv)
    try:
        name, branch = repository()
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    changed = write_repository_lines()
    print(f"repository {name} (branch {branch}, from {CONFIG.name}): "
          + (f"{len(changed)} files rewritten" if changed else "every notebook already agrees"))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in COMMANDS:
        print("usage: python -m brainlib {" + ",".join(COMMANDS) + "} ...\n"
              "  scan PATH [--json]      check a kaggle_3m folder\n"
              "  phantom PATH            write the synthetic phantom dataset\n"
              "  download                fetch the Kaggle dataset (needs internet)\n"
              "  summary MODEL           layer table and parameter counts\n"
              "  study [--profile NAME]  run the notebooks with papermill\n"
              "  params [--profile NAME] list the study parameters (or a profile's values)\n"
              "  train --out DIR         train every model on all patients: one bundle each\n"
              "  predict BUNDLES DATA --out FILE.csv   score a folder with trained bundles\n"
              "  repository              write the notebooks' Colab lines from _config.yml\n"
              "  fingerprint [--profile NAME]  the training code's and parameters' hashes "
              "(a cache key)\n"
              "  check-real RUN_DIR      refuse a run that is not real data with ImageNet weights",
              file=sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    return COMMANDS[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main())

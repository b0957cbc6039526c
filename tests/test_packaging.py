"""The one list of dependencies (pyproject.toml) and the ways of installing it agree."""
import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
ENVIRONMENT = yaml.safe_load((ROOT / "environment.yml").read_text())


def conda_and_pip_parts():
    conda, pip = [], []
    for item in ENVIRONMENT["dependencies"]:
        if isinstance(item, dict):
            pip += item.get("pip", [])
        else:
            conda.append(item)
    return conda, pip


def test_environment_yml_installs_the_project_with_the_dev_extra_only():
    conda, pip = conda_and_pip_parts()
    names = {re.split(r"[=<>]", c)[0] for c in conda}
    # No package is listed twice: conda provides only Python and pip, pyproject the rest.
    assert names == {"python", "pip"}, names
    assert pip == ["-e .[dev]"]


def test_environment_python_satisfies_requires_python():
    conda, _ = conda_and_pip_parts()
    python = next(c for c in conda if c.startswith("python"))
    version = tuple(int(v) for v in python.split("=")[1].split("."))
    minimum = tuple(int(v) for v in PYPROJECT["project"]["requires-python"].lstrip(">=").split("."))
    assert version >= minimum


def test_makefile_installs_the_same_extra():
    makefile = (ROOT / "Makefile").read_text()
    assert "pip install --quiet -e '.[dev]'" in makefile


def test_dev_extra_covers_every_other_extra_and_pins_the_stack():
    extras = PYPROJECT["project"]["optional-dependencies"]
    dev = " ".join(extras["dev"])
    for name in extras:
        if name != "dev":
            assert name in dev, f"extra {name} not in dev"
    pinned = " ".join(extras["cpu"] + extras["book"])
    assert "tensorflow-cpu==" in pinned and "keras==" in pinned and "numpy==" in pinned
    assert "jupyter-book>=1,<2" in pinned  # 2.x ignores _config.yml/_toc.yml
    # TensorFlow stays out of the base dependencies: Colab keeps its own.
    assert not any(d.startswith("tensorflow") for d in PYPROJECT["project"]["dependencies"])

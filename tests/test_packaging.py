"""The one list of dependencies (pyproject.toml) and the ways of installing it agree."""
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
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
    assert "tensorflow-cpu==" in pinned and "tensorflow==" in pinned
    assert "keras==" in pinned and "numpy==" in pinned
    assert "jupyter-book>=1,<2" in pinned  # 2.x ignores _config.yml/_toc.yml
    # TensorFlow stays out of the base dependencies: Colab keeps its own.
    assert not any(d.startswith("tensorflow") for d in PYPROJECT["project"]["dependencies"])


# The platforms a reader is likely on, as pip's target tags and as PEP 508 environments.
PLATFORMS = {
    "Linux x86-64": ("manylinux_2_27_x86_64", {"sys_platform": "linux", "platform_machine": "x86_64"}),
    "Windows x86-64": ("win_amd64", {"sys_platform": "win32", "platform_machine": "AMD64"}),
    "macOS Apple silicon": ("macosx_14_0_arm64", {"sys_platform": "darwin", "platform_machine": "arm64"}),
}


def tensorflow_requirements(environment: dict) -> list[str]:
    """The TensorFlow requirements of the `cpu` extra that apply on `environment`."""
    from packaging.requirements import Requirement

    base = {"python_version": "3.11", "platform_system": "", "os_name": "posix",
            "implementation_name": "cpython", "extra": "cpu"}
    chosen = []
    for text in PYPROJECT["project"]["optional-dependencies"]["cpu"]:
        requirement = Requirement(text)
        if requirement.name.startswith("tensorflow") and (
                requirement.marker is None or requirement.marker.evaluate({**base, **environment})):
            chosen.append(f"{requirement.name}{requirement.specifier}")
    return chosen


def test_each_platform_gets_exactly_one_tensorflow():
    chosen = {name: tensorflow_requirements(env) for name, (_, env) in PLATFORMS.items()}
    assert all(len(found) == 1 for found in chosen.values()), chosen
    assert chosen["macOS Apple silicon"][0].startswith("tensorflow==")
    assert chosen["Linux x86-64"][0].startswith("tensorflow-cpu==")


@pytest.mark.slow
@pytest.mark.parametrize("platform", list(PLATFORMS))
def test_the_chosen_tensorflow_has_a_wheel_for_the_platform(platform, tmp_path):
    """A dry resolution against the package index (pip reads the wheel's metadata only)."""
    tag, environment = PLATFORMS[platform]
    (requirement,) = tensorflow_requirements(environment)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--no-deps",
         "--only-binary=:all:", "--platform", tag, "--python-version", "3.11",
         "--target", str(tmp_path), requirement],
        capture_output=True, text=True, timeout=300)
    if "Could not fetch" in done.stderr or "NewConnectionError" in done.stderr:
        pytest.skip(f"package index not reachable: {done.stderr[-200:]}")
    assert done.returncode == 0 and "Would install" in done.stdout, done.stderr[-500:]


def test_make_help_lists_every_target():
    makefile = (ROOT / "Makefile").read_text()
    phony = re.search(r"^\.PHONY:(.*)$", makefile, re.M).group(1).split()
    listed = subprocess.run(["make", "-s", "help"], cwd=ROOT, capture_output=True, text=True,
                            check=True).stdout
    missing = [t for t in phony if f"make {t} " not in listed + " "]
    assert not missing, missing


def test_make_lab_allows_root_and_passes_extra_flags():
    shown = subprocess.run(["make", "-n", "lab", "LAB_ARGS=--port 8899 --no-browser"],
                           cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert "--allow-root" in shown and "--port 8899 --no-browser" in shown


def test_a_command_without_its_extra_says_which_extra_to_install(monkeypatch, capsys):
    """`pip install -e .` alone: a command that needs TensorFlow or a kernel says so and
    which extra brings it, instead of a traceback."""
    import importlib.util

    from brainlib import __main__ as cli

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("tensorflow", "ipykernel")
                        else real(name, *a))
    said = {}
    for command in ("summary", "study", "train", "predict"):
        assert cli.main([command]) == 3
        said[command] = capsys.readouterr().err
        assert "pip install -e '.[cpu]'" in said[command], command
    assert "pip install -e '.[book]'" in said["study"]  # the study also needs a kernel
    assert cli.main(["params"]) == 0  # the base install runs this one


@pytest.mark.slow
def test_an_editable_install_prints_no_warning(tmp_path):
    """`pip install -e .` is the README's install: a warning there (setuptools' "Editable
    installation" notice of its meta-path finder, a TOML-table licence) is the first thing
    a newcomer reads."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    # The Makefile's pip: recent pips show the build backend's warnings, older ones hide them.
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
                    "--upgrade", "pip"], capture_output=True, timeout=300)
    done = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
                           "--no-deps", "-e", str(ROOT)],
                          capture_output=True, text=True, timeout=300)
    if "Could not fetch" in done.stderr or "NewConnectionError" in done.stderr:
        pytest.skip(f"package index not reachable: {done.stderr[-200:]}")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Warning" not in done.stdout + done.stderr, (done.stdout + done.stderr)[-2000:]
    found = subprocess.run([str(venv / "bin" / "python"), "-c",
                            "import importlib.util as u; print(u.find_spec('brainlib.stats').origin)"],
                           capture_output=True, text=True, cwd=tmp_path, check=True)
    assert found.stdout.strip() == str(ROOT / "brainlib" / "stats" / "__init__.py")

"""The library's shape: its modules form layers along the pipeline, each importing only its
own layer or the ones below, with no import circle, function-level imports included.

Read from the source with `ast`, so an import hidden inside a function counts as much as
one at the top of a file. `LAYERS` is the map of the package; a new module fails the test
until it is placed in it.
"""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "brainlib"

LAYERS = [
    ("config", ["config"]),
    ("data", ["data"]),
    ("measures", ["measures"]),
    ("stats", ["stats"]),
    ("models", ["models"]),
    ("training", ["training"]),
    ("trust", ["trust"]),
    ("chapters", ["chapters"]),
    ("study", ["study", "__main__"]),
]
"""Bottom to top: the subpackages of `brainlib`, one layer each (`__main__`, the command
line, sits on top)."""


def module_names() -> dict[str, Path]:
    """`brainlib.x` (or `brainlib.stats.y`) -> its file, `brainlib` itself left out."""
    names = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if len(parts) > 1:
            names[".".join(parts)] = path
    return names


def imports_of(name: str, path: Path, known) -> set[str]:
    """The package modules `name` imports anywhere in its file."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                candidate = f"{target}.{alias.name}"
                found.add(candidate if candidate in known else target)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {target for target in found if target in known and target != name}


def import_graph() -> dict[str, set[str]]:
    known = module_names()
    return {name: imports_of(name, path, known) for name, path in known.items()}


def layer_of(name: str) -> int:
    top = name.split(".")[1]
    for level, (_, members) in enumerate(LAYERS):
        if top in members:
            return level
    raise KeyError(top)


def cycle_through(graph, start) -> list[str] | None:
    """One import circle through `start`, as the list of modules along it, or None."""
    stack, seen = [(start, [start])], set()
    while stack:
        node, path = stack.pop()
        for target in sorted(graph.get(node, ())):
            if target == start:
                return path + [start]
            if target not in seen:
                seen.add(target)
                stack.append((target, path + [target]))
    return None


def test_every_module_has_a_layer():
    unplaced = sorted({name.split(".")[1] for name in module_names()
                       if not any(name.split(".")[1] in m for _, m in LAYERS)})
    assert not unplaced, f"place these modules in a layer of tests/test_architecture.py: {unplaced}"


def test_no_module_imports_a_layer_above_its_own():
    upward = [f"{a} ({LAYERS[layer_of(a)][0]}) imports {b} ({LAYERS[layer_of(b)][0]})"
              for a, targets in sorted(import_graph().items()) for b in sorted(targets)
              if layer_of(b) > layer_of(a)]
    assert not upward, "imports against the layers:\n" + "\n".join(upward)


def test_no_import_circle():
    graph = import_graph()
    circles = {tuple(c) for name in graph if (c := cycle_through(graph, name))}
    assert not circles, "import circles:\n" + "\n".join(" -> ".join(c) for c in sorted(circles))


def test_the_checks_find_what_they_look_for():
    graph = {"brainlib.study": {"brainlib.study.book"}, "brainlib.study.book": {"brainlib.study"},
             "brainlib.data": set()}
    assert cycle_through(graph, "brainlib.study.book") == ["brainlib.study.book", "brainlib.study",
                                                     "brainlib.study.book"]
    assert cycle_through(graph, "brainlib.data") is None
    assert layer_of("brainlib.stats.mcnemar") < layer_of("brainlib.chapters.primary")
    with pytest.raises(KeyError):
        layer_of("brainlib.nowhere")
    known = {"brainlib.stats", "brainlib.stats.mcnemar", "brainlib.chapters.report",
             "brainlib.measures.metrics"}
    source = PACKAGE / "chapters" / "report.py"
    assert "brainlib.stats" in imports_of("brainlib.chapters.report", source, known | {"brainlib.chapters.report"})


@pytest.mark.parametrize("code", [
    "import brainlib",
    "import brainlib.study, brainlib.training.experiment, brainlib.chapters.report, brainlib.chapters.baselines",
    "import runpy, sys\nsys.argv = ['brainlib', '--help']\ntry:\n"
    "    runpy.run_module('brainlib', run_name='__main__')\nexcept SystemExit:\n    pass",
], ids=["import", "the chapters' layer", "--help"])
def test_the_package_and_its_help_start_without_tensorflow(code):
    import subprocess
    import sys

    check = code + "\nimport sys\nprint('TF LOADED' if 'tensorflow' in sys.modules else 'no TF')"
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "no TF", done.stdout[-500:]


def test_the_same_outputs_check_masks_only_what_varies_between_runs():
    import same_outputs

    def notebook(text):
        return {"cells": [{"cell_type": "code", "outputs": [{"output_type": "stream",
                                                              "text": text}]}]}

    a = notebook("I0000 00:00:1796.31   12873 port.cc:153] oneDNN on\n02_data: done in 7 s\n"
                 "accuracy 0.749\n")
    b = notebook("I0000 00:00:1800.46   23090 port.cc:153] oneDNN on\n02_data: done in 12 s\n"
                 "accuracy 0.749\n")
    assert same_outputs.output_lines(a) == same_outputs.output_lines(b)
    moved = notebook("accuracy 0.750\n")
    assert same_outputs.output_lines(moved) != same_outputs.output_lines(notebook("accuracy 0.749\n"))


def test_the_readme_lists_the_layers_as_they_are():
    """The README's table: the subpackages in layer order, each with every module it holds."""
    import re

    readme = (PACKAGE.parent / "README.md").read_text()
    section = readme[readme.index("## Architecture"):]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 3 and re.fullmatch(r"`\w+/`", cells[0]):
            rows[cells[0].strip("`/")] = sorted(re.findall(r"`([^`]+)`", cells[1]))
    layers = [name for name, _ in LAYERS]
    assert list(rows) == layers[:len(rows)] and len(rows) == len(layers)
    for name in rows:
        held = sorted(p.stem for p in (PACKAGE / name).glob("*.py")
                      if p.stem != "__init__" or (PACKAGE / name / "__init__.py").read_text()
                      .count("\n") > 40)
        assert rows[name] == held, f"README's {name}/ row: {rows[name]}, the folder: {held}"

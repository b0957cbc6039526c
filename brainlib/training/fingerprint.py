"""The training code's fingerprint: a hash of the source of every module that decides a
trained unit's result, part of every unit's cache key.

Which modules those are is read from the code, not listed: the runner, the two model
families and every module they import, transitively, inside the `data`, `models` and
`training` subpackages (`data.machine` and `data.recorded` only describe and replay a
run, so they are left out). A module that moves is followed; a new one a family imports is
covered the day it is imported.
"""
from __future__ import annotations

import ast
import hashlib
from functools import lru_cache
from pathlib import Path

ROOTS = ("brainlib.training.runner", "brainlib.training.classifier",
         "brainlib.training.segmenter")
COVERED = ("brainlib.data", "brainlib.models", "brainlib.training")
LEFT_OUT = ("brainlib.data.machine", "brainlib.data.recorded")


PACKAGE = Path(__file__).resolve().parents[1]


def _file(name: str) -> Path | None:
    """The source file of a `brainlib` module, found without importing it (no TensorFlow)."""
    parts = name.split(".")[1:]
    for path in (PACKAGE.joinpath(*parts).with_suffix(".py"), PACKAGE.joinpath(*parts, "__init__.py")):
        if parts and path.is_file():
            return path
    return None


def package_imports(name: str, path: Path) -> set[str]:
    """The `brainlib` modules one file imports anywhere in it, function-level ones included."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = parts[:len(parts) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                candidate = f"{target}.{alias.name}"
                found.add(candidate if _is_module(candidate) else target)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {t for t in found if t.startswith("brainlib.") and t != name}


def _is_module(name: str) -> bool:
    return name.startswith("brainlib.") and _file(name) is not None


@lru_cache(maxsize=1)
def training_modules() -> tuple[str, ...]:
    """The modules the fingerprint covers, sorted: the roots and what they import inside
    `COVERED`, `LEFT_OUT` excepted."""
    seen, todo = set(), list(ROOTS)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        path = _file(name)
        if path is None:
            raise ModuleNotFoundError(f"the training fingerprint cannot find {name}")
        todo.extend(t for t in package_imports(name, path)
                    if t.startswith(tuple(f"{c}." for c in COVERED)) or t in COVERED)
    return tuple(sorted(seen - set(LEFT_OUT)))


def module_fingerprints() -> dict[str, str]:
    """Each covered module's source hash (`training.runner`, ...): which one changed, when
    a key no longer matches."""
    return {name.removeprefix("brainlib."):
            hashlib.sha1(_file(name).read_bytes()).hexdigest()[:12]
            for name in training_modules()}


def code_fingerprint() -> str:
    """One hash of the covered modules' source."""
    digest = hashlib.sha1()
    for name, module_hash in module_fingerprints().items():
        digest.update(f"{name}:{module_hash}".encode())
    return digest.hexdigest()[:12]

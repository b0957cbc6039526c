"""brainlib: the helper library of the study book on deep residual networks for LGG
brain-MRI tumor classification.

Its subpackages follow the pipeline, each importing only the ones below it
(`tests/test_architecture.py` checks it; the README's "Architecture" says what each holds):
`config` -> `data` -> `measures` -> `stats` -> `models` -> `training` -> `trust` ->
`chapters` -> `study`.

Notebooks `import brainlib as bl` and call `bl.data.scan_dataset(...)`,
`bl.data.splits.add_splits(...)`, `bl.stats.mcnemar_test(...)` and so on. Subpackages and
their modules load on first use, so the command line and the data layer start without
importing TensorFlow.
"""
from importlib import import_module

__version__ = "0.1.0"
__all__ = ["config", "data", "measures", "stats", "models", "training", "trust", "chapters",
           "study"]


def __getattr__(name):
    if name in __all__:
        return import_module(f".{name}", __name__)
    raise AttributeError(f"module 'brainlib' has no attribute {name!r}")

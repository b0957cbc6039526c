"""What a prediction is worth, from arrays alone: classification metrics and AUC (`metrics`),
Dice, IoU and Hausdorff (`segmetrics`), the paper's equations in plain NumPy, checked
against Keras (`equations`), and `results.Result`, the base class of every result object.
"""
from importlib import import_module

SUBMODULES = ('metrics', 'segmetrics', 'equations', 'results')
__all__ = list(SUBMODULES)


def __getattr__(name):
    """Submodules load on first use (`bl.measures.metrics`), so importing the package is cheap."""
    if name in SUBMODULES:
        return import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""What a prediction is worth, from arrays alone: classification metrics and AUC (`metrics`),
Dice, IoU and Hausdorff (`segmetrics`), the paper's equations in plain NumPy, checked
against Keras (`equations`), and `results.Result`, the base class of every result object.
"""
from ..config import lazy_submodules

SUBMODULES = ('metrics', 'segmetrics', 'equations', 'results')
__all__ = list(SUBMODULES)


__getattr__ = lazy_submodules(__name__, SUBMODULES)

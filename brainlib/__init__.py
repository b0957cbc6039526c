"""brainlib: the helper library of the study book on deep residual networks for LGG
brain-MRI tumor classification.

Notebooks `import brainlib as bl` and call `bl.data.scan_dataset(...)`,
`bl.splits.add_splits(...)` and so on. Submodules load on first use, so the command line
and the data layer start without importing TensorFlow.
"""
from importlib import import_module

__version__ = "0.1.0"
__all__ = ["params", "data", "phantom", "splits", "pipeline", "transform", "models", "unet",
           "loss", "train", "classifier", "segmenter", "scores", "runner", "masks", "metrics",
           "stats", "primary", "runcard", "report", "evaluation_report", "leakage_report",
           "comparison_report", "segmentation_report", "travel_report", "external", "bundle",
           "calibration", "uncertainty", "unit_models", "gradcam", "trust_report", "audit", "plots", "segmetrics", "eda", "equations", "study",
           "notebook", "book", "experiment", "baselines"]


def __getattr__(name):
    if name in __all__:
        return import_module(f".{name}", __name__)
    raise AttributeError(f"module 'brainlib' has no attribute {name!r}")

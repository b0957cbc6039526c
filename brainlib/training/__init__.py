"""Training: the epoch loop (`train`), the two model families (`classifier`, `segmenter`),
the threshold rule (`scores`), the runner of cross-validation units and their resume
(`runner`, its cache key from `fingerprint`), a run's experiment set-up (`experiment`),
stored U-Net masks (`masks`), bundles for new patients (`bundle`) and trained units
rebuilt for analysis (`unit_models`).
"""
from importlib import import_module

SUBMODULES = ('train', 'classifier', 'segmenter', 'scores', 'runner', 'fingerprint', 'experiment', 'masks', 'bundle', 'unit_models')
__all__ = list(SUBMODULES)


def __getattr__(name):
    """Submodules load on first use (`bl.training.train`), so importing the package is cheap."""
    if name in SUBMODULES:
        return import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

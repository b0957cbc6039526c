"""Per-prediction trust: calibration and temperature scaling (`calibration`), MC dropout and
test-time views (`uncertainty`), Grad-CAM heatmaps (`gradcam`).
"""
from importlib import import_module

SUBMODULES = ('calibration', 'uncertainty', 'gradcam')
__all__ = list(SUBMODULES)


def __getattr__(name):
    """Submodules load on first use (`bl.trust.calibration`), so importing the package is cheap."""
    if name in SUBMODULES:
        return import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

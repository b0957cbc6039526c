"""Per-prediction trust: calibration and temperature scaling (`calibration`), MC dropout and
test-time views (`uncertainty`), Grad-CAM heatmaps (`gradcam`).
"""
from ..config import lazy_submodules

SUBMODULES = ('calibration', 'uncertainty', 'gradcam')
__all__ = list(SUBMODULES)


__getattr__ = lazy_submodules(__name__, SUBMODULES)

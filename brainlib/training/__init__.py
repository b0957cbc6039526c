"""Training: the epoch loop (`train`), the two model families (`classifier`, `segmenter`),
the threshold rule (`scores`), the runner of cross-validation units and their resume
(`runner`, its cache key from `fingerprint`), a run's experiment set-up (`experiment`),
stored U-Net masks (`masks`), bundles for new patients (`bundle`) and trained units
rebuilt for analysis (`unit_models`).
"""
from ..config import lazy_submodules

SUBMODULES = ('train', 'classifier', 'segmenter', 'scores', 'runner', 'fingerprint', 'experiment', 'masks', 'bundle', 'unit_models')
__all__ = list(SUBMODULES)


__getattr__ = lazy_submodules(__name__, SUBMODULES)

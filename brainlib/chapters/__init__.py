"""Each chapter's tables and sentences, computed with their numbers: the shared table helpers
(`report`), the run card (`runcard`), the primary comparison (`primary`), trivial
baselines (`baselines`), one module per chapter's analysis (`evaluation_report`,
`leakage_report`, `comparison_report`, `segmentation_report`, `travel_report`,
`trust_report`), the data audit (`audit`) and plotly figures (`plots`).
"""
from ..config import lazy_submodules

SUBMODULES = ('report', 'runcard', 'primary', 'baselines', 'evaluation_report', 'leakage_report', 'comparison_report', 'segmentation_report', 'travel_report', 'trust_report', 'audit', 'plots')
__all__ = list(SUBMODULES)


__getattr__ = lazy_submodules(__name__, SUBMODULES)

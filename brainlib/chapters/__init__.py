"""Each chapter's tables and sentences, computed with their numbers: the shared table helpers
(`report`), the run card (`runcard`), the primary comparison (`primary`), trivial
baselines (`baselines`), one module per chapter's analysis (`evaluation_report`,
`leakage_report`, `comparison_report`, `segmentation_report`, `travel_report`,
`trust_report`), the data audit (`audit`) and plotly figures (`plots`).
"""
from importlib import import_module

SUBMODULES = ('report', 'runcard', 'primary', 'baselines', 'evaluation_report', 'leakage_report', 'comparison_report', 'segmentation_report', 'travel_report', 'trust_report', 'audit', 'plots')
__all__ = list(SUBMODULES)


def __getattr__(name):
    """Submodules load on first use (`bl.chapters.report`), so importing the package is cheap."""
    if name in SUBMODULES:
        return import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

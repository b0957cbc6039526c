"""Configuration, the bottom layer: the one parameter schema, the profiles, paths and model
names (`params`), and the progress lines every long step prints (`progress`).
"""
from importlib import import_module

SUBMODULES = ('params', 'progress')
__all__ = list(SUBMODULES)


def __getattr__(name):
    """Submodules load on first use (`bl.config.params`), so importing the package is cheap."""
    if name in SUBMODULES:
        return import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

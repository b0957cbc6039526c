"""Configuration, the bottom layer: the one parameter schema, the profiles, paths and model
names (`params`), and the progress lines every long step prints (`progress`); and
`lazy_submodules`, how every subpackage loads its modules on first use.
"""
from importlib import import_module

SUBMODULES = ('params', 'progress')
__all__ = list(SUBMODULES)


def lazy_submodules(package: str, names):
    """A package's module `__getattr__`: `package.name` for a name in `names` is imported on
    first use (`bl.data.phantom`), so importing the package stays cheap (no TensorFlow)."""
    names = tuple(names)

    def __getattr__(name):
        if name in names:
            return import_module(f".{name}", package)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__


__getattr__ = lazy_submodules(__name__, SUBMODULES)

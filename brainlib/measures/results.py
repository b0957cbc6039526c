"""The base class of every result object, and the one way a seed becomes a generator.

A result is a dataclass that knows its numbers; ``Result`` gives it the ways to show them:
``summary()`` and ``str()`` print ``title()``, the ``to_frame()`` table and ``notes()``, and a
notebook shows the same as HTML. ``brainlib.chapters.audit`` and ``brainlib.measures.segmetrics`` build on it too.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


class Result:
    """Base class of result objects: ``summary()``, ``str()`` and the notebook display from
    ``title()``, ``to_frame()`` and ``notes()``. A subclass defines ``to_frame()`` and may
    override ``title()`` (default: the class name) and ``notes()`` (default: none)."""

    def title(self) -> str:
        return type(self).__name__

    def notes(self) -> list[str]:
        return []

    def to_frame(self) -> pd.DataFrame:
        raise NotImplementedError

    def summary(self) -> str:
        with pd.option_context("display.width", 120, "display.max_columns", 20,
                               "display.float_format", "{:.6g}".format):
            table = self.to_frame().to_string()
        return "\n".join([self.title(), table, *self.notes()])

    def __str__(self) -> str:
        return self.summary()

    def _repr_html_(self) -> str:
        """Notebook display: the title, the frame as a table, the notes."""
        notes = "".join(f"<p><small>{n}</small></p>" for n in self.notes())
        return f"<p><b>{self.title()}</b></p>{self.to_frame().to_html()}{notes}"


def as_rng(seed) -> np.random.Generator:
    """A ``numpy.random.Generator`` as given, or a new one seeded by ``seed``."""
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)

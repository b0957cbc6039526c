"""Holm's step-down correction of a family of p-values (family-wise error rate)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..measures.results import Result


@dataclass
class HolmResult(Result):
    """Holm's step-down adjustment of several p-values (family-wise error rate)."""

    frame: pd.DataFrame
    alpha: float

    def title(self) -> str:
        return f"Holm correction of {len(self.frame)} tests at alpha = {self.alpha}"

    def to_frame(self) -> pd.DataFrame:
        return self.frame.copy()


def holm_correction(pvalues, alpha: float = 0.05, names=None) -> HolmResult:
    """Holm (1979): sort p ascending, adjusted p_(i) = max_{j<=i} min(1, (m-j+1) p_(j))."""
    p = np.asarray(pvalues, dtype=np.float64)
    if p.ndim != 1 or np.isnan(p).any() or ((p < 0) | (p > 1)).any():
        raise ValueError(f"holm_correction: expected a 1-D array of p-values in [0, 1], found {p!r}")
    m = p.size
    order = np.argsort(p, kind="mergesort")
    stepped = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adjusted = np.empty(m)
    adjusted[order] = np.maximum.accumulate(stepped)
    names = list(names) if names is not None else [f"test {i + 1}" for i in range(m)]
    frame = pd.DataFrame({"test": names, "pvalue": p, "adjusted": adjusted,
                          "reject": adjusted <= alpha})
    return HolmResult(frame=frame, alpha=alpha)

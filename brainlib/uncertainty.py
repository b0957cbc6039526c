"""Monte Carlo dropout for the paper's classifiers: T stochastic passes of a trained head.

The paper's head has dropout 0.3 after each dense layer (its Table I). Keeping dropout on
at prediction time and averaging T passes approximates a Bayesian model average (Gal &
Ghahramani 2016); the spread of the passes is the model's uncertainty about each slice
(`calibration.predictive_entropy`, `calibration.mutual_information`). With a frozen base the
passes run over the cached base features, so T = 50 costs seconds, not 50 forward passes of
the base.
"""
from __future__ import annotations

import numpy as np


def mc_dropout_passes(head, features, passes: int = 50, batch_size: int = 1024,
                      seed: int = 0) -> np.ndarray:
    """p_tumor of every feature row under `passes` dropout masks: array (passes, N).

    The head's own dropout layers draw the masks (their seeds are fixed when the head is
    built), after `keras.utils.set_random_seed(seed)`: the same head, features and seed give
    the same passes."""
    import keras

    if passes < 1:
        raise ValueError(f"passes must be at least 1, found {passes}")
    keras.utils.set_random_seed(seed)
    features = np.asarray(features, dtype=np.float32)
    out = np.empty((passes, len(features)), dtype=np.float64)
    for t in range(passes):
        for start in range(0, len(features), batch_size):
            chunk = features[start:start + batch_size]
            out[t, start:start + len(chunk)] = np.asarray(head(chunk, training=True))[:, 1]
    return out

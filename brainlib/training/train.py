"""One training loop for every model: seeds, eq. (20)'s learning-rate decay, compile, and
an epoch loop that keeps the epoch with the lowest inner-validation loss.

A model family (`classifier`, `segmenter`) brings its model, its loss and a function that
gives each epoch's batches; everything else about training lives here once.
"""
from __future__ import annotations

import math
import time

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from ..config.progress import bar as progress_bar
from ..config.progress import epoch_done
from ..measures.equations import inverse_time_decay


def set_seed(seed: int) -> None:
    """Seed Python, NumPy, TensorFlow and Keras (same seed on CPU: same run)."""
    keras.utils.set_random_seed(int(seed))


def distribution_strategy() -> tf.distribute.Strategy:
    """MirroredStrategy over all GPUs when more than one is visible, else the default one."""
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy([gpu.name for gpu in gpus])
    return tf.distribute.get_strategy()


def learning_rate_schedule(learning_rate: float, decay_rate: float, steps_per_epoch: int):
    """Eq. (20) as a Keras schedule: the rate drops once per epoch (staircase)."""
    if decay_rate == 0:
        return learning_rate
    return keras.optimizers.schedules.InverseTimeDecay(
        learning_rate, decay_steps=steps_per_epoch, decay_rate=decay_rate, staircase=True
    )


def compile_model(model: keras.Model, loss, metrics, *, learning_rate: float, lr_decay: float,
                  batch_size: int, n_train: int) -> None:
    """Adam with eq. (20)'s per-epoch decay, the family's loss and metrics."""
    steps_per_epoch = max(1, math.ceil(n_train / batch_size))
    model.compile(optimizer=keras.optimizers.Adam(
        learning_rate_schedule(learning_rate, lr_decay, steps_per_epoch)),
        loss=loss, metrics=metrics)


def fit_epochs(model: keras.Model, epoch_batches, epochs: int, *, validation=None,
               keep_best: bool = True, learning_rate: float = 0.0, lr_decay: float = 0.0,
               progress: bool = False, description: str = "epochs") -> tuple[pd.DataFrame, int]:
    """Train `epochs` epochs, one `fit` call each on `epoch_batches(epoch)`; return the
    per-epoch history and the epoch kept.

    With `validation` (a dataset of inner-validation batches, never the test fold) and
    `keep_best`, the weights of the epoch with the lowest validation loss are restored;
    otherwise the last epoch is kept (the paper's protocol).
    """
    rows, best = [], (np.inf, 0, None)
    bar = progress_bar(range(epochs), description, "epoch", enabled=progress)
    for epoch in bar:
        started = time.perf_counter()
        result = model.fit(epoch_batches(epoch), epochs=1, verbose=0, shuffle=False,
                           validation_data=validation)
        row = {"epoch": epoch + 1, **{k: float(v[-1]) for k, v in result.history.items()},
               "learning_rate": float(inverse_time_decay(learning_rate, lr_decay, epoch)),
               "seconds": time.perf_counter() - started,
               "validation_set": "inner_validation" if validation is not None else "none"}
        rows.append(row)
        epoch_done(epoch + 1, epochs, row["seconds"])  # to the unit's watcher, if any
        if hasattr(bar, "set_postfix"):
            bar.set_postfix({k: f"{row[k]:.3f}" for k in ("loss", "val_loss") if k in row})
        if keep_best and row.get("val_loss", np.inf) < best[0]:
            best = (row["val_loss"], epoch + 1, model.get_weights())
    best_epoch = len(rows)
    if best[2] is not None:
        model.set_weights(best[2])
        best_epoch = best[1]
    history = pd.DataFrame(rows)
    history["best"] = history["epoch"] == best_epoch
    return history, best_epoch


def save_weights_atomic(model: keras.Model, path) -> None:
    """`model.save_weights` through a temporary file, renamed into place."""
    from ..data import write_atomic

    write_atomic(path, lambda tmp: model.save_weights(tmp))

"""The paper's classifiers trained: Adam on categorical cross-entropy, a feature cache, and
the family's "fit one unit, score its slices" for the runner.

Three paths train the same model:
- `end_to_end`: images go through the base at every step (needed with an unfrozen base,
  and the paper's on-the-fly augmentation);
- `feature_cache`: with a frozen base and no augmentation the base's pooled outputs are
  computed once per image and only the head is trained on them. Same seeds, same batch
  order and the same dropout masks give the same model up to float rounding. The base's
  unpooled outputs of the tumor slices are kept in the same pass (`TumorMaps`), so that
  Grad-CAM needs no second pass through the base;
- `feature_bank`: with a frozen base and augmentation, the base's outputs for K views of
  every image (view 0 the image itself, the others the paper's augmentation) are computed
  once, stored in float16, and each epoch trains the head on one view per image, drawn
  with the unit's seed. An approximation of on-the-fly augmentation (K distinct views
  instead of a new one every epoch) that every fold, scheme and control shares.

The frozen base can run in bfloat16 for feature extraction (`base_precision`): float32
weights, bfloat16 arithmetic, float32 features out.
"""
from __future__ import annotations

import time
import weakref
from dataclasses import asdict, dataclass
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from .. import models
from ..data import pipeline
from ..data import write_atomic
from ..config.params import SCHEMA
from ..config.progress import bar as progress_bar
from .runner import UnitResult, images_fingerprint
from .train import (
    compile_model,
    distribution_strategy,
    fit_epochs,
    save_weights_atomic,
    set_seed,
)
from ..data.transform import PAPER_AUGMENTATION


@dataclass(frozen=True)
class TrainConfig:
    """Every classifier training setting: the study fills it in from its parameters
    (`study.classifier_config`), and the defaults are the parameter schema's.

    `lr_decay` is eq. (20)'s decay rate: lr = learning_rate / (1 + lr_decay * epoch); 0
    keeps the rate constant. `standardize_features` (not in the paper) standardizes the
    base's pooled outputs per channel with training-set statistics, a Normalization layer
    first in the head: a random (weights=None) base gives features of wild scale on which
    the paper's head learns nothing.
    """

    image_size: int = SCHEMA["image_size"].default
    weights: str | None = None
    freeze_base: bool = True
    trainable_top_blocks: int = 0
    epochs: int = SCHEMA["epochs"].default
    batch_size: int = SCHEMA["batch_size"].default
    learning_rate: float = SCHEMA["learning_rate"].default
    lr_decay: float = SCHEMA["lr_decay"].default
    augment: bool = SCHEMA["augment"].default
    feature_cache: bool = True
    bank_views: int = SCHEMA["bank_views"].default
    base_precision: str = SCHEMA["base_precision"].default
    standardize_features: bool = SCHEMA["standardize_features"].default
    seed: int = SCHEMA["seed"].default

    @property
    def frozen(self) -> bool:
        return self.freeze_base and self.trainable_top_blocks == 0

    @property
    def uses_feature_cache(self) -> bool:
        """The base stays frozen and sees each image unchanged: its outputs can be cached."""
        return self.feature_cache and self.frozen and not self.augment

    @property
    def uses_feature_bank(self) -> bool:
        """The base stays frozen and the images are augmented: K views' outputs are banked."""
        return self.feature_cache and self.frozen and self.augment and self.bank_views > 0

    @property
    def path(self) -> str:
        """The training path these settings take."""
        if self.uses_feature_cache:
            return "feature_cache"
        return "feature_bank" if self.uses_feature_bank else "end_to_end"

    def replace(self, **changes) -> "TrainConfig":
        return TrainConfig(**{**asdict(self), **changes})


def one_hot(labels) -> np.ndarray:
    """(N,) labels 0/1 -> (N, 2) float32, column 1 = tumor."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.isin(labels, (0, 1)).all():
        raise ValueError(f"labels must be a 1-D array of 0/1; found shape {labels.shape}, "
                         f"values {np.unique(labels)[:5]}")
    return np.eye(models.N_CLASSES, dtype=np.float32)[labels.astype(int)]


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and variance of pooled features (N, 2, 2, C), computed in float64."""
    flat = np.asarray(features, dtype=np.float64).reshape(-1, features.shape[-1])
    return flat.mean(axis=0), flat.var(axis=0)


def _compile(model: keras.Model, config: TrainConfig, n_train: int) -> None:
    compile_model(model, keras.losses.CategoricalCrossentropy(),
                  [keras.metrics.CategoricalAccuracy(name="accuracy")],
                  learning_rate=config.learning_rate, lr_decay=config.lr_decay,
                  batch_size=config.batch_size, n_train=n_train)


# ----------------------------------------------------------------------------- features


def build_frozen_base(model_name: str, config: TrainConfig) -> keras.Model:
    """The base as `build_classifier` builds it with `seed=config.seed`, fully frozen;
    computing in bfloat16 when `config.base_precision` resolves to it (same weights)."""
    set_seed(config.seed)
    base = models.build_base(model_name, config.image_size, config.weights)
    base = models.set_base_trainable(base, freeze_base=True, trainable_top_blocks=0)
    if resolve_precision(config.base_precision) == "bfloat16":
        base = bfloat16_copy(base)
    return base


def resolve_precision(precision: str) -> str:
    """"auto" -> what `machine.bfloat16_probe` chooses here ("bfloat16" or "float32"); a run
    decides through `experiment.precision_probe`, which keeps that choice in its folder."""
    if precision == "auto":
        from ..data import machine

        return machine.bfloat16_probe()["chosen"]
    return precision


def bfloat16_copy(base: keras.Model) -> keras.Model:
    """The same base (same float32 weights), computing in bfloat16 (Keras' mixed policy)."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        copy = models.build_base(base.name, int(base.input.shape[1]), None)
    finally:
        keras.config.set_dtype_policy(previous)
    copy.set_weights(base.get_weights())
    return models.set_base_trainable(copy, freeze_base=True, trainable_top_blocks=0)


_FEATURE_FUNCTIONS: "weakref.WeakKeyDictionary[keras.Model, object]" = weakref.WeakKeyDictionary()


def feature_function(base: keras.Model):
    """A tf.function: 0-255 RGB batch -> pooled base features (2, 2, channels) per image.

    One per base (traced once, reused for training, validation and test images).
    """
    if base in _FEATURE_FUNCTIONS:
        return _FEATURE_FUNCTIONS[base]
    size = int(base.input.shape[1])
    pooling = models.head_pooling_layer(base)

    @tf.function(input_signature=[tf.TensorSpec([None, size, size, 3], tf.float32)])
    def features_of(images):
        output = base(pipeline.preprocess_input(base.name, images), training=False)
        return pooling(tf.cast(output, tf.float32))

    _FEATURE_FUNCTIONS[base] = features_of
    return features_of


_MAP_FUNCTIONS: "weakref.WeakKeyDictionary[keras.Model, object]" = weakref.WeakKeyDictionary()


def map_function(base: keras.Model):
    """A tf.function: 0-255 RGB batch -> the base's unpooled output (float32 (h, w,
    channels) per image), the maps Grad-CAM weighs. One per base."""
    if base not in _MAP_FUNCTIONS:
        size = int(base.input.shape[1])

        @tf.function(input_signature=[tf.TensorSpec([None, size, size, 3], tf.float32)])
        def maps_of(images):
            return tf.cast(base(pipeline.preprocess_input(base.name, images), training=False),
                           tf.float32)

        _MAP_FUNCTIONS[base] = maps_of
    return _MAP_FUNCTIONS[base]


def extract_features(base: keras.Model, images, batch_size: int = 64,
                     progress: bool = True, keep_maps=None):
    """Pooled base outputs of every image, computed once, in batches (float32 (N, 2, 2, C)).

    With `keep_maps` (row numbers), returns (features, maps): the base's unpooled outputs of
    those rows too (float32 (len(keep_maps), h, w, C)), pooled here into their features, so
    that Grad-CAM (`trust.gradcam.grad_cam_from_maps`) needs no second pass through the
    base."""
    n_images = len(images)
    features = np.empty((n_images, *models.pooled_feature_shape(base)), dtype=np.float32)
    kept = np.zeros(n_images, bool)
    if keep_maps is not None:
        kept[np.asarray(keep_maps, dtype=np.int64)] = True
        maps = np.empty((int(kept.sum()), *base.output.shape[1:]), dtype=np.float32)
        maps_of, pooling, filled = map_function(base), models.head_pooling_layer(base), 0
    features_of = feature_function(base)
    starts = range(0, n_images, batch_size)
    for start in progress_bar(starts, f"{base.name} features", "batch", enabled=progress):
        batch = tf.constant(np.asarray(images[start : start + batch_size], dtype=np.float32))
        if not kept[start : start + batch_size].any():
            features[start : start + len(batch)] = features_of(batch).numpy()
            continue
        output = maps_of(batch)
        features[start : start + len(batch)] = pooling(output).numpy()
        chosen = kept[start : start + len(batch)]
        maps[filled : filled + chosen.sum()] = output.numpy()[chosen]
        filled += int(chosen.sum())
    return features if keep_maps is None else (features, maps)


BANK_BATCH = 64  # fixed, so that a bank's views do not depend on any training setting


def extract_feature_bank(base: keras.Model, images, views: int, seed: int,
                         progress: bool = True) -> np.ndarray:
    """Pooled base outputs of `views` views of every image, float16 (N, views, 2, 2, C):
    view 0 the image itself, view v > 0 the paper's augmentation drawn statelessly from
    (seed, v, batch), so the same seed gives the same bank."""
    features_of = feature_function(base)
    n_images = len(images)
    bank = np.empty((n_images, views, *models.pooled_feature_shape(base)), dtype=np.float16)
    steps = [(view, start) for view in range(views) for start in range(0, n_images, BANK_BATCH)]
    for view, start in progress_bar(steps, f"{base.name} feature bank ({views} views)",
                                    "batch", enabled=progress):
        batch = tf.constant(np.asarray(images[start:start + BANK_BATCH], dtype=np.float32))
        if view:
            batch, _ = PAPER_AUGMENTATION(batch, None, tf.constant(
                [seed * 1000 + view, start // BANK_BATCH], tf.int64))
        bank[start:start + len(batch), view] = features_of(batch).numpy()
    return bank


# ----------------------------------------------------------------------------- training


@dataclass
class TrainedClassifier:
    """A trained classifier: its base, head (sharing weights with it) and per-epoch history."""

    model_name: str
    path: str  # "feature_cache" or "end_to_end"
    base: keras.Model
    head: keras.Sequential
    history: pd.DataFrame
    best_epoch: int
    seconds: float
    classifier: keras.Model | None = None  # the whole model (end-to-end path only)

    def features(self, images, batch_size: int = 64, progress: bool = False) -> np.ndarray:
        return extract_features(self.base, images, batch_size, progress)

    def predict_p_tumor_from_features(self, features: np.ndarray, batch_size: int = 1024) -> np.ndarray:
        """p_tumor (softmax column 1) from pooled base features."""
        chunks = [
            self.head(features[start : start + batch_size], training=False).numpy()[:, 1]
            for start in range(0, len(features), batch_size)
        ]
        return np.concatenate(chunks).astype(np.float64) if chunks else np.empty(0)

    def predict_p_tumor(self, images, batch_size: int = 64, progress: bool = False) -> np.ndarray:
        """p_tumor of 0-255 RGB images: base (inference mode) -> pooling -> head."""
        return self.predict_p_tumor_from_features(self.features(images, batch_size, progress))

    def save_checkpoint(self, folder) -> Path:
        """Head weights when the base is frozen (the base is rebuilt from the run's seed or
        weights file), else the whole model's; written atomically."""
        frozen = models.is_base_frozen(self.base)
        model = self.head if frozen or self.classifier is None else self.classifier
        target = Path(folder) / ("head.weights.h5" if frozen else "model.weights.h5")
        save_weights_atomic(model, target)
        return target


def _epoch_batches(inputs, targets, config: TrainConfig, order_seed: int, prepare,
                   augment: bool = False, bank: bool = False):
    """epoch -> that epoch's batches, in a NumPy-seeded order (every path, same order).
    With `bank`, `inputs` is a feature bank (N, K, ...) and each epoch takes one view per
    image, drawn from its own seeded stream."""
    order_rng = np.random.default_rng(order_seed)
    view_rng = np.random.default_rng([order_seed, 1])

    def batches_of(epoch):
        order = order_rng.permutation(len(targets))
        epoch_inputs = inputs
        if bank:
            views = view_rng.integers(0, inputs.shape[1], len(targets))
            epoch_inputs = inputs[np.arange(len(targets)), views].astype(np.float32)
        return pipeline.batches(epoch_inputs, targets, order, config.batch_size, prepare,
                                PAPER_AUGMENTATION if augment else None,
                                order_seed * 10_000 + epoch)
    return batches_of


def _validation_batches(inputs, labels, config: TrainConfig, prepare):
    if inputs is None or len(inputs) == 0:
        return None
    return pipeline.batches(np.asarray(inputs), one_hot(labels), np.arange(len(labels)),
                            config.batch_size, prepare)


def _fit(model, inputs, labels, config, seed, validation, keep_best, prepare, augment,
         progress, description, bank: bool = False):
    return fit_epochs(model, _epoch_batches(inputs, one_hot(labels), config, seed, prepare, augment,
                                            bank),
                      config.epochs, validation=validation, keep_best=keep_best,
                      learning_rate=config.learning_rate, lr_decay=config.lr_decay,
                      progress=progress, description=description)


def _as_float32(x, y):
    return tf.cast(x, tf.float32), y


def train_head_on_features(base: keras.Model, train_features: np.ndarray, train_labels,
                           config: TrainConfig, validation_features: np.ndarray | None = None,
                           validation_labels=None, head_seed: int | None = None,
                           keep_best: bool = True, progress: bool = False) -> TrainedClassifier:
    """Train only the head on cached pooled features of a frozen base (feature-cache path),
    or on a feature bank (N, K, ...) (feature-bank path: one view per image per epoch).

    `head_seed` (default `config.seed`) seeds the head's initial weights, its dropout masks
    and the batch order, exactly as in `train_end_to_end`.
    """
    bank = train_features.ndim == 5
    if not models.is_base_frozen(base):
        raise ValueError(f"the feature cache needs a frozen base; {base.name} has "
                         f"{len(base.trainable_weights)} trainable weights")
    started = time.perf_counter()
    head_seed = config.seed if head_seed is None else head_seed
    with distribution_strategy().scope():
        head = models.build_head(models.pooled_feature_shape(base), seed=head_seed,
                                 standardize_features=config.standardize_features)
        if config.standardize_features:  # statistics of the unaugmented images, as end to end
            models.set_feature_statistics(head, *feature_statistics(
                train_features[:, 0] if bank else train_features))
        _compile(head, config, len(train_labels))
    validation = _validation_batches(validation_features, validation_labels, config, _as_float32)
    history, best_epoch = _fit(head, train_features, train_labels, config, head_seed, validation,
                               keep_best, _as_float32, False, progress, f"{base.name} head", bank)
    return TrainedClassifier(base.name, "feature_bank" if bank else "feature_cache", base, head,
                             history, best_epoch, time.perf_counter() - started)


def train_end_to_end(model_name: str, train_images, train_labels, config: TrainConfig,
                     validation_images=None, validation_labels=None,
                     head_seed: int | None = None, keep_best: bool = True,
                     progress: bool = False) -> TrainedClassifier:
    """Train the whole classifier on images (augmentation and fine-tuning need this path).

    `config.seed` seeds the base's initial weights (weights=None); `head_seed` (default
    `config.seed`) the head, dropout, batch order and augmentation.
    """
    started = time.perf_counter()
    head_seed = config.seed if head_seed is None else head_seed
    with distribution_strategy().scope():
        classifier = models.build_classifier(
            model_name, config.image_size, config.weights, config.freeze_base,
            config.trainable_top_blocks, seed=config.seed, head_seed=head_seed,
            standardize_features=config.standardize_features,
        )
        if config.standardize_features:  # statistics of the base's outputs before training
            features = extract_features(models.base_of(classifier), train_images, progress=progress)
            models.set_feature_statistics(classifier, *feature_statistics(features))
        _compile(classifier, config, len(train_labels))

    def prepare(images, targets):
        return pipeline.preprocess_input(model_name, images), targets

    validation = _validation_batches(validation_images, validation_labels, config, prepare)
    history, best_epoch = _fit(classifier, np.asarray(train_images), train_labels, config,
                               head_seed, validation, keep_best, prepare, config.augment,
                               progress, f"{model_name} end-to-end")
    return TrainedClassifier(model_name, "end_to_end", models.base_of(classifier),
                             models.head_of(classifier), history, best_epoch,
                             time.perf_counter() - started, classifier=classifier)


def train_classifier(model_name: str, train_images, train_labels, config: TrainConfig,
                     validation_images=None, validation_labels=None,
                     head_seed: int | None = None, progress: bool = False) -> TrainedClassifier:
    """Train on uint8 (or 0-255 float) images, through the feature cache when it applies."""
    models.check_model_name(model_name)
    if config.path == "end_to_end":
        return train_end_to_end(model_name, train_images, train_labels, config,
                                validation_images, validation_labels, head_seed, progress=progress)
    base = build_frozen_base(model_name, config)
    if config.uses_feature_bank:
        train_features = extract_feature_bank(base, train_images, config.bank_views, config.seed,
                                              progress=progress)
    else:
        train_features = extract_features(base, train_images, progress=progress)
    validation_features = None
    if validation_images is not None:
        validation_features = extract_features(base, validation_images, progress=progress)
    return train_head_on_features(base, train_features, train_labels, config, validation_features,
                                  validation_labels, head_seed, progress=progress)


# ----------------------------------------------------------------------------- the family


@dataclass(frozen=True)
class TumorMaps:
    """The frozen base's unpooled outputs (N, h, w, C) of the manifest's tumor slices
    (`rows`, ascending), kept beside the feature cache for Grad-CAM."""

    rows: np.ndarray
    maps: np.ndarray

    def positions(self, rows) -> np.ndarray:
        """Where manifest rows (all of them tumor slices) sit in `maps`."""
        rows = np.asarray(rows, dtype=np.int64)
        found = np.searchsorted(self.rows, rows)
        inside = np.minimum(found, max(len(self.rows) - 1, 0))
        if len(rows) and (not len(self.rows) or np.any(self.rows[inside] != rows)):
            raise ValueError("Grad-CAM asked for the maps of rows that are not tumor slices")
        return found


class ClassifierFamily:
    """ResNet50 or VGG16 for the unit runner: fit one unit, score its slices (p_tumor).

    With a frozen base the base's features of every manifest row (without augmentation)
    or its feature bank (with augmentation) are computed once per run folder (`features/`,
    keyed by the images, so the cross-validation, the institution hold-out and the paper's
    protocol share them) and every unit trains a head on them.
    """

    default_threshold = 0.5  # on p_tumor

    def __init__(self, model_name: str, config: TrainConfig, images=None):
        models.check_model_name(model_name)
        self.name, self.config, self.images = model_name, config, images
        self.base = self.features = self.bank = self.tumor_maps = None

    def settings(self) -> dict:
        return {"family": "classifier", "model": self.name, "config": asdict(self.config)}

    def prepare(self, manifest: pd.DataFrame, run_dir: Path, progress: bool) -> None:
        if self.images is None:
            self.images = pipeline.load_images(manifest, self.config.image_size)
        if self.config.path != "end_to_end" and self.features is None:
            config = self.config
            self.base = build_frozen_base(self.name, config)
            precision = resolve_precision(config.base_precision)
            name = (f"{self.name}-{config.image_size}-{config.weights or 'none'}-seed{config.seed}"
                    f"-{images_fingerprint(manifest)}"
                    + ("" if precision == "float32" else f"-{precision}"))
            if config.uses_feature_bank:
                path = Path(run_dir) / "features" / f"{name}-bank{config.bank_views}.npy"
                self.bank = self._load_or_compute(path, lambda: extract_feature_bank(
                    self.base, self.images, config.bank_views, config.seed, progress))
                self.features = self.bank[:, 0].astype(np.float32)
            else:
                self._prepare_features(manifest, Path(run_dir) / "features", name, progress)

    def _prepare_features(self, manifest: pd.DataFrame, folder: Path, name: str,
                          progress: bool) -> None:
        """The features of every row, and the base's unpooled outputs of the tumor slices
        (`TumorMaps`, for Grad-CAM), computed in one pass and kept in `folder`, the maps
        under a name that hashes their rows. Where features exist without maps of these rows
        (a run folder from before the maps were kept, or the same images labelled
        otherwise), Grad-CAM passes through the base again."""
        import hashlib

        rows = np.flatnonzero(manifest["label"].to_numpy() == 1)
        # The features depend on the images only; which maps are kept, on the labels too.
        rows_key = hashlib.sha1(rows.astype(np.int64).tobytes()).hexdigest()[:12]
        path, maps_path = folder / f"{name}.npy", folder / f"{name}-tumor-maps-{rows_key}.npy"
        if path.exists():
            self.features = np.load(path)
            if maps_path.exists():
                self.tumor_maps = TumorMaps(rows, np.load(maps_path, mmap_mode="r"))
            return
        features, maps = extract_features(self.base, self.images, progress=progress,
                                          keep_maps=rows)
        write_atomic(maps_path, lambda tmp: np.save(tmp, maps))
        write_atomic(path, lambda tmp: np.save(tmp, features))
        self.features, self.tumor_maps = features, TumorMaps(rows, maps)

    @staticmethod
    def _load_or_compute(path: Path, compute) -> np.ndarray:
        if path.exists():
            return np.load(path)
        array = compute()
        write_atomic(path, lambda tmp: np.save(tmp, array))
        return array

    def release(self) -> None:
        """Drop the arrays and the base (one family in memory at a time)."""
        self.images = self.base = self.features = self.bank = self.tumor_maps = None

    def fit(self, unit, keep_best: bool, progress: bool):
        """Train on the unit's fit rows (validating on its inner validation rows), score
        its validation and test rows."""
        if self.features is not None:
            inputs = self.bank if self.bank is not None else self.features
            trained = train_head_on_features(
                self.base, inputs[unit.fit], unit.fit_labels, self.config,
                self.features[unit.validation], unit.validation_labels, unit.seed, keep_best,
                progress)
            score = lambda rows: trained.predict_p_tumor_from_features(self.features[rows])
        else:
            trained = train_end_to_end(
                self.name, self.images[unit.fit], unit.fit_labels, self.config,
                self.images[unit.validation], unit.validation_labels, unit.seed, keep_best,
                progress)
            score = lambda rows: trained.predict_p_tumor(self.images[rows])
        test_scores = score(unit.test)
        history = trained.history.assign(path=trained.path)
        return UnitResult(history, trained.best_epoch, score(unit.validation), test_scores,
                          test_scores, save=trained.save_checkpoint)

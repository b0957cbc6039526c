"""The paper's classifiers trained: Adam on categorical cross-entropy, a feature cache, and
the family's "fit one unit, score its slices" for the runner.

Two paths train the same model:
- `end_to_end`: images go through the base at every step (needed with augmentation or an
  unfrozen base);
- `feature_cache`: with a frozen base and no augmentation the base's pooled outputs are
  computed once per image and only the head is trained on them. Same seeds, same batch
  order and the same dropout masks give the same model up to float rounding.
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
from tqdm import tqdm  # text bars: no widget dependency in notebooks

from . import models, pipeline
from .data import write_atomic
from .params import SCHEMA
from .runner import UnitResult, manifest_fingerprint
from .train import compile_model, distribution_strategy, fit_epochs, save_weights_atomic, set_seed
from .transform import PAPER_AUGMENTATION


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
    standardize_features: bool = SCHEMA["standardize_features"].default
    seed: int = SCHEMA["seed"].default

    @property
    def uses_feature_cache(self) -> bool:
        """The base stays frozen and sees each image unchanged: its outputs can be cached."""
        return (self.feature_cache and self.freeze_base and self.trainable_top_blocks == 0
                and not self.augment)

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
    """The base as `build_classifier` builds it with `seed=config.seed`, fully frozen."""
    set_seed(config.seed)
    base = models.build_base(model_name, config.image_size, config.weights)
    return models.set_base_trainable(base, freeze_base=True, trainable_top_blocks=0)


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
        return pooling(base(pipeline.preprocess_input(base.name, images), training=False))

    _FEATURE_FUNCTIONS[base] = features_of
    return features_of


def extract_features(base: keras.Model, images, batch_size: int = 64,
                     progress: bool = True) -> np.ndarray:
    """Pooled base outputs of every image, computed once, in batches (float32 (N, 2, 2, C))."""
    features_of = feature_function(base)
    n_images = len(images)
    features = np.empty((n_images, *models.pooled_feature_shape(base)), dtype=np.float32)
    starts = range(0, n_images, batch_size)
    for start in tqdm(starts, desc=f"{base.name} features", unit="batch", disable=not progress,
                      leave=False):
        batch = np.asarray(images[start : start + batch_size], dtype=np.float32)
        features[start : start + len(batch)] = features_of(tf.constant(batch)).numpy()
    return features


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
                   augment: bool = False):
    """epoch -> that epoch's batches, in a NumPy-seeded order (both paths, same order)."""
    order_rng = np.random.default_rng(order_seed)

    def batches_of(epoch):
        order = order_rng.permutation(len(targets))
        return pipeline.batches(inputs, targets, order, config.batch_size, prepare,
                                PAPER_AUGMENTATION if augment else None,
                                order_seed * 10_000 + epoch)
    return batches_of


def _validation_batches(inputs, labels, config: TrainConfig, prepare):
    if inputs is None or len(inputs) == 0:
        return None
    return pipeline.batches(np.asarray(inputs), one_hot(labels), np.arange(len(labels)),
                            config.batch_size, prepare)


def _fit(model, inputs, labels, config, seed, validation, keep_best, prepare, augment,
         progress, description):
    return fit_epochs(model, _epoch_batches(inputs, one_hot(labels), config, seed, prepare, augment),
                      config.epochs, validation=validation, keep_best=keep_best,
                      learning_rate=config.learning_rate, lr_decay=config.lr_decay,
                      progress=progress, description=description)


def _unchanged(x, y):
    return x, y


def train_head_on_features(base: keras.Model, train_features: np.ndarray, train_labels,
                           config: TrainConfig, validation_features: np.ndarray | None = None,
                           validation_labels=None, head_seed: int | None = None,
                           keep_best: bool = True, progress: bool = False) -> TrainedClassifier:
    """Train only the head on cached pooled features of a frozen base (feature-cache path).

    `head_seed` (default `config.seed`) seeds the head's initial weights, its dropout masks
    and the batch order, exactly as in `train_end_to_end`.
    """
    if not models.is_base_frozen(base):
        raise ValueError(f"the feature cache needs a frozen base; {base.name} has "
                         f"{len(base.trainable_weights)} trainable weights")
    started = time.perf_counter()
    head_seed = config.seed if head_seed is None else head_seed
    with distribution_strategy().scope():
        head = models.build_head(models.pooled_feature_shape(base), seed=head_seed,
                                 standardize_features=config.standardize_features)
        if config.standardize_features:
            models.set_feature_statistics(head, *feature_statistics(train_features))
        _compile(head, config, len(train_labels))
    validation = _validation_batches(validation_features, validation_labels, config, _unchanged)
    history, best_epoch = _fit(head, train_features, train_labels, config, head_seed, validation,
                               keep_best, _unchanged, False, progress, f"{base.name} head")
    return TrainedClassifier(base.name, "feature_cache", base, head, history, best_epoch,
                             time.perf_counter() - started)


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
    if not config.uses_feature_cache:
        return train_end_to_end(model_name, train_images, train_labels, config,
                                validation_images, validation_labels, head_seed, progress=progress)
    base = build_frozen_base(model_name, config)
    train_features = extract_features(base, train_images, progress=progress)
    validation_features = None
    if validation_images is not None:
        validation_features = extract_features(base, validation_images, progress=progress)
    return train_head_on_features(base, train_features, train_labels, config, validation_features,
                                  validation_labels, head_seed, progress=progress)


# ----------------------------------------------------------------------------- the family


class ClassifierFamily:
    """ResNet50 or VGG16 for the unit runner: fit one unit, score its slices (p_tumor).

    With a frozen base and no augmentation the base's features of every manifest row are
    computed once per run folder (`features/`) and every unit trains a head on them.
    """

    default_threshold = 0.5  # on p_tumor

    def __init__(self, model_name: str, config: TrainConfig, images=None):
        models.check_model_name(model_name)
        self.name, self.config, self.images = model_name, config, images
        self.base = self.features = None

    def settings(self) -> dict:
        return {"family": "classifier", "model": self.name, "config": asdict(self.config)}

    def prepare(self, manifest: pd.DataFrame, run_dir: Path, progress: bool) -> None:
        if self.images is None:
            self.images = pipeline.load_images(manifest, self.config.image_size)
        if self.config.uses_feature_cache and self.features is None:
            self.base = build_frozen_base(self.name, self.config)
            path = Path(run_dir) / "features" / (
                f"{self.name}-{self.config.image_size}-{self.config.weights or 'none'}"
                f"-seed{self.config.seed}-{manifest_fingerprint(manifest)}.npy")
            if path.exists():
                self.features = np.load(path)
            else:
                self.features = extract_features(self.base, self.images, progress=progress)
                write_atomic(path, lambda tmp: np.save(tmp, self.features))

    def release(self) -> None:
        """Drop the arrays and the base (one family in memory at a time)."""
        self.images = self.base = self.features = None

    def fit(self, unit, keep_best: bool, progress: bool):
        """Train on the unit's fit rows (validating on its inner validation rows), score
        its validation and test rows."""
        if self.features is not None:
            trained = train_head_on_features(
                self.base, self.features[unit.fit], unit.fit_labels, self.config,
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

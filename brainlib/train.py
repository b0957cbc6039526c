"""Training: Adam on categorical cross-entropy, eq. (20) decay, a feature cache, CV runs.

Two paths train the same model:
- `end_to_end`: images go through the base at every step (needed with augmentation or an
  unfrozen base);
- `feature_cache`: with a frozen base and no augmentation the base's pooled outputs are
  computed once per image and only the head is trained on them. Same seeds, same batch
  order and the same dropout masks give the same model up to float rounding.

`run_cross_validation` trains every (model, scheme, control, fold) unit of a manifest and
writes one predictions table; a stopped run resumes after its last finished unit.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
import weakref
from dataclasses import asdict, dataclass
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
from tqdm import tqdm  # text bars: no widget dependency in notebooks

from . import models, pipeline, splits
from .data import write_csv_atomic, write_text_atomic

CONTROLS = ("none", "shuffled_labels")
SCHEMES = splits.SCHEMES
PATHS = ("feature_cache", "end_to_end")
PREDICTION_COLUMNS = ("model", "scheme", "control", "fold", "y_true", "p_tumor", "y_pred")
UNIT_COLUMNS = ("model", "scheme", "control", "fold")
REQUIRED_MANIFEST_COLUMNS = ("patient_id", "slice_number", "label")


@dataclass(frozen=True)
class TrainConfig:
    """Every training setting of a run (one home; the study's profiles fill it in).

    `lr_decay` is eq. (20)'s decay rate: lr = learning_rate / (1 + lr_decay * epoch); 0
    keeps the rate constant. `standardize_features` (not in the paper) standardizes the
    base's pooled outputs per channel with training-set statistics, a Normalization layer
    first in the head: a random (weights=None) base gives features of wild scale on which
    the paper's head learns nothing. Early stopping watches `val_loss` on an inner validation set
    carved from the training rows (patients under the patient scheme), never the test fold.
    """

    image_size: int = 64
    weights: str | None = None
    freeze_base: bool = True
    trainable_top_blocks: int = 0
    epochs: int = 20
    batch_size: int = 32
    learning_rate: float = 1e-3
    lr_decay: float = 0.0
    augment: bool = False
    early_stopping_patience: int | None = None
    validation_fraction: float = 0.15
    feature_cache: bool = True
    standardize_features: bool = False
    seed: int = 0

    @property
    def uses_feature_cache(self) -> bool:
        """The base stays frozen and sees each image unchanged: its outputs can be cached."""
        return (
            self.feature_cache
            and self.freeze_base
            and self.trainable_top_blocks == 0
            and not self.augment
        )

    def replace(self, **changes) -> "TrainConfig":
        return TrainConfig(**{**asdict(self), **changes})


# ----------------------------------------------------------------------------- basics


def set_seed(seed: int) -> None:
    """Seed Python, NumPy, TensorFlow and Keras (same seed on CPU: same run)."""
    keras.utils.set_random_seed(int(seed))


def distribution_strategy() -> tf.distribute.Strategy:
    """MirroredStrategy over all GPUs when more than one is visible, else the default one."""
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy([gpu.name for gpu in gpus])
    return tf.distribute.get_strategy()


def inverse_time_decay(learning_rate: float, decay_rate: float, epoch: int) -> float:
    """Eq. (20): lr = lr0 / (1 + decay_rate * epoch), epoch counted from 0."""
    return learning_rate / (1.0 + decay_rate * epoch)


def learning_rate_schedule(learning_rate: float, decay_rate: float, steps_per_epoch: int):
    """Eq. (20) as a Keras schedule: the rate drops once per epoch (staircase)."""
    if decay_rate == 0:
        return learning_rate
    return keras.optimizers.schedules.InverseTimeDecay(
        learning_rate, decay_steps=steps_per_epoch, decay_rate=decay_rate, staircase=True
    )


def one_hot(labels) -> np.ndarray:
    """(N,) labels 0/1 -> (N, 2) float32, column 1 = tumor."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.isin(labels, (0, 1)).all():
        raise ValueError(f"labels must be a 1-D array of 0/1; found shape {labels.shape}, "
                         f"values {np.unique(labels)[:5]}")
    return np.eye(models.N_CLASSES, dtype=np.float32)[labels.astype(int)]


def shuffle_labels(labels, seed: int) -> np.ndarray:
    """A seeded permutation of the labels (the random-label control; class counts kept)."""
    return np.random.default_rng(seed).permutation(np.asarray(labels))


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and variance of pooled features (N, 2, 2, C), computed in float64."""
    flat = np.asarray(features, dtype=np.float64).reshape(-1, features.shape[-1])
    return flat.mean(axis=0), flat.var(axis=0)


def _compile(model: keras.Model, config: TrainConfig, n_train: int) -> None:
    steps_per_epoch = max(1, math.ceil(n_train / config.batch_size))
    model.compile(
        optimizer=keras.optimizers.Adam(
            learning_rate_schedule(config.learning_rate, config.lr_decay, steps_per_epoch)
        ),
        loss=keras.losses.CategoricalCrossentropy(),
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
    )


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


def extract_features(
    base: keras.Model, images, batch_size: int = 64, progress: bool = True
) -> np.ndarray:
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

    def save_checkpoint(self, folder: str | os.PathLike) -> Path:
        """Head weights when the base is frozen (the base is rebuilt from the run's seed or
        weights file), else the whole model's; written atomically."""
        frozen = models.is_base_frozen(self.base)
        model = self.head if frozen or self.classifier is None else self.classifier
        target = Path(folder) / ("head.weights.h5" if frozen else "model.weights.h5")
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".tmp-{os.getpid()}-{target.name}")  # keeps .weights.h5
        model.save_weights(tmp)
        os.replace(tmp, target)
        return target


def _array_dataset(inputs, targets, order, batch_size, transform=None) -> tf.data.Dataset:
    # The order comes from NumPy, so both paths see the same batches in the same order.
    dataset = tf.data.Dataset.from_tensor_slices((inputs[order], targets[order])).batch(batch_size)
    if transform is not None:
        dataset = dataset.map(transform)  # sequential: one stream of seeded randomness
    return pipeline.prefetch_without_autotune(dataset)


def _fit_epochs(
    model: keras.Model,
    train_inputs,
    train_targets: np.ndarray,
    validation: tuple | None,
    config: TrainConfig,
    order_seed: int,
    train_transform=None,
    validation_transform=None,
    validation_set: str = "validation",
    progress: bool = False,
    description: str = "epochs",
) -> tuple[pd.DataFrame, int]:
    """One `fit` call per epoch on a NumPy-seeded order; optional early stopping on val_loss."""
    order_rng = np.random.default_rng(order_seed)
    n_train = len(train_targets)
    validation_data = None
    if validation is not None and len(validation[1]):
        order = np.arange(len(validation[1]))
        validation_data = _array_dataset(
            validation[0], validation[1], order, config.batch_size, validation_transform
        )
    rows, best_loss, best_epoch, best_weights, waited = [], np.inf, 0, None, 0
    bar = tqdm(range(config.epochs), desc=description, unit="epoch", disable=not progress, leave=False)
    for epoch in bar:
        started = time.perf_counter()
        order = order_rng.permutation(n_train)
        dataset = _array_dataset(train_inputs, train_targets, order, config.batch_size, train_transform)
        result = model.fit(dataset, epochs=1, verbose=0, shuffle=False, validation_data=validation_data)
        row = {"epoch": epoch + 1, **{k: float(v[-1]) for k, v in result.history.items()}}
        row["learning_rate"] = inverse_time_decay(config.learning_rate, config.lr_decay, epoch)
        row["seconds"] = time.perf_counter() - started
        row["validation_set"] = validation_set if validation_data is not None else "none"
        rows.append(row)
        bar.set_postfix({k: f"{row[k]:.3f}" for k in ("loss", "accuracy", "val_loss") if k in row})
        if config.early_stopping_patience is not None and "val_loss" in row:
            if row["val_loss"] < best_loss:
                best_loss, best_epoch, best_weights, waited = row["val_loss"], epoch + 1, model.get_weights(), 0
            else:
                waited += 1
                if waited > config.early_stopping_patience:
                    break
    if best_weights is not None:
        model.set_weights(best_weights)
    else:
        best_epoch = len(rows)
    history = pd.DataFrame(rows)
    history["best"] = history["epoch"] == best_epoch
    return history, best_epoch


def train_head_on_features(
    base: keras.Model,
    train_features: np.ndarray,
    train_labels,
    config: TrainConfig,
    validation_features: np.ndarray | None = None,
    validation_labels=None,
    head_seed: int | None = None,
    validation_set: str = "validation",
    progress: bool = False,
) -> TrainedClassifier:
    """Train only the head on cached pooled features of a frozen base (feature-cache path).

    `head_seed` (default `config.seed`) seeds the head's initial weights, its dropout masks
    and the batch order, exactly as in `train_end_to_end`.
    """
    if not models.is_base_frozen(base):
        raise ValueError(f"the feature cache needs a frozen base; {base.name} has "
                         f"{len(base.trainable_weights)} trainable weights")
    started = time.perf_counter()
    head_seed = config.seed if head_seed is None else head_seed
    train_targets = one_hot(train_labels)
    with distribution_strategy().scope():
        head = models.build_head(models.pooled_feature_shape(base), seed=head_seed,
                                 standardize_features=config.standardize_features)
        if config.standardize_features:
            models.set_feature_statistics(head, *feature_statistics(train_features))
        _compile(head, config, len(train_targets))
    validation = None
    if validation_features is not None:
        validation = (validation_features, one_hot(validation_labels))
    history, best_epoch = _fit_epochs(
        head, train_features, train_targets, validation, config, head_seed,
        validation_set=validation_set, progress=progress, description=f"{base.name} head",
    )
    return TrainedClassifier(base.name, "feature_cache", base, head, history, best_epoch,
                             time.perf_counter() - started)


def train_end_to_end(
    model_name: str,
    train_images,
    train_labels,
    config: TrainConfig,
    validation_images=None,
    validation_labels=None,
    head_seed: int | None = None,
    validation_set: str = "validation",
    progress: bool = False,
) -> TrainedClassifier:
    """Train the whole classifier on images (augmentation and fine-tuning need this path).

    `config.seed` seeds the base's initial weights (weights=None); `head_seed` (default
    `config.seed`) the head, dropout, batch order and augmentation.
    """
    started = time.perf_counter()
    head_seed = config.seed if head_seed is None else head_seed
    train_targets = one_hot(train_labels)
    with distribution_strategy().scope():
        classifier = models.build_classifier(
            model_name, config.image_size, config.weights, config.freeze_base,
            config.trainable_top_blocks, seed=config.seed, head_seed=head_seed,
            standardize_features=config.standardize_features,
        )
        if config.standardize_features:  # statistics of the base's outputs before training
            features = extract_features(models.base_of(classifier), train_images, progress=progress)
            models.set_feature_statistics(classifier, *feature_statistics(features))
        _compile(classifier, config, len(train_targets))
    augmentation = pipeline.augmentation_layers(head_seed) if config.augment else None

    def prepare(images, targets):
        return pipeline.preprocess_input(model_name, images), targets

    def augment_and_prepare(images, targets):
        images = augmentation(tf.cast(images, tf.float32), training=True)
        return pipeline.preprocess_input(model_name, images), targets

    validation = None
    if validation_images is not None:
        validation = (np.asarray(validation_images), one_hot(validation_labels))
    history, best_epoch = _fit_epochs(
        classifier, np.asarray(train_images), train_targets, validation, config, head_seed,
        train_transform=augment_and_prepare if augmentation is not None else prepare,
        validation_transform=prepare, validation_set=validation_set, progress=progress,
        description=f"{model_name} end-to-end",
    )
    return TrainedClassifier(model_name, "end_to_end", models.base_of(classifier),
                             models.head_of(classifier), history, best_epoch,
                             time.perf_counter() - started, classifier=classifier)


def train_classifier(
    model_name: str,
    train_images,
    train_labels,
    config: TrainConfig,
    validation_images=None,
    validation_labels=None,
    head_seed: int | None = None,
    progress: bool = False,
) -> TrainedClassifier:
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


# ----------------------------------------------------------------------------- runs


def _manifest_fingerprint(manifest: pd.DataFrame) -> str:
    columns = [c for c in ("patient_id", "slice_number", "label", "fold_patient", "fold_slice",
                           "split_patient", "split_slice") if c in manifest.columns]
    return hashlib.sha1(manifest[columns].to_csv(index=False).encode()).hexdigest()[:16]


def _check_run_settings(run_dir: Path, settings: dict) -> None:
    path = run_dir / "run.json"
    settings = json.loads(json.dumps(settings, default=str))  # as it reads back from disk
    if path.exists():
        before = json.loads(path.read_text())
        changed = {k: (before.get(k), v) for k, v in settings.items() if before.get(k) != v}
        if changed:
            details = "; ".join(f"{k}: run has {old!r}, this call {new!r}" for k, (old, new) in changed.items())
            raise ValueError(f"run folder {run_dir} was started with other settings ({details}): "
                             "use a new run folder or the same settings")
    else:
        write_text_atomic(path, json.dumps(settings, indent=2))


def read_predictions(run_dir: str | os.PathLike) -> pd.DataFrame:
    """The run's predictions table (empty frame if nothing is finished yet)."""
    path = Path(run_dir) / "predictions.csv"
    if not path.exists():
        return pd.DataFrame()
    return pd.read_csv(path, dtype={"patient_id": str, "institution": str})


def unit_name(model_name: str, scheme: str, control: str, fold: int) -> str:
    return f"{model_name}-{scheme}-{control}-fold{fold}"


def _inner_validation(train_rows: pd.DataFrame, scheme: str, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask over train_rows: the inner validation set for early stopping
    (whole patients under the patient scheme, single slices under the slice scheme)."""
    rng = np.random.default_rng(seed)
    if scheme == "patient":
        patients = train_rows["patient_id"].unique()
        n_chosen = max(1, round(fraction * len(patients)))
        if n_chosen >= len(patients):
            raise ValueError(f"early stopping needs validation patients, but the training side "
                             f"has only {len(patients)} patient(s)")
        chosen = rng.choice(patients, n_chosen, replace=False)
        return train_rows["patient_id"].isin(chosen).to_numpy()
    mask = np.zeros(len(train_rows), dtype=bool)
    mask[rng.choice(len(train_rows), max(1, round(fraction * len(train_rows))), replace=False)] = True
    return mask


def _check_manifest(manifest: pd.DataFrame, schemes, split: str) -> None:
    prefix = "fold" if split == "cv" else "split"
    expected = list(REQUIRED_MANIFEST_COLUMNS) + [f"{prefix}_{s}" for s in schemes]
    missing = [c for c in expected if c not in manifest.columns]
    if missing:
        raise ValueError(f"manifest lacks columns {missing} (expected {expected}; add split "
                         "columns with brainlib.splits.add_splits)")


def run_cross_validation(
    manifest: pd.DataFrame,
    run_dir: str | os.PathLike,
    config: TrainConfig = TrainConfig(),
    models_to_run=models.MODEL_NAMES,
    schemes=("patient",),
    controls=("none",),
    split: str = "cv",
    folds=None,
    images: np.ndarray | None = None,
    progress: bool | str = True,
) -> pd.DataFrame:
    """Train and predict every (model, scheme, control, fold) unit; one predictions table.

    split="cv" trains on all folds but one of `fold_<scheme>` and predicts that one;
    split="holdout" uses `split_<scheme>` (70:30, written as fold 0). The
    "shuffled_labels" control permutes the labels of the training rows only; the test rows
    keep their true labels. Writes under `run_dir`: `run.json` (settings, checked on
    resume), `units/<unit>/history.csv` and checkpoint, `predictions.csv` (manifest columns
    + model, scheme, control, fold, y_true, p_tumor, y_pred), every file atomically. A
    stopped run resumes after its last finished unit. `images` (uint8 (N, H, W, 3) in
    manifest order) skips loading the TIFFs.
    """
    if split not in ("cv", "holdout"):
        raise ValueError(f"split must be 'cv' or 'holdout'; found {split!r}")
    for name, values, allowed in (("models_to_run", models_to_run, models.MODEL_NAMES),
                                  ("schemes", schemes, SCHEMES), ("controls", controls, CONTROLS)):
        unknown = [v for v in values if v not in allowed]
        if unknown:
            raise ValueError(f"{name} must be among {allowed}; found {unknown}")
    manifest = manifest.reset_index(drop=True)
    _check_manifest(manifest, schemes, split)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)

    units = []
    for model_name in models_to_run:
        for scheme in schemes:
            scheme_folds = [None] if split == "holdout" else sorted(
                int(f) for f in manifest[f"fold_{scheme}"].unique())
            if folds is not None and split == "cv":
                scheme_folds = [f for f in scheme_folds if f in set(folds)]
            for control in controls:
                units += [(model_name, scheme, control, fold) for fold in scheme_folds]
    _check_run_settings(run_dir, {
        "config": asdict(config), "models": list(models_to_run), "schemes": list(schemes),
        "controls": list(controls), "split": split, "folds": None if folds is None else list(folds),
        "manifest": _manifest_fingerprint(manifest), "n_rows": len(manifest),
    })
    done = read_predictions(run_dir)
    finished = set()
    if len(done):
        finished = set(done[list(UNIT_COLUMNS)].drop_duplicates().itertuples(index=False, name=None))
    todo = [u for u in units if (u[0], u[1], u[2], 0 if u[3] is None else u[3]) not in finished]
    if not todo:
        return done
    if images is None:
        images = pipeline.load_images(manifest, config.image_size)
    elif len(images) != len(manifest):
        raise ValueError(f"images has {len(images)} rows; the manifest has {len(manifest)}")

    # progress=True: bars for units, features and epochs; "log": one printed line per
    # finished unit (readable in an executed notebook); False: silent.
    log = progress == "log"
    progress = progress is True
    bar = tqdm(todo, desc="units", unit="unit", disable=not progress)
    features_by_model: dict[str, tuple] = {}
    for index, (model_name, scheme, control, fold) in enumerate(bar):
        bar.set_postfix_str(unit_name(model_name, scheme, control, fold or 0))
        started = time.perf_counter()
        if config.uses_feature_cache and model_name not in features_by_model:
            features_by_model.clear()  # one model's features in memory at a time
            base = build_frozen_base(model_name, config)
            features_by_model[model_name] = (base, _run_features(run_dir, base, images, config, progress))
        rows = _train_unit(manifest, images, features_by_model.get(model_name), config,
                           model_name, scheme, control, fold, run_dir, progress)
        table = pd.concat([read_predictions(run_dir), rows], ignore_index=True)
        write_csv_atomic(table, run_dir / "predictions.csv")
        if log:
            print(f"[{index + 1}/{len(todo)}] {unit_name(model_name, scheme, control, fold or 0)}"
                  f": accuracy {(rows['y_pred'] == rows['y_true']).mean():.3f} on "
                  f"{len(rows)} held-out slices ({time.perf_counter() - started:.1f} s)",
                  flush=True)
    return read_predictions(run_dir)


def _run_features(run_dir: Path, base: keras.Model, images, config: TrainConfig, progress: bool) -> np.ndarray:
    """Pooled features of every manifest row for this run's frozen base, kept in the run
    folder so a resumed run does not extract them again."""
    path = run_dir / "features" / f"{base.name}-{config.image_size}.npy"
    if path.exists():
        return np.load(path)
    features = extract_features(base, images, progress=progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    np.save(tmp, features)
    os.replace(tmp, path)
    return features


def _train_unit(manifest, images, cached, config, model_name, scheme, control, fold, run_dir, progress):
    fold_number = 0 if fold is None else int(fold)
    # The base comes from config.seed (one per run); the head start, dropout and batch order
    # from the fold alone, the same across schemes and controls: paired comparisons.
    unit_seed = config.seed * 1000 + fold_number
    train_rows, test_rows = splits.train_test_rows(manifest, scheme, fold)
    train_index, test_index = train_rows.index.to_numpy(), test_rows.index.to_numpy()
    train_labels = train_rows["label"].to_numpy().astype(int)
    if control == "shuffled_labels":
        train_labels = shuffle_labels(train_labels, seed=unit_seed + 1)
    validation_index, validation_labels, validation_set = test_index, test_rows["label"].to_numpy(), "test_fold"
    if config.early_stopping_patience is not None:
        is_validation = _inner_validation(train_rows, scheme, config.validation_fraction, unit_seed + 2)
        validation_index, validation_labels = train_index[is_validation], train_labels[is_validation]
        train_index, train_labels = train_index[~is_validation], train_labels[~is_validation]
        validation_set = "inner_validation"
    description = unit_name(model_name, scheme, control, fold_number)
    if cached is not None:
        base, features = cached
        trained = train_head_on_features(
            base, features[train_index], train_labels, config, features[validation_index],
            validation_labels, head_seed=unit_seed, validation_set=validation_set, progress=progress)
        p_tumor = trained.predict_p_tumor_from_features(features[test_index])
    else:
        trained = train_end_to_end(
            model_name, images[train_index], train_labels, config, images[validation_index],
            validation_labels, head_seed=unit_seed, validation_set=validation_set, progress=progress)
        p_tumor = trained.predict_p_tumor(images[test_index])
    unit_dir = run_dir / "units" / description
    history = trained.history.assign(model=model_name, scheme=scheme, control=control, fold=fold_number,
                                     path=trained.path)
    write_csv_atomic(history, unit_dir / "history.csv")
    trained.save_checkpoint(unit_dir)
    predictions = test_rows.copy()
    predictions["model"], predictions["scheme"] = model_name, scheme
    predictions["control"], predictions["fold"] = control, fold_number
    predictions["y_true"] = test_rows["label"].to_numpy().astype(int)
    predictions["p_tumor"] = p_tumor
    predictions["y_pred"] = (p_tumor > 0.5).astype(int)
    return predictions

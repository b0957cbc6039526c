"""Segmentation: a U-Net family trained on the tumor masks, and tumor classification from it.

- `build_unet` (depth and widths as parameters, logits out) and `build_resunet` (Keras'
  ResNet50 as the encoder, ImageNet weights where available);
- soft Dice + binary cross-entropy (`dice_bce_loss`); each patient's sequences rescaled
  per volume (`normalize_volumes`), then per-image standardisation; in training one random
  affine transform (flip, rotation, scaling) applied to image and mask together and a
  random gain per sequence (`jitter_intensities`);
- `run_segmentation_cv`: the same folds of the manifest as the classifiers'
  `train.run_cross_validation` (so the U-Net sees the same patients), resumable per fold,
  seeded, every file written atomically. Each fold writes its history, weights, the test
  slices' predicted logits (compressed) and rows of the **classifier's predictions table**
  (`model="unet"`), so `metrics` and `stats` compare it with ResNet50 and VGG16 unchanged.

Slice classification from a segmentation: a slice's score is its maximum pixel logit
(`slice_score="max_probability"`, written as `p_tumor = sigmoid(max logit)` in float64),
that maximum averaged with the two neighbouring slices' of the same volume
(`"max_probability_3d"`), or its predicted tumor area (`"tumor_area"`, the fraction of
pixels with logit > 0). Float32
probabilities saturate at 1.0 for logits above about 17 and tie many slices; float64 ties
only above about 37, and the exact max logit is kept in each fold's `slice_scores.csv`.
The decision threshold on that score is chosen on inner validation patients of the training
side only, never on the test fold.
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
from PIL import Image
from scipy.special import expit
from tqdm import tqdm  # text bars: no widget dependency in notebooks

from . import models, pipeline, segmetrics, splits, train
from .data import write_csv_atomic, write_text_atomic

MODEL_NAMES = ("unet", "resunet")
INTENSITY_NORMALIZATIONS = ("volume", "image")
PRECISIONS = ("float32", "mixed_bfloat16")
FLAIR_CHANNEL = 1  # the Kaggle images' channels: pre-contrast, FLAIR, post-contrast
SLICE_SCORES = ("max_probability", "max_probability_3d", "tumor_area")
SCORE_COLUMNS = {"max_probability": "max_logit", "max_probability_3d": "max_logit_3d",
                 "tumor_area": "tumor_area"}
CONTROL = "none"
# ResNet50 layers whose outputs feed the decoder, at 1/2, 1/4, 1/8 and 1/16 of the input.
RESNET_SKIP_LAYERS = ("conv1_relu", "conv2_block3_out", "conv3_block4_out", "conv4_block6_out")
DICE_SMOOTHING = 1.0


@dataclass(frozen=True)
class SegmentationConfig:
    """Every setting of a segmentation run (one home; the study's profiles fill it in).

    Defaults: the U-Net measured on the 20-patient real sample, widths 16-32-64-128 with
    batch norm, Adam 1e-3 decayed by eq. (20) with rate 0.1 per epoch, batch 16, flips and
    small rotations and scaling (Buda et al.: 15 degrees, 5%), each volume's sequences
    rescaled (`intensity_normalization="volume"`), each channel's gain jittered by up to
    exp(+-0.2) in training (`intensity_jitter`), and slices scored with their neighbours
    (`slice_score="max_probability_3d"`). The `sample` profile trains it 45 epochs in
    bfloat16 (`precision`). On the sample's hardest fold, volume rescaling and jitter
    took slice AUC from 0.71 to 0.85 (seed 0; seeds 1 and 2 gave 0.79 and 0.90);
    neighbouring slices' FLAIR as extra channels (`neighbour_slices`, 2.5-D) did not help
    (0.79). `validation_fraction` of the training patients are held out to pick the best
    epoch (`keep_best_epoch`, lowest validation loss) and the slice threshold.
    """

    model: str = "unet"
    image_size: int = 128
    widths: tuple[int, ...] = (16, 32, 64, 128)
    batch_norm: bool = True
    weights: str | None = None  # resunet only: None, "imagenet" or a weights file
    epochs: int = 30
    batch_size: int = 16
    learning_rate: float = 1e-3
    lr_decay: float = 0.1  # eq. (20): lr = learning_rate / (1 + lr_decay * epoch)
    augment: bool = True
    flip: bool = True
    rotation_degrees: float = 15.0
    scale: float = 0.05
    validation_fraction: float = 0.15
    keep_best_epoch: bool = True
    slice_score: str = "max_probability_3d"
    intensity_normalization: str = "volume"
    intensity_jitter: float = 0.2
    neighbour_slices: bool = False
    precision: str = "float32"  # "mixed_bfloat16": bf16 compute, float32 weights and logits
    seed: int = 0

    def __post_init__(self):
        if self.model not in MODEL_NAMES:
            raise ValueError(f"model must be one of {MODEL_NAMES}; found {self.model!r}")
        if self.neighbour_slices and self.model == "resunet":
            raise ValueError("neighbour_slices needs model='unet': ResNet50's encoder takes 3 channels")
        if self.intensity_normalization not in INTENSITY_NORMALIZATIONS:
            raise ValueError(f"intensity_normalization must be one of {INTENSITY_NORMALIZATIONS}; "
                             f"found {self.intensity_normalization!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}; found {self.precision!r}")
        if self.precision != "float32" and self.model == "resunet":
            raise ValueError("precision: mixed precision is built for model='unet' only")
        if self.slice_score not in SLICE_SCORES:
            raise ValueError(f"slice_score must be one of {SLICE_SCORES}; found {self.slice_score!r}")
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))

    @property
    def channels(self) -> int:
        """Input channels: the slice's 3 sequences, plus its neighbours' FLAIR when asked."""
        return 5 if self.neighbour_slices else 3

    def replace(self, **changes) -> "SegmentationConfig":
        return SegmentationConfig(**{**asdict(self), **changes})


# ----------------------------------------------------------------------------- models


def _conv_block(x, width: int, batch_norm: bool, name: str, dtype=None):
    """Two 3x3 convolutions, each followed by batch norm (optional) and ReLU."""
    for index in (1, 2):
        x = keras.layers.Conv2D(width, 3, padding="same", use_bias=not batch_norm,
                                kernel_initializer="he_normal", name=f"{name}_conv{index}",
                                dtype=dtype)(x)
        if batch_norm:
            x = keras.layers.BatchNormalization(name=f"{name}_bn{index}", dtype=dtype)(x)
        x = keras.layers.Activation("relu", name=f"{name}_relu{index}", dtype=dtype)(x)
    return x


def build_unet(input_size: int, widths=(16, 32, 64, 128), batch_norm: bool = True,
               seed: int = 0, channels: int = 3, precision: str = "float32") -> keras.Model:
    """U-Net (Ronneberger et al. 2015): an encoder level per width but the last, which is
    the bottleneck, and a mirrored decoder with skip connections; 1-channel logits out.

    16-32-64-128 with batch norm has about 0.47 M parameters. `seed` fixes the initial
    weights (Keras' global seed is set before building). `precision="mixed_bfloat16"`
    computes in bfloat16 with float32 weights (Keras' mixed policy, per layer, so no global
    state changes) and keeps the logits layer in float32: slice scores are maxima of
    logits, which bfloat16's 8-bit mantissa would turn into ties.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}; found {precision!r}")
    dtype = keras.DTypePolicy(precision)
    widths = tuple(int(w) for w in widths)
    if len(widths) < 2:
        raise ValueError(f"widths: expected at least 2 levels (encoder + bottleneck), found {widths}")
    factor = 2 ** (len(widths) - 1)
    if input_size % factor:
        raise ValueError(f"input_size {input_size} must be divisible by {factor} for "
                         f"{len(widths) - 1} poolings (widths {widths})")
    train.set_seed(seed)
    inputs = keras.Input((input_size, input_size, channels), name="image")
    x, skips = inputs, []
    for level, width in enumerate(widths[:-1], start=1):
        x = _conv_block(x, width, batch_norm, f"encoder{level}", dtype)
        skips.append(x)
        x = keras.layers.MaxPooling2D(2, name=f"encoder{level}_pool", dtype=dtype)(x)
    x = _conv_block(x, widths[-1], batch_norm, "bottleneck", dtype)
    for level in range(len(widths) - 1, 0, -1):
        x = keras.layers.Conv2DTranspose(widths[level - 1], 2, strides=2,
                                         name=f"decoder{level}_up", dtype=dtype)(x)
        x = keras.layers.Concatenate(name=f"decoder{level}_skip", dtype=dtype)([x, skips[level - 1]])
        x = _conv_block(x, widths[level - 1], batch_norm, f"decoder{level}", dtype)
    logits = keras.layers.Conv2D(1, 1, name="logits", dtype="float32")(x)
    return keras.Model(inputs, logits, name="unet")


def build_resunet(input_size: int, weights: str | None = None,
                  decoder_widths=(256, 128, 64, 32, 16), seed: int = 0) -> keras.Model:
    """U-Net whose encoder is Keras' ResNet50 (`weights`: None, "imagenet" or a file, as in
    `models.build_base`, with its offline error); 1-channel logits out.

    Skips come from ResNet50's outputs at 1/2, 1/4, 1/8 and 1/16 of the input; the decoder
    upsamples the 1/32 map back to full size. Inputs use ResNet50's own (caffe)
    preprocessing, so ImageNet weights see what they were trained on.
    """
    if input_size % 32:
        raise ValueError(f"input_size {input_size} must be a multiple of 32 for ResNet50's "
                         "five halvings")
    if len(decoder_widths) != len(RESNET_SKIP_LAYERS) + 1:
        raise ValueError(f"decoder_widths: expected {len(RESNET_SKIP_LAYERS) + 1} widths, "
                         f"found {tuple(decoder_widths)}")
    train.set_seed(seed)
    base = models.build_base("resnet50", input_size, weights)
    encoder = keras.Model(base.input,
                          [base.get_layer(name).output for name in RESNET_SKIP_LAYERS] + [base.output],
                          name="resnet50_encoder")
    inputs = keras.Input((input_size, input_size, 3), name="image")
    *skips, x = encoder(inputs)
    for level, (width, skip) in enumerate(zip(decoder_widths, reversed(skips)), start=1):
        x = keras.layers.UpSampling2D(2, interpolation="bilinear", name=f"decoder{level}_up")(x)
        x = keras.layers.Concatenate(name=f"decoder{level}_skip")([x, skip])
        x = _conv_block(x, width, True, f"decoder{level}")
    x = keras.layers.UpSampling2D(2, interpolation="bilinear", name="decoder_full_up")(x)
    x = _conv_block(x, decoder_widths[-1], True, "decoder_full")
    logits = keras.layers.Conv2D(1, 1, name="logits")(x)
    return keras.Model(inputs, logits, name="resunet")


def build_model(config: SegmentationConfig, seed: int | None = None) -> keras.Model:
    """The model `config.model` names, at `config.image_size`."""
    seed = config.seed if seed is None else seed
    if config.model == "resunet":
        return build_resunet(config.image_size, config.weights, seed=seed)
    return build_unet(config.image_size, config.widths, config.batch_norm, seed=seed,
                      channels=config.channels, precision=config.precision)


# ----------------------------------------------------------------------------- inputs


def normalize_volumes(images, patient_ids, percentiles=(1.0, 99.0)) -> np.ndarray:
    """Per patient volume and channel, map the [p1, p99] range of its non-zero (head) pixels
    onto 0-255, clipped, as uint8 (after Buda et al. 2019, who rescale each volume).

    Scanners and institutions give each MRI sequence its own intensity scale; per-image
    standardisation removes one brightness and contrast for all three channels of a slice,
    this removes one per sequence and patient. It uses a patient's own images and no labels,
    so it applies to test patients as it does to training patients.
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.dtype != np.uint8:
        raise ValueError(f"images: expected uint8 (N, H, W, C), found {images.dtype} {images.shape}")
    patient_ids = np.asarray(patient_ids)
    if len(patient_ids) != len(images):
        raise ValueError(f"patient_ids has {len(patient_ids)} entries; images has {len(images)}")
    normalized = np.empty_like(images)
    for patient in pd.unique(patient_ids):
        rows = np.flatnonzero(patient_ids == patient)
        volume = images[rows].astype(np.float32)
        for channel in range(volume.shape[-1]):
            values = volume[..., channel]
            head = values[values > 0]
            low, high = np.percentile(head, percentiles) if head.size else (0.0, 255.0)
            scaled = (values - low) / max(float(high - low), 1e-6)
            volume[..., channel] = np.clip(scaled, 0, 1) * 255
        normalized[rows] = np.round(volume).astype(np.uint8)
    return normalized


def add_neighbour_flair(images, manifest: pd.DataFrame) -> np.ndarray:
    """Append the FLAIR channel of the slices below and above each slice (same patient, by
    slice number; an end slice repeats its own) as channels 4 and 5: 2.5-D context, so the
    network sees whether a bright spot continues through the volume, as tumors do."""
    images = np.asarray(images)
    if len(images) != len(manifest):
        raise ValueError(f"images has {len(images)} rows; the manifest has {len(manifest)}")
    flair = images[..., FLAIR_CHANNEL]
    below, above = volume_neighbours(manifest)
    return np.concatenate([images, flair[below][..., None], flair[above][..., None]], axis=-1)


def volume_neighbours(rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """For each row (position), the positions of the slices just below and above it in the
    same patient's volume, by slice number; an end slice is its own missing neighbour."""
    below, above = np.empty(len(rows), np.int64), np.empty(len(rows), np.int64)
    ordered = pd.DataFrame({"patient": rows["patient_id"].to_numpy(),
                            "slice": rows["slice_number"].to_numpy()}).sort_values(["patient", "slice"])
    for _, volume in ordered.groupby("patient", sort=False):
        order = volume.index.to_numpy()
        below[order] = np.r_[order[:1], order[:-1]]
        above[order] = np.r_[order[1:], order[-1:]]
    return below, above


def jitter_intensities(images, seed, strength: float):
    """Multiply each channel of each image by exp(u), u uniform in +-`strength` (stateless:
    the same `seed`, two integers, gives the same gains): the sequences' relative contrast
    changes the way it does between scanners."""
    images = tf.cast(images, tf.float32)
    shape = tf.stack([tf.shape(images)[0], 1, 1, tf.shape(images)[-1]])
    gains = tf.exp(tf.random.stateless_uniform(shape, tf.cast(seed, tf.int64), -strength, strength))
    return tf.clip_by_value(images * gains, 0.0, 255.0)


def standardize_per_image(images):
    """(x - mean) / max(std, 1/sqrt(n)) per image over all pixels and channels, in float32
    (`tf.image.per_image_standardization`): removes the scanner's brightness and contrast."""
    return tf.image.per_image_standardization(tf.cast(images, tf.float32))


def prepare_images(model_name: str, images):
    """Model input from 0-255 RGB: per-image standardisation for the U-Net, ResNet50's
    caffe preprocessing for the ResUNet."""
    if model_name == "resunet":
        return pipeline.preprocess_input("resnet50", tf.cast(images, tf.float32))
    return standardize_per_image(images)


def random_transforms(n_images: int, image_size: int, seed, flip: bool = True,
                      rotation_degrees: float = 15.0, scale: float = 0.05) -> tf.Tensor:
    """One random affine transform per image (Keras' 8-number form), about the image centre:
    horizontal flip with probability 1/2, rotation in +-`rotation_degrees`, scaling in
    1 +- `scale`. Stateless: the same `seed` (two integers) gives the same transforms."""
    seed = tf.cast(tf.convert_to_tensor(seed), tf.int64)
    turn = math.radians(rotation_degrees)
    angle = tf.random.stateless_uniform([n_images], seed, -turn, turn)
    zoom = tf.random.stateless_uniform([n_images], seed + tf.constant([0, 1], tf.int64), 1 - scale, 1 + scale)
    mirror = tf.random.stateless_uniform([n_images], seed + tf.constant([0, 2], tf.int64)) < 0.5
    sign = tf.where(mirror, -1.0, 1.0) if flip else tf.ones([n_images])
    # Each output pixel reads the input at centre + M (pixel - centre), M = R(angle) F / zoom.
    m00, m01 = tf.cos(angle) * sign / zoom, -tf.sin(angle) / zoom
    m10, m11 = tf.sin(angle) * sign / zoom, tf.cos(angle) / zoom
    centre = (image_size - 1) / 2
    zero = tf.zeros([n_images])
    return tf.stack([m00, m01, centre - (m00 + m01) * centre,
                     m10, m11, centre - (m10 + m11) * centre, zero, zero], axis=1)


def augment_pair(images, masks, transforms):
    """Apply the same transforms to images (B, H, W, C) and masks (B, H, W, 1) in one
    resampling of the two stacked together (bilinear; the mask is thresholded at 1/2)."""
    images, masks = tf.cast(images, tf.float32), tf.cast(masks, tf.float32)
    channels = images.shape[-1]
    stacked = keras.ops.image.affine_transform(tf.concat([images, masks], axis=-1), transforms,
                                               interpolation="bilinear", fill_mode="constant",
                                               fill_value=0)
    return stacked[..., :channels], tf.cast(stacked[..., channels:] > 0.5, tf.float32)


def _mask_targets(masks):
    """uint8 0/255 masks (B, H, W) -> float32 0/1 targets (B, H, W, 1)."""
    return tf.cast(tf.cast(masks, tf.float32)[..., None] > 0, tf.float32)


# ----------------------------------------------------------------------------- loss


def soft_dice(masks, logits, smoothing: float = DICE_SMOOTHING):
    """Soft Dice of a batch, eq. (15) with probabilities for the predicted set:
    (2 sum(p m) + s) / (sum p + sum m + s), summed over the whole batch (empty slices are
    common, so a per-slice Dice would be undefined for many of them)."""
    masks = tf.cast(masks, tf.float32)
    probabilities = tf.sigmoid(tf.cast(logits, tf.float32))
    overlap = tf.reduce_sum(probabilities * masks)
    return (2 * overlap + smoothing) / (tf.reduce_sum(probabilities) + tf.reduce_sum(masks) + smoothing)


def dice_bce_loss(masks, logits):
    """Binary cross-entropy on logits (mean over pixels) + (1 - soft Dice)."""
    masks = tf.cast(masks, tf.float32)
    cross_entropy = tf.reduce_mean(
        tf.nn.sigmoid_cross_entropy_with_logits(labels=masks, logits=tf.cast(logits, tf.float32)))
    return cross_entropy + 1 - soft_dice(masks, logits)


# ----------------------------------------------------------------------------- training


@dataclass
class TrainedSegmenter:
    """A trained segmentation model, its per-epoch history and the epoch it was kept at."""

    model_name: str
    model: keras.Model
    history: pd.DataFrame
    best_epoch: int
    seconds: float

    def predict_logits(self, images, batch_size: int = 32) -> np.ndarray:
        return predict_logits(self.model, self.model_name, images, batch_size)


def _dataset(images, masks, order, config: SegmentationConfig, augment_seed: int | None):
    """Batches in `order`: (prepared images, 0/1 masks); augmented when `augment_seed` is set,
    each batch with its own stateless seed (augment_seed, batch number)."""
    size = config.image_size
    dataset = tf.data.Dataset.from_tensor_slices((images[order], masks[order]))
    dataset = dataset.batch(config.batch_size).enumerate()

    def prepare(batch_number, pair):
        batch_images, batch_masks = tf.cast(pair[0], tf.float32), _mask_targets(pair[1])
        if augment_seed is not None:
            seed = tf.stack([tf.constant(augment_seed, tf.int64), batch_number])
            transforms = random_transforms(tf.shape(batch_images)[0], size, seed, config.flip,
                                           config.rotation_degrees, config.scale)
            batch_images, batch_masks = augment_pair(batch_images, batch_masks, transforms)
            if config.intensity_jitter > 0:
                batch_images = jitter_intensities(
                    batch_images, seed + tf.constant([0, 7], tf.int64), config.intensity_jitter)
        return prepare_images(config.model, batch_images), batch_masks

    return pipeline.prefetch_without_autotune(
        dataset.map(prepare, num_parallel_calls=pipeline.PARALLEL_CALLS))


def _compile(model: keras.Model, config: SegmentationConfig, n_train: int) -> None:
    steps_per_epoch = max(1, math.ceil(n_train / config.batch_size))
    schedule = train.learning_rate_schedule(config.learning_rate, config.lr_decay, steps_per_epoch)
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss=dice_bce_loss,
                  metrics=[soft_dice])


def train_segmenter(train_images, train_masks, config: SegmentationConfig,
                    validation_images=None, validation_masks=None, seed: int | None = None,
                    progress: bool = False, description: str = "epochs") -> TrainedSegmenter:
    """Train on uint8 images (N, S, S, 3) and 0/255 masks (N, S, S), one `fit` per epoch.

    `seed` (default `config.seed`) fixes the initial weights, the NumPy batch order and the
    augmentation. With validation data and `keep_best_epoch`, the weights of the epoch with
    the lowest validation loss are kept.
    """
    started = time.perf_counter()
    seed = config.seed if seed is None else seed
    train_images, train_masks = np.asarray(train_images), np.asarray(train_masks)
    _check_arrays(train_images, train_masks, config.image_size, config.channels)
    model = build_model(config, seed)
    _compile(model, config, len(train_images))
    validation = _validation_dataset(validation_images, validation_masks, config)
    order_rng = np.random.default_rng(seed)
    rows, best = [], (np.inf, 0, None)
    bar = tqdm(range(config.epochs), desc=description, unit="epoch", disable=not progress, leave=False)
    for epoch in bar:
        augment_seed = seed * 10_000 + epoch if config.augment else None
        dataset = _dataset(train_images, train_masks, order_rng.permutation(len(train_images)),
                           config, augment_seed)
        rows.append(_fit_epoch(model, dataset, validation, config, epoch))
        bar.set_postfix({k: f"{rows[-1][k]:.3f}" for k in ("loss", "val_loss", "val_soft_dice")
                         if k in rows[-1]})
        if config.keep_best_epoch and rows[-1].get("val_loss", np.inf) < best[0]:
            best = (rows[-1]["val_loss"], epoch + 1, model.get_weights())
    best_epoch = len(rows)
    if best[2] is not None:
        model.set_weights(best[2])
        best_epoch = best[1]
    history = pd.DataFrame(rows)
    history["best"] = history["epoch"] == best_epoch
    return TrainedSegmenter(config.model, model, history, best_epoch, time.perf_counter() - started)


def _validation_dataset(images, masks, config: SegmentationConfig):
    if images is None or len(images) == 0:
        return None
    images, masks = np.asarray(images), np.asarray(masks)
    _check_arrays(images, masks, config.image_size, config.channels)
    return _dataset(images, masks, np.arange(len(images)), config, None)


def _fit_epoch(model, dataset, validation, config: SegmentationConfig, epoch: int) -> dict:
    """One epoch of `fit`; its history row (losses, soft Dice, learning rate, seconds)."""
    started = time.perf_counter()
    result = model.fit(dataset, epochs=1, verbose=0, shuffle=False, validation_data=validation)
    return {"epoch": epoch + 1, **{k: float(v[-1]) for k, v in result.history.items()},
            "learning_rate": train.inverse_time_decay(config.learning_rate, config.lr_decay, epoch),
            "seconds": time.perf_counter() - started,
            "validation_set": "inner_validation" if validation is not None else "none"}


def _check_arrays(images, masks, image_size: int, channels: int = 3) -> None:
    images, masks = np.asarray(images), np.asarray(masks)
    if images.shape[1:] != (image_size, image_size, channels):
        raise ValueError(f"images: expected (N, {image_size}, {image_size}, {channels}), "
                         f"found {images.shape}")
    if masks.shape != images.shape[:3]:
        raise ValueError(f"masks: expected {images.shape[:3]} (one per image), found {masks.shape}")


def predict_logits(model: keras.Model, model_name: str, images, batch_size: int = 32) -> np.ndarray:
    """Pixel logits (N, S, S) float32 of uint8 images, in inference mode."""
    size, channels = int(model.input.shape[1]), int(model.input.shape[-1])
    infer = _inference_function(model, model_name, size, channels)
    images = np.asarray(images)
    chunks = [infer(tf.constant(images[start:start + batch_size])).numpy()
              for start in range(0, len(images), batch_size)]
    return np.concatenate(chunks) if chunks else np.empty((0, size, size), np.float32)


def _inference_function(model: keras.Model, model_name: str, size: int, channels: int = 3):
    @tf.function(input_signature=[tf.TensorSpec([None, size, size, channels], tf.uint8)])
    def infer(images):
        return model(prepare_images(model_name, images), training=False)[..., 0]

    return infer


# ----------------------------------------------------------------------------- slice scores


def slice_scores(logits, rows: pd.DataFrame) -> pd.DataFrame:
    """Per slice (`rows`: its manifest rows, for patient and slice number): `max_logit`
    (float64), `max_logit_3d` (the mean of the max logits of the slice and of its two
    neighbours in the patient's volume; an end slice counts itself for the missing one) and
    `tumor_area` (fraction of pixels with logit > 0)."""
    logits = np.asarray(logits)
    if len(rows) != len(logits):
        raise ValueError(f"rows has {len(rows)} entries; logits has {len(logits)} slices")
    max_logit = logits.max(axis=(1, 2)).astype(np.float64) if len(logits) else np.empty(0)
    return pd.DataFrame({"max_logit": max_logit,
                         "max_logit_3d": neighbour_mean(max_logit, rows),
                         "tumor_area": (logits > 0).mean(axis=(1, 2))})


def neighbour_mean(values, rows: pd.DataFrame) -> np.ndarray:
    """Each slice's value averaged with the slices just below and above it in the same
    patient's volume (by slice number; an end slice repeats itself).

    A tumor is a 3-D object spanning several slices while a false positive blob rarely
    repeats on the next slice, so a slice's neighbours carry evidence about it (Buda et
    al. 2019 keep only 3-D connected components for the same reason).
    """
    values = np.asarray(values, dtype=np.float64)
    below, above = volume_neighbours(rows)
    return (values[below] + values + values[above]) / 3


def score_values(scores: pd.DataFrame, slice_score: str) -> np.ndarray:
    """The column a slice is ranked and thresholded by (`SCORE_COLUMNS[slice_score]`)."""
    if slice_score not in SLICE_SCORES:
        raise ValueError(f"slice_score must be one of {SLICE_SCORES}; found {slice_score!r}")
    return scores[SCORE_COLUMNS[slice_score]].to_numpy(np.float64)


def p_tumor_from_score(values, slice_score: str) -> np.ndarray:
    """Map a score into [0, 1] monotonically: sigmoid in float64 of a max logit (the
    maximum pixel probability, or its 3-D neighbour mean), or the predicted area as it is."""
    values = np.asarray(values, dtype=np.float64)
    return values if slice_score == "tumor_area" else expit(values)


@dataclass(frozen=True)
class SliceThreshold:
    """A slice is called tumor when its score > `threshold` (score units: max logit or area)."""

    threshold: float
    rule: str
    n_validation: int
    validation_accuracy: float


def choose_threshold(y_true, scores, default: float = 0.0) -> SliceThreshold:
    """Threshold on validation slices: the midpoint between adjacent distinct scores with
    the highest accuracy, ties broken towards `default` (0: "any pixel predicted tumor",
    for both scores). With no validation slices or one class only, `default` is kept."""
    y_true, scores = np.asarray(y_true, int), np.asarray(scores, np.float64)
    if y_true.size == 0 or y_true.min() == y_true.max():
        accuracy = float(np.mean((scores > default) == y_true)) if y_true.size else float("nan")
        return SliceThreshold(default, "default (validation lacks a class)", int(y_true.size), accuracy)
    distinct = np.unique(scores)
    candidates = np.r_[default, (distinct[:-1] + distinct[1:]) / 2, distinct[0] - 1]
    accuracies = ((scores[None, :] > candidates[:, None]) == y_true[None, :]).mean(axis=1)
    best = np.flatnonzero(accuracies == accuracies.max())
    chosen = best[np.argmin(np.abs(candidates[best] - default))]
    return SliceThreshold(float(candidates[chosen]), "max validation accuracy",
                          int(y_true.size), float(accuracies[chosen]))


# ----------------------------------------------------------------------------- masks on disk


def upsample_logits(logits, size: int) -> np.ndarray:
    """Logits (N, s, s) -> (N, size, size) float32 by bilinear resampling (PIL, the same
    pixel-centre convention as the pipeline's image resizing); threshold at 0 for masks."""
    logits = np.asarray(logits, dtype=np.float32)
    if logits.shape[1:] == (size, size):
        return logits
    upsampled = np.empty((len(logits), size, size), np.float32)
    for index, slice_logits in enumerate(logits):
        upsampled[index] = Image.fromarray(slice_logits).resize((size, size), Image.BILINEAR)
    return upsampled


def _save_npz_atomic(path: Path, **arrays) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")  # keeps the .npz suffix
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, path)


def save_fold_masks(path: Path, rows: pd.DataFrame, logits: np.ndarray, original_size: int) -> None:
    """The test slices' logits (float16, training resolution), their manifest row numbers,
    patient and slice, and the original size to upsample to; compressed, atomic."""
    _save_npz_atomic(Path(path), logits=np.asarray(logits, np.float16),
                     row=rows.index.to_numpy(np.int64),
                     patient_id=rows["patient_id"].to_numpy(str),
                     slice_number=rows["slice_number"].to_numpy(np.int64),
                     original_size=np.int64(original_size))


def read_fold_masks(path) -> dict:
    """A fold's saved logits and their rows, as written by `save_fold_masks`."""
    with np.load(path) as saved:
        return {key: saved[key] for key in saved.files}


def predicted_masks(run_dir, manifest: pd.DataFrame, model_name: str = "unet",
                    size: int | None = None) -> tuple[pd.DataFrame, np.ndarray]:
    """Every scored slice of a run: its manifest rows (with `fold`) and predicted masks
    upsampled to `size` (default: the original size), logit > 0. No model needed."""
    manifest = manifest.reset_index(drop=True)
    paths = sorted(Path(run_dir).glob(f"units/{model_name}-*/masks.npz"))
    if not paths:
        raise FileNotFoundError(f"no units/{model_name}-*/masks.npz under {run_dir}: run "
                                "run_segmentation_cv first")
    parts, masks = [], []
    for path in paths:
        saved = read_fold_masks(path)
        rows = manifest.loc[saved["row"]].copy()
        _check_saved_rows(rows, saved, path)
        rows["fold"] = int(path.parent.name.rsplit("fold", 1)[1])
        target = int(saved["original_size"]) if size is None else size
        masks.append(upsample_logits(saved["logits"], target) > 0)
        parts.append(rows)
    return pd.concat(parts), np.concatenate(masks)


def _check_saved_rows(rows: pd.DataFrame, saved: dict, path: Path) -> None:
    same = (rows["patient_id"].to_numpy(str) == saved["patient_id"]).all() and \
        (rows["slice_number"].to_numpy() == saved["slice_number"]).all()
    if not same:
        raise ValueError(f"{path}: its rows are not those of this manifest (patient/slice differ); "
                         "pass the manifest the run was made with")


def evaluate_run(run_dir, manifest: pd.DataFrame, model_name: str = "unet",
                 keep_largest_component: bool = False) -> segmetrics.SegmentationEvaluation:
    """Eqs. (15)-(17) per slice and per patient at the original resolution, from the masks
    a run saved (true masks read at their own size)."""
    rows, predicted = predicted_masks(run_dir, manifest, model_name)
    true = pipeline.load_masks(rows, predicted.shape[1]) > 0
    return segmetrics.evaluate(predicted, true, rows, keep_largest_component)


# ----------------------------------------------------------------------------- runs


def _fold_numbers(manifest: pd.DataFrame, scheme: str, folds) -> list[int]:
    available = sorted(int(f) for f in manifest[f"fold_{scheme}"].unique())
    if folds is None:
        return available
    unknown = sorted(set(int(f) for f in folds) - set(available))
    if unknown:
        raise ValueError(f"folds {unknown} not in the manifest's fold_{scheme} {available}")
    return [f for f in available if f in set(int(f) for f in folds)]


def run_segmentation_cv(manifest: pd.DataFrame, run_dir, config: SegmentationConfig = SegmentationConfig(),
                        scheme: str = "patient", folds=None, images: np.ndarray | None = None,
                        masks: np.ndarray | None = None, progress: bool | str = True) -> pd.DataFrame:
    """Train and predict every fold of `fold_<scheme>`; one predictions table.

    The folds are the classifiers' (`train.run_cross_validation`), so each fold trains on
    the same patients. Writes under `run_dir`: `run.json` (settings, checked on resume);
    per fold `units/<model>-<scheme>-none-fold<k>/` with `history.csv`,
    `model.weights.h5`, `masks.npz` (test logits), `slice_scores.csv` and
    `threshold.json`; and `predictions.csv` in the classifier's format (manifest columns +
    model, scheme, control="none", fold, y_true, p_tumor, y_pred). Every file is atomic; a
    stopped run resumes after its last finished fold. `images`/`masks` (uint8, manifest
    order, at `config.image_size`, as read from the files) skip loading the TIFFs; with
    `intensity_normalization="volume"` the images are normalised per patient here.
    """
    if scheme not in splits.SCHEMES:
        raise ValueError(f"scheme must be one of {splits.SCHEMES}; found {scheme!r}")
    manifest = manifest.reset_index(drop=True)
    train._check_manifest(manifest, (scheme,), "cv")
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    fold_numbers = _fold_numbers(manifest, scheme, folds)
    train._check_run_settings(run_dir, {
        "task": "segmentation", "config": asdict(config), "scheme": scheme,
        "folds": None if folds is None else list(fold_numbers),
        "manifest": train._manifest_fingerprint(manifest), "n_rows": len(manifest)})
    done = train.read_predictions(run_dir)
    finished = set(done["fold"].astype(int)) if len(done) else set()
    todo = [fold for fold in fold_numbers if fold not in finished]
    if not todo:
        return done
    images, masks = _arrays(manifest, config.image_size, images, masks)
    if config.intensity_normalization == "volume":
        images = normalize_volumes(images, manifest["patient_id"].to_numpy())
    if config.neighbour_slices:
        images = add_neighbour_flair(images, manifest)
    original_size = _original_size(manifest)
    # progress=True: bars for folds and epochs; "log": one printed line per finished fold.
    log = progress == "log"
    progress = progress is True
    bar = tqdm(todo, desc=f"{config.model} folds", unit="fold", disable=not progress)
    for fold in bar:
        bar.set_postfix_str(train.unit_name(config.model, scheme, CONTROL, fold))
        started = time.perf_counter()
        rows = _train_fold(manifest, images, masks, config, scheme, fold, run_dir,
                           original_size, progress)
        write_csv_atomic(pd.concat([train.read_predictions(run_dir), rows], ignore_index=True),
                         run_dir / "predictions.csv")
        if log:
            print(f"{train.unit_name(config.model, scheme, CONTROL, fold)}: accuracy "
                  f"{(rows['y_pred'] == rows['y_true']).mean():.3f} on {len(rows)} held-out "
                  f"slices ({time.perf_counter() - started:.0f} s)", flush=True)
    return train.read_predictions(run_dir)


def _arrays(manifest, image_size, images, masks):
    images = pipeline.load_images(manifest, image_size) if images is None else images
    masks = pipeline.load_masks(manifest, image_size) if masks is None else masks
    for name, array in (("images", images), ("masks", masks)):
        if len(array) != len(manifest):
            raise ValueError(f"{name} has {len(array)} rows; the manifest has {len(manifest)}")
    _check_arrays(images, masks, image_size)
    return images, masks


def _original_size(manifest: pd.DataFrame) -> int:
    """The masks' own size (256 in the Kaggle data), read from the first mask file; the
    `original_size` fallback for manifests without files is the Kaggle 256."""
    path = manifest["mask_path"].iloc[0]
    if not os.path.exists(path):
        return 256
    return int(pipeline.read_tiff_checked(path, ndim=2).shape[0])


def _split_fold(manifest, scheme, fold, config, unit_seed):
    train_rows, test_rows = splits.train_test_rows(manifest, scheme, fold)
    is_validation = np.zeros(len(train_rows), bool)
    if config.validation_fraction > 0:
        is_validation = train._inner_validation(train_rows, scheme, config.validation_fraction,
                                                unit_seed + 2)
    return train_rows[~is_validation], train_rows[is_validation], test_rows


def _train_fold(manifest, images, masks, config, scheme, fold, run_dir, original_size, progress):
    # Same seed arithmetic as the classifiers' units: the fold alone sets the seed.
    unit_seed = config.seed * 1000 + int(fold)
    unit = train.unit_name(config.model, scheme, CONTROL, fold)
    fit_rows, validation_rows, test_rows = _split_fold(manifest, scheme, fold, config, unit_seed)
    fit, val, test = (r.index.to_numpy() for r in (fit_rows, validation_rows, test_rows))
    trained = train_segmenter(images[fit], masks[fit], config, images[val], masks[val],
                              seed=unit_seed, progress=progress, description=unit)
    validation_scores = slice_scores(trained.predict_logits(images[val]), validation_rows)
    threshold = choose_threshold(validation_rows["label"].to_numpy(),
                                 score_values(validation_scores, config.slice_score))
    test_logits = trained.predict_logits(images[test])
    test_scores = slice_scores(test_logits, test_rows)
    values = score_values(test_scores, config.slice_score)
    predictions = test_rows.copy()
    predictions["model"], predictions["scheme"] = config.model, scheme
    predictions["control"], predictions["fold"] = CONTROL, int(fold)
    predictions["y_true"] = test_rows["label"].to_numpy().astype(int)
    predictions["p_tumor"] = p_tumor_from_score(values, config.slice_score)
    predictions["y_pred"] = (values > threshold.threshold).astype(int)
    _write_unit(run_dir / "units" / unit, trained, test_rows, test_logits, test_scores,
                threshold, original_size, dict(model=config.model, scheme=scheme, fold=int(fold)))
    return predictions


def _write_unit(unit_dir: Path, trained, test_rows, test_logits, test_scores, threshold,
                original_size, labels: dict) -> None:
    history = trained.history.assign(**labels)
    write_csv_atomic(history, unit_dir / "history.csv")
    scores = test_rows[["patient_id", "slice_number", "label"]].reset_index(drop=True)
    write_csv_atomic(pd.concat([scores, test_scores], axis=1), unit_dir / "slice_scores.csv")
    write_text_atomic(unit_dir / "threshold.json", json.dumps(asdict(threshold), indent=2))
    save_fold_masks(unit_dir / "masks.npz", test_rows, test_logits, original_size)
    tmp = unit_dir / f".tmp-{os.getpid()}-model.weights.h5"
    trained.model.save_weights(tmp)
    os.replace(tmp, unit_dir / "model.weights.h5")


def read_slice_scores(run_dir, model_name: str = "unet") -> pd.DataFrame:
    """All folds' test slice scores of a run (`slice_scores.csv`), with their fold."""
    paths = sorted(Path(run_dir).glob(f"units/{model_name}-*/slice_scores.csv"))
    return pd.concat([pd.read_csv(p).assign(fold=int(p.parent.name.rsplit("fold", 1)[1]))
                      for p in paths], ignore_index=True) if paths else pd.DataFrame()


def read_histories(run_dir, model_name: str = "unet") -> pd.DataFrame:
    """All folds' per-epoch histories of a run, one table (for learning curves)."""
    paths = sorted(Path(run_dir).glob(f"units/{model_name}-*/history.csv"))
    return pd.concat([pd.read_csv(p) for p in paths], ignore_index=True) if paths else pd.DataFrame()

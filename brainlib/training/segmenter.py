"""The U-Net family trained on the tumor masks, and its slices scored for the runner.

Each patient's sequences are rescaled per volume, then each image standardised; in
training one random affine transform (flip, rotation, scaling) moves image and mask
together and each sequence's gain is jittered. Loss: soft Dice + binary cross-entropy.
A slice's score comes from its predicted mask (`scores`), so the U-Net enters the same
predictions table, thresholds and paired tests as the classifiers.
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

from . import masks as mask_store
from ..data import pipeline
from . import scores
from ..models import unet
from ..data import write_csv_atomic
from ..models.loss import dice_bce_loss, soft_dice
from ..config.params import SCHEMA, SEGMENTER
from .runner import UnitResult
from .train import compile_model, fit_epochs, save_weights_atomic
from ..data.transform import (
    Augmentation,
    add_neighbour_flair,
    normalize_volumes,
    standardize_per_image,
)

INTENSITY_NORMALIZATIONS = ("volume", "image")


@dataclass(frozen=True)
class SegmentationConfig:
    """Every setting of a segmenter. The study fills in size, widths, epochs and precision
    from its parameters (`study.segmentation_config`; their defaults are the schema's);
    the rest is the U-Net's recipe, measured on the 20-patient real sample.

    The recipe: batch norm, Adam 1e-3 decayed by eq. (20) with rate 0.1 per epoch, batch
    16, flips and small rotations and scaling (Buda et al.: 15 degrees, 5%), each volume's
    sequences rescaled (`intensity_normalization="volume"`), each channel's gain jittered
    by up to exp(+-0.2) in training (`intensity_jitter`), and slices scored with their
    neighbours (`slice_score="max_probability_3d"`). On the sample's hardest fold, volume
    rescaling and jitter took slice AUC from 0.71 to 0.85 (seed 0; seeds 1 and 2 gave 0.79
    and 0.90); neighbouring slices' FLAIR as extra channels (`neighbour_slices`, 2.5-D) did
    not help (0.79). Those choices were made looking at a test fold of the sample, as
    chapter 7 says; on 7 real patients outside the sample the recipe scored slice AUC 0.994.
    """

    model: str = SEGMENTER
    image_size: int = SCHEMA["unet_image_size"].default
    widths: tuple[int, ...] = tuple(int(w) for w in SCHEMA["unet_widths"].default.split(","))
    batch_norm: bool = True
    batch_norm_kernel: str = "fused"  # unet.FusedBatchNormalization, or "keras"
    # Training masks at image_size: "max" (0/1, any tumor pixel in the block) or "area"
    # (the block's tumor share, soft targets; pipeline.load_masks).
    mask_resize: str = "max"
    weights: str | None = None  # resunet only: None, "imagenet" or a weights file
    epochs: int = SCHEMA["unet_epochs"].default
    batch_size: int = SCHEMA["unet_batch_size"].default
    learning_rate: float = 1e-3
    lr_decay: float = 0.1  # eq. (20): lr = learning_rate / (1 + lr_decay * epoch)
    augment: bool = True
    flip: bool = True
    rotation_degrees: float = 15.0
    scale: float = 0.05
    slice_score: str = "max_probability_3d"
    intensity_normalization: str = "volume"
    intensity_jitter: float = 0.2
    neighbour_slices: bool = False
    # Tumor-free slices drawn per tumor slice for each epoch (a fresh seeded draw every
    # epoch, every tumor slice every epoch); 0: every slice every epoch.
    tumor_free_ratio: float = 0.0
    precision: str = SCHEMA["unet_precision"].default  # "mixed_bfloat16": bf16 compute
    seed: int = SCHEMA["seed"].default

    def __post_init__(self):
        if self.model not in unet.MODEL_NAMES:
            raise ValueError(f"model must be one of {unet.MODEL_NAMES}; found {self.model!r}")
        if self.neighbour_slices and self.model == "resunet":
            raise ValueError(f"neighbour_slices needs model={SEGMENTER!r}: ResNet50's encoder "
                             "takes 3 channels")
        if self.intensity_normalization not in INTENSITY_NORMALIZATIONS:
            raise ValueError(f"intensity_normalization must be one of {INTENSITY_NORMALIZATIONS}; "
                             f"found {self.intensity_normalization!r}")
        if self.precision not in unet.PRECISIONS:
            raise ValueError(f"precision must be one of {unet.PRECISIONS}; found {self.precision!r}")
        if self.mask_resize not in pipeline.MASK_RESIZES:
            raise ValueError(f"mask_resize must be one of {pipeline.MASK_RESIZES}; "
                             f"found {self.mask_resize!r}")
        if self.batch_norm_kernel not in unet.BATCH_NORM_KERNELS:
            raise ValueError(f"batch_norm_kernel must be one of {unet.BATCH_NORM_KERNELS}; "
                             f"found {self.batch_norm_kernel!r}")
        if self.precision != "float32" and self.model == "resunet":
            raise ValueError(f"precision: mixed precision is built for model={SEGMENTER!r} only")
        if self.tumor_free_ratio < 0:
            raise ValueError(f"tumor_free_ratio must be >= 0; found {self.tumor_free_ratio}")
        if self.slice_score not in scores.SLICE_SCORES:
            raise ValueError(f"slice_score must be one of {scores.SLICE_SCORES}; "
                             f"found {self.slice_score!r}")
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))

    @property
    def channels(self) -> int:
        """Input channels: the slice's 3 sequences, plus its neighbours' FLAIR when asked."""
        return 5 if self.neighbour_slices else 3

    @property
    def augmentation(self) -> Augmentation | None:
        if not self.augment:
            return None
        return Augmentation(self.flip, self.rotation_degrees, self.scale, self.intensity_jitter)

    def replace(self, **changes) -> "SegmentationConfig":
        return SegmentationConfig(**{**asdict(self), **changes})


def build_model(config: SegmentationConfig, seed: int | None = None) -> keras.Model:
    """The model `config.model` names, at `config.image_size`."""
    seed = config.seed if seed is None else seed
    if config.model == "resunet":
        return unet.build_resunet(config.image_size, config.weights, seed=seed)
    return unet.build_unet(config.image_size, config.widths, config.batch_norm, seed=seed,
                           channels=config.channels, precision=config.precision,
                           batch_norm_kernel=config.batch_norm_kernel)


def prepare_images(model_name: str, images):
    """Model input from 0-255 RGB: per-image standardisation for the U-Net, ResNet50's
    caffe preprocessing for the ResUNet."""
    if model_name == "resunet":
        return pipeline.preprocess_input("resnet50", tf.cast(images, tf.float32))
    return standardize_per_image(images)


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


def train_segmenter(train_images, train_masks, config: SegmentationConfig,
                    validation_images=None, validation_masks=None, seed: int | None = None,
                    keep_best: bool = True, progress: bool = False,
                    description: str = "epochs") -> TrainedSegmenter:
    """Train on uint8 images (N, S, S, C) and 0/255 masks (N, S, S), one `fit` per epoch.

    `seed` (default `config.seed`) fixes the initial weights, the NumPy batch order and the
    augmentation. With validation data and `keep_best`, the weights of the epoch with the
    lowest validation loss are kept.
    """
    started = time.perf_counter()
    seed = config.seed if seed is None else seed
    train_images, train_masks = np.asarray(train_images), np.asarray(train_masks)
    check_arrays(train_images, train_masks, config.image_size, config.channels)
    model = build_model(config, seed)
    sampler = EpochSampler(train_masks, config.tumor_free_ratio)
    compile_model(model, dice_bce_loss, [soft_dice], learning_rate=config.learning_rate,
                  lr_decay=config.lr_decay, batch_size=config.batch_size,
                  n_train=sampler.rows_per_epoch)

    def prepare(images, targets):
        return prepare_images(config.model, images), targets

    soft_masks = config.mask_resize == "area"
    validation = None
    if validation_images is not None and len(validation_images):
        check_arrays(validation_images, validation_masks, config.image_size, config.channels)
        validation = pipeline.batches(np.asarray(validation_images), np.asarray(validation_masks),
                                      np.arange(len(validation_images)), config.batch_size,
                                      prepare, masks_as_targets=True,
                                      soft_masks=soft_masks)
    order_rng = np.random.default_rng(seed)

    def epoch_batches(epoch):
        order = sampler.epoch_order(order_rng)
        return pipeline.batches(train_images, train_masks, order, config.batch_size, prepare,
                                config.augmentation, seed * 10_000 + epoch, masks_as_targets=True,
                                soft_masks=soft_masks)

    history, best_epoch = fit_epochs(model, epoch_batches, config.epochs, validation=validation,
                                     keep_best=keep_best, learning_rate=config.learning_rate,
                                     lr_decay=config.lr_decay, progress=progress,
                                     description=description)
    return TrainedSegmenter(config.model, model, history, best_epoch, time.perf_counter() - started)


class EpochSampler:
    """Which training slices an epoch sees, in what order. With `tumor_free_ratio` r > 0,
    every tumor slice and r tumor-free slices per tumor slice, drawn afresh each epoch: an
    epoch costs less where most slices are tumor-free, and over the epochs the model still
    sees all of them. With r = 0, every slice, shuffled."""

    def __init__(self, masks, tumor_free_ratio: float):
        has_tumor = np.asarray(masks).reshape(len(masks), -1).max(axis=1) > 0
        self.n_rows, self.ratio = len(has_tumor), float(tumor_free_ratio)
        self.tumor = np.flatnonzero(has_tumor)
        self.tumor_free = np.flatnonzero(~has_tumor)
        drawn = round(self.ratio * len(self.tumor))
        self.n_tumor_free = min(len(self.tumor_free), drawn) if self.ratio else 0

    @property
    def rows_per_epoch(self) -> int:
        return len(self.tumor) + self.n_tumor_free if self.ratio else self.n_rows

    def epoch_order(self, rng: np.random.Generator) -> np.ndarray:
        if not self.ratio:
            return rng.permutation(self.n_rows)
        drawn = rng.choice(self.tumor_free, self.n_tumor_free, replace=False)
        return rng.permutation(np.concatenate([self.tumor, drawn]))


def check_arrays(images, masks, image_size: int, channels: int = 3) -> None:
    """Images (N, S, S, C) and one mask (N, S, S) per image, or a clear error."""
    images, masks = np.asarray(images), np.asarray(masks)
    if images.shape[1:] != (image_size, image_size, channels):
        raise ValueError(f"images: expected (N, {image_size}, {image_size}, {channels}), "
                         f"found {images.shape}")
    if masks.shape != images.shape[:3]:
        raise ValueError(f"masks: expected {images.shape[:3]} (one per image), found {masks.shape}")


_INFERENCE_FUNCTIONS: "weakref.WeakKeyDictionary[keras.Model, object]" = weakref.WeakKeyDictionary()


def predict_logits(model: keras.Model, model_name: str, images, batch_size: int = 32) -> np.ndarray:
    """Pixel logits (N, S, S) float32 of uint8 images, in inference mode (one traced
    function per model, reused for validation and test images)."""
    size, channels = int(model.input.shape[1]), int(model.input.shape[-1])
    if model not in _INFERENCE_FUNCTIONS:
        @tf.function(input_signature=[tf.TensorSpec([None, size, size, channels], tf.uint8)])
        def infer(batch):
            return model(prepare_images(model_name, batch), training=False)[..., 0]

        _INFERENCE_FUNCTIONS[model] = infer
    infer = _INFERENCE_FUNCTIONS[model]
    images = np.asarray(images)
    chunks = [infer(tf.constant(images[start:start + batch_size])).numpy()
              for start in range(0, len(images), batch_size)]
    return np.concatenate(chunks) if chunks else np.empty((0, size, size), np.float32)


def original_size(manifest: pd.DataFrame) -> int:
    """The masks' own size (256 in the Kaggle data), read from the first mask file; the
    fallback for manifests without files is the Kaggle 256."""
    path = manifest["mask_path"].iloc[0]
    if not Path(path).exists():
        return 256
    return int(pipeline.read_tiff_checked(path, ndim=2).shape[0])


class SegmenterFamily:
    """The U-Net (or ResUNet) for the unit runner: fit one unit on the masks, score its
    slices from the predicted masks, save the test logits and slice scores."""

    default_threshold = 0.0  # on the max logit: "any pixel predicted tumor"

    def __init__(self, config: SegmentationConfig, images=None, masks=None):
        self.name, self.config = config.model, config
        self.images, self.masks = images, masks

    def settings(self) -> dict:
        return {"family": "segmenter", "config": asdict(self.config)}

    def prepare(self, manifest: pd.DataFrame, run_dir: Path, progress: bool) -> None:
        if self.images is None or self.masks is None:
            size = self.config.image_size
            images = pipeline.load_images(manifest, size) if self.images is None else self.images
            self.masks = pipeline.load_masks(manifest, size, resize=self.config.mask_resize) \
                if self.masks is None else self.masks
            for name, array in (("images", images), ("masks", self.masks)):
                if len(array) != len(manifest):
                    raise ValueError(f"{name} has {len(array)} rows; the manifest has {len(manifest)}")
            if self.config.intensity_normalization == "volume":
                images = normalize_volumes(images, manifest["patient_id"].to_numpy())
            if self.config.neighbour_slices:
                images = add_neighbour_flair(images, manifest)
            self.images = images
        self.manifest, self.original_size = manifest, original_size(manifest)

    def release(self) -> None:
        self.images = self.masks = None

    def fit(self, unit, keep_best: bool, progress: bool):
        trained = train_segmenter(self.images[unit.fit], self.masks[unit.fit], self.config,
                                  self.images[unit.validation], self.masks[unit.validation],
                                  seed=unit.seed, keep_best=keep_best, progress=progress,
                                  description=unit.name)
        validation_rows = self.manifest.iloc[unit.validation]
        test_rows = self.manifest.iloc[unit.test]
        validation_scores = scores.slice_scores(trained.predict_logits(self.images[unit.validation]),
                                                validation_rows)
        test_logits = trained.predict_logits(self.images[unit.test])
        test_scores = scores.slice_scores(test_logits, test_rows)
        values = scores.score_values(test_scores, self.config.slice_score)

        def save(unit_dir: Path) -> None:
            table = test_rows[["patient_id", "slice_number", "label"]].reset_index(drop=True)
            write_csv_atomic(pd.concat([table, test_scores], axis=1), unit_dir / "slice_scores.csv")
            mask_store.save_unit_masks(unit_dir / "masks.npz", test_rows, test_logits,
                                       self.original_size)
            save_weights_atomic(trained.model, unit_dir / "model.weights.h5")

        return UnitResult(trained.history, trained.best_epoch,
                          scores.score_values(validation_scores, self.config.slice_score), values,
                          scores.p_tumor_from_score(values, self.config.slice_score), save=save)

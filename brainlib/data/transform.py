"""What happens to an image before a model sees it: intensity rescaling and augmentation.

- `normalize_volumes`: each patient's sequences rescaled per volume (Buda et al. 2019);
  `standardize_per_image`: per-image standardisation (the U-Net's input);
- `Augmentation`: one random affine transform per image (flip, rotation, scaling), applied
  to the image and its mask together when there is one, and an optional random gain per
  sequence. Stateless: the same seed gives the same transforms, for every model family.
- `volume_neighbours` / `add_neighbour_flair`: a slice's neighbours in its patient's volume.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

FLAIR_CHANNEL = 1  # the Kaggle images' channels: pre-contrast, FLAIR, post-contrast


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


def standardize_per_image(images):
    """(x - mean) / max(std, 1/sqrt(n)) per image over all pixels and channels, in float32
    (`tf.image.per_image_standardization`): removes the scanner's brightness and contrast."""
    import tensorflow as tf

    return tf.image.per_image_standardization(tf.cast(images, tf.float32))


def random_transforms(n_images, image_size: int, seed, flip: bool = True,
                      rotation_degrees: float = 15.0, scale: float = 0.05):
    """One random affine transform per image (Keras' 8-number form), about the image centre:
    horizontal flip with probability 1/2, rotation in +-`rotation_degrees`, scaling in
    1 +- `scale`. Stateless: the same `seed` (two integers) gives the same transforms."""
    import tensorflow as tf

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


def augment_pair(images, masks, transforms, soft_masks: bool = False):
    """Apply the same transforms to images (B, H, W, C) and masks (B, H, W, 1) in one
    resampling of the two stacked together (bilinear; the mask is thresholded at 1/2, or
    with `soft_masks` (tumor shares in 0-1) kept as resampled). `masks=None` transforms the
    images alone."""
    import keras
    import tensorflow as tf

    images = tf.cast(images, tf.float32)
    channels = images.shape[-1]
    stacked = images if masks is None else tf.concat([images, tf.cast(masks, tf.float32)], axis=-1)
    moved = keras.ops.image.affine_transform(stacked, transforms, interpolation="bilinear",
                                             fill_mode="constant", fill_value=0)
    if masks is None:
        return moved, None
    moved_masks = moved[..., channels:]
    if soft_masks:
        return moved[..., :channels], tf.clip_by_value(moved_masks, 0.0, 1.0)
    return moved[..., :channels], tf.cast(moved_masks > 0.5, tf.float32)


def jitter_intensities(images, seed, strength: float):
    """Multiply each channel of each image by exp(u), u uniform in +-`strength` (stateless:
    the same `seed`, two integers, gives the same gains): the sequences' relative contrast
    changes the way it does between scanners."""
    import tensorflow as tf

    images = tf.cast(images, tf.float32)
    shape = tf.stack([tf.shape(images)[0], 1, 1, tf.shape(images)[-1]])
    gains = tf.exp(tf.random.stateless_uniform(shape, tf.cast(seed, tf.int64), -strength, strength))
    return tf.clip_by_value(images * gains, 0.0, 255.0)


@dataclass(frozen=True)
class Augmentation:
    """Random flip, rotation and scaling (and optionally a gain per sequence) of a batch,
    with its masks when it has them. The paper's classifiers use Keras rotation and scaling
    (`PAPER_AUGMENTATION`: +-36 degrees, +-10%, no flip); the U-Net Buda et al.'s flips,
    +-15 degrees and +-5%, with gain jitter (`segmenter.SegmentationConfig`)."""

    flip: bool = True
    rotation_degrees: float = 15.0
    scale: float = 0.05
    intensity_jitter: float = 0.0

    def __call__(self, images, masks, seed, soft_masks: bool = False):
        """(images, masks or None) transformed; `seed` two integers (stateless);
        `soft_masks` as in `augment_pair`."""
        import tensorflow as tf

        seed = tf.cast(seed, tf.int64)
        transforms = random_transforms(tf.shape(images)[0], int(images.shape[1]), seed, self.flip,
                                       self.rotation_degrees, self.scale)
        images, masks = augment_pair(images, masks, transforms, soft_masks)
        if self.intensity_jitter > 0:
            images = jitter_intensities(images, seed + tf.constant([0, 7], tf.int64),
                                        self.intensity_jitter)
        return images, masks


PAPER_AUGMENTATION = Augmentation(flip=False, rotation_degrees=36.0, scale=0.1)

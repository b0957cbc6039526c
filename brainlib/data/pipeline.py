"""From manifest rows to model-ready batches.

Slices are decoded from TIFF once, resized, and kept as a uint8 array in an on-disk cache
(a `.npy` memory map written in chunks, so a full dataset never sits in memory as
float32). `batches`, the one tf.data builder of every model family, serves them in a
seeded order with the family's own preparation (`preprocess_input` on 0-255 RGB for the
classifiers) and, for training, one stateless augmentation (`transform.Augmentation`) of
images and, where there are any, their masks; `make_dataset` is `batches` over a manifest.
"""
from __future__ import annotations

import functools
import hashlib
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
from PIL import Image

from ..config.params import CLASSIFIERS
from . import DataProblem, DatasetError, cache_dir, read_tiff

CHUNK = 64  # slices decoded per step: bounds memory while streaming to the cache


PARALLEL_CALLS = os.cpu_count() or 1  # fixed map parallelism: tf.data autotuning is off


def prefetch_without_autotune(dataset):
    """`dataset` prefetching 2 batches, with tf.data's autotuning off (maps in it use
    `PARALLEL_CALLS`, not AUTOTUNE).

    The autotuner's thread sleeps 10, 20, 40 ... ms between passes and the end of a Keras
    `fit` waits for its current sleep: measured here, an epoch that took 5.2 s of work
    often returned at exactly 10.3 s (10 ms x (2^10 - 1)), so training ran 1.5x slower.
    """
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.prefetch(2).with_options(options)


def load_images(manifest: pd.DataFrame, image_size: int, *, use_cache: bool = True
                ) -> np.ndarray:
    """The manifest's slices as a uint8 (N, size, size, 3) array, read-only, disk-backed.

    The cache key covers every file's path, size and modification time and the size, so a
    changed file (or a different size) decodes again; a second run does not decode at all.
    """
    return _cached_stack(manifest["image_path"].tolist(), image_size, "image", use_cache)


MASK_RESIZES = ("max", "area")


def load_masks(manifest: pd.DataFrame, image_size: int, *, use_cache: bool = True,
               resize: str = "max") -> np.ndarray:
    """The manifest's masks as uint8 (N, size, size) arrays, disk-backed.

    `resize="max"`: 0/255, the maximum over each block, so a slice with any tumor pixel
    keeps one (a tumor grows by up to a block at its border). `resize="area"`: the share of
    tumor pixels under each pixel, 0-255, never 0 where a tumor pixel lies (soft training
    targets whose border sits where the full-size mask's does). Either way a slice has a
    non-zero pixel exactly when its full-size mask has one.
    """
    if resize not in MASK_RESIZES:
        raise ValueError(f"resize must be one of {MASK_RESIZES}; found {resize!r}")
    kind = "mask" if resize == "max" else "mask-area"
    return _cached_stack(manifest["mask_path"].tolist(), image_size, kind, use_cache)


def _cached_stack(paths: list[str], size: int, kind: str, use_cache: bool) -> np.ndarray:
    shape = (len(paths), size, size, 3) if kind == "image" else (len(paths), size, size)
    key = hashlib.sha1(repr((kind, size, [_file_signature(p) for p in paths])).encode())
    target = cache_dir() / "arrays" / f"{kind}-{size}-{key.hexdigest()[:20]}.npy"
    if use_cache and target.exists():
        return np.load(target, mmap_mode="r")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    stack = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
    decode = {"image": _decode_image, "mask": _decode_mask, "mask-area": _decode_mask_area}[kind]
    try:
        with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
            for start in range(0, len(paths), CHUNK):
                chunk = paths[start:start + CHUNK]
                stack[start:start + len(chunk)] = np.stack(
                    list(pool.map(lambda p: decode(p, size), chunk)))
        stack.flush()
        del stack
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()
    return np.load(target, mmap_mode="r")


def _file_signature(path: str) -> tuple:
    try:
        stat = os.stat(path)
    except OSError:
        raise DatasetError([DataProblem(path, "file is missing (the manifest is out of date: "
                                              "scan the dataset again)")]) from None
    return (path, stat.st_size, stat.st_mtime_ns)


def _decode_image(path: str, size: int) -> np.ndarray:
    image = read_tiff_checked(path, ndim=3)
    if image.shape[:2] != (size, size):
        image = np.asarray(Image.fromarray(image).resize((size, size), Image.BILINEAR))
    return image


def _decode_mask(path: str, size: int) -> np.ndarray:
    mask = read_tiff_checked(path, ndim=2)
    if mask.shape != (size, size):
        # Maximum over each source block (np.maximum.reduceat), so a tumor of one pixel
        # survives downsizing and a slice's label never changes.
        rows = np.arange(size) * mask.shape[0] // size
        cols = np.arange(size) * mask.shape[1] // size
        mask = np.maximum.reduceat(np.maximum.reduceat(mask, rows, axis=0), cols, axis=1)
    return mask


def _decode_mask_area(path: str, size: int) -> np.ndarray:
    mask = read_tiff_checked(path, ndim=2)
    if mask.shape == (size, size):
        return mask
    tumor = Image.fromarray((mask > 0).astype(np.float32))
    share = np.asarray(tumor.resize((size, size), Image.BOX), np.float32)
    # A block with any tumor pixel stays non-zero however small its share.
    return np.where(share > 0, np.maximum(1, np.round(share * 255)), 0).astype(np.uint8)


def read_tiff_checked(path: str, ndim: int) -> np.ndarray:
    """Read a slice (ndim 3) or mask (ndim 2) TIFF, raising `DatasetError` naming the file."""
    try:
        array = read_tiff(path)
    except Exception as error:  # _TiffReadError carries the file and the problem
        raise DatasetError([DataProblem(getattr(error, "path", path),
                                        getattr(error, "problem", str(error)))]) from None
    if ndim == 2 and array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    expected = "(H, W, 3) RGB" if ndim == 3 else "(H, W) single channel"
    if array.ndim != ndim or (ndim == 3 and array.shape[2] != 3) or array.dtype != np.uint8:
        raise DatasetError([DataProblem(path, f"has shape {array.shape} {array.dtype}, "
                                              f"expected {expected} uint8")])
    return array


# ImageNet channel means in BGR order: the "caffe" preprocessing of ResNet50 and VGG16.
IMAGENET_BGR_MEAN = np.array([103.939, 116.779, 123.68], dtype=np.float32)


def preprocess_input(model_name: str, images) -> "np.ndarray":
    """The model's ImageNet preprocessing on 0-255 RGB (caffe mode: BGR, means removed).

    Do not divide by 255 first: both ResNet50 and VGG16 expect the 0-255 range. Both
    routes give keras' `preprocess_input` numbers exactly (tested): numpy input in one numpy
    pass; tensors (uint8 or float32) in one XLA-fused pass. Unfused, TensorFlow's reversal
    and its subtraction broadcast over 3 channels each made a pass of their own, and keras'
    stack of three channel slices more: together most of a plain epoch's time
    (`benchmarks/bench_pipeline.py --profile`).
    """
    if model_name not in CLASSIFIERS:
        raise ValueError(f"model_name must be one of {CLASSIFIERS}, got {model_name!r}")
    if isinstance(images, np.ndarray):
        out = np.empty(images.shape, dtype=np.float32)
        for channel in range(3):
            np.subtract(images[..., 2 - channel], IMAGENET_BGR_MEAN[channel],
                        out=out[..., channel], dtype=np.float32)
        return out
    return _fused_caffe_preprocessing()(images)


@functools.cache
def _fused_caffe_preprocessing():
    """RGB -> BGR, float32, means removed, compiled by XLA into one pass over the batch
    (the arithmetic is the same single float32 subtraction as keras', so bit for bit)."""
    import tensorflow as tf

    @tf.function(jit_compile=True, reduce_retracing=True)
    def caffe(images):
        bgr = tf.cast(tf.reverse(images, axis=[-1]), tf.float32)
        return bgr - tf.constant(IMAGENET_BGR_MEAN)
    return caffe


def batches(images, targets, order, batch_size: int, prepare, augmentation=None,
            seed: int | None = None, masks_as_targets: bool = False, soft_masks: bool = False):
    """The one tf.data builder: batches of `prepare(images, targets)` in `order` (NumPy
    arrays, so every model family sees its rows in a seeded order it controls).
    `prepare` gets the images in their stored dtype (uint8 slices), or as float32 after an
    augmentation, and casts them itself: one pass fewer over a plain batch.

    With an `augmentation` (a `transform.Augmentation`) and a `seed`, each batch gets its
    own stateless random transforms, seeded by (seed, batch number), applied to the masks
    too when `masks_as_targets` (targets are then 0/255 masks, given to `prepare` as 0/1
    float32 (B, H, W, 1)). `soft_masks`: the masks are tumor shares 0-255 (`load_masks(...,
    resize="area")`), given as share/255 and resampled without a threshold.
    """
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices((images[order], targets[order]))
    dataset = dataset.batch(batch_size).enumerate()

    def map_batch(batch_number, pair):
        batch_images, batch_targets = pair
        if masks_as_targets:
            batch_targets = tf.cast(batch_targets, tf.float32)[..., None]
            batch_targets = batch_targets / 255 if soft_masks else \
                tf.cast(batch_targets > 0, tf.float32)
        if augmentation is not None and seed is not None:
            batch_images = tf.cast(batch_images, tf.float32)
            batch_seed = tf.stack([tf.constant(seed, tf.int64), batch_number])
            batch_images, moved = augmentation(batch_images, batch_targets if masks_as_targets
                                               else None, batch_seed, soft_masks)
            batch_targets = moved if masks_as_targets else batch_targets
        return prepare(batch_images, batch_targets)

    return prefetch_without_autotune(dataset.map(map_batch, num_parallel_calls=PARALLEL_CALLS))


def make_dataset(manifest: pd.DataFrame, model_name: str, image_size: int, *,
                 batch_size: int = 32, training: bool = False, augment: bool = False,
                 seed: int = 0, labels: np.ndarray | None = None):
    """`batches` of a manifest's slices for a classifier: (float32 preprocessed images,
    float32 one-hot labels). Training batches are shuffled (seeded) and, with `augment`,
    rotated and scaled as in the paper; evaluation batches keep the manifest's order.
    `labels` overrides the manifest's (for the shuffled-label control).
    """
    from .transform import PAPER_AUGMENTATION

    if augment and not training:
        raise ValueError("augmentation applies to training batches only")
    images = load_images(manifest, image_size)
    labels = manifest["label"].to_numpy() if labels is None else np.asarray(labels)
    one_hot = np.eye(2, dtype=np.float32)[labels.astype(int)]
    order = np.random.default_rng(seed).permutation(len(manifest)) if training else \
        np.arange(len(manifest))
    return batches(images, one_hot, order, batch_size,
                   lambda x, y: (preprocess_input(model_name, x), y),
                   PAPER_AUGMENTATION if augment else None, seed)

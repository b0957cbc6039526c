"""The models stage. This module: ResNet50 and VGG16 classifiers with the paper's head
(Table I), and their summaries; beside it the U-Net (`unet`) and its loss (`loss`).

The classifier is: base without top -> AveragePooling2D -> Flatten -> Dense 256 ->
Dropout 0.3 -> Dense 256 -> Dropout 0.3 -> Dense 128 -> Dropout 0.3 -> Dense 2 softmax.
The pool size is derived from the base's feature map so the grid before Flatten is 2x2 at
any supported input size (the paper's AveragePooling2D(4x4) on ResNet50's 8x8 map at
256x256), so the head's parameter counts are the paper's at every size.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import socket
import sys
from dataclasses import dataclass

import keras
import numpy as np
import pandas as pd

from ..config import lazy_submodules
from ..config.params import CLASSIFIERS

MODEL_NAMES = CLASSIFIERS  # the classifiers of the model registry (config.params)
HEAD_GRID = 2  # the paper's grid before Flatten: (None, 2, 2, channels)
HEAD_UNITS = (256, 256, 128)
DROPOUT_RATE = 0.3
N_CLASSES = 2  # column 0: no tumor, column 1: tumor

_BASES = {
    "resnet50": keras.applications.ResNet50,
    "vgg16": keras.applications.VGG16,
}
_PREPROCESS = {
    "resnet50": keras.applications.resnet50.preprocess_input,
    "vgg16": keras.applications.vgg16.preprocess_input,
}
# Where Keras downloads the ImageNet weights without the top (Keras 3 applications).
IMAGENET_NOTOP_URLS = {
    "resnet50": "https://storage.googleapis.com/tensorflow/keras-applications/resnet/"
    "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
    "vgg16": "https://storage.googleapis.com/tensorflow/keras-applications/vgg16/"
    "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
}
# Residual blocks of ResNet50 (conv5_block3_...) and convolution blocks of VGG16 (block5_...).
_BLOCK_PATTERNS = {
    "resnet50": re.compile(r"^(conv\d+_block\d+)_"),
    "vgg16": re.compile(r"^(block\d+)_"),
}


class ImageNetWeightsUnavailable(RuntimeError):
    """ImageNet weights could not be downloaded (typically: no internet)."""


def check_model_name(model_name: str) -> str:
    if model_name not in _BASES:
        raise ValueError(f"model_name must be one of {MODEL_NAMES}; found {model_name!r}")
    return model_name


def preprocess_function(model_name: str):
    """The base's keras `preprocess_input` (on 0-255 RGB; works on arrays and tensors)."""
    return _PREPROCESS[check_model_name(model_name)]


# ----------------------------------------------------------------------------- base


def _imagenet_file_cached(model_name: str) -> bool:
    file_name = IMAGENET_NOTOP_URLS[model_name].rsplit("/", 1)[1]
    keras_home = os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))
    return any(
        os.path.exists(os.path.join(folder, "models", file_name))
        for folder in (keras_home, "/tmp/.keras")
    )


def _can_reach(host: str, port: int = 443, timeout_s: float = 3.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def _offline_message(model_name: str, reason: str) -> str:
    url = IMAGENET_NOTOP_URLS[model_name]
    return (
        f"weights='imagenet' for {model_name} needs a download from {url}, which failed "
        f"({reason}). On a machine with internet, download that file and pass its local "
        f"path instead: build_classifier({model_name!r}, weights='/path/to/"
        f"{url.rsplit('/', 1)[1]}') (in a study: `-p weights=/path/to/that/file.h5`). "
        f"Or run without them: `-p weights=none` (weights=None: randomly initialised bases; "
        f"the run card and every chapter then say so, and the run cannot test the paper's "
        f"transfer-learning claim)."
    )


def require_imagenet_weights(model_name: str) -> None:
    """Fail at once, saying what to do, where the ImageNet file is neither cached nor
    downloadable: before a study's first chapter, not an hour into it."""
    if not _imagenet_file_cached(check_model_name(model_name)):
        host = IMAGENET_NOTOP_URLS[model_name].split("/")[2]
        if not _can_reach(host):
            raise ImageNetWeightsUnavailable(_offline_message(model_name, f"cannot reach {host}"))


def build_base(model_name: str, input_size: int = 256, weights: str | None = None) -> keras.Model:
    """The convolutional base without its top; `weights` is None, "imagenet" or a file path.

    A path is any weights file for the base without top: the Keras ImageNet `..._notop.h5`
    file, or one written by `base.save_weights(...)`. Offline, "imagenet" fails fast with a
    message that says how to pass a local file instead.
    """
    constructor = _BASES[check_model_name(model_name)]
    if isinstance(weights, str) and weights.lower() in ("none", ""):
        weights = None  # as written in a profile file
    if weights is not None and weights != "imagenet":
        weights = os.fspath(weights)
        if not os.path.isfile(weights):
            raise FileNotFoundError(
                f"weights for {model_name}: expected None, 'imagenet' or a weights file; "
                f"no file at {weights!r}"
            )
    if weights == "imagenet":
        require_imagenet_weights(model_name)
    if input_size < 32:  # Keras' own minimum for these bases
        raise ValueError(f"input_size {input_size} is too small for {model_name}: {_too_small_hint(model_name)}")
    try:
        return constructor(
            include_top=False, weights=weights, input_shape=(input_size, input_size, 3)
        )
    except Exception as error:  # Keras raises a plain Exception on a failed download
        if weights == "imagenet" and "URL fetch failure" in str(error):
            raise ImageNetWeightsUnavailable(_offline_message(model_name, str(error))) from error
        raise


def set_base_trainable(base: keras.Model, freeze_base: bool = True, trainable_top_blocks: int = 0):
    """Freeze the base, or all of it but its top `trainable_top_blocks` blocks.

    Blocks are ResNet50's residual blocks (conv5_block3, conv5_block2, ...) or VGG16's
    convolution blocks (block5, block4, ...). BatchNormalization layers stay frozen even in
    unfrozen blocks: a frozen BN layer runs in inference mode in Keras 3 whatever `training`
    flag reaches it, so its moving statistics never change (the usual fine-tuning advice).
    """
    if trainable_top_blocks < 0:
        raise ValueError(f"trainable_top_blocks must be >= 0; found {trainable_top_blocks}")
    if not freeze_base:
        base.trainable = True
        return base
    blocks = base_blocks(base)
    if trainable_top_blocks > len(blocks):
        raise ValueError(
            f"trainable_top_blocks={trainable_top_blocks} but {base.name} has only "
            f"{len(blocks)} blocks: {blocks}"
        )
    unfrozen = set(blocks[len(blocks) - trainable_top_blocks :])
    base.trainable = bool(unfrozen)
    for layer in base.layers:
        block = _block_of(base.name, layer.name)
        is_batch_norm = isinstance(layer, keras.layers.BatchNormalization)
        layer.trainable = block in unfrozen and not is_batch_norm
    return base


def _block_of(model_name: str, layer_name: str) -> str | None:
    match = _BLOCK_PATTERNS[model_name].match(layer_name)
    return match.group(1) if match else None


def base_blocks(base: keras.Model) -> list[str]:
    """Names of the base's blocks, bottom to top."""
    blocks: list[str] = []
    for layer in base.layers:
        block = _block_of(base.name, layer.name)
        if block and block not in blocks:
            blocks.append(block)
    return blocks


# ----------------------------------------------------------------------------- head


def _too_small_hint(model_name: str) -> str:
    return (
        f"the head needs a feature map of at least {HEAD_GRID}x{HEAD_GRID} so the grid before "
        f"Flatten is the paper's {HEAD_GRID}x{HEAD_GRID}; {model_name} shrinks its input 32x, "
        f"so use input_size >= {32 * HEAD_GRID}"
    )


def head_pooling(feature_map_size: int, model_name: str = "base") -> tuple[int, int]:
    """(pool_size, strides) that turn an f x f feature map into the 2x2 grid before Flatten.

    Even f: pool = stride = f/2 (at 256x256 ResNet50's 8x8 map gives the paper's 4x4 pool).
    Odd f: pool (f+1)/2 with stride (f-1)/2, two windows that share the middle row.
    """
    if feature_map_size < HEAD_GRID:
        raise ValueError(
            f"feature map of {model_name} is {feature_map_size}x{feature_map_size}: "
            f"{_too_small_hint(model_name)}"
        )
    pool_size = math.ceil(feature_map_size / HEAD_GRID)
    strides = max(1, feature_map_size // HEAD_GRID)
    return pool_size, strides


def build_head(
    feature_shape: tuple[int, ...], seed: int = 0, standardize_features: bool = False,
    name: str = "head",
) -> keras.Sequential:
    """Flatten -> Dense 256/Dropout/Dense 256/Dropout/Dense 128/Dropout -> Dense 2 softmax.

    Takes the pooled 2x2 grid. Initializers and dropout get explicit seeds from `seed`, so
    the same head comes out whether it is built alone (feature cache) or inside a classifier.
    `standardize_features` (not in the paper) puts a per-channel Normalization first; set
    its statistics with `set_feature_statistics`.
    """
    return keras.Sequential(
        [keras.Input(shape=tuple(feature_shape)), *_head_layers(seed, standardize_features)],
        name=name,
    )


def _head_layers(seed: int, standardize_features: bool = False) -> list[keras.layers.Layer]:
    layers: list[keras.layers.Layer] = []
    if standardize_features:
        layers.append(keras.layers.Normalization(axis=-1, name="head_standardize"))
    layers.append(keras.layers.Flatten(name="head_flatten"))
    for index, units in enumerate(HEAD_UNITS, start=1):
        layers.append(
            keras.layers.Dense(
                units,
                activation="relu",
                kernel_initializer=keras.initializers.GlorotUniform(seed=seed * 100 + index),
                name=f"head_dense_{index}",
            )
        )
        layers.append(
            keras.layers.Dropout(DROPOUT_RATE, seed=seed * 100 + 10 + index, name=f"head_dropout_{index}")
        )
    layers.append(
        keras.layers.Dense(
            N_CLASSES,
            activation="softmax",
            kernel_initializer=keras.initializers.GlorotUniform(seed=seed * 100 + 9),
            name="head_output",
        )
    )
    return layers


def set_feature_statistics(model: keras.Model, mean, variance) -> None:
    """Set the head's per-channel feature mean and variance (standardize_features=True)."""
    layer = model.get_layer("head_standardize")
    layer.adapt_mean.assign(np.asarray(mean, dtype="float32"))
    layer.adapt_variance.assign(np.asarray(variance, dtype="float32"))
    layer.finalize_state()


def pooled_feature_shape(base: keras.Model) -> tuple[int, int, int]:
    """Shape of one image's features after the head's AveragePooling2D: (2, 2, channels)."""
    return (HEAD_GRID, HEAD_GRID, int(base.output.shape[-1]))


def head_pooling_layer(base: keras.Model) -> keras.layers.AveragePooling2D:
    pool_size, strides = head_pooling(int(base.output.shape[1]), base.name)
    return keras.layers.AveragePooling2D(pool_size=pool_size, strides=strides, name="head_pooling")


# ----------------------------------------------------------------------------- classifier


def build_classifier(
    model_name: str,
    input_size: int = 256,
    weights: str | None = None,
    freeze_base: bool = True,
    trainable_top_blocks: int = 0,
    seed: int | None = 0,
    head_seed: int | None = None,
    base: keras.Model | None = None,
    standardize_features: bool = False,
) -> keras.Model:
    """The paper's classifier (Table I): base, AveragePooling2D, Flatten, dense head.

    `seed` seeds Keras' global RNG before the base is built (its initial weights when
    `weights=None`); `head_seed` (default `seed`) seeds the head. Pass `base` to reuse an
    already built base (its freezing is then left as it is). `standardize_features` adds
    a per-channel Normalization before Flatten (not in the paper; see `build_head`).
    """
    check_model_name(model_name)
    if seed is not None:
        keras.utils.set_random_seed(seed)
    if base is None:
        base = build_base(model_name, input_size, weights)
        set_base_trainable(base, freeze_base, trainable_top_blocks)
    input_size = int(base.input.shape[1])
    pooling = head_pooling_layer(base)
    inputs = keras.Input(shape=(input_size, input_size, 3), name="image")
    # training=False is written for the reader; what keeps BatchNorm in inference mode under
    # Keras 3 (which passes the outer `training` flag down) is that BN layers are frozen.
    x = pooling(base(inputs, training=False))
    head_seed = head_seed if head_seed is not None else (seed or 0)
    for layer in _head_layers(head_seed, standardize_features):
        x = layer(x)
    return keras.Model(inputs, x, name=f"{model_name}_classifier")


def base_of(classifier: keras.Model) -> keras.Model:
    """The base (the nested ResNet50 / VGG16 model) of a classifier."""
    for layer in classifier.layers:
        if layer.name in MODEL_NAMES:
            return layer
    raise ValueError(f"{classifier.name} has no nested {' or '.join(MODEL_NAMES)} base")


def head_of(classifier: keras.Model) -> keras.Sequential:
    """The classifier's head layers after pooling, as a model that shares their weights."""
    names = [layer.name for layer in classifier.layers]
    start = names.index("head_pooling") + 1
    pooled_shape = tuple(classifier.get_layer("head_pooling").output.shape[1:])
    return keras.Sequential([keras.Input(shape=pooled_shape), *classifier.layers[start:]], name="head")


def is_base_frozen(classifier_or_base: keras.Model) -> bool:
    base = classifier_or_base if classifier_or_base.name in MODEL_NAMES else base_of(classifier_or_base)
    return len(base.trainable_weights) == 0


# ----------------------------------------------------------------------------- summary


@dataclass(frozen=True)
class ParameterCounts:
    total: int
    trainable: int
    non_trainable: int

    def __str__(self) -> str:
        return (
            f"Total params: {self.total:,}\nTrainable params: {self.trainable:,}\n"
            f"Non-trainable params: {self.non_trainable:,}"
        )


@dataclass(frozen=True)
class ModelSummary:
    """A classifier's layer table (one row per top-level layer) and parameter counts."""

    model_name: str
    input_size: int
    layers: pd.DataFrame
    counts: ParameterCounts

    def __str__(self) -> str:
        table = self.layers.to_string(
            index=False, formatters={"params": "{:,}".format, "trainable_params": "{:,}".format}
        )
        return f"{self.model_name} classifier, input {self.input_size}x{self.input_size}x3\n{table}\n{self.counts}"


def _n_params(weights) -> int:
    return int(sum(math.prod(weight.shape) for weight in weights))


def parameter_counts(model: keras.Model) -> ParameterCounts:
    trainable = _n_params(model.trainable_weights)
    non_trainable = _n_params(model.non_trainable_weights)
    return ParameterCounts(trainable + non_trainable, trainable, non_trainable)


def layer_table(model: keras.Model) -> pd.DataFrame:
    """One row per top-level layer: name, type, output shape, params, trainable params."""
    rows = []
    for layer in model.layers:
        rows.append(
            {
                "layer": layer.name,
                "type": type(layer).__name__,
                "output_shape": str(tuple(layer.output.shape)),
                "params": _n_params(layer.weights),
                "trainable_params": _n_params(layer.trainable_weights),
            }
        )
    return pd.DataFrame(rows)


def summarize_model(
    model_name: str,
    input_size: int = 256,
    freeze_base: bool = True,
    trainable_top_blocks: int = 0,
) -> ModelSummary:
    """Layer table and parameter counts of a classifier (built with weights=None)."""
    model = build_classifier(
        model_name, input_size, None, freeze_base, trainable_top_blocks, seed=0
    )
    return ModelSummary(model_name, input_size, layer_table(model), parameter_counts(model))


def print_summary(model_name: str, input_size: int = 256, trainable_top_blocks: int = 0) -> ModelSummary:
    summary = summarize_model(model_name, input_size, trainable_top_blocks=trainable_top_blocks)
    print(summary)
    return summary


def summary_main(argv: list[str]) -> int:
    """`python -m brainlib summary MODEL [--input-size N]`: layer table and parameter counts."""
    parser = argparse.ArgumentParser(
        prog="python -m brainlib summary",
        description="Layer table and total / trainable / non-trainable parameter counts "
        "of the paper's classifier (no weights download needed).",
    )
    parser.add_argument("model", choices=MODEL_NAMES)
    parser.add_argument("--input-size", type=int, default=256, help="square input size (default 256)")
    parser.add_argument(
        "--trainable-top-blocks", type=int, default=0, help="unfreeze the base's top N blocks"
    )
    args = parser.parse_args(argv)
    try:
        print_summary(args.model, args.input_size, args.trainable_top_blocks)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


SUBMODULES = ('unet', 'loss')


__getattr__ = lazy_submodules(__name__, SUBMODULES)

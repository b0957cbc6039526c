"""Segmentation architectures: a U-Net (Ronneberger et al. 2015) and a U-Net whose encoder
is Keras' ResNet50 (the ResUNet); both give one channel of pixel logits."""
from __future__ import annotations

import keras

from .. import models
from ..config.params import SEGMENTER

MODEL_NAMES = (SEGMENTER, "resunet")  # the U-Net, and the ResNet50-encoder variant
PRECISIONS = ("float32", "mixed_bfloat16")
BATCH_NORM_KERNELS = ("fused", "keras")  # FusedBatchNormalization, or Keras' own layer
# ResNet50 layers whose outputs feed the decoder, at 1/2, 1/4, 1/8 and 1/16 of the input.
RESNET_SKIP_LAYERS = ("conv1_relu", "conv2_block3_out", "conv3_block4_out", "conv4_block6_out")


class FusedBatchNormalization(keras.layers.Layer):
    """Batch normalisation (eq. 8) in TensorFlow's fused kernel: the same arithmetic as
    `keras.layers.BatchNormalization` (momentum 0.99, epsilon 1e-3, biased batch variance in
    the moving average), up to rounding, on NHWC maps.

    Why: Keras 3 builds batch norm from separate moment and arithmetic ops, TensorFlow's
    kernel does it in one pass. On 2 CPU cores a whole training run took 0.82x the time of
    Keras' layer (benchmarks/bench_unet_recipe.py, `third-96` against `keras-bn`) and a
    training step about 0.5x on a quiet machine (benchmarks/bench_unet_step.py; single
    rounds vary a lot there, so compare interleaved rounds only).
    Half-precision inputs are normalised in float32, as Keras' layer does.
    """

    def __init__(self, momentum: float = 0.99, epsilon: float = 1e-3, **kwargs):
        super().__init__(**kwargs)
        self.momentum, self.epsilon = float(momentum), float(epsilon)

    def build(self, input_shape):
        channels = (int(input_shape[-1]),)
        self.gamma = self.add_weight(shape=channels, initializer="ones", name="gamma",
                                     autocast=False)
        self.beta = self.add_weight(shape=channels, initializer="zeros", name="beta",
                                    autocast=False)
        self.moving_mean = self.add_weight(shape=channels, initializer="zeros",
                                           name="moving_mean", trainable=False, autocast=False)
        self.moving_variance = self.add_weight(shape=channels, initializer="ones",
                                               name="moving_variance", trainable=False,
                                               autocast=False)

    def call(self, inputs, training=False):
        import tensorflow as tf

        x = tf.cast(inputs, tf.float32)
        if training:
            y, mean, variance = tf.compat.v1.nn.fused_batch_norm(
                x, self.gamma, self.beta, epsilon=self.epsilon, is_training=True)
            # The kernel returns the unbiased variance; Keras averages the biased one.
            count = tf.cast(tf.reduce_prod(tf.shape(x)[:-1]), tf.float32)
            variance = variance * (count - 1) / count
            self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1 - self.momentum))
            self.moving_variance.assign(self.moving_variance * self.momentum
                                        + variance * (1 - self.momentum))
        else:
            y, _, _ = tf.compat.v1.nn.fused_batch_norm(
                x, self.gamma, self.beta, mean=self.moving_mean,
                variance=self.moving_variance, epsilon=self.epsilon, is_training=False)
        return tf.cast(y, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "epsilon": self.epsilon}


def _batch_norm(kernel: str, name: str, dtype=None):
    if kernel == "fused":
        return FusedBatchNormalization(name=name, dtype=dtype)
    return keras.layers.BatchNormalization(name=name, dtype=dtype)


def _conv_block(x, width: int, batch_norm: bool, name: str, dtype=None,
                batch_norm_kernel: str = "fused"):
    """Two 3x3 convolutions, each followed by batch norm (optional) and ReLU."""
    for index in (1, 2):
        x = keras.layers.Conv2D(width, 3, padding="same", use_bias=not batch_norm,
                                kernel_initializer="he_normal", name=f"{name}_conv{index}",
                                dtype=dtype)(x)
        if batch_norm:
            x = _batch_norm(batch_norm_kernel, f"{name}_bn{index}", dtype)(x)
        x = keras.layers.Activation("relu", name=f"{name}_relu{index}", dtype=dtype)(x)
    return x


def build_unet(input_size: int, widths=(16, 32, 64, 128), batch_norm: bool = True,
               seed: int = 0, channels: int = 3, precision: str = "float32",
               batch_norm_kernel: str = "fused") -> keras.Model:
    """U-Net (Ronneberger et al. 2015): an encoder level per width but the last, which is
    the bottleneck, and a mirrored decoder with skip connections; 1-channel logits out.

    16-32-64-128 with batch norm has about 0.47 M parameters. `seed` fixes the initial
    weights (Keras' global seed is set before building). `precision="mixed_bfloat16"`
    computes in bfloat16 with float32 weights (Keras' mixed policy, per layer, so no global
    state changes) and keeps the logits layer in float32: slice scores are maxima of
    logits, which bfloat16's 8-bit mantissa would turn into ties. `batch_norm_kernel`:
    "fused" (`FusedBatchNormalization`) or "keras" (Keras' layer, kept to measure against).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}; found {precision!r}")
    if batch_norm_kernel not in BATCH_NORM_KERNELS:
        raise ValueError(f"batch_norm_kernel must be one of {BATCH_NORM_KERNELS}; "
                         f"found {batch_norm_kernel!r}")
    dtype = keras.DTypePolicy(precision)
    widths = tuple(int(w) for w in widths)
    if len(widths) < 2:
        raise ValueError(f"widths: expected at least 2 levels (encoder + bottleneck), found {widths}")
    factor = 2 ** (len(widths) - 1)
    if input_size % factor:
        raise ValueError(f"input_size {input_size} must be divisible by {factor} for "
                         f"{len(widths) - 1} poolings (widths {widths})")
    keras.utils.set_random_seed(int(seed))
    inputs = keras.Input((input_size, input_size, channels), name="image")
    x, skips = inputs, []
    for level, width in enumerate(widths[:-1], start=1):
        x = _conv_block(x, width, batch_norm, f"encoder{level}", dtype, batch_norm_kernel)
        skips.append(x)
        x = keras.layers.MaxPooling2D(2, name=f"encoder{level}_pool", dtype=dtype)(x)
    x = _conv_block(x, widths[-1], batch_norm, "bottleneck", dtype, batch_norm_kernel)
    for level in range(len(widths) - 1, 0, -1):
        x = keras.layers.Conv2DTranspose(widths[level - 1], 2, strides=2,
                                         name=f"decoder{level}_up", dtype=dtype)(x)
        x = keras.layers.Concatenate(name=f"decoder{level}_skip", dtype=dtype)([x, skips[level - 1]])
        x = _conv_block(x, widths[level - 1], batch_norm, f"decoder{level}", dtype,
                        batch_norm_kernel)
    logits = keras.layers.Conv2D(1, 1, name="logits", dtype="float32")(x)
    return keras.Model(inputs, logits, name=SEGMENTER)


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
    keras.utils.set_random_seed(int(seed))
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

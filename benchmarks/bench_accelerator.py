"""Benchmark: the `full` profile's frozen-base arithmetic on whatever device Keras computes on.

The feature bank's cost is the frozen base's forward pass over K views of every image once;
the lineage's is the same pass over every augmented training image, every epoch of every
fold. This measures that pass with the study's own bases (`brainlib.models`: ResNet50 and
VGG16 without top, then the head's pooling) at 256x256 in float32 and in Keras'
mixed_bfloat16 (what `base_precision=auto` picks on a GPU with bfloat16), at the bank's batch
of 64 and at a larger batch; and the head's training epoch over bank-sized features
(Keras' own `fit`, batch 32, the head of `models.build_head`). From those parts it projects
the `full` profile's classifiers (8 folds x 20 epochs x both models, the full-size phantom's
slice count, K = bank_views) by both paths, the same formulas as bench_paper_setting.py.

It needs only Keras 3 and a backend, not TensorFlow, so it runs on the GPU machine a session
may be lent (it has JAX): `KERAS_BACKEND=jax python benchmarks/bench_accelerator.py`.
The images are real phantom slices (`phantom.phantom_volume`). Not measured here: the
paper's augmentation (TensorFlow image ops, once per bank view; bench_paper_setting.py
measures it with the rest of the CPU path) and reading the images from disk.

    KERAS_BACKEND=jax python benchmarks/bench_accelerator.py [--images 2048] [--batches 64,256]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # brainlib from this checkout

FOLDS, EPOCHS, IMAGE_SIZE, BANK_BATCH, HEAD_BATCH = 8, 20, 256, 64, 32


def device_name() -> str:
    """What Keras computes on, in words."""
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return f"jax {jax.__version__}: " + ", ".join(d.device_kind for d in jax.devices())
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        return f"tensorflow {tf.__version__}: " + (", ".join(g.name for g in gpus) or "CPU")
    return backend


def has_accelerator() -> bool:
    """A GPU (or other non-CPU device) under Keras' backend."""
    import keras

    if keras.backend.backend() == "jax":
        import jax

        return any(d.platform != "cpu" for d in jax.devices())
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return bool(tf.config.list_physical_devices("GPU"))
    return False


def phantom_images(n_images: int, image_size: int, distinct: int = 512):
    """`n_images` uint8 RGB slices: the full-size phantom's first `distinct`, repeated."""
    import numpy as np

    from brainlib.data import phantom

    plan = phantom.phantom_plan(seed=0, **phantom.FULL_SIZE)
    volumes, total = [], 0
    for _, patient in plan.iterrows():
        images, _ = phantom.phantom_volume(patient, image_size=image_size, seed=0)
        volumes.append(images)
        total += len(images)
        if total >= min(distinct, n_images):
            break
    stacked = np.concatenate(volumes)
    reps = -(-n_images // len(stacked))
    return np.tile(stacked, (reps, 1, 1, 1))[:n_images]


def feature_model(model_name: str, image_size: int, precision: str, pixels: str,
                  same_weights_as=None):
    """0-255 RGB (`pixels`: the dtype sent to the device) -> float32 -> the model's
    preprocessing -> frozen base in `precision` -> head pooling -> float32 features; the
    base's weights copied from `same_weights_as` (a base) when given."""
    import keras

    from brainlib import models

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16" if precision == "bfloat16" else "float32")
    try:
        base = models.build_base(model_name, image_size, None)
        if same_weights_as is not None:
            base.set_weights(same_weights_as.get_weights())
        base = models.set_base_trainable(base, freeze_base=True, trainable_top_blocks=0)
        inputs = keras.Input((image_size, image_size, 3), dtype=pixels)
        preprocess = models.preprocess_function(model_name)
        scaled = keras.layers.Lambda(lambda x: preprocess(keras.ops.cast(x, "float32")),
                                     dtype="float32", name="preprocess")(inputs)
        pooled = models.head_pooling_layer(base)(base(scaled, training=False))
        outputs = keras.layers.Activation("linear", dtype="float32", name="features")(pooled)
    finally:
        keras.config.set_dtype_policy(previous)
    return keras.Model(inputs, outputs, name=f"{model_name}_{precision}"), base


def images_per_second(model, images, batch_size: int, repeats: int = 3):
    """(median images/s over `repeats` passes after the first batch's compile, compile
    seconds, the features)."""
    import numpy as np

    n = len(images) - len(images) % batch_size
    started = time.perf_counter()
    model.predict(images[:batch_size], batch_size=batch_size, verbose=0)
    compiled = time.perf_counter() - started
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        features = model.predict(images[:n], batch_size=batch_size, verbose=0)
        rates.append(n / (time.perf_counter() - started))
    return float(np.median(rates)), compiled, features


def head_seconds_per_image_epoch(feature_shape, n_train: int, epochs: int = 3) -> float:
    """Seconds per training image per head epoch (the last epoch; the first one compiles)."""
    import keras
    import numpy as np

    from brainlib import models

    rng = np.random.default_rng(0)
    features = rng.random((n_train, *feature_shape), dtype=np.float32)
    labels = rng.integers(0, 2, n_train)
    head = models.build_head(feature_shape, seed=0)
    head.compile(optimizer=keras.optimizers.Adam(1e-4), loss="sparse_categorical_crossentropy")
    seconds = []
    for _ in range(epochs):
        started = time.perf_counter()
        head.fit(features, labels, batch_size=HEAD_BATCH, epochs=1, shuffle=True, verbose=0)
        seconds.append(time.perf_counter() - started)
    return seconds[-1] / n_train


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2048, help="images timed per setting")
    parser.add_argument("--batches", default=f"{BANK_BATCH},256", help="batch sizes timed")
    parser.add_argument("--image-size", type=int, default=IMAGE_SIZE)
    parser.add_argument("--models", default="resnet50,vgg16")
    parser.add_argument("--views", type=int, default=None, help="K (default: the schema's bank_views)")
    parser.add_argument("--cpu", action="store_true", help="run even without an accelerator")
    args = parser.parse_args(argv)
    if not (args.cpu or has_accelerator()):
        print("no accelerator under this Keras backend: skipped (bench_paper_setting.py "
              "measures the CPU path; --cpu runs this one anyway)")
        return 0

    import numpy as np

    from brainlib.data import phantom
    from brainlib.config.params import SCHEMA

    views = args.views or SCHEMA["bank_views"].default
    batches = [int(b) for b in args.batches.split(",")]
    n_all = phantom.FULL_SIZE["n_slices"]
    n_test = n_all / FOLDS
    n_train = n_all - n_test
    started = time.perf_counter()
    images = phantom_images(args.images, args.image_size)
    print(f"device: {device_name()}")
    print(f"{len(images)} full-size PHANTOM slices at {args.image_size}x{args.image_size} "
          f"(made in {time.perf_counter() - started:.1f} s); projection: {FOLDS} folds x "
          f"{EPOCHS} epochs, {n_all} slices ({n_train:.0f} training, {n_test:.0f} test per "
          f"fold), K = {views}")
    totals = {"lineage": 0.0, "bank": 0.0}
    for model_name in args.models.split(","):
        rates, reference, float32_base = {}, None, None
        for precision in ("float32", "bfloat16"):
            for pixels in ("float32", "uint8"):
                model, base = feature_model(model_name, args.image_size, precision, pixels,
                                            float32_base)
                if float32_base is None:
                    float32_base = base
                for batch in batches:
                    rate, compiled, features = images_per_second(
                        model, images if pixels == "uint8" else images.astype("float32"), batch)
                    rates[precision, pixels, batch] = rate
                    print(f"{model_name} {precision} base, {pixels} pixels, batch {batch}: "
                          f"{rate:.0f} images/s (compile {compiled:.1f} s)")
                    if reference is None:
                        reference = features
                    elif (precision, pixels, batch) == ("bfloat16", "float32", BANK_BATCH):
                        scale = np.abs(reference).mean()
                        difference = np.abs(features - reference[:len(features)]).mean() / scale
                        print(f"{model_name} bfloat16 features: mean |difference| "
                              f"{difference:.4f} of the mean |feature|")
        head = head_seconds_per_image_epoch(tuple(int(d) for d in model.output.shape[1:]),
                                            int(n_train))
        print(f"{model_name} head: {head * 1e6:.1f} us per training image per epoch "
              f"(batch {HEAD_BATCH})")
        # The study's path today: float32 pixels from the host, batch BANK_BATCH.
        float32_rate = rates["float32", "float32", BANK_BATCH]
        bank_rate = rates["bfloat16", "float32", BANK_BATCH]
        speedup = bank_rate / float32_rate
        print(f"BENCH accelerator bf16 features {model_name}: {speedup:.2f}x (goal >= 1.5x)")
        lineage = (FOLDS * (EPOCHS * n_train + n_test) / float32_rate
                   + FOLDS * EPOCHS * n_train * head)
        bank = n_all * views / bank_rate + FOLDS * EPOCHS * n_train * head
        totals["lineage"] += lineage
        totals["bank"] += bank
        print(f"{model_name}: projected lineage (float32) {lineage / 60:.1f} min, bank "
              f"(bfloat16, batch {BANK_BATCH}) {bank / 60:.2f} min")
    print(f"both models, this device: lineage {totals['lineage'] / 60:.1f} min, bank "
          f"{totals['bank'] / 60:.2f} min (base passes and heads; no augmentation, no disk)")
    # The 30x goal is for the 2-core CPU, where the base passes are everything;
    # on an accelerator the heads' steps weigh as much, so no goal is claimed here.
    print(f"BENCH accelerator paper setting: {totals['lineage'] / totals['bank']:.1f}x "
          f"(no goal: 30x is the CPU's)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

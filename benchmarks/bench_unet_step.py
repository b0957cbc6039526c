"""Benchmark: one U-Net training step, by batch-norm kernel, XLA and batch size, in one run.

The `lgg` profile's U-Net (96x96, widths 16-32-64-128, batch norm) trains on synthetic
slices here, with no data pipeline, augmentation or validation around it, so that only the
step itself is timed: Keras' `BatchNormalization` layer (the recipe before 2026-12-07)
against `unet.FusedBatchNormalization` (TensorFlow's fused kernel, the recipe since), and
each with Keras' `jit_compile=True` (XLA). Every variant is warmed up, then timed over the
same batches, interleaved over `--rounds` rounds; the median of each is printed as
milliseconds per image and as a ratio against Keras' layer without XLA:

    BENCH unet-step <variant>: <r>x time per image (<ms> ms; keras-bn <ms> ms)

What a whole epoch costs (with augmentation and inner validation) and what it does to Dice
is `bench_unet_recipe.py`'s part (`keras-bn` against `third-96`).
Run: `python benchmarks/bench_unet_step.py [--size 96] [--batch 16] [--steps 12] [--rounds 3]
[--variants fused-bn,keras-bn-xla,...]`.
"""
import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

VARIANTS = {  # name -> (batch-norm kernel, XLA, batch size or None for --batch)
    "keras-bn": ("keras", False, None),
    "fused-bn": ("fused", False, None),
    "keras-bn-xla": ("keras", True, None),
    "fused-bn-xla": ("fused", True, None),
    "fused-bn-batch8": ("fused", False, 8),
}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help="comma-separated; keras-bn (the baseline) is always run")
    args = parser.parse_args(argv)
    names = ["keras-bn"] + [n for n in args.variants.split(",") if n and n != "keras-bn"]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; known: {', '.join(VARIANTS)}")

    import keras
    import tensorflow as tf

    from brainlib.models import unet
    from brainlib.models.loss import dice_bce_loss, soft_dice

    rng = np.random.default_rng(0)
    runs = {}
    for name in names:
        kernel, xla, batch = VARIANTS[name]
        batch = batch or args.batch
        model = unet.build_unet(args.size, (16, 32, 64, 128), seed=0, batch_norm_kernel=kernel)
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=dice_bce_loss,
                      metrics=[soft_dice], jit_compile=xla)
        n = batch * args.steps
        images = rng.normal(size=(n, args.size, args.size, 3)).astype(np.float32)
        masks = (rng.random((n, args.size, args.size, 1)) > 0.9).astype(np.float32)
        dataset = tf.data.Dataset.from_tensor_slices((images, masks)).batch(batch).cache()
        model.fit(dataset, verbose=0, shuffle=False)  # trace, compile, warm up
        runs[name] = (model, dataset, n)
    times = {name: [] for name in names}
    for _ in range(args.rounds):
        for name, (model, dataset, n) in runs.items():
            started = time.perf_counter()
            model.fit(dataset, verbose=0, shuffle=False)
            times[name].append(1000 * (time.perf_counter() - started) / n)
    base = float(np.median(times["keras-bn"]))
    print(f"{args.size}x{args.size}, batch {args.batch}, {args.steps} steps a round, "
          f"{args.rounds} rounds interleaved; median ms per image")
    for name, values in times.items():
        ms = float(np.median(values))
        if name == "keras-bn":
            print(f"keras-bn: {ms:.1f} ms per image (rounds: "
                  f"{', '.join(f'{v:.1f}' for v in values)})")
            continue
        print(f"BENCH unet-step {name}: {ms / base:.2f}x time per image ({ms:.1f} ms; "
              f"keras-bn {base:.1f} ms; rounds: {', '.join(f'{v:.1f}' for v in values)})",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

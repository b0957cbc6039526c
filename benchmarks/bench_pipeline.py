"""Input pipeline throughput and memory, side by side with the popular Kaggle loader.

Baseline: `ImageDataGenerator.flow_from_dataframe` on the same TIFF files (what the
popular Kaggle notebooks for this dataset use). Ours: `brainlib.data.pipeline.make_dataset`
(decode once into a uint8 disk cache, then tf.data). Both deliver model-ready batches
(ResNet50 preprocessing, 256x256, batch 32) for three epochs, in two settings: augmented
training batches (rotation and zoom, the paper's training setting) and plain batches.
Our first epoch includes decoding and writing the cache. Every file is read once
beforehand so neither loader pays for a cold disk. The BENCH ratios compare the epochs
after the first (what a 20-epoch training run mostly sees); the ratio including our
one-time decode is printed too. Each loader runs in its own process so peak memory
(max RSS) is its own. A third process measures building the cache of a full-size dataset
alone (goal: under 2 GB peak).

`--profile` shows instead where an epoch's time goes: each loader is built up one stage at
a time, each cumulative stage timed over a whole epoch after a warm-up epoch (our datasets
built once, the building timed apart, as the comparison iterates one dataset). Ours, from
the decoded cache: reordering, tf.data batching, `pipeline.batches`' numbered batches and
float32 cast, the model's preprocessing (XLA-fused with the cast, so that row replaces the
cast rather than adding to it), the paper's augmentation. The baseline: decoding each TIFF,
its random transform, the preprocessing. Beside them, plain batches with the same
preprocessing as separate TensorFlow ops (the pipeline before the fusion), and the cost
of merely writing an epoch of float32 batches.

    python benchmarks/bench_pipeline.py [--patients 110] [--epochs 3] [--data PATH] [--profile]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOAL_RATIO = 3.0
GOAL_PEAK_GB = 2.0


def make_phantom(patients: int) -> Path:
    from brainlib import data
    from brainlib.data import phantom

    root = data.cache_dir() / "bench" / f"phantom-{patients}"
    size = phantom.FULL_SIZE if patients == 110 else {"n_patients": patients}
    return phantom.write_phantom_dataset(root, seed=0, **size)


def worker(kind: str, folder: str, epochs: int, batch_size: int, size: int,
           augment: bool) -> dict:
    """Run one loader; print timings as JSON (peak memory is read by the parent)."""
    from brainlib.data import scan_dataset

    manifest = scan_dataset(folder).manifest
    times = []
    if kind == "cache_only":
        from brainlib.data import pipeline
        start = time.perf_counter()
        pipeline.load_images(manifest, size)
        return {"seconds": [time.perf_counter() - start], "images": len(manifest)}
    import tensorflow as tf  # noqa: F401  (imported before timing, as in a notebook)
    if kind == "brainlib":
        from brainlib.data import pipeline
        start = time.perf_counter()  # epoch 1 includes building the dataset and its cache
        dataset = pipeline.make_dataset(manifest, "resnet50", size, batch_size=batch_size,
                                        training=True, augment=augment, seed=0)
        for epoch in range(epochs):
            count = sum(int(x.shape[0]) for x, _ in dataset)
            times.append(time.perf_counter() - start)
            start = time.perf_counter()
    else:
        from keras.applications.resnet50 import preprocess_input
        # Rotation by up to 36 degrees and zoom by up to 10 %, as ours (rotation=0.1 turn).
        transforms = {"rotation_range": 36, "zoom_range": 0.1} if augment else {}
        generator = tf.keras.preprocessing.image.ImageDataGenerator(
            preprocessing_function=preprocess_input, **transforms)
        frame = manifest.assign(label=manifest["label"].astype(str))
        flow = generator.flow_from_dataframe(
            frame, x_col="image_path", y_col="label", target_size=(size, size),
            class_mode="categorical", batch_size=batch_size, shuffle=True, seed=0)
        for epoch in range(epochs):
            start = time.perf_counter()
            count = 0
            for _ in range(len(flow)):
                x, _ = next(flow)
                count += x.shape[0]
            times.append(time.perf_counter() - start)
    return {"seconds": times, "images": count}


def _epoch_seconds(make_epoch, repeats: int = 2) -> float:
    """Seconds of the last of `repeats` epochs (the first traces tf.functions)."""
    seconds = 0.0
    for _ in range(repeats):
        started = time.perf_counter()
        make_epoch()
        seconds = time.perf_counter() - started
    return seconds


def profile(folder: str, batch_size: int, size: int) -> dict:
    """Cumulative stage timings of one epoch of each loader (see the module docstring)."""
    import numpy as np
    import tensorflow as tf

    from brainlib.data import pipeline
    from brainlib.data import scan_dataset
    from brainlib.data.transform import PAPER_AUGMENTATION

    manifest = scan_dataset(folder).manifest
    images = pipeline.load_images(manifest, size)  # builds the decode cache, untimed
    targets = np.eye(2, dtype=np.float32)[manifest["label"].to_numpy().astype(int)]
    order = np.random.default_rng(0).permutation(len(manifest))

    def drain(dataset):
        return sum(int(x.shape[0]) for x, _ in dataset)

    def ours(stages, augment: bool = False) -> tuple[float, float]:
        """(seconds to build the dataset, seconds of its second epoch): a dataset is built
        once and iterated every epoch, as in the comparison above."""
        started = time.perf_counter()
        if stages == 2:
            dataset = pipeline.prefetch_without_autotune(tf.data.Dataset.from_tensor_slices(
                (images[order], targets[order])).batch(batch_size))
        else:
            # pipeline.batches itself, its `prepare` a bare float32 cast (3), the model's
            # fused preprocessing (4), or the same preprocessing as unfused TensorFlow ops.
            prepare = {3: lambda x, y: (tf.cast(x, tf.float32), y),
                       4: lambda x, y: (pipeline.preprocess_input("resnet50", x), y),
                       "unfused": lambda x, y: (unfused_preprocessing(x), y)}[stages]
            dataset = pipeline.batches(images, targets, order, batch_size, prepare,
                                       PAPER_AUGMENTATION if augment else None, 0)
        built = time.perf_counter() - started
        return built, _epoch_seconds(lambda: drain(dataset))

    def unfused_preprocessing(x):
        return tf.reverse(tf.cast(x, tf.float32), axis=[-1]) - pipeline.IMAGENET_BGR_MEAN

    from keras.applications.resnet50 import preprocess_input
    from keras.utils import img_to_array, load_img

    generator = tf.keras.preprocessing.image.ImageDataGenerator(rotation_range=36, zoom_range=0.1)
    paths = manifest["image_path"].tolist()

    def baseline(stages: int):
        def epoch():
            for path in paths:
                array = img_to_array(load_img(path, target_size=(size, size)))
                if stages >= 2:
                    array = generator.random_transform(array)
                if stages >= 3:
                    preprocess_input(array[None])
        return epoch

    reordered = images[order]
    rows = {  # name: (seconds to build, seconds per epoch)
        "ours: reorder the decoded uint8 cache (NumPy)": (
            _epoch_seconds(lambda: images[order]), 0.0),
        "ours: + tf.data slices and batches": ours(2),
        "ours: + numbered batches, cast to float32": ours(3),
        "ours: cast + preprocessing fused = plain batches": ours(4),
        "ours: + paper augmentation = augmented batches": ours(4, augment=True),
        "unfused: plain batches, the same preprocessing as TensorFlow ops": ours("unfused"),
        "floor: write an epoch of float32 batches (NumPy)": (
            0.0, _epoch_seconds(lambda: reordered.astype(np.float32))),
        "baseline: decode every TIFF (PIL)": (0.0, _epoch_seconds(baseline(1))),
        "baseline: + random transform (SciPy)": (0.0, _epoch_seconds(baseline(2))),
        "baseline: + preprocessing": (0.0, _epoch_seconds(baseline(3))),
    }
    return {"images": len(manifest), "rows": rows}


def print_profile(result: dict, batch_size: int, size: int) -> None:
    n = result["images"]
    print(f"\nwhere an epoch goes: {n} slices, {size}x{size}, batch {batch_size}. Each row "
          f"of a loader adds one stage to the row above it; 'build s' is building our dataset "
          f"(once per dataset), 's/epoch' one epoch of it after a warm-up epoch")
    print(f"{'stage':<66}{'build s':>8}{'s/epoch':>9}{'img/s':>9}{'stage s':>9}")
    previous = {}
    for name, (built, seconds) in result["rows"].items():
        loader = name.split(":")[0]
        step = seconds - previous.get(loader, 0.0) if loader in ("ours", "baseline") \
            else seconds
        previous[loader] = seconds
        rate = f"{n / seconds:>9.0f}" if seconds else f"{'':>9}"
        print(f"{name:<66}{built:>8.2f}{seconds:>9.2f}{rate}{step:>9.2f}")


def run_worker(kind: str, folder: Path, args, cache: str, augment: bool = False
               ) -> tuple[dict, float]:
    """Run a worker in a child process; return its result and its peak RSS in GB."""
    env = {**os.environ, "BRAINLIB_CACHE": cache, "TF_CPP_MIN_LOG_LEVEL": "2"}
    process = subprocess.Popen(
        [sys.executable, __file__, "--worker", kind, "--folder", str(folder),
         "--epochs", str(args.epochs), "--batch-size", str(args.batch_size),
         "--size", str(args.size)] + (["--augment"] if augment else []),
        stdout=subprocess.PIPE, env=env, text=True)
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    if status != 0:
        raise SystemExit(f"{kind} worker failed (status {status})")
    return json.loads(output.strip().splitlines()[-1]), usage.ru_maxrss / 1024 ** 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=110, help="110 = the full-size dataset")
    parser.add_argument("--data", help="a kaggle_3m folder to use instead of the phantom "
                                       "(e.g. ../shared/data/lgg-sample, deflate TIFFs)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--profile", action="store_true",
                        help="show where each loader's epoch goes instead of the comparison")
    parser.add_argument("--augment", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--worker")
    parser.add_argument("--folder")
    args = parser.parse_args()
    if args.worker == "profile":
        print(json.dumps(profile(args.folder, args.batch_size, args.size)))
        return
    if args.worker:
        print(json.dumps(worker(args.worker, args.folder, args.epochs, args.batch_size,
                                args.size, args.augment)))
        return

    start = time.perf_counter()
    if args.data:
        from brainlib.data import find_kaggle_3m
        folder = find_kaggle_3m(args.data)
        print(f"dataset: {folder}", flush=True)
    else:
        folder = make_phantom(args.patients)
        print(f"phantom dataset ({args.patients} patients): {folder} "
              f"[{time.perf_counter() - start:.0f} s]", flush=True)
    # Read every file once so neither loader pays for a cold disk (the OS page cache).
    for path in sorted(Path(folder).rglob("*.tif")):
        path.read_bytes()
    if args.profile:
        with tempfile.TemporaryDirectory(prefix="bench-cache-") as cache:
            result, peak = run_worker("profile", folder, args, cache)
        print_profile(result, args.batch_size, args.size)
        return
    with tempfile.TemporaryDirectory(prefix="bench-cache-") as cache:
        cache_only, cache_peak = run_worker("cache_only", folder, args, cache + "/a")
        results = {}
        for augment in (True, False):
            setting = "augmented training batches" if augment else "plain batches"
            results[setting] = {
                "ImageDataGenerator (baseline)": run_worker(
                    "imagedatagenerator", folder, args, cache + f"/c{augment}", augment),
                "brainlib.data.pipeline (ours)": run_worker(
                    "brainlib", folder, args, cache + f"/b{augment}", augment),
            }

    steady, overall = {}, {}
    for setting, rows in results.items():
        n = rows["brainlib.data.pipeline (ours)"][0]["images"]
        print(f"\n{setting}: {n} slices, {args.size}x{args.size}, batch {args.batch_size}, "
              f"{args.epochs} epochs each (ours: epoch 1 decodes and writes the cache)")
        print(f"{'loader':<34}{'epoch 1 img/s':>14}{'later img/s':>13}{'mean img/s':>12}"
              f"{'peak GB':>9}")
        later, means = {}, {}
        for name, (result, peak) in rows.items():
            seconds = result["seconds"]
            later[name] = (n * (len(seconds) - 1) / sum(seconds[1:]) if len(seconds) > 1
                           else float("nan"))
            means[name] = n * len(seconds) / sum(seconds)
            print(f"{name:<34}{n / seconds[0]:>14.0f}{later[name]:>13.0f}{means[name]:>12.0f}"
                  f"{peak:>9.2f}")
        ours, base = "brainlib.data.pipeline (ours)", "ImageDataGenerator (baseline)"
        steady[setting] = later[ours] / later[base]
        overall[setting] = means[ours] / means[base]
        print(f"ratio, epochs after the first (a training run's steady state): "
              f"{steady[setting]:.1f}x; over all {args.epochs} epochs including our one-time "
              f"decode: {overall[setting]:.1f}x")
    build = cache_only["seconds"][0]
    print(f"\ndecode + cache {cache_only['images']} slices alone: {build:.1f} s, "
          f"peak memory {cache_peak:.2f} GB (goal < {GOAL_PEAK_GB} GB): "
          f"{'met' if cache_peak < GOAL_PEAK_GB else 'NOT met'}")
    print(f"BENCH pipeline_augmented: {steady['augmented training batches']:.1f}x "
          f"(goal >= {GOAL_RATIO:g}x)")
    print(f"BENCH pipeline_plain: {steady['plain batches']:.1f}x (goal >= {GOAL_RATIO:g}x)")
    print(f"BENCH pipeline_plain_incl_first_epoch: {overall['plain batches']:.1f}x "
          f"(goal >= {GOAL_RATIO:g}x over {args.epochs} epochs)")
    print(f"BENCH pipeline_cache_memory: {GOAL_PEAK_GB / cache_peak:.1f}x "
          f"(goal >= 1x; peak {cache_peak:.2f} GB vs {GOAL_PEAK_GB} GB budget)")


if __name__ == "__main__":
    main()

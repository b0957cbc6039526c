"""Input pipeline throughput and memory, side by side with the popular Kaggle loader.

Baseline: `ImageDataGenerator.flow_from_dataframe` on the same TIFF files (what the
popular Kaggle notebooks for this dataset use). Ours: `brainlib.pipeline.make_dataset`
(decode once into a uint8 disk cache, then tf.data). Both deliver model-ready batches
(ResNet50 preprocessing, 256x256, batch 32) for three epochs, in two settings: augmented
training batches (rotation and zoom, the paper's training setting) and plain batches.
Our first epoch includes decoding and writing the cache. Every file is read once
beforehand so neither loader pays for a cold disk. The BENCH ratios compare the epochs
after the first (what a 20-epoch training run mostly sees); the ratio including our
one-time decode is printed too. Each loader runs in its own process so peak memory
(max RSS) is its own. A third process measures building the cache of a full-size dataset
alone (goal: under 2 GB peak).

    python benchmarks/bench_pipeline.py [--patients 110] [--epochs 3] [--data PATH]
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
    from brainlib import data, phantom

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
        from brainlib import pipeline
        start = time.perf_counter()
        pipeline.load_images(manifest, size)
        return {"seconds": [time.perf_counter() - start], "images": len(manifest)}
    import tensorflow as tf  # noqa: F401  (imported before timing, as in a notebook)
    if kind == "brainlib":
        from brainlib import pipeline
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
    parser.add_argument("--augment", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--worker")
    parser.add_argument("--folder")
    args = parser.parse_args()
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
    with tempfile.TemporaryDirectory(prefix="bench-cache-") as cache:
        cache_only, cache_peak = run_worker("cache_only", folder, args, cache + "/a")
        results = {}
        for augment in (True, False):
            setting = "augmented training batches" if augment else "plain batches"
            results[setting] = {
                "ImageDataGenerator (baseline)": run_worker(
                    "imagedatagenerator", folder, args, cache + f"/c{augment}", augment),
                "brainlib.pipeline (ours)": run_worker(
                    "brainlib", folder, args, cache + f"/b{augment}", augment),
            }

    steady, overall = {}, {}
    for setting, rows in results.items():
        n = rows["brainlib.pipeline (ours)"][0]["images"]
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
        ours, base = "brainlib.pipeline (ours)", "ImageDataGenerator (baseline)"
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

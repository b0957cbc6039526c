"""Benchmark: the paper's full setting by the lineage's path and by the feature bank, side by side.

The `full` profile's classifiers: 8 patient folds x 20 epochs x ResNet50 and VGG16, 256x256,
the paper's augmentation, a frozen base (weights=None here: the same arithmetic as
ImageNet weights), on the full-size phantom (110 patients, 3,929 slices). Each path is
measured on a small workload of the same images and projected from its measured parts:

- **lineage** (Kaggle notebooks, `bank_views=0`): every augmented image through the base
  every epoch of every fold. Measured: seconds per training image per epoch (end to end,
  second epoch, after tracing) and per scored test image. Projected: folds x (epochs x
  training images x that + test images x scoring).
- **bank** (`bank_views=K`): the base once over K views of every image, then heads only.
  Measured: seconds per image view (in the run's `base_precision`), and seconds per
  training image per head epoch. Projected: images x K x that + folds x epochs x training
  images x head time (test images are scored from the bank's view 0: no base pass).

Prints each part, the projected totals for these 2 cores, the same projection for a
typical Colab GPU from stated throughputs (an assumption: nothing here runs on a GPU), and
`BENCH paper setting: Nx (goal >= 30x)`.

    python benchmarks/bench_paper_setting.py [--images 256] [--views 4] [--precision auto]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


FOLDS, EPOCHS, GOAL_RATIO, GOAL_MINUTES = 8, 20, 30.0, 30.0
# Assumed Colab T4 forward-pass throughputs at 256x256, float32 Keras, frozen base (images/s):
# not measured here (no GPU); head epochs on a GPU are taken as free beside them.
COLAB_IMAGES_PER_SECOND = {"resnet50": 300.0, "vgg16": 130.0}


def full_phantom():
    from brainlib import data
    from brainlib.data import phantom, pipeline

    folder = phantom.write_phantom_dataset(data.cache_dir() / "bench" / "phantom-110", seed=0,
                                           **phantom.FULL_SIZE)
    manifest = data.scan_dataset(folder).manifest
    return manifest, pipeline.load_images(manifest, 256)


def measure(model: str, images, labels, n_images: int, views: int, precision: str) -> dict:
    from brainlib.training import classifier

    config = classifier.TrainConfig(image_size=256, epochs=2, learning_rate=1e-4, augment=True,
                                    standardize_features=False, seed=0)
    subset, subset_labels = images[:n_images], labels[:n_images]
    parts = {}

    lineage = config.replace(bank_views=0)
    trained = classifier.train_end_to_end(model, subset, subset_labels, lineage, keep_best=False)
    parts["lineage train s/image/epoch"] = _per_epoch(trained, n_images)
    trained.predict_p_tumor(subset[:64])  # trace
    started = time.perf_counter()
    trained.predict_p_tumor(subset)
    parts["lineage score s/image"] = (time.perf_counter() - started) / n_images

    bank_config = config.replace(bank_views=views, base_precision=precision)
    base = classifier.build_frozen_base(model, bank_config)
    classifier.extract_feature_bank(base, subset[:64], 1, 0, progress=False)  # trace
    started = time.perf_counter()
    bank = classifier.extract_feature_bank(base, subset, views, 0, progress=False)
    parts["bank s/image view"] = (time.perf_counter() - started) / (n_images * views)
    head = classifier.train_head_on_features(base, bank, subset_labels, bank_config, keep_best=False)
    parts["bank head s/image/epoch"] = _per_epoch(head, n_images)
    return parts


def _per_epoch(trained, n_images: int) -> float:
    """Seconds per training image per epoch, from the last epoch (the first one traces)."""
    return float(trained.history["seconds"].iloc[-1]) / n_images


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256, help="workload: training images measured")
    parser.add_argument("--views", type=int, default=None, help="K (default: the schema's bank_views)")
    parser.add_argument("--precision", default="auto", choices=("float32", "bfloat16", "auto"))
    parser.add_argument("--models", default="resnet50,vgg16")
    args = parser.parse_args(argv)

    from brainlib.training import classifier
    from brainlib.config.params import SCHEMA

    views = args.views or SCHEMA["bank_views"].default
    manifest, images = full_phantom()
    labels = manifest["label"].to_numpy()
    n_all = len(manifest)
    n_test = n_all / FOLDS
    n_train = n_all - n_test
    precision = classifier.resolve_precision(args.precision)
    print(f"full-size PHANTOM: {manifest['patient_id'].nunique()} patients, {n_all} slices, "
          f"256x256; workload {args.images} images x 2 epochs per path and model; K = {views}, "
          f"bank base in {precision}; projection: {FOLDS} folds x {EPOCHS} epochs, "
          f"{n_train:.0f} training and {n_test:.0f} test images per fold")
    totals = {"lineage": 0.0, "bank": 0.0}
    colab = {"lineage": 0.0, "bank": 0.0}
    for model in args.models.split(","):
        parts = measure(model, images, labels, args.images, views, args.precision)
        lineage = FOLDS * (EPOCHS * n_train * parts["lineage train s/image/epoch"]
                           + n_test * parts["lineage score s/image"])
        bank = (n_all * views * parts["bank s/image view"]
                + FOLDS * EPOCHS * n_train * parts["bank head s/image/epoch"])
        totals["lineage"] += lineage
        totals["bank"] += bank
        rate = COLAB_IMAGES_PER_SECOND[model]
        colab["lineage"] += FOLDS * (EPOCHS * n_train + n_test) / rate
        colab["bank"] += n_all * views / rate
        print(f"{model}: " + ", ".join(f"{k} {v * 1000:.2f} ms" for k, v in parts.items()))
        print(f"{model}: projected lineage {lineage / 3600:.1f} h, bank {bank / 60:.1f} min "
              f"({lineage / bank:.0f}x)")
    ratio = totals["lineage"] / totals["bank"]
    print(f"both models, these 2 cores: lineage {totals['lineage'] / 3600:.1f} h, bank "
          f"{totals['bank'] / 60:.1f} min (goal <= {GOAL_MINUTES:.0f} min)")
    print(f"both models, a Colab T4 (assumed {COLAB_IMAGES_PER_SECOND} images/s forward at 256): "
          f"lineage {colab['lineage'] / 60:.0f} min of base passes, bank "
          f"{colab['bank'] / 60:.1f} min")
    print(f"BENCH paper setting: {ratio:.1f}x (goal >= {GOAL_RATIO:.0f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Benchmark: the frozen base's feature extraction in bfloat16 against float32, side by side.

The same base weights (weights=None, seed 0) compute pooled features of the same images at
256x256 in float32 and in bfloat16 (Keras' mixed policy: float32 weights, bfloat16
arithmetic, float32 features out). Images: the real LGG sample when present
(../shared/data/lgg-sample), else the phantom. Timed after a warm-up batch; the ratio is
bfloat16 images/s over float32 images/s (goal >= 1.5x). Then, once per head seed, the
paper's head is trained on 70% of patients' float32 features and scored on the other 30%'s
float32 features and their bfloat16 features: that AUC difference, the same head seeing
either precision, is the price of bfloat16 itself (largest over the seeds; goal <= 0.005).
Beside it, heads retrained on bfloat16 features (the same seed) against the float32 ones,
and the spread of the float32 AUCs across the seeds alone: retraining a head moves its AUC
by that much with nothing but its seed changed. A machine without bfloat16 hardware still
runs this (emulated, slower): `classifier.resolve_precision("auto")` keeps float32 there.

    python benchmarks/bench_bf16.py [--models resnet50,vgg16] [--size 256] [--images N] [--seeds 0,1,2]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT.parent / "shared" / "data" / "lgg-sample" / "kaggle_3m"
GOAL_RATIO, GOAL_AUC = 1.5, 0.005


def images_and_labels(size: int, limit: int | None):
    from brainlib import data
    from brainlib.data import phantom, pipeline

    if SAMPLE.is_dir():
        folder, label = SAMPLE, "real LGG sample"
    else:
        folder = phantom.write_phantom_dataset(data.cache_dir() / "bench" / "phantom-24", seed=0)
        label = "PHANTOM"
    manifest = data.scan_dataset(folder).manifest
    if limit:
        manifest = manifest.iloc[np.linspace(0, len(manifest) - 1, limit).astype(int)]
    manifest = manifest.reset_index(drop=True)
    return manifest, pipeline.load_images(manifest, size), label


def timed_features(base, images) -> tuple[np.ndarray, float]:
    from brainlib.training import classifier

    classifier.extract_features(base, images[:64], progress=False)  # trace and warm up
    started = time.perf_counter()
    features = classifier.extract_features(base, images, progress=False)
    return features, len(images) / (time.perf_counter() - started)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet50,vgg16")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--images", type=int, default=0, help="use this many slices (0: all)")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--seeds", default="0,1,2,3,4", help="head seeds")
    args = parser.parse_args(argv)

    from brainlib.data import machine
    from brainlib.training import classifier
    from brainlib.measures.metrics import roc_auc

    manifest, images, label = images_and_labels(args.size, args.images or None)
    patients = np.sort(manifest["patient_id"].unique())
    train = manifest["patient_id"].isin(patients[: int(0.7 * len(patients))]).to_numpy()
    labels = manifest["label"].to_numpy()
    print(f"{label}: {len(images)} slices of {len(patients)} patients at {args.size}x{args.size}; "
          f"bfloat16 hardware here: {machine.has_bfloat16()}")
    seeds = [int(seed) for seed in args.seeds.split(",")]
    for model in args.models.split(","):
        config = classifier.TrainConfig(image_size=args.size, epochs=args.epochs, seed=0)
        rates, features, bases = {}, {}, {}
        for precision in ("float32", "bfloat16"):
            bases[precision] = classifier.build_frozen_base(
                model, config.replace(base_precision=precision))
            features[precision], rates[precision] = timed_features(bases[precision], images)
        aucs = {"float32": [], "bfloat16": [], "float32 head on bfloat16": []}
        for seed in seeds:
            heads = {precision: classifier.train_head_on_features(
                bases[precision], features[precision][train], labels[train],
                config.replace(seed=seed), keep_best=False) for precision in features}
            for name, head, scored in (("float32", heads["float32"], "float32"),
                                       ("bfloat16", heads["bfloat16"], "bfloat16"),
                                       ("float32 head on bfloat16", heads["float32"], "bfloat16")):
                aucs[name].append(roc_auc(labels[~train], head.predict_p_tumor_from_features(
                    features[scored][~train])))
        aucs = {name: np.array(values) for name, values in aucs.items()}
        for precision in features:
            print(f"{model} {precision:8s}: {rates[precision]:6.1f} images/s, head AUC on "
                  f"held-out patients, seeds {args.seeds}: "
                  + " ".join(f"{auc:.4f}" for auc in aucs[precision]))
        retrained = aucs["bfloat16"] - aucs["float32"]
        same_head = np.abs(aucs["float32 head on bfloat16"] - aucs["float32"])
        spread = aucs["float32"].max() - aucs["float32"].min()
        print(f"{model}: heads retrained on bfloat16 features, AUC minus float32's per seed "
              + " ".join(f"{gap:+.4f}" for gap in retrained) + f" (mean {retrained.mean():+.4f});"
              f" float32 AUCs alone spread {spread:.4f} across the seeds")
        print(f"{model}: each float32 head scored on bfloat16 instead of float32 features, "
              f"|AUC difference| per seed " + " ".join(f"{gap:.4f}" for gap in same_head))
        print(f"BENCH bf16 features {model}: {rates['bfloat16'] / rates['float32']:.2f}x "
              f"(goal >= {GOAL_RATIO}x)")
        print(f"BENCH bf16 AUC difference {model}: {same_head.max():.4f} (the same head, largest "
              f"over {len(seeds)} seeds; goal <= {GOAL_AUC})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

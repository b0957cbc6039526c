"""Benchmark: head training through the feature cache vs end to end (frozen base, no augmentation).

Both paths train the same model on the same synthetic images with the same seeds and a
validation set scored after every epoch (as the cross-validation runner does). The
feature-cache path is timed over all its epochs, feature extraction included. The
end-to-end path is timed over fewer epochs and scaled: first epoch (with tracing) + the
mean of the later ones x the remaining epochs. Run: `python benchmarks/bench_feature_cache.py`.
"""
import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from brainlib.training import classifier  # noqa: E402


def synthetic_images(n_images: int, size: int, seed: int):
    rng = np.random.default_rng(seed)
    labels = np.arange(n_images) % 2
    rng.shuffle(labels)
    images = rng.integers(0, 120, (n_images, size, size, 3)).astype(np.uint8)
    images[labels == 1, size // 4 : size // 2, size // 4 : size // 2] += 120
    return images, labels


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet50", choices=("resnet50", "vgg16"))
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--n-train", type=int, default=480)
    parser.add_argument("--n-validation", type=int, default=160)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--end-to-end-epochs", type=int, default=3,
                        help="epochs actually run end to end (then scaled to --epochs)")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args(argv)

    images, labels = synthetic_images(args.n_train, args.image_size, seed=0)
    val_images, val_labels = synthetic_images(args.n_validation, args.image_size, seed=1)
    config = classifier.TrainConfig(image_size=args.image_size, epochs=args.epochs,
                               batch_size=args.batch_size, seed=0)
    print(f"{args.model}, {args.image_size}x{args.image_size}, frozen base (weights=None), "
          f"{args.n_train} training + {args.n_validation} validation images, batch "
          f"{args.batch_size}, {args.epochs} epochs, validation scored every epoch")

    started = time.perf_counter()
    cached = classifier.train_classifier(args.model, images, labels, config, val_images, val_labels)
    cache_seconds = time.perf_counter() - started
    print(f"feature cache: {cache_seconds:7.1f} s for {args.epochs} epochs, measured "
          f"(base build + feature extraction + head training; {cached.seconds:.1f} s of it "
          "training the head)")

    short = config.replace(epochs=args.end_to_end_epochs, feature_cache=False)
    started = time.perf_counter()
    end_to_end = classifier.train_classifier(args.model, images, labels, short, val_images, val_labels)
    measured = time.perf_counter() - started
    per_epoch = end_to_end.history["seconds"].to_numpy()
    setup = measured - per_epoch.sum()
    later = per_epoch[1:].mean() if len(per_epoch) > 1 else per_epoch[0]
    scaled = setup + per_epoch[0] + later * (args.epochs - 1)
    print(f"end to end:    {scaled:7.1f} s for {args.epochs} epochs, scaled from "
          f"{len(per_epoch)} measured epochs ({measured:.1f} s: build {setup:.1f} s, first epoch "
          f"{per_epoch[0]:.1f} s, then {later:.1f} s/epoch)")

    same = classifier.train_classifier(args.model, images, labels,
                                  config.replace(epochs=args.end_to_end_epochs), val_images, val_labels)
    difference = np.abs(same.predict_p_tumor(val_images) - end_to_end.predict_p_tumor(val_images)).max()
    print(f"check: after {args.end_to_end_epochs} epochs the two paths' validation p_tumor "
          f"differ by at most {difference:.2e}")
    print(f"BENCH feature_cache: {scaled / cache_seconds:.1f}x (goal >= 10x)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

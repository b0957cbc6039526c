"""Benchmark: U-Net training speed and peak memory at 128x128 (the issue's CPU budget).

Trains the default U-Net (16-32-64-128, batch norm, augmentation, inner validation scored
every epoch) on the training side of fold 0 of the real LGG sample
(`../shared/data/lgg-sample`, 5 patient folds, seed 0) when it is there, else on a
20-patient phantom, for a few epochs. Prints seconds per epoch (the first, with tracing,
apart) and peak memory (max RSS of this process), then projects the training time of a
whole cross-validation run (`--epochs` x `--folds`) and compares it with the 30-minute
budget:

    BENCH segmentation: <ratio>x (goal >= 1x)

where ratio = 1800 s / projected training time (above 1: the run fits the budget).
With `--precision mixed_bfloat16` it measures the float32 U-Net too, side by side, and
prints the speed-up of bfloat16 compute over it. Default epochs come from the `sample`
profile (the run the budget is about).
Run: `python benchmarks/bench_segmentation.py [--measure-epochs 3 --epochs 45 --folds 5
--precision mixed_bfloat16]` (`--model resunet` for the ResNet50-encoder variant).
"""
import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from brainlib import data
from brainlib.config import params
from brainlib.data import phantom, pipeline, splits, transform
from brainlib.training import runner, segmenter
from brainlib.models import unet  # noqa: E402

BUDGET_SECONDS = 30 * 60
REAL_SAMPLE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "lgg-sample"


def sample_manifest(n_folds: int):
    """The real sample's manifest with patient folds, or a phantom's (and its label)."""
    if (REAL_SAMPLE / "kaggle_3m").is_dir():
        manifest = data.scan_dataset(REAL_SAMPLE / "kaggle_3m").manifest
        source = f"real LGG sample ({REAL_SAMPLE})"
    else:
        root = Path(tempfile.gettempdir()) / "brainlib-bench-phantom"
        manifest = data.scan_dataset(phantom.write_phantom_dataset(root, n_patients=20)).manifest
        source = "PHANTOM (20 synthetic patients; the real sample was not found)"
    return splits.add_splits(manifest, n_folds=n_folds, seed=0), source


def max_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--measure-epochs", type=int, default=3, help="epochs actually trained")
    sample = params.resolve("sample")
    parser.add_argument("--epochs", type=int, default=int(sample["unet_epochs"]),
                        help="epochs per fold of the projected run (default: the sample profile's)")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--model", choices=unet.MODEL_NAMES, default="unet",
                        help="resunet: the ResNet50-encoder U-Net, random weights")
    parser.add_argument("--precision", choices=unet.PRECISIONS,
                        default=sample["unet_precision"],
                        help="U-Net compute precision (default: the sample profile's)")
    args = parser.parse_args(argv)

    manifest, source = sample_manifest(args.folds)
    config = segmenter.SegmentationConfig(model=args.model, image_size=args.image_size,
                                          epochs=args.measure_epochs, batch_size=args.batch_size,
                                             precision=args.precision)
    unit = runner.unit_rows(manifest.reset_index(drop=True), "patient", "none", 0, "validated",
                            seed=0, validation_fraction=sample.validation_fraction, name="fold0")
    images = transform.normalize_volumes(pipeline.load_images(manifest, args.image_size),
                                         manifest["patient_id"].to_numpy())
    masks = pipeline.load_masks(manifest, args.image_size)
    fit, val = unit.fit, unit.validation
    print(f"data: {source}")
    name = f"U-Net {config.widths}" if args.model == "unet" else "ResUNet (ResNet50 encoder)"
    print(f"{name}, {args.image_size}x{args.image_size}, batch {args.batch_size}, "
          f"augmentation and intensity jitter on; fold 0: {len(fit)} training slices, "
          f"{len(val)} validation slices")

    def measure(config) -> tuple[float, float]:
        """Train `config.epochs` epochs; (first epoch's seconds, mean of the later ones)."""
        started = time.perf_counter()
        trained = segmenter.train_segmenter(images[fit], masks[fit], config, images[val],
                                            masks[val])
        seconds = trained.history["seconds"].to_numpy()
        later = seconds[1:].mean() if len(seconds) > 1 else seconds[0]
        print(f"{config.precision}: seconds per epoch: first {seconds[0]:.1f} (with tracing), "
              f"then {later:.1f} ({len(fit) / later:.0f} slices/s); "
              f"{time.perf_counter() - started:.1f} s in all")
        return seconds[0], later

    if config.precision != "float32":
        _, baseline = measure(config.replace(precision="float32"))
    first, later = measure(config)
    if config.precision != "float32":
        print(f"BENCH segmentation {config.precision} vs float32: {baseline / later:.2f}x "
              "faster per epoch")
    print(f"peak memory (max RSS): {max_rss_mib():.0f} MiB")
    projected = (first + later * (args.epochs - 1)) * args.folds
    print(f"projected training time for {args.folds} folds x {args.epochs} epochs "
          f"({config.precision}): {projected / 60:.1f} min (budget {BUDGET_SECONDS / 60:.0f} min)")
    print(f"BENCH segmentation: {BUDGET_SECONDS / projected:.2f}x (goal >= 1x)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Benchmark: cheaper U-Net recipes against today's, on the same slices in one run.

Today's recipe is the `sample` profile's U-Net (16-32-64-128, 128x128, 45 epochs, every
slice every epoch, the precision the profile asks for). Each variant changes one or two
settings and is trained on the same fit patients, with the same seed, one after the
other in this process; it prints, per variant, the seconds per epoch and the training time
as ratios against today's recipe, and beside them the mean per-patient Dice (all the
patient's slices stacked, at the masks' 256x256, Buda et al.'s unit) and the slice AUC
(`max_probability_3d`) on **inner-validation patients**, never a test fold:

    BENCH unet-recipe <variant>: <t>x training time, <e>x epoch time; Dice d (today D)

(`--baseline` names another variant to compare against, for exploring.)

Patients: settings are chosen on patients the project's reported numbers do not test.
With `../shared/data/lgg-dev60` beside the checkout, its 40 patients that are not in the
20-patient sample are split (seeded, by patient) into fit and inner-validation patients;
else the sample is; else a phantom (labelled as such).
Run: `python benchmarks/bench_unet_recipe.py [--variants today,balanced,...]
[--validation-share 0.25] [--seed 0]`; `--list` names the variants.
"""
import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from brainlib import data  # noqa: E402
from brainlib.config import params  # noqa: E402
from brainlib.data import phantom, pipeline, transform  # noqa: E402
from brainlib.measures import metrics, segmetrics  # noqa: E402
from brainlib.training import masks as mask_store  # noqa: E402
from brainlib.training import experiment, scores, segmenter  # noqa: E402

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"

# name -> (changes to today's SegmentationConfig, what it tries). "auto" precision: the
# one the bfloat16 probe picks on this machine (machine.bfloat16_probe).
BALANCED = {"tumor_free_ratio": 1.0, "precision": "auto"}
VARIANTS = {
    "today": ({}, "the sample profile's recipe as recorded: 45 epochs, every slice, bfloat16"),
    "auto-precision": ({"precision": "auto"}, "today's, in the precision the probe picks"),
    "float32": ({"precision": "float32"}, "today's, in float32"),
    "balanced-45": ({**BALANCED, "epochs": 45},
                    "one tumor-free slice per tumor slice each epoch, 45 epochs"),
    "balanced-20": ({**BALANCED, "epochs": 20}, "balanced, 20 epochs"),
    "balanced-12": ({**BALANCED, "epochs": 12}, "balanced, 12 epochs"),
    "balanced-half-20": ({**BALANCED, "tumor_free_ratio": 0.5, "epochs": 20},
                         "half a tumor-free slice per tumor slice, 20 epochs"),
    "balanced-20-batch32": ({**BALANCED, "epochs": 20, "batch_size": 32},
                            "balanced, 20 epochs, batch 32"),
    "balanced-20-size96": ({**BALANCED, "epochs": 20, "image_size": 96},
                           "balanced, 20 epochs, 96x96"),
    "balanced-20-size160": ({**BALANCED, "epochs": 20, "image_size": 160},
                            "balanced, 20 epochs, 160x160"),
    "balanced-20-narrow": ({**BALANCED, "epochs": 20, "widths": (8, 16, 32, 64)},
                           "balanced, 20 epochs, widths 8-16-32-64"),
    # About the same training cost each (~22k slice visits here at ~9 ms per 96x96 visit,
    # the per-unit share of the `lgg` profile's budget), spent on size, width or epochs:
    "cost-96": ({**BALANCED, "epochs": 30, "image_size": 96}, "96x96, balanced, 30 epochs"),
    "cost-64": ({**BALANCED, "epochs": 55, "image_size": 64}, "64x64, balanced, 55 epochs"),
    "cost-128-narrow": ({**BALANCED, "epochs": 30, "widths": (8, 16, 32, 64)},
                        "128x128, widths 8-16-32-64, balanced, 30 epochs"),
    "cost-128": ({**BALANCED, "epochs": 16}, "128x128, balanced, 16 epochs"),
    "cost-96-every": ({"precision": "auto", "epochs": 21, "image_size": 96},
                      "96x96, every slice, 21 epochs"),
    # Half that cost (~11k slice visits here), for the `lgg` profile's hour on 110 patients:
    # the same visits spent on fewer epochs, or on fewer tumor-free slices per epoch.
    "half-96": ({**BALANCED, "epochs": 15, "image_size": 96}, "96x96, balanced, 15 epochs"),
    "half-96-ratio-half": ({**BALANCED, "tumor_free_ratio": 0.5, "epochs": 20, "image_size": 96},
                           "96x96, half a tumor-free slice per tumor slice, 20 epochs"),
    # A third (~7.5k visits, the lgg profile's unet_slice_visits=7500: 4 epochs on 110
    # patients), what the hour leaves once the whole study is timed on 110 patients.
    "third-96": ({**BALANCED, "epochs": 10, "image_size": 96}, "96x96, balanced, 10 epochs"),
    # The same ~7.5k visits, spent differently (2026-12-07): more, smaller steps; a higher
    # learning rate; no augmentation while the model is still under-trained.
    "third-96-batch8": ({**BALANCED, "epochs": 10, "image_size": 96, "batch_size": 8},
                        "96x96, balanced, 10 epochs, batch 8"),
    "third-96-lr3": ({**BALANCED, "epochs": 10, "image_size": 96, "learning_rate": 3e-3},
                     "96x96, balanced, 10 epochs, learning rate 3e-3"),
    "third-96-noaug": ({**BALANCED, "epochs": 10, "image_size": 96, "augment": False},
                       "96x96, balanced, 10 epochs, no augmentation"),
    # Keras' own batch-norm layer, as every recipe above was measured before 2026-12-07:
    # the variants now run unet.FusedBatchNormalization, the same arithmetic in one kernel.
    "keras-bn": ({**BALANCED, "epochs": 10, "image_size": 96, "batch_norm_kernel": "keras"},
                 "third-96 with Keras' BatchNormalization layer"),
    # What the fused kernel's time buys: twice and three times the visits, in batches of 8.
    "96-batch8-20": ({**BALANCED, "epochs": 20, "image_size": 96, "batch_size": 8},
                     "96x96, balanced, 20 epochs (~15k visits), batch 8"),
    "96-batch8-30": ({**BALANCED, "epochs": 30, "image_size": 96, "batch_size": 8},
                     "96x96, balanced, 30 epochs (~22k visits), batch 8"),
    # Training masks resized by area (soft targets) rather than by the block maximum, which
    # grows each tumor by up to a block: a perfect model of 96x96 max-resized masks scores a
    # mean per-patient Dice of 0.93 at 256x256 on lgg-dev60, of area-resized ones 0.99.
    "third-96-area": ({**BALANCED, "epochs": 10, "image_size": 96, "mask_resize": "area"},
                      "third-96, trained on area-resized masks"),
    "96-batch8-20-area": ({**BALANCED, "epochs": 20, "image_size": 96, "batch_size": 8,
                           "mask_resize": "area"}, "96-batch8-20 on area-resized masks"),
    "128-batch8-12": ({**BALANCED, "epochs": 12, "image_size": 128, "batch_size": 8},
                      "128x128, balanced, 12 epochs (~9k visits), batch 8"),
    # The lgg profile's 9,000 visits (12 epochs here) at 96x96 and at 80x80 (0.69x the pixels),
    # and 80x80 for as long as 96x96 takes (2026-12-07, Intel Xeon 106, float32: the hour).
    "visits9k-96": ({**BALANCED, "epochs": 12, "image_size": 96}, "96x96, balanced, 12 epochs"),
    "visits9k-80": ({**BALANCED, "epochs": 12, "image_size": 80}, "80x80, balanced, 12 epochs"),
    "time9k-80": ({**BALANCED, "epochs": 17, "image_size": 80},
                  "80x80, balanced, 17 epochs (about 96x96's 12 in time)"),
}


def today_recipe():
    """The sample profile's U-Net as it was recorded: bfloat16 where it can run."""
    from brainlib.data import machine

    config = experiment.segmentation_config(params.resolve(
        "sample", {"unet_precision": "float32"}))
    works = machine.bfloat16_convolution_works()
    return config.replace(precision="mixed_bfloat16" if works else "float32")


def resolved(changes: dict) -> dict:
    """The changes with `precision="auto"` made concrete by the probe."""
    from brainlib.data import machine

    if changes.get("precision") != "auto":
        return changes
    chosen = machine.bfloat16_probe()["chosen"]
    return {**changes, "precision": "mixed_bfloat16" if chosen == "bfloat16" else "float32"}


def tuning_manifest():
    """(manifest of the tuning patients, where they come from)."""
    dev60, sample = SHARED / "lgg-dev60" / "kaggle_3m", SHARED / "lgg-sample" / "kaggle_3m"
    if dev60.is_dir() and sample.is_dir():
        manifest = data.scan_dataset(dev60).manifest
        in_sample = set(data.scan_dataset(sample).manifest["patient_id"])
        kept = manifest[~manifest["patient_id"].isin(in_sample)].reset_index(drop=True)
        return kept, (f"the {kept['patient_id'].nunique()} patients of {dev60.parent} that "
                      "are not in the 20-patient sample")
    if sample.is_dir():
        return data.scan_dataset(sample).manifest, f"the real sample ({sample.parent})"
    root = Path(tempfile.gettempdir()) / "brainlib-bench-phantom"
    manifest = data.scan_dataset(phantom.write_phantom_dataset(root, n_patients=20)).manifest
    return manifest, "PHANTOM (20 synthetic patients; no real data beside the checkout)"


def split_patients(manifest, share: float, seed: int):
    """Positions of fit and inner-validation rows: a seeded split of the patients."""
    patients = np.array(sorted(manifest["patient_id"].unique()))
    rng = np.random.default_rng(seed)
    held = set(rng.choice(patients, max(1, round(share * len(patients))), replace=False))
    is_held = manifest["patient_id"].isin(held).to_numpy()
    return np.flatnonzero(~is_held), np.flatnonzero(is_held)


def evaluate(trained, images, rows, true_masks):
    """(mean per-patient Dice at the masks' size, the same with each patient's largest 3-D
    component kept (Buda et al.'s post-processing), slice AUC of max_probability_3d)."""
    logits = trained.predict_logits(images)
    size = true_masks.shape[1]
    predicted = mask_store.upsample_logits(logits, size) > 0
    dice = [float(segmetrics.evaluate(predicted, true_masks > 0, rows, keep).patients["dice"]
                  .mean()) for keep in (False, True)]
    slice_values = scores.score_values(scores.slice_scores(logits, rows), "max_probability_3d")
    return (*dice, float(metrics.roc_auc(rows["label"], slice_values)))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default="today,auto-precision,balanced-20")
    parser.add_argument("--validation-share", type=float, default=0.25)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--baseline", default="today",
                        help="the variant the ratios are against (default: today's recipe)")
    parser.add_argument("--list", action="store_true")
    args = parser.parse_args(argv)
    if args.list:
        for name, (changes, what) in VARIANTS.items():
            print(f"{name:22s} {what}: {changes}")
        return 0
    names = args.variants.split(",")
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; --list names them")
    if args.baseline not in names:
        names = [args.baseline] + names
    names.sort(key=lambda name: name != args.baseline)  # the baseline first

    manifest, source = tuning_manifest()
    fit, validation = split_patients(manifest, args.validation_share, args.seed)
    today = today_recipe()
    from brainlib.data import machine
    print("bfloat16 probe:", machine.bfloat16_probe())
    print(f"data: {source}; {manifest.loc[fit, 'patient_id'].nunique()} fit patients "
          f"({len(fit)} slices), {manifest.loc[validation, 'patient_id'].nunique()} "
          f"inner-validation patients ({len(validation)} slices); seed {args.seed}")
    true_masks = pipeline.load_masks(manifest, 256)[validation]
    val_rows = manifest.iloc[validation].reset_index(drop=True)
    results = {}
    for name in names:
        config = today.replace(**resolved(VARIANTS[name][0]), seed=args.seed)
        size = config.image_size
        images = transform.normalize_volumes(pipeline.load_images(manifest, size),
                                             manifest["patient_id"].to_numpy())
        masks = pipeline.load_masks(manifest, size, resize=config.mask_resize)
        started = time.perf_counter()
        trained = segmenter.train_segmenter(images[fit], masks[fit], config,
                                            images[validation], masks[validation])
        seconds = time.perf_counter() - started
        epoch = float(np.median(trained.history["seconds"].to_numpy()[1:]))
        dice, dice_lcc, auc = evaluate(trained, images[validation], val_rows, true_masks)
        results[name] = (seconds, epoch, dice, auc, dice_lcc)
        print(f"{name} ({config.precision}, {config.image_size}px, batch "
              f"{config.batch_size}, widths {config.widths}, tumor-free ratio "
              f"{config.tumor_free_ratio:g}): {config.epochs} epochs, {epoch:.1f} s/epoch (median after the "
              f"first), {seconds / 60:.1f} min, epoch kept {trained.best_epoch}; "
              f"Dice {dice:.3f} ({dice_lcc:.3f} largest component kept), slice AUC "
              f"{auc:.3f}; peak RSS "
              f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB",
              flush=True)
        base = results[args.baseline]
        if name != args.baseline:
            print(f"BENCH unet-recipe {name}: {seconds / base[0]:.2f}x training time, "
                  f"{epoch / base[1]:.2f}x epoch time; Dice {dice:.3f} ({args.baseline} {base[2]:.3f}), "
                  f"largest component kept {dice_lcc:.3f} ({args.baseline} {base[4]:.3f}), "
                  f"slice AUC {auc:.3f} ({args.baseline} {base[3]:.3f})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

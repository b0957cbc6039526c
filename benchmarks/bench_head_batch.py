"""Benchmark: the classifiers' head batch size, on the same features in one run.

With frozen bases every classifier unit trains only its head (Flatten -> Dense 256, 256,
128 -> 2) on cached features, and a ResNet50 head's step is mostly Adam's update of its
2.1 M weights: fewer, larger batches make each epoch cheaper. This trains each head at
each batch size on the same fit patients with the same seed and epochs (the `lgg`
profile's, keeping the epoch of lowest inner-validation loss as the validated protocol
does), one after the other in this process, and prints the training time as a ratio
against batch 32 (the schema's default), with the AUC and loss on **inner-validation
patients** beside it, never a test fold:

    BENCH head-batch <model> batch <b>: <t>x training time; AUC a, loss l (batch 32: A, L)

Patients as in `bench_unet_recipe.py` (lgg-dev60's 40 patients outside the sample, split by
patient, seeded; else the sample; else a phantom, labelled). The bases have the run's
weights (`--weights`, default none: random bases here, which cannot be downloaded), so
the heads read random-base features unless ImageNet weights are given.
Run: `python benchmarks/bench_head_batch.py [--batches 32,64,128] [--seed 0]`.
"""
import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_unet_recipe import split_patients, tuning_manifest  # noqa: E402

from brainlib.config import params  # noqa: E402
from brainlib.measures import metrics  # noqa: E402
from brainlib.training import classifier, experiment  # noqa: E402


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", default="32,64,128")
    parser.add_argument("--models", default="resnet50,vgg16")
    parser.add_argument("--profile", default="lgg", help="epochs, image size and precision from it")
    parser.add_argument("--weights", default="none")
    parser.add_argument("--validation-share", type=float, default=0.25)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    batches = [int(b) for b in args.batches.split(",")]
    baseline = 32
    if baseline not in batches:
        batches = [baseline, *batches]

    manifest, source = tuning_manifest()
    fit, validation = split_patients(manifest, args.validation_share, args.seed)
    labels = manifest["label"].to_numpy()
    with tempfile.TemporaryDirectory() as run_dir:
        p = params.resolve(args.profile, {"weights": args.weights, "seed": args.seed,
                                          "run_dir": run_dir})
        config = experiment.classifier_config(p)
        print(f"data: {source}; {manifest.loc[fit, 'patient_id'].nunique()} fit patients "
              f"({len(fit)} slices), {manifest.loc[validation, 'patient_id'].nunique()} "
              f"inner-validation patients ({len(validation)} slices); profile {args.profile}: "
              f"{config.image_size}x{config.image_size}, {config.epochs} epochs, weights "
              f"{args.weights}, base {config.base_precision}, seed {args.seed}")
        for model in args.models.split(","):
            family = classifier.ClassifierFamily(model, config)
            family.prepare(manifest, Path(run_dir), progress=False)
            results = {}
            for batch in batches:
                started = time.perf_counter()
                trained = classifier.train_head_on_features(
                    family.base, family.features[fit], labels[fit],
                    config.replace(batch_size=batch), family.features[validation],
                    labels[validation], args.seed, keep_best=True)
                seconds = time.perf_counter() - started
                p_tumor = trained.predict_p_tumor_from_features(family.features[validation])
                best = trained.history.loc[trained.history["best"]].iloc[0]
                results[batch] = (seconds, metrics.roc_auc(labels[validation], p_tumor),
                                  float(best["val_loss"]), int(best["epoch"]))
            t0, auc0, loss0, _ = results[baseline]
            for batch, (seconds, auc, loss, epoch) in results.items():
                print(f"BENCH head-batch {model} batch {batch}: {seconds / t0:.2f}x training "
                      f"time ({seconds:.1f} s, epoch {epoch} kept); AUC {auc:.3f}, loss "
                      f"{loss:.3f} (batch {baseline}: {auc0:.3f}, {loss0:.3f})")
            family.release()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

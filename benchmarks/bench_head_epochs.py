"""Benchmark: the classifiers' head epochs, on the same features in one run.

With frozen bases a classifier unit's training is its head's epochs, so the `lgg` profile's
head time is proportional to `epochs`. This trains each head for each epoch count on the
same fit patients (the validated protocol: the epoch of lowest inner-validation loss is
kept), for several head seeds, one after the other in this process, and prints the
training time as a ratio against the longest count, with the kept epoch and the AUC and
loss on **inner-validation patients** beside it, never a test fold:

    BENCH head-epochs <model> <e> epochs: <t>x training time; AUC a, loss l, kept k (<E>: A, L, K)

(AUC, loss and kept epoch as the median over the head seeds; each seed's row is printed
above the BENCH line.)

Patients as in `bench_unet_recipe.py` (lgg-dev60's 40 patients outside the sample, split by
patient, seeded; else the sample; else a phantom, labelled). The bases have the run's
weights (`--weights`, default none: random bases here, where ImageNet weights cannot be
downloaded), so the heads read random-base features unless ImageNet weights are given.
Run: `python benchmarks/bench_head_epochs.py [--epochs 8,10,15] [--head-seeds 0,1,2]`.
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
    parser.add_argument("--epochs", default="8,10,15")
    parser.add_argument("--head-seeds", default="0,1,2")
    parser.add_argument("--models", default="resnet50,vgg16")
    parser.add_argument("--profile", default="lgg", help="image size, batch and precision from it")
    parser.add_argument("--weights", default="none")
    parser.add_argument("--validation-share", type=float, default=0.25)
    parser.add_argument("--seed", type=int, default=0, help="the patient split's seed")
    args = parser.parse_args(argv)
    counts = sorted(int(e) for e in args.epochs.split(","))
    head_seeds = [int(s) for s in args.head_seeds.split(",")]
    longest = counts[-1]

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
              f"{config.image_size}x{config.image_size}, batch {config.batch_size}, weights "
              f"{args.weights}, base {config.base_precision}; head seeds {head_seeds}")
        for model in args.models.split(","):
            family = classifier.ClassifierFamily(model, config)
            family.prepare(manifest, Path(run_dir), progress=False)
            results = {count: [] for count in counts}
            for head_seed in head_seeds:
                for count in counts:
                    started = time.perf_counter()
                    trained = classifier.train_head_on_features(
                        family.base, family.features[fit], labels[fit],
                        config.replace(epochs=count), family.features[validation],
                        labels[validation], head_seed, keep_best=True)
                    seconds = time.perf_counter() - started
                    p_tumor = trained.predict_p_tumor_from_features(family.features[validation])
                    best = trained.history.loc[trained.history["best"]].iloc[0]
                    row = (seconds, metrics.roc_auc(labels[validation], p_tumor),
                           float(best["val_loss"]), int(best["epoch"]))
                    results[count].append(row)
                    print(f"{model} head seed {head_seed}, {count} epochs: {seconds:.1f} s, "
                          f"kept {row[3]}, AUC {row[1]:.3f}, loss {row[2]:.3f}", flush=True)
            median = {count: np.median(np.array(rows), axis=0) for count, rows in results.items()}
            total = {count: sum(r[0] for r in rows) for count, rows in results.items()}
            t0, auc0, loss0, kept0 = total[longest], *median[longest][1:]
            for count in counts:
                _, auc, loss, kept = median[count]
                print(f"BENCH head-epochs {model} {count} epochs: {total[count] / t0:.2f}x "
                      f"training time; AUC {auc:.3f}, loss {loss:.3f}, kept {kept:g} "
                      f"({longest}: {auc0:.3f}, {loss0:.3f}, {kept0:g})")
            family.release()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

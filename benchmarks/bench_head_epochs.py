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
import sys

import numpy as np

from head_tuning import add_arguments, train_and_score, tuning_families


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", default="8,10,15")
    parser.add_argument("--head-seeds", default="0,1,2")
    add_arguments(parser)
    args = parser.parse_args(argv)
    counts = sorted(int(e) for e in args.epochs.split(","))
    head_seeds = [int(s) for s in args.head_seeds.split(",")]
    longest = counts[-1]

    for model, family, config, split in tuning_families(args):
        results = {count: [] for count in counts}
        for head_seed in head_seeds:
            for count in counts:
                row = train_and_score(family, config.replace(epochs=count), split, head_seed)
                results[count].append(row)
                print(f"{model} head seed {head_seed}, {count} epochs: {row[0]:.1f} s, "
                      f"kept {row[3]}, AUC {row[1]:.3f}, loss {row[2]:.3f}", flush=True)
        median = {count: np.median(np.array(rows), axis=0) for count, rows in results.items()}
        total = {count: sum(r[0] for r in rows) for count, rows in results.items()}
        t0, auc0, loss0, kept0 = total[longest], *median[longest][1:]
        for count in counts:
            _, auc, loss, kept = median[count]
            print(f"BENCH head-epochs {model} {count} epochs: {total[count] / t0:.2f}x "
                  f"training time; AUC {auc:.3f}, loss {loss:.3f}, kept {kept:g} "
                  f"({longest}: {auc0:.3f}, {loss0:.3f}, {kept0:g})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

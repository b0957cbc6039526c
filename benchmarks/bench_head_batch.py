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
import sys

from head_tuning import add_arguments, train_and_score, tuning_families


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", default="32,64,128")
    add_arguments(parser)
    args = parser.parse_args(argv)
    batches = [int(b) for b in args.batches.split(",")]
    baseline = 32
    if baseline not in batches:
        batches = [baseline, *batches]

    for model, family, config, split in tuning_families(args):
        results = {batch: train_and_score(family, config.replace(batch_size=batch), split,
                                          args.seed)
                   for batch in batches}
        t0, auc0, loss0, _ = results[baseline]
        for batch, (seconds, auc, loss, epoch) in results.items():
            print(f"BENCH head-batch {model} batch {batch}: {seconds / t0:.2f}x training "
                  f"time ({seconds:.1f} s, epoch {epoch} kept); AUC {auc:.3f}, loss "
                  f"{loss:.3f} (batch {baseline}: {auc0:.3f}, {loss0:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

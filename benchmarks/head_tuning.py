"""What the head benchmarks (`bench_head_batch.py`, `bench_head_epochs.py`) share: their
arguments, the tuning patients with each model's cached base features, and one head
trained and scored on inner-validation patients (never a test fold).

Patients as in `bench_unet_recipe.py` (lgg-dev60's 40 patients outside the sample, split by
patient, seeded; else the sample; else a phantom, labelled).
"""
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_unet_recipe import split_patients, tuning_manifest  # noqa: E402

from brainlib.config import params  # noqa: E402
from brainlib.measures import metrics  # noqa: E402
from brainlib.training import classifier, experiment  # noqa: E402


def add_arguments(parser) -> None:
    """The arguments both head benchmarks take."""
    parser.add_argument("--models", default="resnet50,vgg16")
    parser.add_argument("--profile", default="lgg",
                        help="image size, epochs, batch and precision from it")
    parser.add_argument("--weights", default="none")
    parser.add_argument("--validation-share", type=float, default=0.25)
    parser.add_argument("--seed", type=int, default=0, help="the patient split's seed")


def tuning_families(args):
    """Yield (model, family, config, split) per model of `args.models`, after printing the
    data line: the family holds the tuning patients' base features; split is (fit rows,
    inner-validation rows, labels)."""
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
              f"{config.image_size}x{config.image_size}, {config.epochs} epochs, batch "
              f"{config.batch_size}, weights {args.weights}, base {config.base_precision}, "
              f"split seed {args.seed}", flush=True)
        for model in args.models.split(","):
            family = classifier.ClassifierFamily(model, config)
            family.prepare(manifest, Path(run_dir), progress=False)
            yield model, family, config, (fit, validation, labels)
            family.release()


def train_and_score(family, config, split, head_seed: int) -> tuple[float, float, float, int]:
    """One head trained on the fit rows' features, keeping its epoch of lowest
    inner-validation loss: (training seconds, inner-validation AUC, that loss, kept epoch)."""
    fit, validation, labels = split
    started = time.perf_counter()
    trained = classifier.train_head_on_features(
        family.base, family.features[fit], labels[fit], config, family.features[validation],
        labels[validation], head_seed, keep_best=True)
    seconds = time.perf_counter() - started
    p_tumor = trained.predict_p_tumor_from_features(family.features[validation])
    best = trained.history.loc[trained.history["best"]].iloc[0]
    return (seconds, metrics.roc_auc(labels[validation], p_tumor), float(best["val_loss"]),
            int(best["epoch"]))

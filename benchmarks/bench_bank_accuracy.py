"""Benchmark: what the feature bank costs against on-the-fly augmentation, on real patients.

On the real LGG sample (../shared/data/lgg-sample; skipped without it) at the sample
profile's settings (128x128, 15 epochs, random bases with standardised features) with the
paper's augmentation, each fold's head is trained twice on the same fit rows, seeds and
batch order: end to end with a new augmented view every epoch (the paper's way,
`bank_views=0`), and on a feature bank of K views (view 0 the image itself). Both are
trained for all epochs and scored on the fold's **inner-validation patients** (the
runner's draw), never on its test patients, so the default K chosen from this table is
chosen on training-side patients only. Differences (bank - on the fly) in accuracy (each
arm's threshold 0.5) and AUC, pooled over folds and seeds, with 95% intervals that
resample patients (every seed's rows of a drawn patient together).

Results are kept per (model, seed, K) in `--out` (a CSV), so an interrupted run resumes.

    python benchmarks/bench_bank_accuracy.py [--models resnet50] [--seeds 0,1] [--views 2,4,8]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT.parent / "shared" / "data" / "lgg-sample"


def inner_validation_scores(model: str, params, manifest, images, views: int, seed: int):
    """Per fold: train on the unit's fit rows (bank of `views` views, or end to end when
    0), score its inner-validation rows. One frame of scored rows."""
    from brainlib.training import classifier, runner
    from brainlib import study

    config = study.classifier_config(params).replace(bank_views=views, seed=seed)
    frames = []
    base = features = bank = None
    if views:
        base = classifier.build_frozen_base(model, config)
        bank = classifier.extract_feature_bank(base, images, views, seed, progress=False)
        features = bank[:, 0].astype(np.float32)
    for fold in sorted(manifest["fold_patient"].unique()):
        rows = runner.unit_rows(manifest, "patient", "none", fold, "validated", seed,
                                params.validation_fraction, f"{model}-fold{fold}")
        if views:
            trained = classifier.train_head_on_features(
                base, bank[rows.fit], rows.fit_labels, config, head_seed=rows.seed,
                keep_best=False)
            p_tumor = trained.predict_p_tumor_from_features(features[rows.validation])
        else:
            trained = classifier.train_end_to_end(
                model, images[rows.fit], rows.fit_labels, config, head_seed=rows.seed,
                keep_best=False)
            p_tumor = trained.predict_p_tumor(images[rows.validation])
        frames.append(manifest.iloc[rows.validation][["patient_id", "slice_number", "label"]]
                      .assign(fold=int(fold), p_tumor=p_tumor))
    return pd.concat(frames, ignore_index=True)


def differences(scores: pd.DataFrame, model: str, views: int, seed: int = 0) -> dict:
    """Bank (K = views) minus on the fly, pooled over folds and seeds, patient intervals."""
    from brainlib import stats
    from brainlib.measures.metrics import roc_auc

    keys = ["seed", "fold", "patient_id", "slice_number"]
    fly = scores[(scores["model"] == model) & (scores["views"] == 0)]
    bank = scores[(scores["model"] == model) & (scores["views"] == views)]
    paired = fly.merge(bank, on=keys + ["label"], suffixes=("_fly", "_bank"))

    def statistic(part):
        accuracy = (((part["p_tumor_bank"] > 0.5) == part["label"]).mean()
                    - ((part["p_tumor_fly"] > 0.5) == part["label"]).mean())
        aucs = [roc_auc(g["label"], g["p_tumor_bank"]) - roc_auc(g["label"], g["p_tumor_fly"])
                for _, g in part.groupby("seed") if g["label"].nunique() == 2]
        return np.array([accuracy, np.mean(aucs) if aucs else np.nan])

    estimate = statistic(paired)
    draws = np.array([statistic(paired.iloc[rows])
                      for rows in stats.patient_resamples(paired, 1000, seed)])
    low, high = np.nanpercentile(draws, [2.5, 97.5], axis=0)
    return {"model": model, "K": views, "slices": len(paired),
            "seeds": paired["seed"].nunique(), "patients": paired["patient_id"].nunique(),
            "accuracy (bank - fly)": f"{estimate[0]:+.3f} [{low[0]:+.3f}, {high[0]:+.3f}]",
            "AUC (bank - fly)": f"{estimate[1]:+.3f} [{low[1]:+.3f}, {high[1]:+.3f}]",
            "AUC difference": estimate[1], "AUC low": low[1]}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet50,vgg16")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--views", default="2,4,8")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "bank_accuracy.csv"))
    args = parser.parse_args(argv)
    if not (SAMPLE / "kaggle_3m").is_dir():
        print(f"skipped: no real LGG sample at {SAMPLE}")
        return 0

    from brainlib.config import params as schema
    from brainlib.data import pipeline
    from brainlib import study

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = pd.read_csv(out, dtype={"patient_id": str}) if out.exists() else pd.DataFrame(
        columns=["model", "seed", "views"])
    models, seeds = args.models.split(","), [int(s) for s in args.seeds.split(",")]
    views = [0] + [int(v) for v in args.views.split(",")]
    params = schema.resolve("sample", {"augment": True, "run_dir": str(out.parent / "bank-run")})
    manifest = study.prepare_manifest(params).reset_index(drop=True)
    images = pipeline.load_images(manifest, params.image_size)
    print(f"real sample: {manifest['patient_id'].nunique()} patients, {len(manifest)} slices, "
          f"{params.image_size}x{params.image_size}, {params.epochs} epochs, models {models}, "
          f"seeds {seeds}, K in {views[1:]} against on the fly (K = 0)")
    for model in models:
        for seed in seeds:
            for k in views:
                if ((done["model"] == model) & (done["seed"] == seed) & (done["views"] == k)).any():
                    continue
                started = time.perf_counter()
                scores = inner_validation_scores(model, params, manifest, images, k, seed)
                scores = scores.assign(model=model, seed=seed, views=k)
                done = pd.concat([done, scores], ignore_index=True)
                done.to_csv(out, index=False)
                print(f"{model} seed {seed} K={k}: {len(scores)} inner-validation slices scored "
                      f"in {time.perf_counter() - started:.0f} s", flush=True)
    table = pd.DataFrame([differences(done, m, k) for m in models for k in views[1:]])
    pd.set_option("display.width", 200)
    print(table.drop(columns=["AUC difference", "AUC low"]).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

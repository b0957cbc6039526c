# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Training: ResNet50 and VGG16 on patient-grouped splits
#
# <a href="https://colab.research.google.com/github/brainlib-study/resnet-lgg-book/blob/main/notebooks/04_training.ipynb" target="_blank"><img src="https://colab.research.google.com/assets/colab-badge.svg" alt="Open In Colab"/></a>
#
# Both classifiers are trained on each training split of the run's evaluation (the run
# card below says which: patient folds, one institution per fold, or one train/test
# hold-out), with Adam on the categorical cross-entropy as in the paper. The paper trained
# "8 fold and 20 epochs" on a slice split; here every test set holds out whole patients.
# When a cross-validated run asks for the leakage experiment, the same models are also
# trained on the paper's slice split, and on both splits with the training labels shuffled
# (a control that must score at chance), so the evaluation chapter can show how much a
# slice split inflates accuracy; the card says whether this run did.
#
# With a frozen base and no augmentation, the base's output for each image never
# changes, so it can be computed once and only the head trained on it: the same model as
# training end to end (tested to float precision), many times faster. With augmentation
# every epoch's images are new; the paper's way sends them through the base every epoch
# (end to end, `bank_views=0`). A frozen base's output for a given augmented view does not
# depend on the fold either, so by default the base's outputs for a few views of every
# image are computed once (a feature bank, view 0 the image itself) and each epoch draws
# one view per image: an approximation (a few distinct views instead of a new one every
# epoch) whose cost on real patients is measured in `benchmarks/`. This run: the
# classifiers train on {glue:text}`training_path`.
#
# Every model of this book, the U-Net of chapter 7 included, follows one protocol, run by
# one runner (`brainlib.training.runner`). Under the **validated** protocol a share of each
# training set's patients is held out as *inner validation* patients (the same ones for
# every model): they pick the epoch whose weights are kept (lowest validation loss) and the
# decision threshold (highest validation accuracy). The test patients are never evaluated
# during training. The **paper** protocol keeps the paper's procedure: all training patients, the
# last epoch, and a threshold of 0.5 on the tumor probability.

# %% tags=["remove-cell"]
# Set-up on Colab only: install brainlib from the repository (Colab keeps its TensorFlow).
import subprocess
import sys

if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "git+https://github.com/brainlib-study/resnet-lgg-book@main"], check=True)

# %% tags=["parameters", "remove-cell"]
# Parameters (papermill). profile "auto": the paper's `full` profile on Colab with a GPU,
# the real-data settings when $BRAINLIB_DATA names a kaggle_3m folder, else the phantom
# `default`. overrides: any study parameter (`python -m brainlib params` lists them).
profile = "auto"
overrides = {}

# %% tags=["remove-cell", "nbval-ignore-output"]
# Imported first and hidden from the book: its start-up notices vary from run to run.
import tensorflow as tf  # noqa: F401

# %% tags=["hide-input"]
import time

import plotly.express as px

import brainlib as bl
from brainlib.chapters import plots, report
from brainlib.config import params
from brainlib.study import notebook

P, manifest, DATASET = notebook.open_run(globals())

# %% [markdown]
# ## Train
#
# Each unit is one model on one training set (a fold, an institution left out, or a
# hold-out's training folder) of one split, with true or shuffled labels. A stopped
# run resumes after its last finished unit; finished units are read back, not retrained.

# %% tags=["nbval-ignore-output"]
config = bl.study.classifier_config(P)
notebook.glue_value("training_path", {
    "feature_cache": "base features computed once "
                     "(frozen base, no augmentation)",
    "feature_bank": f"base features of {config.bank_views} views per image "
                    "computed once (frozen base, augmentation: one view per "
                    "image per epoch)",
    "end_to_end": "images through the base every epoch (end to end)",
}[config.path])
print(config)
start = time.perf_counter()
predictions = bl.study.run_models(P)
n_units = predictions.groupby(["model", "scheme", "control", "fold"]).ngroups
notebook.glue_value("n_units", n_units)
print(f"{n_units} units, {len(predictions)} predictions "
      f"in {time.perf_counter() - start:.0f} s")

# %% tags=["nbval-check-output"]
report.without_single_fold(
    predictions.groupby(["model", "scheme", "control"]).agg(
        folds=("fold", "nunique"), slices=("y_true", "size"),
        tumor_slices=("y_true", "sum")))

# %% [markdown]
# ## What the protocol chose
#
# Per unit of the main experiment (true labels): how many slices it was fitted on
# (`n_fit`) and validated on (`n_validation`, slices of the inner validation patients),
# the epoch kept and the threshold chosen on the validation patients.
# Under the paper's protocol there are no validation patients, the epoch is the last and
# the threshold 0.5.

# %% tags=["nbval-check-output"]
chosen = bl.study.unit_thresholds(P)
main_units = params.main_experiment(chosen)
notebook.glue_values({
    "n_main_units": len(main_units),
    "epochs": report.range_text(main_units["best_epoch"], ".0f"),
    "thresholds": report.range_text(main_units["threshold"], ".2f")})
report.without_single_fold(
    main_units[
        ["model", "fold", "n_fit", "n_validation", "best_epoch", "threshold",
         "rule"]]).round(3)

# %% [markdown]
# ## Learning curves (the paper's Figs. 4-5)
#
# Training and inner-validation loss and accuracy per epoch, for each model and training
# set. Validation here means the inner validation patients, never the test patients.

# %%
histories = bl.study.unit_histories(P)
fig = plots.learning_curves_figure(
    params.main_experiment(histories),
    title=f"Learning curves "
          f"{report.per_split(histories['fold'].nunique())} ({DATASET})")
fig.show()

# %% [markdown]
# ## Recap
#
# - This run has {glue:text}`n_units` units, each one model trained on one training set of
#   one split ({glue:text}`training_path`); a finished unit is read back, not retrained.
# - The {glue:text}`n_main_units` units of the main experiment kept epochs
#   {glue:text}`epochs` and thresholds {glue:text}`thresholds`, each chosen without its
#   test patients: by its inner validation patients under the validated protocol, as the
#   last epoch and 0.5 under the paper's.

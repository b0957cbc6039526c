# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Training: cross-validated ResNet50 and VGG16
#
# <a href="https://colab.research.google.com/github/brainlib-study/resnet-lgg-book/blob/main/notebooks/04_training.ipynb" target="_blank"><img src="https://colab.research.google.com/assets/colab-badge.svg" alt="Open In Colab"/></a>
#
# Both classifiers are trained fold by fold on the run's manifest, with Adam on the
# categorical cross-entropy as in the paper. The paper trained "8 fold and 20 epochs" on a
# slice split; here every fold holds out whole patients. The same models are also trained
# on the paper's slice split, and on both splits with the training labels shuffled (a
# control that must score at chance), so the evaluation chapter can show how much a slice
# split inflates accuracy.
#
# With a frozen base and no augmentation, the base's output for each image never
# changes, so it is computed once and only the head is trained on it: the same model as
# training end to end (tested to float precision), many times faster.

# %% tags=["remove-cell"]
# Set-up on Colab only: install brainlib from the repository (Colab keeps its TensorFlow).
import subprocess
import sys

if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "git+https://github.com/brainlib-study/resnet-lgg-book@main"], check=True)

# %% tags=["parameters"]
# Parameters (papermill). These defaults are the quick reference run on the phantom; the
# paper's setting is the `full` profile: data_source="kaggle", weights="imagenet",
# image_size=256, n_folds=8, epochs=20, augment=True, standardize_features=False.
run_dir = "runs/notebook"
data_source = "auto"
phantom_patients = 12
seed = 0
n_folds = 3
test_fraction = 0.3
image_size = 64
epochs = 4
batch_size = 32
learning_rate = 0.001
lr_decay = 0.0
augment = False
weights = "none"
standardize_features = True
models = "resnet50,vgg16"
folds_to_run = "all"
leakage_experiment = True

# %% tags=["nbval-ignore-output"]
import tensorflow as tf  # noqa: F401  (its start-up notices vary from run to run)

# %%
import time

import plotly.express as px

import brainlib as bl

bl.study.notebook_setup()
settings = dict(data_source=data_source, phantom_patients=phantom_patients, seed=seed,
                n_folds=n_folds, test_fraction=test_fraction, image_size=image_size,
                epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                lr_decay=lr_decay, augment=augment, weights=weights,
                standardize_features=standardize_features, models=models,
                folds_to_run=folds_to_run, leakage_experiment=leakage_experiment)
manifest = bl.study.prepare_manifest(run_dir, **settings)
DATASET = manifest["dataset"].iloc[0].upper()
config = bl.study.training_config(**settings)
print(f"dataset: {DATASET}; {manifest['patient_id'].nunique()} patients, {len(manifest)} "
      f"slices; {n_folds} patient folds")
print(config)

# %% [markdown]
# ## Train
#
# Each unit is one model on one fold of one split, with true or shuffled labels. A stopped
# run resumes after its last finished unit; finished units are read back, not retrained.

# %% tags=["nbval-ignore-output"]
start = time.perf_counter()
predictions = bl.study.train_models(run_dir, progress="log", **settings)
print(f"{predictions.groupby(['model', 'scheme', 'control', 'fold']).ngroups} units, "
      f"{len(predictions)} predictions in {time.perf_counter() - start:.0f} s")

# %%
# NBVAL_CHECK_OUTPUT
predictions.groupby(["model", "scheme", "control"]).agg(
    folds=("fold", "nunique"), slices=("y_true", "size"), tumor_slices=("y_true", "sum"))

# %% [markdown]
# ## Learning curves (the paper's Figs. 4-5)
#
# Training and validation loss and accuracy per epoch, for each model and patient fold.
# Here validation means the held-out fold (for monitoring only: no model or epoch is
# picked on it).

# %%
histories = bl.study.read_histories(run_dir, **settings)
curves = histories[(histories["scheme"] == "patient") & (histories["control"] == "none")]
long = curves.melt(id_vars=["model", "fold", "epoch"],
                   value_vars=["accuracy", "val_accuracy", "loss", "val_loss"],
                   var_name="curve", value_name="value")
long["quantity"] = long["curve"].str.replace("val_", "", regex=False)
long["set"] = long["curve"].str.startswith("val_").map({True: "validation", False: "training"})
fig = px.line(long, x="epoch", y="value", color="set", line_dash="model",
              facet_col="quantity", facet_row="fold", markers=True,
              title=f"Learning curves per patient fold ({DATASET})")
fig.update_yaxes(matches=None)
fig.show()

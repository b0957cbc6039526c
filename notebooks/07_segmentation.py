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
# # Segmentation: what the masks are worth
#
# <a href="https://colab.research.google.com/github/brainlib-study/resnet-lgg-book/blob/main/notebooks/07_segmentation.ipynb" target="_blank"><img src="https://colab.research.google.com/assets/colab-badge.svg" alt="Open In Colab"/></a>
#
# The paper's title promises segmentation and its equations (15)-(17) define Dice, IoU and
# the Hausdorff distance, but it reports no segmentation result. The dataset ships a
# radiologist's mask for every slice {cite}`buda2019`, far richer supervision than one
# label per slice. This chapter trains a U-Net on those masks, on exactly the same patient
# folds as ResNet50 and VGG16, measures the masks it draws, and turns each predicted mask
# into a slice score (its maximum pixel logit, averaged with the neighbouring slices'), so
# that the U-Net enters the same paired tests as the two classifiers.

# %% tags=["remove-cell"]
# Set-up on Colab only: install brainlib from the repository (Colab keeps its TensorFlow).
import subprocess
import sys

if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "git+https://github.com/brainlib-study/resnet-lgg-book@main"], check=True)

# %% tags=["parameters"]
# Parameters (papermill): the training chapter's, plus the U-Net's. These defaults are the
# quick reference run on the phantom; the `sample` profile trains a 16-32-64-128 U-Net for
# 45 epochs in bfloat16 (`unet_precision`), the `full` profile for 30 epochs in float32.
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
unet_image_size = 64
unet_widths = "8,16,32"
unet_epochs = 3
unet_precision = "float32"

# %% tags=["nbval-ignore-output"]
import tensorflow as tf  # noqa: F401  (its start-up notices vary from run to run)

# %%
import numpy as np
import pandas as pd
import plotly.express as px

import brainlib as bl

bl.study.notebook_setup()
settings = dict(data_source=data_source, phantom_patients=phantom_patients, seed=seed,
                n_folds=n_folds, test_fraction=test_fraction, image_size=image_size,
                epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                lr_decay=lr_decay, augment=augment, weights=weights,
                standardize_features=standardize_features, models=models,
                folds_to_run=folds_to_run, leakage_experiment=leakage_experiment)
unet_settings = dict(unet_image_size=unet_image_size, unet_widths=unet_widths,
                     unet_epochs=unet_epochs, unet_precision=unet_precision)
manifest = bl.study.prepare_manifest(run_dir, **settings)
DATASET = manifest["dataset"].iloc[0].upper()
print(f"dataset: {DATASET}; {manifest['patient_id'].nunique()} patients, {len(manifest)} slices")
print(bl.study.segmentation_config(**settings, **unet_settings))

# %% [markdown]
# ## Each volume's sequences on one scale
#
# Scanners and institutions give each MRI sequence its own intensity scale. The U-Net's
# input is rescaled per patient volume and sequence (the 1st-99th percentile of the head
# onto 0-255) before each image is standardised. Below, each dot is one patient's bright
# end of the head (90th percentile of its non-zero pixels) in one sequence, divided by the
# mean over patients, as read and after rescaling; the table gives the spread between
# patients as a coefficient of variation.

# %%
head_scale = []
as_read = bl.pipeline.load_images(manifest, unet_image_size)
rescaled = bl.segmentation.normalize_volumes(as_read, manifest["patient_id"].to_numpy())
for version, stack in (("as read", as_read), ("rescaled per volume", rescaled)):
    for patient, rows_of_patient in manifest.groupby("patient_id").indices.items():
        for channel, sequence in enumerate(("pre-contrast", "FLAIR", "post-contrast")):
            values = stack[rows_of_patient][..., channel]
            head_scale.append({"version": version, "sequence": sequence, "patient_id": patient,
                               "institution": manifest["institution"].iloc[rows_of_patient[0]],
                               "p90": np.percentile(values[values > 0], 90)})
head_scale = pd.DataFrame(head_scale)
groups = head_scale.groupby(["version", "sequence"])["p90"]
head_scale["relative to the mean"] = head_scale["p90"] / groups.transform("mean")
fig = px.strip(head_scale, x="sequence", y="relative to the mean", color="institution",
               facet_col="version", hover_data=["patient_id"],
               title=f"90th percentile of each patient's head per sequence ({DATASET})")
fig.show()
(groups.std() / groups.mean()).unstack("sequence").round(2)

# %% [markdown]
# ## Train the U-Net, fold by fold
#
# Same patient folds as the classifiers. Loss: soft Dice plus binary cross-entropy. Each
# patient's volume has each MRI sequence rescaled to its own 1st-99th percentile range
# (scanners and institutions give the sequences different scales; this uses the patient's
# own images and no label, so test patients get it too), then each image is standardised.
# In training, flips, small rotations and scaling move image and mask together, and each
# sequence's gain is jittered. The decision threshold on the slice score is chosen on
# validation patients taken from the training side, never on the test fold.

# %% tags=["nbval-ignore-output"]
classifier_predictions = bl.study.train_models(run_dir, progress="log", **settings)
unet_predictions = bl.study.segment_tumors(run_dir, progress="log", **settings, **unet_settings)
folder = bl.study.segmentation_dir(run_dir, **settings, **unet_settings)

# %%
histories = bl.segmentation.read_histories(folder)
long = histories.melt(id_vars=["fold", "epoch"], value_vars=["loss", "val_loss"],
                      var_name="set", value_name="Dice + cross-entropy loss")
fig = px.line(long, x="epoch", y="Dice + cross-entropy loss", color="set", facet_col="fold",
              markers=True, title=f"U-Net learning curves per patient fold ({DATASET})")
fig.show()

# %% [markdown]
# ## How good are the masks? (eqs. 15-17)
#
# Measured at the original 256x256 resolution, from the masks each fold saved (no model
# needed). Per slice, over tumor slices only; and per patient volume (all of a patient's
# slices stacked), the unit the dataset's authors report. Distances are in pixels and left
# out where either mask is empty. Keeping only the largest connected 3-D component of each
# predicted volume removes scattered false positives.

# %%
# NBVAL_CHECK_OUTPUT
raw = bl.segmentation.evaluate_run(folder, manifest)
largest = bl.segmentation.evaluate_run(folder, manifest, keep_largest_component=True)
pd.concat({"raw masks": raw.to_frame(), "largest component": largest.to_frame()}).round(3)

# %%
# NBVAL_CHECK_OUTPUT
tumor_patients = raw.patients[raw.patients["n_tumor_slices"] > 0]
interval = bl.segmetrics.mean_dice_interval(tumor_patients["dice"], seed=seed)
print(f"mean per-patient Dice ({DATASET}, patients with a tumor): {interval.mean:.3f}, "
      f"95% CI {interval.ci_low:.3f}-{interval.ci_high:.3f} "
      f"(patient bootstrap, {interval.n_patients} patients)")

# %%
per_patient = raw.patients.sort_values("dice")
fig = px.bar(per_patient, x="patient_id", y="dice", color="n_tumor_slices",
             title=f"Dice per patient volume ({DATASET})")
fig.update_xaxes(showticklabels=False)
fig.show()

# %% [markdown]
# ## Where it fails: small tumors
#
# The slices where the U-Net misses are mostly those with the smallest tumors, the same
# slices the classifiers miss.

# %%
slices = raw.slices[raw.slices["tumor_slice"]]
fig = px.scatter(slices, x="true_pixels", y="dice", log_x=True, opacity=0.5,
                 title=f"Dice against tumor area per tumor slice ({DATASET})",
                 labels={"true_pixels": "true tumor area, pixels"})
fig.show()

# %% [markdown]
# ## True and predicted masks: the best and the worst patient
#
# For each, its slice with the largest tumor: the true mask in red, the predicted one in
# blue (purple where they agree).

# %%
rows, predicted = bl.segmentation.predicted_masks(folder, manifest)
rows = rows.reset_index()
scored = per_patient[per_patient["n_tumor_slices"] > 0]
tiles, names = [], []
for label, patient in (("best", scored["patient_id"].iloc[-1]),
                       ("worst", scored["patient_id"].iloc[0])):
    own = rows[rows["patient_id"] == patient]
    position = own["tumor_pixels"].idxmax()
    image = bl.pipeline.load_images(rows.loc[[position]], 256)[0]
    true = bl.pipeline.load_masks(rows.loc[[position]], 256)[0] > 0
    tile = bl.eda.overlay(image, true, color=(255, 40, 40))
    tiles.append(bl.eda.overlay(tile, predicted[position], color=(40, 90, 255)))
    names.append(f"{label}: {patient}, slice {rows.loc[position, 'slice_number']}")
fig = px.imshow(np.concatenate(tiles, axis=1),
                title=f"{' | '.join(names)} ({DATASET})")
fig.update_xaxes(showticklabels=False).update_yaxes(showticklabels=False)
fig.show()

# %% [markdown]
# ## A slice's score, alone or with its neighbours
#
# A slice's score is the U-Net's largest pixel logit on it, averaged with the largest
# logits of the slices just below and above it in the same volume
# (`slice_score="max_probability_3d"`). A tumor spans several slices, while a spurious blob
# seldom repeats on the next one. The table compares the AUC of this score with the
# slice's own maximum, fold by fold, on the same test slices (both computed from the
# scores each fold saved).

# %%
# NBVAL_CHECK_OUTPUT
scores = bl.segmentation.read_slice_scores(folder)
auc_by_fold = scores.groupby("fold").apply(
    lambda fold: pd.Series({"slices": len(fold),
                            "AUC, own maximum": bl.metrics.roc_auc(fold["label"], fold["max_logit"]),
                            "AUC, with neighbours": bl.metrics.roc_auc(fold["label"], fold["max_logit_3d"])}),
    include_groups=False)
auc_by_fold.loc["pooled"] = [len(scores), bl.metrics.roc_auc(scores["label"], scores["max_logit"]),
                             bl.metrics.roc_auc(scores["label"], scores["max_logit_3d"])]
auc_by_fold.astype({"slices": int}).round(3)

# %% [markdown]
# ## Three classifiers on the same slices
#
# The U-Net's slice scores join the predictions table as a third model, so the statistics
# of the previous chapter apply unchanged: paired McNemar tests on the same slices and
# DeLong tests of the AUCs, clustered by patient.

# %%
# NBVAL_CHECK_OUTPUT
main = classifier_predictions[(classifier_predictions["scheme"] == "patient")
                              & (classifier_predictions["control"] == "none")]
three = pd.concat([main, unet_predictions], ignore_index=True)
bl.metrics.metrics_table(three, by=("model",)).drop(columns=["note"]).round(3)

# %%
# NBVAL_CHECK_OUTPUT
comparisons = []
for other in [m.strip() for m in models.split(",")]:
    paired = bl.stats.pair_predictions(three, "unet", other)
    mcnemar = bl.stats.mcnemar_test(paired)
    delong = bl.stats.delong_test(paired, cluster="patient_id")
    comparisons.append({"comparison": f"unet - {other}",
                        "accuracy difference": round(mcnemar.difference, 3),
                        "McNemar p (exact)": float(f"{mcnemar.pvalue:.3g}"),
                        "AUC difference": round(delong.difference, 3),
                        "DeLong p (patient-clustered)": float(f"{delong.pvalue:.3g}")})
pd.DataFrame(comparisons)

# %% [markdown]
# ## What the masks are worth
#
# A slice label says only *whether* a tumor is there; a mask says *where*. A U-Net trained
# from scratch on the masks learns from every tumor pixel, and its maximum pixel score,
# taken with the neighbouring slices', is a slice classifier in its own right. The tables
# above compare it with the slice-label classifiers on the same patients; on the real data
# (the `sample` and `full` profiles) this is the comparison that matters, and these
# PHANTOM numbers only show that the machinery works.

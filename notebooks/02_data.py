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
# # Data and exploratory analysis
#
# <a href="https://colab.research.google.com/github/brainlib-study/resnet-lgg-book/blob/main/notebooks/02_data.ipynb" target="_blank"><img src="https://colab.research.google.com/assets/colab-badge.svg" alt="Open In Colab"/></a>
#
# The paper uses Kaggle's LGG MRI segmentation dataset: 110 patients of The Cancer Genome
# Atlas, 3,929 axial slices of 256x256 pixels with three channels (pre-contrast, FLAIR,
# post-contrast), each with a tumor mask drawn by a radiologist. A slice is labelled
# *tumor* when its mask has any tumor pixel. This chapter scans the dataset, checks every
# file, and looks at what a classifier will see: how many slices of each class, how they
# spread over patients and institutions, how small the tumors get, and how the split
# keeps every patient on one side.

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

# %% tags=["hide-input"]
import numpy as np
import plotly.express as px

from brainlib.data import eda, pipeline, splits
from brainlib.study import notebook

P, manifest, DATASET = notebook.open_run(globals())

# %% [markdown]
# Every result below carries the dataset's name; the run card above says what this
# dataset is and what its results can and cannot show.
#
# ## Classes
#
# The paper reports 1,373 tumor and 2,556 no-tumor slices (35% tumor). The same count
# from the scanned manifest:

# %% tags=["nbval-check-output"]
facts = eda.dataset_facts(manifest)
notebook.glue_values({"dataset": DATASET, **facts})
eda.class_counts(manifest)

# %% [markdown]
# ## Patients and institutions
#
# Slices are not independent: each patient contributes a whole stack, and neighbouring
# slices look alike. This is why the evaluation must keep every patient on one side of
# a split.

# %% tags=["nbval-check-output"]
patients = eda.per_patient(manifest)
patients.describe().loc[["count", "mean", "min", "max"],
                        ["slices", "tumor_slices"]]

# %% tags=["nbval-check-output"]
eda.per_institution(manifest)

# %%
fig = px.histogram(patients, x="slices", color="institution", nbins=20,
                   title=f"Slices per patient ({DATASET})")
fig.show()

# %% [markdown]
# ## How small tumors get
#
# The label is "any tumor pixel", so a slice at the edge of a tumor with a few dozen
# pixels counts as much as one through its centre. Whether the models miss the small ones
# more often is measured in chapter 7, from their predictions.

# %% tags=["nbval-check-output"]
sizes = eda.tumor_sizes(manifest)
print(f"tumor slices: {len(sizes)}; "
      f"median tumor area {facts['median_tumor_pixels']:.0f} pixels; "
      f"{facts['small_tumor_share']:.1%} under 100 pixels")
fig = px.histogram(sizes, x="tumor_pixels", nbins=40, log_y=True,
                   title=f"Tumor area per tumor slice, pixels ({DATASET})")
fig.show()

# %% [markdown]
# ## Intensities per channel
#
# The images are 8-bit RGB, one MRI sequence per channel. These statistics are over all
# pixels of each class, decoded once and cached as uint8; the sentence under the table is
# computed from it.

# %% tags=["nbval-check-output"]
images = pipeline.load_images(manifest, 256)
intensities = eda.channel_statistics(images, manifest["label"].to_numpy())
print(eda.intensity_sentence(intensities))
intensities

# %% [markdown]
# ## Slices with their masks
#
# The paper's Figs. 2-3: input slices and the same slices with the tumor mask overlaid.

# %%
examples = eda.example_slices(manifest, n=4, seed=P.seed)
masks = pipeline.load_masks(manifest, 256)
tiles = [np.concatenate([images[i], eda.overlay(images[i], masks[i])],
                        axis=0)
         for i in examples.index]
fig = px.imshow(np.concatenate(tiles, axis=1),
                title="Slices (top) and tumor masks overlaid "
                      f"(bottom), {DATASET}")
fig.update_xaxes(showticklabels=False).update_yaxes(showticklabels=False)
fig.show()

# %% [markdown]
# ## The split
#
# The paper split slices 70:30 at random, so slices of one patient fall on both sides and
# the test set holds near-copies of training slices. This book splits patients: grouped by
# patient and stratified by label, seeded, and checked in code. The split is recorded in
# the manifest, so every later chapter reads the same one: the folds of a patient
# cross-validation, or, in a hold-out run, the training folder and the test folder.

# %% tags=["nbval-check-output"]
if P.is_holdout:
    display(manifest.groupby("source").agg(
        patients=("patient_id", "nunique"), slices=("label", "size"),
        tumor_share=("label", "mean")))
else:
    summary = manifest.groupby("split_patient").agg(
        patients=("patient_id", "nunique"), slices=("label", "size"),
        tumor_share=("label", "mean"))
    display(summary)

# %% tags=["nbval-check-output"]
if P.is_holdout:
    by_source = manifest.groupby("source")["patient_id"].agg(set)
    print(f"patients in both folders: "
          f"{len(by_source['train'] & by_source['test'])}")
else:
    by_patient = manifest.groupby("patient_id")["split_slice"]
    leaky = by_patient.nunique().gt(1).mean()
    print("patients on both sides: patient split 0%, "
          f"the paper's slice split {leaky:.0%}")
    display(splits.split_summary(manifest))

# %% [markdown]
# ## Recap
#
# - The **{glue:text}`dataset`** data: {glue:text}`n_patients` patients from
#   {glue:text}`n_institutions` institutions, {glue:text}`n_slices` slices, of which
#   {glue:text}`tumor_share:.0%` show tumor (the paper's dataset: 35%).
# - A patient contributes a whole stack of alike slices, so every split of this book keeps
#   each patient on one side; the paper's random slice split does not.
# - Tumors can be small: the median tumor slice has {glue:text}`median_tumor_pixels:.0f`
#   tumor pixels, and {glue:text}`small_tumor_share:.0%` of tumor slices have fewer than 100.

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
# # Can we trust it? Uncertainty, calibration, referral and where the models look
#
# <a href="https://colab.research.google.com/github/brainlib-study/resnet-lgg-book/blob/main/notebooks/08_trust.ipynb" target="_blank"><img src="https://colab.research.google.com/assets/colab-badge.svg" alt="Open In Colab"/></a>
#
# The paper's abstract says that "Bayesian inference is utilized to gauge the uncertainty
# in the network's parameters, providing a probabilistic interpretation", and shows none.
# A radiologist deciding whether to use such a model asks four questions, and this chapter
# answers them for ResNet50, VGG16 and the U-Net on the same patients and splits as the
# chapters before, from the units they trained (nothing is retrained here):
#
# 1. How sure is the model of each slice, and is that spread meaningful?
# 2. When it says 80%, is it right 80% of the time (calibration)?
# 3. If the least sure slices went to a human, how good would the rest be (referral)?
# 4. Does a classifier look at the tumor at all (Grad-CAM, scored against the masks)?

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
import numpy as np
import pandas as pd
import plotly.express as px

import brainlib as bl
from brainlib.chapters import report, trust_report
from brainlib.study import notebook

P, manifest, DATASET = notebook.open_run(globals())
MODELS = [*P.model_names, "unet"]
notebook.glue_value("dataset", DATASET)

# %% [markdown]
# ## The uncertainty of each prediction
#
# **The classifiers: Monte Carlo dropout.** The paper's head has dropout 0.3 after each of
# its three dense layers. Left on at prediction time, each pass drops a different random
# set of units; the passes are samples of the prediction under the uncertainty about the
# head's parameters, and their mean approximates a Bayesian model average
# {cite}`gal2016`. The base is frozen, so its features are computed once and the passes
# over the head cost seconds.
#
# **The U-Net: test-time augmentation, not MC dropout.** The U-Net has no dropout; adding
# spatial dropout would change its architecture and retrain every unit. Instead it sees
# each test slice in ten views drawn from its own training transforms (a horizontal flip
# and rotations of up to 15 degrees), each prediction turned back into the slice's frame.
# The spread measures its sensitivity to those nuisances, not its parameter uncertainty.
#
# Per slice, from the passes: the **predictive entropy** of their mean (the total
# uncertainty) and the **mutual information** between the prediction and the passes (the
# part due to the model, "epistemic"): entropy of the mean minus the mean entropy. A third
# measure needs no passes: the **margin**, how close the slice's log-odds lie to the
# unit's own decision threshold. All three join the predictions table as columns.

# %% tags=["nbval-ignore-output"]
predictions, heatmap_scores = bl.study.run_trust_analyses(P)
rows = trust_report.trust_predictions(predictions, MODELS)
print(f"uncertainty columns: {', '.join(trust_report.MEASURES)}, "
      "p_mean, temperature, p_calibrated; "
      f"{P.mc_passes} MC dropout passes per classifier slice, "
      f"{len(bl.trust.uncertainty.TTA_VIEWS)} views per U-Net slice")

# %% tags=["nbval-check-output"]
rows.groupby("model")[["p_tumor", "p_mean",
                       *trust_report.MEASURES]].mean().round(3)

# %%
fig = px.histogram(
    rows.assign(call=np.where(rows["y_pred"] == rows["y_true"],
                              "right", "wrong")),
    x="entropy", color="call", facet_col="model", barmode="overlay",
    histnorm="probability", nbins=30,
    title=f"Predictive entropy of right and wrong calls ({DATASET})")
fig.update_layout(margin=dict(t=90))
fig.show()

# %% [markdown]
# ## Calibration
#
# A model is calibrated when, among the slices it gives a tumor probability near p, a
# share p has a tumor. The reliability diagram bins the slices by probability (ten
# equal-width bins) and plots each bin's observed tumor rate against its mean probability;
# the bars are 95% bands from resampling whole patients. The **expected calibration error**
# (ECE) is the bins' mean gap, weighted by their slices; the **Brier score** is the mean
# squared error of the probability, which Murphy's decomposition {cite}`murphy1973`
# splits into reliability (miscalibration, lower is better), resolution (how far the bins'
# rates spread from the base rate, higher is better) and the data's own uncertainty.
#
# **Temperature scaling** {cite}`guo2017` divides each unit's log-odds by one number T,
# fitted by maximum likelihood on that unit's inner-validation patients only and applied to
# its test patients. It changes no call (the threshold moves with it), only the probabilities.

# %% tags=["nbval-check-output"]
calibration = trust_report.calibration_table(rows, MODELS, seed=P.seed)
if not trust_report.has_temperature(rows):
    print("no temperature fitted: "
          "this run's protocol keeps no inner-validation patients")
base_rate = ", ".join(f"{u:.3f}"
                      for u in calibration["uncertainty"].unique())
print("Brier's uncertainty term (the tumor rate's own variance, "
      f"the same slices for every row): {base_rate}")
report.joined_intervals(calibration, {"ECE 95%": ("ECE low", "ECE high")}
                           ).drop(columns="uncertainty").round(3)

# %%
bands = trust_report.reliability_bands(rows, MODELS, seed=P.seed)
trust_report.reliability_figure(
    bands, "Reliability per model, as trained and temperature-scaled "
           f"({DATASET})").show()

# %% tags=["nbval-check-output"]
print("\n".join(trust_report.calibration_sentences(calibration)))

# %% [markdown]
# ## Referral: hand the least sure slices to a human
#
# Sort the test slices by an uncertainty measure, refer the most uncertain share (0 to 50%)
# to a radiologist, and score the model on the slices it keeps: accuracy with each unit's
# own threshold, and AUC. Each interval resamples whole patients and redoes the referral.
# A measure worth having makes the curve climb; a useless one leaves it flat.

# %% tags=["nbval-ignore-output"]
referral = trust_report.referral_table(rows, MODELS, seed=P.seed)
trust_report.referral_figure(
    referral, "Accuracy on the slices kept as the most uncertain are "
              f"referred ({DATASET})").show()
trust_report.referral_figure(
    referral, "AUC on the slices kept as the most uncertain are referred "
              f"({DATASET})",
    metric="AUC").show()

# %% tags=["nbval-check-output"]
trust_report.referral_summary(referral)

# %% [markdown]
# How well does each measure flag the model's own errors? The AUROC of the measure as a
# score for "this call is wrong": 0.5 is chance, 1 flags every error before any right call.

# %% tags=["nbval-check-output"]
errors = trust_report.error_detection_table(rows, MODELS, seed=P.seed)
errors.round(3)

# %% tags=["nbval-check-output"]
print("\n".join(trust_report.referral_sentences(referral, errors)))

# %% [markdown]
# ## Where the U-Net is unsure, pixel by pixel
#
# Each pixel's entropy over the ten views of its slice, beside the slice with its true
# mask (red) and the predicted one (blue): for the patient with the best and the worst
# volume Dice, each at its slice with the largest tumor.

# %%
unet_folder = bl.study.model_folder(P, "unet")
unet_eval = bl.training.masks.evaluate_run(unet_folder, manifest)
ranked = (unet_eval.patients[unet_eval.patients["n_tumor_slices"] > 0]
          .sort_values("dice"))
trust_report.uncertainty_overlay_figure(
    P, manifest,
    [ranked["patient_id"].iloc[-1], ranked["patient_id"].iloc[0]],
    "U-Net: slice, masks and pixel entropy; best and worst patient "
    f"({DATASET})"
).show()

# %% [markdown]
# ## Do the classifiers look at the tumor?
#
# Grad-CAM {cite}`selvaraju2017` weights each feature map of the base's last
# convolutional block by the mean gradient of the tumor log-odds over it, sums and
# rectifies: a heatmap of where the evidence for "tumor" sits, resized to the image. (A
# head that standardises its features reads each map relative to its training mean, so the
# maps are taken relative to it.) Heatmaps are not judged by eye here but scored against
# the radiologist's mask on every tumor slice of the test patients, over the brain:
#
# - the **pointing game**: is the heatmap's maximum inside the tumor?
# - the **energy inside**: what share of the heatmap's mass lies in the tumor?
#
# A heatmap that knows nothing, uniform over the brain or with its maximum anywhere in it,
# scores the tumor's share of the brain on both: that is the baseline beside them. The
# U-Net's own volume Dice, from the previous chapter's masks, is the bar a model trained on
# the masks sets.

# %% tags=["nbval-check-output"]
gradcam = trust_report.gradcam_table(heatmap_scores, seed=P.seed)
dice = bl.stats.mean_dice_interval(ranked["dice"], seed=P.seed,
                                   method="percentile")
print(f"U-Net mean volume Dice, patients with a tumor: {dice.mean:.3f} "
      f"[{dice.ci_low:.3f}, {dice.ci_high:.3f}] "
      "(percentile, patients resampled)")
gradcam.drop(columns=[c for c in gradcam.columns
                      if c.endswith((" value", " low", " high"))])

# %% tags=["nbval-check-output"]
cells = trust_report.heatmap_cells(P, P.model_names)
print("\n".join(trust_report.gradcam_sentences(gradcam, cells)))
notebook.glue_values(trust_report.recap_values(calibration, errors, gradcam))

# %%
per_patient = trust_report.gradcam_patients(heatmap_scores)
fig = px.scatter(per_patient, x="baseline", y="energy_inside", color="model",
                 size="tumor_slices", hover_data=["patient_id", "pointing"],
                 title="Energy inside the tumor per patient against the "
                       f"baseline ({DATASET})")
fig.add_shape(type="line", x0=0, y0=0, x1=per_patient["baseline"].max(),
              y1=per_patient["baseline"].max(),
              line=dict(dash="dot", color="grey"))
fig.update_layout(margin=dict(t=90))
fig.show()

# %% [markdown]
# The heatmaps themselves, for the patients where each classifier's heatmaps point best
# and worst (their mean energy inside the tumor), at the patient's slice with the largest
# tumor, with the true mask's outline in red.

# %%
trust_report.heatmap_overlay_figure(
    P, manifest, per_patient,
    f"Grad-CAM heatmaps, best and worst patient per model ({DATASET})"
).show()

# %% [markdown]
# ## Recap
#
# - **Calibration:** temperature scaling, fitted on inner-validation patients, lowered the
#   ECE of {glue:text}`scaling_lowered` of the {glue:text}`n_scaled` models it was fitted for;
#   it changes no call, only the probabilities.
# - **Referral:** for {glue:text}`flagging_models` of {glue:text}`n_flagged_models` models
#   some uncertainty measure flags the model's own errors better than chance (its AUROC
#   interval above 0.5); only such a measure makes handing the least sure slices to a
#   radiologist worth it.
# - **Grad-CAM:** {glue:text}`pointing_models` of {glue:text}`n_heatmap_models` classifiers'
#   heatmaps have their maximum inside the tumor more often than a heatmap that knows
#   nothing (the paired interval of their difference lies above 0).

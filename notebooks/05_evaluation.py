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
# # Evaluation: confusion matrices, metrics with intervals, and the leakage experiment
#
# <a href="https://colab.research.google.com/github/brainlib-study/resnet-lgg-book/blob/main/notebooks/05_evaluation.ipynb" target="_blank"><img src="https://colab.research.google.com/assets/colab-badge.svg" alt="Open In Colab"/></a>
#
# The paper reports one confusion matrix per model (its Tables II-III, Figs. 7-8) and
# four percentages (Table IV), with no interval around any of them and no word on which
# slices were scored. This chapter reads the predictions table of the training chapter
# and reports the same quantities, each with a confidence interval, three ways: pooled
# over slices, per fold, and per patient. Every slice is scored exactly once, by the model
# of the one fold that held its patient out, so no number below comes from a slice the
# scoring model was trained on.
#
# The main comparison uses the patient folds and the true labels. The last section uses the
# other experiments of the training chapter: the paper's slice split, and both splits with
# shuffled training labels, to measure what a slice split does to the numbers.

# %% tags=["remove-cell"]
# Set-up on Colab only: install brainlib from the repository (Colab keeps its TensorFlow).
import subprocess
import sys

if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "git+https://github.com/brainlib-study/resnet-lgg-book@main"], check=True)

# %% tags=["parameters"]
# Parameters (papermill): the same as the training chapter's, so a study run finds the
# predictions it trained. These defaults are the quick reference run on the phantom; the
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
import numpy as np
import pandas as pd
import plotly.express as px

import brainlib as bl

glue_value = bl.study.glue_value  # pastes a computed value into the book's prose
bl.study.notebook_setup()
settings = dict(data_source=data_source, phantom_patients=phantom_patients, seed=seed,
                n_folds=n_folds, test_fraction=test_fraction, image_size=image_size,
                epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                lr_decay=lr_decay, augment=augment, weights=weights,
                standardize_features=standardize_features, models=models,
                folds_to_run=folds_to_run, leakage_experiment=leakage_experiment)
manifest = bl.study.prepare_manifest(run_dir, **settings)
DATASET = manifest["dataset"].iloc[0].upper()
MODEL_A, MODEL_B = [m.strip() for m in models.split(",")][:2]  # differences are A - B
N_RESAMPLES = 2000  # bootstrap resamples of each interval in this chapter
glue_value("dataset", DATASET)
print(f"dataset: {DATASET}; {manifest['patient_id'].nunique()} patients, {len(manifest)} "
      f"slices; {n_folds} patient folds; models {MODEL_A} and {MODEL_B}")

# %% tags=["nbval-ignore-output"]
# Reads the finished predictions when the training chapter has run; trains them otherwise.
predictions = bl.study.train_models(run_dir, progress="log", **settings)

# %% [markdown]
# Every number below is on the **{glue:text}`dataset`** dataset. PHANTOM numbers come from
# the synthetic dataset that lets the book run offline: they show that the evaluation
# works, and say nothing about real tumors.
#
# ## What was scored
#
# One row per experiment: the folds, the slices scored (each once), and the patients they
# come from. Slices of one patient look alike and share the patient's anatomy and scanner,
# so the patient count, not the slice count, is the sample size that limits how far any
# result generalises.

# %%
# NBVAL_CHECK_OUTPUT
main = predictions[(predictions["scheme"] == "patient") & (predictions["control"] == "none")]
predictions.groupby(["scheme", "control", "model"]).agg(
    folds=("fold", "nunique"), slices=("y_true", "size"), tumor_slices=("y_true", "sum"),
    patients=("patient_id", "nunique"))

# %% [markdown]
# ## Confusion matrices (the paper's Tables II-III, Figs. 7-8)
#
# Orientation, stated because the paper does not state it: **rows are the true class,
# columns the predicted class**, tumor first. So the first row holds the tumor slices found
# (true positives) and missed (false negatives); the second row the false alarms (false
# positives) and the correct "no tumor" calls (true negatives). A slice is called tumor when
# its predicted tumor probability is above 0.5. Slices of all folds are pooled.

# %%
# NBVAL_CHECK_OUTPUT
counts = {m: bl.metrics.confusion_counts(rows["y_true"], rows["y_pred"])
          for m, rows in main.groupby("model")}
pd.concat({m: c.to_frame() for m, c in counts.items()}, names=["model"])

# %%
for model, c in counts.items():
    bl.plots.confusion_matrix_figure(
        c, title=f"{model}, patient folds: rows true, columns predicted ({DATASET})").show()

# %% [markdown]
# ## The metrics table (the paper's Table IV), with intervals
#
# Accuracy, precision, recall (= sensitivity), specificity and F1 follow eqs. (30)-(35) of
# the paper from the pooled confusion matrix; AUC is the area under the ROC curve of the
# tumor probability. Each comes with two 95% intervals:
#
# - **slices resampled**: a bootstrap that treats every slice as an independent draw (BCa;
#   DeLong's variance for AUC). It is what most papers would report, and it is too narrow,
#   because slices of one patient succeed and fail together;
# - **patients resampled**: a bootstrap that draws whole patients with all their slices
#   (BCa; Obuchowski's patient-clustered DeLong variance for AUC). This is the honest one:
#   a new study would sample new patients, not new slices of the same patients.
#
# The last column repeats the paper's Table IV for reference; it was computed on real
# slices with a slice split (see the audit in the next chapter), so it is not comparable
# with these numbers.

# %%
# NBVAL_CHECK_OUTPUT
paired = bl.stats.pair_predictions(main, MODEL_A, MODEL_B)
by_slice = bl.stats.bootstrap_metrics(paired, n_resamples=N_RESAMPLES, seed=seed).to_frame()
by_patient = bl.stats.bootstrap_metrics(paired, cluster="patient_id", n_resamples=N_RESAMPLES,
                                        seed=seed).to_frame()


def interval(estimate, low, high):
    return f"{estimate:.3f} [{low:.3f}, {high:.3f}]"


rows = []
for (metric, model), s, p in zip(by_slice[["metric", "model"]].itertuples(index=False),
                                 by_slice.itertuples(), by_patient.itertuples()):
    if " - " in model:
        continue  # differences between the models are the next chapter's subject
    printed = bl.audit.PRINTED_TABLE_IV.get(model, {}).get(metric, np.nan)
    rows.append({"model": model, "metric": metric,
                 "slices resampled": interval(s.estimate, s.ci_low, s.ci_high),
                 "patients resampled": interval(p.estimate, p.ci_low, p.ci_high),
                 "paper (%)": printed})
for model, side in ((MODEL_A, "a"), (MODEL_B, "b")):
    plain = bl.stats.auc_interval(paired["y_true"], paired[f"p_tumor_{side}"])
    clustered = bl.stats.auc_interval(paired["y_true"], paired[f"p_tumor_{side}"],
                                      cluster=paired["patient_id"])
    rows.append({"model": model, "metric": "auc",
                 "slices resampled": interval(plain.auc, plain.ci_low, plain.ci_high),
                 "patients resampled": interval(clustered.auc, clustered.ci_low,
                                                clustered.ci_high),
                 "paper (%)": np.nan})
table_iv = pd.DataFrame(rows)
table_iv["order"] = table_iv["model"].map({MODEL_A: 0, MODEL_B: 1})
table_iv.sort_values("order", kind="stable").drop(columns="order").set_index(["model", "metric"])

# %%
widths = pd.DataFrame({
    "slices": (by_slice["ci_high"] - by_slice["ci_low"]).to_numpy(),
    "patients": (by_patient["ci_high"] - by_patient["ci_low"]).to_numpy()})
widths = widths[~by_slice["model"].str.contains(" - ").to_numpy()]
width_ratio = float(np.median(widths["patients"] / widths["slices"]))
glue_value("width_ratio", width_ratio)
print(f"median ratio of interval widths, patients resampled / slices resampled: "
      f"{width_ratio:.2f}")

# %% [markdown]
# Resampling patients instead of slices changes the median interval width by a factor of
# {glue:text}`width_ratio:.2f`. A factor above one is the cost of admitting that the
# slices of a patient are not independent evidence; with few patients it can also fall
# below one by chance, since an interval from a handful of clusters is itself noisy.
#
# ### Per fold
#
# Each fold's held-out patients scored by the model that never saw them. The spread
# between folds shows how much the result depends on which patients happen to be held out.
# If the paper's "mean accuracy" is a mean over its folds, it is the mean of such a column.

# %%
# NBVAL_CHECK_OUTPUT
per_fold = bl.metrics.fold_metrics(main)
shown = ["model", "fold", "n", "accuracy", "precision", "recall", "specificity", "f1", "auc"]
per_fold[shown].round(3)

# %%
# NBVAL_CHECK_OUTPUT
fold_summary = per_fold.groupby("model")[["accuracy", "auc"]].agg(["mean", "std", "min", "max"])
fold_summary.round(3)

# %%
long = per_fold.melt(id_vars=["model", "fold"], value_vars=["accuracy", "recall",
                                                             "specificity", "auc"],
                     var_name="metric", value_name="value")
fig = px.strip(long, x="metric", y="value", color="model", hover_data=["fold"],
               title=f"Metrics per patient fold ({DATASET})")
fig.update_traces(marker_size=10)
fig.show()

# %% [markdown]
# ### Per patient
#
# Two ways to make the patient the unit.
#
# **The patient rule.** A patient counts as tumor-positive when any of its slices has a
# tumor, is called positive when any slice is called tumor, and its score for the ROC is its
# highest slice probability. This is the clinical question "does this scan show a tumor?".
# Its weakness is plain in the counts: the rule needs tumor-free patients to measure
# specificity, and the table below says how many there are.

# %%
# NBVAL_CHECK_OUTPUT
per_patient_rule = bl.metrics.patient_metrics(main)
n_patients = main["patient_id"].nunique()
tumor_free = int((main.groupby("patient_id")["y_true"].max() == 0).sum())
glue_value("n_patients", n_patients)
glue_value("tumor_free", tumor_free)
print(f"{n_patients} patients, {tumor_free} without any tumor slice")
per_patient_rule[["model", "n", "tp", "fp", "fn", "tn", "accuracy", "recall",
                  "specificity", "auc", "note"]].round(3)

# %% [markdown]
# Tumor-free patients here: {glue:text}`tumor_free` of {glue:text}`n_patients`. The
# patient rule's specificity and AUC rest on that many negatives: read them as anecdotes,
# not estimates. In a collection of glioma patients, tumor-free patients are rare by design,
# so this rule mostly measures sensitivity.
#
# **Per-patient slice results.** The other view scores each patient's own slices: how many
# of its tumor slices were found (recall), how many of its tumor-free slices raised a false
# alarm, and its slice accuracy. Averaging these over patients weighs every patient equally,
# where the pooled table weighs patients by their slice counts.

# %%
# NBVAL_CHECK_OUTPUT
per_patient = bl.metrics.metrics_table(main, by=("model", "patient_id"))
per_patient["tumor_slices"] = per_patient["tp"] + per_patient["fn"]
table = per_patient.groupby("patient_id")[["n", "tumor_slices"]].first()
for model in (MODEL_A, MODEL_B):
    own = per_patient[per_patient["model"] == model].set_index("patient_id")
    table[f"{model} accuracy"] = own["accuracy"].round(3)
    for count, label in (("fn", "missed"), ("fp", "false alarms")):
        table[f"{model} {label}"] = own[count]
table

# %%
# NBVAL_CHECK_OUTPUT
macro = per_patient.groupby("model")["accuracy"].agg(["mean", "min", "max"]).round(3)
macro.columns = ["mean of per-patient accuracy", "worst patient", "best patient"]
macro["pooled slice accuracy"] = pd.Series(
    {m: (c.tp + c.tn) / c.n for m, c in counts.items()}).round(3)
missed = per_patient[(per_patient["tumor_slices"] > 0) & (per_patient["tp"] == 0)]
for model in (MODEL_A, MODEL_B):
    names = missed.loc[missed["model"] == model, "patient_id"].tolist()
    print(f"{model}: patients with a tumor and not one tumor slice found: "
          f"{len(names)} {names if names else ''}")
worst = per_patient.sort_values(["accuracy", "patient_id"]).groupby("model").head(1)
for r in worst.itertuples():
    print(f"{r.model}: worst patient {r.patient_id}, slice accuracy {r.accuracy:.3f}: "
          f"{r.fn} of its {r.tumor_slices} tumor slices missed, {r.fp} of its "
          f"{r.n - r.tumor_slices} tumor-free slices flagged")
macro

# %%
fig = px.scatter(per_patient, x="patient_id", y="accuracy", color="model", size="n",
                 hover_data=["tp", "fn", "fp", "tn"],
                 title=f"Slice accuracy per patient (marker size: slices) ({DATASET})")
fig.update_xaxes(tickangle=45)
fig.show()

# %% [markdown]
# ## ROC curves
#
# The confusion matrices fix one threshold (0.5); the ROC curve shows every threshold, the
# share of tumor slices found against the share of tumor-free slices flagged. The shaded
# band is a pointwise 95% bootstrap band drawn by resampling patients, so it shows how much
# the curve could move with another sample of patients of this kind.

# %%
curves = {m: bl.metrics.roc_curve(rows["y_true"], rows["p_tumor"])
          for m, rows in main.groupby("model")}
bands = {m: bl.stats.roc_confidence_band(rows["y_true"], rows["p_tumor"],
                                         cluster=rows["patient_id"], n_resamples=500, seed=seed)
         for m, rows in main.groupby("model")}
bl.plots.roc_figure(curves, bands, title=f"ROC curves, patient folds, "
                                         f"bands resample patients ({DATASET})").show()

# %% [markdown]
# ## The leakage experiment
#
# The paper split slices at random, so slices of one patient sit on both sides of the split
# and the model is tested on near-copies of its training images. The training chapter
# trained both models twice more on the same slices: once on the paper's slice folds, and,
# as a control, on each split with the training labels shuffled. A model trained on shuffled
# labels has learned nothing about tumors, so it must score at chance: AUC 0.5, and accuracy
# no better than always answering the majority class. A control clearly above chance would
# point to a leak in the evaluation itself.
#
# Both splits score every slice once, so the two splits are compared on the same slices.
# Intervals resample patients.

# %%
# NBVAL_CHECK_OUTPUT
prevalence = float(main["y_true"].mean())
majority_rate = max(prevalence, 1 - prevalence)
glue_value("majority_rate", majority_rate)
rows = []
for (scheme, control), experiment in predictions.groupby(["scheme", "control"]):
    pair = bl.stats.pair_predictions(experiment, MODEL_A, MODEL_B)
    metrics = bl.stats.bootstrap_metrics(pair, cluster="patient_id", n_resamples=N_RESAMPLES,
                                         seed=seed).to_frame()
    aucs = bl.stats.cluster_bootstrap_auc(pair, n_resamples=N_RESAMPLES, seed=seed).to_frame()
    both = pd.concat([metrics[metrics["metric"] == "accuracy"], aucs])
    for r in both[~both["model"].str.contains(" - ")].itertuples():
        rows.append({"split": scheme, "labels": "true" if control == "none" else "shuffled",
                     "model": r.model, "metric": r.metric, "estimate": r.estimate,
                     "ci_low": r.ci_low, "ci_high": r.ci_high})
leakage = pd.DataFrame(rows)
leakage["chance"] = np.where(leakage["metric"] == "auc", 0.5, majority_rate)
print(f"chance: AUC 0.5; accuracy {majority_rate:.3f} by always answering the majority class")
leakage_table = leakage.assign(value=[interval(*v) for v in
                                      leakage[["estimate", "ci_low", "ci_high"]].to_numpy()])
leakage_table.pivot(index=["labels", "split"], columns=["metric", "model"], values="value")

# %%
leakage["experiment"] = leakage["split"] + " split, " + leakage["labels"] + " labels"
metric_order = ["accuracy", "auc"]
fig = px.scatter(leakage, x="experiment", y="estimate", color="model", facet_col="metric",
                 category_orders={"metric": metric_order},
                 error_y=leakage["ci_high"] - leakage["estimate"],
                 error_y_minus=leakage["estimate"] - leakage["ci_low"],
                 title=f"Slice split vs patient split, and the shuffled-label control; "
                       f"95% CIs resample patients ({DATASET})")
for column, metric in enumerate(metric_order, start=1):
    level = 0.5 if metric == "auc" else majority_rate
    fig.add_hline(y=level, line_dash="dot", line_color="grey", col=column, row=1,
                  annotation_text="chance", annotation_position="bottom right")
fig.update_traces(marker_size=10)
fig.update_layout(width=900, height=480)
fig.show()

# %% [markdown]
# How much does the slice split inflate the numbers? The same slices are scored under both
# splits, so the inflation is a paired difference, slice split minus patient split, and its
# interval resamples patients. Below, each model's trained-on-slices predictions play the
# part of "model a" and its patient-fold predictions that of "model b" in the paired
# bootstrap.

# %%
# NBVAL_CHECK_OUTPUT
rows = []
for model in (MODEL_A, MODEL_B):
    own = predictions[(predictions["model"] == model) & (predictions["control"] == "none")]
    by_split = own.assign(model=own["scheme"], scheme="both", fold=0)
    pair = bl.stats.pair_predictions(by_split, "slice", "patient")
    metrics = bl.stats.bootstrap_metrics(pair, cluster="patient_id", n_resamples=N_RESAMPLES,
                                         seed=seed).differences()
    aucs = bl.stats.cluster_bootstrap_auc(pair, n_resamples=N_RESAMPLES, seed=seed).differences()
    for r in pd.concat([metrics[metrics["metric"] == "accuracy"], aucs]).itertuples():
        rows.append({"model": model, "metric": r.metric, "slice_minus_patient": r.estimate,
                     "ci_low": r.ci_low, "ci_high": r.ci_high})
inflation = pd.DataFrame(rows)
inflation.round(3)

# %% [markdown]
# In words, computed from the two tables above:

# %%
# NBVAL_CHECK_OUTPUT
def verdict(low, high, reference=0.0):
    if low > reference:
        return "the 95% interval lies above"
    if high < reference:
        return "the 95% interval lies below"
    return "the 95% interval includes"


for r in inflation.itertuples():
    change = r.slice_minus_patient
    direction = "raised" if change > 0 else "lowered" if change < 0 else "did not change"
    print(f"{r.model}: the slice split {direction} {r.metric} by {abs(change):.3f} "
          f"({verdict(r.ci_low, r.ci_high)} zero: {r.ci_low:+.3f} to {r.ci_high:+.3f}).")
controls = leakage[leakage["labels"] == "shuffled"]
for r in controls.itertuples():
    print(f"{r.model}, {r.split} split, shuffled labels: {r.metric} {r.estimate:.3f}; "
          f"{verdict(r.ci_low, r.ci_high, r.chance)} chance ({r.chance:.3f}).")
above = controls["ci_low"] > controls["chance"]
glue_value("controls", len(controls))
glue_value("controls_above", int(above.sum()))
print(f"{int(above.sum())} of {len(controls)} control intervals lie above chance"
      + (f": {', '.join(controls.loc[above, 'model'] + ' ' + controls.loc[above, 'split'] + ' split ' + controls.loc[above, 'metric'])}."
         if above.any() else "."))

# %% [markdown]
# How to read these lines. A slice split helps a model by letting it recognise patients it
# has already seen; the size of that help depends on how alike a patient's
# slices are and how much the model memorises, so it is measured here rather than assumed.
# On few patients the paired interval is wide, and an inflation that is real on a large
# dataset can hide inside it.
#
# The shuffled-label control checks the evaluation itself: with labels that carry no
# information, the tumor probability should rank tumor slices no better than a coin (AUC
# 0.5), and accuracy should not beat the {glue:text}`majority_rate:.3f` of always answering
# the majority class. Here {glue:text}`controls_above` of {glue:text}`controls` control
# intervals lie above chance. Two cautions in reading that count. Each interval describes
# the sampling of test patients for one trained model; it does not include the spread of
# the null itself, since one shuffle is one draw from it (a permutation test would repeat
# the shuffle many times). And with several intervals at 95%, one of them missing chance
# now and then is expected. A leak would show as a pattern: AUC above chance for every model
# and split, persisting when the shuffle is repeated with other seeds.
#
# What this chapter cannot say: whether ResNet50 is better than VGG16. Both are scored on
# the same slices, so the question needs a paired test, and the slices of a patient are not
# independent evidence. That is the next chapter.

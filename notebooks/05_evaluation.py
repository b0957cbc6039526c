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
# # Evaluation: confusion matrices, metrics with intervals, and what a slice split does
#
# <a href="https://colab.research.google.com/github/brainlib-study/resnet-lgg-book/blob/main/notebooks/05_evaluation.ipynb" target="_blank"><img src="https://colab.research.google.com/assets/colab-badge.svg" alt="Open In Colab"/></a>
#
# The paper reports one confusion matrix per model (its Tables II-III, Figs. 7-8) and
# four percentages (Table IV), with no interval around any of them and no word on which
# slices were scored. This chapter reads the predictions table of the training chapter
# and reports the same quantities, each with a confidence interval, three ways: pooled
# over slices, per test split (where there is more than one), and per patient. Every slice
# is scored exactly once, by a model that never saw its patient, so no number below comes
# from a slice the scoring model was trained on.
#
# The main comparison uses the patient split and the true labels. Where the run has them,
# the leakage section uses the other experiments of the training chapter: the paper's
# slice split, and both splits with shuffled training labels, to measure what a slice
# split does to the numbers.

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
import pandas as pd
import plotly.express as px
from IPython.display import display

import brainlib as bl
from brainlib.chapters import baselines, evaluation_report, leakage_report
from brainlib.chapters import plots, report, travel_report
from brainlib.data import external
from brainlib.measures import metrics
from brainlib.study import notebook
from brainlib.training import masks

P, manifest, DATASET = notebook.open_run(globals())
ANALYSIS = dict(n_resamples=report.PATIENT_RESAMPLES, seed=P.seed,
                analysis_dir=report.analysis_dir(P.run_dir))
MODEL_A, MODEL_B = P.model_names[:2]  # differences are A - B
SPLIT = "hold-out" if P.is_holdout else "patient folds"  # for titles
notebook.glue_values({"dataset": DATASET, "model_a": MODEL_A,
                      "model_b": MODEL_B})

# %% tags=["nbval-ignore-output"]
# Reads the finished predictions when the training chapter has run;
# trains them otherwise.
predictions = bl.study.run_models(P)
main = report.main_predictions(predictions)

# %% [markdown]
# Every number below is on the **{glue:text}`dataset`** dataset; the run card above says
# what this dataset is and what its numbers can and cannot show.
#
# ## What was scored
#
# One row per experiment: the slices scored (each once, by the one model that did not
# train on their patient), and the patients they come from. Slices of one patient look
# alike and share the patient's anatomy and scanner, so the patient count, not the slice
# count, is the sample size that limits how far any result generalises.

# %% tags=["nbval-check-output"]
report.without_single_fold(
    predictions.groupby(["scheme", "control", "model"]).agg(
        folds=("fold", "nunique"), slices=("y_true", "size"),
        tumor_slices=("y_true", "sum"), patients=("patient_id", "nunique")))

# %% [markdown]
# ## Confusion matrices (the paper's Tables II-III, Figs. 7-8)
#
# Orientation, stated because the paper does not state it: **rows are the true class,
# columns the predicted class**, tumor first. So the first row holds the tumor slices found
# (true positives) and missed (false negatives); the second row the false alarms (false
# positives) and the correct "no tumor" calls (true negatives). A slice is called tumor when
# its tumor probability is above its unit's threshold: chosen on inner validation patients
# under the validated protocol, 0.5 under the paper's. All test slices are pooled.

# %% tags=["nbval-check-output"]
counts = {m: metrics.confusion_counts(rows["y_true"], rows["y_pred"])
          for m, rows in main.groupby("model")}
pd.concat({m: c.to_frame() for m, c in counts.items()}, names=["model"])

# %%
for model, c in counts.items():
    plots.confusion_matrix_figure(
        c, title=f"{model}, {SPLIT} ({DATASET})"
                 "<br>rows true, columns predicted").show()

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
#   a new study would sample new patients, not new slices of the same patients. With few
#   patients BCa's corrections are themselves noisy, so the plain percentile interval of the
#   same patient bootstrap stands beside it (for AUC, the patient bootstrap's).
#
# The last column repeats the paper's Table IV for reference; it was computed on real
# slices with a slice split (see the audit in the next chapter), so it is not comparable
# with these numbers.

# %% tags=["nbval-check-output"]
table_iv = evaluation_report.table_iv(predictions, MODEL_A, MODEL_B,
                                         **ANALYSIS)
notebook.glue_values({"width_ratio": table_iv.width_ratio,
                      **table_iv.headline_values()})
print("median ratio of interval widths, patients resampled / "
      f"slices resampled: {table_iv.width_ratio:.2f}")
table_iv.table

# %% [markdown]
# Resampling patients instead of slices changes the median interval width by a factor of
# {glue:text}`width_ratio:.2f`. A factor above one is the cost of admitting that the
# slices of a patient are not independent evidence; with few patients it can also fall
# below one by chance, since an interval from a handful of clusters is itself noisy.
#
# ### Test set by test set
#
# In a cross-validation, each fold's held-out patients scored by the model that never saw
# them. The spread
# between folds shows how much the result depends on which patients happen to be held out.
# If the paper's "mean accuracy" is a mean over its folds, it is the mean of such a column.

# %% tags=["nbval-check-output"]
per_fold = metrics.fold_metrics(main)
many_folds = per_fold["fold"].nunique() > 1
if many_folds:
    shown = ["model", "fold", "n", "accuracy", "precision", "recall",
             "specificity", "f1", "auc"]
    display(per_fold[shown].round(3))
    display(per_fold.groupby("model")[["accuracy", "auc"]].agg(
        ["mean", "std", "min", "max"]).round(3))
else:
    print(f"Not applicable to this run (evaluation={P.evaluation}): its "
          "one test set is the pooled result above.")

# %%
if many_folds:
    long = per_fold.melt(
        id_vars=["model", "fold"],
        value_vars=["accuracy", "recall", "specificity", "auc"],
        var_name="metric", value_name="value")
    fig = px.strip(long, x="metric", y="value", color="model",
                   hover_data=["fold"],
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

# %% tags=["nbval-check-output"]
per_patient_rule = metrics.patient_metrics(main)
n_patients = main["patient_id"].nunique()
tumor_free = int((main.groupby("patient_id")["y_true"].max() == 0).sum())
tumor_free_line = evaluation_report.tumor_free_sentence(tumor_free,
                                                         n_patients)
notebook.glue_values({"n_patients": n_patients, "tumor_free": tumor_free,
                      "tumor_free_line": tumor_free_line})
print(f"{n_patients} patients, {tumor_free} without any tumor slice")
per_patient_rule[["model", "n", "tp", "fp", "fn", "tn", "accuracy", "recall",
                  "specificity", "auc", "note"]].round(3)

# %% [markdown]
# {glue:text}`tumor_free_line` In a collection of glioma patients, tumor-free patients are
# rare by design; with few of them this rule mostly measures sensitivity.
#
# Even that sensitivity is generous: under the **any-slice rule** a tumor patient whose only
# positive call is a false alarm on a tumor-free slice counts as detected. A patient is
# **found** only when one of its true tumor slices is called tumor. Both, per model:

# %% tags=["nbval-check-output"]
metrics.patient_detection(main).round(3)

# %% [markdown]
#
# **Per-patient slice results.** The other view scores each patient's own slices: how many
# of its tumor slices were found (recall), how many of its tumor-free slices raised a false
# alarm, and its slice accuracy. Averaging these over patients weighs every patient equally,
# where the pooled table weighs patients by their slice counts.

# %% tags=["nbval-check-output"]
patients = evaluation_report.patient_summary(main, [MODEL_A, MODEL_B])
patients.table

# %% tags=["nbval-check-output"]
print("\n".join(patients.lines()))
patients.macro

# %%
fig = px.scatter(patients.per_patient, x="patient_id", y="accuracy",
                 color="model", size="n",
                 hover_data=["tp", "fn", "fp", "tn"],
                 title="Slice accuracy per patient (marker size: slices) "
                       f"({DATASET})")
fig.update_xaxes(tickangle=45)
fig.show()

# %% [markdown]
# ## Two trivial baselines: where the slice lies, how much head it shows
#
# A glioma sits inside the brain, so the slices at either end of a volume seldom show one.
# A score that knows only a slice's **position** in its volume (0 at the first slice, 1 at
# the last), or the **brain area** on it (the share of the image that is head, not
# background), may then separate the classes with no pixel of the tumor learned; the
# table below says how well each does on this run's patients. Each
# turns its feature into a tumor probability by the fit patients' tumor rate in ten
# quantile bins of the feature, and follows the classifiers' protocol exactly: the same
# folds, the same fit and inner-validation patients, the same threshold rule. A classifier
# that does not beat them has not shown that it reads the tumor.

# %% tags=["nbval-check-output"]
baseline = baselines.run_baselines(P, manifest, ANALYSIS["analysis_dir"])
with_baselines = pd.concat([main, baseline], ignore_index=True)
metrics.metrics_table(with_baselines, by=("model",))[
    ["model", "n", "accuracy", "recall", "specificity", "auc"]].round(3)

# %% [markdown]
# Each classifier against each baseline on the same slices, by the paired tests of the
# next chapter: the accuracy difference with its 95% interval from the patient-cluster
# standard error, the exact McNemar test, and the AUC difference with the
# patient-clustered DeLong test.

# %% tags=["nbval-check-output"]
versus = baselines.versus_baselines(with_baselines, P.model_names)
print("\n".join(baselines.beat_sentences(versus)))
report.p_values_shown(report.joined_intervals(versus, {"95% (patients)": (
    "ci_low (patients)", "ci_high (patients)")})).round(3)

# %% [markdown]
# ## ROC curves
#
# The confusion matrices fix one threshold per unit; the ROC curve shows every threshold,
# the share of tumor slices found against the share of tumor-free slices flagged. The
# shaded band is a pointwise 95% bootstrap band drawn by resampling patients, so it shows
# how much the curve could move with another sample of patients of this kind.

# %%
curves = {m: metrics.roc_curve(rows["y_true"], rows["p_tumor"])
          for m, rows in main.groupby("model")}
bands = {m: bl.stats.roc_confidence_band(rows["y_true"], rows["p_tumor"],
                                         cluster=rows["patient_id"],
                                         n_resamples=500, seed=P.seed)
         for m, rows in main.groupby("model")}
plots.roc_figure(curves, bands,
                    title=f"ROC curves, {SPLIT}, "
                          f"bands resample patients ({DATASET})").show()

# %% [markdown]
# ## The paper's protocol beside the validated one
#
# The paper kept the model of the last epoch and called a slice tumor when its probability
# was above 0.5. The validated protocol of this book lets inner validation patients, taken
# from each training set's patients, choose the epoch and the threshold. When the run asks
# for it (`compare_protocols`, on in the `sample`, `lgg` and `full` profiles), the classifiers'
# main experiment is trained under both protocols, on the same splits, and compared here.

# %% tags=["nbval-check-output"]
if P.compare_protocols:
    both_protocols = bl.study.run_protocol_comparison(P, progress=False)
    display(evaluation_report.protocol_table(both_protocols).round(3))
else:
    print("Not run in this study (compare_protocols=false): "
          f"protocol {P.protocol} only.")

# %% [markdown]
# ## The leakage experiment
#
# The paper split slices at random, so slices of one patient sit on both sides of the split
# and the model is tested on near-copies of its training images. When a run asks for it
# (`leakage_experiment`, under patient cross-validation), the training chapter trains both
# models twice more on the same slices: once on the paper's slice folds, and, as a control,
# on each split with the training labels shuffled. A model trained on shuffled labels has
# learned nothing about tumors, so it must score at chance: AUC 0.5, and accuracy no better
# than always answering the majority class. A control clearly above chance would point to a
# leak in the evaluation itself. Intervals resample patients. Whether this run did:

# %% tags=["nbval-check-output"]
leakage = leakage_report.leakage_table(predictions, [MODEL_A, MODEL_B],
                                          **ANALYSIS)
if leakage.available:
    print(leakage.title(), *leakage.notes(), sep="\n")
    display(leakage.table)
else:
    print(leakage_report.not_run_line(P.leakage_experiment, P.evaluation))

# %%
if leakage.available:
    plots.leakage_figure(
        leakage.frame, leakage.majority_rate,
        title=f"Slice split vs patient split, and the shuffled-label "
              f"control; 95% CIs resample patients ({DATASET})").show()

# %% tags=["nbval-check-output"]
if leakage.available:
    notebook.show_markdown(
        "How much does the slice split inflate the numbers? The same slices "
        "are scored under both splits, so the inflation is a paired "
        "difference, slice split minus patient split, on the slices both "
        "splits scored, and its interval resamples patients; then the "
        "verdicts in words.")
    inflation = leakage_report.leakage_inflation(
        predictions, [MODEL_A, MODEL_B], **ANALYSIS)
    print(inflation.title(), *inflation.notes(), sep="\n")
    display(inflation.frame.round(3))
    print("\n".join(leakage_report.leakage_sentences(leakage, inflation)))
    controls = leakage.controls
    n_above = int(controls["above_chance"].sum())
    controls_line = (f"Here {n_above} of {len(controls)} control "
                     "intervals lie above chance.")
else:  # said once, above
    controls_line = "This run trained no shuffled-label control."
notebook.glue_value("controls_line", controls_line)

# %% tags=["nbval-check-output"]
if leakage.available:  # how to read the lines above, where there are any
    notebook.show_markdown(
        "How to read these lines. A slice split helps a model by letting "
        "it recognise patients it has already seen; the size of that help "
        "depends on how alike a patient's slices are and how much the "
        "model memorises, so it is measured here rather than assumed. On "
        "few patients the paired interval is wide, and an inflation that "
        "is real on a large dataset can hide inside it.\n\nThe "
        "shuffled-label control checks the evaluation itself: with labels "
        "that carry no information, the tumor probability should rank "
        "tumor slices no better than a coin (AUC 0.5), and accuracy should "
        f"not beat the {leakage.majority_rate:.3f} of always answering the "
        f"majority class. {controls_line} Two cautions in reading such a "
        "count. Each interval describes the sampling of test patients for "
        "one trained model; it does not include the spread of the null "
        "itself, since one shuffle is one draw from it (a permutation test "
        "would repeat the shuffle many times). And with several intervals "
        "at 95%, one of them missing chance now and then is expected. A "
        "leak would show as a pattern: AUC above chance for every model "
        "and split, persisting when the shuffle is repeated with other "
        "seeds.")

# %% [markdown]
# What this chapter cannot say: whether ResNet50 is better than VGG16. Both are scored on
# the same slices, so the question needs a paired test, and the slices of a patient are not
# independent evidence. That is the next chapter.

# %% [markdown]
# ## Does it travel?
#
# Cross-validation asks how well the recipe does on patients like these. A hospital asks
# another question: does it still work on scans from a hospital it never saw? When the run
# asks for it (`institution_holdout`), every model, the U-Net included, is trained once per
# institution on the other institutions, through the same runner and protocol, and tested
# on that institution's patients. Intervals take the patient as the unit (proportions: the
# patient-cluster standard error; AUC: the clustered DeLong interval); Dice is the mean over
# the institution's patients with a tumor. The second table sets the pooled hold-out beside
# the cross-validation on the same slices: a negative difference is what moving to an unseen
# institution costs.

# %% tags=["nbval-check-output"]
if P.runs_institution_holdout:
    travelled, travel_folders = bl.study.run_institution_holdout(
        P, progress=False)
    by_fold = external.institution_folds(manifest)
    unet_dice = masks.evaluate_run(
        travel_folders["unet"], by_fold).patients
    by_institution = travel_report.institution_table(
        travelled, external.institution_of_fold(by_fold), unet_dice)
    print("\n".join(travel_report.travel_sentences(by_institution)))
    display(travel_report.display_table(by_institution))
    cross_validated = bl.study.run_models(P, bl.study.all_models(P),
                                          progress=False)
    display(travel_report.travel_gap(cross_validated, travelled).round(3))
elif P.evaluation == "institution":
    print("This run's own folds are institutions: every result above "
          "is already on an institution the model never saw.")
elif P.is_holdout:
    print("Not run in this study: a hold-out run tests once on its own "
          "test folder, not on one institution at a time.")
else:
    print("Not run in this study (institution_holdout=false).")

# %% [markdown]
# ## Recap
#
# - Scored on patients no unit saw in training, {glue:text}`model_a` has accuracy
#   {glue:text}`a_accuracy` and AUC {glue:text}`a_auc`; {glue:text}`model_b` has
#   {glue:text}`b_accuracy` and {glue:text}`b_auc` (95% intervals, patients resampled).
# - Counting patients instead of slices as the sample changes the intervals' width by a
#   median factor of {glue:text}`width_ratio:.2f`; {glue:text}`tumor_free` of the
#   {glue:text}`n_patients` test patients are tumor-free, the negatives a patient-level
#   specificity rests on.
# - The shuffled-label controls test the pipeline for leaks. {glue:text}`controls_line`

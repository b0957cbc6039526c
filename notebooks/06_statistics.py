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
# # Statistical validation: is ResNet50 really better than VGG16?
#
# <a href="https://colab.research.google.com/github/brainlib-study/resnet-lgg-book/blob/main/notebooks/06_statistics.ipynb" target="_blank"><img src="https://colab.research.google.com/assets/colab-badge.svg" alt="Open In Colab"/></a>
#
# The paper's claim is a comparison: ResNet50 beats VGG16. Its abstract promises hypothesis
# tests and Bayesian inference of that improvement, but its results section gives two
# confusion matrices and no test. This chapter runs the tests on this study's predictions,
# and then audits the paper's own tables, which needs no training at all.
#
# Both models score the same slices, so every comparison here is **paired**: a slice that is
# hard for one model tends to be hard for the other, and ignoring that wastes evidence.
# And slices come from patients: a patient's slices share anatomy, scanner and tumor, so
# they succeed and fail together. Each method below therefore comes in two forms where it
# can, one that treats slices as independent (what a slice-level paper would compute) and
# one that takes the patient as the unit (what generalises to new patients). With many
# patients the patient-level form is usually the more cautious of the two. With few, its
# standard error is estimated from a handful of per-patient numbers, noisy and often too
# small, so it can come out *more* confident than the slice-level one; there the exact
# sign-flip test over patients, which needs no large-sample approximation, is the one to
# read (the primary result below says which case this run is).

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
from IPython.display import display

import brainlib as bl
from brainlib.chapters import comparison_report, plots, report, runcard
from brainlib.config import params
from brainlib.study import notebook

P, manifest, DATASET = notebook.open_run(globals())
ROPE = params.EQUIVALENCE_MARGIN  # fixed before any run: +-1 point
CARD = runcard.run_card(P, manifest)
CLAIM_TESTABLE = CARD.can_test_paper_claim
MODEL_A, MODEL_B = P.model_names[:2]  # differences are A - B
glue_value = notebook.glue_value  # pastes a value into the book's prose
notebook.glue_values({"dataset": DATASET, "model_a": MODEL_A,
                      "model_b": MODEL_B, "rope": ROPE})

# %% tags=["nbval-ignore-output"]
# Reads the finished predictions when the training chapter has run;
# trains them otherwise.
predictions = bl.study.run_models(P)
comparison = comparison_report.compare_models(
    predictions, MODEL_A, MODEL_B, rope=ROPE,
    n_resamples=report.PATIENT_RESAMPLES, seed=P.seed,
    analysis_dir=report.analysis_dir(P.run_dir))

# %% [markdown]
# Every result of the first part is on the **{glue:text}`dataset`** dataset (the run card
# above says what its results can and cannot show). The second part, the audit of the
# paper's tables, uses only the numbers printed in the paper.
#
# ## Part 1: the two models on this study's predictions
#
# The comparison uses the main experiment (true labels): every slice is scored once, by
# the model that did not train on its patient. Pairing joins the two models' rows slice
# by slice and checks that they agree on the truth.
#
# ### The primary question, declared before the results
#
# One question decides this chapter: **is slice accuracy different between
# {glue:text}`model_a` and {glue:text}`model_b`, with patients as the unit?** Its estimate
# is the paired difference in pooled accuracy; its standard error and bootstrap resample
# patients, since a patient's slices err together. Beside it stands the smallest
# difference this run could detect (80% power, two-sided 5%), computed from that standard
# error, and the paper's claimed 1.1 points. Every other test below is secondary: it
# describes the same comparison from another side, and Holm's correction runs across them.

# %% tags=["nbval-check-output"]
glue_value("n_slices", comparison.n_slices)
glue_value("n_patients", comparison.n_patients)
primary = bl.chapters.primary.primary_endpoint(
    comparison.paired, n_resamples=report.PATIENT_RESAMPLES, seed=P.seed,
    claim_testable=CLAIM_TESTABLE)
print("\n".join(primary.sentences()))
primary.to_frame().round(4)

# %% [markdown]
# The same question patient by patient: each patient's slice accuracy under both models,
# how many patients each model serves better, the sign test on those counts and the
# Wilcoxon signed-rank test on the per-patient differences.

# %% tags=["nbval-check-output"]
per_patient = bl.chapters.primary.per_patient_differences(comparison.paired)
print(per_patient.summary())
per_patient.to_frame().round(3)

# %% [markdown]
# ### Secondary: the paired table
#
# How often each model is right where the other is wrong, slice by slice.

# %% tags=["nbval-check-output"]
print(comparison.title())
comparison.counts

# %% [markdown]
# ### Secondary: McNemar's test
#
# **The question:** on the slices where the two models disagree, is one of them right more
# often than a coin flip would make it? Slices both models get right, or both get wrong, say
# nothing about which is better, so the test uses only the discordant counts: *b*, slices
# {glue:text}`model_a` gets right and {glue:text}`model_b` wrong, and *c*, the reverse.
# Under "equally accurate", *b* is Binomial(*b* + *c*, 1/2).
#
# Four versions: the **exact** binomial test; the **mid-p** version, which counts the
# observed split one half and is less conservative; the **chi-square** approximation
# (*b* - *c*)² / (*b* + *c*); and the same with Edwards' **continuity correction**. The
# difference in accuracy comes with Newcombe's interval for paired proportions.

# %% tags=["nbval-check-output"]
paired = comparison.paired  # one row per slice that both models scored
mcnemar = bl.stats.mcnemar_test(paired, method="exact")
for name in ("b", "c", "pvalue", "difference", "ci_low", "ci_high",
             "accuracy_a", "accuracy_b"):
    glue_value(f"mcnemar_{name}", float(getattr(mcnemar, name)))
# the difference and its interval are the same on each row: in the text
methods = bl.stats.mcnemar_methods(paired)
report.p_values_shown(methods[["method", "b", "c", "n", "statistic",
                               "pvalue"]].round(4), digits=4)

# %% [markdown]
# {glue:text}`model_a` was right on {glue:text}`mcnemar_b:.0f` slices that
# {glue:text}`model_b` got wrong, and wrong on {glue:text}`mcnemar_c:.0f` that it got right:
# an accuracy difference of {glue:text}`mcnemar_difference:+.3f` (95% CI
# {glue:text}`mcnemar_ci_low:+.3f` to {glue:text}`mcnemar_ci_high:+.3f`), exact p =
# {glue:text}`mcnemar_pvalue:.3g`. This p-value treats the {glue:text}`n_slices` slices as
# {glue:text}`n_slices` independent trials. They are {glue:text}`n_patients` patients'
# worth of evidence, and slices of a patient tend to err together, which makes a
# slice-level p-value too small. So if even this p-value is large, no difference was
# detected (which is not evidence that there is none); if it is small, the patient-level
# methods below decide, read with the number of patients they rest on.
#
# ### McNemar with the patient as the unit
#
# Two clustered versions keep McNemar's question and count patients: **Durkalski et al.
# (2003)** put the spread of the per-patient discordance, the sum over patients of
# (*b*<sub>k</sub> - *c*<sub>k</sub>)² on each patient's own share of slices, in the
# denominator; **Obuchowski (1998)** compares the two marginal proportions with a variance
# from the patient totals and a *K*/(*K* - 1) factor for *K* patients. Both are chi-square
# with one degree of freedom under "equally accurate"; with one slice per patient Durkalski's
# is the ordinary chi-square McNemar (tested).

# %% tags=["nbval-check-output"]
clustered_mcnemar = bl.stats.clustered_mcnemar_methods(paired)
for row in clustered_mcnemar.itertuples():
    glue_value(f"mcnemar_{row.method}_p", float(row.pvalue))
report.p_values_shown(clustered_mcnemar[[
    "method", "unit", "b", "c", "n", "statistic", "pvalue"]].round(4),
    digits=4)

# %% [markdown]
# Slice-level exact p = {glue:text}`mcnemar_exact_p:.3g`; with the patient as the unit,
# Durkalski p = {glue:text}`mcnemar_durkalski_p:.3g` and Obuchowski p =
# {glue:text}`mcnemar_obuchowski_p:.3g`. The gap between the slice-level and the patient-level
# p-values is what counting correlated slices as independent trials costs.
#
# ### Bootstrap intervals: slices vs patients
#
# **The question:** how far could each metric, and the difference between the models, move
# if the study were repeated on a new sample? The bootstrap answers by resampling the data
# and recomputing. Resampling **slices** answers for a new sample of slices from the same
# patients; resampling **patients** with all their slices answers for new patients, which is
# what a claim about brain MRI needs. Both models are recomputed on the same resample, so
# the difference keeps its pairing. Intervals are BCa (bias-corrected and accelerated),
# falling back to percentiles where BCa is undefined (the `ci_method` column says which).
# `bl.stats.bootstrap_metrics` resamples slices by default and patients with
# `cluster="patient_id"`.

# %% tags=["nbval-check-output"]
by_slice = bl.stats.bootstrap_metrics(
    paired, n_resamples=report.SLICE_RESAMPLES, seed=P.seed)
by_patient = bl.stats.bootstrap_metrics(
    paired, cluster="patient_id", n_resamples=report.PATIENT_RESAMPLES,
    seed=P.seed)
print(by_slice.title(), by_patient.title(), sep="\n")
comparison_report.intervals_table(by_slice.to_frame(),
                                  by_patient.to_frame()).round(3)

# %% [markdown]
# The AUC is resampled by patients in the same way (`bl.stats.cluster_bootstrap_auc`, in
# the DeLong section below). With few patients BCa's corrections are themselves noisy;
# chapter 5 gives the plain percentile limits of the same patient bootstrap
# (`method="percentile"`) beside each BCa interval.

# %%
for name in ("estimate", "ci_low", "ci_high"):
    glue_value(f"boot_accuracy_{name}",
               float(comparison.accuracy_patients[name]))
plots.forest_figure(
    comparison.differences.sort_values(["metric", "unit"]),
    label="label", rope=ROPE,
    title=f"{MODEL_A} - {MODEL_B}, 95% bootstrap CIs ({DATASET})").show()

# %% [markdown]
# Each row is a difference {glue:text}`model_a` minus {glue:text}`model_b`; a bar that
# crosses the dotted zero line is a difference the data cannot tell from none, and the grey
# band is the ROPE of ±{glue:text}`rope:.2f`, differences too small to matter in practice.
# Resampling patients, the accuracy difference is {glue:text}`boot_accuracy_estimate:+.3f`
# (95% CI {glue:text}`boot_accuracy_ci_low:+.3f` to {glue:text}`boot_accuracy_ci_high:+.3f`).
# Where the patient bars are the wider ones, that extra width is the price of counting
# patients, not slices.
#
# ### Bayesian posteriors
#
# The paper's eq. (13) is Bayes' rule, and its abstract promises Bayesian inference of
# uncertainty. Three posteriors, each with its prior stated.
#
# **Each model alone (Beta-Binomial).** Accuracy, sensitivity, specificity and precision
# are each a proportion of their own denominator; with a uniform Beta(1, 1) prior the
# posterior is Beta(1 + successes, 1 + failures). Like McNemar, it treats slices as
# independent trials, so its intervals are too narrow for patients.

# %% tags=["nbval-check-output"]
two_models = report.main_predictions(predictions).query(
    "model in [@MODEL_A, @MODEL_B]")
posteriors = bl.stats.posterior_table(two_models,
                                      prior=bl.stats.DEFAULT_PRIOR)
posteriors.drop(columns=["scheme", "control", "alpha", "beta"],
                errors="ignore").round(4)

# %%
plots.posterior_figure(
    comparison.beta_posteriors,
    title=f"Beta posteriors, uniform prior, "
          f"slices as independent trials ({DATASET})").show()

# %% [markdown]
# **The difference, slices paired (Dirichlet).** Each slice falls in one of four cells:
# both right, only {glue:text}`model_a` right, only {glue:text}`model_b` right, both wrong.
# With a Dirichlet(1, 1, 1, 1) prior on the four cell probabilities, the posterior of the
# accuracy difference is the difference of the two discordant cells. It gives what a
# p-value does not: the probability that {glue:text}`model_a` is the better model, and the
# probabilities that the difference lies beyond, or inside, the ROPE.
#
# **The difference, patients as the unit (Bayesian bootstrap).** Rubin's Bayesian bootstrap
# puts Dirichlet(1, ..., 1) weights on patients, so each patient's slices move together: the
# Bayesian twin of the patient bootstrap above.

# %% tags=["nbval-check-output"]
by_slices = bl.stats.paired_posterior(paired, prior=1.0, rope=ROPE,
                                     seed=P.seed)
by_patients = bl.stats.patient_paired_posterior(paired, rope=ROPE,
                                                seed=P.seed)
for name, result in (("slices", by_slices), ("patients", by_patients)):
    for field in ("p_a_better", "p_rope", "ci_low", "ci_high",
                  "mean_difference"):
        glue_value(f"posterior_{name}_{field}",
                   float(getattr(result, field)))
pd.concat([by_slices.to_frame(), by_patients.to_frame()],
          ignore_index=True).drop(columns=[
              "model_a", "model_b", "accuracy_a", "accuracy_b"]).round(3)

# %%
plots.posterior_figure(
    {"slices paired (Dirichlet)": by_slices,
     "patients (Bayesian bootstrap)": by_patients},
    rope=ROPE,
    title=f"Posterior of accuracy {MODEL_A} - {MODEL_B} ({DATASET})").show()

# %% [markdown]
# With slices as the unit, P({glue:text}`model_a` better) =
# {glue:text}`posterior_slices_p_a_better:.3f`; with patients as the unit it is
# {glue:text}`posterior_patients_p_a_better:.3f`, and the posterior puts
# {glue:text}`posterior_patients_p_rope:.3f` of its mass inside the ROPE. A probability
# near 0.5 means the data do not say which model is better; near 1 or 0, that they do; a
# large ROPE mass, that the two are practically equivalent.
#
# ### DeLong's test of the two AUCs
#
# **The question:** do the two models rank slices differently well, across all thresholds?
# The AUC is the probability that a random tumor slice gets a higher tumor probability than
# a random tumor-free one. DeLong's test compares two AUCs measured on the same slices,
# using their covariance; the **clustered** version (Obuchowski) sums each patient's
# contributions first, so correlated slices of a patient are not counted as independent.
# The patient bootstrap of the AUC difference gives a third, assumption-light interval.

# %% tags=["nbval-check-output"]
delong = bl.stats.delong_test(paired)
delong_clustered = bl.stats.delong_test(paired, cluster="patient_id")
glue_value("delong_difference", float(delong.difference))
glue_value("delong_p", float(delong.pvalue))
glue_value("delong_clustered_p", float(delong_clustered.pvalue))
glue_value("delong_se_ratio", float(delong_clustered.se / delong.se))
report.p_values_shown(comparison.auc_tests[[
    "method", "auc_a", "auc_b", "difference", "se", "pvalue", "ci_low",
    "ci_high", "n_clusters"]].round(4), digits=4)

# %% [markdown]
# The AUC difference is {glue:text}`delong_difference:+.3f`: p =
# {glue:text}`delong_p:.3g` with slices independent, p = {glue:text}`delong_clustered_p:.3g`
# clustered by patient, whose standard error is {glue:text}`delong_se_ratio:.2f` times the
# plain one.
#
# ### Test set by test set: corrected t-test and Bayesian correlated t-test
#
# **The question (for a cross-validation):** does one model win fold after fold? Each fold gives one score per model;
# their differences are the data. A plain paired t-test on them is too optimistic because
# the folds' training sets overlap, so the fold scores are correlated; Nadeau and Bengio's
# correction inflates the variance by the test/train ratio. The Bayesian correlated t-test
# (Benavoli et al.) uses the same correction and returns a Student-t posterior of the mean
# difference under a flat prior, with the probabilities of each model being better by more
# than the ROPE. With few folds, both are weak: a t distribution with that few degrees of
# freedom has heavy tails.

# %% tags=["nbval-check-output"]
lines, tables, fold_line = comparison_report.fold_section(comparison,
                                                          P.evaluation)
print(*lines, sep="\n")
display(*tables)
glue_value("fold_line", fold_line)

# %%
if fold_accuracy := comparison.fold_tests.get("accuracy"):
    plots.t_posterior_figure(fold_accuracy.bayesian, rope=ROPE, title=(
        "Bayesian correlated t-test, accuracy, "
        f"{comparison.n_folds} folds ({DATASET})"),
        label="mean accuracy difference per fold, "
              f"{MODEL_A} - {MODEL_B}").show()

# %% [markdown]
# {glue:text}`fold_line`
#
# ### Holm's correction across the secondary tests
#
# Testing several metrics gives as many chances of a false alarm. Holm's step-down procedure keeps
# the chance of any false rejection at 5% across the family: sort the p-values, multiply the
# smallest by the number of tests, the next by one fewer, and so on (never decreasing).
# Up to three families, each corrected on its own: the slice-level tests, one per metric (McNemar
# on all slices for accuracy, on the tumor slices for sensitivity, on the tumor-free slices
# for specificity; DeLong for AUC); the same four with the patient as the unit (Durkalski's
# clustered McNemar, the patient-clustered DeLong), whose p-values do not pretend the
# slices are independent; and, in a cross-validation, the fold-level corrected t-tests.

# %% tags=["nbval-check-output"]
glue_value("holm_line", comparison_report.holm_sentence(comparison))
report.p_values_shown(comparison.holm.droplevel("row").round(4), digits=4)

# %% [markdown]
# {glue:text}`holm_line`
#
# ### Secondary: how much is seed noise?
#
# One seed fixes the splits, the initial weights, the batch order and the inner validation
# draw. With `repeat_seeds` (the `sample` profile: seeds 1 and 2 besides 0; `lgg`: seed 1),
# the classifiers' main experiment is trained again with other training seeds on the same
# splits and the same frozen base (the run seed's: with ImageNet weights it could not
# differ, and with random ones keeping it leaves the features as they were): each seed
# draws the head's initial weights, its dropout, the batch order and the inner validation
# patients anew. The spread of the difference across seeds is the part of it that a reseed
# of the heads' training moves.

# %% tags=["nbval-check-output"]
if len(P.training_seeds) > 1:
    by_seed = bl.study.run_seed_repeats(P, progress=False)
    display(comparison_report.seed_spread(
        by_seed, MODEL_A, MODEL_B).round(3))
    print("\n".join(comparison_report.seed_verdict(
        by_seed, MODEL_A, MODEL_B, report.PATIENT_RESAMPLES, P.seed)))
else:
    print(f"One training seed only ({P.seed}); `repeat_seeds` adds more.")

# %% [markdown]
# ## Part 2: the audit of the paper's own tables
#
# This part needs no training: it reads the paper's printed Tables II-IV (typed once, as
# data, in `brainlib.chapters.audit`) and asks the questions a careful reader asks of them.
#
# ### Which way round are Tables II-III?
#
# The paper prints each confusion matrix with "Tumor | No Tumor" across and "Class 1 | Class
# 0" down, without saying which axis is the truth. Only one reading can be right, and the
# dataset decides: its class totals in the paper's own section 3,
# {glue:text}`dataset_tumor` tumor and {glue:text}`dataset_no_tumor` no-tumor slices, must
# be the row sums (if rows are the truth) or the column sums (if columns are).

# %% tags=["nbval-check-output"]
audit = bl.chapters.audit.audit_paper()
chosen = audit.matching_orientation
glue_value("dataset_tumor", bl.chapters.audit.DATASET_TUMOR)
glue_value("dataset_no_tumor", bl.chapters.audit.DATASET_NO_TUMOR)
glue_value("validation_fraction", bl.chapters.audit.VALIDATION_FRACTION)
glue_value("orientation", str(chosen))
print(f"reading that matches the dataset's class totals: {chosen}")
audit.totals[["model", "orientation", "tp", "fp", "fn", "tn", "n",
              "true_tumor", "true_no_tumor", "matches_dataset"]]

# %% [markdown]
# The reading that matches: **{glue:text}`orientation`**. The other would give the two
# tables different class totals, impossible for two models scored on the same slices. The
# rest of the audit uses the matching reading.
#
# ### Were training slices scored?
#
# The paper splits its slices for training and validation, holding out
# {glue:text}`validation_fraction:.0%` of them. A table of held-out predictions would count
# the validation slices only.

# %% tags=["nbval-check-output"]
coverage = audit.coverage
glue_value("paper_share", float(coverage["share_of_dataset"].min()))
glue_value("paper_validation_slices",
           float(coverage["validation_slices_at_split"].iloc[0]))
coverage

# %% [markdown]
# Each table counts {glue:text}`paper_share:.0%` of the dataset's slices, not the
# {glue:text}`paper_validation_slices:.0f` of its validation split. Two explanations fit
# that count: the training slices were scored by models that had learned them (then the
# tables measure memory, not diagnosis), or the held-out predictions of all folds of the
# paper's 8-fold cross-validation were pooled, which counts every slice exactly once too;
# the paper describes neither, and its tables cannot tell the two apart. Either way the
# split was by slice, so held-out slices have near-copies from the same patient in training
# (the previous chapter's leakage experiment measures what that does, where a run has it).
#
# ### Does Table IV follow from Tables II-III?
#
# Precision, recall, F1 and accuracy recomputed from the counts under both readings, then
# rounded half-up and truncated to the one decimal the paper prints; F1 also from the
# printed (already cut) precision and recall.

# %% tags=["nbval-check-output"]
audit.rounding

# %% tags=["nbval-check-output"]
table_iv = audit.table_iv[audit.table_iv["orientation"] == chosen].drop(
    columns="orientation")
table_iv.round(3)

# %% tags=["nbval-check-output"]
for finding in audit.findings:
    print("-", finding)
notebook.glue_values(audit.rounding_values())

# %% [markdown]
# The findings above are written by the audit from its computed values. Of the
# {glue:text}`table_iv_entries` printed entries, {glue:text}`table_iv_truncated` equal the
# value recomputed from the counts and truncated, {glue:text}`table_iv_rounded` the value
# rounded. Of the {glue:text}`f1_models` printed F1 values, {glue:text}`f1_from_counts`
# follow from the counts and {glue:text}`f1_from_printed` from the printed precision and
# recall. Discrepancies in the last digit change nothing about the claim, but they show how
# the table was made: cut rather than rounded, and in steps, not straight from the
# confusion matrices.
#
# ### Intervals on the paper's numbers
#
# Even taken at face value, a few thousand slices do not pin a percentage to one decimal
# place. Wilson and exact (Clopper-Pearson) 95% intervals, and a Beta posterior with the
# book's one default prior, the uniform Beta(1, 1), for each metric of each table, all
# treating slices as independent (so
# all too narrow for what is really a sample of patients).

# %% tags=["nbval-check-output"]
PAPER_PRIOR = bl.stats.DEFAULT_PRIOR  # uniform, as for every posterior here
paper_counts = {model: bl.chapters.audit.read_table(cells, chosen)
                for model, cells in bl.chapters.audit.PRINTED_TABLES.items()}
report.joined_intervals(
    bl.chapters.audit.paper_intervals(paper_counts, prior=PAPER_PRIOR),
    {"Wilson 95%": ("wilson_low", "wilson_high"),
     "exact 95%": ("exact_low", "exact_high"),
     "credible 95%": ("credible_low", "credible_high")}, digits=4).round(4)

# %% [markdown]
# ### What paired test results do the tables allow?
#
# McNemar needs to know which slices both models got wrong, and the paper does not say. But
# the tables bound it: within each true class, the slices both got wrong number at most the
# smaller model's error count there, and at least what the class size forces. Every
# feasible count gives one paired table, hence one p-value.

# %% tags=["nbval-check-output"]
allowed = audit.mcnemar[chosen]
print(allowed.note)
notebook.glue_values(allowed.values(prefix="paper"))
frame = allowed.to_frame()
allowed.pvalue_range().map(lambda p: f"{p:.3g}")

# %% tags=["nbval-check-output"]
frame.assign(**{m: frame[m].map(lambda p: f"{p:.3g}")
                for m in ("exact", "midp", "chi2",
                          "chi2_corrected")}).round(4)

# %%
long = frame.melt(id_vars="both_wrong",
                  value_vars=["exact", "midp", "chi2", "chi2_corrected"],
                  var_name="McNemar", value_name="p-value")
fig = px.line(long, x="both_wrong", y="p-value", color="McNemar",
              markers=True, log_y=True,
              title="McNemar p-values the paper's Tables II-III allow "
                    "(the paper's counts)",
              labels={"both_wrong": "slices both models got wrong "
                                    "(not reported)"})
fig.add_hline(y=0.05, line_dash="dot", line_color="grey",
              annotation_text="p = 0.05")
fig.update_yaxes(exponentformat="e")
fig.show()

# %% [markdown]
# Between {glue:text}`paper_both_wrong_min` and {glue:text}`paper_both_wrong_max` slices
# could have been misclassified by both models. Across that range the exact McNemar p-value runs
# from {glue:text}`paper_p_exact_min:.2g` to {glue:text}`paper_p_exact_max:.2g`, and the
# accuracy difference is {glue:text}`paper_difference:+.4f` with 95% limits no wider than
# {glue:text}`paper_ci_low:+.4f` to {glue:text}`paper_ci_high:+.4f`. These are slice-level
# numbers on slices that include training slices, so they measure how differently the two
# models fit the paper's data, not how they would fare on new patients.
#
# ## What this means for the paper's claim
#
# The sentences below are computed from the results above, so they hold whatever a run
# produces. Beside the primary result they say whether each model beats the two trivial
# baselines of chapter 5 (a slice's position in its volume, the brain area on it), by the
# same paired test with patients as the unit.

# %% tags=["nbval-check-output"]
baseline = bl.chapters.baselines.run_baselines(P, manifest,
                                      report.analysis_dir(P.run_dir))
versus = bl.chapters.baselines.versus_baselines(
    pd.concat([report.main_predictions(predictions), baseline]),
    P.model_names)
print("\n".join(comparison_report.conclusions(
    comparison, primary, audit, DATASET, can_test=CARD.can_test_line(),
    baselines=bl.chapters.baselines.baseline_verdict(versus))))

# %% [markdown]
# In plain words:
#
# - **The paper's tables cannot carry its claim.** Read the only way that matches the
#   dataset, they give an accuracy difference of {glue:text}`paper_difference:+.4f`
#   ({glue:text}`model_a` minus {glue:text}`model_b`) on the slices they count, and the
#   largest exact McNemar p-value any pairing of errors allows is
#   {glue:text}`paper_p_exact_max:.2g`. But those slices include the training slices, and
#   the split was by slice, so the tables compare how well each network fits patients it
#   has seen. A claim about diagnosing new patients needs held-out patients, and a test whose
#   unit is the patient.
# - **The gap between slice-level and patient-level answers is the lesson of this
#   chapter.** With {glue:text}`n_slices` slices from {glue:text}`n_patients` patients, the
#   slice-level p-values and posteriors are as confident as if every slice were a new
#   patient; the patient bootstrap, the clustered DeLong and the Bayesian bootstrap are not.
#   Whether the difference survives is printed above for this run.
# - **The priors** are listed below as the results report them. The uniform and Dirichlet
#   priors with all parameters equal to one add as much as a single pseudo-observation per
#   cell, negligible beside hundreds of slices but not beside a dozen patients. The ROPE of
#   ±{glue:text}`rope:.2f` is a judgement: an accuracy difference smaller than that is too
#   small to choose a network by, and results inside it mean "practically equivalent",
#   whichever model is ahead.
# - **What would settle the question:** the paper's own setting (ImageNet weights, full
#   resolution, every patient) evaluated on patient folds, with these same tests. The `full`
#   profile of the study runs exactly that on a GPU.

# %% tags=["nbval-check-output"]
with pd.option_context("display.max_colwidth", 120):
    display(comparison_report.priors_table(comparison, PAPER_PRIOR))

# %% [markdown]
# ## Recap
#
# Each method of this chapter on this run's {glue:text}`n_slices` slices of
# {glue:text}`n_patients` patients, {glue:text}`model_a` minus {glue:text}`model_b`:
#
# - **McNemar** (`bl.stats.mcnemar_test`): exact p = {glue:text}`mcnemar_exact_p:.3g` with
#   slices as trials, Durkalski p = {glue:text}`mcnemar_durkalski_p:.3g` with patients.
# - **Bootstrap** (`bl.stats.bootstrap_metrics`, patients resampled): accuracy difference
#   {glue:text}`boot_accuracy_estimate:+.3f`, 95% CI {glue:text}`boot_accuracy_ci_low:+.3f`
#   to {glue:text}`boot_accuracy_ci_high:+.3f`.
# - **Bayesian** (`bl.stats.patient_paired_posterior`): P({glue:text}`model_a` better) =
#   {glue:text}`posterior_patients_p_a_better:.3f`, P(inside the ROPE) =
#   {glue:text}`posterior_patients_p_rope:.3f`.
# - **DeLong** (`bl.stats.delong_test`): AUC difference {glue:text}`delong_difference:+.3f`,
#   p = {glue:text}`delong_clustered_p:.3g` clustered by patient.
# - **Holm**: {glue:text}`holm_line`
# - **The paper's tables** allow exact McNemar p-values from
#   {glue:text}`paper_p_exact_min:.2g` to {glue:text}`paper_p_exact_max:.2g`, on slices
#   that include the training slices of a slice split.

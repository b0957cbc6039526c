"""Chapter 06's comparison of two models on the same held-out slices, and what it concludes.

``compare_models`` runs every test the chapter reports on the main experiment (patient
folds, true labels): McNemar, slice and patient bootstraps, Beta, Dirichlet and patient
Bayesian-bootstrap posteriors, DeLong plain and patient-clustered, fold-level t-tests, and
Holm's correction, and keeps each result as a field of one ``ModelComparison``.
``conclusions`` writes the chapter's closing sentences from those results and the audit of
the paper's tables; ``priors_table`` lists the prior behind each Bayesian result.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..measures import metrics
from .. import stats
from .report import (
    SLICE_RESAMPLES,
    differences_only,
    interval_side,
    lean,
    main_predictions,
    percent_points,
    with_percentile,
)

FOLD_METRICS = ("accuracy", "precision", "recall", "specificity", "f1", "auc")
BETA_PRIOR = stats.DEFAULT_PRIOR
"""The prior of each model's proportions (Beta-Binomial): the library's one default."""
SLICE_FAMILY = "slice-level (McNemar, DeLong)"
PATIENT_FAMILY = "patient-level (Durkalski McNemar, clustered DeLong)"
FOLD_FAMILY = "fold-level (corrected t)"
HOLM_FAMILIES = (SLICE_FAMILY, PATIENT_FAMILY, FOLD_FAMILY)
"""The Holm families, each corrected on its own: the same four questions asked with slices,
then patients, as the unit, and the fold-level t-tests."""


@dataclass
class ModelComparison(stats.Result):
    """Every paired comparison of model a with model b that chapter 06 reports (a - b)."""

    model_a: str
    model_b: str
    rope: float
    n_slices: int
    n_patients: int
    n_folds: int
    counts: pd.DataFrame
    """2x2 table: rows a right/wrong, columns b right/wrong."""
    mcnemar: stats.McNemarResult
    mcnemar_methods: pd.DataFrame
    slice_intervals: pd.DataFrame
    """``stats.bootstrap_metrics`` resampling slices: one row per (metric, model)."""
    patient_intervals: pd.DataFrame
    """``report.with_percentile``: eqs. (30)-(35) and AUC, resampling patients (BCa, with
    the percentile limits of the same bootstrap beside them)."""
    intervals: pd.DataFrame
    """Both, side by side: index (metric, model, resampled); percentile limits for patients."""
    differences: pd.DataFrame
    """The a - b rows of both, with ``unit`` and ``label`` (input of ``plots.forest_figure``)."""
    posteriors: pd.DataFrame
    """``stats.posterior_table``: Beta posteriors of each model's proportions."""
    beta_posteriors: dict
    """"<model> <metric>" -> ``stats.BetaPosterior`` of accuracy, sensitivity, specificity."""
    slice_posterior: stats.PairedPosterior
    patient_posterior: stats.PairedPosterior
    delong: stats.DeLongResult
    delong_clustered: stats.DeLongResult
    auc_tests: pd.DataFrame
    """DeLong, clustered DeLong and the patient bootstrap of the AUC difference."""
    fold_tests: dict
    """metric -> ``stats.FoldComparison``, for the metrics that could be tested."""
    fold_skipped: dict
    """metric -> why it was not tested across folds."""
    fold_table: pd.DataFrame
    slice_tests: pd.DataFrame
    """``stats.paired_metric_tests``: McNemar on all, tumor and tumor-free slices."""
    holm: pd.DataFrame
    """The Holm families (index family, row): slice-level, patient-level, fold-level."""
    holm_slices: stats.HolmResult
    holm_folds: stats.HolmResult | None
    paired: pd.DataFrame = field(repr=False, default=None)

    @property
    def accuracy_patients(self) -> pd.Series:
        """The patient-bootstrap row of the accuracy difference (estimate, ci_low, ci_high)."""
        rows = differences_only(self.patient_intervals)
        return rows[rows["metric"] == "accuracy"].iloc[0]

    @property
    def auc_patients(self) -> pd.Series:
        rows = differences_only(self.patient_intervals)
        return rows[rows["metric"] == "auc"].iloc[0]

    @property
    def rejected(self) -> dict[str, int]:
        """Per Holm family, how many tests reject "no difference" at its alpha."""
        return {family: int(rows["reject"].sum())
                for family, rows in self.holm.groupby(level="family", sort=False)}

    def title(self) -> str:
        return (f"{self.model_a} - {self.model_b}: {self.n_slices} paired slices of "
                f"{self.n_patients} patients, "
                + (f"{self.n_folds} folds" if self.n_folds > 1 else "one test set")
                + f", ROPE +-{self.rope:g}")

    def notes(self) -> list[str]:
        return [f"not tested across folds: {m}: {why}" for m, why in self.fold_skipped.items()]

    def to_frame(self) -> pd.DataFrame:
        """The headline: each method's difference a - b, interval, p-value or posterior."""
        a, b = self.model_a, self.model_b
        acc = self.accuracy_patients
        slice_acc = differences_only(self.slice_intervals)
        slice_acc = slice_acc[slice_acc["metric"] == "accuracy"].iloc[0]
        rows = [
            ("accuracy", "slices", "McNemar exact, Newcombe CI", self.mcnemar.difference,
             self.mcnemar.ci_low, self.mcnemar.ci_high, self.mcnemar.pvalue, np.nan, np.nan),
            ("accuracy", "slices", "bootstrap", slice_acc["estimate"], slice_acc["ci_low"],
             slice_acc["ci_high"], np.nan, np.nan, np.nan),
            ("accuracy", "patients", "bootstrap (BCa)", acc["estimate"], acc["ci_low"],
             acc["ci_high"], np.nan, np.nan, np.nan),
            ("accuracy", "patients", "bootstrap (percentile)", acc["estimate"],
             acc["percentile_low"], acc["percentile_high"], np.nan, np.nan, np.nan)]
        for unit, post in (("slices", self.slice_posterior), ("patients", self.patient_posterior)):
            rows.append(("accuracy", unit, post.method, post.mean_difference, post.ci_low,
                         post.ci_high, np.nan, post.p_a_better, post.p_rope))
        if "accuracy" in self.fold_tests:
            t = self.fold_tests["accuracy"]
            rows.append(("accuracy", "folds", "corrected t, Bayesian correlated t",
                         t.corrected_ttest.mean_difference, t.corrected_ttest.ci_low,
                         t.corrected_ttest.ci_high, t.corrected_ttest.pvalue,
                         t.bayesian.p_a_better, t.bayesian.p_rope))
        for unit, d in (("slices", self.delong), ("patients", self.delong_clustered)):
            rows.append(("auc", unit, d.method, d.difference, d.ci_low, d.ci_high, d.pvalue,
                         np.nan, np.nan))
        auc = self.auc_patients
        rows.append(("auc", "patients", "bootstrap (BCa)", auc["estimate"], auc["ci_low"],
                     auc["ci_high"], np.nan, np.nan, np.nan))
        rows.append(("auc", "patients", "bootstrap (percentile)", auc["estimate"],
                     auc["percentile_low"], auc["percentile_high"], np.nan, np.nan, np.nan))
        return pd.DataFrame(rows, columns=["metric", "unit", "method", f"{a} - {b}", "ci_low",
                                           "ci_high", "pvalue", f"P({a} better)", "P(in ROPE)"])


def _fold_tests(main, model_a, model_b, rope, n_folds):
    tests, skipped = {}, {}
    for metric in FOLD_METRICS:
        if n_folds < 2:
            skipped[metric] = f"needs at least 2 folds, found {n_folds}"
            continue
        try:
            tests[metric] = stats.compare_folds(main, metric, model_a, model_b, rope=rope)
        except ValueError as error:  # e.g. a fold where a model calls no slice tumor
            skipped[metric] = str(error)
    return tests, skipped


def intervals_table(by_slice: pd.DataFrame, by_patient: pd.DataFrame) -> pd.DataFrame:
    """Slice and patient bootstrap intervals side by side, one row per (metric, model,
    resampled), each model then the difference; the patient rows keep any percentile
    limits (``report.with_percentile``) and any metric only one of them has (the AUC)."""
    columns = ["estimate", "ci_low", "ci_high", "ci_method"]
    extra = [c for c in ("percentile_low", "percentile_high") if c in by_patient]
    models = list(dict.fromkeys(by_slice["model"]).keys())
    intervals = pd.concat(
        {"slices": by_slice.set_index(["metric", "model"])[columns],
         "patients": by_patient.set_index(["metric", "model"])[columns + extra]},
        names=["resampled"]).reorder_levels([1, 2, 0])
    order = pd.MultiIndex.from_product([list(FOLD_METRICS), models, ["slices", "patients"]])
    return intervals.reindex([key for key in order if key in intervals.index])


def compare_models(predictions: pd.DataFrame, model_a: str, model_b: str, rope: float,
                   n_resamples: int, seed: int, slice_resamples: int = SLICE_RESAMPLES,
                   analysis_dir=None) -> ModelComparison:
    """Chapter 06's part 1 on the main experiment: every paired test of a against b.

    ``n_resamples`` patients are resampled (shared with chapter 05 through ``analysis_dir``),
    ``slice_resamples`` slices. A single fold is allowed: the fold-level tests are then
    listed in ``fold_skipped`` and left out of Holm's fold family.
    """
    main = main_predictions(predictions)
    main = main[main["model"].isin([model_a, model_b])]
    paired = stats.pair_predictions(main, model_a, model_b)
    counts = pd.DataFrame(stats.paired_table(paired),
                          index=pd.Index([f"{model_a} right", f"{model_a} wrong"], name=""),
                          columns=[f"{model_b} right", f"{model_b} wrong"])
    by_slice = stats.bootstrap_metrics(paired, n_resamples=slice_resamples, seed=seed).to_frame()
    by_patient = with_percentile(paired, n_resamples, seed, analysis_dir=analysis_dir)
    intervals = intervals_table(by_slice, by_patient)
    differences = pd.concat([differences_only(by_slice).assign(unit="slices"),
                             differences_only(by_patient).assign(unit="patients")],
                            ignore_index=True)
    differences["label"] = differences["metric"] + " (" + differences["unit"] + ")"

    beta_posteriors = {}
    for model, rows in main.groupby("model"):
        c = metrics.confusion_counts(rows["y_true"], rows["y_pred"])
        found = stats.metric_posteriors(c, prior=BETA_PRIOR).posteriors
        for metric in ("accuracy", "sensitivity", "specificity"):
            beta_posteriors[f"{model} {metric}"] = found[metric]

    delong = stats.delong_test(paired)
    delong_clustered = stats.delong_test(paired, cluster="patient_id")
    auc_boot = differences_only(by_patient)
    auc_boot = auc_boot[auc_boot["metric"] == "auc"].iloc[0]
    auc_tests = pd.concat([delong.to_frame(), delong_clustered.to_frame(), pd.DataFrame([{
        "method": "patient bootstrap (BCa)", "difference": auc_boot["estimate"],
        "ci_low": auc_boot["ci_low"], "ci_high": auc_boot["ci_high"]}, {
        "method": "patient bootstrap (percentile)", "difference": auc_boot["estimate"],
        "ci_low": auc_boot["percentile_low"], "ci_high": auc_boot["percentile_high"]}])],
        ignore_index=True)

    n_folds = int(main["fold"].nunique())
    fold_tests, fold_skipped = _fold_tests(main, model_a, model_b, rope, n_folds)
    fold_table = (pd.concat([t.to_frame() for t in fold_tests.values()], ignore_index=True)
                  if fold_tests else pd.DataFrame())
    slice_tests = stats.paired_metric_tests(paired).to_frame()
    family = {**dict(zip(slice_tests["test"], slice_tests["pvalue"])), "auc": delong.pvalue}
    holm_slices = stats.holm_correction(list(family.values()), names=list(family))
    patient_tests = stats.paired_metric_tests(paired, method="durkalski",
                                              cluster="patient_id").to_frame()
    patient_family = {**dict(zip(patient_tests["test"], patient_tests["pvalue"])),
                      "auc": delong_clustered.pvalue}
    holm_patients = stats.holm_correction(list(patient_family.values()),
                                          names=list(patient_family))
    families = {SLICE_FAMILY: holm_slices.to_frame(),
                PATIENT_FAMILY: holm_patients.to_frame()}
    holm_folds = None
    if fold_tests:
        holm_folds = stats.holm_correction(fold_table["pvalue"].tolist(),
                                           names=fold_table["metric"].tolist())
        families[FOLD_FAMILY] = holm_folds.to_frame()
    holm = pd.concat(families, names=["family", "row"])

    return ModelComparison(
        model_a=model_a, model_b=model_b, rope=rope, n_slices=len(paired),
        n_patients=int(paired["patient_id"].nunique()), n_folds=n_folds, counts=counts,
        mcnemar=stats.mcnemar_test(paired, method="exact"),
        mcnemar_methods=stats.mcnemar_methods(paired), slice_intervals=by_slice,
        patient_intervals=by_patient, intervals=intervals, differences=differences,
        posteriors=stats.posterior_table(main, prior=BETA_PRIOR), beta_posteriors=beta_posteriors,
        slice_posterior=stats.paired_posterior(paired, prior=1.0, rope=rope, seed=seed),
        patient_posterior=stats.patient_paired_posterior(paired, rope=rope, seed=seed),
        delong=delong, delong_clustered=delong_clustered, auc_tests=auc_tests,
        fold_tests=fold_tests, fold_skipped=fold_skipped, fold_table=fold_table,
        slice_tests=slice_tests, holm=holm, holm_slices=holm_slices, holm_folds=holm_folds,
        paired=paired)


# ---------------------------------------------------------------------------- in words

def fold_section(comparison: ModelComparison, evaluation: str) -> tuple[list[str], list, str]:
    """Chapter 06's fold-by-fold section: the lines to print, the tables to show and the
    sentence its prose quotes (accuracy's corrected and Bayesian correlated t-tests; none
    where the section does not apply: its one printed line says so)."""
    if comparison.n_folds < 2:
        return [f"Not applicable to this run (evaluation={evaluation}): "
                "its one test set gives nothing to compare split by split."], [], ""
    lines = [f"{len(comparison.fold_tests)} metrics tested across {comparison.n_folds} folds"
             + "".join(f"\n  not tested: {m}: {why}"
                       for m, why in comparison.fold_skipped.items())]
    tables = [comparison.fold_table.drop(columns=["model_a", "model_b"],
                                         errors="ignore").round(4)]
    accuracy = comparison.fold_tests.get("accuracy")
    if not accuracy:
        return lines, tables, lines[0]
    line = (f"On accuracy, the corrected t-test over {comparison.n_folds} folds gives p = "
            f"{accuracy.corrected_ttest.pvalue:.3g}, and the correlated t-test "
            f"P({comparison.model_a} better by more than the ROPE) = "
            f"{accuracy.bayesian.p_a_better:.3f}.")
    return lines, tables + [accuracy.per_fold.round(4)], line


def holm_sentence(comparison: ModelComparison) -> str:
    """How many tests of each Holm family reject "no difference" at 5%, in one sentence."""
    families = comparison.holm.index.get_level_values("family")
    counts = [f"{comparison.rejected.get(family, 0)} of {int((families == family).sum())} "
              f"{family.split(' (')[0]} tests"
              for family in HOLM_FAMILIES if (families == family).any()]
    return ("After Holm's correction, " + " and ".join(counts)
            + " reject \"no difference\" at the 5% level.")

def paper_accuracy_gap(audit_result, model_a: str, model_b: str) -> float:
    """The paper's claimed accuracy difference a - b (printed Table IV, as a proportion);
    NaN when either model is not in the paper."""
    printed = audit_result.table_iv
    printed = printed[(printed["metric"] == "accuracy") & (printed["source"] == "counts")]
    by_model = printed.groupby("model")["printed"].first()
    if model_a not in by_model or model_b not in by_model:
        return np.nan
    return float(by_model[model_a] - by_model[model_b]) / 100


def _paper_lines(audit_result, names) -> list[str]:
    chosen = audit_result.matching_orientation
    coverage = audit_result.coverage
    scores = audit_result.rounding.set_index("orientation")
    lines = []
    if chosen is None:
        lines.append("- No reading of Tables II-III matches the dataset's class totals, so no "
                     "paired test can be derived from them.")
    else:
        allowed = audit_result.mcnemar[chosen]
        largest = float(allowed.pvalue_range().loc["exact", "max"])
        difference = float(allowed.to_frame()["difference"].iloc[0])
        lines.append(f"- Read the only way that matches the dataset ({chosen}), every pairing of "
                     f"errors they allow gives an exact McNemar p "
                     f"{'below' if largest < 0.05 else 'above'} 0.05 (largest {largest:.2g}) for "
                     f"an accuracy difference of {difference:+.4f}.")
    lines.append(f"- But they count {coverage['share_of_dataset'].min():.0%} of the slices: either "
                 "training slices were scored, or the held-out predictions of all folds of a "
                 "slice-split cross-validation were pooled (which also counts every slice once); "
                 "the tables cannot tell these apart. Either way the split was by slice, so test "
                 "slices had near-copies from the same patients in training. No patient-level "
                 "statement can be recovered from them.")
    if chosen is not None:
        row = scores.loc[chosen]
        lines.append(f"- Table IV follows from Tables II-III by truncation in "
                     f"{int(row['matches_truncated'])} of {int(row['entries'])} entries, by "
                     f"rounding in {int(row['matches_rounded'])}.")
    return lines


def _claim_line(low: float, high: float, gap: float) -> str:
    """Can the primary interval speak to a difference of the paper's size?"""
    width = high - low
    size = (f"The primary 95% interval ({low:+.3f} to {high:+.3f}) is {width:.3f} wide, "
            f"{'wider' if width > gap else 'narrower'} than the paper's claimed difference of "
            f"{gap:+.3f} ({percent_points(gap)})")
    has_zero, has_gap = low <= 0 <= high, low <= gap <= high
    if has_zero and has_gap:
        return size + ("; it includes both 0 and the claimed difference, so this run can "
                       "neither confirm nor refute the claim.")
    if has_gap:
        return size + ("; it includes the claimed difference and excludes 0: consistent with "
                       "the claim.")
    if has_zero:
        return size + ("; it includes 0 but lies below the claimed difference: this run does not "
                       "support a difference as large as the paper's.")
    if high < 0:
        return size + "; it lies below 0: this run contradicts the claim's direction."
    return size + "; it lies above the claimed difference: a larger advantage than the paper's."


def conclusions(comparison: ModelComparison, primary, audit_result,
                dataset_label: str, can_test: str = "", baselines: str = "") -> list[str]:
    """The closing sentences of chapter 06, each computed from the results: the paper's
    tables, then this run's primary result (``primary.primary_endpoint``, the declared
    decision) and its secondary tests, in the language the evidence allows (an interval that
    includes 0 is "no difference detected", never "no difference"; a large p-value is not
    equivalence; a secondary test never overrules the primary one). ``baselines``: the
    verdict against the trivial baselines (``baselines.baseline_verdict``), said after the
    primary result."""
    c, p = comparison, primary
    names = (c.model_a, c.model_b)
    m, post, acc = c.mcnemar, c.patient_posterior, c.accuracy_patients
    lines = ([can_test, ""] if can_test else []) + [
             "The paper's own tables:", *_paper_lines(audit_result, names), "",
             f"This study's predictions ({dataset_label}, "
             + ("patient folds" if c.n_folds > 1 else "one hold-out test set")
             + f", {c.n_patients} patients):"]
    decision = (f"it {interval_side(p.wald_low, p.wald_high, 0.0, names)}"
                if p.interval_excludes_zero else "it includes 0: no difference detected")
    lines.append(f"- Primary (declared before the results): accuracy {p.accuracy_a:.3f} "
                 f"({c.model_a}) vs {p.accuracy_b:.3f} ({c.model_b}), difference "
                 f"{p.estimate:+.3f}; 95% interval from the patient-cluster SE and "
                 f"{p.reference} ({p.n_patients} patients) {p.wald_low:+.3f} to "
                 f"{p.wald_high:+.3f}: {decision}; exact sign-flip test over patients "
                 f"p = {p.sign_flip_pvalue:.3g}.")
    if baselines:
        lines.append(f"- {baselines}")
    estimates = [(f"accuracy difference {p.estimate:+.3f}", lean(p.estimate, names)),
                 (f"AUC difference {c.delong.difference:+.3f}",
                  lean(c.delong.difference, names)),
                 (f"P({c.model_a} better) = {post.p_a_better:.3f} with patients as the unit",
                  lean(post.p_a_better - 0.5, names))]
    leans = {side for _, side in estimates}
    if len(leans) == 1 and "neither" not in leans:
        evidence = ", ".join(text for text, _ in estimates)
        lines.append(f"- The estimates lean towards {leans.pop()} ({evidence}); a lean is not "
                     "a detected difference: the intervals say whether one was detected.")
    else:
        each = "; ".join(f"{text} leans towards {side}" if side != "neither"
                         else f"{text} leans towards neither" for text, side in estimates)
        lines.append(f"- The estimates do not all lean the same way: {each}.")
    inside = -c.rope <= p.wald_low and p.wald_high <= c.rope
    if not p.interval_excludes_zero:
        lines.append("- No difference in accuracy was detected with patients as the unit. That is "
                     "not evidence that the models are equal: a large p-value never shows "
                     "equivalence. Equivalence needs the primary interval inside the ROPE "
                     f"of +-{c.rope:g}; " + (
                         "it lies inside: the two are practically equivalent at this ROPE."
                         if inside else "it does not lie inside: practical equivalence is not "
                         "shown either."))
    elif inside:
        lines.append(f"- A difference was detected, but the primary interval lies inside "
                     f"the ROPE of +-{c.rope:g}: too small to choose a network by.")
    lines.append("- " + p.power_sentence())
    gap = paper_accuracy_gap(audit_result, *names)
    if np.isfinite(gap) and p.claim_testable:
        lines.append("- " + _claim_line(p.wald_low, p.wald_high, gap))
    elif np.isfinite(gap):
        lines.append(f"- The paper's claimed difference ({gap:+.3f}) is not measured against "
                     "this run: the claim is about ImageNet-transferred networks on real "
                     "slices, and this run is not that.")
    sizes = c.holm.groupby(level="family", sort=False).size()
    per_family = ", ".join(f"{c.rejected.get(family, 0)} of {sizes[family]} "
                           f"{family.split(' (')[0]}" for family in HOLM_FAMILIES
                           if family in sizes)
    lines.append(f"- Secondary, the same comparison from other sides; Holm-corrected within "
                 f"each family, {per_family} tests reject 'no difference'" + (
                     (" (one test set: nothing to test split by split):" if c.n_folds < 2 else
                      f" (fold-level tests skipped: {len(c.fold_skipped)} of "
                      f"{len(FOLD_METRICS)} metrics):") if c.fold_skipped else ":"))
    lines.append(f"  - slices as the unit: exact McNemar p = {m.pvalue:.3g}; Newcombe 95% CI "
                 f"{m.ci_low:+.3f} to {m.ci_high:+.3f}, which "
                 f"{interval_side(m.ci_low, m.ci_high, 0.0, names)}.")
    lines.append(f"  - patients as the unit, bootstrap: BCa 95% CI {acc['ci_low']:+.3f} to "
                 f"{acc['ci_high']:+.3f}, which "
                 f"{interval_side(acc['ci_low'], acc['ci_high'], 0.0, names)}; percentile "
                 f"{p.percentile_low:+.3f} to {p.percentile_high:+.3f}; "
                 f"P({c.model_a} better) = {post.p_a_better:.3f}, P(inside ROPE +-{c.rope:g}) = "
                 f"{post.p_rope:.3f}.")
    d = c.delong_clustered
    floor = (f"; with {p.n_patients} patients an exact patient-level test could not give p "
             f"below {p.sign_flip_smallest:.3g}, so a smaller p here rests on a large-sample "
             "approximation" if p.small_sample and d.pvalue < p.sign_flip_smallest else "")
    lines.append(f"  - AUC difference {d.difference:+.3f}: DeLong clustered by patient "
                 f"({p.n_patients} patients) p = {d.pvalue:.3g}, "
                 f"95% CI {d.ci_low:+.3f} to {d.ci_high:+.3f}, which "
                 f"{interval_side(d.ci_low, d.ci_high, 0.0, names)}{floor}.")
    secondary = [(acc["ci_low"], acc["ci_high"]), (p.percentile_low, p.percentile_high),
                 (m.ci_low, m.ci_high)]
    if any((low > 0 or high < 0) != p.interval_excludes_zero for low, high in secondary):
        lines.append("- The secondary intervals do not all agree with the primary one about 0. "
                     "The primary decides, as declared; the disagreement says that with this "
                     "few patients the verdict is fragile.")
    if dataset_label.upper() == "PHANTOM":
        lines.append("- These are PHANTOM numbers: they show the analysis works; they say "
                     "nothing about which network is better on real brain MRI.")
    return lines


def priors_table(comparison: ModelComparison, paper_prior=BETA_PRIOR) -> pd.DataFrame:
    """The prior behind each Bayesian result of chapter 06, one row per result."""
    c = comparison
    if "accuracy" in c.fold_tests:
        fold_prior = ("flat on the mean difference (Student-t posterior, "
                      f"df = {c.fold_tests['accuracy'].bayesian.df})")
    else:
        fold_prior = f"not run: {c.fold_skipped.get('accuracy', 'no fold test')}"
    rows = [
        {"result": "each model's proportions (Beta-Binomial)",
         "prior": f"Beta({BETA_PRIOR[0]:g}, {BETA_PRIOR[1]:g}) (uniform)"},
        {"result": "accuracy difference, slices paired", "prior": c.slice_posterior.prior},
        {"result": "accuracy difference, patients (Bayesian bootstrap)",
         "prior": c.patient_posterior.prior},
        {"result": "fold-level correlated t-test", "prior": fold_prior},
        {"result": "intervals on the paper's counts",
         "prior": f"Beta({paper_prior[0]:g}, {paper_prior[1]:g})"
                  + (" (Jeffreys)" if tuple(paper_prior) == (0.5, 0.5) else
                     " (uniform)" if tuple(paper_prior) == (1.0, 1.0) else "")},
        {"result": "region of practical equivalence", "prior": f"+-{c.rope:g} accuracy"},
    ]
    if c.n_folds < 2:  # one test set: no fold-level test to have a prior
        rows = [row for row in rows if row["result"] != "fold-level correlated t-test"]
    return pd.DataFrame(rows).set_index("result")


def seed_spread(predictions: pd.DataFrame, model_a: str, model_b: str) -> pd.DataFrame:
    """Accuracy and AUC of each model and their difference a - b, per training seed
    (`study.run_seed_repeats`), then their mean and standard deviation over the seeds: how
    much of a difference between the models is seed noise."""
    rows = []
    for seed, run in predictions.groupby("training_seed"):
        row = {"training seed": seed}
        for model in (model_a, model_b):
            own = run[run["model"] == model]
            row[f"{model} accuracy"] = float((own["y_pred"] == own["y_true"]).mean())
            row[f"{model} AUC"] = metrics.roc_auc(own["y_true"], own["p_tumor"])
        row["accuracy difference"] = row[f"{model_a} accuracy"] - row[f"{model_b} accuracy"]
        row["AUC difference"] = row[f"{model_a} AUC"] - row[f"{model_b} AUC"]
        rows.append(row)
    table = pd.DataFrame(rows).set_index("training seed")
    if len(table) > 1:
        table.loc["mean"] = table.mean()
        table.loc["sd"] = table.drop(index="mean").std(ddof=1)
    return table


def seed_verdict(predictions: pd.DataFrame, model_a: str, model_b: str, n_resamples: int,
                 seed: int) -> list[str]:
    """The primary question asked again of each training seed (`study.run_seed_repeats`):
    each seed's difference and whether its interval excludes 0, the spread over seeds beside
    the first seed's interval half-width, and whether the verdict holds across seeds (it
    stands only if every seed's interval says the same about 0)."""
    from .primary import primary_endpoint

    results = {}
    for training_seed, run in predictions.groupby("training_seed", sort=True):
        paired = stats.pair_predictions(run, model_a, model_b)
        results[training_seed] = primary_endpoint(paired, n_resamples=n_resamples, seed=seed)
    if len(results) < 2:
        return [f"One training seed only ({', '.join(map(str, results))}): the primary result "
                "compares two trained models; another seed could move it."]
    differences = np.array([r.estimate for r in results.values()])
    first = next(iter(results.values()))
    half_width = (first.wald_high - first.wald_low) / 2
    excludes = [r.interval_excludes_zero for r in results.values()]
    sides = {("above" if r.wald_low > 0 else "below") for r in results.values()
             if r.interval_excludes_zero}
    listed = ", ".join(f"{d:+.3f} (seed {k})" for k, d in zip(results, differences))
    spread = float(differences.std(ddof=1))
    lines = [f"The primary difference {model_a} - {model_b} per training seed: {listed}; "
             f"SD over seeds {spread:.3f}, against a half-width of {half_width:.3f} for the "
             f"first seed's interval."]
    if all(excludes) and len(sides) == 1:
        lines.append(f"Every seed's interval lies {sides.pop()} 0: the verdict holds across "
                     "seeds.")
    elif not any(excludes):
        lines.append("No seed's interval excludes 0: no difference detected under any seed.")
    else:
        lines.append(f"The seeds disagree ({sum(excludes)} of {len(excludes)} intervals exclude "
                     "0): no verdict stands across seeds.")
    if spread > half_width:
        lines.append("The spread over seeds is larger than the interval's half-width: the "
                     "primary result compares two trained models, not two architectures, and "
                     "a reseed moves it more than the test patients' sampling does.")
    return lines

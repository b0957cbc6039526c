"""The one primary question of the comparison, its power, and a per-patient paired analysis.

The book runs about ten tests of ResNet50 against VGG16. Declared here, before any result
is read, is the single primary question: **the difference in slice accuracy, model a minus
model b, with patients as the unit** (``primary_endpoint``). Everything else is secondary
and is Holm-corrected as one family (``secondary_family``).

The primary result reports, side by side, a Wald interval from the patient-cluster standard
error (the declared decision rule), the patient-bootstrap percentile and BCa intervals (BCa
can be unstable with few patients), and the minimum detectable difference: how large a true
difference this run had an 80% chance of detecting, beside the paper's claimed 1.1 points.
With fewer than ``SMALL_SAMPLE_PATIENTS`` patients the interval, its p-value and the
minimum detectable difference use Student's t with K - 1 degrees of freedom, and the exact
sign-flip test over patients (``sign_flip_test``, no large-sample approximation) stands
beside them. ``per_patient_differences`` gives each patient's accuracy difference with a sign test and a
Wilcoxon signed-rank test, patients weighed equally.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats as sps

from .report import interval_text, lean
from ..stats.holm import HolmResult, holm_correction
from ..stats.pairing import model_names
from ..measures.results import Result, as_rng

PRIMARY_QUESTION = ("is slice accuracy different between {a} and {b}? The difference "
                    "accuracy({a}) - accuracy({b}) over all slices, with patients as the unit "
                    "of the standard error and of the bootstrap")
"""The primary question, written down before the results (model names filled in)."""


from ..stats.clustered import (  # noqa: F401  (the primary endpoint's patient-level tools)
    SMALL_SAMPLE_PATIENTS, SignFlipTest, _patient_sums, cluster_interval,
    cluster_standard_error, distribution_name, minimum_detectable_difference,
    reference_distribution, sign_flip_test)


# ---------------------------------------------------------------------------- the primary endpoint

@dataclass
class PrimaryEndpoint(Result):
    """The primary question's answer: accuracy a - b, patients as the unit, with three
    intervals, the minimum detectable difference and the paper's claim beside it."""

    model_a: str
    model_b: str
    accuracy_a: float
    accuracy_b: float
    estimate: float
    """Pooled slice accuracy of a minus that of b."""
    se: float
    """Patient-cluster (sandwich) standard error of ``estimate``."""
    wald_low: float
    wald_high: float
    pvalue: float
    """Two-sided Wald p-value, estimate / se against the normal."""
    percentile_low: float
    percentile_high: float
    bca_low: float
    """NaN when BCa is degenerate (e.g. every resample gives the same difference)."""
    bca_high: float
    bootstrap_se: float
    n_patients: int
    n_slices: int
    n_resamples: int
    mdd: float
    """Minimum detectable difference at ``alpha`` (two-sided) and ``power``; NaN when se is 0."""
    paper_difference: float
    alpha: float
    power: float
    confidence: float
    can_detect_paper_difference: bool
    interval_excludes_zero: bool
    """From the Wald interval, the declared decision rule (the one the MDD describes)."""
    bootstrap_agrees: bool
    """Whether the percentile interval (and BCa, where defined) says the same about 0."""
    reference: str = "the normal"
    """Where the interval's quantiles come from: "the normal", or t with K - 1 degrees of
    freedom below ``SMALL_SAMPLE_PATIENTS`` patients."""
    sign_flip_pvalue: float = float("nan")
    """Exact two-sided sign-flip test over patients (``sign_flip_test``)."""
    sign_flip_smallest: float = float("nan")
    """The smallest p-value the sign-flip test can give with these patients."""
    claim_testable: bool = True
    """Whether the run can bear on the paper's claim (real data, ImageNet bases); if not,
    the claimed difference is not measured against this run's interval."""
    distribution: np.ndarray = field(repr=False, default=None)

    def title(self) -> str:
        return (f"Primary endpoint: slice accuracy {self.model_a} - {self.model_b}, "
                f"{self.n_patients} patients as the unit ({self.n_slices} slices)")

    def to_frame(self) -> pd.DataFrame:
        rows = [(self.decision_label(), self.wald_low, self.wald_high),
                ("patient bootstrap, percentile", self.percentile_low, self.percentile_high),
                ("patient bootstrap, BCa", self.bca_low, self.bca_high)]
        frame = pd.DataFrame(rows, columns=["interval", "ci_low", "ci_high"])
        frame.insert(1, "estimate", self.estimate)
        # None where an interval is undefined (a degenerate BCa)
        frame["excludes_zero"] = pd.array(
            [bool(low > 0 or high < 0) if np.isfinite(low) and np.isfinite(high) else None
             for low, high in zip(frame["ci_low"], frame["ci_high"])], dtype="boolean")
        frame["role"] = ["decision", "sensitivity", "sensitivity"]
        return frame.set_index("interval")

    def notes(self) -> list[str]:
        return self.sentences()

    @property
    def small_sample(self) -> bool:
        return self.n_patients < SMALL_SAMPLE_PATIENTS

    def decision_label(self) -> str:
        return ("patient-cluster SE, t(K-1)" if self.small_sample
                else "Wald, patient-cluster SE")

    def small_sample_sentence(self) -> str:
        """Why, with few patients, the patient-level and slice-level answers may disagree
        either way, and what the exact test can and cannot say."""
        k = self.n_patients
        return (f"With {k} patients (fewer than {SMALL_SAMPLE_PATIENTS}) the patient-cluster "
                f"standard error is itself estimated from {k} numbers: it is noisy and tends "
                "to come out too small, so it can be smaller than a slice-level standard "
                "error as easily as larger, and the interval uses t with "
                f"{k - 1} degrees of freedom instead of the normal. The exact sign-flip test "
                f"needs no such approximation: p = {self.sign_flip_pvalue:.3g}; with these "
                f"patients it cannot go below {self.sign_flip_smallest:.3g}, and neither can "
                "any honest patient-level p-value.")

    def power_sentence(self) -> str:
        """The smallest difference this run could detect, beside the paper's claim."""
        points = f"{abs(self.paper_difference) * 100:.3g}-point"
        if not np.isfinite(self.mdd):
            return ("The patient-cluster SE is 0 (every patient's difference equals the pooled "
                    "one, e.g. the models agree on every slice), so this run gives no size of "
                    "the smallest detectable difference; it cannot confirm or refute the "
                    f"paper's claimed {points} difference.")
        if self.can_detect_paper_difference:
            verdict = ("larger than that: a true difference of that size would most likely have "
                       "been detected")
        else:
            verdict = ("smaller than that: had it been the true difference, this run would most "
                       "likely not have detected it, so the run cannot confirm it")
        return (f"This run could detect differences of about ±{self.mdd:.4f} "
                f"({self.mdd * 100:.1f} points; {self.power:.0%} power, two-sided alpha = "
                f"{self.alpha:g}, quantiles of {self.reference}); the paper's claimed {points} difference is {verdict}.")

    def claim_sentence(self) -> str:
        """Where the paper's claimed difference sits against the decision interval."""
        a, claim = self.model_a, self.paper_difference
        if not self.claim_testable:
            return (f"The paper's claimed {claim:+.4f} is not measured against this interval: "
                    "its claim is about ImageNet-transferred networks on real slices, and this "
                    "run is not that (see the run card).")
        level = f"The {self.confidence:.0%} interval"
        if self.wald_low <= claim <= self.wald_high:
            return (f"{level} includes the paper's claimed {claim:+.4f}: the run is consistent "
                    "with it, as with every other value inside the interval.")
        if claim > self.wald_high:
            return (f"{level} lies below the paper's claimed {claim:+.4f}: this run's data are "
                    f"not consistent with {a} ahead by that much, in this run's setting (see "
                    "the run card).")
        return (f"{level} lies above the paper's claimed {claim:+.4f}: a larger difference "
                "than the paper's, in this run's setting (see the run card).")

    def sentences(self) -> list[str]:
        """The primary result in words that a non-significant result cannot be misread by."""
        a, b = self.model_a, self.model_b
        level = f"{self.confidence:.0%}"
        lines = [f"Primary question (declared before the results): "
                 f"{PRIMARY_QUESTION.format(a=a, b=b)}."]
        bca = ("BCa undefined (degenerate bootstrap)" if not np.isfinite(self.bca_low)
               else f"BCa [{self.bca_low:+.4f}, {self.bca_high:+.4f}]")
        lines.append(
            f"Estimate: {a} - {b} = {self.estimate:+.4f} (accuracy {self.accuracy_a:.4f} vs "
            f"{self.accuracy_b:.4f}, {self.n_slices} slices from {self.n_patients} patients); "
            f"{level} interval from the patient-cluster SE {self.se:.4f} and quantiles of "
            f"{self.reference}: "
            f"{interval_text(self.estimate, self.wald_low, self.wald_high, 4, True)}, "
            f"p = {self.pvalue:.3g}; exact sign-flip test over the {self.n_patients} "
            f"patients: p = {self.sign_flip_pvalue:.3g}; patient bootstrap "
            f"({self.n_resamples} resamples): "
            f"percentile [{self.percentile_low:+.4f}, {self.percentile_high:+.4f}], {bca}.")
        direction = lean(self.estimate, (a, b))
        if self.interval_excludes_zero:
            side, favoured = ("above", a) if self.wald_low > 0 else ("below", b)
            lines.append(f"The {level} interval lies {side} zero: favours {favoured}.")
        else:
            lines.append(f"No difference was detected: the {level} interval includes 0. This is "
                         "not evidence that the models are equal.")
            lines.append(f"The estimate leans towards {direction}; a lean is not a detected "
                         "difference." if direction != "neither"
                         else "The estimate is exactly 0: it leans towards neither model.")
        if not self.bootstrap_agrees:
            lines.append("The bootstrap intervals do not agree with the decision interval "
                         "about 0: with this few patients the verdict is fragile.")
        if self.small_sample:
            lines.append(self.small_sample_sentence())
        lines.append(self.power_sentence())
        if not np.isfinite(self.mdd):
            return lines
        lines.append(self.claim_sentence())
        return lines


def _check_fraction(name: str, value: float, where: str) -> None:
    if not 0 < value < 1:
        raise ValueError(f"{where}: expected {name} strictly between 0 and 1, found {value!r}")


def primary_endpoint(paired: pd.DataFrame, n_resamples: int, seed, paper_difference: float = 0.011,
                     alpha: float = 0.05, power: float = 0.8,
                     confidence: float = 0.95, claim_testable: bool = True) -> PrimaryEndpoint:
    """THE primary question: pooled slice accuracy a - b, patients as the unit.

    The decision is the interval D +- q SE with the patient-cluster SE
    (``cluster_standard_error``) and q from the normal, or from t with K - 1 df below
    ``SMALL_SAMPLE_PATIENTS`` patients; the exact sign-flip test over patients stands beside
    it; the patient bootstrap (``scipy.stats.bootstrap`` over
    patients, each with all its slices, one seeded set of resamples) gives the percentile and
    BCa intervals beside it. The minimum detectable difference is
    (z_{1-alpha/2} + z_power) * SE; ``paper_difference`` is the paper's claim in the
    direction a - b (ResNet50 - VGG16 = 99.8% - 98.7%).
    """
    where = "primary_endpoint"
    for name, value in (("alpha", alpha), ("power", power), ("confidence", confidence)):
        _check_fraction(name, value, where)
    if int(n_resamples) < 1:
        raise ValueError(f"{where}: expected n_resamples >= 1, found {n_resamples!r}")
    sums = _patient_sums(paired, where)
    model_a, model_b = model_names(paired)
    n = sums["n_slices"].to_numpy()
    d = (sums["correct_a"] - sums["correct_b"]).to_numpy()
    estimate, se = cluster_standard_error(n, d)
    reference = reference_distribution(n.size)
    q = reference.ppf(1 - (1 - confidence) / 2)
    wald_low, wald_high = estimate - q * se, estimate + q * se
    if se > 0:
        pvalue = float(2 * reference.sf(abs(estimate) / se))
    else:
        pvalue = 1.0 if estimate == 0 else float("nan")  # degenerate: no spread to test by

    def statistic(index, axis=-1):
        index = np.asarray(index).astype(np.intp)
        return d[index].sum(axis=axis) / n[index].sum(axis=axis)

    patients = (np.arange(n.size),)
    with warnings.catch_warnings():
        # a degenerate BCa (every resample the same) comes back as NaN and is said so
        warnings.simplefilter("ignore", sps.DegenerateDataWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        percentile = sps.bootstrap(patients, statistic, n_resamples=int(n_resamples),
                                   vectorized=True, confidence_level=confidence,
                                   method="percentile", rng=as_rng(seed))
        bca = sps.bootstrap(patients, statistic, n_resamples=0, bootstrap_result=percentile,
                            vectorized=True, confidence_level=confidence, method="BCa")
    p_low, p_high = map(float, percentile.confidence_interval)
    b_low, b_high = map(float, bca.confidence_interval)
    mdd = minimum_detectable_difference(se, alpha, power, n_patients=n.size)
    flips = sign_flip_test(d, n)
    excludes = bool(wald_low > 0 or wald_high < 0)
    agrees = bool((p_low > 0 or p_high < 0) == excludes)
    if np.isfinite(b_low) and np.isfinite(b_high):
        agrees = agrees and bool((b_low > 0 or b_high < 0) == excludes)
    total = n.sum()
    return PrimaryEndpoint(
        model_a=model_a, model_b=model_b,
        accuracy_a=float(sums["correct_a"].sum() / total),
        accuracy_b=float(sums["correct_b"].sum() / total),
        estimate=estimate, se=se, wald_low=float(wald_low), wald_high=float(wald_high),
        pvalue=pvalue, percentile_low=p_low, percentile_high=p_high, bca_low=b_low,
        bca_high=b_high, bootstrap_se=float(percentile.standard_error),
        n_patients=int(n.size), n_slices=int(total), n_resamples=int(n_resamples), mdd=mdd,
        paper_difference=float(paper_difference), alpha=alpha, power=power,
        confidence=confidence,
        can_detect_paper_difference=bool(np.isfinite(mdd) and mdd <= abs(paper_difference)),
        interval_excludes_zero=excludes, bootstrap_agrees=agrees,
        reference=distribution_name(n.size), sign_flip_pvalue=flips.pvalue,
        sign_flip_smallest=flips.smallest_pvalue, claim_testable=bool(claim_testable),
        distribution=percentile.bootstrap_distribution)


# ---------------------------------------------------------------------------- per patient

@dataclass
class PerPatientComparison(Result):
    """Each patient's slice accuracy under both models, with a sign test and a Wilcoxon
    signed-rank test of the per-patient differences (every patient weighs the same)."""

    model_a: str
    model_b: str
    frame: pd.DataFrame
    """One row per patient: n_slices, accuracy_a, accuracy_b, difference (a - b)."""
    n_a_better: int
    n_b_better: int
    n_tied: int
    sign_pvalue: float
    """Exact two-sided binomial test of n_a_better among the non-tied patients; NaN if all tie."""
    wilcoxon_statistic: float
    wilcoxon_pvalue: float
    """``scipy.stats.wilcoxon(difference, zero_method="wilcox")``; NaN if all tie."""
    mean_difference: float
    median_difference: float

    def title(self) -> str:
        return (f"Per-patient accuracy {self.model_a} - {self.model_b}, "
                f"{len(self.frame)} patients weighed equally")

    def to_frame(self) -> pd.DataFrame:
        return self.frame.copy()

    def tests_frame(self) -> pd.DataFrame:
        """The two tests, one row each."""
        n_untied = self.n_a_better + self.n_b_better
        return pd.DataFrame([
            {"test": "sign test (exact binomial, ties dropped)",
             "statistic": float(self.n_a_better), "pvalue": self.sign_pvalue,
             "n_used": n_untied},
            {"test": "Wilcoxon signed-rank (zeros dropped)",
             "statistic": self.wilcoxon_statistic, "pvalue": self.wilcoxon_pvalue,
             "n_used": n_untied},
        ]).set_index("test")

    def notes(self) -> list[str]:
        return [f"patients where {self.model_a} is better: {self.n_a_better}, "
                f"{self.model_b} better: {self.n_b_better}, tied: {self.n_tied}",
                f"per-patient difference: mean {self.mean_difference:+.4f}, median "
                f"{self.median_difference:+.4f}",
                "sign-test statistic: patients where a is better; Wilcoxon: scipy's statistic "
                "(smaller rank sum), exact or approximate as scipy's method='auto' chooses"]

    def summary(self) -> str:
        """The tests, not the per-patient table (that is ``to_frame()``)."""
        with pd.option_context("display.width", 120, "display.float_format", "{:.3g}".format):
            table = self.tests_frame().to_string()
        return "\n".join([self.title(), table, *self.notes()])

    def _repr_html_(self) -> str:
        notes = "".join(f"<p><small>{n}</small></p>" for n in self.notes())
        return f"<p><b>{self.title()}</b></p>{self.tests_frame().to_html()}{notes}"


def per_patient_differences(paired: pd.DataFrame) -> PerPatientComparison:
    """Per patient: slices, accuracy of a and of b, and their difference; the exact sign test
    and the Wilcoxon signed-rank test of the differences (patients, not slices, as the unit)."""
    sums = _patient_sums(paired, "per_patient_differences")
    model_a, model_b = model_names(paired)
    n = sums["n_slices"]
    frame = pd.DataFrame({
        "n_slices": n, "accuracy_a": sums["correct_a"] / n, "accuracy_b": sums["correct_b"] / n,
        # (count a - count b) / n is exactly 0 for ties and equal for equal fractions
        "difference": (sums["correct_a"] - sums["correct_b"]) / n}).reset_index()
    difference = frame["difference"].to_numpy()
    n_a, n_b = int((difference > 0).sum()), int((difference < 0).sum())
    if n_a + n_b == 0:
        sign_p = wilcoxon_stat = wilcoxon_p = float("nan")
    else:
        sign_p = float(sps.binomtest(n_a, n_a + n_b, 0.5, alternative="two-sided").pvalue)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "sample size too small for normal"
            result = sps.wilcoxon(difference, zero_method="wilcox")
        wilcoxon_stat, wilcoxon_p = float(result.statistic), float(result.pvalue)
    return PerPatientComparison(
        model_a=model_a, model_b=model_b, frame=frame, n_a_better=n_a, n_b_better=n_b,
        n_tied=int(difference.size - n_a - n_b), sign_pvalue=sign_p,
        wilcoxon_statistic=wilcoxon_stat, wilcoxon_pvalue=wilcoxon_p,
        mean_difference=float(difference.mean()), median_difference=float(np.median(difference)))


# ---------------------------------------------------------------------------- the secondary tests

@dataclass
class SecondaryFamily(HolmResult):
    """Holm's correction of the secondary tests, read after the primary question."""

    def title(self) -> str:
        return (f"Secondary tests: Holm correction of {len(self.frame)} p-values at "
                f"alpha = {self.alpha}")

    def notes(self) -> list[str]:
        return ["secondary: read after the primary question; a secondary rejection does not "
                "replace the primary verdict"]


def secondary_family(pvalues: dict[str, float], alpha: float = 0.05) -> SecondaryFamily:
    """Holm-adjusted p-values of the secondary tests (name -> p-value), labelled "secondary"."""
    if not pvalues:
        raise ValueError("secondary_family: expected a dict of test name -> p-value, found none")
    names = list(pvalues)
    holm = holm_correction([pvalues[name] for name in names], alpha=alpha, names=names)
    frame = holm.frame.copy()
    frame.insert(1, "family", "secondary")
    return SecondaryFamily(frame=frame, alpha=alpha)

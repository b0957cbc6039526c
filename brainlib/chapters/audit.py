"""Audit of the paper's own numbers: Tables II-IV (section 4) and the dataset's class totals.

The only numbers typed in here are the paper's printed tables and dataset counts, kept as
input data below. Everything else (orientation, class totals, Table IV recomputed, rounding
rule, intervals, posteriors, the McNemar p-values the tables allow) is computed from them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats as sps
from statsmodels.stats.proportion import proportion_confint

from ..measures.metrics import ConfusionCounts, metrics_from_counts
from ..stats import (
    DEFAULT_PRIOR,
    MCNEMAR_METHODS,
    Result,
    mcnemar_pvalue,
    metric_posteriors,
    paired_difference_ci,
)

# ---------------------------------------------------------------------------- the paper, as printed

PRINTED_TABLES = {
    # Table II (ResNet50) and Table III (VGG16): header across "Tumor | No Tumor",
    # rows "Class 1" then "Class 0". The paper does not say which axis is the true class.
    "resnet50": ((1371, 3), (2, 2553)),
    "vgg16": ((1351, 26), (22, 2530)),
}
PRINTED_TABLE_IV = {  # percent, as printed
    "resnet50": {"precision": 99.7, "recall": 99.8, "f1": 99.7, "accuracy": 99.8},
    "vgg16": {"precision": 98.1, "recall": 98.3, "f1": 98.1, "accuracy": 98.7},
}
DATASET_TUMOR = 1373  # section 3: 3929 slices, 1373 with tumor, 2556 without
DATASET_NO_TUMOR = 2556
VALIDATION_FRACTION = 0.30  # "Train/validation split 70:30"

ORIENTATIONS = ("rows are true class", "columns are true class")


def read_table(cells, orientation: str) -> ConfusionCounts:
    """Confusion counts of a printed table under one reading of its axes.

    "rows are true class": row Class 1 = true tumor, columns = predicted Tumor / No Tumor.
    "columns are true class": column Tumor = true tumor, rows = predicted Class 1 / Class 0.
    """
    (top_left, top_right), (bottom_left, bottom_right) = cells
    if orientation == "rows are true class":
        return ConfusionCounts(tp=top_left, fn=top_right, fp=bottom_left, tn=bottom_right)
    if orientation == "columns are true class":
        return ConfusionCounts(tp=top_left, fp=top_right, fn=bottom_left, tn=bottom_right)
    raise ValueError(f"read_table: expected an orientation in {ORIENTATIONS}, found {orientation!r}")


def class_totals(tables=PRINTED_TABLES, dataset=(DATASET_TUMOR, DATASET_NO_TUMOR)) -> pd.DataFrame:
    """Class totals each reading of each table implies, against the dataset's counts."""
    rows = []
    for model, cells in tables.items():
        for orientation in ORIENTATIONS:
            c = read_table(cells, orientation)
            rows.append({"model": model, "orientation": orientation, "tp": c.tp, "fp": c.fp,
                         "fn": c.fn, "tn": c.tn, "n": c.n, "true_tumor": c.n_positive,
                         "true_no_tumor": c.n_negative, "dataset_tumor": dataset[0],
                         "dataset_no_tumor": dataset[1],
                         "matches_dataset": (c.n_positive, c.n_negative) == tuple(dataset)})
    return pd.DataFrame(rows)


def matching_orientations(tables=PRINTED_TABLES, dataset=(DATASET_TUMOR, DATASET_NO_TUMOR)) -> list[str]:
    """Readings under which every table's class totals equal the dataset's."""
    totals = class_totals(tables, dataset)
    agree = totals.groupby("orientation")["matches_dataset"].all()
    return [o for o in ORIENTATIONS if agree.get(o, False)]


def scoring_coverage(tables=PRINTED_TABLES, dataset=(DATASET_TUMOR, DATASET_NO_TUMOR),
                     validation_fraction: float = VALIDATION_FRACTION) -> pd.DataFrame:
    """How many slices each table counts, against the dataset and a 30% validation split."""
    n_dataset = sum(dataset)
    return pd.DataFrame([{
        "model": model, "slices_in_table": int(np.sum(cells)), "slices_in_dataset": n_dataset,
        "share_of_dataset": np.sum(cells) / n_dataset,
        "validation_slices_at_split": validation_fraction * n_dataset,
    } for model, cells in tables.items()])


# ---------------------------------------------------------------------------- Table IV

def _truncate(percent: float, digits: int = 1) -> float:
    scale = 10**digits
    return np.floor(percent * scale + 1e-9) / scale


def _half_up(percent: float, digits: int = 1) -> float:
    scale = 10**digits
    return np.floor(percent * scale + 0.5 + 1e-9) / scale


def recompute_table_iv(tables=PRINTED_TABLES, printed=PRINTED_TABLE_IV) -> pd.DataFrame:
    """Table IV recomputed from Tables II-III under both readings, rounded and truncated to
    the printed one decimal, with F1 also formed from the printed precision and recall."""
    rows = []
    for model, cells in tables.items():
        for orientation in ORIENTATIONS:
            c = read_table(cells, orientation)
            values = {k: float(v) * 100 for k, v in
                      metrics_from_counts(c.tp, c.fp, c.fn, c.tn).items()}
            candidates = [(m, "counts", values[m]) for m in ("precision", "recall", "f1", "accuracy")]
            p, r = printed[model]["precision"], printed[model]["recall"]
            candidates.append(("f1", "printed precision and recall", 2 * p * r / (p + r)))
            for metric, source, value in candidates:
                shown = printed[model][metric]
                rows.append({
                    "model": model, "orientation": orientation, "metric": metric,
                    "source": source, "printed": shown, "recomputed": value,
                    "rounded": _half_up(value), "truncated": _truncate(value),
                    "matches_rounded": bool(np.isclose(_half_up(value), shown)),
                    "matches_truncated": bool(np.isclose(_truncate(value), shown)),
                })
    return pd.DataFrame(rows)


def rounding_scores(table_iv: pd.DataFrame) -> pd.DataFrame:
    """How many printed Table IV entries each (reading, rounding rule) reproduces from counts."""
    from_counts = table_iv[table_iv["source"] == "counts"]
    scores = from_counts.groupby("orientation")[["matches_rounded", "matches_truncated"]].sum()
    scores["entries"] = from_counts.groupby("orientation").size()
    return scores.reset_index()


# ---------------------------------------------------------------------------- intervals on the paper's counts

def paper_intervals(counts: dict[str, ConfusionCounts], confidence: float = 0.95,
                    prior=DEFAULT_PRIOR) -> pd.DataFrame:
    """Wilson and Clopper-Pearson CIs and Beta posteriors (`stats.DEFAULT_PRIOR`) for
    accuracy, sensitivity (= recall), specificity and precision of each table."""
    rows = []
    for model, c in counts.items():
        posteriors = metric_posteriors(c, prior=prior, credible=confidence, model=model)
        for metric, post in posteriors.posteriors.items():
            k, n = post.successes, post.trials
            wilson = proportion_confint(k, n, alpha=1 - confidence, method="wilson")
            exact = proportion_confint(k, n, alpha=1 - confidence, method="beta")
            low, high = post.interval()
            rows.append({"model": model, "metric": metric, "successes": k, "trials": n,
                         "estimate": k / n, "wilson_low": wilson[0], "wilson_high": wilson[1],
                         "exact_low": exact[0], "exact_high": exact[1],
                         "posterior_mean": post.mean, "credible_low": low, "credible_high": high})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------- what the marginals allow

@dataclass
class McNemarRange(Result):
    """Every paired table consistent with two published confusion matrices.

    Only the number of slices both models got wrong (``both_wrong``) is unknown; for each
    feasible value the McNemar p-values, the accuracy difference CI and P(a better) follow.
    """

    model_a: str
    model_b: str
    stratified_by_class: bool
    note: str
    frame: pd.DataFrame

    def pvalue_range(self) -> pd.DataFrame:
        """Smallest and largest p-value each McNemar variant can take."""
        return pd.DataFrame({m: {"min": self.frame[m].min(), "max": self.frame[m].max()}
                             for m in MCNEMAR_METHODS}).T

    def to_frame(self) -> pd.DataFrame:
        return self.frame.copy()

    def values(self, prefix: str = "paper") -> dict:
        """The numbers chapter 06's prose quotes, by name: each variant's p-value range, the
        range of slices both models got wrong, the difference and the widest CI."""
        found = {f"{prefix}_p_{method}_{end}": float(value)
                 for method, ends in self.pvalue_range().iterrows()
                 for end, value in ends.items()}
        return {**found,
                f"{prefix}_both_wrong_min": int(self.frame["both_wrong"].min()),
                f"{prefix}_both_wrong_max": int(self.frame["both_wrong"].max()),
                f"{prefix}_difference": float(self.frame["difference"].iloc[0]),
                f"{prefix}_ci_low": float(self.frame["ci_low"].min()),
                f"{prefix}_ci_high": float(self.frame["ci_high"].max())}

    def title(self) -> str:
        return f"McNemar p-values allowed by the published tables, {self.model_a} vs {self.model_b}"

    def notes(self) -> list[str]:
        return [self.note]

    def summary(self) -> str:
        with pd.option_context("display.width", 120, "display.float_format", "{:.4g}".format):
            return "\n".join([self.title(), self.note, self.pvalue_range().to_string(),
                              self.frame.to_string(index=False)])


def mcnemar_range(counts_a: ConfusionCounts, counts_b: ConfusionCounts, model_a: str = "a",
                  model_b: str = "b", confidence: float = 0.95) -> McNemarRange:
    """All paired 2x2 tables two confusion matrices allow, assuming both score the same slices.

    When the class totals agree, errors can only coincide within a class (a missed tumor of
    one model with a missed tumor of the other); otherwise only the overall error counts are used.
    """
    if counts_a.n != counts_b.n:
        raise ValueError(f"mcnemar_range: expected both tables to count the same slices, found "
                         f"{counts_a.n} and {counts_b.n}")
    n = counts_a.n
    wrong_a, wrong_b = counts_a.fp + counts_a.fn, counts_b.fp + counts_b.fn
    same_classes = (counts_a.n_positive, counts_a.n_negative) == (counts_b.n_positive, counts_b.n_negative)
    if same_classes:
        per_class = [(counts_a.fn, counts_b.fn, counts_a.n_positive),
                     (counts_a.fp, counts_b.fp, counts_a.n_negative)]
        note = ("class totals agree: both-wrong slices counted within each class "
                f"(missed tumors {counts_a.fn} and {counts_b.fn}, false alarms {counts_a.fp} and {counts_b.fp})")
    else:
        per_class = [(wrong_a, wrong_b, n)]
        note = (f"class totals differ ({counts_a.n_positive}/{counts_a.n_negative} vs "
                f"{counts_b.n_positive}/{counts_b.n_negative}): the tables cannot describe the same "
                "labelled slices; bounds use overall error counts only")
    low = sum(max(0, wa + wb - nk) for wa, wb, nk in per_class)
    high = sum(min(wa, wb) for wa, wb, _ in per_class)
    rows = []
    for both_wrong in range(low, high + 1):
        b, c = wrong_b - both_wrong, wrong_a - both_wrong  # b: a right, b wrong
        table = np.array([[n - wrong_a - wrong_b + both_wrong, b], [c, both_wrong]])
        row = {"both_wrong": both_wrong, "b": b, "c": c}
        for method in MCNEMAR_METHODS:
            row[method] = mcnemar_pvalue(b, c, method)[1]
        difference, ci_low, ci_high = paired_difference_ci(table, confidence)
        row.update(difference=difference, ci_low=ci_low, ci_high=ci_high,
                   p_a_better=float(sps.beta.sf(0.5, b + 1, c + 1)))
        rows.append(row)
    return McNemarRange(model_a=model_a, model_b=model_b, stratified_by_class=same_classes,
                        note=note, frame=pd.DataFrame(rows))


# ---------------------------------------------------------------------------- the whole audit

@dataclass
class PaperAudit(Result):
    """Everything the audit computes, with findings written from the computed values."""

    totals: pd.DataFrame
    coverage: pd.DataFrame
    table_iv: pd.DataFrame
    rounding: pd.DataFrame
    matching_orientation: str | None
    intervals: pd.DataFrame
    mcnemar: dict[str, McNemarRange] = field(default_factory=dict)
    findings: list[str] = field(default_factory=list)

    def title(self) -> str:
        return "Audit of the paper's Tables II-IV: Table IV recomputed under both readings"

    def notes(self) -> list[str]:
        return self.findings

    def to_frame(self) -> pd.DataFrame:
        """Table IV, printed against recomputed, under both readings."""
        return self.table_iv.copy()

    def rounding_values(self) -> dict:
        """Under the matching reading: how many Table IV entries truncation and rounding
        reproduce, and for how many models F1 follows from the counts and from the printed
        precision and recall."""
        scores = self.rounding.set_index("orientation").loc[self.matching_orientation]
        table_iv = self.table_iv[self.table_iv["orientation"] == self.matching_orientation]
        f1 = table_iv[table_iv["metric"] == "f1"]
        reproduced = f1["matches_rounded"] | f1["matches_truncated"]
        from_counts = f1["source"] == "counts"
        return {"table_iv_entries": int(scores["entries"]),
                "table_iv_truncated": int(scores["matches_truncated"]),
                "table_iv_rounded": int(scores["matches_rounded"]),
                "f1_models": int(from_counts.sum()),
                "f1_from_counts": int(reproduced[from_counts].sum()),
                "f1_from_printed": int(reproduced[~from_counts].sum())}

    def summary(self) -> str:
        with pd.option_context("display.width", 140, "display.max_columns", 20,
                               "display.float_format", "{:.4g}".format):
            parts = ["Audit of the paper's Tables II-IV", *[f"- {f}" for f in self.findings],
                     "", "Class totals by reading:", self.totals.to_string(index=False),
                     "", "Table IV recomputed:", self.table_iv.to_string(index=False),
                     "", "Intervals on the paper's counts:", self.intervals.to_string(index=False)]
        for orientation, result in self.mcnemar.items():
            parts += ["", f"[{orientation}] {result.summary()}"]
        return "\n".join(parts)


def audit_paper(tables=PRINTED_TABLES, printed=PRINTED_TABLE_IV,
                dataset=(DATASET_TUMOR, DATASET_NO_TUMOR), confidence: float = 0.95,
                model_a: str = "resnet50", model_b: str = "vgg16") -> PaperAudit:
    """Run every check of the audit on the printed tables."""
    totals = class_totals(tables, dataset)
    coverage = scoring_coverage(tables, dataset)
    table_iv = recompute_table_iv(tables, printed)
    rounding = rounding_scores(table_iv)
    matching = matching_orientations(tables, dataset)
    chosen = matching[0] if matching else None
    intervals = paper_intervals({m: read_table(tables[m], chosen or ORIENTATIONS[0])
                                 for m in tables}, confidence)
    ranges = {o: mcnemar_range(read_table(tables[model_a], o), read_table(tables[model_b], o),
                               model_a, model_b, confidence) for o in ORIENTATIONS}

    findings = []
    for o in ORIENTATIONS:
        rows = totals[totals["orientation"] == o]
        implied = ", ".join(f"{r.model} {r.true_tumor}/{r.true_no_tumor}" for r in rows.itertuples())
        verdict = "matches" if o in matching else "does not match"
        findings.append(f"Reading '{o}' implies tumor/no-tumor totals {implied}; "
                        f"{verdict} the dataset's {dataset[0]}/{dataset[1]}.")
    for r in coverage.itertuples():
        findings.append(f"{r.model}: the table counts {r.slices_in_table} slices = "
                        f"{r.share_of_dataset:.0%} of the dataset, not the "
                        f"{r.validation_slices_at_split:.0f} of a {VALIDATION_FRACTION:.0%} "
                        "validation split: training slices were scored too, or held-out "
                        "predictions of all folds were pooled.")
    for r in rounding.itertuples():
        findings.append(f"Reading '{r.orientation}': {r.matches_rounded}/{r.entries} printed "
                        f"Table IV entries equal the recomputed value rounded, "
                        f"{r.matches_truncated}/{r.entries} truncated.")
    if chosen:
        f1 = table_iv[(table_iv["orientation"] == chosen) & (table_iv["metric"] == "f1")]
        for r in f1.itertuples():
            rules = [rule for rule, hit in (("rounded", r.matches_rounded),
                                            ("truncated", r.matches_truncated)) if hit]
            verdict = "reproduced when " + " or ".join(rules) if rules else "not reproduced"
            findings.append(f"{r.model} F1 printed {r.printed}; from {r.source} it is "
                            f"{r.recomputed:.5f} ({verdict}).")
        frame = ranges[chosen].frame
        findings.append(
            f"Under '{chosen}', the tables allow {frame['both_wrong'].min()}-"
            f"{frame['both_wrong'].max()} slices that both models got wrong; exact McNemar p "
            f"then ranges from {frame['exact'].min():.2g} to {frame['exact'].max():.2g} "
            "(slice-level, treating slices of one patient as independent).")
    return PaperAudit(totals=totals, coverage=coverage, table_iv=table_iv, rounding=rounding,
                      matching_orientation=chosen, intervals=intervals, mcnemar=ranges,
                      findings=findings)

"""Bayesian posteriors of the metrics and of the paired accuracy difference.

Beta-Binomial posteriors of each metric (Bayes' rule, eq. 13); a Dirichlet posterior of the
paired slice outcomes with a region of practical equivalence (ROPE); and its patient-level
variant, a Bayesian bootstrap over patients.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats as sps

from ..measures.metrics import ConfusionCounts, slice_metrics
from .pairing import check_one_experiment, model_names, paired_table
from ..measures.results import Result, as_rng

DEFAULT_PRIOR = (1.0, 1.0)
"""The one default prior of every Beta posterior of a proportion in this library (uniform
Beta(1, 1)), in `stats` and in the audit of the paper's tables alike."""


@dataclass
class BetaPosterior(Result):
    """Beta posterior of a proportion: Beta(prior_alpha + successes, prior_beta + failures)."""

    name: str
    successes: int
    trials: int
    prior_alpha: float
    prior_beta: float
    credible: float

    @property
    def alpha(self) -> float:
        return self.prior_alpha + self.successes

    @property
    def beta(self) -> float:
        return self.prior_beta + self.trials - self.successes

    @property
    def mean(self) -> float:
        return self.alpha / (self.alpha + self.beta)

    def interval(self, mass: float | None = None) -> tuple[float, float]:
        """Equal-tailed credible interval."""
        mass = self.credible if mass is None else mass
        low, high = sps.beta.ppf([(1 - mass) / 2, (1 + mass) / 2], self.alpha, self.beta)
        return float(low), float(high)

    def pdf(self, x) -> np.ndarray:
        return sps.beta.pdf(x, self.alpha, self.beta)

    def prob_above(self, threshold: float) -> float:
        return float(sps.beta.sf(threshold, self.alpha, self.beta))

    def title(self) -> str:
        return (f"Beta posterior of {self.name}: prior Beta({self.prior_alpha:g}, "
                f"{self.prior_beta:g}), {self.successes}/{self.trials}")

    def to_frame(self) -> pd.DataFrame:
        low, high = self.interval()
        return pd.DataFrame([{"quantity": self.name, "successes": self.successes,
                              "trials": self.trials, "observed": self.successes / self.trials
                              if self.trials else np.nan, "posterior_mean": self.mean,
                              "ci_low": low, "ci_high": high, "alpha": self.alpha,
                              "beta": self.beta}])


def beta_posterior(successes: int, trials: int, prior=DEFAULT_PRIOR, credible: float = 0.95,
                   name: str = "proportion") -> BetaPosterior:
    """Beta-Binomial posterior (Bayes' rule, eq. 13); the default prior is `DEFAULT_PRIOR`,
    the uniform Beta(1, 1) (Beta(0.5, 0.5) would be Jeffreys')."""
    if not 0 <= successes <= trials:
        raise ValueError(f"beta_posterior: expected 0 <= successes <= trials, found "
                         f"{successes} of {trials}")
    return BetaPosterior(name=name, successes=int(successes), trials=int(trials),
                         prior_alpha=float(prior[0]), prior_beta=float(prior[1]),
                         credible=credible)


@dataclass
class MetricPosteriors(Result):
    """Beta posteriors of one model's accuracy, sensitivity, specificity and precision."""

    model: str
    posteriors: dict[str, BetaPosterior]

    def title(self) -> str:
        first = next(iter(self.posteriors.values()))
        return (f"Posteriors of {self.model}, prior Beta({first.prior_alpha:g}, "
                f"{first.prior_beta:g}) on each, {first.credible:.0%} equal-tailed intervals")

    def to_frame(self) -> pd.DataFrame:
        frame = pd.concat([p.to_frame() for p in self.posteriors.values()], ignore_index=True)
        frame.insert(0, "model", self.model)
        return frame


def metric_posteriors(counts: ConfusionCounts, prior=DEFAULT_PRIOR, credible: float = 0.95,
                      model: str = "model") -> MetricPosteriors:
    """Beta posteriors of accuracy (30), sensitivity (34), specificity (35), precision (31),
    each treated as a binomial proportion of its own denominator."""
    parts = {"accuracy": (counts.tp + counts.tn, counts.n),
             "sensitivity": (counts.tp, counts.tp + counts.fn),
             "specificity": (counts.tn, counts.tn + counts.fp),
             "precision": (counts.tp, counts.tp + counts.fp)}
    return MetricPosteriors(model=model, posteriors={
        name: beta_posterior(k, n, prior, credible, name) for name, (k, n) in parts.items()})


def posterior_table(predictions: pd.DataFrame, prior=DEFAULT_PRIOR,
                    credible: float = 0.95) -> pd.DataFrame:
    """``metric_posteriors`` for every model (and scheme, control) of a predictions table,
    slices pooled over folds."""
    rows = []
    for row in slice_metrics(predictions).to_dict("records"):
        counts = ConfusionCounts(tp=row["tp"], fp=row["fp"], fn=row["fn"], tn=row["tn"])
        frame = metric_posteriors(counts, prior, credible, model=row["model"]).to_frame()
        for key in ("control", "scheme"):  # inserted in front of each other: scheme first
            if key in row:
                frame.insert(1, key, row[key])
        rows.append(frame)
    return pd.concat(rows, ignore_index=True)


@dataclass
class PairedPosterior(Result):
    """Posterior of accuracy a - accuracy b, with P(a better) and a ROPE."""

    model_a: str
    model_b: str
    method: str
    prior: str
    n_units: int
    rope: float
    credible: float
    mean_difference: float
    ci_low: float
    ci_high: float
    p_a_better: float
    """P(difference > 0)."""
    p_a_better_beyond_rope: float
    p_rope: float
    p_b_better_beyond_rope: float
    accuracy_a: float
    accuracy_b: float
    draws: np.ndarray = field(repr=False)
    """Posterior draws of the difference a - b."""

    def title(self) -> str:
        return (f"Posterior of accuracy {self.model_a} - {self.model_b} ({self.method}; "
                f"prior {self.prior}; ROPE +-{self.rope:g})")

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([{
            "model_a": self.model_a, "model_b": self.model_b, "method": self.method,
            "n_units": self.n_units, "mean_difference": self.mean_difference,
            "ci_low": self.ci_low, "ci_high": self.ci_high, "p_a_better": self.p_a_better,
            "p_a_better_beyond_rope": self.p_a_better_beyond_rope, "p_rope": self.p_rope,
            "p_b_better_beyond_rope": self.p_b_better_beyond_rope,
            "accuracy_a": self.accuracy_a, "accuracy_b": self.accuracy_b}])


def _rope_probabilities(draws, rope):
    return (float(np.mean(draws > rope)), float(np.mean(np.abs(draws) <= rope)),
            float(np.mean(draws < -rope)))


def paired_posterior(paired, prior: float = 1.0, rope: float = 0.01, credible: float = 0.95,
                     n_draws: int = 100_000, seed=0) -> PairedPosterior:
    """Dirichlet posterior over the four paired cells (both right, only a right, only b right,
    both wrong), prior Dirichlet(prior, ..., prior). P(a better) = P(theta_10 > theta_01) is
    exact (a Beta tail); the ROPE probabilities and the interval come from draws."""
    table = paired_table(paired)
    model_a, model_b = model_names(paired)
    (n11, n10), (n01, n00) = table.tolist()
    alpha = np.array([n11, n10, n01, n00], dtype=np.float64) + prior
    if (alpha <= 0).any():
        raise ValueError(f"paired_posterior: prior {prior} leaves a Dirichlet parameter <= 0: {alpha}")
    theta = as_rng(seed).dirichlet(alpha, size=n_draws)
    draws = theta[:, 1] - theta[:, 2]
    low, high = np.quantile(draws, [(1 - credible) / 2, (1 + credible) / 2])
    beyond_a, in_rope, beyond_b = _rope_probabilities(draws, rope)
    total = alpha.sum()
    return PairedPosterior(
        model_a=model_a, model_b=model_b, method="Dirichlet over paired slice outcomes",
        prior=f"Dirichlet({prior:g}, {prior:g}, {prior:g}, {prior:g})", n_units=int(table.sum()),
        rope=rope, credible=credible, mean_difference=float((alpha[1] - alpha[2]) / total),
        ci_low=float(low), ci_high=float(high),
        p_a_better=float(sps.beta.sf(0.5, alpha[1], alpha[2])),
        p_a_better_beyond_rope=beyond_a, p_rope=in_rope, p_b_better_beyond_rope=beyond_b,
        accuracy_a=float((alpha[0] + alpha[1]) / total),
        accuracy_b=float((alpha[0] + alpha[2]) / total), draws=draws)


def patient_paired_posterior(paired: pd.DataFrame, cluster: str = "patient_id",
                             rope: float = 0.01, credible: float = 0.95, n_draws: int = 20_000,
                             seed=0) -> PairedPosterior:
    """Patient-level posterior of the accuracy difference: Bayesian bootstrap (Rubin 1981)
    over patients, weights ~ Dirichlet(1, ..., 1), so a patient's slices move together and
    count as one piece of evidence, not many."""
    check_one_experiment(paired, "patient_paired_posterior")
    model_a, model_b = model_names(paired)
    per_patient = paired.groupby(cluster, observed=True).agg(
        n=("y_true", "size"), correct_a=("correct_a", "sum"), correct_b=("correct_b", "sum"))
    n = per_patient["n"].to_numpy(np.float64)
    gain = (per_patient["correct_a"] - per_patient["correct_b"]).to_numpy(np.float64)
    n_patients = len(per_patient)
    rng = as_rng(seed)
    draws = np.empty(n_draws)
    accuracy_a = np.empty(n_draws)
    accuracy_b = np.empty(n_draws)
    chunk = max(1, 2_000_000 // n_patients)  # keep the weight matrix near 16 MB
    for start in range(0, n_draws, chunk):
        stop = min(n_draws, start + chunk)
        weights = rng.dirichlet(np.ones(n_patients), size=stop - start)
        slices = weights @ n
        draws[start:stop] = weights @ gain / slices
        accuracy_a[start:stop] = weights @ per_patient["correct_a"].to_numpy(np.float64) / slices
        accuracy_b[start:stop] = weights @ per_patient["correct_b"].to_numpy(np.float64) / slices
    low, high = np.quantile(draws, [(1 - credible) / 2, (1 + credible) / 2])
    beyond_a, in_rope, beyond_b = _rope_probabilities(draws, rope)
    return PairedPosterior(
        model_a=model_a, model_b=model_b, method=f"Bayesian bootstrap over {cluster}",
        prior=f"Dirichlet(1, ..., 1) weights on {n_patients} patients", n_units=n_patients,
        rope=rope, credible=credible, mean_difference=float(draws.mean()), ci_low=float(low),
        ci_high=float(high), p_a_better=float(np.mean(draws > 0)),
        p_a_better_beyond_rope=beyond_a, p_rope=in_rope, p_b_better_beyond_rope=beyond_b,
        accuracy_a=float(accuracy_a.mean()), accuracy_b=float(accuracy_b.mean()), draws=draws)

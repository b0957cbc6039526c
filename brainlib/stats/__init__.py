"""Paired comparison of two models on the same slices, aware that slices come from patients.

The paper compares ResNet50 with VGG16 by two confusion matrices and no test. This package
gives the tests it promised, one module per family of methods:

- ``pairing``: one row per slice scored by both models (``pair_predictions``), the input of
  every paired method, and its 2x2 table of correct/wrong;
- ``mcnemar``: McNemar (exact, mid-p, chi-square with and without continuity correction,
  and the patient-clustered Durkalski and Obuchowski tests) with a CI of the accuracy
  difference, and per-class tests;
- ``clustered``: the patient-cluster standard error and interval of an accuracy difference
  (t with K - 1 degrees of freedom below ``SMALL_SAMPLE_PATIENTS``), the detectable
  difference, and the exact sign-flip test over patients;
- ``resample``: resampling whole patients, a percentile interval of any statistic from it
  (``patient_bootstrap``), and the bootstrap of the mean per-patient Dice;
- ``holm``: Holm's correction of a family of p-values;
- ``bootstrap``: bootstrap CIs of eqs. (30)-(35) for both models and their difference,
  resampling slices or whole patients;
- ``roc``: patient-clustered bootstrap CIs of the AUCs and a bootstrap band of the ROC curve;
- ``bayes``: Beta-Binomial and Dirichlet posteriors (Bayes' rule, eq. 13) with a region of
  practical equivalence (ROPE) and a patient-level variant;
- ``delong``: DeLong's test of two correlated AUCs with a patient-clustered variant;
- ``folds``: Nadeau-Bengio and Bayesian correlated t-tests across folds;
- ``results``: ``Result``, the base class of every result object (``summary()``,
  ``to_frame()``, notebook display).

Model "a" is the first model passed to ``pair_predictions`` (ResNet50 by default) and every
difference is a - b. Slices of one patient are not independent: where a method has a
patient-level form, prefer it.

Every public name of the modules is available here, as ``bl.stats.mcnemar_test`` and so on.
"""

from __future__ import annotations

from .bayes import (
    DEFAULT_PRIOR,
    BetaPosterior,
    MetricPosteriors,
    PairedPosterior,
    beta_posterior,
    metric_posteriors,
    paired_posterior,
    patient_paired_posterior,
    posterior_table,
)
from .bootstrap import BootstrapResult, bootstrap_metrics
from .clustered import (
    SMALL_SAMPLE_PATIENTS,
    SignFlipTest,
    cluster_interval,
    cluster_standard_error,
    distribution_name,
    minimum_detectable_difference,
    proportion_interval,
    reference_distribution,
    sign_flip_test,
)
from .delong import (
    AUC_TRANSFORMS,
    AucInterval,
    DeLongResult,
    auc_interval,
    delong_covariance,
    delong_test,
)
from .folds import (
    CorrectedTTestResult,
    CorrelatedTTestResult,
    FoldComparison,
    bayesian_correlated_ttest,
    compare_folds,
    corrected_resampled_ttest,
)
from .holm import HolmResult, holm_correction
from .mcnemar import (
    CLUSTERED_MCNEMAR_METHODS,
    MCNEMAR_METHODS,
    McNemarResult,
    clustered_mcnemar_methods,
    clustered_mcnemar_pvalue,
    discordance_by_cluster,
    mcnemar_methods,
    mcnemar_pvalue,
    mcnemar_test,
    paired_difference_ci,
    paired_metric_tests,
)
from .pairing import PAIR_KEYS, pair_predictions, paired_table
from .resample import (
    MeanDiceInterval,
    PatientInterval,
    mean_dice_interval,
    patient_bootstrap,
    patient_members,
    patient_resamples,
)
from ..measures.results import Result
from .roc import RocBand, cluster_bootstrap_auc, roc_confidence_band

__all__ = [
    "Result", "DEFAULT_PRIOR",
    # pairing
    "PAIR_KEYS", "pair_predictions", "paired_table",
    # McNemar and Holm
    "MCNEMAR_METHODS", "McNemarResult", "mcnemar_test", "mcnemar_methods", "mcnemar_pvalue",
    "paired_difference_ci", "paired_metric_tests", "HolmResult", "holm_correction",
    "CLUSTERED_MCNEMAR_METHODS", "clustered_mcnemar_pvalue", "clustered_mcnemar_methods",
    "discordance_by_cluster",
    # patient-clustered accuracy difference
    "SMALL_SAMPLE_PATIENTS", "SignFlipTest", "cluster_interval", "cluster_standard_error",
    "distribution_name", "minimum_detectable_difference", "proportion_interval",
    "reference_distribution",
    "sign_flip_test",
    # resampling patients
    "PatientInterval", "patient_bootstrap", "patient_members", "patient_resamples",
    "MeanDiceInterval", "mean_dice_interval",
    # bootstrap
    "BootstrapResult", "bootstrap_metrics", "cluster_bootstrap_auc", "RocBand",
    "roc_confidence_band",
    # Bayesian
    "BetaPosterior", "beta_posterior", "MetricPosteriors", "metric_posteriors",
    "posterior_table", "PairedPosterior", "paired_posterior", "patient_paired_posterior",
    # DeLong
    "delong_covariance", "DeLongResult", "delong_test", "AucInterval", "auc_interval",
    "AUC_TRANSFORMS",
    # across folds
    "CorrectedTTestResult", "corrected_resampled_ttest", "CorrelatedTTestResult",
    "bayesian_correlated_ttest", "FoldComparison", "compare_folds",
]

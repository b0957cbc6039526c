"""Trained units rebuilt from their folders, for analyses after training (uncertainty,
Grad-CAM): the same rows, seeds and weights the runner used, nothing retrained.

A unit folder holds its weights (`head.weights.h5` with a frozen base, which is rebuilt
from the run's seed or weights file; `model.weights.h5` otherwise) and `threshold.json`;
`unit_rows` redraws its fit, inner-validation and test rows exactly as the runner did.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import params as schema
from . import runner

from ..config.params import MAIN_CONTROL, MAIN_SCHEME


@dataclass
class TrainedUnit:
    """One finished unit of the main experiment: its folder, rows and threshold."""
    model: str
    fold: int
    folder: Path
    rows: runner.UnitRows
    threshold: float

    @property
    def predictions(self) -> pd.DataFrame:
        return runner.read_units([self.folder])


def main_units(params: schema.Params, model: str, manifest: pd.DataFrame) -> list[TrainedUnit]:
    """The model's finished units of the main experiment (patient folds, true labels), in
    fold order; a clear error for a unit that was never trained."""
    from .experiment import model_folder

    manifest = manifest.reset_index(drop=True)
    folder = model_folder(params, model, manifest)
    units = []
    for _, scheme, control, fold in runner.list_units(manifest, [model], [MAIN_SCHEME],
                                                      [MAIN_CONTROL], params.folds):
        unit_dir = folder / runner.unit_path(scheme, control, fold)
        if not (unit_dir / "predictions.csv").exists():
            raise FileNotFoundError(f"{unit_dir} has no predictions.csv: train the run's units "
                                    "first (python -m brainlib study, or study.run_models)")
        rows = runner.unit_rows(manifest, scheme, control, fold, params.protocol, params.seed,
                                params.validation_fraction, unit_dir.name)
        threshold = json.loads((unit_dir / "threshold.json").read_text())["threshold"]
        units.append(TrainedUnit(model, int(fold), unit_dir, rows, float(threshold)))
    return units


def load_classifier(family, unit: TrainedUnit):
    """(base, head) of a classifier unit: the frozen base rebuilt as in training (or the
    whole fine-tuned model's), the unit's head weights loaded."""
    from .. import models
    from .classifier import build_frozen_base

    config = family.config
    whole = unit.folder / "model.weights.h5"
    if whole.exists():
        classifier = models.build_classifier(
            family.name, config.image_size, config.weights, config.freeze_base,
            config.trainable_top_blocks, seed=config.seed, head_seed=unit.rows.seed,
            standardize_features=config.standardize_features)
        classifier.load_weights(whole)
        return models.base_of(classifier), models.head_of(classifier)
    base = family.base if family.base is not None else build_frozen_base(family.name, config)
    head = models.build_head(models.pooled_feature_shape(base), seed=unit.rows.seed,
                             standardize_features=config.standardize_features)
    head.load_weights(unit.folder / "head.weights.h5")
    return base, head


def classifier_features(family, base, rows) -> np.ndarray:
    """Pooled base features of manifest rows: from the run's feature cache when the family
    has one, else computed (frozen or fine-tuned base, inference mode)."""
    from .classifier import extract_features

    if family.features is not None:
        return family.features[rows]
    return extract_features(base, family.images[rows], progress=False)


def load_segmenter(family, unit: TrainedUnit):
    """The unit's U-Net with its trained weights."""
    from . import segmenter

    model = segmenter.build_model(family.config, unit.rows.seed)
    model.load_weights(unit.folder / "model.weights.h5")
    return model

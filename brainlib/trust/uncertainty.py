"""Uncertainty of each prediction: Monte Carlo dropout for the paper's classifiers,
test-time augmentation for the U-Net, stored beside each unit's predictions.

The paper's head has dropout 0.3 after each dense layer (its Table I). Keeping dropout on
at prediction time and averaging T passes approximates a Bayesian model average (Gal &
Ghahramani 2016); the spread of the passes is the model's uncertainty about each slice
(`calibration.predictive_entropy`, `calibration.mutual_information`). With a frozen base the
passes run over the cached base features, so T = 50 costs seconds, not 50 forward passes of
the base.

`annotate_unit` writes a unit's `uncertainty.csv` (per test slice: MC/TTA mean, predictive
entropy, mutual information, margin to the threshold, the temperature fitted on the unit's
inner-validation slices and the temperature-scaled p_tumor); `with_uncertainty` joins those
columns onto the predictions table.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..config.params import SEGMENTER


def mc_dropout_passes(head, features, passes: int = 50, batch_size: int = 1024,
                      seed: int = 0) -> np.ndarray:
    """p_tumor of every feature row under `passes` dropout masks: array (passes, N).

    The head's own dropout layers draw the masks (their seeds are fixed when the head is
    built), after `keras.utils.set_random_seed(seed)`: the same head, features and seed give
    the same passes."""
    import keras

    if passes < 1:
        raise ValueError(f"passes must be at least 1, found {passes}")
    keras.utils.set_random_seed(seed)
    features = np.asarray(features, dtype=np.float32)
    out = np.empty((passes, len(features)), dtype=np.float64)
    for t in range(passes):
        for start in range(0, len(features), batch_size):
            chunk = features[start:start + batch_size]
            out[t, start:start + len(chunk)] = np.asarray(head(chunk, training=True))[:, 1]
    return out


# ----------------------------------------------------------------------------- the U-Net

# Test-time augmentation for the U-Net, not MC dropout: the U-Net has no dropout, and adding
# spatial dropout would change its architecture and retrain every unit. The views are the
# U-Net's own training transforms (horizontal flip, rotations within its +-15 degrees), so
# each is an input the model was trained to handle; the spread of its answers over them is
# its sensitivity to those nuisances (not, like MC dropout, its parameter uncertainty).
TTA_VIEWS = tuple((flip, angle) for flip in (False, True) for angle in (0.0, -15.0, -7.5, 7.5, 15.0))
BACKGROUND_LOGIT = -20.0  # what a rotated-back logit map holds where the view had no pixels


def _view(images, flip: bool, angle: float) -> np.ndarray:
    from scipy import ndimage

    out = np.asarray(images)[:, :, ::-1] if flip else np.asarray(images)
    if angle:
        out = ndimage.rotate(out, angle, axes=(1, 2), reshape=False, order=1, mode="constant", cval=0)
    return np.ascontiguousarray(out)


def _unview(logits, flip: bool, angle: float) -> np.ndarray:
    from scipy import ndimage

    out = np.asarray(logits, dtype=np.float32)
    if angle:
        out = ndimage.rotate(out, -angle, axes=(1, 2), reshape=False, order=1, mode="constant",
                             cval=BACKGROUND_LOGIT)
    return np.ascontiguousarray(out[:, :, ::-1] if flip else out)


def tta_passes(predict_logits, images, rows, slice_score: str, views=TTA_VIEWS):
    """The U-Net over each view of `images`, its logits mapped back to the slice's frame:
    (slice p_tumor per view (V, N), pixel predictive entropy (N, S, S), pixel mutual
    information (N, S, S)). `predict_logits`: uint8 images -> pixel logits."""
    from . import calibration
    from ..training import scores

    samples, mean_p, mean_entropy = [], 0.0, 0.0
    for flip, angle in views:
        logits = _unview(predict_logits(_view(images, flip, angle)), flip, angle)
        table = scores.slice_scores(logits, rows)
        samples.append(scores.p_tumor_from_score(scores.score_values(table, slice_score), slice_score))
        p = 1 / (1 + np.exp(-logits.astype(np.float64)))
        mean_p = mean_p + p / len(views)
        mean_entropy = mean_entropy + calibration.binary_entropy(p) / len(views)
    entropy = calibration.binary_entropy(mean_p)
    return np.asarray(samples), entropy, np.maximum(entropy - mean_entropy, 0.0)


# ----------------------------------------------------------------------------- per unit

FORMAT = 1


def _settings(params, model: str) -> dict:
    views = "tta:" + ",".join(f"{'h' if f else ''}{a:+g}" for f, a in TTA_VIEWS)
    return {"format": FORMAT, "model": model, "method": views if model == SEGMENTER else "mc_dropout",
            "passes": len(TTA_VIEWS) if model == SEGMENTER else int(params.mc_passes)}


def _p_threshold(model: str, threshold: float, slice_score: str | None) -> float:
    from ..training import scores

    if model == SEGMENTER:
        return float(scores.p_tumor_from_score(np.array([threshold]), slice_score)[0])
    return threshold


def unit_table(unit, p_tumor, samples, validation_p, p_threshold, validation_labels) -> pd.DataFrame:
    """The extra columns of one unit's test slices: MC/TTA mean, predictive entropy, mutual
    information, margin (closeness to the unit's threshold in log-odds; larger is more
    uncertain), and the temperature fitted on the unit's inner-validation slices with the
    temperature-scaled p_tumor (NaN without inner validation, as under the paper's protocol)."""
    from . import calibration

    rows = unit.predictions[["patient_id", "slice_number"]].copy()
    rows["p_mean"] = samples.mean(axis=0)
    rows["entropy"] = calibration.predictive_entropy(samples)
    rows["mutual_information"] = calibration.mutual_information(samples)
    rows["margin"] = -np.abs(calibration.logit(p_tumor) - calibration.logit(p_threshold))
    fitted = len(validation_labels) > 0 and len(np.unique(validation_labels)) == 2
    temperature = calibration.fit_temperature(validation_labels, validation_p) if fitted else np.nan
    rows["temperature"] = temperature
    rows["p_calibrated"] = (calibration.apply_temperature(p_tumor, temperature) if fitted
                            else np.nan)
    return rows


def annotate_unit(params, family, unit, seed: int = 0) -> pd.DataFrame:
    """Compute (or read back) one unit's `uncertainty.csv` (and, for the U-Net,
    `uncertainty_maps.npz`: per-pixel entropy and mutual information, float16)."""
    import json

    from ..data import write_atomic, write_csv_atomic, write_text_atomic
    from ..training import scores, segmenter, unit_models

    target, stamp = unit.folder / "uncertainty.csv", unit.folder / "uncertainty.json"
    settings = _settings(params, unit.model)
    if target.exists() and stamp.exists() and json.loads(stamp.read_text()) == settings:
        return pd.read_csv(target, dtype={"patient_id": str})
    test, validation = unit.rows.test, unit.rows.validation
    p_tumor = unit.predictions["p_tumor"].to_numpy()
    if unit.model == SEGMENTER:
        model = unit_models.load_segmenter(family, unit)
        config = family.config
        predict = lambda images: segmenter.predict_logits(model, config.model, images)
        test_rows = family.manifest.iloc[test]
        samples, entropy_map, information_map = tta_passes(predict, family.images[test],
                                                          test_rows, config.slice_score)
        validation_table = scores.slice_scores(predict(family.images[validation]),
                                               family.manifest.iloc[validation])
        validation_p = scores.p_tumor_from_score(
            scores.score_values(validation_table, config.slice_score), config.slice_score)
        maps = dict(row=test_rows.index.to_numpy(np.int64),
                    entropy=entropy_map.astype(np.float16),
                    mutual_information=information_map.astype(np.float16))
        write_atomic(unit.folder / "uncertainty_maps.npz",
                     lambda tmp: np.savez_compressed(tmp, **maps))
        slice_score = config.slice_score
    else:
        base, head = unit_models.load_classifier(family, unit)
        samples = mc_dropout_passes(head, unit_models.classifier_features(family, base, test),
                                    passes=int(params.mc_passes), seed=seed * 1000 + unit.fold)
        validation_features = unit_models.classifier_features(family, base, validation)
        validation_p = (np.asarray(head(validation_features, training=False))[:, 1]
                        if len(validation) else np.empty(0))
        slice_score = None
    table = unit_table(unit, p_tumor, samples, validation_p,
                       _p_threshold(unit.model, unit.threshold, slice_score),
                       unit.rows.validation_labels)
    write_csv_atomic(table, target)
    write_text_atomic(stamp, json.dumps(settings))
    return table


def read_unit_maps(folder) -> dict:
    """A U-Net unit's per-pixel uncertainty maps (`annotate_unit`)."""
    with np.load(Path(folder) / "uncertainty_maps.npz") as saved:
        return {key: saved[key] for key in saved.files}

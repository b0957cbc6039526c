"""Predicted masks on disk: each segmentation unit's test logits (compressed), read back
and measured (eqs. 15-17) without the model."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from ..data import pipeline
from ..measures import segmetrics
from ..data import write_atomic


def upsample_logits(logits, size: int) -> np.ndarray:
    """Logits (N, s, s) -> (N, size, size) float32 by bilinear resampling (PIL, the same
    pixel-centre convention as the pipeline's image resizing); threshold at 0 for masks."""
    logits = np.asarray(logits, dtype=np.float32)
    if logits.shape[1:] == (size, size):
        return logits
    upsampled = np.empty((len(logits), size, size), np.float32)
    for index, slice_logits in enumerate(logits):
        upsampled[index] = Image.fromarray(slice_logits).resize((size, size), Image.BILINEAR)
    return upsampled


def save_unit_masks(path: Path, rows: pd.DataFrame, logits: np.ndarray, original_size: int) -> None:
    """The test slices' logits (float16, training resolution), their manifest row numbers,
    patient and slice, and the original size to upsample to; compressed, atomic."""
    arrays = dict(logits=np.asarray(logits, np.float16), row=rows.index.to_numpy(np.int64),
                  patient_id=rows["patient_id"].to_numpy(str),
                  slice_number=rows["slice_number"].to_numpy(np.int64),
                  original_size=np.int64(original_size))
    write_atomic(path, lambda tmp: np.savez_compressed(tmp, **arrays))


def read_unit_masks(path) -> dict:
    """A fold's saved logits and their rows, as written by `save_unit_masks`."""
    with np.load(path) as saved:
        return {key: saved[key] for key in saved.files}


def predicted_masks(model_dir, manifest: pd.DataFrame,
                    size: int | None = None) -> tuple[pd.DataFrame, np.ndarray]:
    """Every scored slice of a run: its manifest rows (with `fold`) and predicted masks
    upsampled to `size` (default: the original size), logit > 0. No model needed."""
    manifest = manifest.reset_index(drop=True)
    paths = sorted(Path(model_dir).glob("*/masks.npz"))
    if not paths:
        raise FileNotFoundError(f"no */masks.npz under {model_dir}: train the segmenter's "
                                "units first (brainlib.study.run_models)")
    parts, masks = [], []
    for path in paths:
        saved = read_unit_masks(path)
        rows = manifest.loc[saved["row"]].copy()
        _check_saved_rows(rows, saved, path)
        rows["fold"] = unit_fold(path.parent)
        target = int(saved["original_size"]) if size is None else size
        masks.append(upsample_logits(saved["logits"], target) > 0)
        parts.append(rows)
    return pd.concat(parts), np.concatenate(masks)


def _check_saved_rows(rows: pd.DataFrame, saved: dict, path: Path) -> None:
    same = (rows["patient_id"].to_numpy(str) == saved["patient_id"]).all() and \
        (rows["slice_number"].to_numpy() == saved["slice_number"]).all()
    if not same:
        raise ValueError(f"{path}: its rows are not those of this manifest (patient/slice differ); "
                         "pass the manifest the run was made with")


def evaluate_run(model_dir, manifest: pd.DataFrame, keep_largest_component: bool = False
                 ) -> segmetrics.SegmentationEvaluation:
    """Eqs. (15)-(17) per slice and per patient at the original resolution, from the masks
    a run saved (true masks read at their own size)."""
    rows, predicted = predicted_masks(model_dir, manifest)
    true = pipeline.load_masks(rows, predicted.shape[1]) > 0
    return segmetrics.evaluate(predicted, true, rows, keep_largest_component)


def read_slice_scores(model_dir) -> pd.DataFrame:
    """All units' test slice scores of a segmenter's folder, with their fold."""
    paths = sorted(Path(model_dir).glob("*/slice_scores.csv"))
    return pd.concat([pd.read_csv(p).assign(fold=unit_fold(p.parent)) for p in paths],
                     ignore_index=True) if paths else pd.DataFrame()


def unit_fold(unit_dir: Path) -> int:
    """The fold number in a unit folder's name (`<scheme>-<control>-fold3`)."""
    return int(Path(unit_dir).name.rsplit("-fold", 1)[1])

"""Segmentation metrics of the paper, eqs. (15)-(17), per slice and per patient volume.

Masks are boolean arrays at the dataset's own 256x256 resolution (predicted masks are
upsampled before they get here), so distances are in pixels of the original slices.

Conventions for empty masks (a tumor-free slice is common: two slices in three):
- Dice (eq. 15) and IoU (eq. 16) are 1 when both masks are empty (nothing to find and
  nothing claimed) and 0 when exactly one is empty (the formulas give 0 there anyway).
- Hausdorff (eq. 17) and HD95 are NaN when either mask is empty: the distance from a point
  to an empty set is undefined (infinite), and a number would mislead. The slice table's
  `note` says which mask was empty.

Summaries over slices use tumor slices only (a non-empty true mask), as is usual: averaging
in the many empty-vs-empty slices would inflate Dice. The patient volume (all slices of a
patient stacked) is the unit Buda et al. (2019) report, mean Dice 82% per patient.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import ndimage

from .equations import dice_coefficient as _dice_reference
from .equations import intersection_over_union as _iou_reference
from .results import Result

SLICE_KEYS = ("patient_id", "slice_number")
HD_PERCENTILE = 95


# ----------------------------------------------------------------------------- one pair of masks

def _as_mask(mask, name: str) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.dtype != bool and not np.isin(mask, (0, 1, 255)).all():
        raise ValueError(f"{name}: expected a binary mask (bool, 0/1 or 0/255), found values "
                         f"{np.unique(mask)[:5]}")
    return mask.astype(bool)


def _check_pair(predicted, true) -> tuple[np.ndarray, np.ndarray]:
    predicted, true = _as_mask(predicted, "predicted"), _as_mask(true, "true")
    if predicted.shape != true.shape:
        raise ValueError(f"predicted and true masks differ in shape: {predicted.shape} vs "
                         f"{true.shape} (upsample predictions to the true masks' size first)")
    return predicted, true


def dice_coefficient(predicted, true) -> float:
    """Dice coefficient, eq. (15): 2|P n T| / (|P| + |T|); 1 when both are empty, 0 when
    exactly one is."""
    return _dice_reference(*_check_pair(predicted, true))


def intersection_over_union(predicted, true) -> float:
    """Intersection over union (Jaccard), eq. (16): |P n T| / |P u T|; 1 when both are
    empty, 0 when exactly one is."""
    return _iou_reference(*_check_pair(predicted, true))


def directed_distances(from_mask, to_mask) -> np.ndarray:
    """Euclidean distance (pixels) from every pixel of `from_mask` to the nearest pixel of
    `to_mask`; the maximum is one direction h(X, Y) of eq. (17).

    Computed with an exact Euclidean distance transform, which gives what
    `scipy.spatial.distance.directed_hausdorff` gives on the pixel coordinates, faster.
    """
    from_mask, to_mask = _check_pair(from_mask, to_mask)
    if not to_mask.any():
        raise ValueError("directed_distances: the target mask is empty (distance undefined)")
    distance_to_target = ndimage.distance_transform_edt(~to_mask)
    return distance_to_target[from_mask]


def _empty_reason(predicted: np.ndarray, true: np.ndarray) -> str:
    if not predicted.any() and not true.any():
        return "both masks empty"
    if not predicted.any():
        return "predicted mask empty"
    if not true.any():
        return "true mask empty"
    return ""


def hausdorff_distance(predicted, true) -> float:
    """Hausdorff distance, eq. (17): max(h(P, T), h(T, P)) over the masks' pixels, in pixels.

    NaN when either mask is empty (distance to an empty set is undefined).
    """
    predicted, true = _check_pair(predicted, true)
    if _empty_reason(predicted, true):
        return float("nan")
    return float(max(directed_distances(predicted, true).max(),
                     directed_distances(true, predicted).max()))


def hausdorff_95(predicted, true) -> float:
    """HD95: eq. (17) with each direction's maximum replaced by its 95th percentile, the
    larger of the two (the BraTS convention; robust to a few stray pixels). Computed over
    all mask pixels, like eq. (17) here; NaN when either mask is empty."""
    predicted, true = _check_pair(predicted, true)
    if _empty_reason(predicted, true):
        return float("nan")
    return float(max(np.percentile(directed_distances(predicted, true), HD_PERCENTILE),
                     np.percentile(directed_distances(true, predicted), HD_PERCENTILE)))


def largest_connected_component(mask) -> np.ndarray:
    """The mask with only its largest connected component (full connectivity: 8 neighbours
    in 2-D, 26 in a 3-D volume), as Buda et al.'s post-processing; empty stays empty."""
    mask = _as_mask(mask, "mask")
    labels, n_components = ndimage.label(mask, structure=np.ones((3,) * mask.ndim, bool))
    if n_components <= 1:
        return mask
    sizes = np.bincount(labels.ravel())[1:]
    return labels == (1 + int(np.argmax(sizes)))


# ----------------------------------------------------------------------------- many slices

def _check_stack(predicted, true, rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    predicted, true = _check_pair(predicted, true)
    if predicted.ndim != 3 or len(predicted) != len(rows):
        raise ValueError(f"expected (N, H, W) masks with N = {len(rows)} rows; found shape "
                         f"{predicted.shape}")
    missing = [c for c in SLICE_KEYS if c not in rows.columns]
    if missing:
        raise ValueError(f"rows: expected columns {list(SLICE_KEYS)}, missing {missing}")
    return predicted, true


def _patient_order(rows: pd.DataFrame) -> dict[str, np.ndarray]:
    """Row positions of each patient, sorted by slice number (the volume's order)."""
    frame = rows.reset_index(drop=True)
    ordered = frame.sort_values(list(SLICE_KEYS), kind="mergesort")
    return {patient: group.index.to_numpy() for patient, group in
            ordered.groupby("patient_id", sort=True)}


def keep_largest_component_per_patient(predicted, rows: pd.DataFrame) -> np.ndarray:
    """Predicted masks with each patient's volume reduced to its largest 3-D component."""
    predicted = _as_mask(predicted, "predicted")
    kept = np.zeros_like(predicted)
    for positions in _patient_order(rows).values():
        kept[positions] = largest_connected_component(predicted[positions])
    return kept


def slice_table(predicted, true, rows: pd.DataFrame) -> pd.DataFrame:
    """One row per slice: the rows' key columns, pixel counts, Dice, IoU, Hausdorff, HD95,
    and a `note` saying why a distance is NaN."""
    predicted, true = _check_stack(predicted, true, rows)
    keys = [c for c in ("patient_id", "slice_number", "fold") if c in rows.columns]
    table = rows[keys].reset_index(drop=True).copy()
    table["true_pixels"] = true.sum(axis=(1, 2))
    table["predicted_pixels"] = predicted.sum(axis=(1, 2))
    table["tumor_slice"] = table["true_pixels"] > 0
    table["dice"] = [dice_coefficient(p, t) for p, t in zip(predicted, true)]
    table["iou"] = [intersection_over_union(p, t) for p, t in zip(predicted, true)]
    table["hausdorff"] = [hausdorff_distance(p, t) for p, t in zip(predicted, true)]
    table["hd95"] = [hausdorff_95(p, t) for p, t in zip(predicted, true)]
    table["note"] = [_empty_reason(p, t) for p, t in zip(predicted, true)]
    return table


def patient_table(predicted, true, rows: pd.DataFrame, slices: pd.DataFrame | None = None
                  ) -> pd.DataFrame:
    """One row per patient volume: Dice (eq. 15) and IoU (eq. 16) over all the patient's
    slices stacked (Buda et al.'s unit), and the mean per-slice Hausdorff and HD95 over
    slices where both masks are non-empty (slice spacing is unknown, so no 3-D distance)."""
    predicted, true = _check_stack(predicted, true, rows)
    slices = slice_table(predicted, true, rows) if slices is None else slices
    records = []
    for patient, positions in _patient_order(rows).items():
        measured = slices.iloc[positions]
        with_distance = measured["hausdorff"].notna()
        records.append({
            "patient_id": patient, "n_slices": len(positions),
            "n_tumor_slices": int(measured["tumor_slice"].sum()),
            "true_pixels": int(measured["true_pixels"].sum()),
            "predicted_pixels": int(measured["predicted_pixels"].sum()),
            "dice": dice_coefficient(predicted[positions], true[positions]),
            "iou": intersection_over_union(predicted[positions], true[positions]),
            "mean_slice_hausdorff": measured.loc[with_distance, "hausdorff"].mean(),
            "mean_slice_hd95": measured.loc[with_distance, "hd95"].mean(),
            "n_slices_with_distance": int(with_distance.sum()),
        })
    return pd.DataFrame(records)


@dataclass
class SegmentationEvaluation(Result):
    """Per-slice and per-patient segmentation metrics, with or without keeping the largest
    connected component of each patient's predicted volume."""

    slices: pd.DataFrame
    patients: pd.DataFrame
    largest_component: bool

    def title(self) -> str:
        kept = "largest 3-D component kept" if self.largest_component else "raw predicted masks"
        return f"Segmentation at the original resolution ({kept})"

    def to_frame(self) -> pd.DataFrame:
        tumor = self.slices[self.slices["tumor_slice"]]
        rows = [
            ("slice (tumor slices only)", len(tumor), tumor["dice"].mean(), tumor["iou"].mean(),
             tumor["hausdorff"].mean(), tumor["hd95"].mean(), int(tumor["hausdorff"].isna().sum())),
            ("patient volume", len(self.patients), self.patients["dice"].mean(),
             self.patients["iou"].mean(), self.patients["mean_slice_hausdorff"].mean(),
             self.patients["mean_slice_hd95"].mean(), int(self.patients["mean_slice_hausdorff"].isna().sum())),
        ]
        return pd.DataFrame(rows, columns=["unit", "n", "mean_dice", "mean_iou",
                                           "mean_hausdorff_px", "mean_hd95_px",
                                           "n_distance_undefined"]).set_index("unit")

    def notes(self) -> list[str]:
        return ["Dice eq. (15), IoU eq. (16), Hausdorff eq. (17) in pixels of 256x256 slices; "
                "distances are NaN (left out of means) where either mask is empty."]


def evaluate(predicted, true, rows: pd.DataFrame, keep_largest_component: bool = False
             ) -> SegmentationEvaluation:
    """Slice and patient tables of eqs. (15)-(17) for aligned (N, H, W) masks and their rows."""
    predicted, true = _check_stack(predicted, true, rows)
    if keep_largest_component:
        predicted = keep_largest_component_per_patient(predicted, rows)
    slices = slice_table(predicted, true, rows)
    return SegmentationEvaluation(slices, patient_table(predicted, true, rows, slices),
                                  keep_largest_component)

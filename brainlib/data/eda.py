"""Exploratory data analysis of a manifest: counts, tumor sizes, intensities, overlays.

Every function reads the manifest (and, for pixels, the cached uint8 arrays) and returns a
table or an image, so the data chapter shows results without computing them inline.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

CHANNELS = ("pre-contrast", "FLAIR", "post-contrast")


def class_counts(manifest: pd.DataFrame) -> pd.DataFrame:
    """Slices with and without tumor, and their share (the paper: 1373 / 2556 of 3929)."""
    counts = manifest["label"].map({1: "tumor", 0: "no tumor"}).value_counts()
    counts = counts.reindex(["tumor", "no tumor"], fill_value=0)
    return pd.DataFrame({"slices": counts, "share": counts / counts.sum()})


def per_patient(manifest: pd.DataFrame) -> pd.DataFrame:
    """One row per patient: institution, slices, tumor slices, first/last tumor slice."""
    def describe(rows: pd.DataFrame) -> pd.Series:
        tumor = rows.loc[rows["label"] == 1, "slice_number"]
        return pd.Series({
            "institution": rows["institution"].iloc[0],
            "slices": len(rows),
            "tumor_slices": int(rows["label"].sum()),
            "first_tumor_slice": tumor.min() if len(tumor) else np.nan,
            "last_tumor_slice": tumor.max() if len(tumor) else np.nan,
            "tumor_pixels": int(rows["tumor_pixels"].sum()),
        })
    return manifest.groupby("patient_id").apply(describe, include_groups=False)


def per_institution(manifest: pd.DataFrame) -> pd.DataFrame:
    """Patients, slices and tumor share for each contributing institution."""
    grouped = manifest.groupby("institution")
    return pd.DataFrame({"patients": grouped["patient_id"].nunique(),
                         "slices": grouped.size(),
                         "tumor_share": grouped["label"].mean()})


def tumor_sizes(manifest: pd.DataFrame) -> pd.Series:
    """Tumor pixel counts of the tumor slices (the small ones are the hard ones)."""
    return manifest.loc[manifest["label"] == 1, "tumor_pixels"].rename("tumor_pixels")


def dataset_facts(manifest: pd.DataFrame) -> dict:
    """The numbers chapter 02's recap quotes: patients, institutions, slices, the tumor
    share, and how small tumors get (median area, share under 100 pixels)."""
    sizes = tumor_sizes(manifest)
    return {"n_patients": int(manifest["patient_id"].nunique()),
            "n_institutions": int(manifest["institution"].nunique()),
            "n_slices": len(manifest), "tumor_share": float(manifest["label"].mean()),
            "median_tumor_pixels": float(sizes.median()),
            "small_tumor_share": float((sizes < 100).mean())}


def channel_statistics(images: np.ndarray, labels: np.ndarray, chunk: int = 256
                       ) -> pd.DataFrame:
    """Mean and standard deviation of each channel, by class, streamed over the array."""
    rows = []
    for label, name in ((1, "tumor"), (0, "no tumor")):
        index = np.flatnonzero(labels == label)
        total = np.zeros(3)
        total_sq = np.zeros(3)
        n_pixels = 0
        for start in range(0, len(index), chunk):
            block = np.asarray(images[index[start:start + chunk]], dtype=np.float64)
            total += block.sum(axis=(0, 1, 2))
            total_sq += (block ** 2).sum(axis=(0, 1, 2))
            n_pixels += block.shape[0] * block.shape[1] * block.shape[2]
        mean = total / max(n_pixels, 1)
        std = np.sqrt(np.maximum(total_sq / max(n_pixels, 1) - mean ** 2, 0))
        for channel, channel_name in enumerate(CHANNELS):
            rows.append({"class": name, "channel": channel_name,
                         "mean": mean[channel], "std": std[channel]})
    return pd.DataFrame(rows)


def overlay(image: np.ndarray, mask: np.ndarray, color=(255, 40, 40), alpha: float = 0.45
            ) -> np.ndarray:
    """The slice with its tumor mask tinted on top (the paper's Fig. 3)."""
    out = image.astype(np.float32).copy()
    inside = mask > 0
    out[inside] = (1 - alpha) * out[inside] + alpha * np.asarray(color, np.float32)
    return out.clip(0, 255).astype(np.uint8)


def example_slices(manifest: pd.DataFrame, n: int = 4, seed: int = 0) -> pd.DataFrame:
    """A seeded pick of tumor slices (largest tumors of different patients) for figures."""
    tumor = manifest[manifest["label"] == 1]
    largest = tumor.sort_values("tumor_pixels", ascending=False).drop_duplicates("patient_id")
    return largest.sample(min(n, len(largest)), random_state=seed).sort_values("patient_id")


def intensity_sentence(statistics: pd.DataFrame) -> str:
    """What `channel_statistics` says about the sequences, in words computed from it: which
    sequence is brightest in tumor slices and which differs most between the classes. These
    are whole-slice means (background included), not the tumor's own pixels."""
    means = statistics.pivot(index="channel", columns="class", values="mean").loc[list(CHANNELS)]
    difference = means["tumor"] - means["no tumor"]
    brightest = means["tumor"].idxmax()
    largest = difference.abs().idxmax()
    brighter = [c for c in CHANNELS if difference[c] > 0]
    return (f"Averaged over whole slices, the tumor class is brightest in {brightest} "
            f"(mean {means.loc[brightest, 'tumor']:.1f}); it is brighter than the tumor-free "
            f"class in {len(brighter)} of 3 sequences"
            + (f" ({', '.join(brighter)})" if brighter else "")
            + f", and the largest difference between the classes is in {largest} "
            f"({difference[largest]:+.1f}). Whole-slice means include the background and "
            "the healthy tissue around a tumor, so they say little about the tumor's own pixels.")

"""A synthetic stand-in for the LGG MRI dataset: same folder layout, same file format.

The phantom lets the whole study run offline and lets tests build datasets of any size.
Each patient is a stack of axial slices: head and brain outlines that grow towards the
middle of the stack, scalp, skull, gray/white matter texture, ventricles, noise and an
intensity scale that varies between patients and institutions. The three channels mimic
pre-contrast, FLAIR and post-contrast. Tumors are irregular blobs, bright in FLAIR, over
one contiguous run of slices, shrinking to a few dozen faint pixels at the ends of the run.
Bright structures that are not tumor (scalp fat, eye sockets, periventricular caps, small
white-matter spots) keep a simple intensity threshold from separating the classes.

Everything is labelled phantom: patient ids are `P001`, `P002`, ... (real ids are TCGA
codes such as `4941` or `A5TP`), `data.csv` has a `phantom` column and `README.md` says so.

    kaggle_3m = write_phantom_dataset("runs/phantom")               # 30 patients
    kaggle_3m = write_phantom_dataset("runs/full", **FULL_SIZE)     # 110 patients, 3929 slices
"""
from __future__ import annotations

import math
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.fft
import tifffile

# Bump when the generator changes, so that a phantom written by an older generator is
# not reused as if it were the same data.
GENERATOR_VERSION = 1

# The real dataset's size, for benchmarks: `write_phantom_dataset(root, **FULL_SIZE)`.
FULL_SIZE = {"n_patients": 110, "n_slices": 3929}

# Institutions of the real dataset, weighted roughly as there.
INSTITUTIONS = ("CS", "DU", "EZ", "FG", "HT")
INSTITUTION_WEIGHTS = (0.15, 0.40, 0.02, 0.13, 0.30)
# Scanners differ: a fixed gain per institution and channel (pre, FLAIR, post).
INSTITUTION_GAINS = {
    "CS": (0.85, 1.10, 1.00), "DU": (1.00, 1.00, 0.95), "EZ": (1.10, 0.90, 1.05),
    "FG": (0.95, 1.15, 0.90), "HT": (1.05, 0.95, 1.10),
}
# Mean intensity (pre-contrast, FLAIR, post-contrast) of each tissue before gains,
# close to the real slices: fat is bright in all three, CSF dark (suppressed in FLAIR),
# white matter brighter than gray in T1 and darker in FLAIR.
TISSUE = {
    "scalp": (175.0, 150.0, 180.0),
    "skull": (12.0, 14.0, 12.0),
    "csf": (28.0, 16.0, 30.0),
    "gray": (62.0, 80.0, 70.0),
    "white": (88.0, 62.0, 84.0),
    "orbit": (185.0, 130.0, 190.0),
}
MIN_SLICES = 6
TUMOR_FREE_SHARE = 0.1      # share of patients without a tumor
# Share of patients missing a sequence, replaced by FLAIR as in the real data (9 and 6 of 110).
MISSING_SEQUENCE_SHARE = {"post-contrast": 0.08, "pre-contrast": 0.05}
CHANNEL = {"pre-contrast": 0, "FLAIR": 1, "post-contrast": 2}


def phantom_plan(n_patients: int = 30, slices_per_patient: int = 30, seed: int = 0,
                 tumor_fraction: float = 0.35, n_slices: int | None = None) -> pd.DataFrame:
    """One row per phantom patient: name, institution, slice count and tumor run.

    Slice counts vary between 2/3 and 4/3 of `slices_per_patient` (20-40 for 30, like the
    real data); with `n_slices` they are rescaled to sum to exactly that. Tumor runs are
    sized so that about `tumor_fraction` of all slices hold tumor, with about one patient
    in ten tumor-free. Slice numbers are 1-based; a tumor-free patient has run 0..0.
    """
    if not 1 <= n_patients <= 999:
        raise ValueError(f"n_patients must be 1..999 (ids P001..P999), got {n_patients}")
    if slices_per_patient < MIN_SLICES:
        raise ValueError(f"slices_per_patient must be >= {MIN_SLICES}, got {slices_per_patient}")
    if not 0 <= tumor_fraction <= 0.6:
        raise ValueError(f"tumor_fraction must be in [0, 0.6], got {tumor_fraction}")
    if n_slices is not None and n_slices < MIN_SLICES * n_patients:
        raise ValueError(f"n_slices must be >= {MIN_SLICES} per patient "
                         f"({MIN_SLICES * n_patients}), got {n_slices}")
    rng = np.random.default_rng([seed, 0])
    patient_numbers = np.arange(1, n_patients + 1)
    institutions = rng.choice(INSTITUTIONS, size=n_patients, p=INSTITUTION_WEIGHTS)
    days = rng.integers(0, 20 * 365, size=n_patients)
    dates = (np.datetime64("1983-01-01") + days).astype(str)

    low = max(MIN_SLICES, round(slices_per_patient * 2 / 3))
    high = max(low, round(slices_per_patient * 4 / 3))
    counts = rng.integers(low, high + 1, size=n_patients)
    if n_slices is not None:
        counts = _rescale_counts(counts, n_slices)

    has_tumor = np.ones(n_patients, bool)
    has_tumor[rng.choice(n_patients, size=round(TUMOR_FREE_SHARE * n_patients), replace=False)] = False
    # Leave at least one slice (15% of the stack) tumor-free at each end, as in real stacks.
    margins = np.maximum(1, np.round(0.15 * counts)).astype(int)
    weights = counts * rng.uniform(0.55, 1.45, size=n_patients) * has_tumor
    target = tumor_fraction * counts.sum()
    runs = np.round(target * weights / max(weights.sum(), 1e-9))
    runs = np.minimum(runs, counts - 2 * margins).astype(int)
    starts = margins + (rng.random(n_patients) * (counts - 2 * margins - runs + 1)).astype(int)
    first = np.where(runs > 0, starts + 1, 0)
    last = np.where(runs > 0, starts + runs, 0)

    draw = rng.random(n_patients)
    missing = np.full(n_patients, "none", dtype=object)
    missing[draw < MISSING_SEQUENCE_SHARE["post-contrast"]] = "post-contrast"
    missing[draw > 1 - MISSING_SEQUENCE_SHARE["pre-contrast"]] = "pre-contrast"

    patients = [f"TCGA_{inst}_P{number:03d}" for inst, number in zip(institutions, patient_numbers)]
    return pd.DataFrame({
        "Patient": patients,
        "phantom": True,
        "folder": [f"{p}_{d.replace('-', '')}" for p, d in zip(patients, dates)],
        "patient_number": patient_numbers,
        "institution": institutions,
        "n_slices": counts,
        "n_tumor_slices": runs,
        "tumor_first_slice": first,
        "tumor_last_slice": last,
        "missing_sequence": missing,
    })


def _rescale_counts(counts: np.ndarray, n_slices: int) -> np.ndarray:
    """Scale slice counts to sum to `n_slices`, keeping each at least MIN_SLICES."""
    scaled = counts * n_slices / counts.sum()
    rescaled = np.maximum(np.floor(scaled).astype(int), MIN_SLICES)
    order = np.argsort(-(scaled - np.floor(scaled)), kind="stable")
    step_at = 0
    while rescaled.sum() != n_slices:
        patient = order[step_at % len(order)]
        step = 1 if rescaled.sum() < n_slices else -1
        if rescaled[patient] + step >= MIN_SLICES:
            rescaled[patient] += step
        step_at += 1
    return rescaled


def smooth_noise(rng: np.random.Generator, shape: tuple[int, ...],
                 sigmas: tuple[float, ...]) -> np.ndarray:
    """Gaussian-smoothed white noise with unit standard deviation (float32).

    Smoothing in the Fourier domain costs the same for any width, which keeps a
    full-size phantom fast; the field wraps around at the borders, harmless for texture.
    The scale is the expected one (from the filter), not measured, so no float
    reduction whose order depends on the CPU enters the bytes.
    """
    # Uniform white noise is 10x cheaper to draw than normal and, once smoothed, as Gaussian.
    white = rng.random(shape, dtype=np.float32) - np.float32(0.5)
    spectrum = scipy.fft.rfftn(white, workers=1)
    variance = 1 / 12                     # of the uniform white noise
    for axis, (length, sigma) in enumerate(zip(shape, sigmas)):
        gain = [math.exp(-2 * (math.pi * sigma * f) ** 2) for f in scipy.fft.fftfreq(length)]
        variance *= sum(g * g for g in gain) / length
        if axis == len(shape) - 1:
            gain = gain[:length // 2 + 1]
        spectrum *= np.array(gain, np.float32).reshape([-1 if a == axis else 1 for a in range(len(shape))])
    spectrum *= np.float32(1 / math.sqrt(variance))
    return scipy.fft.irfftn(spectrum, s=shape, workers=1).astype(np.float32, copy=False)


def _outline_wobble(rng, dx, dy):
    """Relative bumps of the head outline: a few random angular harmonics.

    cos(k*angle) comes from complex powers of (dx + i*dy)/r, only exactly rounded float
    operations, so the outline is the same on every CPU.
    """
    r = np.sqrt(dx ** 2 + dy ** 2) + np.float32(1e-6)
    cos_1, sin_1 = dx / r, dy / r
    cos_k, sin_k = cos_1, sin_1
    wobble = np.zeros_like(r)
    for k in range(2, 5):
        cos_k, sin_k = cos_k * cos_1 - sin_k * sin_1, sin_k * cos_1 + cos_k * sin_1
        phase, amplitude = rng.uniform(0, 2 * math.pi), rng.uniform(0, 0.02)
        wobble += amplitude * (cos_k * math.cos(phase) - sin_k * math.sin(phase))
    return wobble


def _inside(distance: np.ndarray, edge, width) -> np.ndarray:
    """Soft indicator of `distance < edge`, ramping over `width` (anti-aliased edges)."""
    return np.clip((edge - distance) / width + 0.5, 0.0, 1.0)


def phantom_volume(patient, image_size: int = 256, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Images (slices, H, W, 3) uint8 and masks (slices, H, W) uint8 {0, 255} of one patient.

    `patient` is a row of `phantom_plan`. The patient's random stream depends only on
    `seed` and its number, so one patient can be regenerated alone.
    """
    rng = np.random.default_rng([seed, int(patient["patient_number"])])
    n = int(patient["n_slices"])
    size = int(image_size)
    pixel = 2.0 / size                       # one pixel in image coordinates [-1, 1]
    scale = size / 256                       # sizes below are given for 256 x 256
    grid = ((np.arange(size, dtype=np.float32) + 0.5) * pixel - 1).astype(np.float32)
    z = (((np.arange(n) + 0.5) / n) * 2 - 1).astype(np.float32)[:, None, None]

    # Head: an ellipse, rotated and shifted a little per patient, largest mid-stack.
    angle = rng.uniform(-0.15, 0.15)
    x = grid[None, None, :] * math.cos(angle) + grid[None, :, None] * math.sin(angle)
    y = -grid[None, None, :] * math.sin(angle) + grid[None, :, None] * math.cos(angle)
    stack_size = 0.45 + 0.55 * np.sqrt(np.clip(1 - z ** 2, 0, 1))
    half_width = rng.uniform(0.6, 0.7) * stack_size
    half_height = rng.uniform(0.76, 0.86) * stack_size
    center_x = rng.uniform(-0.05, 0.05)
    middle_y = rng.uniform(-0.04, 0.06)
    center_y = middle_y + 0.03 * z
    head_x = (x - center_x) / half_width
    head_y = (y - center_y) / half_height
    wobble = _outline_wobble(rng, x - center_x, y - middle_y)
    skull_base = np.clip((-0.45 - z) / 0.25, 0, 1)          # lowest slices: orbits, thick bone
    radius = np.sqrt(head_x ** 2 + head_y ** 2) / (1 + wobble * (1 + 3 * skull_base))

    mean_half_axis = (half_width + half_height) / 2
    edge = pixel / mean_half_axis                          # one pixel in head-radius units
    scalp = 5 * scale * pixel / mean_half_axis
    skull = 4 * scale * pixel / mean_half_axis * (1 + 1.5 * skull_base)
    brain_edge = 1 - scalp - skull
    head = _inside(radius, 1.0, edge)
    inside_scalp = _inside(radius, 1 - scalp, edge)
    brain = _inside(radius, brain_edge, edge)

    # Brain: gyri-like gray/white boundary from a smooth texture field, CSF at the rim,
    # in the midline fissure, in sulci and in the ventricles (mid-stack only).
    texture = smooth_noise(rng, (n, size, size), (0.8, 2.5 * scale, 2.5 * scale))
    brain_radius = radius / brain_edge
    brain_x = head_x / brain_edge
    brain_y = head_y / brain_edge
    gray = _inside(-brain_radius, -0.78 + 0.12 * texture, 0.08)
    ventricle_size = np.sqrt(np.clip(1 - ((z - 0.05) / 0.45) ** 2, 0, 1)) * rng.uniform(0.8, 1.3) + 1e-3
    ventricle_distance = np.minimum(
        np.sqrt(((brain_x - 0.13 - 0.2 * brain_y) / 0.08) ** 2 + (brain_y / 0.32) ** 2),
        np.sqrt(((brain_x + 0.13 + 0.2 * brain_y) / 0.08) ** 2 + (brain_y / 0.32) ** 2),
    ) / ventricle_size
    ventricles = _inside(ventricle_distance, 1.0, 0.15)
    fissure = _inside(np.abs(brain_x), 0.012 + 0.5 * edge, edge) * _inside(-np.abs(brain_y), -0.35, 0.05)
    sulci = _inside(-brain_radius, -0.8, 0.05) * np.clip((texture - 1.3) / 0.3, 0, 1)
    rim = _inside(-brain_radius, -0.985, 0.015)
    csf = np.maximum(np.maximum(ventricles, fissure), np.maximum(sulci, rim))
    # Periventricular caps: bright in FLAIR, common in normal brains, not tumor.
    caps = (_inside(ventricle_distance, 1.5, 0.4) - ventricles) * rng.uniform(0.0, 0.35)
    # Eye sockets (fat, bright in every channel) in the lowest slices only.
    orbits = np.zeros_like(head)
    low = np.flatnonzero(skull_base[:, 0, 0] > 0)
    orbit_distance = np.minimum(
        np.sqrt(((head_x[low] - 0.38) / 0.22) ** 2 + ((head_y[low] + 0.78) / 0.2) ** 2),
        np.sqrt(((head_x[low] + 0.38) / 0.22) ** 2 + ((head_y[low] + 0.78) / 0.2) ** 2))
    orbits[low] = _inside(orbit_distance, 1.0, 0.2) * skull_base[low] * head[low]

    tumor, mask = _tumor(rng, patient, n, size, x, y, center_x, center_y, half_width,
                         half_height, brain_edge, brain, texture)
    spots = _white_matter_spots(rng, n, size, brain_x, brain_y) * brain

    # Intensity: each pixel is a mixture of tissues and each tissue has one intensity
    # per channel, so the image is (tissue fractions) x (tissue intensities). FLAIR gets
    # its own brain columns: periventricular caps and white-matter spots show only there.
    no_orbit = 1 - orbits
    normal_brain = brain * no_orbit * (1 - tumor) * (1 + 0.04 * texture)
    csf_part, gray_part, white_part = (normal_brain * csf, normal_brain * (1 - csf) * gray,
                                       normal_brain * (1 - csf) * (1 - gray))
    flair_only = (1 + caps) * (1 - spots)
    fractions = {
        "scalp": (head - inside_scalp) * no_orbit * (1 + 0.08 * texture),
        "skull": (inside_scalp - brain) * no_orbit,
        "orbit": orbits,
        "csf": csf_part, "gray": gray_part, "white": white_part,
        "csf FLAIR": csf_part * flair_only, "gray FLAIR": gray_part * flair_only,
        "white FLAIR": white_part * flair_only,
        "spot": normal_brain * spots,
        "tumor": brain * no_orbit * tumor * (1 + 0.12 * texture),
    }
    spot_flair = TISSUE["gray"][1] * rng.uniform(1.15, 1.6)
    intensities = {
        **{name: TISSUE[name] for name in ("scalp", "skull", "orbit")},
        **{name: (TISSUE[name][0], 0.0, TISSUE[name][2]) for name in ("csf", "gray", "white")},
        **{f"{name} FLAIR": (0.0, TISSUE[name][1], 0.0) for name in ("csf", "gray", "white")},
        "spot": (0.0, spot_flair, 0.0),
        "tumor": (TISSUE["white"][0] * rng.uniform(0.6, 0.85),     # darker before contrast,
                  TISSUE["gray"][1] * rng.uniform(1.1, 1.7),       # bright in FLAIR,
                  TISSUE["white"][2] * rng.uniform(0.8, 1.3)),     # variable enhancement
    }
    gains = np.array(INSTITUTION_GAINS[patient["institution"]]) * rng.lognormal(0, 0.12, size=3)
    value = np.zeros((3, n, size, size), np.float32)
    # Summed in a fixed order rather than by a BLAS matrix product, whose rounding
    # depends on the CPU: the same seed should give the same bytes on any machine.
    for name, fraction in fractions.items():
        for channel, intensity in enumerate(np.array(intensities[name]) * gains):
            if intensity:
                value[channel] += np.float32(intensity) * fraction
    bias = (1 + rng.uniform(-0.12, 0.12) * x + rng.uniform(-0.12, 0.12) * y
            + rng.uniform(-0.1, 0.1) * (x ** 2 + y ** 2 - 0.3) + rng.uniform(-0.08, 0.08) * z)
    value *= bias
    # Magnitude images: noise folds at zero, so the background is dark but not black.
    # Triangular noise (sum of two uniforms, unit variance) is a cheap stand-in for normal.
    noise_level = rng.uniform(1.5, 5.0) * math.sqrt(6)
    value += noise_level * (rng.random(value.shape, dtype=np.float32) - np.float32(0.5))
    value += noise_level * (rng.random(value.shape, dtype=np.float32) - np.float32(0.5))
    np.abs(value, out=value)
    np.rint(value, out=value)
    np.clip(value, 0, 255, out=value)
    images = np.ascontiguousarray(np.moveaxis(value.astype(np.uint8), 0, -1))
    missing = patient["missing_sequence"]
    if missing != "none":    # the real dataset copies FLAIR into a missing sequence's channel
        images[..., CHANNEL[missing]] = images[..., CHANNEL["FLAIR"]]
    return images, mask


def _tumor(rng, patient, n, size, x, y, center_x, center_y, half_width, half_height,
           brain_edge, brain, texture):
    """Soft tumor weight (how much each pixel looks like tumor) and the 0/255 mask."""
    tumor = np.zeros((n, size, size), np.float32)
    mask = np.zeros((n, size, size), np.uint8)
    first, last = int(patient["tumor_first_slice"]), int(patient["tumor_last_slice"])
    if first == 0:
        return tumor, mask
    pixel = 2.0 / size
    run = np.arange(first - 1, last)
    length = len(run)
    # Size profile over the run: peak somewhere inside, a few pixels wide at both ends.
    skew = rng.uniform(0.6, 1.6)
    profile = [math.sin(math.pi * ((k + 0.5) / length) ** skew) for k in range(length)]
    # End-of-run radius 3-12 pixels at 256 (scaled with the image): a few dozen to a few
    # hundred pixels of tumor, as at the ends of the real runs.
    smallest = math.exp(rng.uniform(math.log(3), math.log(12))) * 2 / 256
    largest = rng.uniform(0.12, 0.32)
    radius = np.array([smallest + (largest - smallest) * p ** 1.5 for p in profile],
                      np.float32)[:, None, None]
    profile = np.array(profile, np.float32)[:, None, None]
    # Center inside the brain, in brain-relative units so it follows the brain outline.
    direction = rng.uniform(0, 2 * math.pi)
    reach = 0.55 * math.sqrt(rng.random())
    drift = rng.uniform(-0.08, 0.08, size=2).tolist()
    step = np.linspace(-0.5, 0.5, length, dtype=np.float32)[:, None, None]
    brain_half_width, brain_half_height = half_width[run] * brain_edge[run], half_height[run] * brain_edge[run]
    tumor_x = center_x + (reach * math.cos(direction) + drift[0] * step) * brain_half_width
    tumor_y = center_y[run] + (reach * math.sin(direction) + drift[1] * step) * brain_half_height
    angle = rng.uniform(0, math.pi)
    stretch = rng.uniform(0.75, 1.25)
    dx, dy = x - tumor_x, y - tumor_y
    along = (dx * math.cos(angle) + dy * math.sin(angle)) / (radius * stretch)
    across = (-dx * math.sin(angle) + dy * math.cos(angle)) * stretch / radius
    # Irregular, lobulated outline: the distance is warped by a smooth random field.
    warp = smooth_noise(rng, (length, size, size), (1.0, 6 * size / 256, 6 * size / 256))
    distance = np.sqrt(along ** 2 + across ** 2) * (1 + 0.3 * np.clip(warp, -1.2, 1.5))
    inside = (distance < 1) & (brain[run] > 0.5)
    # The center pixel always belongs to the tumor, so every slice of the run has tumor.
    rows = np.clip(((tumor_y[:, 0, 0] + 1) / pixel).astype(int), 0, size - 1)
    cols = np.clip(((tumor_x[:, 0, 0] + 1) / pixel).astype(int), 0, size - 1)
    inside[np.arange(length), rows, cols] = True
    # Faint where small (partial volume at the ends of the run), heterogeneous inside.
    strength = (0.35 + 0.65 * profile) * (1 + 0.2 * texture[run])
    tumor[run] = np.clip((1 - distance) / 0.35, 0, 1) * strength * inside
    mask[run] = inside * np.uint8(255)
    return np.clip(tumor, 0, 1), mask


def _white_matter_spots(rng, n, size, brain_x, brain_y):
    """Small FLAIR-bright spots that are not tumor (white-matter hyperintensities)."""
    spots = np.zeros((n, size, size), np.float32)
    for _ in range(rng.integers(0, 7)):
        middle = rng.integers(0, n)
        slices = np.arange(max(0, middle - rng.integers(0, 3)), min(n, middle + rng.integers(1, 3)))
        direction, reach = rng.uniform(0, 2 * math.pi), 0.7 * math.sqrt(rng.random())
        radius = rng.uniform(2.0, 6.0) / 100          # about 2-6 pixels at 256
        distance = np.sqrt((brain_x[slices] - reach * math.cos(direction)) ** 2
                           + (brain_y[slices] - reach * math.sin(direction)) ** 2) / radius
        spots[slices] = np.maximum(spots[slices], _inside(distance, 1.0, 0.5) * rng.uniform(0.5, 1.0))
    return spots


def write_phantom_dataset(root: str | os.PathLike, n_patients: int = 30, slices_per_patient: int = 30,
                          seed: int = 0, image_size: int = 256, tumor_fraction: float = 0.35,
                          compression: str | None = None, n_slices: int | None = None,
                          reuse: bool = True) -> Path:
    """Write a phantom `kaggle_3m` folder under `root` and return its path.

    Same layout and format as the Kaggle originals: `TCGA_<inst>_P<nnn>_<date>/` folders
    of `..._<N>.tif` RGB uint8 slices and `..._<N>_mask.tif` 0/255 masks, N = 1, 2, ...,
    uncompressed unless `compression="zlib"`; plus `data.csv` and `README.md`.
    `write_phantom_dataset(root, **FULL_SIZE)` gives the real size (110 patients, 3929
    slices). The folder is written under a temporary name and renamed when complete, so
    an interrupted run leaves no partial `kaggle_3m`. With `reuse`, a phantom already there
    with the same parameters is returned as is; a folder that is not a phantom is never
    replaced.
    """
    if compression not in (None, "zlib"):
        raise ValueError(f"compression must be None or 'zlib', got {compression!r}")
    if image_size < 32:
        raise ValueError(f"image_size must be >= 32, got {image_size}")
    root = Path(root)
    target = root / "kaggle_3m"
    parameters = (f"n_patients={n_patients}, slices_per_patient={slices_per_patient}, "
                  f"n_slices={n_slices}, seed={seed}, image_size={image_size}, "
                  f"tumor_fraction={tumor_fraction}, compression={compression}, "
                  f"generator_version={GENERATOR_VERSION}")
    if target.exists():
        readme = target / "README.md"
        if not (readme.is_file() and readme.read_text().startswith(README_TITLE)):
            raise FileExistsError(f"{target} exists and is not a brainlib phantom; "
                                  "not replacing it (choose another root)")
        if reuse and f"Parameters: {parameters}\n" in readme.read_text():
            return target

    plan = phantom_plan(n_patients, slices_per_patient, seed, tumor_fraction, n_slices)
    root.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=".kaggle_3m-partial-", dir=root))
    # Fastest deflate level: 4x quicker than the default and files only 2% larger.
    packing = {"compression": compression, "compressionargs": {"level": 1} if compression else None}
    try:
        for _, patient in plan.iterrows():
            images, masks = phantom_volume(patient, image_size, seed)
            folder = partial / patient["folder"]
            folder.mkdir()
            for number in range(1, len(images) + 1):
                name = f"{patient['folder']}_{number}"
                tifffile.imwrite(folder / f"{name}.tif", images[number - 1], photometric="rgb", **packing)
                tifffile.imwrite(folder / f"{name}_mask.tif", masks[number - 1],
                                 photometric="minisblack", **packing)
        plan.drop(columns=["folder", "patient_number"]).to_csv(partial / "data.csv", index=False)
        (partial / "README.md").write_text(_readme(plan, parameters))
        os.chmod(partial, 0o755)      # mkdtemp makes it private; the dataset is not
        if target.exists():
            retired = Path(tempfile.mkdtemp(prefix=".kaggle_3m-old-", dir=root))
            os.replace(target, retired / "kaggle_3m")
            os.replace(partial, target)
            shutil.rmtree(retired)
        else:
            os.replace(partial, target)
    finally:
        if partial.exists():
            shutil.rmtree(partial)
    return target


README_TITLE = "# PHANTOM LGG MRI dataset (synthetic, not patient data)"


def _readme(plan: pd.DataFrame, parameters: str) -> str:
    """The phantom's README: what it is, how it was made, what is in it."""
    n_slices = int(plan["n_slices"].sum())
    n_tumor = int(plan["n_tumor_slices"].sum())
    return (
        f"{README_TITLE}\n\n"
        "Synthetic images generated by `brainlib.data.phantom.write_phantom_dataset`, in the layout\n"
        "and file format of the Kaggle LGG MRI segmentation dataset (`kaggle_3m`). No real\n"
        "patient is in it: ids `P001`, `P002`, ... mark phantom patients, and `data.csv` has a\n"
        "`phantom` column. Results on it say nothing about real tumors.\n\n"
        f"Parameters: {parameters}\n\n"
        f"{len(plan)} patients, {n_slices} slices, {n_tumor} with tumor "
        f"({n_tumor / n_slices:.1%}), {int((plan['n_tumor_slices'] == 0).sum())} tumor-free patients.\n\n"
        "Images: RGB uint8 TIFF, channels pre-contrast, FLAIR, post-contrast. Masks: uint8\n"
        "TIFF with values 0 and 255; a slice holds tumor when its mask has a pixel > 0.\n"
        "Each tumor covers one contiguous run of slices (`tumor_first_slice` to\n"
        "`tumor_last_slice` in `data.csv`, 1-based; 0 for tumor-free patients).\n"
    )

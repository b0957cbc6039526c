"""Do the classifiers look at the tumor? Grad-CAM heatmaps scored against the true masks.

Grad-CAM (Selvaraju et al. 2017): the feature maps A^k of the last convolutional layer,
weighted by the mean gradient of the tumor score over each map, summed and rectified:
cam = ReLU(sum_k w_k A^k), w_k = mean_ij d(score)/d(A^k_ij), resized to the image.
The score is the tumor log-odds log p_tumor - log p_no-tumor (not the softmax probability,
whose gradient vanishes on confident slices). The maps are the base's output, the last
convolutional block as the head sees it. A head that standardizes its features
(`standardize_features`) reads each channel relative to its training mean, so its maps are
taken relative to that mean: A^k - mean_k (plain Grad-CAM is the case mean = 0).
Since the maps are the base's output, a frozen base's maps kept when the features were
computed (`classifier.TumorMaps`) give the same heatmaps from the head alone
(`grad_cam_from_maps`); `gradcam_unit` reads them where the run folder has them.

Two scores against the tumor's mask (no human reading of heatmaps needed), both over the
brain (the head's pixels, `brain_masks`), since the background carries nothing to look at:
- the **pointing game**: is the heatmap's maximum inside the tumor (strictly, no tolerance);
- the **energy inside**: the share of the heatmap's mass in the brain that lies in the tumor.
A heatmap that knows nothing (uniform over the brain, or its maximum anywhere in the brain)
scores the tumor's share of the brain on both: `tumor_share_of_brain` is that baseline.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

# The last convolutional block's output of each base (the base's output, what the head reads).
LAYERS = {"resnet50": "conv5_block3_out", "vgg16": "block5_pool"}
BRAIN_LEVEL = 10  # a pixel is brain when its mean over the three sequences exceeds this (0-255)
RIM_SHARE = 1 / 16  # "on the rim": within this share of the image's side of the head's edge
SCORE_COLUMNS = ("pointing", "energy_inside", "baseline", "empty_map", "peak_on_rim")
EPS = 1e-7


def grad_cam(base, head, images, layer: str | None = None, batch_size: int = 32,
             preprocess=None) -> np.ndarray:
    """Grad-CAM of the tumor log-odds for 0-255 RGB images: (N, S, S) float32, each map
    scaled to a maximum of 1 (all zeros where the rectified map is empty).

    `base` and `head` as the classifier uses them (the head takes the base's pooled
    output); `layer` defaults to `LAYERS[base.name]`, `preprocess` to the base's own input
    preprocessing."""
    import keras
    import tensorflow as tf

    from .. import models
    from ..data import pipeline

    layer = layer or LAYERS[base.name]
    reference = feature_reference(head) if layer == base.layers[-1].name else 0.0
    if preprocess is None:
        preprocess = lambda batch: pipeline.preprocess_input(base.name, batch)
    size = int(base.input.shape[1])
    both = keras.Model(base.inputs, [base.get_layer(layer).output, base.output])
    pooling = models.head_pooling_layer(base)

    # One graph for the forward pass and the gradient: the same maps as an eager loop in
    # 0.38x (ResNet50) and 0.26x (VGG16) its time at 224x224 (benchmarks/bench_gradcam.py).
    @tf.function(reduce_retracing=True)
    def batch_cams(batch):
        with tf.GradientTape() as tape:
            activations, output = both(batch, training=False)
            tape.watch(activations)
            log_odds = _tumor_log_odds(head, pooling(output))
        return _rectified_cam(tape.gradient(log_odds, activations), activations, reference, size)

    images = np.asarray(images, dtype=np.float32)
    return _scaled_maps(lambda start: batch_cams(preprocess(
        tf.constant(images[start:start + batch_size]))), len(images), batch_size, size)


def grad_cam_from_maps(base, head, maps, batch_size: int = 32) -> np.ndarray:
    """`grad_cam` of images whose base outputs `maps` (N, h, w, C) were kept when their
    features were computed (`classifier.extract_features(..., keep_maps=...)`): the same
    maps from the head alone, without a pass through the base (Grad-CAM's layer is the
    base's output)."""
    import tensorflow as tf

    from .. import models

    reference, size = feature_reference(head), int(base.input.shape[1])
    pooling = models.head_pooling_layer(base)

    @tf.function(reduce_retracing=True)
    def batch_cams(activations):
        with tf.GradientTape() as tape:
            tape.watch(activations)
            log_odds = _tumor_log_odds(head, pooling(activations))
        return _rectified_cam(tape.gradient(log_odds, activations), activations, reference, size)

    return _scaled_maps(lambda start: batch_cams(tf.constant(
        np.asarray(maps[start:start + batch_size], dtype=np.float32))), len(maps), batch_size, size)


def _tumor_log_odds(head, pooled):
    import tensorflow as tf

    p = head(pooled, training=False)
    return tf.math.log(p[:, 1] + EPS) - tf.math.log(p[:, 0] + EPS)


def _rectified_cam(gradients, activations, reference, size: int):
    """ReLU(sum_k w_k (A^k - reference_k)), w_k the mean gradient over map k, resized."""
    import tensorflow as tf

    weights = tf.reduce_mean(gradients, axis=(1, 2), keepdims=True)
    cam = tf.nn.relu(tf.reduce_sum(weights * (activations - reference), axis=-1))[..., None]
    return tf.image.resize(cam, (size, size), method="bilinear")[..., 0]


def _scaled_maps(batch_cams, n_images: int, batch_size: int, size: int) -> np.ndarray:
    """`batch_cams(start)` over every batch, each map scaled to a maximum of 1 (zeros where
    it is empty)."""
    maps = np.zeros((n_images, size, size), np.float32)
    for start in range(0, n_images, batch_size):
        cam = batch_cams(start).numpy()
        peak = cam.reshape(len(cam), -1).max(axis=1)
        maps[start:start + len(cam)] = np.where(peak[:, None, None] > 0,
                                                cam / np.maximum(peak, EPS)[:, None, None], 0)
    return maps


def feature_reference(head) -> np.ndarray | float:
    """What the head reads as "no signal" in each channel: the training mean of a head that
    standardizes its features, else 0."""
    names = [layer.name for layer in head.layers]
    if "head_standardize" not in names:
        return 0.0
    return np.asarray(head.get_layer("head_standardize").mean, dtype=np.float32).reshape(-1)


def brain_masks(images) -> np.ndarray:
    """Pixels of the head, not the background: mean over the sequences > `BRAIN_LEVEL`."""
    return np.asarray(images, dtype=np.float32).mean(axis=-1) > BRAIN_LEVEL


def peak_positions(heatmaps, brain) -> np.ndarray:
    """Per map, the flat index of its maximum inside the brain. A coarse map resized to the
    image has plateaus (its border cells extend flat to the image's edge), so among tied
    maxima the one nearest their centroid is taken, not the first in reading order."""
    heatmaps = np.asarray(heatmaps, dtype=np.float64) * np.asarray(brain, dtype=bool)
    size = heatmaps.shape[-1]
    peaks = np.zeros(len(heatmaps), dtype=np.int64)
    for index, heatmap in enumerate(heatmaps):
        tied = np.flatnonzero(heatmap.ravel() >= heatmap.max() - 1e-6)
        rows, columns = np.divmod(tied, size)
        distance = (rows - rows.mean()) ** 2 + (columns - columns.mean()) ** 2
        peaks[index] = tied[np.argmin(distance)]
    return peaks


def pointing_hits(heatmaps, tumor_masks, brain) -> np.ndarray:
    """Per map: is its maximum inside the brain (`peak_positions`) inside the tumor? A map
    that is empty over the brain misses."""
    heatmaps, tumor = np.asarray(heatmaps), np.asarray(tumor_masks, dtype=bool)
    brain = np.asarray(brain, dtype=bool) | tumor
    hit = tumor.reshape(len(tumor), -1)[np.arange(len(tumor)), peak_positions(heatmaps, brain)]
    return hit & ((heatmaps * brain).reshape(len(tumor), -1).max(axis=1) > 0)


def energy_inside(heatmaps, tumor_masks, brain) -> np.ndarray:
    """Per map: its mass inside the tumor over its mass inside the brain (0 for a map empty
    over the brain); a map uniform over the brain scores the tumor's share of the brain."""
    tumor = np.asarray(tumor_masks, dtype=bool)
    heatmaps = np.asarray(heatmaps, dtype=np.float64) * (np.asarray(brain, dtype=bool) | tumor)
    total = heatmaps.sum(axis=(1, 2))
    inside = (heatmaps * tumor).sum(axis=(1, 2))
    return np.where(total > 0, inside / np.maximum(total, EPS), 0.0)


def tumor_share_of_brain(tumor_masks, brain) -> np.ndarray:
    """Per slice: tumor pixels over brain pixels, what a heatmap that knows nothing scores."""
    tumor = np.asarray(tumor_masks, dtype=bool)
    brain = np.asarray(brain, dtype=bool) | tumor
    return tumor.sum(axis=(1, 2)) / np.maximum(brain.sum(axis=(1, 2)), 1)


def peak_on_rim(heatmaps, brain) -> np.ndarray:
    """Per map: does its maximum in the brain lie on the head's outer rim (within
    `RIM_SHARE` of the image's side of the head's edge)? Where a map points, when not at
    the tumor."""
    from scipy import ndimage

    brain = np.asarray(brain, dtype=bool)
    size = brain.shape[-1]
    peaks = peak_positions(heatmaps, brain)
    depth = np.array([ndimage.distance_transform_edt(np.pad(b, 1))[1:-1, 1:-1].ravel()[k]
                      for b, k in zip(brain, peaks)])
    return depth <= RIM_SHARE * size


def score_heatmaps(heatmaps, tumor_masks, images, rows: pd.DataFrame) -> pd.DataFrame:
    """One row per slice: patient, slice, pointing hit, energy inside, the baseline, and
    whether the map is empty or peaks on the head's rim."""
    table = rows[["patient_id", "slice_number"]].reset_index(drop=True).copy()
    brain = brain_masks(images)
    table["pointing"] = pointing_hits(heatmaps, tumor_masks, brain)
    table["energy_inside"] = energy_inside(heatmaps, tumor_masks, brain)
    table["baseline"] = tumor_share_of_brain(tumor_masks, brain)
    table["empty_map"] = np.asarray(heatmaps).reshape(len(table), -1).max(axis=1) == 0
    table["peak_on_rim"] = peak_on_rim(heatmaps, brain | np.asarray(tumor_masks, dtype=bool))
    return table


def gradcam_unit(family, unit, manifest: pd.DataFrame) -> pd.DataFrame:
    """Grad-CAM of one classifier unit on its test fold's tumor slices, scored against their
    masks; cached in the unit folder (`gradcam.csv`, heatmaps in `gradcam.npz`, float16)."""
    from ..data import pipeline
    from ..training import unit_models
    from ..data import write_atomic, write_csv_atomic

    target = unit.folder / "gradcam.csv"
    if target.exists():
        cached = pd.read_csv(target, dtype={"patient_id": str})
        if set(SCORE_COLUMNS) <= set(cached.columns):
            return cached
    manifest = manifest.reset_index(drop=True)
    test = unit.rows.test
    tumor = test[manifest["label"].to_numpy()[test] == 1]
    rows = manifest.iloc[tumor]
    images = family.images[tumor]
    masks = pipeline.load_masks(rows, family.config.image_size) > 0
    base, head = unit_models.load_classifier(family, unit)
    kept = getattr(family, "tumor_maps", None)
    if not len(tumor):
        heatmaps = np.zeros((0,) + masks.shape[1:])
    elif kept is not None:  # the base's outputs kept with the features: the head alone
        heatmaps = grad_cam_from_maps(base, head, kept.maps[kept.positions(tumor)])
    else:
        heatmaps = grad_cam(base, head, images)
    table = score_heatmaps(heatmaps, masks, images, rows).assign(model=unit.model, fold=unit.fold)
    arrays = dict(row=tumor.astype(np.int64), heatmaps=heatmaps.astype(np.float16))
    write_atomic(unit.folder / "gradcam.npz", lambda tmp: np.savez_compressed(tmp, **arrays))
    write_csv_atomic(table, target)
    return table


def read_heatmaps(folder) -> dict:
    """A unit's saved Grad-CAM heatmaps and their manifest rows (`gradcam_unit`)."""
    with np.load(Path(folder) / "gradcam.npz") as saved:
        return {key: saved[key] for key in saved.files}

"""Grad-CAM on toy networks whose answer is known, and the scores against masks by hand."""
import keras
import pytest
import numpy as np
import pandas as pd

from brainlib.trust import gradcam
from brainlib import models


def toy_classifier(sign: float = 1.0, standardize: bool = False, mean: float = 0.0):
    """A base whose last layer copies the first input channel (a 1x1 convolution with
    kernel [1, 0, 0]) and a head whose tumor log-odds is `sign` x the sum of its pooled
    features: Grad-CAM's weight is then sign/cells, so its map is the image's first
    channel (sign > 0) or nothing (sign < 0)."""
    inputs = keras.Input((8, 8, 3))
    copy = keras.layers.Conv2D(1, 1, use_bias=False, name="copy",
                               kernel_initializer=keras.initializers.Constant([[[[1.0], [0.0], [0.0]]]]))
    base = keras.Model(inputs, copy(inputs), name="toy")
    layers = [keras.Input(models.pooled_feature_shape(base))]
    if standardize:
        norm = keras.layers.Normalization(axis=-1, mean=[mean], variance=[1.0], name="head_standardize")
        layers.append(norm)
    layers += [keras.layers.Flatten(), keras.layers.Dense(
        2, activation="softmax", kernel_initializer=keras.initializers.Constant(
            np.tile([[-0.5 * sign, 0.5 * sign]], (4, 1))), bias_initializer="zeros")]
    return base, keras.Sequential(layers)


def image_with_spot(row: int, column: int) -> np.ndarray:
    image = np.zeros((1, 8, 8, 3), np.float32)
    image[0, :, :, 0] = 1.0
    image[0, row, column, 0] = 9.0
    return image


def test_the_map_of_a_linear_toy_is_its_input_and_points_at_the_spot():
    base, head = toy_classifier()
    image = image_with_spot(5, 2)
    heatmap = gradcam.grad_cam(base, head, image, layer="copy", preprocess=lambda x: x)
    np.testing.assert_allclose(heatmap[0], image[0, :, :, 0] / 9.0, atol=1e-5)
    tumor = np.zeros((1, 8, 8), bool)
    tumor[0, 4:7, 1:4] = True
    brain = np.ones((1, 8, 8), bool)
    assert gradcam.pointing_hits(heatmap, tumor, brain)[0]
    expected = (9 + 8 * 1) / (9 + 63 * 1)  # the spot and 8 ones inside, over the whole map
    np.testing.assert_allclose(gradcam.energy_inside(heatmap, tumor, brain)[0], expected, rtol=1e-5)


def test_evidence_against_the_tumor_gives_an_empty_map_that_misses():
    base, head = toy_classifier(sign=-1.0)
    heatmap = gradcam.grad_cam(base, head, image_with_spot(5, 2), layer="copy",
                               preprocess=lambda x: x)
    assert heatmap.max() == 0
    tumor = np.ones((1, 8, 8), bool)
    assert not gradcam.pointing_hits(heatmap, tumor, tumor)[0]
    assert gradcam.energy_inside(heatmap, tumor, tumor)[0] == 0


def test_a_standardizing_head_reads_maps_relative_to_its_training_mean():
    """With mean 1 every pixel but the spot carries no evidence: the map is the spot alone."""
    base, head = toy_classifier(standardize=True, mean=1.0)
    heatmap = gradcam.grad_cam(base, head, image_with_spot(3, 6), layer="copy",
                               preprocess=lambda x: x)
    expected = np.zeros((8, 8))
    expected[3, 6] = 1.0
    np.testing.assert_allclose(heatmap[0], expected, atol=1e-5)


def test_a_plateau_points_at_its_middle_not_its_first_pixel():
    heatmap = np.zeros((1, 6, 6))
    heatmap[0, :, 3:] = 1.0  # the right half is one flat maximum
    tumor = np.zeros((1, 6, 6), bool)
    tumor[0, 2:4, 3:6] = True
    brain = np.ones((1, 6, 6), bool)
    assert gradcam.pointing_hits(heatmap, tumor, brain)[0]  # the first pixel (0, 3) would miss


def test_the_baseline_is_what_a_uniform_heatmap_scores():
    rng = np.random.default_rng(0)
    images = np.zeros((4, 16, 16, 3), np.uint8)
    images[:, 2:14, 2:14] = 120  # the head: 144 pixels
    tumor = np.zeros((4, 16, 16), bool)
    for index in range(4):
        r, c = rng.integers(3, 9, 2)
        tumor[index, r:r + 3, c:c + 4] = True  # 12 pixels
    uniform = np.ones((4, 16, 16))
    rows = pd.DataFrame({"patient_id": list("aabb"), "slice_number": [1, 2, 1, 2]})
    table = gradcam.score_heatmaps(uniform, tumor, images, rows)
    np.testing.assert_allclose(table["baseline"], 12 / 144)
    np.testing.assert_allclose(table["energy_inside"], table["baseline"])
    assert not table["empty_map"].any()


def test_the_real_bases_maps_come_from_their_last_block():
    for name in ("resnet50", "vgg16"):
        base = models.build_base(name, 64, None)
        assert base.get_layer(gradcam.LAYERS[name]) is base.layers[-1]


def test_a_peak_at_the_heads_edge_is_on_its_rim_and_one_inside_is_not():
    brain = np.zeros((2, 32, 32), bool)
    brain[:, 4:28, 4:28] = True
    heatmaps = np.zeros((2, 32, 32))
    heatmaps[0, 5, 16] = 1.0   # one pixel in from the head's top edge
    heatmaps[1, 16, 16] = 1.0  # the middle of the head
    assert gradcam.peak_on_rim(heatmaps, brain).tolist() == [True, False]


def test_maps_kept_with_the_features_give_the_maps_of_a_pass_through_the_base():
    """Grad-CAM's layer is the base's output, so the unpooled outputs kept when the features
    are computed give, from the head alone, the maps a second pass through the base gives;
    the features computed beside them are the features computed alone, bit for bit."""
    from brainlib.training import classifier

    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (6, 64, 64, 3)).astype(np.float32)
    tumor_rows = np.array([1, 4, 5])
    for name in ("resnet50", "vgg16"):
        base = models.build_base(name, 64, None)
        features, maps = classifier.extract_features(base, images, batch_size=4, progress=False,
                                                     keep_maps=tumor_rows)
        np.testing.assert_array_equal(
            features, classifier.extract_features(base, images, batch_size=4, progress=False))
        head = models.build_head(models.pooled_feature_shape(base), seed=1,
                                 standardize_features=True)
        models.set_feature_statistics(head, features.reshape(-1, features.shape[-1]).mean(0),
                                      features.reshape(-1, features.shape[-1]).var(0) + 1)
        through_base = gradcam.grad_cam(base, head, images[tumor_rows])
        kept = classifier.TumorMaps(tumor_rows, maps)
        from_maps = gradcam.grad_cam_from_maps(base, head, kept.maps[kept.positions([4, 5])])
        assert through_base.max() > 0
        np.testing.assert_allclose(from_maps, through_base[1:], atol=1e-5)


def test_maps_are_only_given_for_the_tumor_rows_they_were_kept_for():
    from brainlib.training import classifier

    kept = classifier.TumorMaps(np.array([2, 7, 9]), np.zeros((3, 2, 2, 1)))
    np.testing.assert_array_equal(kept.positions([9, 2]), [2, 0])
    with pytest.raises(ValueError, match="not tumor slices"):
        kept.positions([3])

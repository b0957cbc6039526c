"""Segmentation: the U-Net, masks that keep their labels, paired augmentation, the loss, the
slice threshold, and the cross-validation runner (resumable, seeded, the classifier's table).

A tiny U-Net (widths 4-8-16) at 32x32 on the small phantom, one epoch: mechanics, not accuracy.
"""
import numpy as np
import pandas as pd
import pytest
import tifffile

from brainlib import data, stats
from brainlib.models import loss, unet
from brainlib.data import machine, pipeline, splits, transform
from brainlib.training import masks as mask_store, runner, scores as slice, segmenter
from brainlib.measures import metrics

SIZE = 32
TINY = segmenter.SegmentationConfig(image_size=SIZE, widths=(4, 8, 16), epochs=1,
                                    batch_size=16, seed=3)
RUN = dict(seed=3, validation_fraction=0.25, progress=False)


@pytest.fixture(scope="module")
def manifest(phantom_kaggle_3m):
    return splits.add_splits(data.scan_dataset(phantom_kaggle_3m).manifest, n_folds=2, seed=0)


@pytest.fixture(scope="module")
def finished_run(manifest, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("segmentation-run")
    table = runner.run_units(manifest, run_dir, [segmenter.SegmenterFamily(TINY)], **RUN)
    return model_folder(run_dir, manifest), table


def model_folder(run_dir, manifest, config=TINY):
    return runner.model_dir(run_dir, segmenter.SegmenterFamily(config), "validated", manifest,
                            seed=3, validation_fraction=0.25)


# ----------------------------------------------------------------------------- models


def test_unet_gives_one_channel_of_logits_and_about_half_a_million_parameters():
    model = unet.build_unet(128)
    assert model.output.shape == (None, 128, 128, 1)
    assert 0.45e6 < model.count_params() < 0.55e6
    assert model.get_layer("logits").activation.__name__ == "linear"
    with pytest.raises(ValueError, match="divisible by 8"):
        unet.build_unet(36)


def test_resunet_uses_resnet50_as_encoder():
    model = unet.build_resunet(64)
    assert model.output.shape == (None, 64, 64, 1)
    assert model.get_layer("resnet50_encoder").get_layer("conv4_block6_out") is not None
    with pytest.raises(ValueError, match="multiple of 32"):
        unet.build_resunet(48)


@pytest.mark.skipif(not machine.bfloat16_convolution_works(),
                    reason="a bfloat16 convolution fails on this machine (e.g. oneDNN capped "
                           "below bfloat16 by ONEDNN_MAX_CPU_ISA); the run refuses bfloat16 "
                           "settings there (test_study_refuses_bfloat16_where_it_cannot_run)")
def test_mixed_precision_unet_keeps_float32_weights_and_logits():
    model = unet.build_unet(SIZE, (4, 8), precision="mixed_bfloat16")
    conv = model.get_layer("encoder1_conv1")
    assert conv.compute_dtype == "bfloat16" and conv.kernel.dtype == "float32"
    assert model.get_layer("logits").compute_dtype == "float32"
    logits = model(np.zeros((2, SIZE, SIZE, 3), np.float32))
    assert logits.dtype == "float32"
    # same seed, same initial weights as the float32 model: only the arithmetic changes
    plain = unet.build_unet(SIZE, (4, 8))
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), plain.get_weights()))
    with pytest.raises(ValueError, match="precision must be one of"):
        unet.build_unet(SIZE, (4, 8), precision="float16")
    with pytest.raises(ValueError, match="unet' only"):
        segmenter.SegmentationConfig(model="resunet", precision="mixed_bfloat16")


def test_fused_batch_norm_computes_what_keras_batch_norm_does():
    """Eq. (8) in one kernel: the same outputs, gradients and moving statistics as Keras'
    layer, in training and in inference, up to float32 rounding."""
    import keras
    import tensorflow as tf

    rng = np.random.default_rng(0)
    batches = [tf.constant(rng.normal(2.0, 3.0, (4, 6, 6, 5)).astype(np.float32))
               for _ in range(3)]
    fused, reference = unet.FusedBatchNormalization(), keras.layers.BatchNormalization()
    for layer in (fused, reference):
        layer.build(batches[0].shape)
        layer.gamma.assign(np.linspace(0.5, 1.5, 5)), layer.beta.assign(np.linspace(-1, 1, 5))
    for batch in batches:
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(batch)
            outputs = [layer(batch, training=True) for layer in (fused, reference)]
            losses = [tf.reduce_sum(out * tf.sin(batch)) for out in outputs]
        np.testing.assert_allclose(outputs[0], outputs[1], atol=2e-5)
        for wrt in (batch, fused.gamma):
            grads = [tape.gradient(loss_value, wrt if wrt is batch else layer.gamma)
                     for loss_value, layer in zip(losses, (fused, reference))]
            np.testing.assert_allclose(grads[0], grads[1], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(fused.moving_mean, reference.moving_mean, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(fused.moving_variance, reference.moving_variance, rtol=1e-5)
    assert not np.allclose(fused.moving_variance, 1.0)  # the statistics did move
    np.testing.assert_allclose(fused(batches[0], training=False),
                               reference(batches[0], training=False), atol=2e-5)


def test_the_unet_uses_the_fused_batch_norm_unless_asked_for_keras():
    fused = unet.build_unet(SIZE, (4, 8))
    keras_layers = unet.build_unet(SIZE, (4, 8), batch_norm_kernel="keras")
    assert isinstance(fused.get_layer("encoder1_bn1"), unet.FusedBatchNormalization)
    assert not isinstance(keras_layers.get_layer("encoder1_bn1"), unet.FusedBatchNormalization)
    # same seed, same initial weights, in the same order: only the kernel differs
    assert all(np.array_equal(a, b) for a, b in zip(fused.get_weights(), keras_layers.get_weights()))
    images = np.random.default_rng(1).normal(size=(2, SIZE, SIZE, 3)).astype(np.float32)
    np.testing.assert_allclose(fused(images, training=True), keras_layers(images, training=True),
                               atol=1e-4)
    with pytest.raises(ValueError, match="batch_norm_kernel must be one of"):
        segmenter.SegmentationConfig(batch_norm_kernel="cudnn")


def test_same_seed_same_initial_weights():
    first = unet.build_unet(SIZE, (4, 8), seed=5).get_weights()
    second = unet.build_unet(SIZE, (4, 8), seed=5).get_weights()
    other = unet.build_unet(SIZE, (4, 8), seed=6).get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(first, second))
    assert not np.array_equal(first[0], other[0])


# ----------------------------------------------------------------------------- inputs


def test_resizing_a_mask_never_changes_the_slice_label(tmp_path):
    """Single tumor pixels anywhere in a 256x256 mask survive resizing to any smaller size."""
    rng = np.random.default_rng(0)
    rows = []
    for index in range(12):
        mask = np.zeros((256, 256), np.uint8)
        if index % 3:
            mask[tuple(rng.integers(0, 256, 2))] = 255
        path = tmp_path / f"mask_{index}.tif"
        tifffile.imwrite(path, mask)
        rows.append({"mask_path": str(path), "label": int(mask.any())})
    masks_manifest = pd.DataFrame(rows)
    for size in (128, 100, 37, 32):
        for resize in pipeline.MASK_RESIZES:
            resized = pipeline.load_masks(masks_manifest, size, resize=resize, use_cache=False)
            assert resized.any(axis=(1, 2)).astype(int).tolist() == \
                masks_manifest["label"].tolist(), (size, resize)
    with pytest.raises(ValueError, match="resize must be one of"):
        pipeline.load_masks(masks_manifest, 32, resize="nearest")


def test_area_resized_masks_keep_the_tumors_area_and_border(tmp_path):
    """A max-resized mask grows a tumor by up to a block at its border; the area-resized
    one keeps its area (shares sum to the tumor's pixels, scaled) and its border."""
    mask = np.zeros((256, 256), np.uint8)
    mask[50:131, 70:121] = 255  # 81 x 51 pixels, edges off the 96-pixel grid
    path = tmp_path / "mask.tif"
    tifffile.imwrite(path, mask)
    rows = pd.DataFrame([{"mask_path": str(path)}])
    area = pipeline.load_masks(rows, 96, resize="area", use_cache=False)[0] / 255
    block_max = pipeline.load_masks(rows, 96, use_cache=False)[0] > 0
    true_area = (mask > 0).sum() * (96 / 256) ** 2
    assert area.sum() == pytest.approx(true_area, rel=0.01)
    assert block_max.sum() > 1.05 * true_area  # the maximum's growth
    assert set(np.unique(area)) - {0.0, 1.0}  # soft shares at the border


def test_soft_mask_batches_keep_the_shares_through_augmentation():
    masks = np.zeros((4, 16, 16), np.uint8)
    masks[:, 4:12, 4:12] = 255
    masks[:, 4:12, 3] = 128  # a half-covered border column
    images = np.zeros((4, 16, 16, 3), np.uint8)
    plain = next(iter(pipeline.batches(images, masks, np.arange(4), 4, lambda x, y: (x, y),
                                       masks_as_targets=True, soft_masks=True)))[1].numpy()
    assert plain.shape == (4, 16, 16, 1) and plain.max() == 1.0
    np.testing.assert_allclose(plain[0, 4, 3, 0], 128 / 255)
    binary = next(iter(pipeline.batches(images, masks, np.arange(4), 4, lambda x, y: (x, y),
                                        masks_as_targets=True)))[1].numpy()
    assert set(np.unique(binary)) == {0.0, 1.0}
    moved = next(iter(pipeline.batches(images, masks, np.arange(4), 4, lambda x, y: (x, y),
                                       transform.Augmentation(), seed=1, masks_as_targets=True,
                                       soft_masks=True)))[1].numpy()
    assert 0 <= moved.min() and moved.max() <= 1 and set(np.unique(moved)) - {0.0, 1.0}


def test_phantom_labels_survive_the_training_resolution(manifest):
    masks = pipeline.load_masks(manifest, SIZE)
    assert (masks.any(axis=(1, 2)).astype(int) == manifest["label"].to_numpy()).all()


def test_augmentation_moves_image_and_mask_identically():
    rng = np.random.default_rng(1)
    masks = np.zeros((8, SIZE, SIZE, 1), np.float32)
    for index in range(8):
        top, left = rng.integers(4, 20, 2)
        masks[index, top:top + 8, left:left + 5] = 1
    images = np.concatenate([masks * 255, rng.uniform(0, 255, (8, SIZE, SIZE, 2))], axis=-1)
    transforms = transform.random_transforms(8, SIZE, [7, 0], rotation_degrees=15, scale=0.05)
    moved_images, moved_masks = transform.augment_pair(images, masks, transforms)
    # channel 0 is the mask x 255: it must land exactly where the mask lands
    expected = (moved_images.numpy()[..., 0] > 127.5)
    assert np.array_equal(moved_masks.numpy()[..., 0].astype(bool), expected)
    assert not np.array_equal(moved_masks.numpy(), masks)  # something did move
    again = transform.random_transforms(8, SIZE, [7, 0], rotation_degrees=15, scale=0.05)
    assert np.array_equal(transforms.numpy(), again.numpy())


def test_flip_only_transform_mirrors_exactly():
    rng = np.random.default_rng(2)
    images = rng.uniform(0, 255, (16, SIZE, SIZE, 3)).astype(np.float32)
    masks = (rng.random((16, SIZE, SIZE, 1)) > 0.5).astype(np.float32)
    transforms = transform.random_transforms(16, SIZE, [3, 4], rotation_degrees=0, scale=0)
    moved_images, moved_masks = transform.augment_pair(images, masks, transforms)
    mirrored = transforms.numpy()[:, 0] < 0
    assert 0 < mirrored.sum() < 16
    expected = np.where(mirrored[:, None, None, None], images[:, :, ::-1], images)
    np.testing.assert_allclose(moved_images.numpy(), expected, atol=1e-3)
    np.testing.assert_array_equal(moved_masks.numpy(),
                                  np.where(mirrored[:, None, None, None], masks[:, :, ::-1], masks))


def test_per_image_standardisation():
    images = np.random.default_rng(3).integers(0, 200, (3, SIZE, SIZE, 3)).astype(np.uint8)
    standardized = transform.standardize_per_image(images).numpy()
    np.testing.assert_allclose(standardized.mean(axis=(1, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(standardized.std(axis=(1, 2, 3)), 1, atol=1e-4)


def _two_patient_volumes():
    rng = np.random.default_rng(4)
    volume = rng.integers(1, 200, (5, SIZE, SIZE, 3)).astype(np.uint8)
    volume[:, :4] = 0  # background outside the head stays 0
    dimmer = volume.astype(np.float32) * np.array([1.0, 0.5, 0.8], np.float32)
    images = np.concatenate([volume, np.round(dimmer).astype(np.uint8)])
    return images, np.repeat(["A", "B"], 5)


def test_volume_normalisation_removes_each_sequences_scale_per_patient():
    images, patients = _two_patient_volumes()
    normalized = transform.normalize_volumes(images, patients)
    assert normalized.dtype == np.uint8 and normalized.shape == images.shape
    assert (normalized[:, :4] == 0).all()
    for patient in "AB":
        head = normalized[patients == patient][:, 4:]
        for channel in range(3):
            low, high = np.percentile(head[..., channel], [1, 99])
            assert low <= 3 and high >= 252
    # patient B is patient A with two sequences dimmed: after normalisation they agree
    difference = np.abs(normalized[:5].astype(int) - normalized[5:].astype(int))
    assert difference.max() <= 3
    assert np.abs(images[:5].astype(int) - images[5:].astype(int)).max() > 50


def test_volume_normalisation_needs_uint8_images_and_one_id_per_image():
    images, patients = _two_patient_volumes()
    with pytest.raises(ValueError, match="expected uint8"):
        transform.normalize_volumes(images.astype(np.float32), patients)
    with pytest.raises(ValueError, match="patient_ids has 9 entries"):
        transform.normalize_volumes(images, patients[:9])


def test_intensity_jitter_scales_each_channel_by_its_own_gain():
    images = np.random.default_rng(5).uniform(1, 100, (6, SIZE, SIZE, 3)).astype(np.float32)
    jittered = transform.jitter_intensities(images, [1, 2], 0.2).numpy()
    gains = jittered / images
    # one gain per image and channel, within exp(+-0.2), and not all the same
    np.testing.assert_allclose(gains, np.broadcast_to(gains[:, :1, :1, :], gains.shape), rtol=1e-5)
    assert np.all(gains > np.exp(-0.2) - 1e-6) and np.all(gains < np.exp(0.2) + 1e-6)
    assert np.ptp(gains[:, 0, 0, :]) > 0.01
    again = transform.jitter_intensities(images, [1, 2], 0.2).numpy()
    np.testing.assert_array_equal(jittered, again)


def test_neighbour_flair_comes_from_the_same_patients_adjacent_slices():
    # rows out of order on purpose: neighbours follow slice numbers, not rows
    manifest = pd.DataFrame({"patient_id": ["A", "A", "B", "A", "B"],
                             "slice_number": [2, 1, 1, 3, 2]})
    images = np.zeros((5, 4, 4, 3), np.uint8)
    images[..., transform.FLAIR_CHANNEL] = (np.array([12, 11, 21, 13, 22]))[:, None, None]
    stacked = transform.add_neighbour_flair(images, manifest)
    assert stacked.shape == (5, 4, 4, 5)
    np.testing.assert_array_equal(stacked[..., :3], images)
    assert stacked[:, 0, 0, 3].tolist() == [11, 11, 21, 12, 21]  # below (an end repeats itself)
    assert stacked[:, 0, 0, 4].tolist() == [13, 12, 22, 13, 22]  # above


def test_a_unet_with_neighbour_slices_trains_and_predicts_on_five_channels(manifest):
    config = TINY.replace(neighbour_slices=True)
    images = pipeline.load_images(manifest, SIZE)[:24]
    masks = pipeline.load_masks(manifest, SIZE)[:24]
    stacked = transform.add_neighbour_flair(images, manifest.iloc[:24])
    trained = segmenter.train_segmenter(stacked, masks, config)
    assert trained.model.input.shape[-1] == 5
    assert trained.predict_logits(stacked).shape == (24, SIZE, SIZE)
    with pytest.raises(ValueError, match=r"expected \(N, 32, 32, 5\)"):
        segmenter.train_segmenter(images, masks, config)
    with pytest.raises(ValueError, match="neighbour_slices needs model='unet'"):
        segmenter.SegmentationConfig(model="resunet", neighbour_slices=True)


@pytest.mark.skipif(not machine.bfloat16_convolution_works(),
                    reason="a bfloat16 convolution fails on this machine (e.g. oneDNN capped "
                           "below bfloat16 by ONEDNN_MAX_CPU_ISA); the run refuses bfloat16 "
                           "settings there (test_study_refuses_bfloat16_where_it_cannot_run)")
def test_a_mixed_precision_unet_trains_reproducibly_on_cpu(manifest):
    config = TINY.replace(precision="mixed_bfloat16", epochs=2)
    images = pipeline.load_images(manifest, SIZE)[:24]
    masks = pipeline.load_masks(manifest, SIZE)[:24]
    first = segmenter.train_segmenter(images, masks, config)
    second = segmenter.train_segmenter(images, masks, config)
    logits = first.predict_logits(images)
    assert logits.dtype == np.float32 and np.isfinite(logits).all()
    assert first.history["loss"].notna().all()
    np.testing.assert_array_equal(logits, second.predict_logits(images))


# ----------------------------------------------------------------------------- loss, scores


def test_dice_bce_loss_is_small_for_a_confident_right_answer():
    masks = np.zeros((2, 8, 8, 1), np.float32)
    masks[:, 2:5, 2:5] = 1
    right = np.where(masks > 0, 20.0, -20.0).astype(np.float32)
    assert float(loss.soft_dice(masks, right)) == pytest.approx(1, abs=1e-6)
    assert float(loss.dice_bce_loss(masks, right)) < 1e-6
    assert float(loss.dice_bce_loss(masks, -right)) > 1
    assert float(loss.soft_dice(np.zeros_like(masks), np.full_like(right, -30))) == pytest.approx(1)


def test_p_tumor_keeps_the_ranking_of_large_logits():
    logits = np.zeros((3, 4, 4), np.float32)
    logits[:, 0, 0] = [18.0, 25.0, 33.0]  # float32 sigmoid would tie all three at 1.0
    rows = pd.DataFrame({"patient_id": ["A", "B", "C"], "slice_number": [1, 1, 1]})
    scores = slice.slice_scores(logits, rows)
    p_tumor = slice.p_tumor_from_score(slice.score_values(scores, "max_probability"),
                                              "max_probability")
    assert p_tumor.dtype == np.float64 and np.all(np.diff(p_tumor) > 0) and p_tumor.max() < 1
    assert scores["tumor_area"].tolist() == pytest.approx([1 / 16] * 3)


def test_3d_slice_score_averages_each_slice_with_its_volume_neighbours():
    # rows out of order and two patients interleaved: neighbours follow slice numbers
    rows = pd.DataFrame({"patient_id": ["A", "B", "A", "A", "B"],
                         "slice_number": [2, 1, 1, 3, 2]})
    logits = np.full((5, 4, 4), -10.0, np.float32)
    logits[:, 1, 1] = [6.0, -3.0, 0.0, 3.0, 9.0]
    scores = slice.slice_scores(logits, rows)
    # A: slices 1, 2, 3 have max 0, 6, 3; B: slices 1, 2 have -3, 9
    expected = [(0 + 6 + 3) / 3, (-3 - 3 + 9) / 3, (0 + 0 + 6) / 3, (6 + 3 + 3) / 3, (-3 + 9 + 9) / 3]
    np.testing.assert_allclose(scores["max_logit_3d"], expected)
    np.testing.assert_allclose(scores["max_logit"], [6, -3, 0, 3, 9])
    p_tumor = slice.p_tumor_from_score(
        slice.score_values(scores, "max_probability_3d"), "max_probability_3d")
    np.testing.assert_allclose(p_tumor, 1 / (1 + np.exp(-np.array(expected))))
    with pytest.raises(ValueError, match="rows has 4 entries"):
        slice.slice_scores(logits, rows.iloc[:4])


def test_threshold_is_chosen_on_validation_scores():
    y_true = np.array([0, 0, 0, 1, 1, 1])
    scores = np.array([-5.0, -1.0, 2.0, 4.0, 6.0, 9.0])
    chosen = slice.choose_threshold(y_true, scores)
    assert chosen.threshold == pytest.approx(3.0) and chosen.validation_accuracy == 1.0
    one_class = slice.choose_threshold(np.zeros(3, int), np.array([1.0, 2.0, 3.0]))
    assert one_class.threshold == 0.0 and one_class.rule.startswith("default")


def test_upsampled_logits_keep_a_constant_map():
    logits = np.full((2, 4, 4), 3.0, np.float32)
    assert np.allclose(mask_store.upsample_logits(logits, 8), 3.0)
    assert mask_store.upsample_logits(logits, 8).shape == (2, 8, 8)


# ----------------------------------------------------------------------------- the runner


def test_predictions_table_has_the_classifiers_columns(manifest, finished_run):
    folder, table = finished_run
    added = ["model", "protocol", "scheme", "control", "fold", "y_true", "p_tumor", "threshold", "y_pred"]
    assert list(table.columns) == list(manifest.columns) + added
    assert len(table) == len(manifest) and set(table["fold"]) == {0, 1}
    assert set(table["model"]) == {"unet"} and set(table["control"]) == {"none"}
    metrics.check_predictions(table)
    # a classifier's table with the same rows pairs with it unchanged
    classifier = table.assign(model="resnet50", p_tumor=0.5, y_pred=0)
    paired = stats.pair_predictions(pd.concat([classifier, table]), "resnet50", "unet")
    assert len(paired) == len(manifest)


def test_each_unit_saves_history_masks_and_threshold(manifest, finished_run):
    folder, table = finished_run
    unit = folder / "patient-none-fold0"
    history = pd.read_csv(unit / "history.csv")
    assert {"epoch", "loss", "soft_dice", "val_loss", "seconds", "best"} <= set(history.columns)
    assert set(history["validation_set"]) == {"inner_validation"}
    saved = mask_store.read_unit_masks(unit / "masks.npz")
    test_rows = table[table["fold"] == 0]
    assert saved["logits"].shape == (len(test_rows), SIZE, SIZE)
    assert int(saved["original_size"]) == 64
    assert (unit / "threshold.json").exists() and (unit / "model.weights.h5").exists()
    scores = pd.read_csv(unit / "slice_scores.csv")
    # the default slice score: the max logit averaged with the volume's neighbouring slices
    assert np.allclose(1 / (1 + np.exp(-scores["max_logit_3d"])), test_rows["p_tumor"])
    assert ((scores["max_logit_3d"] > test_rows["threshold"].to_numpy()) == test_rows["y_pred"]).all()
    np.testing.assert_allclose(scores["max_logit"], saved["logits"].astype(np.float32).max(axis=(1, 2)),
                               rtol=1e-3, atol=1e-2)
    both = mask_store.read_slice_scores(folder)
    assert sorted(both["fold"].unique()) == [0, 1] and len(both) == len(table)


def test_evaluate_run_scores_every_slice_at_the_original_size(manifest, finished_run):
    folder, _ = finished_run
    result = mask_store.evaluate_run(folder, manifest)
    assert len(result.slices) == len(manifest)
    assert result.patients["patient_id"].nunique() == manifest["patient_id"].nunique()
    assert set(result.slices["fold"]) == {0, 1}


def test_same_seed_same_predictions(manifest, finished_run, tmp_path):
    _, first = finished_run
    second = runner.run_units(manifest, tmp_path, [segmenter.SegmenterFamily(TINY)], **RUN)
    np.testing.assert_array_equal(first["p_tumor"].to_numpy(), second["p_tumor"].to_numpy())
    np.testing.assert_array_equal(first["y_pred"].to_numpy(), second["y_pred"].to_numpy())


def test_config_rejects_unknown_choices():
    with pytest.raises(ValueError, match="model must be one of"):
        segmenter.SegmentationConfig(model="segnet")
    with pytest.raises(ValueError, match="slice_score must be one of"):
        segmenter.SegmentationConfig(slice_score="mean")
    with pytest.raises(ValueError, match="intensity_normalization must be one of"):
        segmenter.SegmentationConfig(intensity_normalization="histogram")


def test_a_balanced_epoch_sees_every_tumor_slice_and_fresh_tumor_free_ones():
    masks = np.zeros((10, 4, 4), np.uint8)
    masks[[1, 4, 7], 1, 1] = 255
    sampler = segmenter.EpochSampler(masks, tumor_free_ratio=1.0)
    rng = np.random.default_rng(0)
    epochs = [sampler.epoch_order(rng) for _ in range(6)]
    assert sampler.rows_per_epoch == 6 and all(len(order) == 6 for order in epochs)
    assert all({1, 4, 7} <= set(order) and len(set(order)) == 6 for order in epochs)
    drawn = {frozenset(set(order) - {1, 4, 7}) for order in epochs}
    assert len(drawn) > 1  # a fresh draw each epoch
    assert segmenter.EpochSampler(masks, 100.0).rows_per_epoch == 10  # all there are
    every = segmenter.EpochSampler(masks, 0.0)
    assert every.rows_per_epoch == 10
    assert np.array_equal(every.epoch_order(np.random.default_rng(3)),
                          np.random.default_rng(3).permutation(10))  # today's order
    with pytest.raises(ValueError, match="tumor_free_ratio"):
        segmenter.SegmentationConfig(tumor_free_ratio=-1)

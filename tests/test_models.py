"""The paper's classifiers (Table I): parameter counts, derived pooling, weights, freezing."""
import time

import keras
import numpy as np
import pytest

from brainlib import models


def test_frozen_resnet50_at_256_has_the_papers_parameter_counts():
    counts = models.parameter_counts(models.build_classifier("resnet50", 256, weights=None))
    assert (counts.total, counts.trainable, counts.non_trainable) == (
        25_784_066, 2_196_354, 23_587_712)


def test_frozen_vgg16_at_256_counts_and_layer_table():
    summary = models.summarize_model("vgg16", 256)
    assert (summary.counts.total, summary.counts.trainable, summary.counts.non_trainable) == (
        15_338_178, 623_490, 14_714_688)
    table = summary.layers.set_index("layer")
    assert table.loc["vgg16", "output_shape"] == "(None, 8, 8, 512)"
    assert table.loc["head_pooling", "output_shape"] == "(None, 2, 2, 512)"
    assert table.loc["head_dense_1", "params"] == 524_544
    assert table["params"].sum() == summary.counts.total


@pytest.mark.parametrize("input_size, feature_map", [(64, 2), (96, 3), (128, 4), (160, 5)])
def test_head_grid_is_2x2_and_head_counts_the_papers_at_other_sizes(input_size, feature_map):
    model = models.build_classifier("resnet50", input_size)
    base = models.base_of(model)
    assert base.output.shape[1] == feature_map
    assert tuple(model.get_layer("head_pooling").output.shape) == (None, 2, 2, 2048)
    assert models.parameter_counts(model).trainable == 2_196_354


def test_head_pooling_keeps_the_papers_4x4_pool_at_256():
    assert models.head_pooling(8) == (4, 4)
    assert models.head_pooling(3) == (2, 1)


@pytest.mark.parametrize("input_size", [16, 32])
def test_too_small_input_is_refused_with_the_minimum(input_size):
    with pytest.raises(ValueError, match="input_size >= 64"):
        models.build_classifier("vgg16", input_size)


def test_unknown_model_name_is_refused():
    with pytest.raises(ValueError, match="resnet50"):
        models.build_classifier("resnet18", 64)


def test_imagenet_offline_fails_fast_and_says_how_to_pass_a_file(monkeypatch):
    def no_network(*args, **kwargs):
        raise OSError("network is unreachable (forced by the test)")

    monkeypatch.setattr(models, "_imagenet_file_cached", lambda name: False)
    monkeypatch.setattr(models.socket, "create_connection", no_network)
    started = time.perf_counter()
    with pytest.raises(models.ImageNetWeightsUnavailable) as error:
        models.build_classifier("resnet50", 64, weights="imagenet")
    assert time.perf_counter() - started < 5
    message = str(error.value)
    assert "weights='/path/to/resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5'" in message
    assert models.IMAGENET_NOTOP_URLS["resnet50"] in message


def test_imagenet_download_failure_is_reworded(monkeypatch):
    """Network reachable, but the Keras download itself fails (plain Exception in Keras)."""
    import urllib.error

    import keras.src.utils.file_utils as file_utils

    def failing_download(*args, **kwargs):
        raise urllib.error.URLError("forced by the test")

    monkeypatch.setattr(models, "_imagenet_file_cached", lambda name: False)
    monkeypatch.setattr(models, "_can_reach", lambda host: True)
    monkeypatch.setattr(file_utils, "urlretrieve", failing_download)
    with pytest.raises(models.ImageNetWeightsUnavailable, match="pass its local path"):
        models.build_base("vgg16", 64, weights="imagenet")


def test_local_weights_file_is_loaded(tmp_path):
    keras.utils.set_random_seed(1)
    source = models.build_base("vgg16", 64)
    path = tmp_path / "vgg16-notop.weights.h5"
    source.save_weights(path)
    model = models.build_classifier("vgg16", 64, weights=str(path), seed=2)
    loaded = models.base_of(model).get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(source.get_weights(), loaded))
    fresh = models.base_of(models.build_classifier("vgg16", 64, weights=None, seed=2))
    assert not np.array_equal(fresh.get_weights()[0], loaded[0])


def test_missing_weights_file_says_what_was_expected(tmp_path):
    with pytest.raises(FileNotFoundError, match="expected None, 'imagenet' or a weights file"):
        models.build_base("vgg16", 64, weights=str(tmp_path / "absent.h5"))


def test_top_blocks_unfreeze_but_batch_norm_stays_frozen():
    model = models.build_classifier("resnet50", 64, trainable_top_blocks=1)
    base = models.base_of(model)
    trainable = {layer.name for layer in base.layers if layer.trainable_weights}
    assert trainable and all(name.startswith("conv5_block3_") for name in trainable)
    assert not any(isinstance(layer, keras.layers.BatchNormalization) and layer.trainable
                   for layer in base.layers)
    assert not models.is_base_frozen(model)
    with pytest.raises(ValueError, match="has only 5 blocks"):
        models.build_classifier("vgg16", 64, trainable_top_blocks=6)


def test_same_seeds_give_the_same_head():
    first = models.build_classifier("vgg16", 64, seed=3, head_seed=7)
    alone = models.build_head((2, 2, 512), seed=7)
    shared = models.head_of(first)
    for a, b, c in zip(shared.get_weights(), alone.get_weights(), models.head_of(first).get_weights()):
        assert np.array_equal(a, b) and np.array_equal(a, c)


def test_summary_command_prints_table_and_counts(capsys):
    assert models.summary_main(["resnet50", "--input-size", "64"]) == 0
    out = capsys.readouterr().out
    assert "Trainable params: 2,196,354" in out and "head_pooling" in out
    assert models.summary_main(["vgg16", "--input-size", "40"]) == 2
    assert "input_size >= 64" in capsys.readouterr().err


def test_standardized_head_adds_only_non_trainable_statistics():
    counts = models.parameter_counts(models.build_classifier("resnet50", 64, standardize_features=True))
    assert counts.trainable == 2_196_354
    assert counts.non_trainable == 23_587_712 + 2 * 2048 + 1  # mean, variance, count

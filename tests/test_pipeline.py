"""Input pipeline: cached decoding, resizing that keeps labels, preprocessing, batches."""
import numpy as np
import pytest
import tifffile

from brainlib.data import pipeline
from brainlib.data import DatasetError, scan_dataset
from brainlib.config.params import CLASSIFIERS


@pytest.fixture
def manifest(phantom_copy):
    return scan_dataset(phantom_copy).manifest


def test_images_are_decoded_once_then_read_from_the_cache(manifest, monkeypatch):
    first = pipeline.load_images(manifest, 64)
    assert first.dtype == np.uint8 and first.shape == (len(manifest), 64, 64, 3)
    assert np.array_equal(first[5], tifffile.imread(manifest["image_path"][5]))
    decoded = []
    original = pipeline._decode_image
    monkeypatch.setattr(pipeline, "_decode_image", lambda p, s: decoded.append(p) or original(p, s))
    again = pipeline.load_images(manifest, 64)
    assert decoded == [] and np.array_equal(first, again)
    # A changed file invalidates the cache.
    path = manifest["image_path"][0]
    tifffile.imwrite(path, np.full((64, 64, 3), 7, np.uint8), photometric="rgb")
    changed = pipeline.load_images(manifest, 64)
    assert len(decoded) == len(manifest)
    assert (changed[0] == 7).all()


def test_resizing_keeps_every_slice_label(manifest):
    for size in (16, 24, 37, 100):
        masks = pipeline.load_masks(manifest, size)
        assert masks.shape == (len(manifest), size, size)
        assert np.array_equal(masks.reshape(len(manifest), -1).max(axis=1) > 0,
                              manifest["label"].to_numpy() == 1)
    images = pipeline.load_images(manifest, 32)
    assert images.shape == (len(manifest), 32, 32, 3)


def test_a_single_tumor_pixel_survives_downsizing(manifest):
    path = manifest["mask_path"][0]
    mask = np.zeros((64, 64), np.uint8)
    mask[63, 1] = 255
    tifffile.imwrite(path, mask)
    assert pipeline.load_masks(manifest.iloc[:1], 7)[0].max() == 255


def test_preprocessing_uses_the_0_255_range_caffe_style():
    white = np.full((1, 2, 2, 3), 255, np.uint8)
    for model_name in CLASSIFIERS:
        out = pipeline.preprocess_input(model_name, white)
        # BGR order, ImageNet channel means removed, no division by 255.
        assert np.allclose(out[0, 0, 0], [255 - 103.939, 255 - 116.779, 255 - 123.68])
    with pytest.raises(ValueError, match="model_name"):
        pipeline.preprocess_input("alexnet", white)


def test_fast_preprocessing_equals_keras_own():
    from keras.applications import resnet50, vgg16

    images = np.random.default_rng(0).integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    for model_name, module in (("resnet50", resnet50), ("vgg16", vgg16)):
        expected = module.preprocess_input(images.astype(np.float32))
        assert np.allclose(pipeline.preprocess_input(model_name, images), expected, atol=1e-4)
        # The tensor route gives keras' own tensor route bit for bit, uint8 or float32 in.
        keras_tensor = np.asarray(module.preprocess_input(tf_constant(images.astype(np.float32))))
        for given in (images, images.astype(np.float32)):
            ours = np.asarray(pipeline.preprocess_input(model_name, tf_constant(given)))
            assert ours.dtype == np.float32 and np.array_equal(ours, keras_tensor)
        # And inside a tf.data map, where `batches` hands `prepare` the uint8 slices.
        served = pipeline.batches(images, np.zeros(3), np.arange(3), 2,
                                  lambda x, y: (pipeline.preprocess_input(model_name, x), y))
        batched = np.concatenate([np.asarray(x) for x, _ in served])
        assert batched.dtype == np.float32 and np.array_equal(batched, keras_tensor)


def tf_constant(array):
    import tensorflow as tf
    return tf.constant(array)


def test_augmentation_rotates_and_scales_about_the_centre():
    from brainlib.data.transform import Augmentation

    augmentation = Augmentation(flip=False, rotation_degrees=90, scale=0.0)
    image = np.zeros((1, 33, 33, 3), np.float32)
    image[0, 16, 16] = 255  # the centre stays put under any rotation
    image[0, 16, 28] = 255  # an off-centre dot moves
    out, masks = augmentation(image, None, [1, 0])
    out = np.asarray(out)
    assert masks is None and out[0, 16, 16, 0] > 200 and out[0, 16, 28, 0] < 200
    again, _ = augmentation(image, None, [1, 0])
    np.testing.assert_array_equal(np.asarray(again), out)  # stateless: same seed, same result


def test_evaluation_batches_follow_the_manifest(manifest):
    dataset = pipeline.make_dataset(manifest, "resnet50", 32, batch_size=8)
    images, labels = zip(*[(x.numpy(), y.numpy()) for x, y in dataset])
    images, labels = np.concatenate(images), np.concatenate(labels)
    assert images.dtype == np.float32 and images.shape == (len(manifest), 32, 32, 3)
    assert np.array_equal(labels.argmax(axis=1), manifest["label"].to_numpy())
    expected = pipeline.preprocess_input("resnet50", pipeline.load_images(manifest, 32))
    assert np.allclose(images, expected)


def test_training_batches_are_shuffled_reproducibly_and_augmented(manifest):
    def first_epoch(**kwargs):
        dataset = pipeline.make_dataset(manifest, "vgg16", 32, batch_size=16, training=True,
                                        seed=4, **kwargs)
        return [(x.numpy(), y.numpy()) for x, y in dataset]

    plain_a, plain_b = first_epoch(), first_epoch()
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(plain_a, plain_b))
    order = np.concatenate([y for _, y in plain_a]).argmax(axis=1)
    assert sorted(order) == sorted(manifest["label"])
    augmented = first_epoch(augment=True)
    assert not np.allclose(augmented[0][0], plain_a[0][0])
    assert np.array_equal(np.concatenate([y for _, y in augmented]).sum(axis=0),
                          np.concatenate([y for _, y in plain_a]).sum(axis=0))
    with pytest.raises(ValueError, match="training"):
        pipeline.make_dataset(manifest, "vgg16", 32, augment=True)


def test_a_damaged_file_in_the_pipeline_names_the_file(manifest):
    path = manifest["image_path"][2]
    with open(path, "r+b") as handle:
        handle.truncate(200)
    with pytest.raises(DatasetError, match=path):
        pipeline.load_images(manifest, 32)

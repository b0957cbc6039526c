"""The phantom dataset: Kaggle layout and format, determinism, class balance, tumor runs,
and that a simple intensity threshold cannot separate tumor from non-tumor slices."""
import hashlib
import re

import numpy as np
import pandas as pd
import pytest
import tifffile
from PIL import Image

from brainlib.data import phantom
from brainlib.data.phantom import (
    FULL_SIZE,
    phantom_plan,
    phantom_volume,
    write_phantom_dataset,
)

PATIENT_FOLDER = re.compile(r"^TCGA_(CS|DU|EZ|FG|HT)_P\d{3}_\d{8}$")


def file_hashes(folder):
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file()}


def slice_labels(masks):
    """Label of a slice: 1 when its mask has any pixel > 0."""
    return (masks.reshape(len(masks), -1) > 0).any(axis=1)


@pytest.fixture(scope="module")
def default_phantom_128():
    """The default plan (30 patients) rendered at 128 x 128 in memory: FLAIR and labels."""
    plan = phantom_plan()
    flair, labels = [], []
    for _, patient in plan.iterrows():
        images, masks = phantom_volume(patient, image_size=128)
        flair.append(images[..., 1])
        labels.append(slice_labels(masks))
    return plan, np.concatenate(flair), labels


def test_full_size_layout_and_file_format(tmp_path):
    kaggle_3m = write_phantom_dataset(tmp_path, n_patients=2, slices_per_patient=6)
    assert kaggle_3m == tmp_path / "kaggle_3m"
    folders = sorted(p for p in kaggle_3m.iterdir() if p.is_dir())
    assert len(folders) == 2 and all(PATIENT_FOLDER.match(f.name) for f in folders)
    assert sorted(p.name for p in kaggle_3m.iterdir() if p.is_file()) == ["README.md", "data.csv"]
    for folder in folders:
        names = {p.name for p in folder.iterdir()}
        n_slices = len(names) // 2
        assert names == ({f"{folder.name}_{k}.tif" for k in range(1, n_slices + 1)}
                         | {f"{folder.name}_{k}_mask.tif" for k in range(1, n_slices + 1)})
        with tifffile.TiffFile(folder / f"{folder.name}_1.tif") as tif:
            page = tif.pages[0]
            assert (page.shape, page.dtype, page.photometric, page.compression) == (
                (256, 256, 3), np.uint8, tifffile.PHOTOMETRIC.RGB, tifffile.COMPRESSION.NONE)
        with tifffile.TiffFile(folder / f"{folder.name}_1_mask.tif") as tif:
            page = tif.pages[0]
            assert (page.shape, page.dtype, page.photometric) == (
                (256, 256), np.uint8, tifffile.PHOTOMETRIC.MINISBLACK)
        for k in range(1, n_slices + 1):
            mask = tifffile.imread(folder / f"{folder.name}_{k}_mask.tif")
            assert set(np.unique(mask)) <= {0, 255}
        # Pillow reads them too, as RGB and 8-bit gray.
        assert Image.open(folder / f"{folder.name}_1.tif").mode == "RGB"
        assert Image.open(folder / f"{folder.name}_1_mask.tif").mode == "L"


def test_data_csv_and_readme_say_phantom(tmp_path):
    kaggle_3m = write_phantom_dataset(tmp_path, n_patients=3, slices_per_patient=6,
                                      image_size=32, seed=7)
    table = pd.read_csv(kaggle_3m / "data.csv")
    assert table["phantom"].all()
    assert all(re.fullmatch(r"TCGA_[A-Z]{2}_P\d{3}", p) for p in table["Patient"])
    readme = (kaggle_3m / "README.md").read_text()
    assert readme.startswith("# PHANTOM") and "seed=7" in readme and "image_size=32" in readme


def test_zlib_compression_keeps_pixels(tmp_path):
    plain = write_phantom_dataset(tmp_path / "plain", n_patients=1, slices_per_patient=6, image_size=64)
    packed = write_phantom_dataset(tmp_path / "zlib", n_patients=1, slices_per_patient=6,
                                   image_size=64, compression="zlib")
    image = next(packed.glob("*/*_3.tif"))
    with tifffile.TiffFile(image) as tif:
        assert tif.pages[0].compression == tifffile.COMPRESSION.ADOBE_DEFLATE
    twin = plain / image.relative_to(packed)
    assert np.array_equal(tifffile.imread(image), tifffile.imread(twin))


def test_same_seed_same_bytes_other_seed_other_data(tmp_path):
    options = {"n_patients": 3, "slices_per_patient": 8, "image_size": 64}
    first = file_hashes(write_phantom_dataset(tmp_path / "a", seed=3, **options))
    again = file_hashes(write_phantom_dataset(tmp_path / "b", seed=3, **options))
    other = file_hashes(write_phantom_dataset(tmp_path / "c", seed=4, **options))
    assert first == again
    images = [{digest for name, digest in hashes.items() if name.endswith(".tif")
               and not name.endswith("_mask.tif")} for hashes in (first, other)]
    assert images[0].isdisjoint(images[1])


def test_default_class_balance_and_one_contiguous_tumor_run(default_phantom_128):
    plan, _, labels = default_phantom_128
    tumor_share = np.concatenate(labels).mean()
    print(f"\nphantom default: {len(plan)} patients, {sum(map(len, labels))} slices, "
          f"tumor slices {tumor_share:.1%} (real data: 1373/3929 = 34.9%)")
    assert 0.30 <= tumor_share <= 0.40
    for (_, patient), label in zip(plan.iterrows(), labels):
        tumor_slices = np.flatnonzero(label) + 1            # 1-based slice numbers
        assert len(label) == patient["n_slices"]
        if len(tumor_slices) == 0:
            assert patient["tumor_first_slice"] == 0
            continue
        assert np.array_equal(tumor_slices, np.arange(tumor_slices[0], tumor_slices[-1] + 1)), \
            f"{patient['Patient']}: tumor slices {tumor_slices} are not one contiguous run"
        assert (tumor_slices[0], tumor_slices[-1]) == (patient["tumor_first_slice"],
                                                       patient["tumor_last_slice"])
        assert tumor_slices[0] > 1 and tumor_slices[-1] < len(label)   # tumor-free ends
    assert (plan["n_tumor_slices"] == 0).sum() >= 1                     # some tumor-free patients


def test_full_size_plan_matches_the_real_dataset():
    plan = phantom_plan(**FULL_SIZE)
    assert len(plan) == 110 and plan["n_slices"].sum() == 3929
    assert plan["Patient"].is_unique
    assert 0.33 <= plan["n_tumor_slices"].sum() / 3929 <= 0.37
    assert plan["n_slices"].between(15, 50).all()


def test_tumors_are_bright_in_flair_and_shrink_to_a_few_dozen_pixels():
    plan = phantom_plan(n_patients=4, seed=1)
    smallest, contrasts = [], []
    for _, patient in plan.iterrows():
        images, masks = phantom_volume(patient, seed=1)
        areas = (masks > 0).sum(axis=(1, 2))
        if areas.any():
            smallest.append(areas[areas > 0].min())
            biggest = areas.argmax()
            flair, tumor = images[biggest, ..., 1].astype(float), masks[biggest] > 0
            brain = (flair > 30) & (flair < 120) & ~tumor
            contrasts.append(flair[tumor].mean() / flair[brain].mean())
    assert min(smallest) < 100, f"smallest tumor areas {smallest}"
    assert min(contrasts) > 1.1, f"tumor/brain FLAIR ratios {contrasts}"


def test_channels_differ_like_three_sequences():
    patient = phantom_plan(n_patients=1, seed=2).iloc[0]
    images, _ = phantom_volume(patient, image_size=64, seed=2)
    pre, flair, post = (images[..., c].astype(float) for c in range(3))
    assert not np.array_equal(pre, flair) and not np.array_equal(flair, post)


def test_missing_sequence_is_replaced_by_flair_as_in_the_real_data():
    plan = phantom_plan(n_patients=60)
    patient = plan[plan["missing_sequence"] == "post-contrast"].iloc[0]
    images, _ = phantom_volume(patient, image_size=32)
    assert np.array_equal(images[..., 2], images[..., 1])


def best_threshold_accuracy(feature, label):
    """Accuracy of the best rule `feature > t` (or `feature < t`), t chosen on the data."""
    order = np.argsort(feature, kind="stable")
    value, label = feature[order], label[order].astype(int)
    negatives_below = np.concatenate([[0], np.cumsum(1 - label)])
    positives_above = np.concatenate([np.cumsum(label[::-1])[::-1], [0]])
    accuracy = (negatives_below + positives_above) / len(label)
    cut_between_values = np.concatenate([[True], value[1:] != value[:-1], [True]])
    return float(max(accuracy[cut_between_values].max(), 1 - accuracy[cut_between_values].min()))


def test_an_intensity_threshold_does_not_separate_the_classes(default_phantom_128):
    _, flair, labels = default_phantom_128
    label = np.concatenate(labels)
    pixels = flair.reshape(len(flair), -1)
    features = {"max FLAIR": pixels.max(axis=1).astype(float)}
    for level in range(60, 240, 20):
        features[f"share of FLAIR > {level}"] = (pixels > level).mean(axis=1)
    accuracies = {name: best_threshold_accuracy(f, label) for name, f in features.items()}
    best = max(accuracies, key=accuracies.get)
    print(f"\nbest threshold on one FLAIR feature: {best}, accuracy {accuracies[best]:.3f} "
          f"(always 'no tumor': {1 - label.mean():.3f})")
    assert accuracies[best] < 0.9, accuracies


def test_interrupted_run_leaves_no_partial_folder(tmp_path, monkeypatch):
    calls = []

    def failing_volume(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_volume(*args, **kwargs)

    real_volume = phantom.phantom_volume
    monkeypatch.setattr(phantom, "phantom_volume", failing_volume)
    with pytest.raises(KeyboardInterrupt):
        write_phantom_dataset(tmp_path, n_patients=3, slices_per_patient=6, image_size=32)
    assert list(tmp_path.iterdir()) == []


def test_reuses_same_parameters_and_never_replaces_real_data(tmp_path):
    options = {"n_patients": 1, "slices_per_patient": 6, "image_size": 32}
    kaggle_3m = write_phantom_dataset(tmp_path, **options)
    stamp = (kaggle_3m / "data.csv").stat().st_mtime_ns
    assert write_phantom_dataset(tmp_path, **options) == kaggle_3m
    assert (kaggle_3m / "data.csv").stat().st_mtime_ns == stamp
    write_phantom_dataset(tmp_path, seed=1, **options)           # other parameters: replaced
    assert "seed=1" in (kaggle_3m / "README.md").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kaggle_3m"]

    real = tmp_path / "real"
    (real / "kaggle_3m").mkdir(parents=True)
    (real / "kaggle_3m" / "README.md").write_text("# LGG Segmentation Dataset\n")
    with pytest.raises(FileExistsError, match="not a brainlib phantom"):
        write_phantom_dataset(real, **options)


@pytest.mark.parametrize("bad", [{"n_patients": 0}, {"n_patients": 1000},
                                 {"slices_per_patient": 3}, {"tumor_fraction": 0.9},
                                 {"compression": "lzw"}, {"image_size": 16},
                                 {"n_patients": 5, "n_slices": 10}])
def test_bad_parameters_are_refused(tmp_path, bad):
    with pytest.raises(ValueError):
        write_phantom_dataset(tmp_path, **bad)

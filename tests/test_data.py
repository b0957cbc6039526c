"""The data layer: scanning the Kaggle layout, checks of bad input, caching, the CLI."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

from brainlib import data
from brainlib.data import DatasetError, scan_dataset


def slice_files(folder: Path, mask: bool = False) -> list[Path]:
    pattern = "*_mask.tif" if mask else "*[0-9].tif"
    return sorted(folder.rglob(pattern))


def test_scan_counts_every_slice_once(phantom_kaggle_3m):
    result = scan_dataset(phantom_kaggle_3m)
    images, masks = slice_files(phantom_kaggle_3m), slice_files(phantom_kaggle_3m, mask=True)
    assert result.ok
    assert len(result.manifest) == len(images) == len(masks)
    assert result.manifest["patient_id"].nunique() == 6
    assert list(result.manifest.columns) == data.MANIFEST_COLUMNS


def test_labels_and_tumor_pixels_come_from_the_masks(phantom_kaggle_3m):
    manifest = scan_dataset(phantom_kaggle_3m).manifest
    for row in manifest.sample(10, random_state=0).itertuples():
        mask = tifffile.imread(row.mask_path)
        assert row.tumor_pixels == np.count_nonzero(mask)
        assert row.label == int(mask.max() > 0)
    assert 0 < manifest["label"].mean() < 1


def test_slices_are_in_natural_order(phantom_kaggle_3m):
    manifest = scan_dataset(phantom_kaggle_3m).manifest
    for _, rows in manifest.groupby("patient_id"):
        numbers = rows["slice_number"].tolist()
        assert numbers == list(range(1, len(numbers) + 1))  # _2 before _10
    assert manifest["slice_number"].dtype.kind == "i"


def test_archive_root_with_the_folder_twice_counts_slices_once(phantom_kaggle_3m, tmp_path):
    archive = tmp_path / "archive"
    shutil.copytree(phantom_kaggle_3m, archive / "kaggle_3m")
    shutil.copytree(phantom_kaggle_3m, archive / "lgg-mri-segmentation" / "kaggle_3m")
    result = scan_dataset(archive)
    assert result.root == archive / "kaggle_3m"
    assert len(result.manifest) == len(scan_dataset(phantom_kaggle_3m).manifest)


def test_dataset_files_that_are_not_slices_are_ignored(phantom_copy):
    (phantom_copy / "data.csv").write_text("Patient\nTCGA_CS_0000\n")
    (phantom_copy / "README.md").write_text("readme\n")
    assert scan_dataset(phantom_copy).ok


def damage(folder: Path, how: str) -> Path:
    """Break the phantom in one way; return the file (or folder) the error must name."""
    image = slice_files(folder)[3]
    mask = image.with_name(image.stem + "_mask.tif")
    if how == "image without mask":
        mask.unlink()
        return image
    if how == "mask without image":
        image.unlink()
        return mask
    if how == "truncated":
        image.write_bytes(image.read_bytes()[:300])
        return image
    if how == "not a tiff":
        image.write_text("not an image")
        return image
    if how == "four channels":
        tifffile.imwrite(image, np.zeros((64, 64, 4), np.uint8), photometric="rgb")
        return image
    if how == "grey image":
        tifffile.imwrite(image, np.zeros((64, 64), np.uint8))
        return image
    if how == "mask shape":
        tifffile.imwrite(mask, np.zeros((32, 64), np.uint8))
        return mask
    if how == "mask values":
        tifffile.imwrite(mask, np.full((64, 64), 128, np.uint8))
        return mask
    if how == "duplicate slice":
        number = image.stem.rsplit("_", 1)[1]
        twin = image.with_name(image.stem.rsplit("_", 1)[0] + f"_0{number}.tif")
        shutil.copy(image, twin)
        shutil.copy(mask, twin.with_name(twin.stem + "_mask.tif"))
        return twin
    raise ValueError(how)


@pytest.mark.parametrize("how, words", [
    ("image without mask", "no mask"),
    ("mask without image", "no image"),
    ("truncated", "truncated"),
    ("not a tiff", "unreadable"),
    ("four channels", "(H, W, 3)"),
    ("grey image", "(H, W, 3)"),
    ("mask shape", "but its mask is 32x64"),
    ("mask values", "not 0/255"),
    ("duplicate slice", "duplicate slice number"),
])
def test_bad_input_gets_an_error_naming_the_file(phantom_copy, how, words):
    culprit = damage(phantom_copy, how)
    with pytest.raises(DatasetError) as error:
        scan_dataset(phantom_copy)
    assert str(culprit) in str(error.value)
    assert words in str(error.value)


def test_a_shrunken_image_is_blamed_on_the_image_and_long_value_lists_end_with_dots(
        phantom_copy):
    patient = sorted(p for p in phantom_copy.iterdir() if p.is_dir())[0]
    image, image2 = slice_files(patient)[:2]
    mask, mask2 = (i.with_name(i.stem + "_mask.tif") for i in (image, image2))
    tifffile.imwrite(mask, np.zeros((256, 256), np.uint8))  # the dataset's size ...
    tifffile.imwrite(image, np.zeros((128, 128, 3), np.uint8))  # ... and a shrunken image
    problems = scan_dataset(phantom_copy, collect_problems=True).problems
    assert [p.path for p in problems] == [str(image)]
    assert "image is 128x128 but its mask is 256x256" in problems[0].problem
    tifffile.imwrite(mask2, np.arange(64 * 64, dtype=np.uint16).reshape(64, 64).astype(np.uint8))
    found = {p.path: p.problem for p in scan_dataset(phantom_copy, collect_problems=True).problems}
    assert found[str(mask2)].endswith(", ...] are not 0/255")


def test_a_folder_above_several_datasets_is_refused_with_the_candidates(phantom_kaggle_3m,
                                                                         tmp_path):
    for name in ("a", "b"):
        shutil.copytree(phantom_kaggle_3m, tmp_path / name / "kaggle_3m")
    with pytest.raises(DatasetError, match="2 kaggle_3m folders at the same depth") as error:
        scan_dataset(tmp_path)
    assert str(tmp_path / "a" / "kaggle_3m") in str(error.value)
    # the Kaggle archive's own copy one level deeper is not ambiguous: the shallowest wins
    shutil.rmtree(tmp_path / "b")
    shutil.copytree(phantom_kaggle_3m, tmp_path / "a" / "deeper" / "kaggle_3m")
    assert scan_dataset(tmp_path).root == tmp_path / "a" / "kaggle_3m"


def test_collecting_problems_reports_all_of_them_and_keeps_the_good_slices(phantom_copy):
    n_slices = len(scan_dataset(phantom_copy).manifest)
    culprits = [damage(phantom_copy, "mask values")]
    patient_dirs = sorted(p for p in phantom_copy.iterdir() if p.is_dir())
    second = slice_files(patient_dirs[-1])[0]
    second.write_bytes(b"II*\x00garbage")
    culprits.append(second)
    result = scan_dataset(phantom_copy, collect_problems=True)
    assert {p.path for p in result.problems} == {str(c) for c in culprits}
    assert len(result.manifest) == n_slices - 2


@pytest.mark.parametrize("make", ["empty", "missing", "wrong"])
def test_empty_or_wrong_folder_is_refused(tmp_path, make):
    folder = tmp_path / "somewhere"
    if make != "missing":
        folder.mkdir()
    if make == "wrong":
        (folder / "photos").mkdir()
        (folder / "photos" / "cat.tif").write_bytes(b"x")
    with pytest.raises(DatasetError, match=str(folder)):
        scan_dataset(folder)


def test_scan_cache_is_used_and_invalidated_when_a_file_changes(phantom_copy, monkeypatch):
    first = scan_dataset(phantom_copy)
    calls = []
    original = data._check_pair
    monkeypatch.setattr(data, "_check_pair", lambda *a: calls.append(a) or original(*a))
    assert scan_dataset(phantom_copy).manifest.equals(first.manifest)
    assert calls == []  # nothing decoded again
    mask = slice_files(phantom_copy, mask=True)[0]
    tifffile.imwrite(mask, np.full((64, 64), 255, np.uint8))
    again = scan_dataset(phantom_copy)
    assert len(calls) == 1
    assert again.manifest.set_index("mask_path").loc[str(mask), "tumor_pixels"] == 64 * 64


def test_scan_reads_deflate_compressed_tiffs(phantom_copy):
    image = slice_files(phantom_copy)[0]
    pixels = tifffile.imread(image)
    tifffile.imwrite(image, pixels, photometric="rgb", compression="zlib")
    assert scan_dataset(phantom_copy).ok
    assert np.array_equal(data.read_slice(image, image.with_name(image.stem + "_mask.tif"))[0],
                          pixels)


def run_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "brainlib", *args], capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=120)


def test_cli_scan_prints_counts_and_exits_zero_on_a_clean_folder(phantom_kaggle_3m):
    result = run_cli("scan", str(phantom_kaggle_3m), "--json")
    assert result.returncode == 0, result.stderr
    counts = json.loads(result.stdout)
    manifest = scan_dataset(phantom_kaggle_3m).manifest
    assert counts["slices"] == len(manifest)
    assert counts["tumor_slices"] == manifest["label"].sum()
    assert counts["problems"] == []


def test_cli_scan_exits_non_zero_and_lists_problems(phantom_copy):
    culprit = damage(phantom_copy, "image without mask")
    result = run_cli("scan", str(phantom_copy))
    assert result.returncode == 1
    assert str(culprit) in result.stdout and "no mask" in result.stdout
    assert run_cli("scan", str(phantom_copy / "nothing-here")).returncode == 2


def test_offline_download_fails_fast_with_instructions(monkeypatch):
    import kagglehub

    def offline(*args, **kwargs):
        raise ConnectionError("Failed to resolve 'api.kaggle.com'")

    monkeypatch.setattr(kagglehub, "dataset_download", offline)
    with pytest.raises(data.DataUnavailableError) as error:
        data.download_kaggle()
    message = str(error.value)
    assert "mateuszbuda/lgg-mri-segmentation" in message
    assert data.DATA_ENV_VAR in message and "data_source" in message


def test_locate_dataset_reads_the_environment_variable(phantom_kaggle_3m, monkeypatch):
    monkeypatch.setenv(data.DATA_ENV_VAR, str(phantom_kaggle_3m.parent))
    assert data.locate_dataset(None) == phantom_kaggle_3m


def test_real_sample_counts(real_sample):
    result = scan_dataset(real_sample.parent)
    assert result.ok, result.problems
    counts = result.counts()
    assert (counts["patients"], counts["slices"], counts["tumor_slices"]) == (20, 647, 231)
    assert counts["institutions"] == {"CS": 3, "DU": 8, "FG": 3, "HT": 6}

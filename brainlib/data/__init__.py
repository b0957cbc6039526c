"""The data stage. This module finds, checks and reads the Kaggle `kaggle_3m` layout of the
LGG MRI segmentation dataset; beside it: the phantom (`phantom`), patient folds and
splits (`splits`), hold-out and institution sets (`external`), tf.data (`pipeline`),
rescaling and augmentation (`transform`), the data chapter's looks (`eda`), the machine a
result ran on (`machine`) and the recorded training outputs (`recorded`).

One row per slice goes into the **manifest**, the table every later stage reads:
patient, institution, slice number, image and mask paths, label (1 when the mask has any
tumor pixel) and the tumor pixel count.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile

from ..config import lazy_submodules

KAGGLE_DATASET = "mateuszbuda/lgg-mri-segmentation"
DATA_ENV_VAR = "BRAINLIB_DATA"
CACHE_ENV_VAR = "BRAINLIB_CACHE"
KAGGLE_SHAPE = (256, 256)
"""Height and width of every slice of the Kaggle dataset."""
UNKNOWN_LABEL = -1
"""The label of a slice scanned without its mask (`scan_dataset(masks_required=False)`)."""
MANIFEST_COLUMNS = [
    "patient_id", "institution", "slice_number", "image_path", "mask_path",
    "label", "tumor_pixels",
]
PATIENT_DIR = re.compile(r"^TCGA_(?P<institution>[A-Z0-9]{2})_[A-Z0-9]{4}_\d{8}$")
SLICE_FILE = re.compile(r"^(?P<patient>.+)_(?P<slice>\d+)(?P<mask>_mask)?\.tiff?$")
# Files of the dataset's own that are not slices.
NOT_SLICES = {"data.csv", "README.md"}


class DatasetError(ValueError):
    """The dataset folder has problems; `.problems` lists every one found."""

    def __init__(self, problems: list["DataProblem"]):
        self.problems = list(problems)
        shown = "\n".join(f"  - {p}" for p in self.problems[:20])
        more = f"\n  ... and {len(self.problems) - 20} more" if len(self.problems) > 20 else ""
        super().__init__(f"{len(self.problems)} problem(s) in the dataset:\n{shown}{more}")


class DataUnavailableError(RuntimeError):
    """The dataset cannot be fetched here; the message says how to supply a local copy."""


@dataclass(frozen=True)
class DataProblem:
    """One problem with one file or folder."""

    path: str
    problem: str

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}"


@dataclass
class ScanResult:
    """A scan's manifest (valid slices only) and every problem found."""

    root: Path
    manifest: pd.DataFrame
    problems: list[DataProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def counts(self) -> dict:
        m = self.manifest
        return {
            "root": str(self.root),
            "patients": int(m["patient_id"].nunique()),
            "slices": int(len(m)),
            "tumor_slices": int(m["label"].sum()),
            "institutions": {k: int(v) for k, v in
                             m.groupby("institution")["patient_id"].nunique().items()},
            "problems": [str(p) for p in self.problems],
        }

    def summary(self) -> str:
        c = self.counts()
        lines = [f"dataset: {c['root']}",
                 f"patients: {c['patients']}  slices: {c['slices']}  "
                 f"tumor slices: {c['tumor_slices']}",
                 "patients per institution: "
                 + ", ".join(f"{k} {v}" for k, v in c["institutions"].items())]
        lines.append(f"problems: {len(self.problems)}")
        lines += [f"  - {p}" for p in self.problems]
        return "\n".join(lines)


def cache_dir() -> Path:
    """Where decoded arrays and scan results are cached (`$BRAINLIB_CACHE` overrides)."""
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "brainlib"
    path = Path(os.environ.get(CACHE_ENV_VAR, default))
    path.mkdir(parents=True, exist_ok=True)
    return path


def find_kaggle_3m(path: str | os.PathLike) -> Path:
    """Resolve a folder to the one `kaggle_3m` folder holding patient folders.

    Accepts the `kaggle_3m` folder itself or any parent (the Kaggle archive root holds the
    folder twice, `kaggle_3m/` and `lgg-mri-segmentation/kaggle_3m/`; the shallowest copy
    is used, so no slice is counted twice).
    """
    root = Path(path).expanduser()
    if not root.exists():
        raise DatasetError([DataProblem(str(root), "folder does not exist")])
    if not root.is_dir():
        raise DatasetError([DataProblem(str(root), "is a file, expected a kaggle_3m folder")])
    if _patient_dirs(root):
        return root
    candidates = sorted((p for p in root.rglob("kaggle_3m") if p.is_dir() and _patient_dirs(p)),
                        key=lambda p: (len(p.relative_to(root).parts), str(p)))
    if not candidates:
        raise DatasetError([DataProblem(
            str(root), "no patient folders (TCGA_<inst>_<id>_<date>) found here or in a "
                       "kaggle_3m folder below: is this the LGG MRI segmentation dataset?")])
    depth = len(candidates[0].relative_to(root).parts)
    shallowest = [p for p in candidates if len(p.relative_to(root).parts) == depth]
    if len(shallowest) > 1:
        listed = ", ".join(str(p) for p in shallowest[:10]) + (", ..." if len(shallowest) > 10
                                                               else "")
        raise DatasetError([DataProblem(
            str(root), f"{len(shallowest)} kaggle_3m folders at the same depth below it, so "
                       f"which one is meant is unclear; give one of them: {listed}")])
    return candidates[0]


def _patient_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and PATIENT_DIR.match(p.name))


def scan_dataset(path: str | os.PathLike, *, collect_problems: bool = False,
                 use_cache: bool = True, masks_required: bool = True) -> ScanResult:
    """Scan a `kaggle_3m` folder (or a parent of it) into a manifest, checking every file.

    Each image needs its mask and the reverse; images must be HxWx3 uint8, masks HxW
    uint8 of values {0, 255}; slice numbers must be unique per patient. By default the
    first problem raises `DatasetError`; with `collect_problems=True` the scan goes on and
    returns every problem with the manifest of the valid slices. With
    `masks_required=False` (new patients to predict) an image may have no mask: its
    `mask_path` is empty and its `label` is -1 (unknown).
    """
    root = find_kaggle_3m(path)
    problems: list[DataProblem] = []

    def report(where, what):
        problems.append(DataProblem(str(where), what))
        if not collect_problems:
            raise DatasetError(problems)

    pairs = []
    for entry in sorted(root.iterdir()):
        if entry.is_dir() and not PATIENT_DIR.match(entry.name):
            report(entry, "folder name is not TCGA_<inst>_<id>_<YYYYMMDD>")
        elif entry.is_file() and entry.name not in NOT_SLICES and entry.suffix in (".tif", ".tiff"):
            report(entry, "slice outside a patient folder")
    for patient_dir in _patient_dirs(root):
        pairs += _pair_patient_files(patient_dir, report, masks_required)

    signatures = [(_signature(img), _signature(msk) if msk else None) for _, _, img, msk in pairs]
    cache = _load_scan_cache(root) if use_cache else {}
    to_check = [i for i, sig in enumerate(signatures) if json.dumps(sig) not in cache]
    with ThreadPoolExecutor(max_workers=4) as pool:
        checked = dict(zip(to_check, pool.map(lambda i: _check_pair(pairs[i][2], pairs[i][3]),
                                               to_check)))
    rows, fresh = [], {}
    for i, (patient_id, slice_number, image_path, mask_path) in enumerate(pairs):
        key = json.dumps(signatures[i])
        outcome = checked[i] if i in checked else cache[key]
        if "problem" in outcome:
            report(outcome["path"], outcome["problem"])
            continue
        fresh[key] = outcome
        rows.append({
            "patient_id": patient_id,
            "institution": PATIENT_DIR.match(patient_id)["institution"],
            "slice_number": slice_number,
            "image_path": str(image_path),
            "mask_path": str(mask_path) if mask_path else "",
            "label": int(outcome["tumor_pixels"] > 0) if mask_path else UNKNOWN_LABEL,
            "tumor_pixels": int(outcome["tumor_pixels"]),
        })
    if use_cache and fresh:
        _save_scan_cache(root, fresh)
    if not rows and not problems:
        report(root, "no slices found")
    manifest = pd.DataFrame(rows, columns=MANIFEST_COLUMNS)
    manifest = manifest.sort_values(["patient_id", "slice_number"], ignore_index=True)
    manifest = manifest.astype({"slice_number": "int64", "label": "int64", "tumor_pixels": "int64"})
    return ScanResult(root=root, manifest=manifest, problems=problems)


def _pair_patient_files(patient_dir: Path, report, masks_required: bool = True) -> list[tuple]:
    """Match `<patient>_<N>.tif` with `<patient>_<N>_mask.tif`, in natural slice order."""
    images, masks = {}, {}
    for f in sorted(patient_dir.iterdir()):
        match = SLICE_FILE.match(f.name)
        if not f.is_file() or match is None or match["patient"] != patient_dir.name:
            report(f, f"unexpected file: expected {patient_dir.name}_<N>.tif or "
                      f"{patient_dir.name}_<N>_mask.tif")
            continue
        kind = masks if match["mask"] else images
        number = int(match["slice"])
        if number in kind:
            report(f, f"duplicate slice number {number} (also {kind[number]})")
            continue
        kind[number] = f
    if masks_required:
        for number in sorted(set(images) - set(masks)):
            report(images[number], "image has no mask")
    for number in sorted(set(masks) - set(images)):
        report(masks[number], "mask has no image")
    if not images and not masks:
        report(patient_dir, "patient folder holds no slices")
    numbers = sorted(set(images) if not masks_required else set(images) & set(masks))
    return [(patient_dir.name, n, images[n], masks.get(n)) for n in numbers]


def _check_pair(image_path: Path, mask_path: Path | None) -> dict:
    """Decode one slice and its mask (if any); return the tumor pixel count or the problem."""
    try:
        image = read_tiff(image_path)
        if image.ndim != 3 or image.shape[2] != 3:
            return {"path": str(image_path),
                    "problem": f"image has shape {image.shape}, expected (H, W, 3) RGB"}
        if mask_path is None:
            if image.dtype != np.uint8:
                return {"path": str(image_path), "problem": "dtype is not uint8 (expected 8-bit "
                                                            "images)"}
            return {"tumor_pixels": -1}
        mask = read_tiff(mask_path)
        if mask.ndim == 3 and mask.shape[2] == 1:
            mask = mask[..., 0]
        if mask.shape != image.shape[:2]:
            # blame the one that is not the dataset's size (a shrunken image, not its mask)
            blamed = image_path if mask.shape == KAGGLE_SHAPE else mask_path
            return {"path": str(blamed),
                    "problem": f"image is {image.shape[0]}x{image.shape[1]} but its mask is "
                               f"{mask.shape[0]}x{mask.shape[1]} (expected the same height and "
                               f"width; the dataset's slices are "
                               f"{KAGGLE_SHAPE[0]}x{KAGGLE_SHAPE[1]})"
                    if mask.ndim == 2 else f"mask has shape {mask.shape}, expected "
                                           f"{image.shape[:2]} (one channel)"}
        if image.dtype != np.uint8 or mask.dtype != np.uint8:
            bad = image_path if image.dtype != np.uint8 else mask_path
            return {"path": str(bad), "problem": "dtype is not uint8 (expected 8-bit images and masks)"}
        values = np.unique(mask)
        if not np.isin(values, (0, 255)).all():
            wrong = values[~np.isin(values, (0, 255))].tolist()
            shown = ", ".join(map(str, wrong[:5])) + (", ..." if len(wrong) > 5 else "")
            return {"path": str(mask_path),
                    "problem": f"mask values [{shown}] are not 0/255"}
    except _TiffReadError as error:
        return {"path": error.path, "problem": error.problem}
    return {"tumor_pixels": int(np.count_nonzero(mask))}


class _TiffReadError(Exception):
    def __init__(self, path, problem):
        self.path, self.problem = str(path), problem


def read_tiff(path: str | os.PathLike) -> np.ndarray:
    """Read one TIFF (uncompressed or deflate) as a numpy array, naming the file on failure."""
    try:
        return tifffile.imread(path)
    except Exception as error:  # tifffile raises many types for damaged files
        raise _TiffReadError(path, f"unreadable or truncated TIFF ({type(error).__name__}: "
                                   f"{error})") from None


def read_slice(image_path, mask_path) -> tuple[np.ndarray, np.ndarray]:
    """One slice as (uint8 HxWx3 image, uint8 HxW mask), with a clear error if damaged."""
    outcome = _check_pair(Path(image_path), Path(mask_path))
    if "problem" in outcome:
        raise DatasetError([DataProblem(outcome["path"], outcome["problem"])])
    mask = tifffile.imread(mask_path)
    return tifffile.imread(image_path), mask[..., 0] if mask.ndim == 3 else mask


def _signature(path: Path) -> tuple[str, int, int]:
    stat = path.stat()
    return (str(path), stat.st_size, stat.st_mtime_ns)


def _scan_cache_path(root: Path) -> Path:
    digest = hashlib.sha1(str(root.resolve()).encode()).hexdigest()[:16]
    return cache_dir() / "scans" / f"{digest}.json"


def _load_scan_cache(root: Path) -> dict:
    path = _scan_cache_path(root)
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _save_scan_cache(root: Path, entries: dict) -> None:
    """Keep the checked outcome per (path, size, mtime): a changed file is checked again."""
    path = _scan_cache_path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(entries))


def write_atomic(path: str | os.PathLike, write) -> Path:
    """Call `write(tmp)` on a temporary file beside `path` (same suffix, so writers that
    go by it behave), then rename it onto `path`: a reader sees the old or the new
    content, never a half-written one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write a text file atomically."""
    write_atomic(path, lambda tmp: tmp.write_text(text))


def write_csv_atomic(frame: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write a table atomically (temporary file in the same folder, then rename)."""
    write_atomic(path, lambda tmp: frame.to_csv(tmp, index=False))


def download_kaggle(dataset: str = KAGGLE_DATASET) -> Path:
    """Download the LGG dataset with kagglehub (public, no credentials) into its usual cache.

    Offline this fails fast with `DataUnavailableError`, saying how to use a local copy.
    """
    import kagglehub

    try:
        downloaded = Path(kagglehub.dataset_download(dataset))
    except Exception as error:
        raise DataUnavailableError(
            f"Could not download the Kaggle dataset '{dataset}' "
            f"({type(error).__name__}: {str(error)[:200]}).\n"
            "This machine may be offline. Download it where there is internet "
            f"(https://www.kaggle.com/datasets/{dataset}), copy the folder here, and pass it "
            f"as `data_source=/path/to/kaggle_3m` (or `-p data_source=...` to "
            f"`python -m brainlib study`), or set {DATA_ENV_VAR}=/path/to/kaggle_3m. "
            "Offline, `data_source=phantom` runs the study on the synthetic phantom."
        ) from error
    return find_kaggle_3m(downloaded)


def locate_dataset(source: str | os.PathLike | None, phantom_root: str | os.PathLike | None = None,
                   phantom_patients: int | None = None, seed: int = 0) -> Path:
    """Turn a data source into a `kaggle_3m` folder.

    `source` is a folder path, `"kaggle"` (download), `"phantom"` (generate the
    synthetic dataset under `phantom_root`, once), or `"auto"`/None: `$BRAINLIB_DATA` if
    set, else the Kaggle download on Colab, else the phantom.
    """
    if source in (None, "", "auto"):
        in_colab = "google.colab" in sys.modules
        source = os.environ.get(DATA_ENV_VAR) or ("kaggle" if in_colab else "phantom")
    if source == "kaggle":
        return download_kaggle()
    if source == "phantom":
        from . import phantom

        root = Path(phantom_root or cache_dir() / "phantom")
        options = {"seed": seed}
        if phantom_patients:
            options["n_patients"] = phantom_patients
        folder = root / "-".join(f"{k}{v}" for k, v in sorted(options.items()))
        # Written once, atomically; a phantom with the same parameters is reused as is.
        phantom.write_phantom_dataset(folder, **options)
        return find_kaggle_3m(folder)
    return find_kaggle_3m(source)


SUBMODULES = ('phantom', 'splits', 'external', 'pipeline', 'transform', 'eda', 'machine', 'recorded')


__getattr__ = lazy_submodules(__name__, SUBMODULES)

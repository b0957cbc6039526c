"""Shared fixtures: small phantom datasets and the real LGG sample (the session's own cache
and run folder are set up by tests/regression_setup.py, loaded for every pytest run)."""
import os
import shutil
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
REAL_SAMPLE = Path(os.environ.get("BRAINLIB_LGG_SAMPLE",
                                  REPO_ROOT.parent / "shared" / "data" / "lgg-sample"))


@pytest.fixture(scope="session")
def phantom_kaggle_3m(tmp_path_factory) -> Path:
    """A small phantom (6 patients, 64x64 slices) in the Kaggle layout; treat as read-only."""
    from brainlib.data.phantom import write_phantom_dataset

    root = tmp_path_factory.mktemp("phantom")
    return write_phantom_dataset(root, n_patients=6, seed=3, image_size=64)


@pytest.fixture
def phantom_copy(phantom_kaggle_3m, tmp_path) -> Path:
    """A private copy of the small phantom that a test may damage."""
    target = tmp_path / "kaggle_3m"
    shutil.copytree(phantom_kaggle_3m, target)
    return target


@pytest.fixture(scope="session")
def real_sample() -> Path:
    """The real 20-patient LGG sample beside the checkout, or a skip saying why."""
    folder = REAL_SAMPLE / "kaggle_3m"
    if not folder.is_dir():
        pytest.skip(f"real LGG sample not found at {folder} (it lives in ../shared beside a "
                    "checkout of the project; set BRAINLIB_LGG_SAMPLE to use another copy)")
    return folder

"""Shared fixtures: a private cache, small phantom datasets, and the real LGG sample."""
import os
import shutil
import tempfile
from pathlib import Path

import pytest

# Every test session caches into its own folder, never the user's ~/.cache/brainlib, and
# removes it when the session ends (a folder the user named in $BRAINLIB_CACHE is kept).
OWN_CACHE = None
if "BRAINLIB_CACHE" not in os.environ:
    OWN_CACHE = tempfile.mkdtemp(prefix="brainlib-test-cache-")
    os.environ["BRAINLIB_CACHE"] = OWN_CACHE


def pytest_sessionfinish(session, exitstatus):
    if OWN_CACHE is not None:
        shutil.rmtree(OWN_CACHE, ignore_errors=True)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# nbval re-runs the reference notebooks with the renderer they were made with.
os.environ.setdefault("BRAINLIB_PLOTLY_RENDERER", "plotly_mimetype")

REPO_ROOT = Path(__file__).resolve().parents[1]
REAL_SAMPLE = Path(os.environ.get("BRAINLIB_LGG_SAMPLE",
                                  REPO_ROOT.parent / "shared" / "data" / "lgg-sample"))


@pytest.fixture(scope="session")
def phantom_kaggle_3m(tmp_path_factory) -> Path:
    """A small phantom (6 patients, 64x64 slices) in the Kaggle layout; treat as read-only."""
    from brainlib.phantom import write_phantom_dataset

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

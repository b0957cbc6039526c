"""The environment of every test session, loaded as a pytest plugin (pyproject.toml:
`-p tests.regression_setup`), so that it holds for `pytest notebooks/05_evaluation.ipynb`
alone as well as for `make test`."""
import os
import shutil
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# nbval re-runs the reference notebooks with the renderer they were made with.
os.environ.setdefault("BRAINLIB_PLOTLY_RENDERER", "plotly_mimetype")

# Every test session caches into its own folder, never the user's ~/.cache/brainlib, and
# removes it when the session ends (a folder the user named in $BRAINLIB_CACHE is kept).
OWN_CACHE = None
if "BRAINLIB_CACHE" not in os.environ:
    OWN_CACHE = tempfile.mkdtemp(prefix="brainlib-test-cache-")
    os.environ["BRAINLIB_CACHE"] = OWN_CACHE


# The notebooks' regression tests (nbval) run the chapters in a run folder of their own,
# never the user's runs/, and that folder replays the recorded training outputs
# (notebooks/recorded, brainlib.data.recorded): every checked cell then depends only on stored
# inputs and the code, so it is compared exactly, on any machine. Whether training itself
# reproduces here is tests/test_training_travels.py's question.
OWN_RUN_ROOT = None
if "BRAINLIB_RUN_ROOT" not in os.environ:
    from brainlib.data import recorded

    OWN_RUN_ROOT = tempfile.mkdtemp(prefix="brainlib-test-runs-")
    os.environ["BRAINLIB_RUN_ROOT"] = OWN_RUN_ROOT
    recorded.replay_into(Path(OWN_RUN_ROOT) / "default", strict=True)


def pytest_sessionfinish(session, exitstatus):
    for folder in (OWN_CACHE, OWN_RUN_ROOT):
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)

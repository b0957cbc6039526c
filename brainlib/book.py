"""The Jupyter Book's sources laid out from a run: the written chapters and configuration
from the repository, the run's executed notebooks as the chapters."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from .study import REPO_ROOT, notebook_sources

BOOK_FILES = ("_config.yml", "_toc.yml", "book")


def stage_book(run_dir: str | os.PathLike, stage_dir: str | os.PathLike = "_build/src") -> Path:
    """Lay out the book's sources with the run's executed notebooks as its chapters.

    The written chapters and configuration come from the repository; each
    `notebooks/NN_name.ipynb` is the executed copy from `run_dir`, so the book shows the
    latest run and never executes anything itself.
    """
    run_dir, stage = Path(run_dir), Path(stage_dir)
    missing = [s.stem for s in notebook_sources() if not (run_dir / f"{s.stem}.ipynb").exists()]
    if missing:
        raise FileNotFoundError(f"{run_dir} lacks executed notebooks {missing}: run "
                                f"`make study` (or `python -m brainlib study`) first")
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir(parents=True)
    for name in BOOK_FILES:
        source = REPO_ROOT / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, stage / name)
    (stage / "notebooks").mkdir()
    for source in notebook_sources():
        shutil.copy(run_dir / f"{source.stem}.ipynb", stage / "notebooks")
    return stage

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
    write_run_page(run_dir, stage / "book" / "run.md")
    (stage / "notebooks").mkdir()
    for source in notebook_sources():
        shutil.copy(run_dir / f"{source.stem}.ipynb", stage / "notebooks")
    return stage


def write_run_page(run_dir, target) -> Path:
    """`book/run.md`: the run card of the run the book shows, from its `params.json` and
    manifest, with the one sentence the introduction may say about reproducing the paper."""
    import json

    from . import params as schema
    from .runcard import run_card
    from .study import read_manifest

    run_dir = Path(run_dir)
    saved = json.loads((run_dir / "params.json").read_text())
    profile = saved.pop("profile")
    card = run_card(schema.resolve(profile, saved), read_manifest(run_dir))
    Path(target).write_text("# This run\n\nThe chapters that follow are the executed notebooks "
                            "of one study run. What it is, and what it can and cannot test:\n\n"
                            f"{card.intro_claim()}\n\n{card.markdown()}\n")
    return Path(target)

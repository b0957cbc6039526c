"""The Jupyter Book's sources laid out from a run: the written chapters and configuration
from the repository, the run's executed notebooks as the chapters."""
from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

from ..config.params import DISPLAY_NAMES, METRIC_DISPLAY_NAMES, REPO_ROOT, notebook_sources

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
    copy_mathjax(stage / MATHJAX_STATIC / "mathjax")
    (stage / "notebooks").mkdir()
    for source in notebook_sources():
        reader_copy(run_dir / f"{source.stem}.ipynb", stage / "notebooks" / f"{source.stem}.ipynb")
    return stage


TEST_MARKER = "# NBVAL_"
MATHJAX_STATIC = "_mathjax"
"""A static folder of its own (`_config.yml`: html_static_path): Jupyter Book would load
every script of a `_static` folder on every page."""


def copy_mathjax(target) -> Path:
    """MathJax 3 (the `book` extra's `django-static-mathjax` package: MathJax's own files)
    into the book, so equations render with no network (`_config.yml` points Sphinx's
    `mathjax_path` at it). The speech-rule engine, loaded only on request, is left out."""
    try:
        import mathjax
    except ImportError:
        raise ImportError("the book serves MathJax itself: pip install -e '.[book]' "
                          "(package django-static-mathjax)") from None
    source = Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("sre"), dirs_exist_ok=True)
    return Path(target)


def reader_copy(executed, target) -> Path:
    """The executed notebook as a reader should see it: no set-up a reader does not need
    (cells tagged `remove-cell`: the Colab install, the parameters, the TensorFlow import;
    papermill's injected parameters, which the run card shows; the Colab badge, which the
    book's launch button replaces), no stderr (start-up
    notices, progress bars), no test markers, and the repository's absolute path made
    relative."""
    import nbformat

    notebook = nbformat.read(executed, as_version=4)
    cells, figures = [], FigureHTML()
    for cell in notebook.cells:
        tags = cell.metadata.get("tags", [])
        if "remove-cell" in tags or "injected-parameters" in tags:
            continue
        if cell.cell_type == "markdown":  # the book's Colab button is the theme's
            cell.source = re.sub(COLAB_BADGE.pattern + r"\n*", "", cell.source)
        if cell.cell_type == "code":
            cell.source = "\n".join(line for line in cell.source.splitlines()
                                    if not line.lstrip().startswith(TEST_MARKER))
            cell.outputs = [figures.with_html(without_cdn_mathjax(o)) for o in cell.outputs
                            if not (o.get("output_type") == "stream" and o.get("name") == "stderr")]
        cells.append(cell)
    notebook.cells = cells
    Path(target).write_text(relative(nbformat.writes(notebook)))
    return Path(target)


PLOTLY_JSON = "application/vnd.plotly.v1+json"


class FigureHTML:
    """Gives each plotly figure kept only as JSON (the reference notebooks keep no
    plotly.js) the interactive HTML the book shows, plotly.js embedded in the page's first."""

    def __init__(self):
        self.embedded = False

    def with_html(self, output):
        data = output.get("data", {})
        if PLOTLY_JSON in data and "text/html" not in data:
            import plotly.io as pio

            data["text/html"] = pio.to_html(dict(data[PLOTLY_JSON]), full_html=False,
                                            include_plotlyjs=not self.embedded, validate=False,
                                            config={"responsive": True})
            self.embedded = True
        return output


CDN_MATHJAX_TAG = re.compile(r"""<script src=["']https?://[^"']*mathjax[^"']*["']></script>""",
                             re.IGNORECASE)


def without_cdn_mathjax(output):
    """A plotly figure's HTML without the MathJax `<script>` its notebook renderer always
    adds from a CDN (the book serves MathJax itself; figures here use no LaTeX)."""
    html = output.get("data", {}).get("text/html")
    if html is not None:
        text = "".join(html) if isinstance(html, list) else html
        output["data"]["text/html"] = CDN_MATHJAX_TAG.sub("", text)
    return output


def relative(text: str) -> str:
    """`text` with this checkout's absolute path removed (paths read relative to it)."""
    return text.replace(f"{REPO_ROOT}/", "").replace(str(REPO_ROOT), ".")


def build_book(run_dir, build_dir=REPO_ROOT / "_build", quiet: bool = True) -> Path:
    """Stage the run's book and build it with Jupyter Book (warnings are errors); return
    its `index.html`. Quiet: Sphinx's output goes to `<build_dir>/book.log`, shown only when
    the build fails."""
    import subprocess

    build_dir = Path(build_dir)
    stage = stage_book(run_dir, build_dir / "src")
    command = [sys.executable, "-c", "import sys; from jupyter_book.cli.main import main; "
               "sys.exit(main())", "build", str(stage), "--path-output", str(build_dir), "-W",
               "-n", "--keep-going"]
    done = subprocess.run(command, capture_output=quiet, text=True)
    if quiet:
        (build_dir / "book.log").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        tail = (done.stdout + done.stderr)[-3000:] if quiet else ""
        raise RuntimeError(f"the book did not build (jupyter-book exit {done.returncode}; "
                           f"log {build_dir / 'book.log'}):\n{tail}")
    return build_dir / "_build" / "html" / "index.html"


def write_run_page(run_dir, target) -> Path:
    """`book/run.md`: the run card of the run the book shows, from its `params.json` and
    manifest, with the one sentence the introduction may say about reproducing the paper."""
    import json

    from ..config import params as schema
    from ..chapters.runcard import run_card
    from ..training.experiment import read_manifest

    run_dir = Path(run_dir)
    saved = json.loads((run_dir / "params.json").read_text())
    profile = saved.pop("profile")
    card = run_card(schema.resolve(profile, saved), read_manifest(run_dir))
    Path(target).write_text("# This run\n\nThe chapters that follow are the executed notebooks "
                            "of one study run. What it is, and what it can and cannot test:\n\n"
                            f"{card.intro_claim()}\n\n{card.markdown()}\n\n"
                            f"{reproduction_markdown(run_dir, profile)}\n")
    return Path(target)


def reproduction_markdown(run_dir, profile: str) -> str:
    """The run page's "Where these numbers reproduce": the machines that trained the run's
    units (their `machine.json`), what reproduces bit for bit, and the spread across
    machines measured for the default profile (`machine.measured_spread`)."""
    import json
    from collections import Counter

    from ..data import machine

    records = [json.loads(p.read_text()) for p in sorted(Path(run_dir).glob("units/*/*/machine.json"))]
    trained_on = Counter(machine.in_words(r) for r in records)
    spread = machine.measured_spread()
    lines = ["## Where these numbers reproduce", ""]
    if trained_on:
        lines += ["The trained units of this run came from:", ""]
        lines += [f"- {words} ({n} units)" for words, n in trained_on.most_common()]
    else:
        lines += ["No unit of this run records the machine that trained it (units trained "
                  "before brainlib recorded machines)."]
    lines += [
        "", "- **Everything after training** (every statistic, table, figure and the audit) is "
        "a pure function of the units' predictions and the data: the same predictions give "
        "the same numbers on any machine. The notebooks' regression tests check this exactly, "
        "on recorded predictions (`notebooks/recorded`).",
        "- **Training, on the same machine and software** (CPU, oneDNN instruction set, "
        "threads, TensorFlow, Keras and NumPy versions, as listed above): the same seed trains "
        "the same models, bit for bit (`tests/test_training_travels.py` checks it where the "
        "machine matches the recording's).",
        "- **Training, on another CPU**: oneDNN and Eigen choose kernels by instruction set and "
        "cache size, so the same seed trains slightly different models and every number that "
        "depends on them moves. How far, measured on the `default` profile "
        f"({spread['measurement']['what']}):", "",
        "| model | metric | SD over seeds | largest move across instruction sets and machines "
        "| tolerance of the cross-machine test |", "|---|---|---|---|---|"]
    names = {**DISPLAY_NAMES, **METRIC_DISPLAY_NAMES}
    for model, by_metric in spread["measured"].items():
        for metric, values in by_metric.items():
            lines.append(f"| {names.get(model, model)} | {names.get(metric, metric)} | "
                         f"{values['seed_sd']:.3f} | "
                         f"{values['largest_machine_move']:.3f} | "
                         f"±{spread['tolerance'][model][metric]:.3f} |")
    lines += ["", spread["measurement"]["machines"]]
    if profile != "default":
        lines += ["", f"This run's profile is `{profile}`, whose spread was not measured: on "
                  "another machine expect its trained models' numbers to move as a reseed moves "
                  "them (chapter 6 shows seed repeats where the run has them)."]
    return "\n".join(lines)


def reference_run(target) -> Path:
    """A run folder made of the reference notebooks (`notebooks/NN_name.ipynb`: the default
    profile's run that nbval checks) and the machines of its recording: the book a clean
    clone builds, and checks, without running the study."""
    import json

    from ..config import params as schema
    from ..data.recorded import RECORDING
    from ..training.experiment import prepare_manifest

    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    params = schema.resolve("default", {"run_dir": str(target)})
    prepare_manifest(params)
    (target / "params.json").write_text(json.dumps(params, indent=2))
    for source in notebook_sources():
        shutil.copy(source.with_suffix(".ipynb"), target / f"{source.stem}.ipynb")
    for record in Path(RECORDING).glob("units/*/*/machine.json"):
        copy = target / record.relative_to(RECORDING)
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(record, copy)
    return target


# ----------------------------------------------------------------- the one repository setting
CONFIG = REPO_ROOT / "_config.yml"
"""The book's configuration; its `repository.url` and `.branch` are the one place that names
the repository. The notebooks' Colab lines are written from it (`write_repository_lines`)."""
GITHUB = "https://github.com/"


def repository(config=CONFIG) -> tuple[str, str]:
    """(`owner/name`, branch) of the book's repository, from `_config.yml`."""
    import yaml  # comes with jupyter-book (the `book` extra)

    settings = (yaml.safe_load(Path(config).read_text()) or {}).get("repository") or {}
    url = str(settings.get("url", "")).rstrip("/").removesuffix(".git")
    name = url.removeprefix(GITHUB)
    if not url.startswith(GITHUB) or name.count("/") != 1 or not all(name.split("/")):
        raise ValueError(f"{config}: repository.url should be https://github.com/OWNER/REPO, "
                         f"found {url!r}")
    return name, str(settings.get("branch", "main"))


def colab_lines(notebook_stem: str, config=CONFIG) -> dict[str, str]:
    """The lines a notebook carries for Colab, from `_config.yml`: its badge (opens this
    notebook of the repository in Colab) and the package its set-up cell installs there."""
    name, branch = repository(config)
    return {
        "badge": f'<a href="https://colab.research.google.com/github/{name}/blob/{branch}/'
                 f'notebooks/{notebook_stem}.ipynb" target="_blank"><img src="https://colab.'
                 'research.google.com/assets/colab-badge.svg" alt="Open In Colab"/></a>',
        "install": f"git+{GITHUB}{name}@{branch}"}


COLAB_BADGE = re.compile(r'<a href="https://colab\.research\.google\.com/github/[^"]*"'
                         r'[^>]*><img [^>]*colab-badge[^>]*/></a>')
COLAB_INSTALL = re.compile(r"git\+https://github\.com/[\w.-]+/[\w.-]+@[\w./-]+?(?=\\?[\"'])")


def write_repository_lines(config=CONFIG, sources=None) -> list[Path]:
    """Rewrite each notebook pair's Colab badge and install line from `_config.yml`
    (`python -m brainlib repository`, after pointing `repository.url` at a fork); return
    the files changed."""
    changed = []
    for source in sources or notebook_sources():
        lines = colab_lines(source.stem, config)
        for path in (source, source.with_suffix(".ipynb")):
            if not path.exists():
                continue
            text = path.read_text()
            badge = lines["badge"].replace('"', '\\"') if path.suffix == ".ipynb" else lines["badge"]
            new = COLAB_BADGE.sub(lambda _: badge, text) if path.suffix == ".py" else \
                re.sub(COLAB_BADGE.pattern.replace('"', r'\\"'), lambda _: badge, text)
            new = COLAB_INSTALL.sub(lambda _: lines["install"], new)
            if new != text:
                path.write_text(new)
                changed.append(path)
    return changed

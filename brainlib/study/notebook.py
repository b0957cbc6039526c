"""What every chapter does first and last: its parameters from the schema, display
settings, values pasted into the prose, and the reference executions nbval checks."""
from __future__ import annotations

import contextlib
import os
import re
import sys
from pathlib import Path

import pandas as pd

from ..config import params as schema
from ..config.params import notebook_sources

PLOTLY_RENDERER_ENV_VAR = "BRAINLIB_PLOTLY_RENDERER"
# The reference notebooks (committed, checked by nbval) keep figures as JSON only.
REFERENCE_RENDERER = "plotly_mimetype"


def start(namespace: dict) -> schema.Params:
    """A chapter's first call: its parameters (`params.notebook_parameters`: the
    parameters cell, anything papermill injected, checked against the schema) and the
    display settings."""
    params = schema.notebook_parameters(namespace)
    notebook_setup()
    return params


def open_run(namespace: dict) -> tuple[schema.Params, pd.DataFrame, str]:
    """`start`, then the run's manifest (scanned and split, see `study.prepare_manifest`)
    and its dataset label, PHANTOM or REAL, printed with the profile, patients, slices,
    folds and protocol. A run with an `auto` precision times its bfloat16 probe here, in its
    first chapter, so every run card shows what `auto` chose."""
    from ..training.experiment import precision_probe, prepare_manifest

    params = start(namespace)
    manifest = prepare_manifest(params)
    if "auto" in (params.base_precision, params.unet_precision):
        precision_probe(params.run_dir)  # decided once, shown on every card from here on
    dataset = manifest["dataset"].iloc[0].upper()
    show_run_card(params, manifest)
    if params.is_holdout:
        tested = manifest.loc[manifest["source"] == "test", "patient_id"].nunique()
        split = (f"trained on {manifest['patient_id'].nunique() - tested}, tested once on "
                 f"{tested}")
    else:
        split = f"{params.n_folds} patient folds"
    print(f"dataset: {dataset}; {manifest['patient_id'].nunique()} patients, {len(manifest)} "
          f"slices; {split}; profile {params.profile}, protocol {params.protocol}")
    return params, manifest, dataset


def show_run_card(params: schema.Params, manifest: pd.DataFrame) -> None:
    """Display the run card (`runcard.run_card`): what this run is and what it can test."""
    from IPython.display import Markdown, display

    from ..data.machine import machine_record
    from ..chapters.runcard import run_card

    display(Markdown(run_card(params, manifest, machine_record()).markdown()))


def notebook_setup() -> None:
    """Notebook display settings: plotly figures embed their JavaScript (interactive in the
    HTML book and offline, no CDN), tables show a sensible number of rows and digits.
    `$BRAINLIB_PLOTLY_RENDERER` overrides the renderer (the reference notebooks keep only
    the figures' JSON, so the repository does not carry plotly.js once per notebook)."""
    import plotly.io as pio

    in_colab = "google.colab" in sys.modules
    pio.renderers.default = os.environ.get(PLOTLY_RENDERER_ENV_VAR) or (
        "colab" if in_colab else "plotly_mimetype+notebook")
    pd.set_option("display.max_rows", 40)
    pd.set_option("display.precision", 4)
    with contextlib.suppress(ImportError, AttributeError):  # outside IPython: plain pandas
        from IPython import get_ipython

        get_ipython().display_formatter.formatters["text/html"].for_type(pd.DataFrame,
                                                                          table_html)


NO_NUMBER = "—"
"""What a table cell shows where there is no number (NaN, None, NA), in place of "NaN"."""


def table_html(frame: pd.DataFrame) -> str:
    """A DataFrame as a chapter shows it: pandas' own notebook HTML, with `NO_NUMBER` in
    each cell that holds no number (a metric the paper does not report, a spread over one
    fold); the text form (and so nbval) keeps pandas' NaN. So that a table fits the text
    column, a plain row number (0, 1, 2, ...) is left out and a header breaks after an
    underscore (`p_a_better` over two lines) rather than widening its column."""
    from pandas.io.formats import format as fmt

    # None in an object column prints as "None", not as na_rep: make it NaN first
    frame = frame.apply(lambda column: column.where(column.notna(), float("nan"))
                        if column.dtype == object else column)
    options = pd.get_option
    formatter = fmt.DataFrameFormatter(
        frame, na_rep=NO_NUMBER, float_format=options("display.float_format"),
        index_names=True, header=True, index=not _is_row_number(frame.index),
        bold_rows=True, escape=True,
        max_rows=options("display.max_rows"), min_rows=options("display.min_rows"),
        max_cols=options("display.max_columns"),
        show_dimensions=options("display.show_dimensions"), decimal=".")
    html = fmt.DataFrameRenderer(formatter).to_html(notebook=True)
    return re.sub(r"(<th[^>]*>)([^<]*)(</th>)",
                  lambda m: m[1] + m[2].replace("_", "_<wbr>") + m[3], html)


def _is_row_number(index: pd.Index) -> bool:
    """Whether an index is pandas' row numbers (0, 1, 2, ..., or what is left of them after
    a filter): unnamed, integers, increasing. It tells a reader nothing."""
    return (not isinstance(index, pd.MultiIndex) and index.name is None
            and pd.api.types.is_integer_dtype(index.dtype) and index.is_unique
            and index.is_monotonic_increasing)


def glue_value(name: str, value) -> None:
    """Paste a computed value into the book's prose (myst-nb `glue`), floats cut to 6
    significant digits so no float noise reaches the text. Outside a myst-nb build (e.g.
    on Colab) it does nothing: the cells still show every result."""
    import numpy as np

    try:
        from myst_nb import glue
    except ImportError:
        return
    if isinstance(value, (float, np.floating)):
        value = float(f"{value:.6g}")
    elif isinstance(value, np.integer):
        value = int(value)
    glue(name, value, display=False)


def show_markdown(text: str) -> None:
    """Show prose that only applies to some runs as rendered Markdown (in Jupyter, Colab and
    the book alike), from the cell that knows whether it applies."""
    from IPython.display import Markdown, display

    display(Markdown(text))


def glue_values(values: dict) -> None:
    """``glue_value`` for each name and value of a mapping (e.g. a result's ``values()``)."""
    for name, value in values.items():
        glue_value(name, value)


def execute_reference_notebooks(only: list[str] | None = None, timeout: int = 1800) -> None:
    """Execute each notebook with its own default parameters (the fast ones) and save the
    outputs into its paired `.ipynb`: the reference that nbval checks.

    First the notebooks run in a fresh run folder that replays the recording
    (`recorded.RECORDING`) where it still matches the settings and code and trains the rest
    here; that folder's units become the recording. If anything was trained, the notebooks
    run again, on a strict replay of the new recording: exactly what nbval will do, so the
    references hold no output of training itself (such as TensorFlow's compile notices)."""
    import jupytext

    from ..data import recorded

    with _reference_run_root(strict=False) as run_root:
        executed = _execute_notebooks(only, timeout)
        trained = list((run_root / "default").glob("units/*/*/*.weights.h5"))
        recorded.record_run(run_root / "default", keep_others=bool(only))
        print(f"  recording written: {recorded.RECORDING} "
              f"({len({p.parent for p in trained})} units trained here)", flush=True)
    if trained:
        with _reference_run_root(strict=True):
            print("  executing again on the recording", flush=True)
            executed = _execute_notebooks(only, timeout)
    for source, notebook in executed:
        target = source.with_suffix(".ipynb")
        tmp = target.with_name(f".{target.stem}.tmp.ipynb")
        jupytext.write(notebook, tmp, fmt="ipynb")
        os.replace(tmp, target)


@contextlib.contextmanager
def _reference_run_root(strict: bool):
    """A fresh run root whose default run folder replays the recording (kernels inherit it)."""
    import shutil
    import tempfile

    from ..data import recorded

    run_root = Path(tempfile.mkdtemp(prefix="brainlib-reference-run-"))
    recorded.replay_into(run_root / "default", strict=strict)
    os.environ[schema.RUN_ROOT_ENV_VAR] = str(run_root)
    try:
        yield run_root
    finally:
        del os.environ[schema.RUN_ROOT_ENV_VAR]
        shutil.rmtree(run_root, ignore_errors=True)


def _execute_notebooks(only: list[str] | None, timeout: int) -> list:
    """(source, executed notebook) for each chosen notebook."""
    import jupytext
    import nbclient

    os.environ[PLOTLY_RENDERER_ENV_VAR] = REFERENCE_RENDERER  # inherited by the kernels
    executed = []
    for source in notebook_sources():
        if only and not any(name in source.stem for name in only):
            continue
        print(f"  {source.stem}: executing reference", flush=True)
        notebook = jupytext.read(source)
        nbclient.NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                                record_timing=False,
                                resources={"metadata": {"path": str(source.parent)}}).execute()
        executed.append((source, notebook))
    return executed

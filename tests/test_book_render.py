"""The book as its reader sees it: the reader's check (`tests/bookcheck.py`) passes on the
book of the reference notebooks, and finds each kind of problem it looks for.

The browser tests skip without a Chromium on PATH (`apt-get install chromium`); the book
they read is built here from the reference notebooks (`book.reference_run`), so a clean
clone checks it without running the study. The DOM helpers are tested with no browser.
"""
import re
from pathlib import Path

import pytest

import bookcheck

CODE_LINE_LIMIT = 77
"""Characters a code line of a chapter may have: the built book's code box is 684 px wide
at the reader's check's 1280 px window, and a line of 78 characters (8.4 px each and the
box's padding) already overflows it (measured by `bookcheck.read_pages`)."""

# plotly.js is embedded in every chapter, so its source mentions these class names even
# when it never ran: a static page must not count as rendered.
STATIC_PAGE = """<html><body>
<a href="https://colab.research.google.com/github/o/r/blob/main/notebooks/02_data.ipynb">
  <img alt="Open In Colab"></a>
<div id="f1" class="plotly-graph-div" style="height:100%"></div>
<script>/* plotly.js */ var c = "main-svg js-plotly-plot plot-container";</script>
</body></html>"""
RENDERED_PAGE = """<html><body>
<a href="https://colab.research.google.com/github/o/r/blob/dev/book/notebooks/02_data.ipynb"
   class="btn btn-sm dropdown-item" data-bs-toggle="tooltip"
   data-bs-original-title="Launch on Colab"></a>
<div id="f1" class="plotly-graph-div js-plotly-plot"><div class="plot-container plotly">
  <svg class="main-svg"></svg><svg class="main-svg"></svg></div></div>
</body></html>"""


def test_plotly_rendered_needs_plotlyjs_to_have_drawn():
    assert not bookcheck.plotly_rendered(STATIC_PAGE)
    assert bookcheck.plotly_rendered(RENDERED_PAGE)
    assert not bookcheck.plotly_rendered("<html><body><p>no figures</p></body></html>")
    figures = bookcheck.plotly_figures(RENDERED_PAGE)
    assert (figures.figures, figures.drawn, figures.main_svgs) == (1, 1, 2)


def test_colab_link_is_the_launch_button_not_the_badge():
    assert bookcheck.colab_link(STATIC_PAGE) is None
    assert bookcheck.colab_link(RENDERED_PAGE) == (
        "https://colab.research.google.com/github/o/r/blob/dev/book/notebooks/02_data.ipynb")
    before_scripts = RENDERED_PAGE.replace("data-bs-original-title=", "title=")
    assert bookcheck.colab_link(before_scripts) == bookcheck.colab_link(RENDERED_PAGE)


def test_expected_colab_link_follows_config(tmp_path):
    config = tmp_path / "_config.yml"
    config.write_text("repository:\n  url: https://github.com/o/r/\n  branch: dev\n"
                      "  path_to_book: book\nlaunch_buttons:\n"
                      "  colab_url: https://colab.research.google.com\n")
    assert bookcheck.expected_colab_link("notebooks/02_data", config) == bookcheck.colab_link(
        RENDERED_PAGE)
    config.write_text("repository:\n  url: https://github.com/o/r\nlaunch_buttons: {}\n")
    with pytest.raises(ValueError, match="colab_url"):
        bookcheck.expected_colab_link("notebooks/02_data", config)


def test_project_config_has_colab_buttons():
    link = bookcheck.expected_colab_link("notebooks/02_data")
    assert link.startswith("https://colab.research.google.com/github/")
    assert link.endswith("/notebooks/02_data.ipynb")


def needs_chromium():
    if bookcheck.find_chromium() is None:
        pytest.skip("no Chromium on PATH (tried " + ", ".join(bookcheck.CHROMIUM_NAMES)
                    + "; apt-get install chromium, or set BRAINLIB_CHROMIUM)")


@pytest.fixture(scope="module")
def reference_book(tmp_path_factory) -> Path:
    """The book of the reference notebooks, built as `make book` builds a run's."""
    needs_chromium()
    pytest.importorskip("jupyter_book")
    from brainlib.study import book

    root = tmp_path_factory.mktemp("reference-book")
    run_dir = book.reference_run(root / "run")
    return book.build_book(run_dir, root / "build").parent


@pytest.fixture(scope="module")
def reader_check(reference_book, tmp_path_factory):
    return bookcheck.check_book(reference_book,
                                screenshot_dir=tmp_path_factory.mktemp("screenshots"))


@pytest.mark.slow
def test_the_reference_book_passes_the_readers_check(reader_check):
    assert reader_check.ok, reader_check.summary()


@pytest.mark.slow
def test_the_readers_check_reads_every_chapter_and_screenshots_it(reader_check):
    from brainlib.study import notebook_sources

    read = {reading.page: reading for reading in reader_check.readings}
    for source in notebook_sources():
        reading = read[f"notebooks/{source.stem}.html"]
        assert reading.screenshots and all(png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
                                           for png in reading.screenshots)
    assert read["notebooks/02_data.html"].figures.all_drawn
    assert read["notebooks/01_equations.html"].equations.all_typeset
    assert {"book/run.html", "book/intro.html"} <= set(read)


@pytest.mark.slow
def test_the_run_card_is_a_table_on_every_page_that_shows_it(reference_book):
    from brainlib.study import notebook_sources

    shown = [s.stem for s in notebook_sources() if "open_run(globals())" in s.read_text()]
    assert len(shown) >= 6
    for stem in shown + ["../book/run"]:
        html = (reference_book / "notebooks" / f"{stem}.html").resolve().read_text()
        card = html[html.index("Run card"):]
        table = re.search(r"<table.*?</table>", card, re.S)
        assert table and re.search(r"<td[^>]*>(<p>)?profile(</p>)?</td>", table.group(0)), stem


def test_the_readers_check_finds_each_problem(tmp_path):
    needs_chromium()
    page = tmp_path / "notebooks" / "bad.html"
    page.parent.mkdir()
    page.write_text(
        "<html><body style='width: 600px'><p>| setting | value | |---|---| | profile | x |</p>"
        "<table><tr><td>NaN</td><td>None</td><td>0.5</td></tr></table>"
        "<div style='overflow-x: auto'><table><tr>" + "<td>a_long_column_name</td>" * 40
        + "</tr></table></div>"
        "<div class='highlight'><pre>" + "x = 1  # " + "long " * 60 + "</pre></div>"
        "<div class='cell_output'><pre style='white-space: pre-wrap'>" + "wraps " * 80
        + "</pre></div><div class='plotly-graph-div'></div>"
        "<span class='math notranslate'>\\(x^2\\)</span></body></html>")
    [reading] = bookcheck.read_pages(tmp_path, ["notebooks/bad.html"], screenshot_dir=tmp_path,
                                      ready_timeout_s=2)
    problems = "\n".join(reading.problems())
    assert "a Markdown table shown as text: '| setting" in problems
    assert "2 table cells read 'NaN' (1), 'None' (1)" in problems
    assert "a code line wider than its box" in problems and "an output line" not in problems
    assert "a table wider than the text" in problems and "'a_long_column_name a_long" in problems
    assert "0/1 plotly figures drawn" in problems
    assert "0/1 equations typeset" in problems
    assert all(line.startswith("notebooks/bad.html: ") for line in reading.problems())
    assert reading.screenshots == [tmp_path / "bad.png", tmp_path / "bad-figure.png",
                                   tmp_path / "bad-end.png"]


def test_table_cells_and_text_tables_are_read_from_the_dom():
    dom = ("<p>| a | b |</p><p>a | b</p><table><tr><th>x</th><td> NaN </td>"
           "<td><p>None</p></td><td>—</td><td>nan%</td></tr></table>")
    scan = bookcheck._scan(dom)
    assert scan.text_tables == ["| a | b |"]
    assert scan.empty_cells == ["NaN", "None"]


@pytest.mark.parametrize("source", __import__("brainlib.study").study.notebook_sources(),
                         ids=lambda p: p.stem)
def test_chapters_open_with_prose_and_hide_their_set_up(source, tmp_path):
    """What the book shows of a chapter: its title and prose first, then the first call
    that matters; the TensorFlow import and the parameters are hidden (nbval still runs
    them), the set-up cell is folded, and no code line is wider than the book's box."""
    import jupytext
    import nbformat

    from brainlib.study import book

    notebook = jupytext.read(source)
    nbformat.write(notebook, tmp_path / "executed.ipynb")
    shown = nbformat.read(book.reader_copy(tmp_path / "executed.ipynb", tmp_path / "r.ipynb"), 4)
    assert shown.cells[0].cell_type == "markdown" and shown.cells[0].source.startswith("# ")
    assert "colab-badge" not in shown.cells[0].source  # the book has its own Colab button
    code = [c for c in shown.cells if c.cell_type == "code"]
    assert "hide-input" in code[0].metadata.get("tags", []), "the set-up cell is folded"
    for cell in code:
        assert "import tensorflow" not in cell.source and "noqa" not in cell.source
        assert "parameters" not in cell.metadata.get("tags", [])
        wide = [line for line in cell.source.splitlines() if len(line) > CODE_LINE_LIMIT]
        assert not wide, f"{source.name}: code lines wider than the book's box: {wide}"
    for cell in notebook.cells:  # still in the notebook, so Colab and nbval run it
        if "import tensorflow" in cell.source:
            assert "remove-cell" in cell.metadata.get("tags", [])


def test_the_written_chapters_code_fits_the_books_box():
    for page in sorted((bookcheck.REPO_ROOT / "book").glob("*.md")):
        blocks = re.findall(r"^```(?!\{)[^\n]*\n(.*?)^```", page.read_text(), re.M | re.S)
        wide = [line for block in blocks for line in block.splitlines()
                if len(line) > CODE_LINE_LIMIT]
        assert not wide, f"{page.name}: code lines wider than the book's box: {wide}"


def test_the_introduction_counts_what_it_lists():
    text = (bookcheck.REPO_ROOT / "book" / "intro.md").read_text()
    words = {"two": 2, "three": 3, "four": 4, "five": 5}
    said = re.search(r"This book does (\w+) things\.\n\n((?:\d+\. .*\n(?:   .*\n)*)+)", text)
    assert said, "intro.md: the sentence that counts what the book does is gone"
    assert words[said.group(1)] == len(re.findall(r"^\d+\. ", said.group(2), re.M))


# ---------------------------------------------------------------------------- what a reader sees

def test_the_reader_copy_drops_noise_markers_paths_and_cdn_mathjax(tmp_path):
    import nbformat

    from brainlib.study import book

    root = str(bookcheck.REPO_ROOT)
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_markdown_cell('# Title\n\n<a href="https://colab.research.google.com/'
                                      'github/o/r/blob/main/notebooks/x.ipynb" target="_blank">'
                                      '<img src="https://colab.research.google.com/assets/'
                                      'colab-badge.svg" alt="Open In Colab"/></a>\n\nProse.'),
        nbformat.v4.new_code_cell('profile = "auto"\noverrides = {}',
                                  metadata={"tags": ["parameters", "remove-cell"]}),
        nbformat.v4.new_code_cell(f'# Parameters\nprofile = "sample"\noverrides = '
                                  f'{{"run_dir": "{root}/runs/sample"}}',
                                  metadata={"tags": ["injected-parameters"]}),
        nbformat.v4.new_code_cell("# NBVAL_CHECK_OUTPUT\nprint(1)", outputs=[
            nbformat.v4.new_output("stream", name="stderr",
                                   text="I0000 oneDNN custom operations are on\n"),
            nbformat.v4.new_output("stream", name="stdout", text=f"saved {root}/runs/x.csv\n"),
            nbformat.v4.new_output("display_data", data={"text/html": (
                '<div><script src="https://cdnjs.cloudflare.com/ajax/libs/mathjax/3.2.2/es5/'
                'tex-svg.min.js"></script><script>Plotly.newPlot()</script></div>')})]),
    ]
    source = tmp_path / "run.ipynb"
    nbformat.write(notebook, source)
    text = book.reader_copy(source, tmp_path / "reader.ipynb").read_text()
    copy = nbformat.reads(text, as_version=4)
    assert len(copy.cells) == 2  # the parameters and the injected cell are gone
    assert copy.cells[0].source == "# Title\n\nProse."  # the theme's Colab button replaces it
    assert copy.cells[1].source == "print(1)"
    assert [o.output_type for o in copy.cells[1].outputs] == ["stream", "display_data"]
    assert root not in text and "oneDNN" not in text and "NBVAL" not in text
    assert "cdnjs" not in text and "Plotly.newPlot()" in text


def test_page_problems_names_every_refused_string(tmp_path):
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "bad.html").write_text(
        f"<p>oneDNN custom operations</p><p># NBVAL_CHECK_OUTPUT</p><p>{bookcheck.REPO_ROOT}/x"
        '</p><script src="https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js">')
    (tmp_path / "notebooks" / "good.html").write_text(
        '<script src="../_static/mathjax/tex-mml-chtml.js"></script><p>$x$</p>')
    problems = bookcheck.page_problems(tmp_path)
    assert len(problems) == 4 and all(p.startswith("notebooks/bad.html: ") for p in problems)
    assert any("MathJax from a CDN" in p for p in problems)


def test_the_book_serves_mathjax_itself(tmp_path):
    from brainlib.study import book

    target = book.copy_mathjax(tmp_path / "mathjax")
    assert (target / "tex-mml-chtml.js").is_file()
    assert (target / "output" / "chtml" / "fonts" / "woff-v2").is_dir()
    config = (bookcheck.REPO_ROOT / "_config.yml").read_text()
    assert 'mathjax_path: "mathjax/tex-mml-chtml.js"' in config
    assert f'html_static_path: ["{book.MATHJAX_STATIC}", "book/static"]' in config


def test_a_chapters_table_fits_the_text():
    """What a chapter's DataFrame shows in the book: no row numbers, headers that break
    after an underscore, "—" where there is no number; the text form keeps pandas' own."""
    import pandas as pd

    from brainlib.study import notebook
    from brainlib.chapters import report

    frame = pd.DataFrame({"p_a_better": [0.9, float("nan")], "model": ["a", None]})
    html = notebook.table_html(frame)
    assert "<th>p_<wbr>a_<wbr>better</th>" in html and "—" in html
    assert "<th>0</th>" not in html and "<th>1</th>" not in html
    filtered = notebook.table_html(frame.iloc[[1]])  # what is left of row numbers
    assert "<th>1</th>" not in filtered
    named = notebook.table_html(frame.rename_axis("fold"))  # a named index is data
    assert "<th>0</th>" in named
    joined = report.joined_intervals(
        pd.DataFrame({"m": ["a", "b"], "low": [0.1, float("nan")], "high": [0.3, 0.4],
                      "n": [1, 2]}), {"95%": ("low", "high")}, digits=2)
    assert list(joined.columns) == ["m", "95%", "n"]
    assert joined["95%"].tolist() == ["[0.10, 0.30]", "—"]

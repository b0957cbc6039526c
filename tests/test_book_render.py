"""The built book renders offline in headless Chromium, and its Colab buttons point at the notebooks.

The browser test never builds the book nor installs a browser: it skips unless `make book`
has run and a Chromium is on PATH (`apt-get install chromium`). The DOM helpers are tested
on small pages with no browser.
"""
import shutil
from pathlib import Path

import pytest

from brainlib import bookcheck

HTML_DIR = bookcheck.DEFAULT_HTML_DIR
CHAPTER = "notebooks/02_data.html"
SCREENSHOT = bookcheck.REPO_ROOT / "_build" / "screenshots" / "02_data.png"

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


@pytest.fixture(scope="module")
def built_chapter() -> Path:
    if bookcheck.find_chromium() is None:
        pytest.skip("no Chromium on PATH (tried " + ", ".join(bookcheck.CHROMIUM_NAMES)
                    + "; apt-get install chromium, or set BRAINLIB_CHROMIUM)")
    if not HTML_DIR.is_dir():
        pytest.skip(f"the book is not built ({HTML_DIR} missing): run `make study` and "
                    "`make book` first")
    page = HTML_DIR / CHAPTER
    if not page.is_file():
        pytest.skip(f"the built book has no {CHAPTER}: rebuild it with `make book`")
    return page


@pytest.fixture(scope="module")
def rendered_dom(built_chapter) -> str:
    return bookcheck.render_dom(built_chapter)


@pytest.mark.slow
def test_plotly_figures_render_offline(rendered_dom, built_chapter):
    figures = bookcheck.plotly_figures(rendered_dom)
    assert figures.figures > 0, f"{built_chapter} has no plotly figure"
    assert bookcheck.plotly_rendered(rendered_dom), (
        f"{figures} in {built_chapter} with the network disabled")


@pytest.mark.slow
def test_colab_button_points_at_paired_notebook(rendered_dom, built_chapter):
    assert bookcheck.colab_link(rendered_dom) == bookcheck.expected_colab_link("notebooks/02_data"), (
        f"Colab launch button of {built_chapter}")


@pytest.mark.slow
def test_screenshot(built_chapter):
    png = bookcheck.screenshot(built_chapter, SCREENSHOT)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from PIL import Image

    with Image.open(png) as image:
        assert image.size == bookcheck.WINDOW_SIZE
        # A blank page is one colour; a rendered chapter has text, code and figures.
        assert len(image.convert("RGB").getcolors(maxcolors=1 << 16) or range(1 << 16)) > 100


@pytest.mark.slow
def test_equations_render_offline(built_chapter):
    page = HTML_DIR / bookcheck.DEFAULT_MATH_CHAPTER
    found = bookcheck.equations(bookcheck.render_dom(page))
    assert found.all_typeset, f"{found} in {page} with the network disabled"


def test_equations_counts_math_typeset_and_tex_errors():
    raw = '<p><span class="math notranslate nohighlight">\\(x\\)</span></p>'
    assert bookcheck.equations(raw) == bookcheck.Equations(1, 0, 0)
    assert not bookcheck.equations(raw).all_typeset  # raw TeX: MathJax never ran
    typeset = ('<span class="math notranslate nohighlight"><mjx-container class="MathJax">'
               '</mjx-container></span><div class="math notranslate nohighlight">'
               '<mjx-container><mjx-merror></mjx-merror></mjx-container></div>')
    found = bookcheck.equations(typeset + "<style>mjx-merror { color: red }</style>")
    assert found == bookcheck.Equations(2, 2, 1) and not found.all_typeset
    assert bookcheck.equations(typeset.replace("<mjx-merror></mjx-merror>", "")).all_typeset


@pytest.mark.slow
def test_a_page_built_with_the_project_config_typesets_equations_offline(tmp_path):
    """Builds one chapter (the reference 01_equations notebook) with the project's
    `_config.yml` and the book's own MathJax, then opens it with the network refused: the
    offline-math setup is tested even where no study has built the whole book."""
    if bookcheck.find_chromium() is None:
        pytest.skip("no Chromium on PATH (apt-get install chromium, or set BRAINLIB_CHROMIUM)")
    pytest.importorskip("jupyter_book")
    import subprocess
    import sys

    from brainlib import book

    stage = tmp_path / "src"
    shutil.copytree(bookcheck.REPO_ROOT / "book", stage / "book")
    shutil.copy(bookcheck.REPO_ROOT / "_config.yml", stage / "_config.yml")
    (stage / "_toc.yml").write_text("format: jb-book\nroot: notebooks/01_equations\n")
    book.copy_mathjax(stage / book.MATHJAX_STATIC / "mathjax")
    (stage / "notebooks").mkdir()
    book.reader_copy(bookcheck.REPO_ROOT / "notebooks" / "01_equations.ipynb",
                     stage / "notebooks" / "01_equations.ipynb")
    done = subprocess.run([sys.executable, "-c", "import sys; from jupyter_book.cli.main "
                           "import main; sys.exit(main())", "build", str(stage),
                           "--path-output", str(tmp_path), "-W", "-n", "--keep-going"],
                          capture_output=True, text=True)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    html_dir = tmp_path / "_build" / "html"
    page = html_dir / "notebooks" / "01_equations.html"
    assert bookcheck.page_problems(html_dir) == []
    found = bookcheck.equations(bookcheck.render_dom(page))
    assert found.equations >= 20 and found.all_typeset, f"{found} in {page}, network disabled"
    png = bookcheck.screenshot(page, tmp_path / "01_equations.png", scroll_to="equation")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------------------- what a reader sees

def test_the_reader_copy_drops_noise_markers_paths_and_cdn_mathjax(tmp_path):
    import nbformat

    from brainlib import book

    root = str(bookcheck.REPO_ROOT)
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell('profile = "auto"\noverrides = {}',
                                  metadata={"tags": ["parameters"]}),
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
    assert len(copy.cells) == 2  # the injected cell is gone ...
    assert copy.cells[0].source == ('# Parameters of this run\nprofile = "sample"\n'
                                    'overrides = {"run_dir": "runs/sample"}')  # ... shown once
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
    from brainlib import book

    target = book.copy_mathjax(tmp_path / "mathjax")
    assert (target / "tex-mml-chtml.js").is_file()
    assert (target / "output" / "chtml" / "fonts" / "woff-v2").is_dir()
    config = (bookcheck.REPO_ROOT / "_config.yml").read_text()
    assert 'mathjax_path: "mathjax/tex-mml-chtml.js"' in config
    assert f'html_static_path: ["{book.MATHJAX_STATIC}"]' in config

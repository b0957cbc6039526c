"""The reader's check of the built book, in headless Chromium with the network refused.

`python tests/bookcheck.py [HTML_DIR]` (`make book-check`; a development tool, kept out of
the installed package) opens every page of the built book (default `_build/_build/html`)
as a reader would and fails, naming the page and the
element, where a page shows a Markdown table as text, a table cell reading NaN or None, a
code or output line wider than its box, a plotly figure plotly.js did not draw, an
equation MathJax did not typeset (nothing may come from a CDN), a TensorFlow notice, a
test marker or the building machine's path, or a Colab button that does not match
`_config.yml`. Each chapter is screenshot into `_build/screenshots/`.
"""
from __future__ import annotations

import argparse
import base64
import fcntl
import json
import os
import re
import select
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_HTML_DIR = REPO_ROOT / "_build" / "_build" / "html"
DEFAULT_SCREENSHOTS = REPO_ROOT / "_build" / "screenshots"

# A quiet, throw-away browser (see FIELD-NOTES, "The book"); each run gets a fresh
# --user-data-dir on top of these.
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars",
    # Every host name fails to resolve: a figure that renders cannot have needed a CDN.
    "--host-resolver-rules=MAP * ~NOTFOUND",
]
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
WINDOW_SIZE = (1280, 2000)


def find_chromium() -> str | None:
    """Path of a Chromium/Chrome binary ($BRAINLIB_CHROMIUM first, then PATH), or None."""
    explicit = os.environ.get("BRAINLIB_CHROMIUM")
    if explicit:
        return shutil.which(explicit)
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def _chromium() -> str:
    binary = find_chromium()
    if binary is None:
        raise FileNotFoundError(f"no Chromium found on PATH (tried {', '.join(CHROMIUM_NAMES)}; "
                                "or set BRAINLIB_CHROMIUM); on Debian: apt-get install chromium")
    return binary


def _page_url(html_path: str | os.PathLike) -> str:
    path = Path(html_path).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"no page at {path}: build the book first (make book)")
    return path.as_uri()


NOT_A_NUMBER = ("NaN", "nan", "None", "<NA>", "NaT")
"""What a table cell must not read: a reader needs a dash or a word where there is no number."""


class _DomScan(HTMLParser):
    """Collects plotly figure divs, plotly's runtime SVGs and launch links from a DOM dump.

    A parser, not a text search: plotly.js is embedded in the page, so its source (and
    the strings "main-svg", "js-plotly-plot" in it) is there whether or not it ran.
    """

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.figures = 0            # <div class="plotly-graph-div"> written by the notebook
        self.drawn_figures = 0      # ... that plotly.js took over (adds "js-plotly-plot")
        self.main_svgs = 0          # <svg class="main-svg"> that plotly.js drew
        self.links: list[dict[str, str]] = []
        self.equations = 0          # <span|div class="math"> written by Sphinx/MyST
        self.typeset = 0            # <mjx-container> that MathJax put in their place
        self.math_errors = 0        # <mjx-merror>: TeX that MathJax could not parse
        self.text_tables: list[str] = []   # <p> starting with "|": a Markdown table as text
        self.empty_cells: list[str] = []   # table cells reading NaN, None ...: no number
        self._open: list[tuple[str, list[str]]] = []  # <p>, <td>, <th> being read

    def handle_starttag(self, tag, attrs):
        attributes = {name: value or "" for name, value in attrs}
        classes = attributes.get("class", "").split()
        if tag in ("span", "div") and "math" in classes:
            self.equations += 1
        elif tag == "mjx-container":
            self.typeset += 1
        elif tag == "mjx-merror":
            self.math_errors += 1
        elif tag == "div" and "plotly-graph-div" in classes:
            self.figures += 1
            self.drawn_figures += "js-plotly-plot" in classes
        elif tag == "svg" and "main-svg" in classes:
            self.main_svgs += 1
        elif tag == "a" and "href" in attributes:
            self.links.append(attributes)
        if tag in ("p", "td", "th"):
            self._open.append((tag, []))

    def handle_data(self, data):
        for _, chunks in self._open:
            chunks.append(data)

    def handle_endtag(self, tag):
        if tag not in ("p", "td", "th"):
            return
        for index in range(len(self._open) - 1, -1, -1):
            if self._open[index][0] == tag:
                _, chunks = self._open.pop(index)
                text = " ".join("".join(chunks).split())
                if tag == "p" and text.startswith("|"):
                    self.text_tables.append(text[:100])
                elif tag != "p" and text in NOT_A_NUMBER:
                    self.empty_cells.append(text)
                break


def _scan(dom: str) -> _DomScan:
    scan = _DomScan()
    scan.feed(dom)
    scan.close()
    return scan


@dataclass
class PlotlyFigures:
    """How many plotly figures a page holds and how many plotly.js drew."""
    figures: int
    drawn: int
    main_svgs: int

    @property
    def all_drawn(self) -> bool:
        return self.figures > 0 and self.drawn == self.figures and self.main_svgs > 0

    def __str__(self) -> str:
        return f"{self.drawn}/{self.figures} plotly figures drawn ({self.main_svgs} svg layers)"


def plotly_figures(dom: str) -> PlotlyFigures:
    scan = _scan(dom)
    return PlotlyFigures(scan.figures, scan.drawn_figures, scan.main_svgs)


@dataclass
class Equations:
    """How many equations a page holds, how many MathJax typeset, and how many failed."""
    equations: int
    typeset: int
    errors: int

    @property
    def all_typeset(self) -> bool:
        return self.equations > 0 and self.typeset >= self.equations and self.errors == 0

    def __str__(self) -> str:
        return (f"{self.typeset}/{self.equations} equations typeset by MathJax"
                + (f", {self.errors} TeX errors" if self.errors else ""))


def equations(dom: str) -> Equations:
    """The page's equations (Sphinx's `math` elements) and what MathJax made of them.

    MathJax keeps each `math` element and puts an `mjx-container` inside it; without
    MathJax (no network and a CDN script) the elements stay and show raw TeX.
    """
    scan = _scan(dom)
    return Equations(scan.equations, scan.typeset, scan.math_errors)


def plotly_rendered(dom: str) -> bool:
    """True when the page has plotly figures and plotly.js drew every one of them."""
    return plotly_figures(dom).all_drawn


def colab_link(dom: str) -> str | None:
    """The href of the page's Colab launch button (sphinx-book-theme's "Launch on Colab").

    Not the notebook's own "Open in Colab" badge, which the notebook writes itself. The
    theme puts the label in `title`; its Bootstrap tooltips move it to
    `data-bs-original-title` once the page's scripts ran.
    """
    return _colab_href(_scan(dom).links)


def _colab_href(links: list[dict[str, str]]) -> str | None:
    for link in links:
        label = link.get("title") or link.get("data-bs-original-title") or ""
        if label.strip() == "Launch on Colab":
            return link["href"]
    return None


def expected_colab_link(page: str, config_path: str | os.PathLike = REPO_ROOT / "_config.yml") -> str:
    """The Colab URL a page should launch, from `_config.yml` (repository url/branch, colab_url).

    `page` is the chapter's path in the book without suffix, e.g. "notebooks/02_data".
    """
    import yaml  # comes with jupyter-book (the `book` extra)

    from brainlib.study.book import repository

    name, branch = repository(config_path)
    config = yaml.safe_load(Path(config_path).read_text())
    colab = str((config.get("launch_buttons") or {}).get("colab_url", "")).rstrip("/")
    if not colab:
        raise ValueError(f"{config_path}: launch_buttons.colab_url is not set, so the book has "
                         "no Colab buttons")
    book_dir = str((config.get("repository") or {}).get("path_to_book", "") or "").strip("/")
    path = f"{book_dir}/{page}.ipynb" if book_dir else f"{page}.ipynb"
    return f"{colab}/github/{name}/blob/{branch}/{path}"


class _DevTools:
    """Minimal Chrome DevTools Protocol client over --remote-debugging-pipe (fds 3 and 4)."""

    def __init__(self, args: list[str], timeout_s: float):
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()

        def child_fds():
            # Chromium reads commands on fd 3 and writes replies on fd 4. Move both ends
            # out of the way first so that dup2 cannot clobber one with the other.
            command_fd = fcntl.fcntl(to_chrome_r, fcntl.F_DUPFD, 10)
            reply_fd = fcntl.fcntl(from_chrome_w, fcntl.F_DUPFD, 10)
            os.dup2(command_fd, 3)  # dup2 leaves 3 and 4 inheritable: they survive exec
            os.dup2(reply_fd, 4)

        # Chromium's stderr is chatty (D-Bus errors in containers): a file, not a pipe
        # that could fill up and stall it.
        self._stderr = tempfile.TemporaryFile()
        self.process = subprocess.Popen(args, close_fds=False, preexec_fn=child_fds,
                                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=self._stderr)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self.deadline = time.monotonic() + timeout_s
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict] = []

    def _read_message(self) -> dict:
        while b"\0" not in self._buffer:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0 or not select.select([self._from_chrome], [], [], remaining)[0]:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self._from_chrome, 1 << 20)
            if not chunk:
                self._stderr.seek(0)
                raise RuntimeError("Chromium closed the DevTools pipe: "
                                   + self._stderr.read().decode(errors="replace")[-2000:])
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def send(self, method: str, session: str | None = None, **params) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read_message()
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"DevTools {method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, method: str) -> dict:
        while True:
            for index, event in enumerate(self.events):
                if event.get("method") == method:
                    return self.events.pop(index)
            self.events.append(self._read_message())

    def close(self):
        try:
            self.send("Browser.close")
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._to_chrome)
        os.close(self._from_chrome)
        self._stderr.close()


# Scroll so that the first plotly figure's cell (code and figure) starts below the
# sticky header; a plain --screenshot of the page top shows only prose and tables,
# and Chromium's headless --screenshot ignores URL fragments.
_SCROLL_TO_FIRST_FIGURE = """(() => {
  const figure = document.querySelector('.js-plotly-plot');
  if (!figure) return -1;
  const target = figure.closest('.cell') || figure;
  window.scrollTo(0, target.getBoundingClientRect().top + window.scrollY - 80);
  return document.querySelectorAll('.js-plotly-plot .main-svg').length;
})()"""
# The page's last screen: where each chapter's recap stands.
_SCROLL_TO_END = "window.scrollTo(0, document.body.scrollHeight)"
# Ready once plotly.js took over every figure and MathJax typeset every equation.
_PAGE_READY = """(() => {
  const figures = document.querySelectorAll('div.plotly-graph-div').length;
  const drawn = document.querySelectorAll('div.plotly-graph-div.js-plotly-plot').length;
  const math = document.querySelectorAll('.math').length;
  const typeset = document.querySelectorAll('mjx-container').length;
  return drawn >= figures && typeset >= math;
})()"""
# Every <pre> (code and text output) whose text is wider than its box, so the page cuts it;
# code that wraps, or a box the reader never sees, is fine.
_WIDE_PRE = """JSON.stringify([...document.querySelectorAll('pre')].filter(
  pre => pre.clientWidth > 0 && pre.scrollWidth > pre.clientWidth + 1).map(pre => {
    const lines = pre.textContent.split('\\n');
    const longest = lines.reduce((a, b) => b.length > a.length ? b : a, '');
    return {output: !!pre.closest('.cell_output, .output'), line: longest.trim().slice(0, 90),
            width: pre.scrollWidth, box: pre.clientWidth};
  }))"""

# Every table wider than the text column, so the reader scrolls sideways to see its last
# columns (its box is the scrolling container the theme or pandas puts around it).
_WIDE_TABLE = """JSON.stringify([...document.querySelectorAll('table')].filter(
  table => table.offsetParent !== null).map(table => {
    const column = table.closest('article') || document.body;
    const box = Math.min(column.clientWidth, table.parentElement.clientWidth || column.clientWidth);
    const header = table.rows.length ? [...table.rows[0].cells].map(
      cell => cell.textContent.trim()).join(' ') : '';
    return {header: header.replace(/\\s+/g, ' ').trim().slice(0, 80),
            width: table.scrollWidth, box: box};
  }).filter(wide => wide.width > wide.box + 1))"""


@dataclass
class PageReading:
    """What a reader sees on one page of the built book, and what is wrong with it."""
    page: str
    figures: PlotlyFigures
    equations: Equations
    text_tables: list[str]
    empty_cells: list[str]
    wide_lines: list[dict]
    colab_link: str | None
    wide_tables: list[dict] = field(default_factory=list)
    screenshots: list[Path] = field(default_factory=list)

    def problems(self) -> list[str]:
        found = [f"{self.page}: a Markdown table shown as text: {text!r}"
                 for text in self.text_tables]
        if self.empty_cells:
            counts = {text: self.empty_cells.count(text) for text in dict.fromkeys(self.empty_cells)}
            found.append(f"{self.page}: {len(self.empty_cells)} table cells read "
                         + ", ".join(f"{text!r} ({n})" for text, n in counts.items())
                         + f" where a dash or a word is meant")
        found += [f"{self.page}: {'an output' if wide['output'] else 'a code'} line wider than "
                  f"its box ({wide['width']} px in {wide['box']} px): {wide['line']!r}"
                  for wide in self.wide_lines]
        found += [f"{self.page}: a table wider than the text ({wide['width']} px in "
                  f"{wide['box']} px), the reader scrolls sideways: {wide['header']!r}"
                  for wide in self.wide_tables]
        if self.figures.figures and not self.figures.all_drawn:
            found.append(f"{self.page}: {self.figures}: plotly.js did not draw every figure "
                         "without network access")
        if self.equations.equations and not self.equations.all_typeset:
            found.append(f"{self.page}: {self.equations}: equations show raw TeX without "
                         "network access")
        return found


def book_pages(html_dir: str | os.PathLike) -> list[str]:
    """The book's pages (relative to `html_dir`), Sphinx's own (search, index) left out."""
    html_dir = Path(html_dir)
    skip = {"search.html", "genindex.html", "index.html"}
    return sorted(str(page.relative_to(html_dir).as_posix()) for page in html_dir.rglob("*.html")
                  if not {"_static", "_sources", "_mathjax"} & set(page.parts)
                  and page.name not in skip)


def read_pages(html_dir: str | os.PathLike, pages: list[str] | None = None,
               screenshot_dir: str | os.PathLike | None = DEFAULT_SCREENSHOTS,
               window_size: tuple[int, int] = WINDOW_SIZE, timeout_s: float = 600,
               ready_timeout_s: float = 20) -> list[PageReading]:
    """Open every page in one headless Chromium (network refused), wait for plotly.js and
    MathJax, and read what it shows (`PageReading`). Each chapter (`notebooks/`) is
    screenshot at its top, where it has one at its first figure, and at its end."""
    html_dir = Path(html_dir)
    pages = book_pages(html_dir) if pages is None else pages
    width, height = window_size
    readings = []
    with tempfile.TemporaryDirectory(prefix="brainlib-chromium-") as profile:
        browser = _DevTools([_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                             f"--window-size={width},{height}", "--remote-debugging-pipe",
                             "about:blank"], timeout_s)
        try:
            target = browser.send("Target.createTarget", url="about:blank")["targetId"]
            session = browser.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
            browser.send("Emulation.setDeviceMetricsOverride", session, width=width,
                         height=height, deviceScaleFactor=1, mobile=False)
            browser.send("Page.enable", session)
            evaluate = lambda script: browser.send("Runtime.evaluate", session, expression=script,
                                                   returnByValue=True)["result"].get("value")
            for page in pages:
                browser.send("Page.navigate", session, url=_page_url(html_dir / page))
                browser.wait_event("Page.loadEventFired")
                give_up = time.monotonic() + ready_timeout_s
                while not evaluate(_PAGE_READY) and time.monotonic() < give_up:
                    time.sleep(0.2)
                scan = _scan(evaluate("document.documentElement.outerHTML"))
                reading = PageReading(
                    page, PlotlyFigures(scan.figures, scan.drawn_figures, scan.main_svgs),
                    Equations(scan.equations, scan.typeset, scan.math_errors), scan.text_tables,
                    scan.empty_cells, json.loads(evaluate(_WIDE_PRE)), _colab_href(scan.links),
                    json.loads(evaluate(_WIDE_TABLE)))
                if screenshot_dir is not None and page.startswith("notebooks/"):
                    shots = [("", "window.scrollTo(0, 0)")]
                    if scan.figures:
                        shots.append(("-figure", _SCROLL_TO_FIRST_FIGURE))
                    shots.append(("-end", _SCROLL_TO_END))
                    for suffix, scroll in shots:
                        evaluate(scroll)
                        time.sleep(0.5)  # let the scroll and plotly's last frame paint
                        png = Path(screenshot_dir) / f"{Path(page).stem}{suffix}.png"
                        png.parent.mkdir(parents=True, exist_ok=True)
                        png.write_bytes(base64.b64decode(browser.send(
                            "Page.captureScreenshot", session, format="png")["data"]))
                        reading.screenshots.append(png)
                readings.append(reading)
        finally:
            browser.close()
    return readings


@dataclass
class BookCheck:
    """What the reader's check looked at (every page) and what it found."""
    html_dir: Path
    readings: list[PageReading] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        lines = []
        for reading in self.readings:
            seen = [f"{reading.figures.drawn}/{reading.figures.figures} figures"
                    if reading.figures.figures else "",
                    f"{reading.equations.typeset}/{reading.equations.equations} equations"
                    if reading.equations.equations else ""]
            status = "ok" if not reading.problems() else f"{len(reading.problems())} problems"
            lines.append(f"{reading.page:<34} {status:<11} " + ", ".join(x for x in seen if x))
        shots = [png for reading in self.readings for png in reading.screenshots]
        if shots:
            lines.append(f"screenshots: {len(shots)} in {shots[0].parent}")
        lines += [f"PROBLEM: {problem}" for problem in self.problems]
        lines.append("book check: " + ("OK" if self.ok else f"FAILED ({len(self.problems)} problems)"))
        return "\n".join(lines)


# What no page of the book may show, and why (checked in the HTML, no browser needed).
REFUSED = {
    "a TensorFlow start-up notice": ("oneDNN custom operations", "absl::InitializeLog",
                                   "rebuild TensorFlow with the appropriate compiler flags",
                                   "TF_ENABLE_ONEDNN_OPTS"),
    "a test marker": ("NBVAL_CHECK_OUTPUT", "NBVAL_IGNORE_OUTPUT", "NBVAL_SKIP"),
    "the building machine's path": (str(REPO_ROOT),),
}
CDN_MATHJAX = re.compile(r"""<script[^>]+src=["']https?://[^"']*mathjax""", re.IGNORECASE)


def page_problems(html_dir: str | os.PathLike) -> list[str]:
    """Every refused string (`REFUSED`) and every MathJax loaded from a CDN, per page of the
    built book: one line each, naming the page."""
    problems = []
    for page in sorted(Path(html_dir).rglob("*.html")):
        if "_static" in page.parts or "_sources" in page.parts:
            continue
        text = page.read_text(errors="replace")
        name = page.relative_to(html_dir)
        for what, needles in REFUSED.items():
            for needle in needles:
                if needle in text:
                    problems.append(f"{name}: shows {what} ({needle!r})")
        if CDN_MATHJAX.search(text):
            problems.append(f"{name}: loads MathJax from a CDN (equations need the network)")
    return problems


def check_book(html_dir: str | os.PathLike = DEFAULT_HTML_DIR,
               config_path: str | os.PathLike = REPO_ROOT / "_config.yml",
               screenshot_dir: str | os.PathLike | None = DEFAULT_SCREENSHOTS,
               pages: list[str] | None = None) -> BookCheck:
    """The reader's check of the built book: the HTML of every page (`page_problems`), then
    every page as Chromium shows it with the network refused (`read_pages`: Markdown tables
    left as text, cells with no number, code cut by its box, figures, equations), and each
    chapter's Colab button against `_config.yml`."""
    html_dir = Path(html_dir)
    result = BookCheck(html_dir)
    if not (html_dir / "index.html").is_file():
        result.problems.append(f"no book at {html_dir}: build it first (make book)")
        return result
    result.problems += page_problems(html_dir)
    result.readings = read_pages(html_dir, pages, screenshot_dir)
    for reading in result.readings:
        result.problems += reading.problems()
        if reading.page.startswith("notebooks/") and reading.page.endswith(".html"):
            expected = expected_colab_link(reading.page.removesuffix(".html"), config_path)
            if reading.colab_link != expected:
                result.problems.append(f"{reading.page}: Colab launch button points at "
                                       f"{reading.colab_link!r}, expected {expected!r} (from "
                                       f"{config_path})")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python tests/bookcheck.py", description=__doc__.split("\n")[0])
    parser.add_argument("html_dir", nargs="?", default=str(DEFAULT_HTML_DIR),
                        help="the built book's HTML folder (default: %(default)s)")
    parser.add_argument("--page", action="append", dest="pages", metavar="PAGE",
                        help="check only this page, relative to HTML_DIR (repeatable)")
    parser.add_argument("--config", default=str(REPO_ROOT / "_config.yml"),
                        help="the book's _config.yml (default: %(default)s)")
    parser.add_argument("--screenshots", default=str(DEFAULT_SCREENSHOTS),
                        help="folder for the chapters' screenshots (default: %(default)s)")
    args = parser.parse_args(argv)
    if find_chromium() is None:
        print("book check: no Chromium found (apt-get install chromium, or set BRAINLIB_CHROMIUM)",
              file=sys.stderr)
        return 2
    result = check_book(args.html_dir, args.config, args.screenshots, args.pages)
    print(result.summary())
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())

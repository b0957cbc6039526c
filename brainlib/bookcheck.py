"""Check the built book in headless Chromium: figures and equations render offline, Colab
links are right.

`python -m brainlib.bookcheck [HTML_DIR]` opens two chapters of the built book (default
`_build/_build/html`) with every network request refused (so nothing may come from a CDN):
in one, plotly.js must draw every figure and the Colab launch button must match
`_config.yml`; in the other, MathJax must typeset every equation without an error. It
saves a screenshot of each and exits non-zero when any check fails.
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
DEFAULT_CHAPTER = "notebooks/02_data.html"
DEFAULT_MATH_CHAPTER = "notebooks/01_equations.html"
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


def render_dom(html_path: str | os.PathLike, budget_ms: int = 10_000, timeout_s: float = 60) -> str:
    """The page's DOM after its scripts ran (headless Chromium --dump-dom, virtual time budget)."""
    with tempfile.TemporaryDirectory(prefix="brainlib-chromium-") as profile:
        done = subprocess.run(
            [_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
             f"--virtual-time-budget={budget_ms}", "--dump-dom", _page_url(html_path)],
            capture_output=True, text=True, timeout=timeout_s)
    if done.returncode != 0 or not done.stdout.strip():
        raise RuntimeError(f"chromium --dump-dom {html_path} failed (exit {done.returncode}): "
                           f"{done.stderr[-2000:]}")
    return done.stdout


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
    for link in _scan(dom).links:
        label = link.get("title") or link.get("data-bs-original-title") or ""
        if label.strip() == "Launch on Colab":
            return link["href"]
    return None


def expected_colab_link(page: str, config_path: str | os.PathLike = REPO_ROOT / "_config.yml") -> str:
    """The Colab URL a page should launch, from `_config.yml` (repository url/branch, colab_url).

    `page` is the chapter's path in the book without suffix, e.g. "notebooks/02_data".
    """
    import yaml  # comes with jupyter-book (the `book` extra)

    config = yaml.safe_load(Path(config_path).read_text())
    repository = config.get("repository") or {}
    url = str(repository.get("url", "")).rstrip("/").removesuffix(".git")
    prefix = "https://github.com/"
    if not url.startswith(prefix) or url.count("/") != 4:
        raise ValueError(f"{config_path}: repository.url should be https://github.com/OWNER/REPO, "
                         f"found {url!r}")
    colab = str((config.get("launch_buttons") or {}).get("colab_url", "")).rstrip("/")
    if not colab:
        raise ValueError(f"{config_path}: launch_buttons.colab_url is not set, so the book has "
                         "no Colab buttons")
    branch = repository.get("branch", "main")
    book_dir = str(repository.get("path_to_book", "") or "").strip("/")
    path = f"{book_dir}/{page}.ipynb" if book_dir else f"{page}.ipynb"
    return f"{colab}/github/{url.removeprefix(prefix)}/blob/{branch}/{path}"


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
# Scroll to the first display equation once MathJax typeset the page's math (0 until then).
_SCROLL_TO_FIRST_EQUATION = """(() => {
  const math = document.querySelectorAll('.math');
  if (!math.length) return -1;
  const typeset = document.querySelectorAll('mjx-container').length;
  if (typeset < math.length) return 0;
  const first = document.querySelector('div.math') || math[0];
  const target = first.closest('section') || first;
  window.scrollTo(0, target.getBoundingClientRect().top + window.scrollY - 80);
  return typeset;
})()"""
SCROLL_TO = {"figure": _SCROLL_TO_FIRST_FIGURE, "equation": _SCROLL_TO_FIRST_EQUATION}


def screenshot(html_path: str | os.PathLike, png_path: str | os.PathLike,
               window_size: tuple[int, int] = WINDOW_SIZE, timeout_s: float = 60,
               scroll_to: str = "figure") -> Path:
    """Save a PNG of the page in headless Chromium, scrolled to its first plotly figure
    (`scroll_to="figure"`) or its first equation (`"equation"`).

    Uses the DevTools protocol (not `--screenshot`) so it can wait for plotly.js or MathJax
    to draw and scroll there; pages without such content are shot from the top.
    """
    scroll_script = SCROLL_TO[scroll_to]
    png_path = Path(png_path)
    url = _page_url(html_path)
    width, height = window_size
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
            browser.send("Page.navigate", session, url=url)
            browser.wait_event("Page.loadEventFired")
            give_up = min(browser.deadline, time.monotonic() + 15)
            while time.monotonic() < give_up:
                drawn = browser.send("Runtime.evaluate", session, expression=scroll_script,
                                     returnByValue=True)["result"].get("value", -1)
                if drawn != 0:  # drawn, or no plotly figure on the page
                    break
                time.sleep(0.2)
            time.sleep(0.5)  # let the scroll and plotly's last frame paint
            data = browser.send("Page.captureScreenshot", session, format="png")["data"]
        finally:
            browser.close()
    png_path.parent.mkdir(parents=True, exist_ok=True)
    png_path.write_bytes(base64.b64decode(data))
    return png_path


@dataclass
class BookCheck:
    """What the book check looked at and what it found."""
    page: Path
    math_page: Path | None = None
    figures: PlotlyFigures | None = None
    equations: Equations | None = None
    colab_link: str | None = None
    expected_colab_link: str | None = None
    screenshots: list[Path] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        lines = [f"page:       {self.page}",
                 "plotly:     " + (f"{self.figures} (network disabled)" if self.figures
                                      else "not checked"),
                 f"colab:      {self.colab_link}",
                 f"expected:   {self.expected_colab_link}",
                 f"math page:  {self.math_page}",
                 "equations:  " + (f"{self.equations} (network disabled)" if self.equations
                                      else "not checked")]
        lines += [f"screenshot: {png}" for png in self.screenshots]
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


def check_book(html_dir: str | os.PathLike = DEFAULT_HTML_DIR, chapter: str = DEFAULT_CHAPTER,
               config_path: str | os.PathLike = REPO_ROOT / "_config.yml",
               screenshot_dir: str | os.PathLike = DEFAULT_SCREENSHOTS,
               math_chapter: str = DEFAULT_MATH_CHAPTER) -> BookCheck:
    """Open `chapter` of the built book (plotly figures drawn offline, Colab button) and
    `math_chapter` (every equation typeset offline), with a screenshot of each."""
    page, math_page = Path(html_dir) / chapter, Path(html_dir) / math_chapter
    result = BookCheck(page=page, math_page=math_page)
    missing = [p for p in (page, math_page) if not p.is_file()]
    if missing:
        result.problems += [f"no page at {p}: build the book first (make book)" for p in missing]
        return result
    dom = render_dom(page)
    result.figures = plotly_figures(dom)
    if not result.figures.all_drawn:
        result.problems.append(f"{result.figures} in {page}: plotly.js did not render the "
                               "page's figures without network access")
    result.colab_link = colab_link(dom)
    result.expected_colab_link = expected_colab_link(str(Path(chapter).with_suffix("").as_posix()),
                                                     config_path)
    if result.colab_link != result.expected_colab_link:
        result.problems.append(f"Colab launch button of {page} points at {result.colab_link!r}, "
                               f"expected {result.expected_colab_link!r} (from {config_path})")
    result.equations = equations(render_dom(math_page))
    if not result.equations.all_typeset:
        result.problems.append(f"{result.equations} in {math_page}: equations show raw TeX "
                               "without network access")
    shots = Path(screenshot_dir)
    result.screenshots = [
        screenshot(page, shots / Path(chapter).with_suffix(".png").name),
        screenshot(math_page, shots / Path(math_chapter).with_suffix(".png").name,
                   scroll_to="equation")]
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m brainlib.bookcheck", description=__doc__.split("\n")[0])
    parser.add_argument("html_dir", nargs="?", default=str(DEFAULT_HTML_DIR),
                        help="the built book's HTML folder (default: %(default)s)")
    parser.add_argument("--chapter", default=DEFAULT_CHAPTER,
                        help="page to open, relative to HTML_DIR (default: %(default)s)")
    parser.add_argument("--math-chapter", default=DEFAULT_MATH_CHAPTER,
                        help="page whose equations must typeset (default: %(default)s)")
    parser.add_argument("--config", default=str(REPO_ROOT / "_config.yml"),
                        help="the book's _config.yml (default: %(default)s)")
    parser.add_argument("--screenshots", default=str(DEFAULT_SCREENSHOTS),
                        help="folder for the screenshot (default: %(default)s)")
    args = parser.parse_args(argv)
    static = page_problems(args.html_dir)
    for problem in static:
        print(f"PROBLEM: {problem}")
    print(f"pages: {len(static)} problem(s) in the HTML ("
          f"{', '.join(REFUSED)}, MathJax from a CDN)")
    binary = find_chromium()
    if binary is None:
        print("book check: no Chromium found (apt-get install chromium, or set BRAINLIB_CHROMIUM)",
              file=sys.stderr)
        return 2
    print(f"browser:    {binary}")
    result = check_book(args.html_dir, args.chapter, args.config, args.screenshots,
                        args.math_chapter)
    print(result.summary())
    return 0 if result.ok and not static else 1


if __name__ == "__main__":
    sys.exit(main())

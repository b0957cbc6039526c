"""Progress of training, for whoever watches it: a study's console, which sees the
notebook's kernel only through the run folder's status file; a terminal, which gets bars;
a log file, which gets one line per epoch and never a carriage return.

The runner opens a `unit` around each model it trains; `fit_epochs` reports each epoch to
it (`epoch_done`), so the training code does not pass a reporter around.
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

STATUS_FILE = ".progress.json"
"""In a run folder: the unit training now, its epoch and its pace (written atomically)."""

_current: ContextVar[UnitProgress | None] = ContextVar("brainlib_unit_progress", default=None)


def is_terminal(stream=None) -> bool:
    """True when `stream` (default: stderr) can redraw a line: a terminal, or a notebook
    kernel's output (Jupyter and Colab draw text bars); not a log file or a pipe."""
    stream = sys.stderr if stream is None else stream
    if type(stream).__module__.startswith("ipykernel"):
        return True
    return bool(getattr(stream, "isatty", lambda: False)())


def bar(iterable, description: str, unit: str, enabled: bool = True, leave: bool = False):
    """A tqdm text bar over `iterable` where it can be redrawn (`is_terminal`); in a log or
    with `enabled` false, the bare iterable (a log gets `epoch_done`'s lines instead)."""
    if not (enabled and is_terminal()):
        return iterable
    from tqdm import tqdm  # text bars: no widget dependency in notebooks

    return tqdm(iterable, desc=description, unit=unit, leave=leave)


@dataclass
class UnitProgress:
    """One unit being trained: which, how far, and how fast."""
    name: str
    index: int                      # 1-based, of `total` units to train here
    total: int
    status_file: Path | None = None
    lines: bool = False             # print one line per epoch (a log, not a terminal)
    started: float = field(default_factory=time.time)
    epoch: int = 0
    epochs: int = 0
    epoch_seconds: list[float] = field(default_factory=list)

    def status(self) -> dict:
        return {"unit": self.name, "index": self.index, "total": self.total,
                "epoch": self.epoch, "epochs": self.epochs,
                "seconds_per_epoch": (sum(self.epoch_seconds) / len(self.epoch_seconds)
                                      if self.epoch_seconds else None),
                "started": self.started, "updated": time.time()}

    def write(self) -> None:
        if self.status_file is None:
            return
        tmp = self.status_file.with_name(f".{self.status_file.name}.{os.getpid()}.tmp")
        with contextlib.suppress(OSError):  # a watcher's convenience: never fail training
            tmp.write_text(json.dumps(self.status()))
            os.replace(tmp, self.status_file)

    def epoch_done(self, epoch: int, epochs: int, seconds: float) -> None:
        self.epoch, self.epochs = epoch, epochs
        self.epoch_seconds.append(seconds)
        self.write()
        if self.lines:
            print(describe(self.status()), file=sys.stderr, flush=True)


@contextlib.contextmanager
def unit(name: str, index: int, total: int, run_dir=None, lines: bool = False):
    """Report the epochs of the unit trained inside (`epoch_done`) to `run_dir`'s status
    file and, with `lines`, as one printed line each."""
    status_file = Path(run_dir) / STATUS_FILE if run_dir is not None else None
    reporter = UnitProgress(name, index, total, status_file, lines)
    reporter.write()
    token = _current.set(reporter)
    try:
        yield reporter
    finally:
        _current.reset(token)
        if status_file is not None:
            with contextlib.suppress(OSError):
                status_file.unlink()


def epoch_done(epoch: int, epochs: int, seconds: float) -> None:
    """An epoch finished (called by `train.fit_epochs`); nothing when no unit is open."""
    reporter = _current.get()
    if reporter is not None:
        reporter.epoch_done(epoch, epochs, seconds)


def describe(status: dict) -> str:
    """One line for a unit's status: which unit, which epoch, its pace, the time left."""
    text = f"training {status['unit']} (unit {status['index']} of {status['total']})"
    if not status.get("epochs"):
        return text + ": starting"
    pace = status["seconds_per_epoch"]
    left = (status["epochs"] - status["epoch"]) * pace
    return (f"{text}: epoch {status['epoch']} of {status['epochs']}, {pace:.1f} s per epoch, "
            f"{duration(left)} left in this unit")


def duration(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds} s" if seconds < 60 else f"{seconds // 60} min {seconds % 60:02d} s"


def read_status(run_dir) -> dict | None:
    try:
        return json.loads((Path(run_dir) / STATUS_FILE).read_text())
    except (OSError, ValueError):
        return None


class StudyConsole:
    """A study's console while a notebook runs in its kernel: one line, redrawn each second
    on a terminal (the notebook, its time, and the unit training now); in a log, one line
    per epoch. Use as a context manager around the notebook's execution."""

    def __init__(self, run_dir, notebook: str, stream=None, interval_s: float = 1.0):
        self.run_dir, self.notebook = Path(run_dir), notebook
        self.stream = sys.stderr if stream is None else stream
        self.terminal, self.interval_s = is_terminal(self.stream), interval_s
        self.started, self._stop = time.time(), threading.Event()
        self._last_epoch, self._width = None, 0
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def line(self, status: dict | None) -> str:
        text = f"  {self.notebook}: {duration(time.time() - self.started)}"
        return text + (f"; {describe(status)}" if status else "")

    def poll(self) -> None:
        status = read_status(self.run_dir)
        if self.terminal:
            text = self.line(status)
            self.stream.write("\r" + text.ljust(self._width))
            self._width = len(text)
            self.stream.flush()
        elif status and status.get("epochs"):
            epoch = (status["unit"], status["index"], status["epoch"])
            if epoch != self._last_epoch:
                self._last_epoch = epoch
                print(self.line(status), file=self.stream, flush=True)

    def _watch(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.poll()

    def __enter__(self):
        (self.run_dir / STATUS_FILE).unlink(missing_ok=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        if self.terminal and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
        return False


@contextlib.contextmanager
def native_stderr_to(log_path, enabled: bool = True):
    """What is written to the process's native stderr (file descriptor 2) goes to
    `log_path`: TensorFlow's, absl's and oneDNN's start-up notices from C++, and the stderr of
    kernels started inside; this process's own messages and bars (`sys.stderr`) stay on
    the terminal. `enabled=False` (`-v`) shows everything."""
    if not enabled:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with open(log_path, "ab") as log:
        os.dup2(log.fileno(), 2)
    terminal, previous = os.fdopen(os.dup(saved), "w", buffering=1), sys.stderr
    sys.stderr = terminal
    try:
        yield
    finally:
        terminal.flush()
        sys.stderr = previous
        os.dup2(saved, 2)
        os.close(saved)
        terminal.close()

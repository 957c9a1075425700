"""Messages and live progress for the terminal (or a notebook, or a log file)."""

from __future__ import annotations

import os
import sys
import threading
import time
from contextlib import contextmanager
from typing import IO, Any, Callable, Iterator, Mapping

from tlcore.text import for_terminal


def in_notebook(stream: IO[str]) -> bool:
    """Whether ``stream`` is a Jupyter kernel's output, which redraws a line on ``\\r`` but has no terminal codes."""
    return type(stream).__module__.startswith("ipykernel")


class Line:
    """How a line is redrawn in place on ``stream``: with terminal codes, with spaces (a notebook), or not
    at all (a log, where each update is a line of its own)."""

    def __init__(self, stream: IO[str], isatty: bool | None = None) -> None:
        self.stream = stream
        self.notebook = isatty is None and in_notebook(stream)
        self.in_place = (stream.isatty() if isatty is None else isatty) or self.notebook
        self.length = 0

    def draw(self, text: str, final: bool = False) -> None:
        if not self.in_place:
            self.stream.write(text + "\n")
        elif self.notebook:
            self.stream.write("\r" + text.ljust(self.length) + ("\n" if final else ""))
        else:
            self.stream.write("\r" + text + "\x1b[K" + ("\n" if final else ""))
        self.length = 0 if final else len(text)
        self.stream.flush()

    def clear(self) -> str:
        """What to write before a message, so that it never runs into a line drawn in place."""
        if not self.in_place or not self.length:
            return "\r\x1b[K" if self.in_place and not self.notebook else ""
        erase = "\r" + " " * self.length + "\r" if self.notebook else "\r\x1b[K"
        self.length = 0
        return erase


def format_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
    return f"{seconds // 60}:{seconds % 60:02d}"


def format_metrics(metrics: Mapping[str, float]) -> str:
    return " - ".join(f"{name}: {value:.4f}" for name, value in metrics.items())


MIN_RATE_SECONDS = 0.05
"""Progress shows a rate once this much time has passed."""


class Progress:
    """A progress line for ``total`` steps of ``unit`` (e.g. images).

    On a terminal the line is redrawn in place at most ten times a second; on
    anything else (a pipe, a log file) a new line is printed every ``interval``
    seconds, so a long step always shows that it is alive. With ``delay``, nothing
    is shown unless the step is still running after that many seconds: a step that
    is usually quick (indexing a dataset) stays silent when it is.
    """

    def __init__(self, stream: IO[str], total: int | None, label: str = "", unit: str = "img", interval: float = 2.0,
                 isatty: bool | None = None, clock: Callable[[], float] = time.monotonic, delay: float = 0.0,
                 line: Line | None = None) -> None:
        self.stream = stream
        self.total = total
        self.label = label
        self.unit = unit
        self.interval = interval
        self.output = line if line is not None else Line(stream, isatty)
        self.isatty = self.output.in_place
        self.clock = clock
        self.start = clock()
        self.done = 0
        self.last_draw: float | None = None
        self.metrics: dict[str, Any] = {}
        self.delay = delay

    def update(self, done: int, **metrics: Any) -> None:
        """Record that ``done`` of ``total`` steps are finished, with current metrics."""
        self.done = done
        self.metrics = metrics
        now = self.clock()
        if now - self.start < self.delay:
            return
        wait = 0.1 if self.isatty else self.interval
        since = self.last_draw if self.last_draw is not None else (None if self.isatty else self.start)
        if not self.isatty and self.total and done >= self.total:
            return  # in a log, the finishing line says it; no near-copy just before it
        if since is None or now - since >= wait:
            self._draw(self.line(now))
            self.last_draw = now

    def line(self, now: float | None = None) -> str:
        now = self.clock() if now is None else now
        elapsed = max(now - self.start, 1e-9)
        parts = []
        if self.total:
            width = 24
            filled = min(width, int(width * self.done / self.total))
            bar = "=" * filled + (">" if filled < width else "") + "." * max(0, width - filled - 1)
            parts.append(f"{self.label}{self.done}/{self.total} [{bar}]")
        else:
            parts.append(f"{self.label}{self.done}")
        rate = self.done / elapsed
        if elapsed >= MIN_RATE_SECONDS:  # a rate over a few milliseconds (cached features) says nothing
            parts.append(f"{rate:.1f} {self.unit}/s" if rate < 1000 else f"{rate:,.0f} {self.unit}/s")
        if self.total and self.done < self.total and rate > 0:
            parts.append(f"ETA {format_duration((self.total - self.done) / rate)}")
        elif self.done:
            parts.append(format_duration(elapsed))
        if self.metrics:
            parts.append(format_metrics(self.metrics))
        return " - ".join(parts)

    def finish(self, **metrics: Any) -> str:
        """Print the final line (with ``metrics``) and return it; a delayed line that never showed stays silent."""
        if metrics:
            self.metrics = metrics
        text = self.line()
        if self.delay and self.clock() - self.start < self.delay and self.last_draw is None:
            return text
        self._draw(text, final=True)
        return text

    def _draw(self, text: str, final: bool = False) -> None:
        self.output.draw(text, final)


class Reporter:
    """What plugins and the core use to talk to the user.

    ``info`` and progress go to ``stream`` (stdout); warnings go to ``err`` (stderr).
    """

    def __init__(self, stream: IO[str] | None = None, err: IO[str] | None = None, isatty: bool | None = None,
                 interval: float = 2.0, debug: bool = False) -> None:
        self.stream = stream if stream is not None else sys.stdout
        self.err = err if err is not None else sys.stderr
        self.isatty = isatty
        self.interval = interval
        self.debug = debug
        """``tl ... --debug``: libraries' own output is shown raw, not tidied away."""
        self.warnings: list[str] = []
        self.line = Line(self.stream, isatty)
        """The progress line of ``stream``, redrawn in place on a terminal or in a notebook."""

    def _line_start(self, stream: IO[str]) -> str:
        """Erase a progress line drawn in place, so that a message never runs into it."""
        if stream is self.stream:
            return self.line.clear()
        return Line(stream, self.isatty).clear() if self.line.length == 0 else self.line.clear()

    def info(self, message: str) -> None:
        """Print ``message`` (control characters in it shown escaped, very long names shortened)."""
        self.stream.write(self._line_start(self.stream) + for_terminal(message) + "\n")
        self.stream.flush()

    def warning(self, message: str) -> None:
        """Print ``Warning: message`` to ``err`` (made safe like :meth:`info`); :attr:`warnings` keeps it as given."""
        self.warnings.append(message)
        self.err.write(f"{self._line_start(self.err)}Warning: {for_terminal(message)}\n")
        self.err.flush()

    def progress(self, total: int | None, label: str = "", unit: str = "img", delay: float = 0.0) -> Progress:
        """A :class:`Progress` for ``total`` steps (0 or None when unknown), shown after ``delay`` seconds."""
        return Progress(self.stream, total, label=label, unit=unit, interval=self.interval, isatty=self.isatty,
                        delay=delay, line=self.line)

    @contextmanager
    def activity(self, label: str, delay: float = 0.0) -> Iterator[Activity]:
        """Show that a step of unknown length (saving, loading) is alive until it ends.

        On a terminal the elapsed time ticks in place; elsewhere a line is printed
        every ``interval`` seconds. The closing line says how long it took. The
        context gives an :class:`Activity` whose ``stage(text)`` says what the step is doing now.
        With ``delay``, a step that ends sooner prints nothing at all.
        """
        isatty = self.line.in_place
        started = time.monotonic()
        done = threading.Event()
        lock = threading.Lock()
        activity = Activity()

        def tick() -> None:
            if done.wait(delay):
                return
            while not done.wait(0.5 if isatty else self.interval):
                with lock:
                    if done.is_set():
                        return
                    stage = f" ({activity.text})" if activity.text else ""
                    self.line.draw(f"{label}{stage} ... {format_duration(time.monotonic() - started)}")

        thread = threading.Thread(target=tick, name="tl-activity", daemon=True)
        thread.start()
        try:
            yield activity
        finally:
            with lock:
                done.set()
            thread.join()
        elapsed = time.monotonic() - started
        if elapsed >= delay:
            self.stream.write(f"{self._line_start(self.stream)}{label}: done in {elapsed:.1f} s\n")
            self.stream.flush()
        elif self.line.length:
            self.stream.write(self.line.clear())
            self.stream.flush()


@contextmanager
def quiet_native_stderr(reporter: Reporter) -> Iterator[None]:
    """Hide what native libraries (TensorFlow's converters) print straight to file descriptor 2, unless
    ``reporter.debug``; Python's own warnings and errors are unaffected once the block ends."""
    if reporter.debug:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


class Activity:
    """The stage a long step is in, shown on its activity line (see :meth:`Reporter.activity`)."""

    def __init__(self) -> None:
        self.text = ""

    def stage(self, text: str) -> None:
        self.text = text

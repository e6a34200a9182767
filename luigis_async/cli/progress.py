"""What a user sees while a job runs: a live bar on a terminal, plain log lines otherwise.

Both show the same numbers, and only true ones (``Snapshot``): lines applied; failed
(tried, or invalid, and not applied); not attempted (never sent, after a stop); retries;
requests in flight; lines applied per second over the last ``WINDOW`` seconds (lines
never sent are never counted); and an ETA from the same recent pace. ``output()`` sets
up logging for one command at its verbosity and hands out trackers on the same rich
console, so log records and the bar never tear each other. Everything goes to stderr:
stdout carries only the final summary (and a sync's plan).
"""

from __future__ import annotations

import logging
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Final, Literal, Protocol

import attrs
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
)

__all__ = [
    "DEFAULT_INTERVAL",
    "WINDOW",
    "LogProgress",
    "Output",
    "Pace",
    "RichProgress",
    "Snapshot",
    "Tracker",
    "Unit",
    "Verbosity",
    "Words",
    "output",
]

log: Final[logging.Logger] = logging.getLogger("luigis_async.cli")

#: Seconds between two plain progress lines when stderr is not a terminal.
DEFAULT_INTERVAL: Final = 5.0
#: The recent window, in seconds, of the applied/s rate and the ETA.
WINDOW: Final = 10.0
#: Seconds between two redraws of the live bar's numbers at most.
REDRAW: Final = 0.1

Unit = Literal["bytes", "items"]


@attrs.frozen
class Snapshot:
    """A job's progress: ``done`` bytes (or items) of the total consumed, and the counts."""

    done: int = 0
    applied: int = 0
    failed: int = 0
    not_attempted: int = 0
    retries: int = 0
    in_flight: int = 0
    #: The job is stopping: no ETA, the rest is being written as not attempted.
    stopping: bool = False


class Tracker(Protocol):
    """Receives a job's progress; ``force`` draws it now (the last snapshot of a job)."""

    def update(self, snapshot: Snapshot, *, force: bool = False) -> None: ...


@attrs.frozen
class Words:
    """How a job names its counts: ``applied``/``failed``; a dry run ``valid``/``invalid``.

    ``sends``: the job sends requests, so not attempted, retries and in flight apply.
    """

    applied: str = "applied"
    failed: str | None = "failed"
    sends: bool = True


@attrs.frozen
class Verbosity:
    """``-q``: errors only. Default: progress, summary, warnings. ``-v``: also the library's
    INFO (each retry, with its wait). ``-vv``: DEBUG, every request and every line."""

    verbose: int = 0
    quiet: bool = False

    @property
    def level(self) -> int:
        """The command's own logging level."""
        if self.quiet:
            return logging.ERROR
        return logging.DEBUG if self.verbose >= 2 else logging.INFO

    @property
    def library_level(self) -> int:
        """The library's logging level: retries are noise in a bulk job unless asked for."""
        if self.quiet:
            return logging.ERROR
        return (logging.WARNING, logging.INFO, logging.DEBUG)[min(self.verbose, 2)]


class Pace:
    """Rates over the last ``window`` seconds: applied per second, and done per second."""

    def __init__(self, now: float, window: float = WINDOW) -> None:
        self.window = window
        self._samples: deque[tuple[float, int, int]] = deque([(now, 0, 0)])

    def add(self, now: float, done: int, applied: int) -> tuple[float, float]:
        """Record a sample; (applied/s, done/s) since the oldest sample in the window."""
        samples = self._samples
        if now - samples[-1][0] >= REDRAW or len(samples) == 1:
            samples.append((now, done, applied))
        while len(samples) > 2 and now - samples[1][0] >= self.window:
            samples.popleft()
        then, done_then, applied_then = samples[0]
        span = now - then
        if span <= 0:
            return 0.0, 0.0
        return (applied - applied_then) / span, (done - done_then) / span


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


class _Display:
    """What both trackers share: the total, the words, the pace, and the counts' text."""

    def __init__(
        self, label: str, total: int | None, unit: Unit, words: Words, clock: Callable[[], float]
    ) -> None:
        self.label = label
        self.total = total
        self.unit = unit
        self.words = words
        self.clock = clock
        self.pace: Pace = Pace(clock())

    def counts(self, s: Snapshot, now: float) -> str:
        """E.g. ``1,200 applied, 3 failed, 57 retries, 8 in flight, 850 applied/s, ETA 0:01:02``."""
        words = self.words
        parts = [f"{s.applied:,} {words.applied}"]
        if words.failed is not None:
            parts.append(f"{s.failed:,} {words.failed}")
        if words.sends:
            if s.not_attempted:
                parts.append(f"{s.not_attempted:,} not attempted")
            parts += [f"{s.retries:,} retries", f"{s.in_flight:,} in flight"]
        applied_rate, done_rate = self.pace.add(now, s.done, s.applied)
        parts.append(f"{applied_rate:,.0f} {words.applied}/s")
        if s.stopping:
            parts.append("stopping")
        elif self.total and done_rate > 0:
            remaining = max(0.0, (self.total - s.done) / done_rate)
            parts.append(f"ETA {timedelta(seconds=round(remaining))}")
        return ", ".join(parts)


class LogProgress(_Display):
    """A plain progress line through logging at most every ``interval`` seconds."""

    def __init__(
        self,
        label: str,
        total: int | None,
        unit: Unit,
        words: Words = Words(),
        *,
        interval: float = DEFAULT_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(label, total, unit, words, clock)
        self.interval = interval
        self.last: float = clock()

    def update(self, snapshot: Snapshot, *, force: bool = False) -> None:
        now = self.clock()
        if now - self.last >= self.interval:
            self.last = now
            log.info("%s", self.describe(snapshot, now))

    def describe(self, snapshot: Snapshot, now: float) -> str:
        """E.g. ``push: 45% (2.3 MB of 5.0 MB), 1,200 applied, ..., ETA 0:00:42``."""
        show = _size if self.unit == "bytes" else (lambda n: f"{n:,}")
        done = snapshot.done
        where = ""
        if self.total:
            percent = min(100, 100 * done // self.total)
            where = f"{percent}% ({show(done)} of {show(self.total)}), "
        elif self.unit == "bytes":
            where = f"{show(done)} read, "
        return f"{self.label}: {where}{self.counts(snapshot, now)}"


class RichProgress(_Display):
    """A live bar: done of total, percentage, then the same counts as the plain line."""

    def __init__(self, progress: Progress, label: str, total: int | None, unit: Unit,
                 words: Words) -> None:
        super().__init__(label, total, unit, words, time.monotonic)
        self.progress = progress
        self.task: TaskID = progress.add_task(label, total=total, counts="")
        self.drawn: float = 0.0

    def update(self, snapshot: Snapshot, *, force: bool = False) -> None:
        now = self.clock()
        if force or now - self.drawn >= REDRAW:
            self.drawn = now
            self.progress.update(
                self.task, completed=snapshot.done, counts=self.counts(snapshot, now)
            )


class Output:
    """Where a command's logging and progress go: a rich console, or plain stderr."""

    def __init__(self, console: Console | None, verbosity: Verbosity) -> None:
        self.console = console
        self.verbosity = verbosity

    @contextmanager
    def progress(
        self, label: str, total: int | None, unit: Unit, words: Words = Words()
    ) -> Iterator[Tracker]:
        """Track one job: a live bar on a terminal, else (or with ``-q``) log lines."""
        if self.console is None or self.verbosity.level > logging.INFO:
            yield LogProgress(label, total, unit, words)
            return
        columns = [
            TextColumn("[bold]{task.description}"),
            BarColumn(bar_width=20),
            TaskProgressColumn(),
            DownloadColumn() if unit == "bytes" else MofNCompleteColumn(),
            TextColumn("{task.fields[counts]}", markup=False),
        ]
        with Progress(*columns, console=self.console) as progress:
            yield RichProgress(progress, label, total, unit, words)


@contextmanager
def output(verbosity: Verbosity) -> Iterator[Output]:
    """Route ``luigis_async`` logging to stderr while the command runs (see ``Verbosity``).

    Rich output (a live bar, coloured records) when stderr is a terminal, else plain lines.
    """
    console = Console(stderr=True) if sys.stderr.isatty() else None
    handler: logging.Handler
    if console is not None:
        handler = RichHandler(console=console, show_path=False, show_time=False)
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S")
        )
    library, cli = logging.getLogger("luigis_async"), log
    saved = library.level, library.propagate, cli.level
    library.setLevel(verbosity.library_level)
    library.propagate = False
    library.addHandler(handler)
    cli.setLevel(verbosity.level)
    try:
        yield Output(console, verbosity)
    finally:
        library.removeHandler(handler)
        library.setLevel(saved[0])
        library.propagate = saved[1]
        cli.setLevel(saved[2])

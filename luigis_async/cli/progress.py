"""What a user sees while a job runs: a live bar on a terminal, plain log lines otherwise.

``output()`` sets up logging for one command and hands out progress trackers on the same
rich console, so log records and the bar never tear each other. Everything goes to stderr: stdout
carries only the final summary.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Final, Literal, Protocol

from rich.console import Console
from rich.logging import RichHandler
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)

__all__ = [
    "DEFAULT_INTERVAL",
    "LogProgress",
    "Output",
    "RichProgress",
    "Tracker",
    "Unit",
    "level_for",
    "output",
]

log = logging.getLogger("luigis_async.cli")

#: Seconds between two plain progress lines when stderr is not a terminal.
DEFAULT_INTERVAL: Final = 5.0

Unit = Literal["bytes", "items"]


class Tracker(Protocol):
    """Receives a job's progress; ``counts`` (e.g. applied, failed) sum to lines done."""

    def update(self, done: int, **counts: int) -> None:
        """``done`` bytes (or items) of the total consumed so far."""


def level_for(verbose: int, quiet: bool) -> int:
    """``-q``: errors only; default: INFO (WARNING for the library); ``-v``: DEBUG."""
    if quiet:
        return logging.ERROR
    return logging.DEBUG if verbose else logging.INFO


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{value:,} {name}" for name, value in counts.items())


class LogProgress:
    """A plain progress line through logging at most every ``interval`` seconds."""

    def __init__(
        self,
        label: str,
        total: int | None,
        unit: Unit,
        *,
        interval: float = DEFAULT_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.total = total
        self.unit = unit
        self.interval = interval
        self.clock = clock
        self.started = self.last = clock()

    def update(self, done: int, **counts: int) -> None:
        now = self.clock()
        if now - self.last >= self.interval:
            self.last = now
            log.info("%s", self.describe(done, counts, now))

    def describe(self, done: int, counts: dict[str, int], now: float) -> str:
        """E.g. ``push: 45% (2.3 MB of 5.0 MB), 1,200 applied, 3 failed, 850/s, ETA 0:00:42``."""
        show = _size if self.unit == "bytes" else (lambda n: f"{n:,}")
        elapsed = max(now - self.started, 1e-9)
        parts = []
        if self.total:
            percent = min(100, 100 * done // self.total)
            parts.append(f"{percent}% ({show(done)} of {show(self.total)})")
        elif self.unit == "bytes":
            parts.append(f"{show(done)} read")
        if counts:
            parts.append(_counts(counts))
        parts.append(f"{sum(counts.values()) / elapsed:,.0f}/s")
        if self.total and done:
            remaining = (self.total - done) * elapsed / done
            parts.append(f"ETA {timedelta(seconds=round(max(0.0, remaining)))}")
        return f"{self.label}: " + ", ".join(parts)


class RichProgress:
    """A live bar: done of total, percentage, the counts, lines per second and ETA."""

    def __init__(self, progress: Progress, label: str, total: int | None) -> None:
        self.progress = progress
        self.started = time.monotonic()
        self.task = progress.add_task(label, total=total, counts="", rate="")

    def update(self, done: int, **counts: int) -> None:
        rate = sum(counts.values()) / max(time.monotonic() - self.started, 1e-9)
        self.progress.update(
            self.task, completed=done, counts=_counts(counts), rate=f"{rate:,.0f}/s"
        )


class Output:
    """Where a command's logging and progress go: a rich console, or plain stderr."""

    def __init__(self, console: Console | None, level: int) -> None:
        self.console = console
        self.level = level

    @contextmanager
    def progress(self, label: str, total: int | None, unit: Unit) -> Iterator[Tracker]:
        """Track one job: a live bar on a terminal, else (or with ``-q``) log lines."""
        if self.console is None or self.level > logging.INFO:
            yield LogProgress(label, total, unit)
            return
        columns = [
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            DownloadColumn() if unit == "bytes" else MofNCompleteColumn(),
            TextColumn("{task.fields[counts]}"),
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(),
        ]
        with Progress(*columns, console=self.console) as progress:
            yield RichProgress(progress, label, total)


@contextmanager
def output(level: int, *, tty: bool | None = None) -> Iterator[Output]:
    """Route ``luigis_async`` logging to stderr at ``level`` while the command runs.

    The library itself logs at WARNING and above unless ``level`` is DEBUG (``-v``).

    ``tty`` (default: whether stderr is a terminal) picks rich output over plain lines.
    """
    if tty is None:
        tty = sys.stderr.isatty()
    console = Console(stderr=True) if tty else None
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
    # The library's retries are INFO: one line per retry is noise in a bulk job unless -v.
    library.setLevel(level if level <= logging.DEBUG else max(level, logging.WARNING))
    library.propagate = False
    library.addHandler(handler)
    cli.setLevel(level)
    try:
        yield Output(console, level)
    finally:
        library.removeHandler(handler)
        library.setLevel(saved[0])
        library.propagate = saved[1]
        cli.setLevel(saved[2])

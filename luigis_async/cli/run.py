"""How a writing command runs, once its files are checked: one event loop, start to end.

SIGINT, SIGTERM and SIGHUP are handled on that loop from before the first request until
the failures file is fsync'd and closed and the journal closed (and removed, when the run
finished), so no signal can cut those writes short. ``session`` opens the client (a
sandbox seeded first, the API checked first, ``probe.py``), either of which a signal
cuts short at once; ``run_lines`` runs a push or an import (a sync's steps are in
``sync_command.py``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any, Final, TypeVar

import attrs
import click

from ..client import LuigisBoxClient
from ..jsonl import FailuresFile
from ..sandbox import Sandbox
from .connect import Credentials, SandboxTarget, Seed, connect
from .journal import Journal
from .lines import LinesJob, LinesSummary
from .options import BatchOptions
from .outcome import EXIT_INTERRUPTED
from .preflight import InputFile
from .probe import preflight
from .progress import Output, Tracker
from .signals import Signals
from .summary import JobSummary

__all__ = [
    "Connection",
    "JobFiles",
    "close_files",
    "run_lines",
    "run_loop",
    "session",
    "until_signal",
]

log: Final[logging.Logger] = logging.getLogger("luigis_async.cli")

T = TypeVar("T")

#: Builds the job of a push or an import on an open client.
MakeJob = Callable[[LuigisBoxClient, Tracker, Signals], LinesJob[Any, Any]]


@attrs.frozen
class Connection:
    """Where the requests go, how hard, and whether to check the API first (``probe``)."""

    target: Credentials | SandboxTarget
    batch: BatchOptions
    check: bool = True


@attrs.frozen
class JobFiles:
    """A job's checked files: its input, its failures file, and its journal (if any)."""

    source: InputFile
    failures: FailuresFile
    journal: Journal | None = None


async def close_files(files: JobFiles, summary: JobSummary | None) -> None:
    """fsync and close the failures file, then close the journal.

    The journal is removed when the run finished and the failures file is safely on
    disk, or when this run created it and wrote nothing to it; else a resumed run needs it.
    """
    failures, journal = files.failures, files.journal
    await asyncio.to_thread(failures.sync)
    failures.close(completed=summary is not None)
    if summary is not None:
        summary.failures_written = failures.count
        if failures.error is not None and summary.failures_error is None:
            summary.failures_error = failures.error.strerror or str(failures.error)
    if journal is not None:
        finished = summary is not None and summary.finished and failures.error is None
        await journal.close(remove=finished or (journal.fresh and not journal.written))


async def until_signal(signals: Signals, work: Awaitable[T]) -> T | None:
    """``work``'s result; None when a signal came first (``work`` is then cancelled)."""
    task = asyncio.ensure_future(work)
    with signals.listening(lambda count, signum: task.cancel()):
        try:
            return await task
        except asyncio.CancelledError:
            if not signals.received:
                raise
            return None


@asynccontextmanager
async def session(
    connection: Connection, signals: Signals, seed: Seed | None = None
) -> AsyncIterator[LuigisBoxClient]:
    """An open client: a sandbox is seeded first, the API checked first (``probe``). A
    signal cuts either short; the job then finds the signal received and stops at once."""

    async def seeded(sandbox: Sandbox) -> None:
        assert seed is not None
        await until_signal(signals, seed(sandbox))

    target, batch = connection.target, connection.batch
    async with connect(
        target,
        seed=seeded if seed is not None else None,
        retry=batch.retry,
        max_connections=batch.concurrency,
    ) as client:
        if connection.check and isinstance(target, Credentials) and not signals.received:
            await until_signal(signals, preflight(client))
        yield client


async def run_lines(
    connection: Connection,
    make_job: MakeJob,
    files: JobFiles,
    out: Output,
    *,
    label: str,
    size: int | None,
    seed: Seed | None = None,
) -> LinesSummary:
    """Run a push or an import; the files are closed (the journal kept or removed) at the end."""
    signals = Signals()
    summary: LinesSummary | None = None
    with signals.installed():
        if files.journal is not None:
            files.journal.start()
        try:
            async with session(connection, signals, seed) as client:
                with out.progress(label, size, "bytes") as tracker:
                    summary = await make_job(client, tracker, signals).run()
        finally:
            await close_files(files, summary)
    assert summary is not None
    return summary


def run_loop(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run``, where a Ctrl-C that the job could not handle still exits 130."""
    try:
        return asyncio.run(main)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        raise SystemExit(EXIT_INTERRUPTED) from None

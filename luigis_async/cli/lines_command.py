"""``push`` and ``import``: a JSON Lines file, sent line by line (PUT) or in bulk (create).

Both share everything but how a line is parsed and what sends it (a ``LinesKind``): the
checks of their options, their files (failures file, journal, ``--resume``), the
sandbox (``push --sandbox`` first stores a placeholder under each ID of the file, so
there is something to update), the run, and its end.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import shlex
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final, NoReturn

import attrs
import click

from ..batch import BatchUpdater
from ..bulk import DEFAULT_BULK_CONCURRENCY, MAX_BULK_LINES, BulkCreator, ConflictStrategy
from ..client import LuigisBoxClient
from ..jsonl import read_lines
from ..sandbox import Sandbox
from ..sandbox.demo import seed_placeholders
from .connect import SandboxTarget
from .importer import ImportJob
from .lines import LinesJob, LinesSummary, dry_run
from .options import BatchOptions, FileOptions, TargetOptions
from .preflight import InputFile, ResumeMode, open_failures, open_lines_journal
from .progress import Output, Tracker, Verbosity, Words, output
from .push import PushJob
from .reader import input_size, open_input
from .report import Advice, finish
from .run import Connection, JobFiles, run_lines, run_loop
from .signals import Signals

__all__ = ["IMPORT", "PUSH", "LinesKind", "lines_command"]

log: Final[logging.Logger] = logging.getLogger("luigis_async.cli")


@attrs.frozen
class LinesKind:
    """What push and import do differently: the job, its runner, whether a sandbox is
    seeded from the file, whether ``--rate`` applies, and (import) the bulk options."""

    name: str
    job: type[LinesJob[Any, Any]]
    runner: Callable[[LuigisBoxClient, BatchOptions, LinesKind], Any]
    seeds: bool = False
    rated: bool = True
    conflict: ConflictStrategy = "raise"
    chunk_size: int = MAX_BULK_LINES

    def configured(self, *, conflict: ConflictStrategy, chunk_size: int) -> LinesKind:
        return attrs.evolve(self, conflict=conflict, chunk_size=chunk_size)


def _updater(client: LuigisBoxClient, batch: BatchOptions, kind: LinesKind) -> BatchUpdater:
    return BatchUpdater(client, concurrency=batch.concurrency, rate_limit=batch.rate)


def _creator(client: LuigisBoxClient, batch: BatchOptions, kind: LinesKind) -> BulkCreator:
    return BulkCreator(
        client,
        conflict_strategy=kind.conflict,
        chunk_size=kind.chunk_size,
        concurrency=min(batch.concurrency, DEFAULT_BULK_CONCURRENCY),
    )


PUSH = LinesKind("push", PushJob, _updater, seeds=True)
IMPORT = LinesKind("import", ImportJob, _creator, rated=False)


def _check(kind: LinesKind, file: Path, dry: bool, batch: BatchOptions, files: FileOptions,
           target: TargetOptions) -> ResumeMode:
    """Refuse contradictory options before anything is opened; the journal's mode."""
    if target.sandbox and kind.seeds and str(file) == "-":
        raise click.UsageError(
            "--sandbox needs a FILE, not stdin: it reads FILE first to seed the sandbox"
        )
    if not kind.rated and batch.rate is not None:
        raise click.UsageError(f"--rate does not apply to {kind.name}: its requests are few")
    mode = files.mode
    if dry and (mode != "fresh" or files.journal is not None):
        raise click.UsageError(
            "--dry-run sends nothing: --journal, --resume and --restart do not apply"
        )
    return mode


def lines_command(
    ctx: click.Context,
    kind: LinesKind,
    file: Path,
    *,
    dry: bool,
    batch: BatchOptions,
    files: FileOptions,
    target: TargetOptions,
    verbosity: Verbosity,
) -> NoReturn:
    """Check, open, run and end one push or import."""
    mode = _check(kind, file, dry, batch, files, target)
    stdin = str(file) == "-"
    failures_path = files.failures_path(file, f"{kind.name}-failed.jsonl")
    connection = None if dry else Connection(target.resolve(), batch, target.preflight)
    journal_args = ["--journal", str(files.journal)] if files.journal is not None else []
    again = shlex.join(["luigis-async", kind.name, str(file), *journal_args])
    with output(verbosity) as out, open_input(file) as stream:
        source = InputFile.of(stream, "stdin" if stdin else str(file))
        with open_failures(failures_path, source) as failures:
            if connection is None:
                words = Words("valid", "invalid", sends=False)
                with out.progress("dry run", input_size(stream), "bytes", words) as tracker:
                    summary = dry_run(map(kind.job.parse, read_lines(stream)), failures, tracker)
            else:
                summary = _send(kind, connection, file, JobFiles(source, failures), files,
                                mode, again, out)
    advice = Advice(
        again=f"{again} --resume",
        retry=f"fix them and {kind.name} again: luigis-async {kind.name} {failures_path}",
    )
    finish(ctx, summary, advice, quiet=verbosity.quiet)


def _send(
    kind: LinesKind,
    connection: Connection,
    file: Path,
    job_files: JobFiles,
    files: FileOptions,
    mode: ResumeMode,
    again: str,
    out: Output,
) -> LinesSummary:
    """Open the journal, then run the job on the event loop."""
    source, failures = job_files.source, job_files.failures
    journal_path = files.journal_path(file, source, f"{kind.name}.journal")
    if journal_path is None and mode != "fresh":
        raise click.UsageError(
            "--resume and --restart need a journal: stdin is a pipe, so give "
            "--journal PATH (and for --resume, the input as a regular file)"
        )
    journal, state = (None, None) if journal_path is None else open_lines_journal(
        journal_path, source, failures, command=kind.name, mode=mode, again=again
    )
    skip = state.applied.__contains__ if state is not None else None
    seeded = kind.seeds and isinstance(connection.target, SandboxTarget)

    def make_job(
        client: LuigisBoxClient, tracker: Tracker, signals: Signals
    ) -> LinesJob[Any, Any]:
        runner = kind.runner(client, connection.batch, kind)
        return kind.job(
            runner, source.stream, failures, tracker, skip=skip, journal=journal, signals=signals
        )

    return run_loop(
        run_lines(
            connection, make_job, attrs.evolve(job_files, journal=journal), out,
            label=kind.name, size=input_size(source.stream),
            seed=functools.partial(_seed_from, file) if seeded else None,
        )
    )


async def _seed_from(file: Path, sandbox: Sandbox) -> None:
    """Store a placeholder under each ID of ``file``, in a thread that a signal stops."""
    log.info("seeding the sandbox with a placeholder under each ID of %s", file)
    stop = threading.Event()
    try:
        await asyncio.to_thread(seed_placeholders, sandbox, _ids(file, stop), stop)
    finally:
        stop.set()


def _ids(file: Path, stop: threading.Event) -> Iterator[str]:
    """The customization IDs of ``file``'s lines, cheaply: nothing else is checked."""
    with file.open("rb") as stream:
        for line in read_lines(stream):
            if stop.is_set():
                return
            try:
                value = json.loads(line.text).get("customization_id")
                yield str(uuid.UUID(value))
            except (ValueError, AttributeError, TypeError):
                continue

"""``sync``: read the desired set, plan, show the plan, ask, apply; refuse anything unsure.

A sync never writes silently: from a script (stdin not a terminal) it needs ``--yes``.
The desired set is read whole, in a thread, and refused if any line is bad; the plan is
made and printed; then ``SyncJob`` (``sync.py``) applies it. A signal before the apply
ends the command with nothing applied.
"""

from __future__ import annotations

import logging
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import attrs
import click

from ..client import LuigisBoxClient
from ..errors import LuigisBoxError
from ..jsonl import to_parsed_body
from ..reconcile import SyncPlan, plan_sync
from ..sandbox import Sandbox
from ..sandbox.demo import seed_sync_demo
from .options import BatchOptions, FileOptions, TargetOptions, group
from .outcome import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, INTERRUPTED
from .plan import PREVIEW, plan_rows, print_plan
from .preflight import InputFile, open_failures, open_sync_journal
from .probe import Where, failed
from .progress import Output, Verbosity, output
from .reader import LineReader, open_input
from .report import Advice, finish
from .run import Connection, JobFiles, close_files, run_loop, session, until_signal
from .signals import Signals, exit_status, signal_name
from .sync import Desired, SyncJob, SyncSummary

__all__ = ["SyncOptions", "SyncRun", "sync_command", "sync_options"]

log: logging.Logger = logging.getLogger("luigis_async.cli")


@attrs.frozen
class SyncOptions:
    """What to sync, and how."""

    managed_tag: str
    prune: bool = False
    allow_empty: bool = False
    plan_only: bool = False
    yes: bool = False
    bulk: bool = False


def _managed_tag(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if not value.strip():
        raise click.BadParameter("must not be empty")
    return value


def sync_options(command: Any) -> Any:
    """``--managed-tag``, ``--prune``, ``--allow-empty``, ``--plan-only``, ``--yes``, ``--bulk``."""
    return group("sync", SyncOptions, [
        click.Option(
            ["--managed-tag"], required=True, metavar="T", callback=_managed_tag,
            help="Only customizations tagged T are changed or deleted; all sync writes carry T.",
        ),
        click.Option(
            ["--prune"], is_flag=True,
            help="Delete the managed customizations FILE no longer holds.",
        ),
        click.Option(
            ["--allow-empty"], is_flag=True,
            help="With --prune, accept an empty FILE: delete every customization tagged T.",
        ),
        click.Option(["--plan-only"], is_flag=True, help="Print the plan; write nothing."),
        click.Option(
            ["-y", "--yes"], is_flag=True,
            help="Apply without asking (required when stdin is not a terminal).",
        ),
        click.Option(
            ["--bulk"], is_flag=True,
            help="Send the creates through the bulk endpoint, 5,000 per request (updates and "
            "deletes stay one request each).",
        ),
    ])(command)


@attrs.frozen
class SyncRun:
    """One ``sync``: read the desired set, plan, show, ask, apply.

    ``confirm`` asks before applying (None: apply without asking, ``--yes``).
    """

    connection: Connection
    files: JobFiles
    options: SyncOptions
    confirm: Callable[[str], bool | None] | None = None
    verbosity: Verbosity = attrs.Factory(Verbosity)
    signals: Signals = attrs.Factory(Signals)
    sandboxes: list[Sandbox] = attrs.Factory(list)

    async def run(self, out: Output) -> SyncSummary | int:
        """The summary of the apply, or an exit code when nothing was applied."""
        summary: SyncSummary | None = None
        with self.signals.installed():
            if self.files.journal is not None:
                self.files.journal.start()
            try:
                outcome = await self._steps(out)
                # An exit code: nothing was applied, so the journal has nothing to keep.
                summary = outcome if isinstance(outcome, SyncSummary) else SyncSummary()
            finally:
                await close_files(self.files, summary)
        return outcome

    def _interrupted(self, what: str) -> int:
        first = self.signals.first
        assert first is not None
        click.echo(f"interrupted ({signal_name(first)}) {what}: nothing applied", err=True)
        return exit_status(first)

    async def _steps(self, out: Output) -> SyncSummary | int:
        """Read, plan, show, ask, apply; stop at the first step that says so."""
        desired = await self._read()
        if desired is None:
            return self._interrupted("while reading the desired set")
        if not self._acceptable(desired):
            return EXIT_FAILED
        options = self.options

        async def seed(sandbox: Sandbox) -> None:
            seed_sync_demo(sandbox, desired.customizations, options.managed_tag)
            self.sandboxes.append(sandbox)

        async with session(self.connection, self.signals, seed) as client:
            plan = None if self.signals.received else await until_signal(
                self.signals, self._plan(client, desired)
            )
            if plan is None:
                return self._interrupted("before applying")
            writes = len(plan.create) + len(plan.update) + len(plan.delete)
            if options.plan_only or not writes:
                return EXIT_OK
            refusal = self._ask(writes)
            if refusal is not None:
                return refusal
            batch = self.connection.batch
            with out.progress("sync", writes, "items") as tracker:
                job = SyncJob(
                    client, plan, desired.lines, self.files.failures, tracker,
                    bulk=options.bulk, concurrency=batch.concurrency, rate=batch.rate,
                    journal=self.files.journal, signals=self.signals,
                )
                summary = await job.run()
            self._describe_sandboxes()
            return summary

    async def _read(self) -> Desired | None:
        """The whole desired set, read in a thread; None when a signal came first."""
        desired = Desired()
        reader = LineReader(self.files.source.stream, to_parsed_body)
        reader.start()
        try:
            with self.signals.listening(lambda count, signum: reader.stop(INTERRUPTED)):
                while (chunk := await reader.next_chunk()) is not None:
                    for item in chunk.items:
                        desired.add(item, self.files.failures)
            if self.signals.received:
                return None
            end = await reader.ended()
        finally:
            reader.close()
        if end.error is not None:
            raise click.ClickException(f"could not read {self.files.source.name}: {end.error}")
        return desired

    def _acceptable(self, desired: Desired) -> bool:
        """Refuse a desired set with any bad line, or an empty one that would prune all."""
        if desired.refused:
            click.echo(
                f"refusing to sync: {desired.refused:,} of {desired.lines_read:,} lines are "
                "invalid or repeat a key, and a plan from part of the desired set could "
                "delete good customizations. Nothing was sent. Every such line is in "
                f"{self.files.failures.path}:",
                err=True,
            )
            for problem in desired.problems:
                click.echo(f"  {problem}", err=True)
            return False
        options = self.options
        if options.prune and not desired.lines_read and not options.allow_empty:
            click.echo(
                f"Error: {self.files.source.name} holds no customizations: with --prune that "
                f"would delete every customization tagged {options.managed_tag}; nothing was "
                "sent (--allow-empty if that is what you want)",
                err=True,
            )
            return False
        return True

    async def _plan(self, client: LuigisBoxClient, desired: Desired) -> SyncPlan:
        """The plan, printed.

        Raises:
            TargetError: it cannot be made (planning only reads: any failure says what is
                wrong with the target, see ``probe``).
        """
        options = self.options
        try:
            plan = await plan_sync(
                client, desired.customizations, managed_tag=options.managed_tag,
                prune=options.prune, allow_empty=options.allow_empty,
            )
        except LuigisBoxError as exc:
            raise failed("plan", exc, Where.of(client)) from None
        if not self.verbosity.quiet:
            print_plan(plan_rows(plan, None if self.verbosity.verbose else PREVIEW))
        return plan

    def _ask(self, writes: int) -> int | None:
        """None to go ahead; else the exit code of a refusal."""
        if self.confirm is None:
            return None
        answer = self.confirm(f"Apply these {writes:,} writes?")
        if answer is None:  # Ctrl-C: the prompt's line is still open
            click.echo("\ninterrupted: nothing applied", err=True)
            return EXIT_INTERRUPTED
        if not answer:
            click.echo("nothing applied", err=True)
            return EXIT_FAILED
        return None

    def _describe_sandboxes(self) -> None:
        tag = self.options.managed_tag
        for sandbox in self.sandboxes:
            tagged = sum(tag in c["tags"] for c in sandbox.store.values())
            log.info(
                "the sandbox now holds %d customizations tagged %s and %d without the tag, "
                "untouched", tagged, tag, len(sandbox.store) - tagged,
            )


def sync_command(
    ctx: click.Context,
    file: Path,
    options: SyncOptions,
    *,
    batch: BatchOptions,
    files: FileOptions,
    target: TargetOptions,
    verbosity: Verbosity,
    interactive: bool,
    confirm: Callable[[str], bool | None],
) -> NoReturn:
    """Check, open, run and end one sync; ``interactive``: someone could answer ``confirm``."""
    stdin = str(file) == "-"
    failures_path = files.failures_path(file, "sync-failed.jsonl")
    if not (options.plan_only or options.yes) and (stdin or not interactive):
        raise click.UsageError(
            "refusing to write without a confirmation, and stdin is not a terminal to ask "
            "on: pass --yes to apply the plan, or --plan-only to print it"
        )
    connection = Connection(target.resolve(), batch, target.preflight)
    with output(verbosity) as out, open_input(file) as stream:
        source = InputFile.of(stream, "stdin" if stdin else str(file))
        with open_failures(failures_path, source) as failures:
            journal_path = files.journal_path(file, source, "sync.journal")
            journal = (
                open_sync_journal(journal_path, source, failures, managed_tag=options.managed_tag)
                if journal_path is not None and not options.plan_only
                else None
            )
            run = SyncRun(
                connection, JobFiles(source, failures, journal), options,
                confirm=None if options.yes else confirm, verbosity=verbosity,
            )
            outcome = run_loop(run.run(out))
    if isinstance(outcome, int):
        ctx.exit(outcome)
    again = shlex.join(["luigis-async", "sync", str(file), "--managed-tag", options.managed_tag])
    advice = Advice(
        again=f"{again} (it plans afresh from what the server holds)",
        retry=f"the writes not applied are in {failures_path}; to retry them, sync again "
        f"({again}): it plans afresh from what the server holds",
    )
    finish(ctx, outcome, advice, quiet=verbosity.quiet)

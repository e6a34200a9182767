"""How a writing command runs, once its files are checked: one event loop, start to end.

SIGINT, SIGTERM and SIGHUP are handled on that loop from before the first request until
the failures file is fsync'd and closed and the journal closed (and removed, when the run
finished), so no signal can cut those writes short. ``push`` runs its one job here;
``sync`` reads its desired set (in a thread), plans, asks, then applies.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import attrs
import click

from ..client import LuigisBoxClient
from ..errors import AuthenticationError, LuigisBoxError
from ..jsonl import FailuresFile, read_updates, to_parsed_body
from ..retry import RetryPolicy
from ..sandbox import Sandbox
from ..sync import SyncPlan, plan_sync
from .connect import Credentials, SandboxTarget, connect
from .job import JobSummary
from .journal import Journal
from .outcome import EXIT_AUTH, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, INTERRUPTED
from .plan import PREVIEW, plan_rows, print_plan
from .preflight import InputFile
from .progress import Output
from .push import PushSummary, push, seed_sandbox
from .reader import LineReader
from .signals import Signals, exit_status, signal_name
from .sync import Desired, SyncSummary, apply, seed_demo

__all__ = ["Batch", "CredentialError", "PushRun", "SyncRun", "close_files"]

log = logging.getLogger("luigis_async.cli")

T = TypeVar("T")


class CredentialError(click.ClickException):
    """Missing or rejected credentials: exit 2, like a usage error."""

    exit_code = EXIT_AUTH


async def close_files(
    failures: FailuresFile, journal: Journal | None, summary: JobSummary | None
) -> None:
    """fsync and close the failures file, then close the journal.

    The journal is removed only when the run finished and the failures file is safely on
    disk: until then it is what a resumed run needs.
    """
    await asyncio.to_thread(failures.sync)
    failures.close(completed=summary is not None)
    if summary is not None:
        summary.failures_written = failures.count
        if failures.error is not None and summary.failures_error is None:
            summary.failures_error = failures.error.strerror or str(failures.error)
    if journal is not None:
        finished = summary is not None and summary.finished and failures.error is None
        await journal.close(remove=finished)


@attrs.frozen
class Batch:
    """How hard to push the API, and where."""

    target: Credentials | SandboxTarget
    retry: RetryPolicy
    concurrency: int
    rate: float | None


@attrs.define
class PushRun:
    """One ``push``: the checked files, the input, what to skip (``--resume``)."""

    batch: Batch
    source: InputFile
    failures: FailuresFile
    journal: Journal | None
    skip: Callable[[int], bool] | None
    #: The file, read again to seed a ``--sandbox`` (None for stdin).
    file: Path | None

    def _seed(self, sandbox: Sandbox) -> None:
        assert self.file is not None
        with self.file.open("rb") as again:
            seed_sandbox(sandbox, read_updates(again))

    async def run(self, out: Output, size: int | None) -> PushSummary:
        """Push every line; the files are closed (and the journal kept or removed) at the end."""
        batch = self.batch
        seed = self._seed if isinstance(batch.target, SandboxTarget) else None
        signals = Signals()
        summary: PushSummary | None = None
        with signals.installed():
            if self.journal is not None:
                self.journal.start()
            try:
                async with connect(
                    batch.target, seed=seed, retry=batch.retry, max_connections=batch.concurrency
                ) as client:
                    with out.progress("push", size, "bytes") as tracker:
                        summary = await push(
                            client, self.source.stream, self.failures, tracker,
                            skip=self.skip, journal=self.journal, signals=signals,
                            concurrency=batch.concurrency, rate=batch.rate,
                        )
            finally:
                await close_files(self.failures, self.journal, summary)
        assert summary is not None
        return summary


async def _until_signal(signals: Signals, work: Awaitable[T]) -> T | None:
    """``work``'s result; None when a signal came first (``work`` is then cancelled)."""
    task = asyncio.ensure_future(work)
    with signals.listening(lambda count, signum: task.cancel()):
        try:
            return await task
        except asyncio.CancelledError:
            if not signals.received:
                raise
            return None


@attrs.define
class SyncRun:
    """One ``sync``: read the desired set, plan, show, ask, apply."""

    batch: Batch
    source: InputFile
    failures: FailuresFile
    journal: Journal | None
    managed_tag: str
    prune: bool
    allow_empty: bool
    plan_only: bool
    #: Asks before applying; None: apply without asking (``--yes``).
    confirm: Callable[[str], bool | None] | None
    verbose: bool
    quiet: bool
    signals: Signals = attrs.Factory(Signals)
    sandboxes: list[Sandbox] = attrs.Factory(list)

    async def run(self, out: Output) -> SyncSummary | int:
        """The summary of the apply, or an exit code when nothing was applied."""
        summary: SyncSummary | None = None
        with self.signals.installed():
            if self.journal is not None:
                self.journal.start()
            try:
                outcome = await self._steps(out)
                # An exit code: nothing was applied, so the journal has nothing to keep.
                summary = outcome if isinstance(outcome, SyncSummary) else SyncSummary()
            finally:
                await close_files(self.failures, self.journal, summary)
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

        def seed(sandbox: Sandbox) -> None:
            seed_demo(sandbox, desired.customizations, self.managed_tag)
            self.sandboxes.append(sandbox)

        batch = self.batch
        async with connect(
            batch.target, seed=seed, retry=batch.retry, max_connections=batch.concurrency
        ) as client:
            plan = await _until_signal(self.signals, self._plan(client, desired))
            if plan is None:
                return self._interrupted("while planning")
            if isinstance(plan, int):
                return plan
            writes = len(plan.create) + len(plan.update) + len(plan.delete)
            if self.plan_only or not writes:
                return EXIT_OK
            answer = self._ask(writes)
            if answer is not None:
                return answer
            with out.progress("sync", writes, "items") as tracker:
                summary = await apply(
                    client, plan, desired.lines, self.failures, tracker,
                    journal=self.journal, signals=self.signals,
                    concurrency=batch.concurrency, rate=batch.rate,
                )
            self._describe_sandboxes()
            return summary

    async def _read(self) -> Desired | None:
        """The whole desired set, read in a thread; None when a signal came first."""
        desired = Desired()
        reader = LineReader(self.source.stream, to_parsed_body)
        reader.start()
        try:
            with self.signals.listening(lambda count, signum: reader.stop(INTERRUPTED)):
                while (chunk := await reader.next_chunk()) is not None:
                    for item in chunk.items:
                        desired.add(item, self.failures)
            if self.signals.received:
                return None
            end = await reader.ended()
        finally:
            reader.close()
        if end.error is not None:
            raise click.ClickException(f"could not read {self.source.name}: {end.error}")
        return desired

    def _acceptable(self, desired: Desired) -> bool:
        """Refuse a desired set with any bad line, or an empty one that would prune all."""
        if desired.refused:
            click.echo(
                f"refusing to sync: {desired.refused:,} of {desired.lines_read:,} lines are "
                "invalid or repeat a key, and a plan from part of the desired set could "
                "delete good customizations. Nothing was sent. Every such line is in "
                f"{self.failures.path}:",
                err=True,
            )
            for problem in desired.problems:
                click.echo(f"  {problem}", err=True)
            return False
        if self.prune and not desired.lines_read and not self.allow_empty:
            click.echo(
                f"Error: {self.source.name} holds no customizations: with --prune that "
                f"would delete every customization tagged {self.managed_tag}; nothing was "
                "sent (--allow-empty if that is what you want)",
                err=True,
            )
            return False
        return True

    async def _plan(self, client: LuigisBoxClient, desired: Desired) -> SyncPlan | int:
        """The plan, printed; an exit code when it cannot be made."""
        try:
            plan = await plan_sync(
                client, desired.customizations, managed_tag=self.managed_tag,
                prune=self.prune, allow_empty=self.allow_empty,
            )
        except AuthenticationError as exc:
            raise CredentialError(f"the server rejected the credentials: {exc.reason}") from None
        except LuigisBoxError as exc:
            log.error("could not plan: %s", exc)
            return EXIT_FAILED
        if not self.quiet:
            print_plan(plan_rows(plan, None if self.verbose else PREVIEW))
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
        tag = self.managed_tag
        for sandbox in self.sandboxes:
            tagged = sum(tag in c["tags"] for c in sandbox.store.values())
            log.info(
                "the sandbox now holds %d customizations tagged %s and %d without the tag, "
                "untouched", tagged, tag, len(sandbox.store) - tagged,
            )

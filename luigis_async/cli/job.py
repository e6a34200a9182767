"""The writing jobs' runner: phases of actions through ``BatchUpdater``, none of them lost.

Push and sync both run here. A job is a sequence of phases (push: one, the input read in a
thread; sync: creates, then updates, then deletes), each an iterable of actions that carry
the ``item`` to send. Each phase is one ``BatchUpdater.start()`` run of the job's updater (a
stream starts afresh: new pacer, no stop reason). The updater numbers the items it pulls
(``UpdateResult.index``), so a dict from index to action, holding only the actions in
flight, maps each result back to its action: memory stays flat however long a lazy phase.
The journal gets each result from the updater's ``on_result`` (in the worker, before it
takes its next item) and is written before each item is handed out, so a kill can find
at most the requests in flight missing from it.

A stop (the first SIGINT, SIGTERM or SIGHUP, a fail-fast stop of the updater, or a
failures file or journal that cannot be written): the requests in flight finish, nothing
more is sent, no later phase starts. A second signal cancels the requests in flight too;
later ones are only logged. Cancelled from outside (where no handler can be set): the
same, then the cancellation goes on. Either way every action that did not end applied is
written to the failures file: failed, cancelled in flight, or never sent; and each action
that finished is in the journal, if there is one, for a run killed before all that.
"""

from __future__ import annotations

import abc
import asyncio
import itertools
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path
from typing import Generic, Protocol, TypeVar

import attrs

from ..batch import DEFAULT_CONCURRENCY, BatchItem, BatchRun, BatchUpdater, UpdateResult
from ..client import LuigisBoxClient
from ..errors import AuthenticationError, LuigisBoxError
from ..jsonl import FailuresFile
from .journal import APPLIED, FAILED, Journal
from .outcome import (
    CANCELLED_IN_FLIGHT,
    EXIT_AUTH,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    INTERRUPTED,
    failure_reason,
    format_rows,
)
from .progress import Tracker
from .signals import Signals, exit_status, signal_name

__all__ = ["Action", "Job", "JobSummary"]

log = logging.getLogger("luigis_async.cli")


@attrs.define
class JobSummary(abc.ABC):
    """The totals every job keeps; ``failed`` counts by reason group."""

    failed: Counter[str] = attrs.Factory(Counter)
    not_attempted: int = 0
    retries: int = 0
    elapsed: float = 0.0
    stop_reason: str | None = None
    interrupted: bool = False
    #: The server's reason when it rejected the credentials (401).
    auth_error: str | None = None
    failures_path: Path | None = None
    failures_written: int = 0
    #: The first signal received (SIGINT, SIGTERM, SIGHUP), which sets the exit status.
    signal_number: int | None = None
    #: Why the failures file could not be written, and how many records it is missing.
    failures_error: str | None = None
    failures_unwritten: int = 0
    journal_path: Path | None = None
    #: Why the journal could not be written (it stays correct, if incomplete).
    journal_error: str | None = None
    #: Why the input could not be read to its end.
    input_error: str | None = None

    @property
    def failed_total(self) -> int:
        return sum(self.failed.values())

    @property
    def finished(self) -> bool:
        """True when the run got to its end and wrote everything: no journal is needed."""
        errors = (self.failures_error, self.journal_error, self.input_error, self.stop_reason)
        return not self.interrupted and all(error is None for error in errors)

    @property
    @abc.abstractmethod
    def complete(self) -> bool:
        """True when everything the job had to do was applied."""

    @abc.abstractmethod
    def format(self) -> str:
        """The human summary printed at the end of the run, numbers right-aligned."""

    @property
    def exit_code(self) -> int:
        """128 + the signal (130 Ctrl-C, 143 SIGTERM), 2 credentials rejected, 1 anything
        not applied (or not written), else 0."""
        if self.interrupted:
            return exit_status(self.signal_number) if self.signal_number else EXIT_INTERRUPTED
        if self.auth_error is not None:
            return EXIT_AUTH
        return EXIT_OK if self.complete and self.finished else EXIT_FAILED

    def table(
        self,
        head: list[tuple[str, str, str]],
        *,
        done: int,
        per: str,
        written: str,
        sent: bool = True,
    ) -> str:
        """The summary printed at the end: ``head``, failures by group, then how it went.

        ``done`` accounted for, in ``per`` a second; the failures file holds ``written``.
        A job that ``sent`` nothing has no "not attempted" and no "retries".
        """
        by_count = sorted(self.failed.items(), key=lambda item: (-item[1], item[0]))
        rows = head + [(f"  {reason}", f"{count:,}", "") for reason, count in by_count]
        if sent:
            stopped = f"({self.stop_reason})" if self.stop_reason else ""
            rows += [
                ("not attempted", f"{self.not_attempted:,}", stopped),
                ("retries", f"{self.retries:,}", ""),
            ]
        rate = done / self.elapsed if self.elapsed > 0 else 0.0
        rows += [("elapsed", f"{self.elapsed:.2f}", "s"), ("rate", f"{rate:,.0f}", f"{per}/s")]
        if self.failures_written:
            rows.append(
                ("failures", f"{self.failures_written:,}", f"{written} in {self.failures_path}")
            )
        return format_rows(rows)


class Action(Protocol):
    """One write of a job; its ``str`` names it in the log, e.g. ``line 7``."""

    @property
    def item(self) -> BatchItem: ...


A = TypeVar("A", bound=Action)
S = TypeVar("S", bound=JobSummary)


class Job(abc.ABC, Generic[A, S]):
    """One run of phases; a subclass says how to count, write and show what differs."""

    def __init__(
        self,
        client: LuigisBoxClient,
        phases: Iterable[Iterable[A]],
        summary: S,
        failures: FailuresFile,
        tracker: Tracker,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        rate: float | None = None,
        journal: Journal | None = None,
        signals: Signals | None = None,
    ) -> None:
        self.updater = BatchUpdater(
            client, concurrency=concurrency, rate_limit=rate, on_result=self._finished
        )
        self.summary = summary
        self.failures = failures
        self.tracker = tracker
        self.journal = journal
        self.signals = signals if signals is not None else Signals()
        self.phases: Iterator[Iterable[A]] = iter(phases)  # those not started
        self.unread: Iterator[A] = iter(())  # the running phase's actions not yet sent
        self.held: list[A] = []  # taken from ``unread`` as the job stopped: never sent
        self.in_flight: dict[int, A] = {}
        self.stop_reason: str | None = None
        self._run: BatchRun | None = None  # the running phase's
        self._task: asyncio.Task[None] | None = None
        if journal is not None:
            summary.journal_path = journal.path
            journal.on_error = self._journal_failed

    @abc.abstractmethod
    def applied(self, action: A) -> None:
        """Count an action applied."""

    @abc.abstractmethod
    def group(self, action: A, error: LuigisBoxError) -> str:
        """The summary group a failed action is counted in."""

    @abc.abstractmethod
    def write(self, action: A, reason: str) -> None:
        """Write an action not applied to the failures file."""

    @abc.abstractmethod
    def key(self, action: A) -> str:
        """The action's key in the journal: a line number, ``create:12``, ..."""

    @abc.abstractmethod
    def show(self) -> None:
        """Update the progress tracker."""

    def stopping(self) -> None:
        """Called once when the job stops, e.g. to stop reading the input."""

    def stop(self, reason: str) -> None:
        """Send nothing more: the requests in flight finish, the rest is written not sent."""
        if self.stop_reason is None:
            self.stop_reason = reason
            if self._run is not None:
                self._run.stop(reason)
            self.stopping()

    def _halted(self) -> bool:
        """Whether the job stopped; a stop of the updater itself (fail fast) stops it too."""
        run = self._run
        if self.stop_reason is None and run is not None and run.stop_reason is not None:
            self.stop(run.stop_reason)
        return self.stop_reason is not None

    def _why(self) -> str:
        self._halted()
        return self.stop_reason or (INTERRUPTED if self.summary.interrupted else "aborted")

    def _next_phase(self) -> bool:
        """Start the next phase; False when there is none."""
        phase = next(self.phases, None)
        if phase is None:
            return False
        self.unread = iter(phase)
        return True

    def _items(self) -> Iterator[BatchItem] | AsyncIterator[BatchItem]:
        """The running phase's items; the updater's n-th pull is ``UpdateResult.index`` n."""
        return self._phase_items()

    def _phase_items(self) -> Iterator[BatchItem]:
        for index, action in enumerate(self.unread):
            if self._halted():
                self.held.append(action)
                return
            self.flush_journal()
            self.in_flight[index] = action
            yield action.item

    def flush_journal(self) -> None:
        """Write the journal's queued entries: called before each item is handed out, so
        no new request starts while a finished one is missing from the journal."""
        if self.journal is not None:
            self.journal.flush()

    def _finished(self, result: UpdateResult) -> None:
        """Journal a result as soon as the updater has it, before its worker goes on."""
        action = self.in_flight.get(result.index)
        if action is None or self.journal is None:
            return
        if result.ok:
            self.journal.record(APPLIED, self.key(action))
        elif result.error is not None:
            self.journal.record(FAILED, self.key(action))

    async def _run_phases(self) -> None:
        while not self._halted() and self._next_phase():
            async with self.updater.start(self._items()) as run:
                self._run = run
                async for result in run:
                    self._record(result)

    def _record(self, result: UpdateResult) -> None:
        """Count, log and (if not applied) write one result, back on its action."""
        action = self.in_flight.pop(result.index)
        summary = self.summary
        summary.retries += max(0, result.attempts - 1)
        if result.ok:
            self.applied(action)
            log.debug("%s: applied (%d attempts)", action, result.attempts)
        elif result.error is None:
            summary.not_attempted += 1
            self.write(action, f"not attempted: {self._why()}")
        else:
            if isinstance(result.error, AuthenticationError) and summary.auth_error is None:
                summary.auth_error = result.error.reason
            summary.failed[self.group(action, result.error)] += 1
            reason = failure_reason(result)
            log.debug("%s: %s", action, reason)
            self.write(action, reason)
        self.check_writes()
        self._halted()
        self.show()

    def journal_entry(self, outcome: str, key: str) -> None:
        if self.journal is not None:
            self.journal.record(outcome, key)

    def check_writes(self) -> None:
        """A failures file that can no longer be written stops the job like a Ctrl-C."""
        error = self.failures.error
        if error is not None and self.summary.failures_error is None:
            self.summary.failures_error = error.strerror or str(error)
            log.error("cannot write the failures file %s: %s", self.failures.path, error)
            self.stop(f"cannot write the failures file: {self.summary.failures_error}")

    def _journal_failed(self, error: OSError) -> None:
        self.summary.journal_error = error.strerror or str(error)
        self.stop(f"cannot write the journal: {self.summary.journal_error}")

    def _on_signal(self, count: int, signum: int) -> None:
        """First: stop. Second: cancel the requests in flight. Later: only say so."""
        name = signal_name(signum)
        if count == 1:
            self.summary.interrupted = True
            self.summary.signal_number = signum
            log.warning(
                "interrupted: finishing the requests in flight, then writing the failures "
                "file (%s; Ctrl-C again to cancel the requests in flight)", name,
            )
            self.stop(INTERRUPTED)
        elif count == 2 and self._task is not None and not self._task.done():
            log.warning("%s again: cancelling the requests in flight", name)
            self._task.cancel()
        else:
            log.warning("%s: already stopping, writing the failures file", name)

    async def run(self) -> S:
        """Run every phase; the summary, once every action is accounted for."""
        started = time.monotonic()
        self._task = task = asyncio.create_task(self._run_phases())
        with self.signals.listening(self._on_signal):
            try:
                await asyncio.wait([task])
            except asyncio.CancelledError:  # from outside, where no signal handler can be set
                self.summary.interrupted = True
                task.cancel()
                await asyncio.wait([task])
                raise
            finally:
                await self._account_for_the_rest()
        if not task.cancelled() and (error := task.exception()) is not None:
            raise error
        summary = self.summary
        summary.failed = +summary.failed  # drop zero counts
        self._halted()
        summary.stop_reason = self.stop_reason
        summary.elapsed = time.monotonic() - started
        summary.failures_written = self.failures.count
        summary.failures_unwritten = self.failures.unwritten
        self.show()
        return summary

    async def _account_for_the_rest(self) -> None:
        """Write the actions never answered for: cancelled in flight, or never sent.

        Both are empty after a complete run; after a cancelled or failed one, this is what
        keeps "nothing lost" true.
        """
        self.summary.failed[CANCELLED_IN_FLIGHT] += len(self.in_flight)
        for action in self.in_flight.values():
            self.write(action, CANCELLED_IN_FLIGHT)
        self.in_flight.clear()
        await self.account_unread(f"not attempted: {self._why()}")
        self.check_writes()

    async def account_unread(self, reason: str) -> None:
        """Write the actions never sent: held at the stop, the phase's rest, later phases."""
        for action in itertools.chain(self.held, self.unread, *self.phases):
            self.summary.not_attempted += 1
            self.write(action, reason)
        self.held.clear()

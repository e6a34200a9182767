"""The writing jobs' engine: each result back to its action, none of them lost.

push, import and sync run here. A job hands its actions' items to a runner (a
``BatchUpdater`` run for push, ``BulkCreator`` for import, ``SyncApplier`` for sync) and
takes back one ``UpdateResult`` per item. As the runner takes an item, the job writes
the journal's queued entries (so no new request starts while a finished one is missing
from it) and keeps the action in ``in_flight`` until its result comes back; a result is
journaled as soon as the runner has it (for a batch, in its worker, before it takes its
next item), so a kill can find at most the requests in flight missing from the journal.

A stop (the first SIGINT, SIGTERM or SIGHUP; a fail fast of the runner, or of the job when
its first requests all say the target is wrong, see ``probe.py``; a failures file or
journal that cannot be written): the requests in flight finish, nothing more is sent. A
second signal cancels the requests in flight too; later ones are only logged. Cancelled
from outside (where no handler can be set): the same, then the cancellation goes on.
Either way every action that did not end applied is written to the failures file:
failed, cancelled in flight, or never sent.
"""

from __future__ import annotations

import abc
import asyncio
import logging
import time
from collections.abc import Hashable
from typing import Final, Generic, TypeVar

from ..batch import UpdateResult
from ..errors import LuigisBoxError
from ..jsonl import FailuresFile
from .journal import APPLIED, FAILED, Journal
from .outcome import CANCELLED_IN_FLIGHT, INTERRUPTED, failure_reason
from .probe import Watch, Where
from .progress import Snapshot, Tracker
from .signals import Signals, signal_name
from .summary import JobSummary

__all__ = ["Job"]

log: Final[logging.Logger] = logging.getLogger("luigis_async.cli")

A = TypeVar("A")


S = TypeVar("S", bound=JobSummary)


class Job(abc.ABC, Generic[A, S]):
    """One run of a job's actions; a subclass says how to drive its runner, and how to
    count, write and show its actions."""

    def __init__(
        self,
        summary: S,
        failures: FailuresFile,
        tracker: Tracker,
        where: Where,
        *,
        journal: Journal | None = None,
        signals: Signals | None = None,
    ) -> None:
        self.summary = summary
        self.failures = failures
        self.tracker = tracker
        self.where = where
        self.journal = journal
        self.signals: Signals = signals if signals is not None else Signals()
        #: Actions the runner took and has not answered for, by ``key_of`` their result.
        self.in_flight: dict[Hashable, A] = {}
        self.stop_reason: str | None = None
        self._task: asyncio.Task[None] | None = None
        self.watch: Watch = Watch(where)
        if journal is not None:
            summary.journal_path = journal.path
            journal.on_error = self._journal_failed

    # -- what each job says ----------------------------------------------------------------

    @abc.abstractmethod
    async def drive(self) -> None:
        """Run the runner over the actions' items, passing each result to ``record``."""

    @abc.abstractmethod
    def stop_runner(self, reason: str) -> None:
        """Tell the runner to send nothing more."""

    def runner_stop_reason(self) -> str | None:
        """Why the runner stopped by itself (a fail fast), if it did."""
        return None

    def key_of(self, result: UpdateResult) -> Hashable:
        """The ``in_flight`` key of the action ``result`` is for."""
        return result.index

    def untaken(self, result: UpdateResult) -> A:
        """The action of a result for an item the runner never took (see sync)."""
        raise KeyError(result.index)

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
    def done(self) -> int:
        """How far the job is, in the unit of its progress total (bytes or items)."""

    @abc.abstractmethod
    async def account_unsent(self, reason: str) -> None:
        """Write the actions the runner never took (after a stop or a cancellation)."""

    def stopping(self) -> None:
        """Called once when the job stops, e.g. to stop reading the input."""

    def requests_in_flight(self) -> int:
        """What the display calls in flight: the actions taken and not answered."""
        return len(self.in_flight)

    # -- the engine --------------------------------------------------------------------

    def stop(self, reason: str) -> None:
        """Send nothing more: the requests in flight finish, the rest is written not sent."""
        if self.stop_reason is None:
            self.stop_reason = reason
            self.stop_runner(reason)
            self.stopping()

    def halted(self) -> bool:
        """Whether the job stopped; a stop of the runner itself (fail fast) stops it too."""
        if self.stop_reason is None and (reason := self.runner_stop_reason()) is not None:
            self.stop(reason)
        return self.stop_reason is not None

    def why(self) -> str:
        self.halted()
        return self.stop_reason or (INTERRUPTED if self.summary.interrupted else "aborted")

    def take(self, key: Hashable, action: A) -> None:
        """The runner takes ``action``: write the journal's queued entries first, so no
        new request starts while a finished one is missing from the journal."""
        if self.journal is not None:
            self.journal.flush()
        self.in_flight[key] = action

    def finished(self, result: UpdateResult) -> None:
        """Journal a result, and watch what it says about the target, as soon as the runner
        has it (for a batch: in its worker, before it takes the next item)."""
        diagnosis = self.watch.see(result)
        if diagnosis is not None and self.summary.diagnosis is None:
            self.summary.diagnosis = diagnosis
            self.stop(diagnosis.problem)
        action = self.in_flight.get(self.key_of(result))
        if action is None or self.journal is None:
            return
        if result.ok:
            self.journal.record(APPLIED, self.key(action))
        elif result.error is not None:
            self.journal.record(FAILED, self.key(action))

    def record(self, result: UpdateResult) -> None:
        """Count, log and (if not applied) write one result, back on its action."""
        action = self.in_flight.pop(self.key_of(result), None)
        if action is None:
            action = self.untaken(result)
        summary = self.summary
        summary.retries += max(0, result.attempts - 1)
        if result.ok:
            self.applied(action)
            log.debug("%s: applied (%d attempts)", action, result.attempts)
        elif result.error is None:
            summary.not_attempted += 1
            self.write(action, f"not attempted: {self.why()}")
        else:
            self._failed(action, result, result.error)
        self.check_writes()
        self.halted()
        self.show()

    def _failed(self, action: A, result: UpdateResult, error: LuigisBoxError) -> None:
        self.summary.failed[self.group(action, error)] += 1
        reason = failure_reason(result)
        if result.attempts > 1:  # gave up after retries: worth a warning, naming the line
            log.warning("%s: not applied: %s", action, reason)
        else:
            log.debug("%s: %s", action, reason)
        self.write(action, reason)

    def show(self, *, force: bool = False) -> None:
        """Update the progress tracker with the job's true numbers."""
        s = self.summary
        self.tracker.update(
            Snapshot(
                done=self.done(),
                applied=s.applied_total,
                failed=s.failed_total,
                not_attempted=s.not_attempted,
                retries=s.retries,
                in_flight=self.requests_in_flight(),
                stopping=self.stop_reason is not None,
            ),
            force=force,
        )

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
        """Run the job; the summary, once every action is accounted for."""
        started = time.monotonic()
        self._task = task = asyncio.create_task(self.drive())
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
        self.halted()
        summary.stop_reason = self.stop_reason
        summary.elapsed = time.monotonic() - started
        summary.failures_written = self.failures.count
        summary.failures_unwritten = self.failures.unwritten
        self.show(force=True)
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
        await self.account_unsent(f"not attempted: {self.why()}")
        self.check_writes()

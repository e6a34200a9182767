"""The writing jobs' runner: phases of actions through ``BatchUpdater``, none of them lost.

Push and sync both run here. A job is a sequence of phases (push: one, read lazily; sync:
creates, then updates, then deletes), each an iterable of actions that carry the ``item``
to send. Each phase is one ``BatchUpdater.stream()`` of the job's updater (a stream starts
afresh: new pacer, no stop reason). The updater numbers the items it pulls
(``UpdateResult.index``), so a dict from index to action, holding only the actions in
flight, maps each result back to its action: memory stays flat however long a lazy phase.

Ctrl-C once: ``updater.stop("interrupted")``, the requests in flight finish, the rest of the
phase comes back not attempted and no later phase starts. Twice: the requests in flight are
cancelled too. Cancelled from outside (where no Ctrl-C handler can be set): the same, then
the cancellation goes on. Either way every action that did not end applied is written to
the failures file: failed, cancelled in flight, or never sent.
"""

from __future__ import annotations

import abc
import asyncio
import itertools
import logging
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Generic, Protocol, TypeVar

import attrs

from ..batch import BatchItem, BatchUpdater, UpdateResult
from ..errors import AuthenticationError, LuigisBoxError
from ..jsonl import FailuresFile
from .outcome import (
    CANCELLED_IN_FLIGHT,
    EXIT_AUTH,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    INTERRUPTED,
    failure_reason,
    format_rows,
    on_sigint,
)
from .progress import Tracker

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

    @property
    def failed_total(self) -> int:
        return sum(self.failed.values())

    @property
    @abc.abstractmethod
    def complete(self) -> bool:
        """True when everything the job had to do was applied."""

    @abc.abstractmethod
    def format(self) -> str:
        """The human summary printed at the end of the run, numbers right-aligned."""

    @property
    def exit_code(self) -> int:
        """130 interrupted, 2 credentials rejected, 1 anything not applied, else 0."""
        if self.interrupted:
            return EXIT_INTERRUPTED
        if self.auth_error is not None:
            return EXIT_AUTH
        return EXIT_OK if self.complete else EXIT_FAILED

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
        updater: BatchUpdater,
        phases: Iterable[Iterable[A]],
        summary: S,
        failures: FailuresFile,
        tracker: Tracker,
    ) -> None:
        self.updater = updater
        self.summary = summary
        self.failures = failures
        self.tracker = tracker
        self.phases: Iterator[Iterable[A]] = iter(phases)  # those not started
        self.unread: Iterator[A] = iter(())  # the running phase's actions not yet sent
        self.in_flight: dict[int, A] = {}
        self.interrupts = 0

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
    def show(self) -> None:
        """Update the progress tracker."""

    def _items(self) -> Iterator[BatchItem]:
        """The running phase's items; the updater's n-th pull is ``UpdateResult.index`` n."""
        for index, action in enumerate(self.unread):
            self.in_flight[index] = action
            yield action.item

    async def _run_phases(self) -> None:
        updater = self.updater
        while updater.stop_reason is None and (phase := next(self.phases, None)) is not None:
            self.unread = iter(phase)
            async for result in updater.stream(self._items()):
                self._record(result)

    def _record(self, result: UpdateResult) -> None:
        action = self.in_flight.pop(result.index)
        summary = self.summary
        summary.retries += max(0, result.attempts - 1)
        if result.ok:
            self.applied(action)
            log.debug("%s: applied (%d attempts)", action, result.attempts)
        elif result.error is None:
            summary.not_attempted += 1
            self.write(action, f"not attempted: {self.updater.stop_reason}")
        else:
            if isinstance(result.error, AuthenticationError) and summary.auth_error is None:
                summary.auth_error = result.error.reason
            summary.failed[self.group(action, result.error)] += 1
            reason = failure_reason(result)
            log.debug("%s: %s", action, reason)
            self.write(action, reason)
        self.show()

    def _interrupt(self, task: asyncio.Task[None]) -> None:
        self.interrupts += 1
        self.summary.interrupted = True
        if self.interrupts == 1:
            log.warning(
                "interrupted: finishing the requests in flight, then writing the failures "
                "file (Ctrl-C again to cancel the requests in flight)"
            )
            self.updater.stop(INTERRUPTED)
        elif self.interrupts == 2:
            log.warning("cancelling the requests in flight")
            task.cancel()

    async def run(self) -> S:
        """Run every phase; the summary, once every action is accounted for."""
        started = time.monotonic()
        task = asyncio.create_task(self._run_phases())
        try:
            with on_sigint(lambda: self._interrupt(task)):
                await asyncio.wait([task])
        except asyncio.CancelledError:  # from outside, e.g. Ctrl-C where no handler can be set
            self.summary.interrupted = True
            task.cancel()
            await asyncio.wait([task])
            raise
        finally:
            self._account_for_the_rest()
        if not task.cancelled() and (error := task.exception()) is not None:
            raise error
        summary = self.summary
        summary.failed = +summary.failed  # drop zero counts
        summary.stop_reason = self.updater.stop_reason
        summary.elapsed = time.monotonic() - started
        summary.failures_written = self.failures.count
        self.show()
        return summary

    def _account_for_the_rest(self) -> None:
        """Write the actions never answered for: cancelled in flight, or never sent.

        Both are empty after a complete run; after a cancelled or failed one, this is what
        keeps "nothing lost" true.
        """
        self.summary.failed[CANCELLED_IN_FLIGHT] += len(self.in_flight)
        for action in self.in_flight.values():
            self.write(action, CANCELLED_IN_FLIGHT)
        self.in_flight.clear()
        why = self.updater.stop_reason or (INTERRUPTED if self.summary.interrupted else "aborted")
        try:
            for action in itertools.chain(self.unread, *self.phases):
                self.summary.not_attempted += 1
                self.write(action, f"not attempted: {why}")
        except OSError as exc:
            log.error("could not read the rest of the input: %s", exc)

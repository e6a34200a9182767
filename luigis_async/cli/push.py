"""The push job: JSON Lines in, one ``BatchUpdater`` run, every result back to its line.

Lines are parsed lazily and only valid updates reach the updater; the updater numbers the
items it pulls (``UpdateResult.index``), so a dict from index to line, holding only the
items in flight, maps each result back to its line number and text. Memory stays flat
however long the file. Every line that does not end applied goes to the failures file.

Ctrl-C once: ``updater.stop("interrupted")``, requests in flight finish and the rest of
the input comes back not attempted. Twice: the requests in flight are cancelled too; their
lines and the unread rest of the input are written as well. Either way nothing is lost.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Final

import attrs

from ..batch import DEFAULT_CONCURRENCY, BatchUpdater, UpdateResult
from ..client import LuigisBoxClient
from ..errors import AuthenticationError
from ..jsonl import FailuresFile, Line, ParsedLine
from ..models import CustomizationUpdate
from ..sandbox import Sandbox
from .outcome import (
    CANCELLED_IN_FLIGHT,
    EXIT_AUTH,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    INTERRUPTED,
    failure_group,
    failure_reason,
    format_rows,
    on_sigint,
)
from .progress import Tracker

__all__ = [
    "PLACEHOLDER",
    "PushSummary",
    "dry_run",
    "push",
    "seed_sandbox",
]

log = logging.getLogger("luigis_async.cli")

#: The body a sandbox holds for each ID of the file before ``push --sandbox`` replaces it.
PLACEHOLDER: Final = {"model": "placeholder", "target_type": "all", "pin_definitions": []}


@attrs.define
class PushSummary:
    """The totals of one push (or dry run); ``failed`` counts lines by reason group."""

    applied: int = 0
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
    dry_run: bool = False

    @property
    def failed_total(self) -> int:
        return sum(self.failed.values())

    @property
    def lines(self) -> int:
        """Non-blank lines accounted for."""
        return self.applied + self.failed_total + self.not_attempted

    @property
    def exit_code(self) -> int:
        """130 interrupted, 2 credentials rejected, 1 any line not applied, else 0."""
        if self.interrupted:
            return EXIT_INTERRUPTED
        if self.auth_error is not None:
            return EXIT_AUTH
        return EXIT_OK if self.lines == self.applied else EXIT_FAILED

    def format(self) -> str:
        """The human summary printed at the end of the run, numbers right-aligned."""
        applied, failed = ("valid", "invalid") if self.dry_run else ("applied", "failed")
        rows = [(applied, f"{self.applied:,}", ""), (failed, f"{self.failed_total:,}", "")]
        by_count = sorted(self.failed.items(), key=lambda item: (-item[1], item[0]))
        rows += [(f"  {reason}", f"{count:,}", "") for reason, count in by_count]
        if not self.dry_run:
            stopped = f"({self.stop_reason})" if self.stop_reason else ""
            rows += [
                ("not attempted", f"{self.not_attempted:,}", stopped),
                ("retries", f"{self.retries:,}", ""),
            ]
        rate = self.lines / self.elapsed if self.elapsed > 0 else 0.0
        rows += [("elapsed", f"{self.elapsed:.2f}", "s"), ("rate", f"{rate:,.0f}", "lines/s")]
        if self.failures_written:
            rows.append(
                ("failures", f"{self.failures_written:,}", f"lines in {self.failures_path}")
            )
        return format_rows(rows)


class _Push:
    """The state of one push: the lines in flight and the totals."""

    def __init__(
        self,
        updater: BatchUpdater,
        parsed: Iterable[ParsedLine],
        failures: FailuresFile,
        tracker: Tracker,
    ) -> None:
        self.updater = updater
        self.failures = failures
        self.tracker = tracker
        self.summary = PushSummary(failures_path=failures.path)
        self.in_flight: dict[int, Line] = {}
        self.consumed = 0  # bytes of input read so far
        self.interrupts = 0
        self.valid = self._valid(parsed)

    def _valid(self, parsed: Iterable[ParsedLine]) -> Iterator[ParsedLine]:
        """The valid lines; invalid ones are recorded on the way."""
        for item in parsed:
            self.consumed = item.line.end
            if item.error is None:
                yield item
                continue
            log.debug("line %d: %s", item.line.number, item.error.reason)
            self.summary.failed[item.error.kind] += 1
            self.failures.write(item.line, item.error.reason)
            self._show()

    def items(self) -> Iterator[CustomizationUpdate]:
        """What the updater consumes; its n-th pull is index n, as ``UpdateResult.index``."""
        for index, item in enumerate(self.valid):
            assert item.update is not None
            self.in_flight[index] = item.line
            yield item.update

    def record(self, result: UpdateResult) -> None:
        line = self.in_flight.pop(result.index)
        summary = self.summary
        summary.retries += max(0, result.attempts - 1)
        if result.ok:
            summary.applied += 1
            log.debug("line %d: applied (%d attempts)", line.number, result.attempts)
        elif result.error is None:
            summary.not_attempted += 1
            self.failures.write(line, f"not attempted: {self.updater.stop_reason}")
        else:
            if isinstance(result.error, AuthenticationError) and summary.auth_error is None:
                summary.auth_error = result.error.reason
            summary.failed[failure_group(result.error)] += 1
            reason = failure_reason(result)
            log.debug("line %d: %s", line.number, reason)
            self.failures.write(line, reason)
        self._show()

    def _show(self) -> None:
        s = self.summary
        self.tracker.update(
            self.consumed, applied=s.applied, failed=s.failed_total + s.not_attempted
        )

    def interrupt(self, consume: asyncio.Task[None]) -> None:
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
            consume.cancel()

    async def consume(self) -> None:
        async for result in self.updater.stream(self.items()):
            self.record(result)

    async def run(self) -> PushSummary:
        started = time.monotonic()
        consume = asyncio.create_task(self.consume())
        try:
            with on_sigint(lambda: self.interrupt(consume)):
                await asyncio.wait([consume])
        except asyncio.CancelledError:  # from outside, e.g. Ctrl-C where no handler can be set
            self.summary.interrupted = True
            consume.cancel()
            await asyncio.wait([consume])
            raise
        finally:
            self._account_for_the_rest()
        if not consume.cancelled() and (error := consume.exception()) is not None:
            raise error
        self.summary.failed = +self.summary.failed  # drop zero counts
        self.summary.stop_reason = self.updater.stop_reason
        self.summary.elapsed = time.monotonic() - started
        self.summary.failures_written = self.failures.count
        self._show()
        return self.summary

    def _account_for_the_rest(self) -> None:
        """Write the lines the updater never answered for, and the unread rest of the input.

        Both are empty after a complete run; after a cancelled or failed one, this is what
        keeps "nothing lost" true.
        """
        self.summary.failed[CANCELLED_IN_FLIGHT] += len(self.in_flight)
        self.failures.write_all(self.in_flight.values(), CANCELLED_IN_FLIGHT)
        self.in_flight.clear()
        why = self.updater.stop_reason or (INTERRUPTED if self.summary.interrupted else "aborted")
        try:
            for item in self.valid:
                self.summary.not_attempted += 1
                self.failures.write(item.line, f"not attempted: {why}")
        except OSError as exc:
            log.error("could not read the rest of the input: %s", exc)


async def push(
    client: LuigisBoxClient,
    parsed: Iterable[ParsedLine],
    failures: FailuresFile,
    tracker: Tracker,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    rate: float | None = None,
) -> PushSummary:
    """Apply every valid line through one BatchUpdater; record every other line."""
    updater = BatchUpdater(client, concurrency=concurrency, rate_limit=rate)
    return await _Push(updater, parsed, failures, tracker).run()


def dry_run(parsed: Iterable[ParsedLine], failures: FailuresFile, tracker: Tracker) -> PushSummary:
    """Validate every line and record the invalid ones; nothing is sent."""
    summary = PushSummary(failures_path=failures.path, dry_run=True)
    started = time.monotonic()
    for item in parsed:
        if item.error is None:
            summary.applied += 1
        else:
            log.debug("line %d: %s", item.line.number, item.error.reason)
            summary.failed[item.error.kind] += 1
            failures.write(item.line, item.error.reason)
        tracker.update(item.line.end, valid=summary.applied, invalid=summary.failed_total)
    summary.elapsed = time.monotonic() - started
    summary.failures_written = failures.count
    return summary


def seed_sandbox(sandbox: Sandbox, parsed: Iterable[ParsedLine], body: Any = PLACEHOLDER) -> int:
    """Store ``body`` under every valid line's ID, so the push has something to update."""
    added = 0
    for item in parsed:
        if item.update is not None:
            key = str(item.update.customization_id)
            if key not in sandbox.store:
                sandbox.add(body, key)
                added += 1
    return added

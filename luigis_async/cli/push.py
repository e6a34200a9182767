"""The push job: JSON Lines in, one ``BatchUpdater`` run, every result back to its line.

Lines are parsed lazily and only valid updates reach the updater, as the one phase of a
``Job`` (``job.py``: results back to their lines, Ctrl-C, nothing lost). Memory stays flat
however long the file. Every line that does not end applied goes to the failures file,
the unread rest of the input included when the run is cut short.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from typing import Any, Final

import attrs

from ..batch import DEFAULT_CONCURRENCY, BatchUpdater
from ..client import LuigisBoxClient
from ..errors import LuigisBoxError
from ..jsonl import FailuresFile, Line, ParsedLine
from ..models import CustomizationUpdate
from ..sandbox import Sandbox
from .job import Job, JobSummary
from .outcome import failure_group
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
class PushSummary(JobSummary):
    """The totals of one push (or dry run); ``failed`` counts lines by reason group."""

    applied: int = 0
    dry_run: bool = False

    @property
    def lines(self) -> int:
        """Non-blank lines accounted for."""
        return self.applied + self.failed_total + self.not_attempted

    @property
    def complete(self) -> bool:
        return self.lines == self.applied

    def format(self) -> str:
        applied, failed = ("valid", "invalid") if self.dry_run else ("applied", "failed")
        head = [(applied, f"{self.applied:,}", ""), (failed, f"{self.failed_total:,}", "")]
        sent = not self.dry_run
        return self.table(head, done=self.lines, per="lines", written="lines", sent=sent)


@attrs.frozen
class _Valid:
    """A valid line and the update it holds: one action of a push."""

    item: CustomizationUpdate
    line: Line

    def __str__(self) -> str:
        return f"line {self.line.number}"


class _Push(Job[_Valid, PushSummary]):
    """One push: a single phase, the valid lines as they are read."""

    def __init__(
        self,
        updater: BatchUpdater,
        parsed: Iterable[ParsedLine],
        failures: FailuresFile,
        tracker: Tracker,
    ) -> None:
        self.consumed = 0  # bytes of input read so far
        summary = PushSummary(failures_path=failures.path)
        super().__init__(updater, [self._valid(parsed)], summary, failures, tracker)

    def _valid(self, parsed: Iterable[ParsedLine]) -> Iterator[_Valid]:
        """The valid lines; invalid ones are recorded on the way."""
        for item in parsed:
            self.consumed = item.line.end
            if item.error is None:
                assert item.update is not None
                yield _Valid(item.update, item.line)
                continue
            log.debug("line %d: %s", item.line.number, item.error.reason)
            self.summary.failed[item.error.kind] += 1
            self.failures.write(item.line, item.error.reason)
            self.show()

    def applied(self, action: _Valid) -> None:
        self.summary.applied += 1

    def group(self, action: _Valid, error: LuigisBoxError) -> str:
        return failure_group(error)

    def write(self, action: _Valid, reason: str) -> None:
        self.failures.write(action.line, reason)

    def show(self) -> None:
        s = self.summary
        self.tracker.update(
            self.consumed, applied=s.applied, failed=s.failed_total + s.not_attempted
        )


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

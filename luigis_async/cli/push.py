"""The push job: JSON Lines in, one ``BatchUpdater`` run, every result back to its line.

The input is read and parsed in a thread (``reader.py``), and only valid updates reach
the updater, as the one phase of a ``Job`` (``job.py``: results back to their lines,
signals, the journal, nothing lost). Memory stays flat however long the file. Lines the
journal of an earlier run says were applied are skipped unread (``--resume``).

Every line that does not end applied goes to the failures file. After a stop, the lines
never sent are copied there as they are, in the reader's thread, without being parsed
again: a stop near the start of a 300,000-line file takes a second or two, not minutes.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Iterable
from typing import IO, Any, Final

import attrs

from ..batch import DEFAULT_CONCURRENCY, BatchItem
from ..client import LuigisBoxClient
from ..errors import LuigisBoxError
from ..jsonl import FailuresFile, Line, ParsedLine, to_parsed_line
from ..models import CustomizationUpdate
from ..sandbox import Sandbox
from .job import Job, JobSummary
from .journal import FAILED, Journal
from .outcome import failure_group
from .progress import Tracker
from .reader import LineReader
from .signals import Signals

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
    #: Lines an earlier run applied, per the journal: not sent again (``--resume``).
    skipped: int = 0
    dry_run: bool = False

    @property
    def lines(self) -> int:
        """Non-blank lines accounted for."""
        return self.applied + self.skipped + self.failed_total + self.not_attempted

    @property
    def complete(self) -> bool:
        return self.lines == self.applied + self.skipped

    def format(self) -> str:
        applied, failed = ("valid", "invalid") if self.dry_run else ("applied", "failed")
        head = [(applied, f"{self.applied:,}", "")]
        if self.skipped:
            head.append(("skipped", f"{self.skipped:,}", "applied by an earlier run (journal)"))
        head.append((failed, f"{self.failed_total:,}", ""))
        sent = not self.dry_run
        return self.table(head, done=self.lines, per="lines", written="lines", sent=sent)


@attrs.frozen
class _Valid:
    """A valid line and the update it holds: one action of a push."""

    item: CustomizationUpdate
    line: Line

    def __str__(self) -> str:
        return f"line {self.line.number}"


class _Rest:
    """What a stopped push never sent, written as it is (in the reader's thread)."""

    def __init__(self, failures: FailuresFile) -> None:
        self.failures = failures
        self.not_attempted = 0
        self.failed: Counter[str] = Counter()

    def parsed(self, item: ParsedLine, reason: str) -> None:
        """A line read and parsed but never sent: its parse error, else not attempted."""
        if item.error is not None:
            self.failed[item.error.kind] += 1
            self.failures.write_parsed(item)
        else:
            self.not_attempted += 1
            self.failures.write(item.line, reason, checked=True)

    def line(self, line: Line, reason: str) -> None:
        """A line never parsed: copied as it is."""
        self.not_attempted += 1
        self.failures.write(line, reason)


class _Push(Job[_Valid, PushSummary]):
    """One push: a single phase, the valid lines as the reader parses them."""

    def __init__(
        self,
        client: LuigisBoxClient,
        reader: LineReader[ParsedLine],
        rest: _Rest,
        failures: FailuresFile,
        tracker: Tracker,
        **options: Any,
    ) -> None:
        self.reader = reader
        self.rest = rest
        self.consumed = 0  # bytes of input read so far
        self.pending: deque[ParsedLine] = deque()  # read, not yet sent
        self._started = False
        summary = PushSummary(failures_path=failures.path)
        super().__init__(client, (), summary, failures, tracker, **options)

    def _next_phase(self) -> bool:
        started, self._started = self._started, True
        return not started

    def _items(self) -> AsyncIterator[BatchItem]:
        return self._valid()

    async def _valid(self) -> AsyncIterator[BatchItem]:
        """The valid lines as updates; invalid ones are recorded on the way."""
        index = 0
        while not self._halted():
            if not self.pending:
                chunk = await self.reader.next_chunk()
                if chunk is None:
                    return
                self.consumed = chunk.end
                self.pending.extend(chunk.items)
                self.show()
                continue
            item = self.pending.popleft()
            if item.update is None:
                self._invalid(item)
                continue
            self.flush_journal()
            self.in_flight[index] = _Valid(item.update, item.line)
            index += 1
            yield item.update

    def _invalid(self, item: ParsedLine) -> None:
        """Count and write a line that is not a valid update; it is finished: journal it."""
        assert item.error is not None
        log.debug("line %d: %s", item.line.number, item.error.reason)
        self.summary.failed[item.error.kind] += 1
        self.failures.write_parsed(item)
        self.journal_entry(FAILED, str(item.line.number))
        self.check_writes()

    def stopping(self) -> None:
        """Stop the reader: it copies the rest of the input to the failures file."""
        self.reader.stop(f"not attempted: {self._why()}")

    async def account_unread(self, reason: str) -> None:
        """The lines read but not sent, then the rest of the input (in the reader's thread)."""
        while self.pending:
            self._unsent(self.pending.popleft(), reason)
        for chunk in self.reader.drain():
            for item in chunk.items:
                self._unsent(item, reason)
        self.reader.stop(reason)  # a no-op after a stop; after an error, the same accounting
        end = await self.reader.ended()
        summary = self.summary
        summary.skipped = end.skipped
        summary.not_attempted += self.rest.not_attempted
        summary.failed.update(self.rest.failed)
        if end.error is not None:
            summary.input_error = f"{type(end.error).__name__}: {end.error}"
            log.error("could not read the input after line %d: %s", end.lines, end.error)
        elif end.abandoned and self.stop_reason is not None:
            log.warning(
                "stopped reading the input after line %d: a producer that had not written "
                "the rest yet was not waited for", end.lines,
            )

    def _unsent(self, item: ParsedLine, reason: str) -> None:
        """A line read but never sent: its parse error, else not attempted."""
        if item.update is None:
            self._invalid(item)
        else:
            self.summary.not_attempted += 1
            self.failures.write(item.line, reason, checked=True)

    def applied(self, action: _Valid) -> None:
        self.summary.applied += 1

    def group(self, action: _Valid, error: LuigisBoxError) -> str:
        return failure_group(error)

    def write(self, action: _Valid, reason: str) -> None:
        self.failures.write(action.line, reason, checked=True)

    def key(self, action: _Valid) -> str:
        return str(action.line.number)

    def show(self) -> None:
        s = self.summary
        self.tracker.update(
            self.consumed, applied=s.applied, failed=s.failed_total + s.not_attempted
        )


async def push(
    client: LuigisBoxClient,
    stream: IO[bytes],
    failures: FailuresFile,
    tracker: Tracker,
    *,
    skip: Callable[[int], bool] | None = None,
    journal: Journal | None = None,
    signals: Signals | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    rate: float | None = None,
) -> PushSummary:
    """Apply every valid line of ``stream`` through one BatchUpdater; record every other.

    ``skip``: line numbers an earlier run applied (from its journal), neither parsed nor
    sent.
    """
    rest = _Rest(failures)
    reader = LineReader(
        stream, to_parsed_line, skip=skip, account=rest.parsed, account_line=rest.line
    )
    reader.start()
    job = _Push(
        client, reader, rest, failures, tracker,
        concurrency=concurrency, rate=rate, journal=journal, signals=signals,
    )
    try:
        return await job.run()
    finally:
        reader.close()


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
            failures.write_parsed(item)
        tracker.update(item.line.end, valid=summary.applied, invalid=summary.failed_total)
    summary.elapsed = time.monotonic() - started
    summary.failures_written = failures.count
    summary.failures_unwritten = failures.unwritten
    if failures.error is not None:
        summary.failures_error = failures.error.strerror or str(failures.error)
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

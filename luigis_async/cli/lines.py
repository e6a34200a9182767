"""What push and import share: a JSON Lines input read in a thread, one line one action.

The input is read and parsed in a thread (``reader.py``), and only valid lines reach the
runner, as they are read: memory stays flat however long the file. Lines the journal of
an earlier run says were applied are skipped unread (``--resume``). A subclass says how a
line is parsed and which runner sends it (``push.py``, ``importer.py``).

Every line that does not end applied goes to the failures file. After a stop, the lines
never sent are copied there as they are, in the reader's thread, without being parsed
again: a stop near the start of a 300,000-line file takes a second or two, not minutes.
"""

from __future__ import annotations

import abc
import json
import logging
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Iterable
from typing import IO, Any, Final, Generic, Protocol, TypeVar

import attrs

from ..client import LuigisBoxClient
from ..errors import LuigisBoxError
from ..jsonl import (
    INVALID_BODY,
    FailuresFile,
    Line,
    LineError,
    ParsedLine,
    to_parsed_body,
    to_parsed_line,
)
from ..models import Customization, CustomizationUpdate
from .job import Job
from .journal import FAILED, Journal
from .outcome import failure_group
from .probe import Where
from .progress import Snapshot, Tracker
from .reader import LineReader
from .signals import Signals
from .summary import LinesSummary

__all__ = [
    "LinesJob",
    "LinesSummary",
    "Parsed",
    "Valid",
    "dry_run",
    "parsed_body",
    "parsed_update",
]

log: Final[logging.Logger] = logging.getLogger("luigis_async.cli")

T = TypeVar("T")


@attrs.frozen
class Parsed(Generic[T]):
    """A line as the reader parsed it: its ``value`` when valid, else ``error``."""

    line: Line
    value: T | None
    error: LineError | None
    #: An invalid line's failures-file record, made in the reader's thread (push only).
    record: str | None = attrs.field(default=None, repr=False, eq=False)

    def write_invalid(self, failures: FailuresFile) -> None:
        """Write this invalid line to ``failures``, with its record if there is one."""
        failures.write_parsed(ParsedLine(self.line, None, self.error, self.record))


def parsed_update(line: Line) -> Parsed[CustomizationUpdate]:
    """A push line: ``{"customization_id": ..., "customization": {...}}``."""
    parsed = to_parsed_line(line)
    return Parsed(parsed.line, parsed.update, parsed.error, parsed.record)


def parsed_body(line: Line) -> Parsed[Customization]:
    """An import line: one customization body, without an ID.

    An ``error`` field is ignored, as ``push`` does, so that a failures file can be fixed
    and imported again (the line is parsed a second time without it, only then).
    """
    parsed = to_parsed_body(line)
    if parsed.error is not None and parsed.error.kind == INVALID_BODY and '"error"' in line.text:
        data = json.loads(line.text)
        if isinstance(data, dict) and data.pop("error", None) is not None:
            parsed = to_parsed_body(attrs.evolve(line, text=json.dumps(data)))
    return Parsed(line, parsed.customization, parsed.error)


@attrs.frozen
class Valid(Generic[T]):
    """A valid line and what it holds (``item``, what the runner sends): one action."""

    item: T
    line: Line

    def __str__(self) -> str:
        return f"line {self.line.number}"


class _Rest:
    """What a stopped job never sent, written as it is (in the reader's thread)."""

    def __init__(self, failures: FailuresFile) -> None:
        self.failures = failures
        self.not_attempted: int = 0
        self.failed: Counter[str] = Counter()

    def parsed(self, item: Parsed[Any], reason: str) -> None:
        """A line read and parsed but never sent: its parse error, else not attempted."""
        if item.error is not None:
            self.failed[item.error.kind] += 1
            item.write_invalid(self.failures)
        else:
            self.not_attempted += 1
            self.failures.write(item.line, reason, checked=True)

    def line(self, line: Line, reason: str) -> None:
        """A line never parsed: copied as it is."""
        self.not_attempted += 1
        self.failures.write(line, reason)


class Runner(Protocol):
    """What sends a job's lines: a ``BatchUpdater`` or a ``BulkCreator``."""

    @property
    def client(self) -> LuigisBoxClient: ...


R = TypeVar("R", bound=Runner)


class LinesJob(Job[Valid[T], LinesSummary], Generic[T, R]):
    """One push or import: ``runner`` over the valid lines, as the reader parses them.

    A subclass says how a line is parsed (``parse``) and drives its runner (``drive``).
    """

    parse: Callable[[Line], Parsed[T]]

    def __init__(
        self,
        runner: R,
        stream: IO[bytes],
        failures: FailuresFile,
        tracker: Tracker,
        *,
        skip: Callable[[int], bool] | None = None,
        journal: Journal | None = None,
        signals: Signals | None = None,
    ) -> None:
        self.runner = runner
        self.rest: _Rest = _Rest(failures)
        self.reader: LineReader[Parsed[T]] = LineReader(
            stream,
            type(self).parse,
            skip=skip,
            account=self.rest.parsed,
            account_line=self.rest.line,
        )
        self.consumed: int = 0  # bytes of input read so far
        self.pending: deque[Parsed[T]] = deque()  # read, not yet sent
        summary = LinesSummary(failures_path=failures.path)
        super().__init__(
            summary, failures, tracker, Where.of(runner.client), journal=journal, signals=signals
        )

    async def run(self) -> LinesSummary:
        self.reader.start()
        try:
            return await super().run()
        finally:
            self.reader.close()

    async def items(self) -> AsyncIterator[T]:
        """The valid lines' items, in order; invalid lines are recorded on the way.

        A line leaves ``pending`` only when it is handed out (or recorded invalid), with
        no wait in between: a cancellation never finds a line in neither place.
        """
        index = 0
        while not self.halted():
            if not self.pending:
                chunk = await self.reader.next_chunk()
                if chunk is None:
                    return
                self.consumed = chunk.end
                self.pending.extend(chunk.items)
                self.show()
                continue
            item = self.pending.popleft()
            if item.value is None:
                self._invalid(item)
                continue
            self.take(index, Valid(item.value, item.line))
            index += 1
            yield item.value

    def _invalid(self, item: Parsed[T]) -> None:
        """Count and write a line that is not valid; it is finished: journal it."""
        assert item.error is not None
        log.debug("line %d: %s", item.line.number, item.error.reason)
        self.summary.failed[item.error.kind] += 1
        item.write_invalid(self.failures)
        if self.journal is not None:
            self.journal.record(FAILED, str(item.line.number))
        self.check_writes()

    def stopping(self) -> None:
        """Stop the reader: it copies the rest of the input to the failures file."""
        self.reader.stop(f"not attempted: {self.why()}")

    async def account_unsent(self, reason: str) -> None:
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

    def _unsent(self, item: Parsed[T], reason: str) -> None:
        """A line read but never sent: its parse error, else not attempted."""
        if item.value is None:
            self._invalid(item)
        else:
            self.summary.not_attempted += 1
            self.failures.write(item.line, reason, checked=True)

    def applied(self, action: Valid[T]) -> None:
        self.summary.applied += 1

    def group(self, action: Valid[T], error: LuigisBoxError) -> str:
        return failure_group(error)

    def write(self, action: Valid[T], reason: str) -> None:
        self.failures.write(action.line, reason, checked=True)

    def key(self, action: Valid[T]) -> str:
        return str(action.line.number)

    def done(self) -> int:
        return self.consumed

    @abc.abstractmethod
    async def drive(self) -> None: ...


def dry_run(
    parsed: Iterable[Parsed[Any]], failures: FailuresFile, tracker: Tracker
) -> LinesSummary:
    """Validate every line and record the invalid ones; nothing is sent."""
    summary = LinesSummary(failures_path=failures.path, dry_run=True)
    started = time.monotonic()
    for item in parsed:
        if item.error is None:
            summary.applied += 1
        else:
            log.debug("line %d: %s", item.line.number, item.error.reason)
            summary.failed[item.error.kind] += 1
            item.write_invalid(failures)
        tracker.update(
            Snapshot(done=item.line.end, applied=summary.applied, failed=summary.failed_total)
        )
    summary.elapsed = time.monotonic() - started
    summary.failures_written = failures.count
    summary.failures_unwritten = failures.unwritten
    if failures.error is not None:
        summary.failures_error = failures.error.strerror or str(failures.error)
    return summary

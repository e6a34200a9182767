"""Bulk create: up to 5,000 customizations per request, and still one result per line.

Under an API that throttles every tracker, one request for 5,000 creates instead of
5,000 requests is the difference between seconds and hours. ``BulkCreator`` reads its
input lazily, validates and encodes each line locally (a bad line is reported and never
sent), packs chunks of at most ``chunk_size`` lines and ``max_bytes`` bytes, and sends
them ``concurrency`` at a time through the client's gate, pacer and retry policy.

The API documents neither whether a refusal names its line nor whether it is
all-or-nothing, so a whole chunk refused with 409 or 422 is split in halves and resent
until the refused lines stand alone (``k`` bad lines among ``n`` cost about
``2k log2 n`` extra requests, counted in ``BulkReport.split_requests``); 413 halves the
chunk size for the rest of the run. With ``conflict_strategy="raise"`` a chunk whose
answer was lost (5xx, timeout, dropped connection) may have been applied, and resending
it would turn every line into a false conflict: instead the lines that now exist are
looked up by natural key (an export per model and target type), reported applied, and
only the missing ones are sent again. ``ignore`` and ``override`` are simply retried.

``BulkCreator`` is the configuration (frozen); ``BulkRun`` is one run over one input, with
its own pacer, report and ``stop()``, so two runs of one creator never interfere. A stop
refuses the chunks waiting for the pacer: their lines are reported not attempted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterable, Callable, Iterable, Iterator, Sequence
from typing import ClassVar, Final, Literal

import attrs

from . import endpoints
from .batch import BatchReport, UpdateResult
from .client import LuigisBoxClient
from .convert import dumps
from .errors import (
    AuthenticationError,
    ConfigurationError,
    ConflictError,
    InvalidCustomizationError,
    LuigisBoxError,
    PayloadTooLargeError,
    ServerError,
    TransportError,
    UnprocessableEntityError,
)
from .models import CreateRequest, Customization, NaturalKey, natural_key
from .pacing import BatchPacer, PacerStopped
from .retry import RetryPolicy
from .runs import WorkerRun
from .source import Source

__all__ = [
    "DEFAULT_BULK_CONCURRENCY",
    "DEFAULT_MAX_BYTES",
    "MAX_BULK_LINES",
    "BulkCreator",
    "BulkReport",
    "BulkRun",
    "ConflictStrategy",
    "bulk_create",
]

log: logging.Logger = logging.getLogger("luigis_async.bulk")

ConflictStrategy = Literal["raise", "ignore", "override"]

#: The API's documented maximum of lines per request.
MAX_BULK_LINES: Final = 5000
#: No byte limit is documented; a request stays under this many bytes of body.
DEFAULT_MAX_BYTES: Final = 16 * 2**20
#: Chunks in flight at once: each carries thousands of lines.
DEFAULT_BULK_CONCURRENCY: Final = 4
#: Whole chunks refused with these are split until the refused lines stand alone.
_SPLIT_ON = (ConflictError, UnprocessableEntityError)
#: The answer of a ``raise`` chunk failing with these may have been lost after it was
#: applied: look before resending.
_AMBIGUOUS = (ServerError, TransportError)


@attrs.frozen
class _Line:
    """One encoded input line."""

    index: int
    body: bytes
    customization: Customization


@attrs.define
class BulkReport(BatchReport):
    """``BatchReport``'s totals (one result per input line), plus what bulk spent.

    ``requests_sent`` counts HTTP requests (bulk and lookups), ``split_requests`` those
    spent isolating refused lines, ``lookups`` the exports made after a lost answer.
    """

    split_requests: int = 0
    lookups: int = 0


def _strategy(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    try:
        endpoints.bulk_create(b"", value)  # the endpoint's own check
    except InvalidCustomizationError as exc:
        raise ConfigurationError(str(exc)) from None


def _chunk_size(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if not 1 <= value <= MAX_BULK_LINES:
        raise ConfigurationError(f"chunk_size must be 1..{MAX_BULK_LINES}, got {value!r}")


def _max_bytes(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if value < 1:
        raise ConfigurationError(f"max_bytes must be positive, got {value!r}")


def _concurrency(instance: BulkCreator, attribute: attrs.Attribute[int], value: int) -> None:
    limit = instance.client.max_connections
    if not 1 <= value <= limit:
        raise ConfigurationError(
            f"concurrency must be 1..{limit} (the client's pool), got {value!r}"
        )


@attrs.frozen
class BulkCreator:
    """Creates many customizations through the bulk endpoint; see the module docstring.

    A frozen configuration: each ``start()`` (or ``run()``) is a run of its
    own, with its own pacer, report and ``stop()``, so two runs never interfere.

    Args:
        client: the client to send through (its gate bounds what is in flight).
        conflict_strategy: what the server does with a line whose natural key exists:
            ``raise`` (refuse it: that line fails with 409), ``ignore`` (keep the
            existing one) or ``override`` (replace its definition, keep its id).
        chunk_size: lines per request, at most 5,000.
        max_bytes: body bytes per request at most.
        concurrency: chunks in flight at most (a 429 slows this down, see ``pacing``).
        retry: overrides the client's RetryPolicy.

    Raises:
        ConfigurationError: a setting out of range (a ``ValueError`` too).
    """

    client: LuigisBoxClient
    conflict_strategy: ConflictStrategy = attrs.field(
        default="raise", kw_only=True, validator=_strategy
    )
    chunk_size: int = attrs.field(default=MAX_BULK_LINES, kw_only=True, validator=_chunk_size)
    max_bytes: int = attrs.field(default=DEFAULT_MAX_BYTES, kw_only=True, validator=_max_bytes)
    concurrency: int = attrs.field(
        default=DEFAULT_BULK_CONCURRENCY, kw_only=True, validator=_concurrency
    )
    retry: RetryPolicy | None = attrs.field(default=None, kw_only=True)
    def start(
        self, customizations: Iterable[Customization] | AsyncIterable[Customization]
    ) -> BulkRun:
        """A run: ``async with creator.start(customizations) as run: async for ...``.

        Args:
            customizations: a plain or async iterable, pulled lazily.

        Returns:
            The run; nothing is sent until it is entered or iterated.
        """
        return BulkRun(self, customizations)

    async def run(
        self, customizations: Iterable[Customization] | AsyncIterable[Customization]
    ) -> BulkReport:
        """Create every customization through the bulk endpoint; ``start`` consumed to its end.

        Args:
            customizations: a plain or async iterable, pulled lazily.

        Returns:
            One result per input line (``index`` is its position), and what was spent.

        Raises:
            Exception: whatever the input iterable raised (that ends the run).
        """
        async with self.start(customizations) as run:
            async for _ in run:
                pass
        return run.report

class BulkRun(WorkerRun):
    """One run of a ``BulkCreator``: its workers, its pacer, its report, ``stop()``.

    An async iterator of ``UpdateResult`` (a chunk's results together, chunks in the order
    they finish), and an async context manager: leaving the ``async with`` block cancels
    what is still in flight, so nothing outlives it. Plain ``async for`` works too; the
    workers then start on the first result and end with the input.
    """

    def __init__(
        self,
        creator: BulkCreator,
        customizations: Iterable[Customization] | AsyncIterable[Customization],
    ) -> None:
        self.creator = creator
        self.policy: RetryPolicy = creator.retry or creator.client.retry
        self.pacer: BatchPacer = BatchPacer(
            creator.concurrency, max_retry_after=self.policy.max_retry_after
        )
        #: The totals of the results yielded so far; complete once the run is.
        self.report: BulkReport = BulkReport()
        self.stop_reason: str | None = None
        #: Lines per request now: a 413 halves it for the rest of the run.
        self.chunk_size: int = creator.chunk_size
        self._source = Source(customizations)
        self._lock = asyncio.Lock()
        # At most `concurrency` finished chunks wait for the consumer: memory stays flat.
        self._results: asyncio.Queue[list[UpdateResult] | None] = asyncio.Queue(
            creator.concurrency
        )
        self._ready: deque[UpdateResult] = deque()
        self._no_workers_yet()
        self._requests = self._retries = 0
        self._fatal: BaseException | None = None

    worker_name: ClassVar[str] = "luigis_async-bulk-worker"

    def stop(self, reason: str = "stopped by the caller") -> None:
        """Send no further chunk: requests in flight finish (without further retries),
        chunks waiting for the pacer are not sent, and their lines, like every line not
        sent yet, are reported not attempted.

        Args:
            reason: the report's ``stop_reason`` (the first stop's is kept).
        """
        if self.stop_reason is None:
            self.stop_reason = self.report.stop_reason = reason
            log.warning("bulk create stopping: %s", reason)
            self.pacer.stop()

    async def __anext__(self) -> UpdateResult:
        if not self._workers:
            self._start()
        while not self._ready:
            if not self._live:
                self.report.elapsed = time.monotonic() - self._started
                if self._fatal is not None:
                    raise self._fatal
                raise StopAsyncIteration
            chunk = await self._results.get()
            if chunk is None:
                self._live -= 1
            else:
                self._ready.extend(chunk)
        result = self._ready.popleft()
        report = self.report
        report.add(result)
        # Requests, not line attempts: a chunk of 5,000 lines is one request.
        report.requests_sent = self._requests + report.lookups
        report.retries = self._retries
        return result

    def _worker_count(self) -> int:
        return self.creator.concurrency

    def _spent(self, attempts: int) -> None:
        """Count one bulk request that took ``attempts`` attempts."""
        self._requests += attempts
        self._retries += attempts - 1

    async def _worker(self) -> None:
        results = self._results
        try:
            while self._fatal is None and (chunk := await self._next_chunk()) is not None:
                lines, invalid = chunk
                if invalid:
                    await results.put(invalid)
                for part in _by_bytes(lines, self.creator.max_bytes):
                    if self.stop_reason is not None:
                        done = [_not_attempted(line) for line in part]
                    else:
                        done = await self._deliver(part, 1)
                        self._track(done)
                    await results.put(done)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # a failing input iterator, or a bug: end the run
            if self._fatal is None:
                self._fatal = exc
        await results.put(None)

    async def _next_chunk(self) -> tuple[list[_Line], list[UpdateResult]] | None:
        """The next chunk's valid lines and the invalid ones met; None at the end.

        Encoding thousands of lines takes a CPU-bound fraction of a second, so it runs in
        a worker thread (a plain iterable is pulled there too, since a generator may be
        slow): the event loop goes on sending the chunks already packed.
        """
        async with self._lock:
            source = self._source
            if source.exhausted:
                return None
            if source.is_sync:
                return await asyncio.to_thread(_pack, source.next_sync, self.chunk_size)
            pulled: list[tuple[int, object]] = []
            while len(pulled) < self.chunk_size and (item := await source.next()) is not None:
                pulled.append(item)
            return await asyncio.to_thread(_pack, iter(pulled).__next__, self.chunk_size)

    async def _deliver(self, lines: Sequence[_Line], round_: int) -> list[UpdateResult]:
        """Send ``lines`` as one request; split, look up or fail them as the answer says."""
        started = time.monotonic()
        call = endpoints.bulk_create(_ndjson(lines), self.creator.conflict_strategy)
        try:
            outcome = await self.creator.client.send(call, retry=self.policy, pacer=self.pacer)
        except PacerStopped:  # the run stopped while this chunk waited: never sent
            return [_not_attempted(line) for line in lines]
        except LuigisBoxError as exc:
            self._spent(exc.attempts)
            return await self._refused(lines, exc, round_, started)
        self._spent(outcome.attempts)
        elapsed = time.monotonic() - started
        return [
            UpdateResult(
                index=line.index, customization_id=None, ok=True, status=outcome.status,
                attempts=1, error=None, elapsed=elapsed,
                item=CreateRequest(line.customization),
            )
            for line in lines
        ]

    async def _refused(
        self,
        lines: Sequence[_Line],
        error: LuigisBoxError,
        round_: int,
        started: float,
    ) -> list[UpdateResult]:
        """What a failed chunk becomes: split, looked up and resent, or failed line by line."""
        if isinstance(error, PayloadTooLargeError):
            self.chunk_size = max(1, min(self.chunk_size, len(lines) // 2))
            log.info("413 for %d lines: chunks of %d from now on", len(lines), self.chunk_size)
        if isinstance(error, (PayloadTooLargeError, *_SPLIT_ON)):
            return await self._split(lines, error, started)
        lost = isinstance(error, _AMBIGUOUS) and not getattr(error, "connect_failed", False)
        if lost and self.creator.conflict_strategy == "raise":
            return await self._look_then_resend(lines, error, round_)
        return [_failed(line, error, started) for line in lines]

    async def _split(
        self, lines: Sequence[_Line], error: LuigisBoxError, started: float
    ) -> list[UpdateResult]:
        """Send each half on its own until the refused lines stand alone."""
        if len(lines) == 1:
            return [_failed(lines[0], error, started)]
        middle = len(lines) // 2
        self.report.split_requests += 2
        halves = await asyncio.gather(
            self._deliver(lines[:middle], 1),
            self._deliver(lines[middle:], 1),
        )
        return [*halves[0], *halves[1]]

    async def _look_then_resend(
        self, lines: Sequence[_Line], error: LuigisBoxError, round_: int
    ) -> list[UpdateResult]:
        """After a lost answer under ``raise``: lines that now exist were applied; send the
        others again (at most ``max_attempts`` rounds, none after a stop)."""
        started = time.monotonic()
        policy = self.policy
        if round_ >= policy.max_attempts or self.stop_reason is not None:
            return [_failed(line, error, started) for line in lines]
        await policy.sleep(policy.backoff(round_))
        if self.stop_reason is not None:
            return [_failed(line, error, started) for line in lines]
        try:
            existing = await self._existing(lines)
        except LuigisBoxError as lookup_error:
            return [_failed(line, lookup_error, started) for line in lines]
        found = [line for line in lines if natural_key(line.customization) in existing]
        missing = [line for line in lines if natural_key(line.customization) not in existing]
        log.info(
            "bulk answer lost (%s): %d of %d lines exist, resending %d",
            error, len(found), len(lines), len(missing),
        )
        applied = [
            UpdateResult(
                index=line.index, customization_id=None, ok=True, status=None,
                attempts=round_, error=None, elapsed=time.monotonic() - started,
                item=CreateRequest(line.customization),
            )
            for line in found
        ]
        resent = await self._deliver(missing, round_ + 1) if missing else []
        return [*applied, *resent]

    async def _existing(self, lines: Sequence[_Line]) -> set[NaturalKey]:
        """The natural keys that exist among those of ``lines``' models and target types."""
        groups = sorted({(line.customization.model, line.customization.target_type)
                         for line in lines})
        keys: set[NaturalKey] = set()
        for model, target_type in groups:
            self.report.lookups += 1
            stored = await self.creator.client.export_customizations(
                model=model, target_type=target_type
            )
            keys.update(natural_key(item) for item in stored)
        return keys

    def _track(self, results: Sequence[UpdateResult]) -> None:
        """A rejected key stops the run: every later chunk would be refused too."""
        for result in results:
            if isinstance(result.error, AuthenticationError):
                self.stop(f"authentication failed: {result.error.reason}")
                return


async def bulk_create(
    client: LuigisBoxClient,
    customizations: Iterable[Customization] | AsyncIterable[Customization],
    *,
    conflict_strategy: ConflictStrategy = "raise",
    chunk_size: int = MAX_BULK_LINES,
    concurrency: int = DEFAULT_BULK_CONCURRENCY,
) -> BulkReport:
    """Create every customization through the bulk endpoint; one result per line.

    The one-call form of ``BulkCreator(client, ...).run(customizations)``.

    Args:
        client: the client to send through.
        customizations: a plain or async iterable of ``Customization``, pulled lazily.
        conflict_strategy, chunk_size, concurrency: as for ``BulkCreator``.

    Returns:
        The report: one ``UpdateResult`` per input line, plus the requests spent.

    Raises:
        ConfigurationError: a setting out of range (a ``ValueError`` too).
    """
    creator = BulkCreator(
        client,
        conflict_strategy=conflict_strategy,
        chunk_size=chunk_size,
        concurrency=concurrency,
    )
    return await creator.run(customizations)


def _pack(
    pull: Callable[[], tuple[int, object] | None], size: int
) -> tuple[list[_Line], list[UpdateResult]]:
    """Up to ``size`` encoded lines from ``pull``, and a result for each invalid one."""
    lines: list[_Line] = []
    invalid: list[UpdateResult] = []
    while len(lines) < size:
        try:
            pulled = pull()
        except StopIteration:
            break
        if pulled is None:
            break
        index, raw = pulled
        try:
            lines.append(_encode(index, raw))
        except InvalidCustomizationError as exc:
            invalid.append(_failed_before_sending(index, raw, exc))
    return lines, invalid


def _by_bytes(lines: list[_Line], max_bytes: int) -> Iterator[list[_Line]]:
    """``lines`` in consecutive groups whose NDJSON body stays within ``max_bytes``."""
    group: list[_Line] = []
    size = 0
    for line in lines:
        if group and size + len(line.body) + 1 > max_bytes:
            yield group
            group, size = [], 0
        group.append(line)
        size += len(line.body) + 1
    if group:
        yield group


def _encode(index: int, raw: object) -> _Line:
    if not isinstance(raw, Customization):
        raise InvalidCustomizationError(f"expected a Customization, got {type(raw).__name__}")
    return _Line(index, dumps(raw), raw)


def _ndjson(lines: Sequence[_Line]) -> bytes:
    return b"".join(line.body + b"\n" for line in lines)


def _failed(line: _Line, error: LuigisBoxError, started: float) -> UpdateResult:
    return UpdateResult(
        index=line.index, customization_id=None, ok=False,
        status=getattr(error, "status", None), attempts=error.attempts, error=error,
        elapsed=time.monotonic() - started, item=CreateRequest(line.customization),
    )


def _failed_before_sending(index: int, raw: object, error: LuigisBoxError) -> UpdateResult:
    item = CreateRequest(raw) if isinstance(raw, Customization) else None
    return UpdateResult(
        index=index, customization_id=None, ok=False, status=None, attempts=0,
        error=error, elapsed=0.0, item=item,
    )


def _not_attempted(line: _Line) -> UpdateResult:
    return UpdateResult(
        index=line.index, customization_id=None, ok=False, status=None, attempts=0,
        error=None, elapsed=0.0, item=CreateRequest(line.customization),
    )

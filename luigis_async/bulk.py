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
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator, Sequence
from typing import Final, Literal

import attrs

from . import endpoints
from .batch import BatchReport, UpdateResult
from .client import LuigisBoxClient
from .convert import dumps
from .errors import (
    AuthenticationError,
    ConflictError,
    InvalidCustomizationError,
    LuigisBoxError,
    PayloadTooLargeError,
    ServerError,
    TransportError,
    UnprocessableEntityError,
)
from .models import CreateRequest, Customization, NaturalKey, natural_key
from .pacing import BatchPacer
from .retry import RetryPolicy
from .source import Source

__all__ = [
    "DEFAULT_BULK_CONCURRENCY",
    "DEFAULT_MAX_BYTES",
    "MAX_BULK_LINES",
    "BulkCreator",
    "BulkReport",
    "ConflictStrategy",
    "bulk_create",
]

log = logging.getLogger("luigis_async.bulk")

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


class _Run:
    """The state of one run: the source, its pacer and policy, the chunk size now, and
    what was spent."""

    def __init__(
        self,
        items: Iterable[object] | AsyncIterable[object],
        chunk_size: int,
        pacer: BatchPacer,
        policy: RetryPolicy,
    ) -> None:
        self.source = Source(items)
        self.pacer = pacer
        self.policy = policy
        self.chunk_size = chunk_size
        self.requests = self.retries = self.split_requests = self.lookups = 0
        self.lock = asyncio.Lock()
        self.fatal: BaseException | None = None

    def spent(self, attempts: int) -> None:
        """Count one bulk request that took ``attempts`` attempts."""
        self.requests += attempts
        self.retries += attempts - 1


class BulkCreator:
    """Creates many customizations through the bulk endpoint; see the module docstring.

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
        ValueError: a setting out of range.
    """

    def __init__(
        self,
        client: LuigisBoxClient,
        *,
        conflict_strategy: ConflictStrategy = "raise",
        chunk_size: int = MAX_BULK_LINES,
        max_bytes: int = DEFAULT_MAX_BYTES,
        concurrency: int = DEFAULT_BULK_CONCURRENCY,
        retry: RetryPolicy | None = None,
    ) -> None:
        endpoints.bulk_create(b"", conflict_strategy)  # validates the strategy
        if not 1 <= chunk_size <= MAX_BULK_LINES:
            raise ValueError(f"chunk_size must be 1..{MAX_BULK_LINES}, got {chunk_size!r}")
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be positive, got {max_bytes!r}")
        if not 1 <= concurrency <= client.max_connections:
            raise ValueError(
                f"concurrency must be 1..{client.max_connections} (the client's pool), "
                f"got {concurrency!r}"
            )
        self.client = client
        self.conflict_strategy = conflict_strategy
        self.chunk_size = chunk_size
        self.max_bytes = max_bytes
        self.concurrency = concurrency
        self.retry = retry
        self._stop_reason: str | None = None

    def stop(self, reason: str = "stopped by the caller") -> None:
        """Send no further chunk; the lines not sent are reported not attempted."""
        if self._stop_reason is None:
            self._stop_reason = reason
            log.warning("bulk create stopping: %s", reason)

    async def run(
        self, customizations: Iterable[Customization] | AsyncIterable[Customization]
    ) -> BulkReport:
        """Create every customization through the bulk endpoint.

        Args:
            customizations: a plain or async iterable, pulled lazily.

        Returns:
            One result per input line (``index`` is its position), and what was spent.

        Raises:
            Exception: whatever the input iterable raised (that ends the run).
        """
        report = BulkReport()
        started = time.monotonic()
        run = self._new_run(customizations)
        async for result in self._results(run):
            report.add(result)
        report.requests_sent = run.requests + run.lookups
        report.retries = run.retries
        report.split_requests = run.split_requests
        report.lookups = run.lookups
        report.elapsed = time.monotonic() - started
        report.stop_reason = self._stop_reason
        return report

    def stream(
        self, customizations: Iterable[Customization] | AsyncIterable[Customization]
    ) -> AsyncIterator[UpdateResult]:
        """Yield one UpdateResult per input line, a chunk at a time, as chunks finish."""
        return self._results(self._new_run(customizations))

    def _new_run(
        self, customizations: Iterable[Customization] | AsyncIterable[Customization]
    ) -> _Run:
        policy = self.retry or self.client.retry
        pacer = BatchPacer(self.concurrency, max_retry_after=policy.max_retry_after)
        return _Run(customizations, self.chunk_size, pacer, policy)

    async def _results(self, run: _Run) -> AsyncIterator[UpdateResult]:
        self._stop_reason = None
        # At most `concurrency` finished chunks wait for the consumer: memory stays flat.
        results: asyncio.Queue[list[UpdateResult] | None] = asyncio.Queue(self.concurrency)
        workers = [
            asyncio.create_task(self._worker(run, results))
            for _ in range(self.concurrency)
        ]
        try:
            live = len(workers)
            while live:
                chunk = await results.get()
                if chunk is None:
                    live -= 1
                    continue
                for result in chunk:
                    yield result
            if run.fatal is not None:
                raise run.fatal
        finally:
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)

    async def _worker(
        self, run: _Run, results: asyncio.Queue[list[UpdateResult] | None]
    ) -> None:
        try:
            while run.fatal is None and (chunk := await self._next_chunk(run)) is not None:
                lines, invalid = chunk
                if invalid:
                    await results.put(invalid)
                if not lines:
                    continue
                if self._stop_reason is not None:
                    await results.put([_not_attempted(line) for line in lines])
                    continue
                for part in _by_bytes(lines, self.max_bytes):
                    done = await self._deliver(run, part, 1)
                    self._track(done)
                    await results.put(done)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # a failing input iterator, or a bug: end the run
            if run.fatal is None:
                run.fatal = exc
        await results.put(None)

    async def _next_chunk(self, run: _Run) -> tuple[list[_Line], list[UpdateResult]] | None:
        """The next chunk's valid lines and the invalid ones met; None at the end.

        Encoding thousands of lines takes a CPU-bound fraction of a second, so it runs in
        a worker thread (a plain iterable is pulled there too, since a generator may be
        slow): the event loop goes on sending the chunks already packed.
        """
        async with run.lock:
            source = run.source
            if source.exhausted:
                return None
            if source.is_sync:
                return await asyncio.to_thread(_pack, source.next_sync, run.chunk_size)
            pulled: list[tuple[int, object]] = []
            while len(pulled) < run.chunk_size and (item := await source.next()) is not None:
                pulled.append(item)
            return await asyncio.to_thread(_pack, iter(pulled).__next__, run.chunk_size)

    async def _deliver(self, run: _Run, lines: Sequence[_Line], round_: int) -> list[UpdateResult]:
        """Send ``lines`` as one request; split, look up or fail them as the answer says."""
        started = time.monotonic()
        call = endpoints.bulk_create(_ndjson(lines), self.conflict_strategy)
        try:
            outcome = await self.client.send(call, retry=run.policy, pacer=run.pacer)
        except LuigisBoxError as exc:
            run.spent(exc.attempts)
            return await self._refused(run, lines, exc, round_, started)
        run.spent(outcome.attempts)
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
        run: _Run,
        lines: Sequence[_Line],
        error: LuigisBoxError,
        round_: int,
        started: float,
    ) -> list[UpdateResult]:
        """What a failed chunk becomes: split, looked up and resent, or failed line by line."""
        if isinstance(error, PayloadTooLargeError):
            run.chunk_size = max(1, min(run.chunk_size, len(lines) // 2))
            log.info("413 for %d lines: chunks of %d from now on", len(lines), run.chunk_size)
        if isinstance(error, (PayloadTooLargeError, *_SPLIT_ON)):
            return await self._split(run, lines, error, started)
        lost = isinstance(error, _AMBIGUOUS) and not getattr(error, "connect_failed", False)
        if lost and self.conflict_strategy == "raise":
            return await self._look_then_resend(run, lines, error, round_)
        return [_failed(line, error, started) for line in lines]

    async def _split(
        self, run: _Run, lines: Sequence[_Line], error: LuigisBoxError, started: float
    ) -> list[UpdateResult]:
        """Send each half on its own until the refused lines stand alone."""
        if len(lines) == 1:
            return [_failed(lines[0], error, started)]
        middle = len(lines) // 2
        run.split_requests += 2
        halves = await asyncio.gather(
            self._deliver(run, lines[:middle], 1),
            self._deliver(run, lines[middle:], 1),
        )
        return [*halves[0], *halves[1]]

    async def _look_then_resend(
        self, run: _Run, lines: Sequence[_Line], error: LuigisBoxError, round_: int
    ) -> list[UpdateResult]:
        """After a lost answer under ``raise``: lines that now exist were applied; send the
        others again (at most ``max_attempts`` rounds)."""
        started = time.monotonic()
        policy = run.policy
        if round_ >= policy.max_attempts:
            return [_failed(line, error, started) for line in lines]
        await policy.sleep(policy.backoff(round_))
        try:
            existing = await self._existing(run, lines)
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
        resent = await self._deliver(run, missing, round_ + 1) if missing else []
        return [*applied, *resent]

    async def _existing(self, run: _Run, lines: Sequence[_Line]) -> set[NaturalKey]:
        """The natural keys that exist among those of ``lines``' models and target types."""
        groups = sorted({(line.customization.model, line.customization.target_type)
                         for line in lines})
        keys: set[NaturalKey] = set()
        for model, target_type in groups:
            run.lookups += 1
            stored = await self.client.export_customizations(model=model, target_type=target_type)
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
        ValueError: a setting out of range.
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

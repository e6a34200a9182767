"""BatchUpdater: bounded concurrency over a lazy stream of writes, losing nothing.

Items are ``CustomizationUpdate`` (PUT), ``DeleteRequest`` (DELETE) or ``CreateRequest``
(POST, retried only when the server surely did not act on it). One class serves all three:
they share the pacing, retry, fail-fast and accounting, and differ only in the request.

``concurrency`` workers pull items one at a time from the input, so at most about
``2 * concurrency`` items (in flight plus results not yet consumed) exist at once, however
long the input. Every item ends as exactly one ``UpdateResult``: applied, failed with its
error, or not attempted because the batch stopped early (fail fast or ``stop()``).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, Final, TypeAlias

import attrs

from . import endpoints
from .client import DEFAULT_MAX_CONNECTIONS
from .endpoints import Call
from .errors import (
    AuthenticationError,
    BadRequestError,
    InvalidCustomizationError,
    LuigisBoxError,
    NotFoundError,
    UnexpectedError,
    UnprocessableEntityError,
)
from .models import (
    CreateRequest,
    Customization,
    CustomizationUpdate,
    DeleteRequest,
    StoredCustomization,
)
from .pacing import BatchPacer
from .retry import RetryPolicy
from .source import Source

if TYPE_CHECKING:
    from .client import LuigisBoxClient

__all__ = [
    "DEFAULT_CONCURRENCY",
    "DEFAULT_MAX_CONSECUTIVE_FAILURES",
    "BatchItem",
    "BatchReport",
    "BatchUpdater",
    "UpdateResult",
]

log = logging.getLogger("luigis_async.batch")

#: The hard bound on requests in flight when none is given: the client's default pool.
DEFAULT_CONCURRENCY: Final = DEFAULT_MAX_CONNECTIONS
#: This many failures in a row (no success between) mean the batch is futile: stop.
DEFAULT_MAX_CONSECUTIVE_FAILURES: Final = 100
#: Worker tasks are named after this, so leaks are easy to spot.
WORKER_NAME: Final = "luigis_async-batch-worker"

BatchItem: TypeAlias = CustomizationUpdate | DeleteRequest | CreateRequest
BatchInput: TypeAlias = BatchItem | tuple[uuid.UUID | str, Customization]


@attrs.frozen
class UpdateResult:
    """How one input item ended.

    ``ok``: applied. Otherwise ``error`` says why; an item with neither (``not_attempted``)
    was never sent because the batch stopped first. ``index`` is its position in the input.
    """

    index: int
    customization_id: uuid.UUID | None
    ok: bool
    status: int | None
    attempts: int
    error: LuigisBoxError | None
    elapsed: float
    item: BatchItem | None = attrs.field(default=None, repr=False, eq=False)
    #: For a CreateRequest that succeeded: the customization as the server stored it.
    created: StoredCustomization | None = attrs.field(default=None, repr=False, eq=False)

    @property
    def not_attempted(self) -> bool:
        """True when the batch stopped before sending this item."""
        return not self.ok and self.error is None


@attrs.define
class BatchReport:
    """The totals of one batch run; ``failed`` and ``not_attempted`` list the items."""

    total: int = 0
    succeeded: int = 0
    failed: list[UpdateResult] = attrs.Factory(list)
    not_attempted: list[UpdateResult] = attrs.Factory(list)
    elapsed: float = 0.0
    requests_sent: int = 0
    retries: int = 0
    #: Why the batch stopped early, if it did.
    stop_reason: str | None = None

    def add(self, result: UpdateResult) -> None:
        """Count one result."""
        self.total += 1
        self.requests_sent += result.attempts
        self.retries += max(0, result.attempts - 1)
        if result.ok:
            self.succeeded += 1
        elif result.not_attempted:
            self.not_attempted.append(result)
        else:
            self.failed.append(result)


OnResult: TypeAlias = Callable[[UpdateResult], Awaitable[None] | None]


def _normalise(raw: Any) -> BatchItem:
    if isinstance(raw, CustomizationUpdate | DeleteRequest | CreateRequest):
        return raw
    if isinstance(raw, tuple) and len(raw) == 2:
        return CustomizationUpdate(*raw)
    raise InvalidCustomizationError(
        "batch item: expected CustomizationUpdate, DeleteRequest, CreateRequest or "
        f"(customization_id, Customization), got {type(raw).__name__}"
    )


def _call_for(item: BatchItem) -> Call[Any]:
    """The endpoint call an item stands for."""
    if isinstance(item, CustomizationUpdate):
        return endpoints.update(item.customization_id, item.customization)
    if isinstance(item, DeleteRequest):
        return endpoints.delete(item.customization_id)
    return endpoints.create(item.customization)


def _as_library_error(exc: Exception) -> LuigisBoxError:
    """``exc`` itself if it is ours, else an ``UnexpectedError`` caused by it."""
    if isinstance(exc, LuigisBoxError):
        return exc
    error = UnexpectedError(f"unexpected {type(exc).__name__}: {exc}")
    error.__cause__ = exc
    return error


_WORKER_DONE: Final = object()
_ITEM_ERRORS = (InvalidCustomizationError, BadRequestError, NotFoundError, UnprocessableEntityError)


class _Run:
    """The shared state of one ``stream()`` call."""

    def __init__(self, items: Iterable[Any] | AsyncIterable[Any], concurrency: int) -> None:
        self.source = Source(items)
        self.results: asyncio.Queue[Any] = asyncio.Queue()
        # In-flight items plus results not yet consumed: bounds memory on a slow consumer.
        self.slots = asyncio.Semaphore(2 * concurrency)
        self.consecutive_failures = 0
        self.fatal: BaseException | None = None


class BatchUpdater:
    """Applies many updates (PUT) or deletes with bounded concurrency, retry and pacing.

    Args:
        concurrency: hard bound on requests in flight; by default the client's
            ``max_connections`` (more than that is refused: it would only queue).
        rate_limit: requests per second at most (None: unbounded).
        retry: overrides the client's RetryPolicy for this batch.
        adaptive: find the server's capacity (see ``pacing``): start with a few requests
            in flight, grow while the server keeps up, shrink on 429 or rising latency.
            False: always ``concurrency`` in flight.
        on_result: called (sync or async) with every UpdateResult as it is produced.
        max_consecutive_failures: stop after this many failures in a row (None: never).
    """

    def __init__(
        self,
        client: LuigisBoxClient,
        *,
        concurrency: int | None = None,
        rate_limit: float | None = None,
        retry: RetryPolicy | None = None,
        adaptive: bool = True,
        on_result: OnResult | None = None,
        max_consecutive_failures: int | None = DEFAULT_MAX_CONSECUTIVE_FAILURES,
    ) -> None:
        if concurrency is None:
            concurrency = client.max_connections
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ValueError(f"concurrency must be a positive int, got {concurrency!r}")
        if concurrency > client.max_connections:
            raise ValueError(
                f"concurrency={concurrency} exceeds the client's max_connections="
                f"{client.max_connections}: the extra requests could only wait in its pool. "
                f"Create the client with max_connections={concurrency}, or lower concurrency."
            )
        if rate_limit is not None and not rate_limit > 0:
            raise ValueError(f"rate_limit must be positive, got {rate_limit!r}")
        if max_consecutive_failures is not None and max_consecutive_failures < 1:
            raise ValueError("max_consecutive_failures must be >= 1 or None")
        self.client = client
        self.concurrency = concurrency
        self.rate_limit = rate_limit
        self.retry = retry
        self.adaptive = adaptive
        self.on_result = on_result
        self.max_consecutive_failures = max_consecutive_failures
        #: The pacer of the current (or last) run, for inspection.
        self.pacer: BatchPacer | None = None
        self._stop_reason: str | None = None

    def stop(self, reason: str = "stopped by the caller") -> None:
        """Stop sending: requests in flight finish (without further retries), the rest
        is reported not attempted."""
        if self._stop_reason is None:
            self._stop_reason = reason
            log.warning("batch stopping: %s", reason)
            if self.pacer is not None:
                self.pacer.stopping = True

    @property
    def stop_reason(self) -> str | None:
        """Why the current (or last) run stopped early, if it did."""
        return self._stop_reason

    async def run(self, items: Iterable[BatchInput] | AsyncIterable[BatchInput]) -> BatchReport:
        """Consume all of ``items`` and return the totals."""
        report = BatchReport()
        started = time.monotonic()
        async for result in self.stream(items):
            report.add(result)
        report.elapsed = time.monotonic() - started
        report.stop_reason = self._stop_reason
        return report

    async def stream(
        self, items: Iterable[BatchInput] | AsyncIterable[BatchInput]
    ) -> AsyncIterator[UpdateResult]:
        """Yield one UpdateResult per input item, in completion order."""
        self._stop_reason = None
        policy = self.retry or self.client.retry
        self.pacer = BatchPacer(
            self.concurrency,
            rate=self.rate_limit,
            adaptive=self.adaptive,
            max_retry_after=policy.max_retry_after,
        )
        run = _Run(items, self.concurrency)
        workers = [
            asyncio.create_task(self._worker(run, self.pacer, policy), name=f"{WORKER_NAME}-{n}")
            for n in range(self.concurrency)
        ]
        try:
            live = len(workers)
            while live:
                result = await run.results.get()
                if result is _WORKER_DONE:
                    live -= 1
                    continue
                run.slots.release()
                yield result
            if run.fatal is not None:
                raise run.fatal
        finally:
            pending = [w for w in workers if not w.done()]
            for worker in pending:
                worker.cancel()
            if pending:
                await asyncio.wait(pending)

    async def _worker(self, run: _Run, pacer: BatchPacer, policy: RetryPolicy) -> None:
        try:
            while run.fatal is None:
                await run.slots.acquire()
                source = run.source
                pulled = source.next_sync() if source.is_sync else await source.next()
                if pulled is None:
                    run.slots.release()
                    return
                result = await self._process(*pulled, pacer, policy)
                self._track(run, result)
                if self.on_result is not None:
                    outcome = self.on_result(result)
                    if inspect.isawaitable(outcome):
                        await outcome
                run.results.put_nowait(result)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # a bug or a failing input iterator: abort the run
            if run.fatal is None:
                run.fatal = exc
        finally:
            run.results.put_nowait(_WORKER_DONE)

    async def _process(
        self, index: int, raw: Any, pacer: BatchPacer, policy: RetryPolicy
    ) -> UpdateResult:
        """One item, start to end; whatever goes wrong fails this item only."""
        started = time.monotonic()
        try:
            item = _normalise(raw)
        except InvalidCustomizationError as exc:
            return UpdateResult(index, None, False, None, 0, exc, 0.0)
        cid = None if isinstance(item, CreateRequest) else item.customization_id
        if self._stop_reason is not None:
            return UpdateResult(index, cid, False, None, 0, None, 0.0, item)
        try:
            outcome = await self.client.send(_call_for(item), retry=policy, pacer=pacer)
        except NotFoundError as exc:
            # A retried DELETE that finds nothing: an earlier attempt whose answer was lost
            # already deleted it.
            ok = isinstance(item, DeleteRequest) and exc.attempts > 1
            return UpdateResult(
                index, cid, ok, exc.status, exc.attempts, None if ok else exc,
                time.monotonic() - started, item,
            )
        except Exception as exc:  # one item's surprise must not end the batch
            error = _as_library_error(exc)
            status = getattr(error, "status", None)
            return UpdateResult(
                index, cid, False, status, error.attempts, error, time.monotonic() - started,
                item,
            )
        created = outcome.value if isinstance(outcome.value, StoredCustomization) else None
        if created is not None:
            cid = created.id
        return UpdateResult(
            index, cid, True, outcome.status, outcome.attempts, None,
            time.monotonic() - started, item, created,
        )

    def _track(self, run: _Run, result: UpdateResult) -> None:
        """Fail fast on a rejected key or a long run of failures."""
        if result.ok:
            run.consecutive_failures = 0
            return
        if result.error is None:
            return
        if isinstance(result.error, AuthenticationError):
            self.stop(f"authentication failed: {result.error.reason}")
            return
        if isinstance(result.error, _ITEM_ERRORS):
            return  # a bad item says nothing about the server's health
        run.consecutive_failures += 1
        limit = self.max_consecutive_failures
        if limit is not None and run.consecutive_failures >= limit:
            self.stop(f"{limit} consecutive failures, the last: {result.error}")

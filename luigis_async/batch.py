"""BatchUpdater: bounded concurrency over a lazy stream of writes, losing nothing.

Items are ``CustomizationUpdate`` (PUT), ``DeleteRequest`` (DELETE) or ``CreateRequest``
(POST, retried only when the server surely did not act on it). One class serves all three:
they share the pacing, retry, fail-fast and accounting, and differ only in the request.

``concurrency`` workers pull items one at a time from the input, so at most about
``2 * concurrency`` items (in flight plus results not yet consumed) exist at once, however
long the input. Every item ends as exactly one ``UpdateResult``: applied, failed with its
error, or not attempted because the batch stopped early (fail fast or ``stop()``).

``BatchUpdater`` is the configuration (frozen); ``BatchRun`` is one run over one input,
with its own pacer, report and ``stop()``, so two runs of one updater never interfere.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import operator
import time
import uuid
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, ClassVar, Final, TypeAlias

import attrs

from . import endpoints
from .client import DEFAULT_MAX_CONNECTIONS
from .endpoints import Call
from .errors import (
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
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
from .pacing import BatchPacer, PacerStopped
from .retry import RetryPolicy
from .runs import WorkerRun
from .source import Source

if TYPE_CHECKING:
    from .client import LuigisBoxClient

__all__ = [
    "DEFAULT_CONCURRENCY",
    "DEFAULT_MAX_CONSECUTIVE_FAILURES",
    "BatchItem",
    "BatchReport",
    "BatchRun",
    "BatchUpdater",
    "UpdateResult",
]

log: Final[logging.Logger] = logging.getLogger("luigis_async.batch")

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
        """Count one result.

        Args:
            result: an item's result; failed and not attempted ones are kept.
        """
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


def _concurrency(
    instance: BatchUpdater, attribute: attrs.Attribute[int | None], value: object
) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"concurrency must be a positive int, got {value!r}")
    limit = instance.client.max_connections
    if value > limit:
        raise ConfigurationError(
            f"concurrency={value} exceeds the client's max_connections={limit}: the extra "
            f"requests could only wait in its pool. Create the client with "
            f"max_connections={value}, or lower concurrency."
        )


def _length(items: object) -> int | None:
    """How many items a sized input holds (``len`` or ``__length_hint__``); None when
    it cannot say (a generator, an async iterable without a hint)."""
    try:
        hint = operator.length_hint(items, -1)
    except Exception:  # a user's broken __len__ costs only the hint
        return None
    return hint if hint >= 0 else None


def _positive_or_none(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and (isinstance(value, bool) or not value > 0):  # type: ignore[operator]
        raise ConfigurationError(f"{attribute.name} must be positive or None, got {value!r}")


@attrs.frozen
class BatchUpdater:
    """Applies many updates (PUT), deletes or creates with bounded concurrency, retry and
    pacing. A frozen configuration: each ``start()`` (or ``run()``) is a run of its own.

    Args:
        client: the client every request goes through.
        concurrency: hard bound on requests in flight; by default the client's
            ``max_connections`` (more than that is refused: it would only queue).
        rate_limit: requests per second at most (None: unbounded).
        retry: overrides the client's RetryPolicy for this batch.
        adaptive: find the server's capacity (see ``pacing``): start with a few requests
            in flight, grow while the server keeps up, shrink on 429 or rising latency.
            False: always ``concurrency`` in flight.
        on_result: called (sync or async) with every UpdateResult as it is produced, in
            the worker, before it takes its next item.
        max_consecutive_failures: stop after this many failures in a row (None: never).

    Raises:
        ConfigurationError: a setting out of range, or ``concurrency`` above the
            client's pool (a ``ValueError`` too).
    """

    client: LuigisBoxClient
    concurrency: int | None = attrs.field(default=None, kw_only=True, validator=_concurrency)
    rate_limit: float | None = attrs.field(
        default=None, kw_only=True, validator=_positive_or_none
    )
    retry: RetryPolicy | None = attrs.field(default=None, kw_only=True)
    adaptive: bool = attrs.field(default=True, kw_only=True)
    on_result: OnResult | None = attrs.field(default=None, kw_only=True)
    max_consecutive_failures: int | None = attrs.field(
        default=DEFAULT_MAX_CONSECUTIVE_FAILURES, kw_only=True, validator=_positive_or_none
    )

    @property
    def cap(self) -> int:
        """The hard bound on requests in flight this updater's runs use."""
        return self.concurrency if self.concurrency is not None else self.client.max_connections

    def start(self, items: Iterable[BatchInput] | AsyncIterable[BatchInput]) -> BatchRun:
        """A run over ``items``: ``async with updater.start(items) as run: async for ...``.

        Args:
            items: ``CustomizationUpdate``, ``DeleteRequest``, ``CreateRequest`` or
                ``(customization_id, Customization)`` pairs, from a plain or an async
                iterable, pulled lazily (memory stays flat however long it is). When its
                length is known (``len`` or ``__length_hint__``), the pacer stops probing
                for capacity in the last stretch, where a refusal would delay the end.

        Returns:
            The run; nothing is sent until it is entered or iterated.
        """
        return BatchRun(self, items)

    #: The same as ``start``: results as they finish (use it with ``async with``).
    stream = start

    async def run(self, items: Iterable[BatchInput] | AsyncIterable[BatchInput]) -> BatchReport:
        """Apply every item; one call for ``start`` consumed to its end.

        Args:
            items: as for ``start``.

        Returns:
            The totals, with every item not applied listed as failed or not attempted.

        Raises:
            Exception: whatever the input iterable or ``on_result`` raised (that ends
                the run); errors of single items are in the report instead.
        """
        async with self.start(items) as run:
            async for _ in run:
                pass
        return run.report


class BatchRun(WorkerRun):
    """One run of a ``BatchUpdater``: its workers, its pacer, its report, ``stop()``.

    An async iterator of ``UpdateResult`` in completion order, and an async context
    manager: leaving the ``async with`` block (after a ``break``, say) cancels what is
    still in flight, so nothing outlives it. Plain ``async for`` works too; the workers
    then start on the first result and end with the input.
    """

    def __init__(
        self, updater: BatchUpdater, items: Iterable[BatchInput] | AsyncIterable[BatchInput]
    ) -> None:
        self.updater: BatchUpdater = updater
        self.policy: RetryPolicy = updater.retry or updater.client.retry
        self.pacer: BatchPacer = BatchPacer(
            updater.cap,
            rate=updater.rate_limit,
            adaptive=updater.adaptive,
            max_retry_after=self.policy.max_retry_after,
        )
        #: The totals of the results yielded so far; complete once the run is.
        self.report: BatchReport = BatchReport()
        self.stop_reason: str | None = None
        self._source = Source(items)
        self._results: asyncio.Queue[Any] = asyncio.Queue()
        # In-flight items plus results not yet consumed: bounds memory on a slow consumer.
        self._slots = asyncio.Semaphore(2 * updater.cap)
        self._no_workers_yet()
        self._consecutive_failures = 0
        self.pacer.window.remaining = _length(items)
        self._fatal: BaseException | None = None

    worker_name: ClassVar[str] = WORKER_NAME

    def stop(self, reason: str = "stopped by the caller") -> None:
        """Stop sending: requests in flight finish (without further retries), the rest
        is reported not attempted.

        Args:
            reason: the report's ``stop_reason`` (the first stop's is kept).
        """
        if self.stop_reason is None:
            self.stop_reason = self.report.stop_reason = reason
            log.warning("batch stopping: %s", reason)
            self.pacer.stop()

    async def __anext__(self) -> UpdateResult:
        if not self._workers:
            self._start()
        while self._live:
            result = await self._results.get()
            if result is _WORKER_DONE:
                self._live -= 1
                continue
            self._slots.release()
            self.report.add(result)
            return result  # type: ignore[no-any-return]
        self.report.elapsed = time.monotonic() - self._started
        if self._fatal is not None:
            raise self._fatal
        raise StopAsyncIteration

    def _worker_count(self) -> int:
        return self.updater.cap

    async def _worker(self) -> None:
        on_result = self.updater.on_result
        try:
            while self._fatal is None:
                await self._slots.acquire()
                source = self._source
                pulled = source.next_sync() if source.is_sync else await source.next()
                if pulled is None:
                    self._slots.release()
                    return
                result = await self._process(*pulled)
                self._track(result)
                if on_result is not None:
                    outcome = on_result(result)
                    if inspect.isawaitable(outcome):
                        await outcome
                self._results.put_nowait(result)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # a bug or a failing input iterator: abort the run
            if self._fatal is None:
                self._fatal = exc
        finally:
            self._results.put_nowait(_WORKER_DONE)

    async def _process(self, index: int, raw: Any) -> UpdateResult:
        """One item, start to end; whatever goes wrong fails this item only."""
        started = time.monotonic()
        try:
            item = _normalise(raw)
        except InvalidCustomizationError as exc:
            return UpdateResult(
                index=index, customization_id=None, ok=False, status=None, attempts=0,
                error=exc, elapsed=0.0,
            )
        cid = None if isinstance(item, CreateRequest) else item.customization_id
        if self.stop_reason is not None:
            return UpdateResult(
                index=index, customization_id=cid, ok=False, status=None, attempts=0,
                error=None, elapsed=0.0, item=item,
            )
        try:
            outcome = await self.updater.client.send(
                _call_for(item), retry=self.policy, pacer=self.pacer
            )
        except PacerStopped:  # the batch stopped while this item waited: never sent
            return UpdateResult(
                index=index, customization_id=cid, ok=False, status=None, attempts=0,
                error=None, elapsed=time.monotonic() - started, item=item,
            )
        except Exception as exc:  # one item's surprise must not end the batch
            error = _as_library_error(exc)
            # A retried DELETE that finds nothing: an earlier attempt whose answer was
            # lost already deleted it.
            ok = (
                isinstance(error, NotFoundError)
                and isinstance(item, DeleteRequest)
                and error.attempts > 1
            )
            return UpdateResult(
                index=index, customization_id=cid, ok=ok,
                status=getattr(error, "status", None), attempts=error.attempts,
                error=None if ok else error, elapsed=time.monotonic() - started, item=item,
            )
        created = outcome.value if isinstance(outcome.value, StoredCustomization) else None
        return UpdateResult(
            index=index, customization_id=created.id if created is not None else cid,
            ok=True, status=outcome.status, attempts=outcome.attempts, error=None,
            elapsed=time.monotonic() - started, item=item, created=created,
        )

    def _track(self, result: UpdateResult) -> None:
        """Fail fast on a rejected key or a long run of failures; tell the pacer how
        many items remain, when the input's length is known."""
        window = self.pacer.window
        if window.remaining is not None:
            window.remaining -= 1
        if result.ok:
            self._consecutive_failures = 0
            return
        error = result.error
        if error is None or isinstance(error, _ITEM_ERRORS):
            return  # not attempted, or a bad item: nothing about the server's health
        if isinstance(error, AuthenticationError):
            self.stop(f"authentication failed: {error.reason}")
            return
        self._consecutive_failures += 1
        limit = self.updater.max_consecutive_failures
        if limit is not None and self._consecutive_failures >= limit:
            self.stop(f"{limit} consecutive failures, the last: {error}")

"""Apply a sync plan: creates, then updates, then deletes, through the batch machinery.

``SyncApplier`` runs the phases (and can be stopped from outside); ``apply_sync`` is the
one-call form. What to write comes from ``reconcile.plan``.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import TYPE_CHECKING

import attrs

from ..batch import (
    DEFAULT_MAX_CONSECUTIVE_FAILURES,
    BatchItem,
    BatchReport,
    BatchRun,
    BatchUpdater,
    OnResult,
    UpdateResult,
)
from ..bulk import DEFAULT_BULK_CONCURRENCY, BulkCreator, BulkReport, BulkRun
from ..models import CreateRequest, Customization, CustomizationUpdate, DeleteRequest
from .plan import SyncPlan

if TYPE_CHECKING:
    from ..client import LuigisBoxClient
    from ..retry import RetryPolicy

__all__ = ["SyncApplier", "SyncReport", "apply_sync"]


@attrs.define
class SyncReport:
    """One BatchReport per kind of write."""

    create: BatchReport = attrs.Factory(BatchReport)
    update: BatchReport = attrs.Factory(BatchReport)
    delete: BatchReport = attrs.Factory(BatchReport)

    @property
    def ok(self) -> bool:
        """True when every planned write was applied."""
        return all(r.succeeded == r.total for r in (self.create, self.update, self.delete))


class SyncApplier:
    """Applies a plan phase by phase (creates, updates, deletes); ``stop()`` ends it early.

    Every planned write ends as exactly one ``UpdateResult``, whose ``item`` says its
    kind (``CreateRequest``, ``CustomizationUpdate``, ``DeleteRequest``) and whose
    ``index`` is its position in the plan's list of that kind. ``stream(plan)`` yields
    them as they finish; ``run(plan)`` collects them into a ``SyncReport``. Each phase is
    one run of a ``BatchUpdater`` built from the options here; with ``bulk=True`` the
    creates go through ``BulkCreator`` instead (5,000 per request; each body carries the
    managed tag, so the next plan finds them). After a stop (by the caller, or fail fast
    in a phase), the running phase finishes its requests in flight, and the rest of it
    and every later phase are reported not attempted.

    Args:
        client: the client every request goes through.
        bulk: send the creates through the bulk endpoint.
        concurrency, rate_limit, retry, adaptive, max_consecutive_failures: for each
            phase's ``BatchUpdater`` (``concurrency`` and ``retry`` also bound the bulk
            creates).
        on_result: called with every result as it is produced: for updates and deletes
            in the batch's worker, before it takes its next item; for bulk creates and
            writes never attempted, as they come out.
        on_taken: called with ``(item, index)`` when a phase takes an item, before it is
            sent (or reported not attempted after a stop): e.g. to flush a journal, or to
            count what is in flight.

    Raises:
        ValueError: a setting out of range, or ``concurrency`` above the client's pool.
    """

    def __init__(
        self,
        client: LuigisBoxClient,
        *,
        bulk: bool = False,
        concurrency: int | None = None,
        rate_limit: float | None = None,
        retry: RetryPolicy | None = None,
        adaptive: bool = True,
        max_consecutive_failures: int | None = DEFAULT_MAX_CONSECUTIVE_FAILURES,
        on_result: OnResult | None = None,
        on_taken: Callable[[BatchItem, int], object] | None = None,
    ) -> None:
        self.client = client
        self.bulk = bulk
        self.updater: BatchUpdater = BatchUpdater(
            client,
            concurrency=concurrency,
            rate_limit=rate_limit,
            retry=retry,
            adaptive=adaptive,
            on_result=on_result,
            max_consecutive_failures=max_consecutive_failures,
        )
        self.on_result = on_result
        self.on_taken = on_taken
        self._stop_reason: str | None = None
        self._runner: BatchRun | BulkRun | None = None
        self._reports: list[BatchReport] = []

    @property
    def stop_reason(self) -> str | None:
        """Why the apply stopped early: ``stop()``'s reason, or a phase's fail fast."""
        runner = self._runner
        if self._stop_reason is None and runner is not None:
            return runner.stop_reason
        return self._stop_reason

    @property
    def requests_in_flight(self) -> int | None:
        """The running phase's requests in flight now (bulk requests during bulk creates);
        None between runs."""
        runner = self._runner
        return runner.pacer.in_flight if runner is not None else None

    def stop(self, reason: str = "stopped by the caller") -> None:
        """Stop: requests in flight finish, every later write is reported not attempted.

        Args:
            reason: what the report's ``stop_reason`` says (the first stop's is kept).
        """
        if self._stop_reason is None:
            self._stop_reason = reason
            if self._runner is not None:
                self._runner.stop(reason)

    async def run(self, plan: SyncPlan) -> SyncReport:
        """Creates, then updates, then deletes; one report per kind.

        With ``bulk=True`` the create report is built line by line: its ``requests_sent``
        and ``retries`` count line attempts, not bulk requests (``BulkCreator.run`` has
        those).

        Args:
            plan: what ``plan_sync`` planned.

        Returns:
            One report per kind of write; ``ok`` when every write applied.
        """
        async for _ in self.stream(plan):
            pass
        return SyncReport(*self._reports)

    async def stream(self, plan: SyncPlan) -> AsyncIterator[UpdateResult]:
        """Every planned write's result as it finishes, phase after phase.

        Args:
            plan: what ``plan_sync`` planned.

        Yields:
            One ``UpdateResult`` per planned write (``index`` is its place in its phase).
        """
        self._reports = []
        for items in plan.phases():
            reason = self.stop_reason
            if reason is not None:
                report = _not_attempted(items, reason)
                self._reports.append(report)
                for result in report.not_attempted:
                    await self._produced(result)
                    yield result
                continue
            async for result in self._phase(items):
                yield result
            self._stop_reason = self.stop_reason  # a phase's fail fast stops the rest
        self._runner = None

    async def _phase(
        self, items: list[CreateRequest | CustomizationUpdate | DeleteRequest]
    ) -> AsyncIterator[UpdateResult]:
        taken = self._taken(items)
        if self.bulk and items and isinstance(items[0], CreateRequest):
            creator = BulkCreator(
                self.client,
                concurrency=min(DEFAULT_BULK_CONCURRENCY, self.updater.cap),
                retry=self.updater.retry,
            )
            report = BulkReport()
            started = time.monotonic()
            async with creator.start(_customizations(taken)) as creates:
                self._runner = creates
                async for result in creates:
                    report.add(result)
                    await self._produced(result)
                    yield result
            report.elapsed = time.monotonic() - started
            report.stop_reason = self.stop_reason
            self._reports.append(report)
            return
        async with self.updater.start(taken) as run:
            self._runner = run
            async for result in run:
                yield result
        self._reports.append(run.report)

    def _taken(self, items: Iterable[BatchItem]) -> Iterator[BatchItem]:
        """``items``, telling ``on_taken`` of each as the phase takes it."""
        for index, item in enumerate(items):
            if self.on_taken is not None:
                self.on_taken(item, index)
            yield item

    async def _produced(self, result: UpdateResult) -> None:
        """Hand a result produced outside a ``BatchUpdater`` to ``on_result``."""
        if self.on_result is not None:
            outcome = self.on_result(result)
            if inspect.isawaitable(outcome):
                await outcome


async def apply_sync(
    client: LuigisBoxClient,
    plan: SyncPlan,
    *,
    bulk: bool = False,
    concurrency: int | None = None,
    rate_limit: float | None = None,
    retry: RetryPolicy | None = None,
) -> SyncReport:
    """Execute a plan: creates, then updates, then deletes, each through a BatchUpdater
    (the creates through ``BulkCreator`` with ``bulk=True``).

    If a phase stops early (fail fast), later phases are not started and their items are
    reported not attempted. ``SyncApplier`` takes the other options (hooks, pacing) and
    can be stopped from outside.

    Args:
        client: the client to write through.
        plan: what ``plan_sync`` planned.
        bulk: send the creates through the bulk endpoint (5,000 per request).
        concurrency: requests in flight at most (None: the client's pool).
        rate_limit: attempts started per second at most (None: no ceiling).
        retry: overrides the client's RetryPolicy.

    Returns:
        One report per kind of write; a write's failure is in its report, not raised.

    Raises:
        ConfigurationError: an option out of range, before anything is sent.
    """
    applier = SyncApplier(
        client, bulk=bulk, concurrency=concurrency, rate_limit=rate_limit, retry=retry
    )
    return await applier.run(plan)


def _customizations(items: Iterable[BatchItem]) -> Iterator[Customization]:
    for item in items:
        assert isinstance(item, CreateRequest)
        yield item.customization


def _not_attempted(items: Iterable[BatchItem], reason: str) -> BatchReport:
    """A report of ``items`` never attempted, because the apply stopped for ``reason``."""
    report = BatchReport(stop_reason=reason)
    for index, item in enumerate(items):
        report.add(
            UpdateResult(
                index=index,
                customization_id=getattr(item, "customization_id", None),
                ok=False,
                status=None,
                attempts=0,
                error=None,
                elapsed=0.0,
                item=item,
            )
        )
    return report

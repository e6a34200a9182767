"""Declarative sync: plan the fewest writes that make the service match a desired set.

Only customizations carrying the caller's *managed tag* are ever read, changed or deleted;
everything sync writes carries that tag, so hand-made customizations are safe. Desired and
existing customizations are matched by their natural key, compared semantically (the same
instant in any timezone, key order, tag order and pin order are all irrelevant), and the
plan lists creates, updates (with per-field diffs), deletes (only when pruning) and
unchanged ones. Applying runs creates, then updates, then deletes, through the batch
machinery. A create whose answer was lost shows up on the next plan as an existing managed
customization, so running sync twice converges.
"""

from __future__ import annotations

import inspect
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import attrs

from .batch import (
    DEFAULT_MAX_CONSECUTIVE_FAILURES,
    BatchItem,
    BatchReport,
    BatchRun,
    BatchUpdater,
    OnResult,
    UpdateResult,
)
from .bulk import DEFAULT_BULK_CONCURRENCY, BulkCreator, BulkReport
from .convert import converter
from .errors import InvalidCustomizationError
from .models import (
    CreateRequest,
    Customization,
    CustomizationUpdate,
    DeleteRequest,
    NaturalKey,
    StoredCustomization,
    natural_key,
)

if TYPE_CHECKING:
    from .client import LuigisBoxClient
    from .retry import RetryPolicy

__all__ = [
    "FieldChange",
    "PlannedUpdate",
    "SyncApplier",
    "SyncPlan",
    "SyncReport",
    "apply_sync",
    "natural_key",
    "plan_sync",
]

def _canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _comparable(customization: Customization) -> dict[str, Any]:
    """The JSON body with every semantically irrelevant order removed."""
    body: dict[str, Any] = converter.unstructure(customization, Customization)
    body["tags"] = sorted(set(body["tags"]))
    body["pin_definitions"] = sorted(body["pin_definitions"], key=_canonical_json)
    return body


@attrs.frozen
class FieldChange:
    """One top-level field that differs: its current and desired JSON values."""

    field: str
    before: Any
    after: Any

    def __str__(self) -> str:
        before, after = _json_text(self.before), _json_text(self.after)
        common = _common_prefix(before, after)
        skip = max(0, common - 20)  # show where they differ, with a little context
        if skip:
            before, after = "..." + before[skip:], "..." + after[skip:]
        return f"{self.field}: {_clip(before)} -> {_clip(after)}"


def _json_text(value: Any) -> str:
    return "(absent)" if value is None else _canonical_json(value)


def _common_prefix(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _clip(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _diff(current: dict[str, Any], desired: dict[str, Any]) -> tuple[FieldChange, ...]:
    fields = sorted(set(current) | set(desired))
    return tuple(
        FieldChange(name, current.get(name), desired.get(name))
        for name in fields
        if current.get(name) != desired.get(name)
    )


@attrs.frozen
class PlannedUpdate:
    """An existing managed customization to replace with the desired body."""

    customization_id: uuid.UUID
    desired: Customization
    changes: tuple[FieldChange, ...]


@attrs.frozen
class SyncPlan:
    """What apply would do. ``duplicates`` are extra existing copies of one key."""

    managed_tag: str
    prune: bool
    create: tuple[Customization, ...] = ()
    update: tuple[PlannedUpdate, ...] = ()
    delete: tuple[StoredCustomization, ...] = ()
    unchanged: tuple[StoredCustomization, ...] = ()
    duplicates: tuple[StoredCustomization, ...] = ()
    #: Managed customizations no longer desired (deleted only with ``prune``).
    not_desired: tuple[StoredCustomization, ...] = ()

    @property
    def is_empty(self) -> bool:
        """True when there is nothing to write."""
        return not (self.create or self.update or self.delete)

    def summary(self) -> str:
        """One line of counts."""
        text = (
            f"{len(self.create)} to create, {len(self.update)} to update, "
            f"{len(self.delete)} to delete, {len(self.unchanged)} unchanged"
        )
        if self.not_desired and not self.prune:
            text += f"; {len(self.not_desired)} no longer desired, kept (prune deletes them)"
        if self.duplicates:
            kept = "deleted" if self.prune else "kept (prune deletes them)"
            text += f"; {len(self.duplicates)} duplicates {kept}"
        return text

    def phases(self) -> list[list[CreateRequest | CustomizationUpdate | DeleteRequest]]:
        """The writes as batch items, in the order they are applied: creates, updates,
        deletes (last, so nothing is removed before its replacement exists)."""
        return [
            [CreateRequest(c) for c in self.create],
            [CustomizationUpdate(u.customization_id, u.desired) for u in self.update],
            [DeleteRequest(s.id) for s in self.delete if s.id is not None],
        ]


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


def _with_tag(customization: Customization, tag: str) -> Customization:
    if tag in customization.tags:
        return customization
    return attrs.evolve(customization, tags=(*customization.tags, tag))


def _desired_by_key(desired: Iterable[Customization], tag: str) -> dict[NaturalKey, Customization]:
    by_key: dict[NaturalKey, Customization] = {}
    clashes: list[str] = []
    for index, customization in enumerate(desired):
        if not isinstance(customization, Customization):
            raise InvalidCustomizationError(
                f"desired[{index}]: expected a Customization, got {type(customization).__name__}"
            )
        key = natural_key(customization)
        if key in by_key:
            clashes.append(f"desired[{index}] repeats {key}")
        by_key[key] = _with_tag(customization, tag)
    if clashes:
        raise InvalidCustomizationError(
            "duplicate natural keys in the desired set: " + "; ".join(clashes[:10])
        )
    return by_key


async def plan_sync(
    client: LuigisBoxClient,
    desired: Iterable[Customization],
    *,
    managed_tag: str,
    prune: bool = False,
    allow_empty: bool = False,
) -> SyncPlan:
    """Compare the desired set with the managed customizations on the server; write nothing.

    An empty desired set with ``prune`` plans to delete every managed customization; that
    is far more often a bug (an empty file, an iterator already consumed) than the intent,
    so it is refused unless ``allow_empty`` says it is meant.

    Raises:
        InvalidCustomizationError: two desired entries share a natural key, the desired
            set is empty with ``prune`` and not ``allow_empty``, or the managed tag is
            empty; all before any request is sent.
    """
    if not isinstance(managed_tag, str) or not managed_tag.strip():
        raise InvalidCustomizationError("managed_tag: must be a non-empty string")
    desired = list(desired)  # an iterator is read once, here: its emptiness is checked
    if prune and not desired and not allow_empty:
        raise InvalidCustomizationError(
            "desired is empty (an empty or already consumed iterable?): with prune=True "
            f"that plans to delete every customization tagged {managed_tag!r}; pass "
            "allow_empty=True if that is what you want"
        )
    wanted = _desired_by_key(desired, managed_tag)
    existing: dict[NaturalKey, list[StoredCustomization]] = {}
    for stored in await client.export_customizations(tag=managed_tag):
        if managed_tag in stored.tags:  # never trust a filter with someone else's data
            existing.setdefault(natural_key(stored), []).append(stored)

    create: list[Customization] = []
    update: list[PlannedUpdate] = []
    unchanged: list[StoredCustomization] = []
    delete: list[StoredCustomization] = []
    duplicates: list[StoredCustomization] = []
    for key, customization in wanted.items():
        matches = sorted(existing.pop(key, []), key=_age)
        if not matches:
            create.append(customization)
            continue
        keep, extra = matches[0], matches[1:]
        duplicates += extra
        current, target = _comparable(keep.customization), _comparable(customization)
        if current == target:
            unchanged.append(keep)
        else:
            assert keep.id is not None
            update.append(PlannedUpdate(keep.id, customization, _diff(current, target)))
    not_desired = [stored for group in existing.values() for stored in group]
    if prune:
        delete = not_desired + duplicates
    return SyncPlan(
        managed_tag,
        prune,
        tuple(create),
        tuple(update),
        tuple(delete),
        tuple(unchanged),
        tuple(duplicates),
        tuple(not_desired),
    )


def _age(stored: StoredCustomization) -> tuple[str, str]:
    """Oldest first (the one to keep among duplicates), ties broken by ID."""
    created = stored.created_at.isoformat() if stored.created_at else ""
    return (created, str(stored.id))


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
        self.updater = BatchUpdater(
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
        self._runner: BatchRun | BulkCreator | None = None
        self._reports: list[BatchReport] = []

    @property
    def stop_reason(self) -> str | None:
        """Why the apply stopped early: ``stop()``'s reason, or a phase's fail fast."""
        runner = self._runner
        if self._stop_reason is None and isinstance(runner, BatchRun):
            return runner.stop_reason
        return self._stop_reason

    @property
    def requests_in_flight(self) -> int | None:
        """The running phase's requests in flight now; None during bulk creates (their
        chunks are paced inside ``BulkCreator``) and between runs."""
        runner = self._runner
        return runner.pacer.in_flight if isinstance(runner, BatchRun) else None

    def stop(self, reason: str = "stopped by the caller") -> None:
        """Stop: requests in flight finish, every later write is reported not attempted."""
        if self._stop_reason is None:
            self._stop_reason = reason
            if self._runner is not None:
                self._runner.stop(reason)

    async def run(self, plan: SyncPlan) -> SyncReport:
        """Creates, then updates, then deletes; one report per kind.

        With ``bulk=True`` the create report is built line by line: its ``requests_sent``
        and ``retries`` count line attempts, not bulk requests (``BulkCreator.run`` has
        those).
        """
        async for _ in self.stream(plan):
            pass
        return SyncReport(*self._reports)

    async def stream(self, plan: SyncPlan) -> AsyncIterator[UpdateResult]:
        """Every planned write's result as it finishes, phase after phase."""
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
            self._runner = creator
            report = BulkReport()
            started = time.monotonic()
            async for result in creator.stream(_customizations(taken)):
                report.add(result)
                await self._produced(result)
                yield result
            report.elapsed = time.monotonic() - started
            report.stop_reason = self._stop_reason
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

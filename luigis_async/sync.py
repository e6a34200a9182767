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

import json
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import attrs

from .batch import BatchReport, BatchUpdater, UpdateResult
from .convert import converter
from .errors import InvalidCustomizationError
from .models import (
    CreateRequest,
    Customization,
    CustomizationUpdate,
    DeleteRequest,
    StoredCustomization,
    TargetType,
)

if TYPE_CHECKING:
    from .client import LuigisBoxClient

__all__ = [
    "FieldChange",
    "PlannedUpdate",
    "SyncPlan",
    "SyncReport",
    "apply_sync",
    "natural_key",
    "plan_sync",
]

NaturalKey = tuple[str, str, str]


def natural_key(customization: Customization) -> NaturalKey:
    """What makes two customizations "the same one": model, target type and target."""
    target = ""
    if customization.target_type is TargetType.ITEM:
        target = customization.target_identity or ""
    elif customization.target_type is TargetType.CRITERIA:
        target = _canonical_json(customization.target_criteria)
    return (customization.model, customization.target_type.value, target)


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
        return f"{self.field}: {_short_json(self.before)} -> {_short_json(self.after)}"


def _short_json(value: Any, limit: int = 120) -> str:
    text = "(absent)" if value is None else _canonical_json(value)
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
        if self.duplicates:
            kept = "deleted" if self.prune else "kept (use prune to delete)"
            text += f"; {len(self.duplicates)} duplicates {kept}"
        return text


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
) -> SyncPlan:
    """Compare the desired set with the managed customizations on the server; write nothing.

    Raises:
        InvalidCustomizationError: two desired entries share a natural key (before any
            request is sent), or the managed tag is empty.
    """
    if not isinstance(managed_tag, str) or not managed_tag.strip():
        raise InvalidCustomizationError("managed_tag: must be a non-empty string")
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
    if prune:
        delete = [stored for group in existing.values() for stored in group] + duplicates
    return SyncPlan(
        managed_tag,
        prune,
        tuple(create),
        tuple(update),
        tuple(delete),
        tuple(unchanged),
        tuple(duplicates),
    )


def _age(stored: StoredCustomization) -> tuple[str, str]:
    """Oldest first (the one to keep among duplicates), ties broken by ID."""
    created = stored.created_at.isoformat() if stored.created_at else ""
    return (created, str(stored.id))


async def apply_sync(client: LuigisBoxClient, plan: SyncPlan, **batch_options: Any) -> SyncReport:
    """Execute a plan: creates, then updates, then deletes, each through a BatchUpdater.

    ``batch_options`` go to ``BatchUpdater`` (concurrency, rate_limit, retry, on_result,
    ...). If a phase stops early (fail fast), later phases are not started and their items
    are reported not attempted.
    """
    phases: list[list[Any]] = [
        [CreateRequest(c) for c in plan.create],
        [CustomizationUpdate(u.customization_id, u.desired) for u in plan.update],
        [DeleteRequest(s.id) for s in plan.delete if s.id is not None],
    ]
    reports: list[BatchReport] = []
    stopped: str | None = None
    for items in phases:
        if stopped is None:
            result = await BatchUpdater(client, **batch_options).run(items)
            stopped = result.stop_reason
        else:
            result = _not_attempted(items, stopped)
        reports.append(result)
    return SyncReport(*reports)


def _not_attempted(items: list[Any], reason: str) -> BatchReport:
    report = BatchReport(stop_reason=reason)
    for index, item in enumerate(items):
        cid = getattr(item, "customization_id", None)
        report.add(UpdateResult(index, cid, False, None, 0, None, 0.0, item))
    return report

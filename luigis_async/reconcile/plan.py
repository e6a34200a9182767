"""Plan a sync: compare the desired set with the managed customizations; write nothing.

Pure apart from the one read ``plan_sync`` makes (``client.export_customizations``):
no batch or bulk machinery is imported here. ``reconcile.apply`` runs what this plans.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import attrs

from ..convert import converter
from ..errors import InvalidCustomizationError
from ..jsonenc import canonical_json
from ..models import (
    CreateRequest,
    Customization,
    CustomizationUpdate,
    DeleteRequest,
    NaturalKey,
    StoredCustomization,
    natural_key,
)

if TYPE_CHECKING:
    from ..client import LuigisBoxClient

__all__ = ["FieldChange", "PlannedUpdate", "SyncPlan", "plan_sync"]


def _comparable(customization: Customization) -> dict[str, Any]:
    """The JSON body with every semantically irrelevant order removed."""
    body: dict[str, Any] = converter.unstructure(customization, Customization)
    body["tags"] = sorted(set(body["tags"]))
    body["pin_definitions"] = sorted(body["pin_definitions"], key=canonical_json)
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
    return "(absent)" if value is None else canonical_json(value)


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
        """One line of counts.

        Returns:
            For example ``2 to create, 1 to update, 0 to delete, 40 unchanged``.
        """
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
        deletes (last, so nothing is removed before its replacement exists).

        Returns:
            Three lists: ``CreateRequest``, ``CustomizationUpdate``, ``DeleteRequest`` items.
        """
        return [
            [CreateRequest(c) for c in self.create],
            [CustomizationUpdate(u.customization_id, u.desired) for u in self.update],
            [DeleteRequest(s.id) for s in self.delete if s.id is not None],
        ]


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

    Args:
        client: read from with one export of ``managed_tag``.
        desired: the customizations that should exist (any iterable, read once).
        managed_tag: the tag that marks the customizations this sync owns; it is added
            to each desired one.
        prune: plan to delete managed customizations that are no longer desired.
        allow_empty: with ``prune``, accept an empty desired set (delete them all).

    Returns:
        The plan: what to create, update and delete, what is unchanged, duplicates.

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



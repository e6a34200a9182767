"""The list and export queries: filters, criteria, sorting, paging and pin expiry.

Pure functions over stored JSON, so the server module only wires them to HTTP. Repeating
a filter key means "any of these" (``model=a&model=b``). Bad parameters raise
``InvalidFilter``, which the server answers with 422 "Invalid filter".
"""

from __future__ import annotations

import functools
import re
from collections.abc import Collection, Iterable, Mapping
from datetime import datetime
from typing import Any

import attrs
from multidict import MultiMapping

__all__ = ["SORT_FIELDS", "ExportQuery", "InvalidFilter", "ListQuery"]

#: The fields ``sort`` accepts (the real service's full set is undocumented).
SORT_FIELDS = ("created_at", "model", "target_type", "target_identity")
_DIGITS = re.compile(r"\d+")
_BOOLEANS = {"true": True, "1": True, "false": False, "0": False}

Errors = dict[str, list[str]]


class InvalidFilter(ValueError):
    """Bad list or export parameters; ``details`` maps each parameter to its problems."""

    def __init__(self, details: Errors) -> None:
        super().__init__(f"Invalid filter: {details}")
        self.details = details


@attrs.frozen
class Filters:
    """The filters list and export share; an empty set means "don't filter on this"."""

    models: frozenset[str]
    tags: frozenset[str]
    target_types: frozenset[str]
    target_identities: frozenset[str]

    @classmethod
    def from_query(cls, query: MultiMapping[str]) -> Filters:
        return cls(
            frozenset(query.getall("model", ())),
            frozenset(query.getall("tag", ())),
            frozenset(query.getall("target_type", ())),
            frozenset(query.getall("target_identity", ())),
        )

    def matches(self, customization: Mapping[str, Any]) -> bool:
        return (
            _allows(self.models, customization.get("model"))
            and _allows(self.target_types, customization.get("target_type"))
            and _allows(self.target_identities, customization.get("target_identity"))
            and (not self.tags or not self.tags.isdisjoint(customization.get("tags", ())))
        )


def _allows(wanted: frozenset[str], value: Any) -> bool:
    return not wanted or value in wanted


@attrs.frozen
class ListQuery:
    """``POST /scopes``: filters, optional criteria body, sort keys, offset and limit."""

    filters: Filters
    criteria: tuple[dict[str, Any], ...] | None
    sort: tuple[tuple[str, bool], ...]  # (field, descending), primary key first
    offset: int
    limit: int | None

    @classmethod
    def parse(cls, query: MultiMapping[str], body: Any) -> ListQuery:
        """Raises: InvalidFilter listing every bad parameter."""
        errors: Errors = {}
        offset = _non_negative(query, "offset", errors)
        limit = _non_negative(query, "limit", errors)
        sort = _sort_keys(query.getall("sort", ()), errors)
        criteria = _criteria(body, errors)
        if errors:
            raise InvalidFilter(errors)
        return cls(Filters.from_query(query), criteria, sort, offset or 0, limit)

    def apply(self, customizations: Iterable[dict[str, Any]]) -> tuple[int, list[dict[str, Any]]]:
        """The total number of matches and the requested page of them."""
        found = [c for c in customizations if self.filters.matches(c) and self._criteria_ok(c)]
        for field, descending in reversed(self.sort):  # stable sorts, least significant first
            found.sort(key=functools.partial(_sort_value, field), reverse=descending)
        end = None if self.limit is None else self.offset + self.limit
        return len(found), found[self.offset : end]

    def _criteria_ok(self, customization: Mapping[str, Any]) -> bool:
        # The real semantics of the criteria body are undocumented; we keep the
        # customizations whose target_criteria equals one of the given objects.
        return self.criteria is None or customization.get("target_criteria") in self.criteria


def _sort_value(field: str, customization: Mapping[str, Any]) -> tuple[bool, str]:
    """Absent values sort last (first when descending), everything else as text."""
    value = customization.get(field)
    return (value is None, "" if value is None else str(value))


@attrs.frozen
class ExportQuery:
    """``POST /scopes/export``: filters and the two pin-pruning flags; no paging."""

    filters: Filters
    remove_expired_pins: bool
    remove_nonexisting_item_pins: bool

    @classmethod
    def parse(cls, query: MultiMapping[str]) -> ExportQuery:
        """Raises: InvalidFilter listing every bad parameter."""
        errors: Errors = {}
        remove_expired = _flag(query, "remove_expired_pins", errors)
        remove_missing = _flag(query, "remove_nonexisting_item_pins", errors)
        if errors:
            raise InvalidFilter(errors)
        return cls(Filters.from_query(query), remove_expired, remove_missing)

    def apply(
        self,
        customizations: Iterable[dict[str, Any]],
        now: datetime,
        catalog: Collection[str] | None = None,
    ) -> list[dict[str, Any]]:
        """The matching customizations, as copies pruned of expired pins if asked.

        Item pins missing from ``catalog`` are pruned only when the sandbox has a catalog.
        """
        found = [c for c in customizations if self.filters.matches(c)]
        prune_missing = self.remove_nonexisting_item_pins and catalog is not None

        def keep(pin: Mapping[str, Any]) -> bool:
            if self.remove_expired_pins and _expired(pin, now):
                return False
            return not (
                prune_missing
                and pin.get("pin_type") == "item"
                and pin.get("pin_identity") not in catalog  # type: ignore[operator]
            )

        if not (self.remove_expired_pins or prune_missing):
            return found
        return [
            {**c, "pin_definitions": [p for p in c["pin_definitions"] if keep(p)]} for c in found
        ]


def _expired(pin: Mapping[str, Any], now: datetime) -> bool:
    active_to = pin.get("active_to")
    return active_to is not None and datetime.fromisoformat(active_to) < now


def _non_negative(query: MultiMapping[str], name: str, errors: Errors) -> int | None:
    value = query.get(name)
    if value is None:
        return None
    if not _DIGITS.fullmatch(value):
        errors.setdefault(name, []).append(f"Must be a non-negative integer, got {value!r}")
        return None
    return int(value)


def _flag(query: MultiMapping[str], name: str, errors: Errors) -> bool:
    value = query.get(name)
    if value is None:
        return False
    if value.lower() not in _BOOLEANS:
        errors.setdefault(name, []).append(f"Must be true or false, got {value!r}")
        return False
    return _BOOLEANS[value.lower()]


def _sort_keys(values: Iterable[str], errors: Errors) -> tuple[tuple[str, bool], ...]:
    """``field:asc|desc`` items (repeated or comma-separated); the direction defaults to asc."""
    keys = []
    for value in values:
        for item in value.split(","):
            field, _, direction = item.strip().partition(":")
            if field not in SORT_FIELDS or direction not in ("", "asc", "desc"):
                errors.setdefault("sort", []).append(
                    f"Must be FIELD:asc or FIELD:desc with FIELD one of "
                    f"{', '.join(SORT_FIELDS)}, got {item!r}"
                )
                continue
            keys.append((field, direction == "desc"))
    return tuple(keys)


def _criteria(body: Any, errors: Errors) -> tuple[dict[str, Any], ...] | None:
    """The criteria objects of a list body; None (no filtering) when absent, null or []."""
    if body is None:
        return None
    if not isinstance(body, dict):
        errors.setdefault("body", []).append("Must be a JSON object")
        return None
    criteria = body.get("criteria")
    if criteria is None or criteria == []:
        return None
    if not isinstance(criteria, list) or not all(isinstance(c, dict) for c in criteria):
        errors.setdefault("criteria", []).append("Must be an array of criteria objects")
        return None
    return tuple(criteria)

"""The sandbox's state and the API's storage rules, with no HTTP in sight.

Customizations live in a plain dict (ID -> the JSON that GET returns), which tests read
and seed directly. Every write goes through ``validation.validated`` and the catalog
check, exactly as over HTTP; list and export are the pure queries of ``queries.py``; bulk
create follows ``bulk.BulkRules``. A refusal raises ``Refused`` (or the validation and
query errors), which the routes turn into the API's error body.
"""

from __future__ import annotations

import copy
import re
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final, Protocol

from luigis_async.sandbox import bulk
from luigis_async.sandbox.queries import ExportQuery, ListQuery
from luigis_async.sandbox.validation import (
    CONFIG_REASON,
    PIN_REASON,
    READ_ONLY_FIELDS,
    InvalidCustomization,
    validated,
)

__all__ = ["CREATOR", "Refused", "Settings", "Store", "canonical_id"]

#: The ``creator`` of customizations made through the sandbox.
CREATOR: Final = "sandbox"
_UUID = re.compile(r"[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")


class Refused(Exception):
    """A request the API refuses: its status, reason and optional details by field."""

    def __init__(
        self, status: int, reason: str, details: Mapping[str, list[str]] | None = None
    ) -> None:
        super().__init__(status, reason)
        self.status = status
        self.reason = reason
        self.details = details


def canonical_id(value: str) -> str | None:
    """The lower-case UUID, or None when ``value`` is not one (the API then answers 404)."""
    return value.lower() if _UUID.fullmatch(value) else None


class Settings(Protocol):
    """What the store reads at every call, so a test may change it at any time.

    ``clock`` dates ``created_at`` and decides pin expiry; ``catalog`` (when not None) is
    the collection of known item identities: item pins naming others are refused (422)
    and ``remove_nonexisting_item_pins`` prunes them from exports; ``bulk_rules`` is how
    bulk create behaves where the docs are silent.
    """

    @property
    def clock(self) -> Callable[[], float]: ...
    @property
    def catalog(self) -> Collection[str] | None: ...
    @property
    def bulk_rules(self) -> bulk.BulkRules: ...


class Store:
    """Customizations by ID, and the rules every write obeys."""

    def __init__(self, settings: Settings) -> None:
        #: ID -> the customization exactly as GET returns it, in insertion order.
        self.customizations: dict[str, dict[str, Any]] = {}
        self.settings = settings

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.settings.clock(), UTC)

    def checked(self, body: Any) -> dict[str, Any]:
        """The body as it would be stored, without the read-only fields.

        Raises:
            InvalidCustomization: a broken rule, an item pin missing from the catalog.
        """
        fields = validated(body)
        catalog = self.settings.catalog
        if catalog is not None:
            details = {
                f"pin_definitions[{i}].pin_identity": ["Item not found in catalog"]
                for i, pin in enumerate(fields["pin_definitions"])
                if pin.get("pin_type") == "item" and pin.get("pin_identity") not in catalog
            }
            if details:
                raise InvalidCustomization(details)
        return fields

    def put(self, key: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Store checked ``fields``; a replacement keeps id, created_at and creator."""
        previous = self.customizations.get(key)
        if previous is None:
            created_at = self.now().isoformat(timespec="milliseconds").replace("+00:00", "Z")
            creator = CREATOR
        else:
            created_at, creator = previous["created_at"], previous["creator"]
        self.customizations[key] = stored = {
            "id": key,
            **fields,
            "created_at": created_at,
            "creator": creator,
            "available": True,
        }
        return stored

    def add(self, body: Mapping[str, Any], customization_id: str | None = None) -> str:
        """Store a customization under a new or given (unused) ID and return the ID.

        Raises:
            ValueError: an invalid body, an ID that is not a UUID or already taken.
        """
        if customization_id is None:
            key = str(uuid.uuid4())
        else:
            key = canonical_id(customization_id) or ""
            if not key:
                raise ValueError(f"customization_id must be a UUID, got {customization_id!r}")
            if key in self.customizations:
                raise ValueError(f"customization {key} already exists")
        self.put(key, self.checked(body))
        return key

    def existing_id(self, raw_id: str) -> str:
        """The stored ID ``raw_id`` names (any case). Raises: Refused 404."""
        key = canonical_id(raw_id)
        if key is None or key not in self.customizations:
            raise Refused(404, "Customization not found")
        return key

    def stored_body(self, raw_id: str) -> dict[str, Any]:
        """A copy of what is stored minus the read-only fields: what a PUT would send.

        Raises:
            KeyError: no customization has that ID.
        """
        key = canonical_id(raw_id)
        if key is None or key not in self.customizations:
            raise KeyError(raw_id)
        stored = self.customizations[key]
        return copy.deepcopy({k: v for k, v in stored.items() if k not in READ_ONLY_FIELDS})

    def list_page(self, query: ListQuery) -> dict[str, Any]:
        total, page = query.apply(self.customizations.values())
        return {"pagination": {"total": total}, "results": page}

    def export(self, query: ExportQuery) -> dict[str, Any]:
        found = query.apply(self.customizations.values(), self.now(), self.settings.catalog)
        return {"results": found}

    def summary(self) -> dict[str, Any]:
        """Customizations per model (sorted by model) and every tag in use, sorted."""
        counts: dict[str, int] = {}
        tags: set[str] = set()
        for customization in self.customizations.values():
            counts[customization["model"]] = counts.get(customization["model"], 0) + 1
            tags.update(customization.get("tags", ()))
        return {"scope_counts": dict(sorted(counts.items())), "user_tags": sorted(tags)}

    def bulk_create(
        self, lines: Sequence[Any], strategy: str, *, size: int, not_json: Mapping[int, str]
    ) -> None:
        """Apply a bulk request's parsed lines under ``bulk_rules``.

        ``size`` is the body's length in bytes; ``not_json`` the lines (by 1-based number)
        that did not parse. Atomic: no await, and a refusal that refuses everything raises
        before anything changes.

        Raises:
            Refused: 413, 422 or 409, as ``BulkRules`` describes.
        """
        rules = self.settings.bulk_rules
        if rules.max_bytes is not None and size > rules.max_bytes:
            raise Refused(413, f"Request Entity Too Large (at most {rules.max_bytes} bytes)")
        if len(lines) > rules.max_lines:
            raise Refused(413, f"Too many customizations: at most {rules.max_lines} per request")
        valid, rejected = self._check_lines(lines, not_json)
        planned = bulk.plan(self.customizations.values(), valid, strategy, rules)
        conflicts = {line: [text] for line, text in planned.conflicts.items()}
        refuse_all = (rejected and rules.invalid_refuses_all) or (
            conflicts and rules.conflict_refuses_all
        )
        if not refuse_all:
            self._apply(planned.operations, rules.override_keeps_id)
        if rejected:
            pin_error = any(exc.status == 422 for exc in rejected.values())
            problems = {line: _messages(exc) for line, exc in rejected.items()}
            raise Refused(
                422, PIN_REASON if pin_error else CONFIG_REASON, _by_line(problems, rules)
            )
        if conflicts:
            raise Refused(409, "Conflicting customization exists", _by_line(conflicts, rules))

    def _check_lines(
        self, lines: Sequence[Any], not_json: Mapping[int, str]
    ) -> tuple[list[tuple[int, dict[str, Any]]], dict[int, InvalidCustomization]]:
        """The valid lines as (line number, fields), and why each other one is refused."""
        valid: list[tuple[int, dict[str, Any]]] = []
        rejected: dict[int, InvalidCustomization] = {}
        for number, line in enumerate(lines, start=1):
            try:
                if number in not_json:
                    raise InvalidCustomization({"body": [not_json[number]]})
                valid.append((number, self.checked(line)))
            except InvalidCustomization as exc:
                rejected[number] = exc
        return valid, rejected

    def _apply(self, operations: Sequence[bulk.Operation], keep_ids: bool) -> None:
        for operation in operations:
            if operation.replaces and keep_ids:
                first, *others = operation.replaces
                self.put(first, operation.fields)
                for key in others:  # each stored customization owns its nested objects
                    self.put(key, copy.deepcopy(operation.fields))
                continue
            for key in operation.replaces:
                self.customizations.pop(key, None)
            self.put(str(uuid.uuid4()), operation.fields)


def _messages(exc: InvalidCustomization) -> list[str]:
    return [f"{path}: {message}" for path, messages in exc.details.items() for message in messages]


def _by_line(
    problems: Mapping[int, list[str]], rules: bulk.BulkRules
) -> dict[str, list[str]] | None:
    """``exception_details`` naming each line, or None when the rules name no lines."""
    return {f"line {line}": msgs for line, msgs in problems.items()} if rules.name_lines else None

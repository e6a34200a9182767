"""Bulk create: what the sandbox assumes where the API's docs are silent, and the pure plan.

``POST /scopes/_bulk?conflict_strategy=raise|ignore|override`` takes up to 5,000 create
bodies as NDJSON and answers 200 ``{}`` (no IDs). The docs name the three strategies as
"raise (error), ignore (keep existing), override (replace existing)" and list 409, 413
and 422, but do not say what a conflict is, whether a refused request applies anything,
whether error bodies name the offending lines, whether two lines of one request can
conflict, or whether bodies have a byte limit. Each guess is one ``BulkRules`` option, so a
user who learns how the real service behaves can switch the sandbox to it.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import Any, Final

import attrs

from luigis_async.jsonenc import canonical_json

__all__ = ["MAX_LINES", "STRATEGIES", "BulkPlan", "BulkRules", "Operation", "natural_key", "plan"]

#: The documented ``conflict_strategy`` values; ``raise`` is the default.
STRATEGIES: Final = ("raise", "ignore", "override")
#: The documented most lines (customizations) in one bulk request.
MAX_LINES: Final = 5000


def natural_key(customization: Mapping[str, Any]) -> tuple[Any, Any, str]:
    """What makes two stored customizations "the same one", as ``luigis_async``'s sync sees it.

    ``(model, target_type, target)`` where target is ``target_identity`` for item targets,
    the canonical JSON of ``target_criteria`` (sorted keys, no spaces) for criteria
    targets, and ``""`` for ``all``.
    """
    target_type = customization.get("target_type")
    target = ""
    if target_type == "item":
        target = customization.get("target_identity") or ""
    elif target_type == "criteria":
        target = canonical_json(customization.get("target_criteria"))
    return (customization.get("model"), target_type, target)


def _positive(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"{attribute.name} must be an integer >= 1, got {value!r}")


@attrs.frozen(kw_only=True)
class BulkRules:
    """How the sandbox's bulk endpoint behaves where the docs are silent; defaults in brackets.

    Not options, because the docs settle them: ``ignore`` keeps the stored customization
    untouched; success is 200 ``{}``; an unknown ``conflict_strategy`` is 422 (the docs list
    no 400 for this endpoint). An empty body is 200 and applies nothing.

    Args:
        key: [``natural_key``] a line conflicts with a stored customization when this
            function gives both the same value (it sees the stored dicts and the validated
            lines).
        conflict_refuses_all: [True] under ``raise``, one conflicting line makes the whole
            request 409 and nothing is applied. False: the other lines are applied, still
            409.
        invalid_refuses_all: [True] one line the server rejects (not JSON, not an object,
            an invalid body, an item pin missing from the catalog) makes the whole request
            422 and nothing is applied. False: the valid lines are applied, still 422.
            Rejected lines are checked before conflicts, so a request with both is a 422.
        lines_conflict: [True] two lines of one request with the same key conflict like a
            line and a stored customization: 409 under ``raise``, the last line wins under
            ``override``, the first under ``ignore``. False: lines are compared only with
            what was stored before the request, so two new lines with one key both create.
        override_keeps_id: [True] ``override`` replaces the whole body of every stored
            customization with the line's key, keeping its id, ``created_at`` and
            ``creator``. False: those are deleted and the line is created afresh (new id).
        name_lines: [False] 409 and 422 bodies name no line, so a client must bisect to
            find the offending ones. True: ``exception_details`` maps ``"line N"``
            (1-based) to its problems.
        max_lines: [5,000] more lines is 413 (nothing applied).
        max_bytes: [None: no cap] a longer body is 413 (nothing applied). Whatever it
            says, a body over 64 MiB is 413: the sandbox reads no more.

    Raises:
        ValueError: ``max_lines`` or ``max_bytes`` is not an integer >= 1.
    """

    key: Callable[[Mapping[str, Any]], Hashable] = natural_key
    conflict_refuses_all: bool = True
    invalid_refuses_all: bool = True
    lines_conflict: bool = True
    override_keeps_id: bool = True
    name_lines: bool = False
    max_lines: int = attrs.field(default=MAX_LINES, validator=_positive)
    max_bytes: int | None = attrs.field(default=None, validator=_positive)


@attrs.frozen
class Operation:
    """One line to apply: create ``fields``, or (``replaces`` not empty) replace those IDs."""

    line: int
    fields: dict[str, Any]
    replaces: tuple[str, ...] = ()


@attrs.frozen
class BulkPlan:
    """What a bulk request would do: its operations, and its conflicts by line number."""

    operations: list[Operation]
    conflicts: dict[int, str]


def plan(
    stored: Iterable[Mapping[str, Any]],
    lines: Sequence[tuple[int, dict[str, Any]]],
    strategy: str,
    rules: BulkRules,
) -> BulkPlan:
    """Plan the valid ``(line number, fields)`` of a request against ``stored`` customizations.

    Pure: nothing is changed. Under ``override`` the operations replace the stored
    customizations of their key; ``ignore`` drops lines that conflict; ``raise`` reports
    them in ``conflicts`` (the caller decides whether the rest is applied).
    """
    existing: dict[Hashable, list[str]] = {}
    for customization in stored:
        existing.setdefault(rules.key(customization), []).append(customization["id"])
    operations: list[Operation] = []
    position: dict[Hashable, int] = {}  # key -> index in operations, for lines_conflict
    conflicts: dict[int, str] = {}
    for line, fields in lines:
        key = rules.key(fields)
        earlier = position.get(key) if rules.lines_conflict else None
        ids = tuple(existing.get(key, ()))
        if earlier is not None:
            if strategy == "override":  # the last line wins
                operations[earlier] = attrs.evolve(operations[earlier], fields=fields)
            elif strategy == "raise":
                conflicts[line] = f"Same key as line {operations[earlier].line}"
        elif ids and strategy == "raise":
            conflicts[line] = f"Conflicts with existing customization {', '.join(ids)}"
        elif not ids or strategy == "override":
            position[key] = len(operations)
            operations.append(Operation(line, fields, ids))
    return BulkPlan(operations, conflicts)

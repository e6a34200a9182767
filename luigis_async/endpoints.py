"""One definition per endpoint: what to send and how to read the answer.

A ``Call`` is a whole request minus the signature: method, path under the tracker,
query, body, the content type that is sent and signed, whether a retry is safe, and how
the documented success body becomes a result. The client's methods, the batch updater
and bulk create all build their requests here, so each endpoint is written once.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final, Generic, TypedDict, TypeVar, Unpack

import attrs

from .auth import CONTENT_TYPE, NDJSON_CONTENT_TYPE
from .convert import dumps, structure_customization
from .errors import InvalidCustomizationError
from .jsonenc import wire_json
from .models import (
    Customization,
    Page,
    StoredCustomization,
    Summary,
    TargetType,
    customization_id,
)
from .validators import is_json_object

__all__ = [
    "CONFLICT_STRATEGIES",
    "DEFAULT_PAGE_SIZE",
    "Call",
    "CustomizationFilter",
    "FilterArgs",
    "bulk_create",
    "create",
    "delete",
    "export",
    "get",
    "list_page",
    "scope_path",
    "summary",
    "update",
]

T = TypeVar("T")

DEFAULT_PAGE_SIZE: Final = 100
#: How bulk create treats a line whose natural key exists: refuse the request, keep the
#: existing customization, or replace its definition.
CONFLICT_STRATEGIES: Final = ("raise", "ignore", "override")


class ShapeError(ValueError):
    """A success body that parsed as JSON but is not what the endpoint documents."""


@attrs.define
class Call(Generic[T]):
    """One API request, unsigned: everything the client's attempt loop needs.

    ``read`` turns the parsed JSON object of a success into the result (it gets None when
    ``answers_json`` is false: the endpoint answers 204 with no body). Treat it as
    immutable; it is not frozen because one is built per request, and a frozen attrs
    class costs twice as much to build.
    """

    method: str
    endpoint: str
    read: Callable[[Any], T]
    query: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None
    content_type: str = CONTENT_TYPE
    idempotent: bool = True
    answers_json: bool = True


def scope_path(customization_id_: uuid.UUID | str) -> str:
    """``/scope/{id}`` for a validated UUID: no input can alter the request path."""
    return f"/scope/{customization_id(customization_id_)}"


def _checked(customization: object) -> Customization:
    if not isinstance(customization, Customization):
        raise InvalidCustomizationError(
            f"expected a Customization, got {type(customization).__name__}"
        )
    return customization


def _nothing(_: Any) -> None:
    return None


def read_stored(payload: Any) -> StoredCustomization:
    """A customization as the server returns it (with ``id`` and ``created_at``)."""
    try:
        return structure_customization(payload, StoredCustomization)
    except InvalidCustomizationError as exc:
        raise ShapeError(f"not a stored customization: {exc}") from None


def _results(payload: Mapping[str, Any]) -> list[StoredCustomization]:
    results = payload.get("results")
    if not isinstance(results, list):
        raise ShapeError("no 'results' list")
    return [read_stored(item) for item in results]


def read_page(payload: Mapping[str, Any]) -> Page:
    """A list answer: ``{"pagination": {"total": N}, "results": [...]}``."""
    pagination = payload.get("pagination")
    total = pagination.get("total") if isinstance(pagination, Mapping) else None
    if isinstance(total, bool) or not isinstance(total, int) or total < 0:
        raise ShapeError("no 'pagination.total' count")
    return Page(results=tuple(_results(payload)), total=total)


def create(customization: Customization) -> Call[StoredCustomization]:
    """Not idempotent: retried only when the server surely did not act on it."""
    body = dumps(_checked(customization))
    return Call("POST", "/scope", read_stored, body=body, idempotent=False)


def get(customization_id_: uuid.UUID | str) -> Call[StoredCustomization]:
    return Call("GET", scope_path(customization_id_), read_stored)


def update(customization_id_: uuid.UUID | str, customization: Customization) -> Call[None]:
    """A PUT replaces the whole customization."""
    path = scope_path(customization_id_)
    return Call("PUT", path, _nothing, body=dumps(_checked(customization)), answers_json=False)


def delete(customization_id_: uuid.UUID | str) -> Call[None]:
    return Call("DELETE", scope_path(customization_id_), _nothing, answers_json=False)


def _non_negative(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidCustomizationError(f"{name} must be a non-negative int, got {value!r}")
    return value


def list_page(
    *,
    limit: int,
    offset: int,
    filters: CustomizationFilter,
    sort: str | None,
    criteria: Sequence[Mapping[str, Any]] | None,
) -> Call[Page]:
    """A read, so idempotent although it is a POST."""
    query = [("limit", str(_non_negative("limit", limit)))]
    query.append(("offset", str(_non_negative("offset", offset))))
    query += filters.query()
    if sort is not None:
        query.append(("sort", _text("sort", sort)))
    return Call("POST", "/scopes", read_page, query=tuple(query), body=_criteria_body(criteria))


def export(
    filters: CustomizationFilter,
    *,
    remove_expired_pins: bool | None,
    remove_nonexisting_item_pins: bool | None,
) -> Call[list[StoredCustomization]]:
    query = filters.query()
    for name, flag in (
        ("remove_expired_pins", remove_expired_pins),
        ("remove_nonexisting_item_pins", remove_nonexisting_item_pins),
    ):
        if flag is not None:
            if not isinstance(flag, bool):
                raise InvalidCustomizationError(f"{name} must be a bool, got {flag!r}")
            query.append((name, "true" if flag else "false"))
    return Call("POST", "/scopes/export", _results, query=tuple(query))


def read_summary(payload: Mapping[str, Any]) -> Summary:
    """``{"scope_counts": {"<model>": N}, "user_tags": ["..."]}``."""
    counts = payload.get("scope_counts")
    tags = payload.get("user_tags")
    if not isinstance(counts, Mapping) or not all(
        isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool)
        for k, v in counts.items()
    ):
        raise ShapeError("no 'scope_counts' object of counts")
    if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
        raise ShapeError("no 'user_tags' list of strings")
    return Summary(scope_counts=dict(counts), user_tags=tuple(tags))


def summary() -> Call[Summary]:
    return Call("GET", "/summary", read_summary)


def bulk_create(body: bytes, conflict_strategy: str) -> Call[None]:
    """Up to 5,000 NDJSON lines in one request; answered ``{}``.

    Only ``ignore`` and ``override`` are idempotent: resending a ``raise`` request that
    was applied but whose answer was lost would turn every line into a false conflict.
    """
    if conflict_strategy not in CONFLICT_STRATEGIES:
        raise InvalidCustomizationError(
            f"conflict_strategy must be one of {', '.join(CONFLICT_STRATEGIES)}, "
            f"got {conflict_strategy!r}"
        )
    return Call(
        "POST",
        "/scopes/_bulk",
        _nothing,
        query=(("conflict_strategy", conflict_strategy),),
        body=body,
        content_type=NDJSON_CONTENT_TYPE,
        idempotent=conflict_strategy != "raise",
    )


def _text(name: str, value: object) -> str:
    if isinstance(value, TargetType):
        return value.value
    if not isinstance(value, str) or not value:
        raise InvalidCustomizationError(f"{name} filter must be a non-empty string, got {value!r}")
    return value


class FilterArgs(TypedDict, total=False):
    """The filters list and export take, as keyword arguments; several values of one
    filter match any of them (the query repeats the key: ``model=a&model=b``)."""

    model: str | Iterable[str]
    tag: str | Iterable[str]
    target_type: TargetType | str | Iterable[TargetType | str]
    target_identity: str | Iterable[str]


@attrs.frozen
class CustomizationFilter:
    """Which customizations a list or export returns: validated, immutable, reusable.

    Build one with ``CustomizationFilter.of(model="basket", tag=["a", "b"])``; each field
    is a tuple of accepted values (empty: any), and a customization must match every
    field that is not empty.

    Args:
        model: the models accepted.
        tag: the tags accepted (a customization with any of them matches).
        target_type: the target types accepted.
        target_identity: the target identities accepted.
    """

    model: tuple[str, ...] = ()
    tag: tuple[str, ...] = ()
    target_type: tuple[TargetType, ...] = ()
    target_identity: tuple[str, ...] = ()

    @classmethod
    def of(cls, **filters: Unpack[FilterArgs]) -> CustomizationFilter:
        """Validate keyword filters (a string or an iterable of strings each).

        Args:
            filters: ``model``, ``tag``, ``target_type``, ``target_identity``; each a
                string or an iterable of strings.

        Returns:
            The filter.

        Raises:
            InvalidCustomizationError: an empty or non-string value, or an unknown
                target type (a ``ValueError`` too).
        """
        values = {name: _values(name, value) for name, value in filters.items()}
        if "target_type" in values:
            values["target_type"] = tuple(TargetType(v) for v in values["target_type"])
        return cls(**values)  # type: ignore[arg-type]

    def query(self) -> list[tuple[str, str]]:
        """The query string's pairs.

        Returns:
            ``(name, value)`` pairs, one per accepted value, in field order.
        """
        return [
            (field.name, str(value))
            for field in attrs.fields(CustomizationFilter)
            for value in getattr(self, field.name)
        ]


def _values(name: str, value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    items = [value] if isinstance(value, str | TargetType) else list(value)  # type: ignore[call-overload]
    return tuple(_text(name, item) for item in items)


def _criteria_body(criteria: Sequence[Mapping[str, Any]] | None) -> bytes | None:
    if criteria is None:
        return None
    if isinstance(criteria, Mapping | str) or not all(is_json_object(c) for c in criteria):
        raise InvalidCustomizationError(
            "criteria must be a sequence of JSON objects (str keys, finite numbers, "
            "64-bit integers)"
        )
    return wire_json({"criteria": [dict(c) for c in criteria]})

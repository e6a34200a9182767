"""The plumbing behind the models' fields: attrs validators and converters.

``models`` says which field takes which; this module says how. Every refusal is an
``InvalidCustomizationError`` whose message names the field and the rule broken, e.g.
``tags[2]: must be a string, got 3``.
"""

from __future__ import annotations

import enum
import math
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, NoReturn, TypeAlias, TypeVar

import attrs

from .errors import InvalidCustomizationError

__all__ = [
    "JSON_INT_RANGE",
    "FrozenDict",
    "FrozenList",
    "Validator",
    "aware_datetime",
    "each_instance_of",
    "fail",
    "instance_of",
    "is_json_object",
    "json_object",
    "json_object_copy",
    "non_empty_str",
    "optional",
    "pin_position",
    "to_enum",
    "to_tuple",
    "to_utc",
    "to_uuid",
]

#: An attrs validator: called with the instance, the field and the value.
Validator: TypeAlias = Callable[[Any, "attrs.Attribute[Any]", Any], None]

_E = TypeVar("_E", bound=enum.Enum)


def fail(field: str, rule: str, value: object) -> InvalidCustomizationError:
    """The error for ``field`` breaking ``rule``, showing (the start of) the value."""
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return InvalidCustomizationError(f"{field}: {rule}, got {shown}")


def to_enum(enum_cls: type[_E], name: str, value: object) -> _E:
    """The member of ``enum_cls`` with this value, or an error listing the choices."""
    try:
        return enum_cls(value)
    except ValueError:
        choices = ", ".join(str(m.value) for m in enum_cls)
        raise InvalidCustomizationError(
            f"{name}: must be one of {choices}, got {value!r}"
        ) from None


def to_uuid(field: str, value: object) -> uuid.UUID:
    """A UUID, or its string form parsed; anything else is refused."""
    if isinstance(value, uuid.UUID):
        return value
    if isinstance(value, str):
        try:
            return uuid.UUID(value)
        except ValueError:
            pass
    raise fail(field, "must be a UUID", value)


def optional(check: Validator) -> Validator:
    """``check``, except that None passes."""

    def validate(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value is not None:
            check(instance, attribute, value)

    return validate


def instance_of(cls: type, rule: str) -> Validator:
    """Refuses a value that is not a ``cls`` (``rule`` says so, e.g. "must be a string")."""

    def validate(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if not isinstance(value, cls):
            raise fail(attribute.name, rule, value)

    return validate


def each_instance_of(cls: type, rule: str) -> Validator:
    """Like ``instance_of``, for every element of a tuple; the error names the index."""

    def validate(_: object, attribute: attrs.Attribute[Any], value: tuple[Any, ...]) -> None:
        for i, element in enumerate(value):
            if not isinstance(element, cls):
                raise fail(f"{attribute.name}[{i}]", rule, element)

    return validate


def non_empty_str(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """A string with something besides whitespace."""
    if not isinstance(value, str) or not value.strip():
        raise fail(attribute.name, "must be a non-blank string", value)


#: Integers a JSON body may carry: what a 64-bit parser (and orjson) reads back exactly.
JSON_INT_RANGE = range(-(2**63), 2**64)


def _json_value_ok(value: object, depth: int = 0) -> bool:
    """JSON-representable and finite: NaN/Infinity would not survive strict JSON, and an
    integer beyond 64 bits would not survive the server's parser."""
    if depth > 64:
        return False
    if value is None or isinstance(value, str | bool):
        return True
    if isinstance(value, int):
        return value in JSON_INT_RANGE
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, Mapping):
        return all(
            isinstance(k, str) and _json_value_ok(v, depth + 1) for k, v in value.items()
        )
    if isinstance(value, list | tuple):
        return all(_json_value_ok(v, depth + 1) for v in value)
    return False


def is_json_object(value: object) -> bool:
    """A mapping holding only JSON values (see ``_json_value_ok``)."""
    return isinstance(value, Mapping) and _json_value_ok(value)


def json_object(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """A mapping holding only JSON values (see ``_json_value_ok``)."""
    if not isinstance(value, Mapping):
        raise fail(attribute.name, "must be a JSON object (a mapping)", value)
    if not _json_value_ok(value):
        raise fail(
            attribute.name, "must hold only JSON values (str keys, finite numbers)", value
        )


def aware_datetime(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """A datetime with a timezone."""
    if not isinstance(value, datetime):
        raise fail(attribute.name, "must be a datetime", value)
    if value.tzinfo is None or value.utcoffset() is None:
        raise fail(
            attribute.name,
            "must be timezone-aware (naive datetimes are ambiguous)",
            value.isoformat(),
        )


def to_utc(value: datetime | None) -> datetime | None:
    """Aware datetimes are kept in UTC (the same instant), so sending them is cheap.

    Anything else is left for the validator to refuse.
    """
    if isinstance(value, datetime) and value.tzinfo is not UTC and value.utcoffset() is not None:
        return value.astimezone(UTC)
    return value


def pin_position(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """A pin's position: -1 global, 0 block, 1.. a slot (and within a 32-bit int)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise fail(attribute.name, "must be an int", value)
    if not -1 <= value < 2**31:
        raise fail(
            attribute.name, "must be from -1 to 2**31-1 (-1 global, 0 block, 1.. a slot)", value
        )


def to_tuple(name: str, value: Iterable[Any]) -> tuple[Any, ...]:
    """A list or tuple (or other iterable) as a tuple; a single str, bytes or mapping is
    refused rather than split into its letters or keys."""
    if isinstance(value, str | bytes | Mapping):
        raise fail(name, "must be a list or tuple, not a single value", value)
    try:
        return tuple(value)
    except TypeError:
        raise fail(name, "must be a list or tuple", value) from None


def _read_only(self: object, *args: Any, **kwargs: Any) -> NoReturn:
    raise TypeError("criteria and metadata of a frozen model are read-only; use attrs.evolve")


#: Each refusing method is declared with this type, one by one, so type checkers know it
#: never returns instead of guessing at an unannotated override of ``dict``'s or ``list``'s.
_Refused: TypeAlias = Callable[..., NoReturn]


class FrozenDict(dict[str, Any]):
    """A dict that refuses changes: criteria and metadata of a validated, frozen model.

    Still a dict, so it compares equal to one and any JSON encoder writes it as is.
    """

    __slots__ = ()
    __setitem__: _Refused = _read_only
    __delitem__: _Refused = _read_only
    __ior__: _Refused = _read_only
    clear: _Refused = _read_only
    pop: _Refused = _read_only
    popitem: _Refused = _read_only
    setdefault: _Refused = _read_only
    update: _Refused = _read_only

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenDict, (dict(self),))


class FrozenList(list[Any]):
    """A list that refuses changes, for arrays inside criteria and metadata."""

    __slots__ = ()
    __setitem__: _Refused = _read_only
    __delitem__: _Refused = _read_only
    __iadd__: _Refused = _read_only
    __imul__: _Refused = _read_only
    append: _Refused = _read_only
    clear: _Refused = _read_only
    extend: _Refused = _read_only
    insert: _Refused = _read_only
    pop: _Refused = _read_only
    remove: _Refused = _read_only
    reverse: _Refused = _read_only
    sort: _Refused = _read_only

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenList, (list(self),))


def _json_copy(value: Any) -> Any:
    """A deep, read-only copy of JSON-like data: neither the caller's later changes nor
    anyone holding the model can alter what was validated."""
    if isinstance(value, Mapping):
        return FrozenDict({k: _json_copy(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return FrozenList(_json_copy(v) for v in value)
    return value


def json_object_copy(value: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """The converter of an optional JSON object field: a deep, read-only copy.

    Such fields are also validated and left out of the hash (dicts are unhashable; leaving
    them out keeps frozen models hashable, and equal models still hash equal). Each is
    spelled out as ``attrs.field(...)``, not made by a helper, so that type checkers see
    the ``__init__`` that runs (keyword-only, these parameter types).
    """
    copy: Mapping[str, Any] | None = _json_copy(value)
    return copy

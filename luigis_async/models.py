"""What a customization *is*: frozen attrs models, validated once at construction.

A model that exists is valid, so the client never re-validates it per request and bad
input fails here, before anything is sent.
"""

from __future__ import annotations

import enum
import json
import math
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal, NoReturn, TypeAlias, TypeVar

import attrs

from .errors import InvalidCustomizationError

__all__ = [
    "CreateRequest",
    "Customization",
    "CustomizationUpdate",
    "DeleteRequest",
    "Page",
    "PinDefinition",
    "PinType",
    "PinTypeValue",
    "StoredCustomization",
    "Summary",
    "TargetType",
    "TargetTypeValue",
    "customization_id",
    "natural_key",
]


class TargetType(enum.StrEnum):
    """What a customization applies to."""

    ITEM = "item"
    CRITERIA = "criteria"
    ALL = "all"


class PinType(enum.StrEnum):
    """What a pin puts into the recommendation."""

    ITEM = "item"
    CRITERIA = "criteria"


#: The string values a ``target_type`` may be given as (a test keeps it equal to the enum).
TargetTypeValue: TypeAlias = Literal["item", "criteria", "all"]
#: The string values a ``pin_type`` may be given as (a test keeps it equal to the enum).
PinTypeValue: TypeAlias = Literal["item", "criteria"]


_E = TypeVar("_E", bound=enum.Enum)


def _to_enum(enum_cls: type[_E], name: str, value: object) -> _E:
    try:
        return enum_cls(value)
    except ValueError:
        choices = ", ".join(str(m.value) for m in enum_cls)
        raise InvalidCustomizationError(
            f"{name}: must be one of {choices}, got {value!r}"
        ) from None


# The converters' parameter types are what type checkers accept in ``__init__``; at run
# time anything is taken, and refused with a message naming the field.
def _to_pin_type(value: PinType | PinTypeValue) -> PinType:
    return _to_enum(PinType, "pin_type", value)


def _to_target_type(value: TargetType | TargetTypeValue) -> TargetType:
    return _to_enum(TargetType, "target_type", value)


def _fail(field: str, rule: str, value: object) -> InvalidCustomizationError:
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return InvalidCustomizationError(f"{field}: {rule}, got {shown}")


def _optional(check: Any) -> Any:
    def validate(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value is not None:
            check(instance, attribute, value)

    return validate


def _non_empty_str(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or not value.strip():
        raise _fail(attribute.name, "must be a non-blank string", value)


def _str(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str):
        raise _fail(attribute.name, "must be a string", value)


def _bool(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, bool):
        raise _fail(attribute.name, "must be a bool", value)


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


def _json_object(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, Mapping):
        raise _fail(attribute.name, "must be a JSON object (a mapping)", value)
    if not _json_value_ok(value):
        raise _fail(
            attribute.name, "must hold only JSON values (str keys, finite numbers)", value
        )


def _aware_datetime(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, datetime):
        raise _fail(attribute.name, "must be a datetime", value)
    if value.tzinfo is None or value.utcoffset() is None:
        raise _fail(
            attribute.name,
            "must be timezone-aware (naive datetimes are ambiguous)",
            value.isoformat(),
        )


def _to_utc(value: datetime | None) -> datetime | None:
    """Aware datetimes are kept in UTC (the same instant), so sending them is cheap.

    Anything else is left for the validator to refuse.
    """
    if isinstance(value, datetime) and value.tzinfo is not UTC and value.utcoffset() is not None:
        return value.astimezone(UTC)
    return value


def _position(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(attribute.name, "must be an int", value)
    if not -1 <= value < 2**31:
        raise _fail(
            attribute.name, "must be from -1 to 2**31-1 (-1 global, 0 block, 1.. a slot)", value
        )


def _to_tuple(name: str, value: Iterable[Any]) -> tuple[Any, ...]:
    if isinstance(value, str | bytes | Mapping):
        raise _fail(name, "must be a list or tuple, not a single value", value)
    try:
        return tuple(value)
    except TypeError:
        raise _fail(name, "must be a list or tuple", value) from None


def _pins_tuple(value: Iterable[PinDefinition]) -> tuple[PinDefinition, ...]:
    return _to_tuple("pin_definitions", value)


def _tags_tuple(value: Iterable[str] | None) -> tuple[str, ...]:
    return () if value is None else _to_tuple("tags", value)


def _tags(_: object, attribute: attrs.Attribute[Any], value: tuple[Any, ...]) -> None:
    for i, tag in enumerate(value):
        if not isinstance(tag, str):
            raise _fail(f"{attribute.name}[{i}]", "must be a string", tag)


def _pins(_: object, attribute: attrs.Attribute[Any], value: tuple[Any, ...]) -> None:
    for i, pin in enumerate(value):
        if not isinstance(pin, PinDefinition):
            raise _fail(f"{attribute.name}[{i}]", "must be a PinDefinition", pin)


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


def _json_object_copy(value: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """The converter of an optional JSON object field: a deep, read-only copy.

    Such fields are also validated and left out of the hash (dicts are unhashable; leaving
    them out keeps frozen models hashable, and equal models still hash equal). Each is
    spelled out as ``attrs.field(...)``, not made by a helper, so that type checkers see
    the ``__init__`` that runs (keyword-only, these parameter types).
    """
    copy: Mapping[str, Any] | None = _json_copy(value)
    return copy


def _to_uuid_or_none(value: uuid.UUID | str | None) -> uuid.UUID | None:
    if value is None or isinstance(value, uuid.UUID):
        return value
    if isinstance(value, str):
        try:
            return uuid.UUID(value)
        except ValueError:
            pass
    raise _fail("id", "must be a UUID", value)


@attrs.frozen(kw_only=True)
class PinDefinition:
    """One pinned item or criteria at a position of the recommendation."""

    position: int = attrs.field(validator=_position)
    pin_type: PinType = attrs.field(converter=_to_pin_type)
    pin_identity: str | None = attrs.field(default=None, validator=_optional(_non_empty_str))
    pin_criteria: Mapping[str, Any] | None = attrs.field(
        default=None,
        converter=_json_object_copy,
        validator=_optional(_json_object),
        hash=False,
    )
    widget_id: str | None = attrs.field(default=None, validator=_optional(_str))
    is_block_pin: bool | None = attrs.field(default=None, validator=_optional(_bool))
    is_bundle_pin: bool | None = attrs.field(default=None, validator=_optional(_bool))
    active_from: datetime | None = attrs.field(
        default=None, converter=_to_utc, validator=_optional(_aware_datetime)
    )
    active_to: datetime | None = attrs.field(
        default=None, converter=_to_utc, validator=_optional(_aware_datetime)
    )

    def __attrs_post_init__(self) -> None:
        if self.pin_type is PinType.ITEM and self.pin_identity is None:
            raise InvalidCustomizationError("pin_identity: required when pin_type is 'item'")
        if self.pin_type is PinType.CRITERIA and self.pin_criteria is None:
            raise InvalidCustomizationError("pin_criteria: required when pin_type is 'criteria'")
        if (
            self.active_from is not None
            and self.active_to is not None
            and self.active_from > self.active_to
        ):
            raise InvalidCustomizationError(
                f"active_from: must not be after active_to "
                f"({self.active_from.isoformat()} > {self.active_to.isoformat()})"
            )


@attrs.frozen
class Customization:
    """The writable body of a customization: what create and update send."""

    model: str = attrs.field(validator=_non_empty_str)
    target_type: TargetType = attrs.field(converter=_to_target_type)
    pin_definitions: tuple[PinDefinition, ...] = attrs.field(
        default=(), converter=_pins_tuple, validator=_pins, kw_only=True
    )
    target_identity: str | None = attrs.field(
        default=None, validator=_optional(_non_empty_str), kw_only=True
    )
    target_criteria: Mapping[str, Any] | None = attrs.field(
        default=None,
        converter=_json_object_copy,
        validator=_optional(_json_object),
        hash=False,
        kw_only=True,
    )
    target_metadata: Mapping[str, Any] | None = attrs.field(
        default=None,
        converter=_json_object_copy,
        validator=_optional(_json_object),
        hash=False,
        kw_only=True,
    )
    tags: tuple[str, ...] = attrs.field(
        default=(), converter=_tags_tuple, validator=_tags, kw_only=True
    )

    def __attrs_post_init__(self) -> None:
        if self.target_type is TargetType.ITEM and self.target_identity is None:
            raise InvalidCustomizationError(
                "target_identity: required when target_type is 'item'"
            )
        if self.target_type is TargetType.CRITERIA and self.target_criteria is None:
            raise InvalidCustomizationError(
                "target_criteria: required when target_type is 'criteria'"
            )


@attrs.frozen
class StoredCustomization(Customization):
    """A customization as the server returns it, with its read-only fields."""

    id: uuid.UUID | None = attrs.field(default=None, converter=_to_uuid_or_none, kw_only=True)
    created_at: datetime | None = attrs.field(
        default=None, converter=_to_utc, validator=_optional(_aware_datetime), kw_only=True
    )
    creator: str | None = attrs.field(default=None, validator=_optional(_str), kw_only=True)
    available: bool | None = attrs.field(default=None, validator=_optional(_bool), kw_only=True)

    @property
    def customization(self) -> Customization:
        """The writable part, e.g. to edit and PUT back."""
        return Customization(
            self.model,
            self.target_type,
            pin_definitions=self.pin_definitions,
            target_identity=self.target_identity,
            target_criteria=self.target_criteria,
            target_metadata=self.target_metadata,
            tags=self.tags,
        )


def customization_id(value: uuid.UUID | str) -> uuid.UUID:
    """Validate a customization ID: only a UUID may ever reach the request path."""
    if isinstance(value, uuid.UUID):
        return value
    if isinstance(value, str):
        try:
            return uuid.UUID(value)
        except ValueError:
            pass
    raise _fail("customization_id", "must be a UUID", value)


def _is_customization(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, Customization):
        raise _fail(attribute.name, "must be a Customization", value)


@attrs.frozen
class CustomizationUpdate:
    """One full-replacement PUT for the batch updater."""

    customization_id: uuid.UUID = attrs.field(converter=customization_id)
    customization: Customization = attrs.field(validator=_is_customization)


@attrs.frozen
class CreateRequest:
    """One create (POST) for the batch updater; not idempotent, so retried only when safe."""

    customization: Customization = attrs.field(validator=_is_customization)


@attrs.frozen
class DeleteRequest:
    """One DELETE for the batch updater."""

    customization_id: uuid.UUID = attrs.field(converter=customization_id)


NaturalKey = tuple[str, str, str]


def natural_key(customization: Customization) -> NaturalKey:
    """What makes two customizations "the same one": model, target type and target.

    The target is the identity for item targets, the canonical JSON of the criteria for
    criteria targets, and nothing for ``all``. Sync matches by it; bulk create's
    conflicts are assumed to be decided by it.
    """
    target = ""
    if customization.target_type is TargetType.ITEM:
        target = customization.target_identity or ""
    elif customization.target_type is TargetType.CRITERIA:
        target = json.dumps(
            customization.target_criteria, sort_keys=True, separators=(",", ":"),
            ensure_ascii=False,
        )
    return (customization.model, customization.target_type.value, target)


@attrs.frozen
class Summary:
    """The tracker's summary: customizations per model, and the tags in use."""

    scope_counts: Mapping[str, int]
    user_tags: tuple[str, ...]


@attrs.frozen
class Page:
    """One page of a list call."""

    results: tuple[StoredCustomization, ...]
    total: int

"""What a customization *is*: frozen attrs models, validated once at construction.

A model that exists is valid, so the client never re-validates it per request and bad
input fails here, before anything is sent. How each field is checked and converted is in
``validators``; this module says which field takes which.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Literal, TypeAlias

import attrs

from .errors import InvalidCustomizationError
from .jsonenc import canonical_json
from .validators import (
    aware_datetime,
    each_instance_of,
    instance_of,
    json_object,
    json_object_copy,
    non_empty_str,
    optional,
    pin_position,
    to_enum,
    to_tuple,
    to_utc,
    to_uuid,
)

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


# The converters' parameter types are what type checkers accept in ``__init__``; at run
# time anything is taken, and refused with a message naming the field.
def _to_pin_type(value: PinType | PinTypeValue) -> PinType:
    return to_enum(PinType, "pin_type", value)


def _to_target_type(value: TargetType | TargetTypeValue) -> TargetType:
    return to_enum(TargetType, "target_type", value)


def _pins_tuple(value: Iterable[PinDefinition]) -> tuple[PinDefinition, ...]:
    return to_tuple("pin_definitions", value)


def _tags_tuple(value: Iterable[str] | None) -> tuple[str, ...]:
    return () if value is None else to_tuple("tags", value)


def _to_id(value: uuid.UUID | str | None) -> uuid.UUID | None:
    return None if value is None else to_uuid("id", value)


_str = instance_of(str, "must be a string")
_bool = instance_of(bool, "must be a bool")


@attrs.frozen(kw_only=True)
class PinDefinition:
    """One pinned item or criteria at a position of the recommendation."""

    position: int = attrs.field(validator=pin_position)
    pin_type: PinType = attrs.field(converter=_to_pin_type)
    pin_identity: str | None = attrs.field(default=None, validator=optional(non_empty_str))
    pin_criteria: Mapping[str, Any] | None = attrs.field(
        default=None,
        converter=json_object_copy,
        validator=optional(json_object),
        hash=False,
    )
    widget_id: str | None = attrs.field(default=None, validator=optional(_str))
    is_block_pin: bool | None = attrs.field(default=None, validator=optional(_bool))
    is_bundle_pin: bool | None = attrs.field(default=None, validator=optional(_bool))
    active_from: datetime | None = attrs.field(
        default=None, converter=to_utc, validator=optional(aware_datetime)
    )
    active_to: datetime | None = attrs.field(
        default=None, converter=to_utc, validator=optional(aware_datetime)
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

    model: str = attrs.field(validator=non_empty_str)
    target_type: TargetType = attrs.field(converter=_to_target_type)
    pin_definitions: tuple[PinDefinition, ...] = attrs.field(
        default=(),
        converter=_pins_tuple,
        validator=each_instance_of(PinDefinition, "must be a PinDefinition"),
        kw_only=True,
    )
    target_identity: str | None = attrs.field(
        default=None, validator=optional(non_empty_str), kw_only=True
    )
    target_criteria: Mapping[str, Any] | None = attrs.field(
        default=None,
        converter=json_object_copy,
        validator=optional(json_object),
        hash=False,
        kw_only=True,
    )
    target_metadata: Mapping[str, Any] | None = attrs.field(
        default=None,
        converter=json_object_copy,
        validator=optional(json_object),
        hash=False,
        kw_only=True,
    )
    tags: tuple[str, ...] = attrs.field(
        default=(),
        converter=_tags_tuple,
        validator=each_instance_of(str, "must be a string"),
        kw_only=True,
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

    id: uuid.UUID | None = attrs.field(default=None, converter=_to_id, kw_only=True)
    created_at: datetime | None = attrs.field(
        default=None, converter=to_utc, validator=optional(aware_datetime), kw_only=True
    )
    creator: str | None = attrs.field(default=None, validator=optional(_str), kw_only=True)
    available: bool | None = attrs.field(default=None, validator=optional(_bool), kw_only=True)

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
    return to_uuid("customization_id", value)


_is_customization = instance_of(Customization, "must be a Customization")


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

    Args:
        customization: any customization, stored or not.

    Returns:
        ``(model, target_type, target)``, comparable and hashable.
    """
    target = ""
    if customization.target_type is TargetType.ITEM:
        target = customization.target_identity or ""
    elif customization.target_type is TargetType.CRITERIA:
        target = canonical_json(customization.target_criteria)
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

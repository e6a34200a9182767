"""The one cattrs converter: how models become JSON and back.

- ``None`` fields are omitted; ``pin_definitions`` and ``tags`` are always sent (a PUT
  replaces the whole customization, so an empty list is meaningful).
- Enums travel as their values; datetimes as ISO 8601 UTC with ``Z``.
- Criteria and metadata objects pass through unchanged.
- Unknown response fields are ignored (the API may add fields).
- Plain values are handed to the models' validators as they are, so a wrong JSON type is
  reported by the same rule, with the same message, as a wrong Python type.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, TypeVar

import cattrs
from cattrs.fns import identity
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from .errors import InvalidCustomizationError
from .jsonenc import wire_json
from .models import (
    Customization,
    PinDefinition,
    PinType,
    StoredCustomization,
    TargetType,
)

__all__ = ["converter", "dumps", "format_datetime", "parse_datetime", "structure_customization"]

_T = TypeVar("_T")


def format_datetime(value: datetime) -> str:
    """ISO 8601 in UTC with a ``Z``, e.g. ``2025-02-01T00:00:00Z``.

    Args:
        value: an aware datetime (converted to UTC).

    Returns:
        The text the API sends and accepts.
    """
    if value.tzinfo is not UTC:  # models hold UTC already; this is for any other caller
        value = value.astimezone(UTC)
    return value.isoformat()[:-6] + "Z"


def parse_datetime(value: Any, _: object = None) -> Any:
    """Parse an ISO 8601 string.

    Anything unparseable is handed on unchanged, and a naive result stays naive, so the
    model's validator rejects it with a message naming the field.

    Args:
        value: what the JSON held.

    Returns:
        A ``datetime``, or ``value`` itself when it is not an ISO 8601 string.
    """
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return value
    return value


def _passthrough(value: Any, _: object) -> Any:
    return value


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter(prefer_attrib_converters=True)
    conv.register_unstructure_hook(datetime, format_datetime)
    conv.register_structure_hook(datetime, parse_datetime)
    conv.register_unstructure_hook(uuid.UUID, str)
    for enum_cls in (TargetType, PinType):
        conv.register_unstructure_hook(enum_cls, str)
    for passed in (str, int, bool):
        conv.register_structure_hook(passed, _passthrough)

    def structure_pin(index: int, pin: object) -> PinDefinition:
        where = f"pin_definitions[{index}]"
        if not isinstance(pin, dict):
            raise InvalidCustomizationError(f"{where}: must be a JSON object, got {pin!r}")
        try:
            return conv.structure(pin, PinDefinition)
        except InvalidCustomizationError as exc:
            raise InvalidCustomizationError(f"{where}.{exc}") from None
        except cattrs.BaseValidationError as exc:
            raise InvalidCustomizationError(f"{where}: {_describe(exc)}") from None

    def structure_pins(value: object, _: object) -> tuple[PinDefinition, ...]:
        if not isinstance(value, list | tuple):
            raise InvalidCustomizationError(f"pin_definitions: must be a list, got {value!r}")
        return tuple(structure_pin(i, pin) for i, pin in enumerate(value))

    # Unstructuring is the hot path of every write, so each field gets the cheapest hook
    # that is right for it (``identity`` is inlined by cattrs); None fields are omitted.
    plain = override(unstruct_hook=identity)
    when = override(unstruct_hook=format_datetime)
    enum_value = override(unstruct_hook=str)  # StrEnum: str() is the value, in C
    unstructure_pin = make_dict_unstructure_fn(
        PinDefinition,
        conv,
        _cattrs_omit_if_default=True,
        position=plain,
        pin_type=enum_value,
        pin_identity=plain,
        pin_criteria=plain,
        widget_id=plain,
        is_block_pin=plain,
        is_bundle_pin=plain,
        active_from=when,
        active_to=when,
    )
    conv.register_unstructure_hook(PinDefinition, unstructure_pin)
    # Date fields have an attrs converter (to UTC), which cattrs would otherwise prefer
    # to parsing: parse first, then the model converts and validates. Other fields with an
    # attrs converter get their value as is, for the model to convert and validate: said
    # explicitly, since before cattrs 24.1 these functions did not take it from the
    # converter (a UUID id failed to parse, and "tags": "summer" became letters).
    parse_date = override(struct_hook=parse_datetime)
    conv.register_structure_hook(
        PinDefinition,
        make_dict_structure_fn(
            PinDefinition,
            conv,
            active_from=parse_date,
            active_to=parse_date,
            _cattrs_prefer_attrib_converters=True,
        ),
    )

    def unstructure_pins(pins: tuple[PinDefinition, ...]) -> list[dict[str, Any]]:
        return [unstructure_pin(pin) for pin in pins]

    body_fields: dict[str, Any] = {
        "model": plain,
        "target_type": enum_value,
        "pin_definitions": override(omit_if_default=False, unstruct_hook=unstructure_pins),
        "target_identity": plain,
        "target_criteria": plain,
        "target_metadata": plain,
        "tags": override(omit_if_default=False, unstruct_hook=list),
    }
    read_only_fields: dict[str, Any] = {
        "id": override(unstruct_hook=str),
        "created_at": when,
        "creator": plain,
        "available": plain,
    }
    for cls, fields in (
        (Customization, body_fields),
        (StoredCustomization, body_fields | read_only_fields),
    ):
        conv.register_unstructure_hook(
            cls, make_dict_unstructure_fn(cls, conv, _cattrs_omit_if_default=True, **fields)
        )
        dates: dict[str, Any] = {"created_at": parse_date} if cls is StoredCustomization else {}
        conv.register_structure_hook(
            cls,
            make_dict_structure_fn(
                cls,
                conv,
                pin_definitions=override(struct_hook=structure_pins),
                _cattrs_prefer_attrib_converters=True,
                **dates,
            ),
        )
    return conv


#: The converter for every model: ``converter.unstructure(model)`` gives the JSON body.
converter: cattrs.Converter = _make_converter()


def structure_customization(data: Any, cls: type[_T] = Customization) -> _T:  # type: ignore[assignment]
    """Build a model from parsed JSON; any problem becomes one InvalidCustomizationError.

    Args:
        data: the parsed JSON: a dict.
        cls: the model to build (``Customization``).

    Returns:
        The model.

    Raises:
        InvalidCustomizationError: ``data`` is not a dict or not a valid ``cls``, or a
            ``Customization`` without ``pin_definitions``.
    """
    if not isinstance(data, dict):
        raise InvalidCustomizationError(f"expected a JSON object, got {type(data).__name__}")
    try:
        model = converter.structure(data, cls)
    except InvalidCustomizationError:
        raise
    except cattrs.BaseValidationError as exc:
        raise InvalidCustomizationError(_describe(exc)) from None
    if cls is Customization and data.get("pin_definitions") is None:
        # A PUT replaces everything: a forgotten field must not silently wipe every pin.
        raise InvalidCustomizationError("pin_definitions: required (send [] for no pins)")
    return model


def _describe(exc: cattrs.BaseValidationError) -> str:
    """Our own validator's message if one fired, else cattrs' path-annotated summary."""
    leaf: BaseException = exc
    while isinstance(leaf, BaseExceptionGroup):
        leaf = leaf.exceptions[0]
    if isinstance(leaf, InvalidCustomizationError):
        return str(leaf)
    messages = []
    for message in cattrs.transform_error(exc):
        text, _, where = message.rpartition(" @ $.")
        messages.append(f"{where}: {text}" if text else message)
    return "; ".join(messages)


def dumps(model: Customization) -> bytes:
    """The JSON body of a create or update request.

    Args:
        model: the customization.

    Returns:
        Compact UTF-8 JSON.
    """
    return wire_json(converter.unstructure(model, Customization))

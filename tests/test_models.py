"""The models: every rule is checked once, at construction, with a message naming the field."""

from __future__ import annotations

import inspect
import math
import typing
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import attrs
import pytest

from luigis_async import (
    Customization,
    CustomizationUpdate,
    DeleteRequest,
    InvalidCustomizationError,
    LuigisBoxError,
    PinDefinition,
    PinType,
    StoredCustomization,
    TargetType,
)
from luigis_async.models import PinTypeValue, TargetTypeValue

CUSTOMIZATION_ID = "199620b4-df1a-46e8-ab59-9e9ed9af7106"
FROM = datetime(2025, 2, 1, tzinfo=UTC)
TO = datetime(2025, 3, 1, tzinfo=UTC)


def field_of(error: BaseException) -> str:
    """The field an error message names: the text before the first colon."""
    return str(error).split(":", 1)[0]


def item_pin(**overrides: Any) -> PinDefinition:
    fields: dict[str, Any] = {"position": 1, "pin_type": "item", "pin_identity": "/p/555"}
    return PinDefinition(**{**fields, **overrides})


def criteria_customization(**overrides: Any) -> Customization:
    fields: dict[str, Any] = {"target_criteria": {"brand": "Fender"}}
    return Customization("basket", "criteria", **{**fields, **overrides})


# -- the error type ------------------------------------------------------------------


@pytest.mark.parametrize("base", [InvalidCustomizationError, ValueError, LuigisBoxError])
def test_validation_error_is_catchable_as(base: type[Exception]) -> None:
    """A rejected model raises something callers can catch as any of its bases."""
    with pytest.raises(base):
        Customization("", "all")


# -- targets -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target_type", "field"),
    [("item", "target_identity"), ("criteria", "target_criteria")],
)
def test_target_requires_its_identity_or_criteria(target_type: str, field: str) -> None:
    """An item target needs target_identity, a criteria target needs target_criteria."""
    with pytest.raises(InvalidCustomizationError) as info:
        Customization("basket", target_type)
    assert field == field_of(info.value)


def test_all_target_needs_neither_identity_nor_criteria() -> None:
    """A target of type all is complete with just a model."""
    customization = Customization("basket", "all")
    assert (None, None) == (customization.target_identity, customization.target_criteria)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("item", TargetType.ITEM), ("criteria", TargetType.CRITERIA), ("all", TargetType.ALL)],
)
def test_target_type_string_becomes_enum(raw: str, expected: TargetType) -> None:
    """A plain string target_type is converted to the TargetType member."""
    customization = Customization(
        "basket", raw, target_identity="/p/1", target_criteria={"brand": "Fender"}
    )
    assert expected is customization.target_type


@pytest.mark.parametrize("raw", ["ITEM", "items", "", "block", None, 1])
def test_unknown_target_type_rejected(raw: object) -> None:
    """A target_type outside item/criteria/all is rejected naming the field."""
    with pytest.raises(InvalidCustomizationError) as info:
        Customization("basket", raw)  # type: ignore[arg-type]
    assert "target_type" == field_of(info.value)


@pytest.mark.parametrize("model", ["", "   ", None, 42, b"basket"])
def test_model_must_be_a_non_empty_string(model: object) -> None:
    """An empty, blank or non-string model is rejected naming the field."""
    with pytest.raises(InvalidCustomizationError) as info:
        Customization(model, "all")  # type: ignore[arg-type]
    assert "model" == field_of(info.value)


@pytest.mark.parametrize("identity", ["", "  ", 123])
def test_target_identity_must_be_a_non_empty_string(identity: object) -> None:
    """A target_identity that is blank or not a string is rejected naming the field."""
    with pytest.raises(InvalidCustomizationError) as info:
        Customization("basket", "item", target_identity=identity)  # type: ignore[arg-type]
    assert "target_identity" == field_of(info.value)


# -- tags ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tags", "field"),
    [
        (["ok", 1], "tags[1]"),
        ([None], "tags[0]"),
        ([b"bytes"], "tags[0]"),
        ("summer", "tags"),
        ({"summer": 1}, "tags"),
        (5, "tags"),
    ],
)
def test_tags_must_be_a_sequence_of_strings(tags: object, field: str) -> None:
    """A non-string tag, or tags that are not a list, are rejected naming the field."""
    with pytest.raises(InvalidCustomizationError) as info:
        Customization("basket", "all", tags=tags)  # type: ignore[arg-type]
    assert field == field_of(info.value)


def test_tags_list_is_stored_as_tuple() -> None:
    """Tags given as a list are kept as an immutable tuple."""
    assert ("a", "b") == Customization("basket", "all", tags=["a", "b"]).tags


def test_pin_definitions_must_be_pins() -> None:
    """A pin_definitions entry that is not a PinDefinition is rejected with its index."""
    with pytest.raises(InvalidCustomizationError) as info:
        Customization("basket", "all", pin_definitions=[item_pin(), {"position": 1}])  # type: ignore[list-item]
    assert "pin_definitions[1]" == field_of(info.value)


# -- criteria and metadata -----------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        ["brand", "Fender"],
        "brand = Fender",
        42,
        {"price": math.nan},
        {"price": math.inf},
        {"nested": {"deeper": [1.0, -math.inf]}},
        {1: "non-string key"},
        {"when": datetime(2025, 1, 1, tzinfo=UTC)},
    ],
    ids=["list", "str", "int", "nan", "inf", "nested-inf", "int-key", "datetime"],
)
@pytest.mark.parametrize("field", ["target_criteria", "target_metadata"])
def test_target_objects_must_be_json_objects(field: str, value: object) -> None:
    """Target criteria/metadata that is not a mapping of finite JSON values is rejected."""
    with pytest.raises(InvalidCustomizationError) as info:
        Customization("basket", "all", **{field: value})
    assert field == field_of(info.value)


@pytest.mark.parametrize(
    "value",
    [
        ["brand"],
        "brand = Fender",
        {"price": math.nan},
        {"a": [{"b": math.nan}]},
        {"id": 2**64},
        {"a": {"b": [-(2**63) - 1]}},
    ],
    ids=["list", "str", "nan", "nested-nan", "int-above-64-bits", "nested-int-below-64-bits"],
)
def test_pin_criteria_must_be_a_json_object(value: object) -> None:
    """Pin criteria that is not a mapping of finite JSON values within 64 bits is rejected."""
    with pytest.raises(InvalidCustomizationError) as info:
        PinDefinition(position=1, pin_type="criteria", pin_criteria=value)  # type: ignore[arg-type]
    assert "pin_criteria" == field_of(info.value)


def test_nested_json_criteria_accepted() -> None:
    """Any nesting of JSON values is accepted and kept as given."""
    criteria = {"brand": {"in": ["Fender", "Gibson"]}, "price": {"lt": 9.5}, "x": None}
    assert criteria == criteria_customization(target_criteria=criteria).target_criteria


def test_caller_mutating_criteria_does_not_change_model() -> None:
    """Changing the dict passed as criteria after construction leaves the model as it was."""
    criteria: dict[str, Any] = {"brand": "Fender"}
    customization = criteria_customization(target_criteria=criteria)
    criteria["brand"] = "Gibson"
    criteria["price"] = math.nan
    assert {"brand": "Fender"} == customization.target_criteria


def test_caller_mutating_pin_criteria_does_not_change_model() -> None:
    """Changing the dict passed as pin_criteria after construction leaves the pin as it was."""
    criteria: dict[str, Any] = {"brand": "Fender"}
    pin = PinDefinition(position=1, pin_type="criteria", pin_criteria=criteria)
    criteria.clear()
    assert {"brand": "Fender"} == pin.pin_criteria


def test_caller_mutating_nested_criteria_does_not_change_model() -> None:
    """Changing a nested value of the criteria passed in leaves the model as it was."""
    criteria: dict[str, Any] = {"brand": {"in": ["Fender"]}}
    customization = criteria_customization(target_criteria=criteria)
    criteria["brand"]["in"].append(math.nan)
    assert {"brand": {"in": ["Fender"]}} == customization.target_criteria


@pytest.mark.parametrize(
    "change",
    [
        lambda c: c.__setitem__("price", math.nan),
        lambda c: c.update(price=1),
        lambda c: c.pop("brand"),
        lambda c: c["nested"]["in"].append(math.nan),
        lambda c: c["nested"].clear(),
    ],
)
def test_criteria_read_from_a_model_cannot_change_it(change: Any) -> None:
    """A validated model's criteria are read-only all the way down (a NaN cannot sneak in)."""
    customization = criteria_customization(
        target_criteria={"brand": "Fender", "nested": {"in": [1]}}
    )
    with pytest.raises(TypeError, match="read-only"):
        change(customization.target_criteria)
    assert {"brand": "Fender", "nested": {"in": [1]}} == customization.target_criteria


# -- pins ----------------------------------------------------------------------------


@pytest.mark.parametrize("position", [-1, 0, 1, 2, 100, 2**31 - 1])
def test_position_accepted(position: int) -> None:
    """Position -1 (global), 0 (block) and any slot from 1 up are accepted."""
    assert position == item_pin(position=position).position


@pytest.mark.parametrize(
    "position", [True, False, 1.5, 1.0, "1", None, -2, -100, 2**31, 2**64], ids=repr
)
def test_position_rejected(position: object) -> None:
    """A position that is a bool, not an int, below -1 or beyond 32 bits is refused by name."""
    with pytest.raises(InvalidCustomizationError) as info:
        item_pin(position=position)
    assert "position" == field_of(info.value)


@pytest.mark.parametrize(
    ("pin_type", "field"), [("item", "pin_identity"), ("criteria", "pin_criteria")]
)
def test_pin_requires_its_identity_or_criteria(pin_type: str, field: str) -> None:
    """An item pin needs pin_identity, a criteria pin needs pin_criteria."""
    with pytest.raises(InvalidCustomizationError) as info:
        PinDefinition(position=1, pin_type=pin_type)
    assert field == field_of(info.value)


@pytest.mark.parametrize(
    ("raw", "expected"), [("item", PinType.ITEM), ("criteria", PinType.CRITERIA)]
)
def test_pin_type_string_becomes_enum(raw: str, expected: PinType) -> None:
    """A plain string pin_type is converted to the PinType member."""
    pin = PinDefinition(position=1, pin_type=raw, pin_identity="/p/1", pin_criteria={})
    assert expected is pin.pin_type


@pytest.mark.parametrize("raw", ["all", "Item", "", None])
def test_unknown_pin_type_rejected(raw: object) -> None:
    """A pin_type outside item/criteria is rejected naming the field."""
    with pytest.raises(InvalidCustomizationError) as info:
        PinDefinition(position=1, pin_type=raw, pin_identity="/p/1")  # type: ignore[arg-type]
    assert "pin_type" == field_of(info.value)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("pin_identity", ""),
        ("pin_identity", 555),
        ("widget_id", 7),
        ("is_block_pin", 1),
        ("is_block_pin", "true"),
        ("is_bundle_pin", 0),
    ],
)
def test_pin_optional_fields_have_types(field: str, value: object) -> None:
    """Optional pin fields of the wrong type are rejected naming the field."""
    with pytest.raises(InvalidCustomizationError) as info:
        item_pin(**{field: value})
    assert field == field_of(info.value)


@pytest.mark.parametrize("field", ["active_from", "active_to"])
def test_naive_datetime_rejected(field: str) -> None:
    """A datetime without a timezone is ambiguous and rejected naming the field."""
    with pytest.raises(InvalidCustomizationError) as info:
        item_pin(**{field: datetime(2025, 2, 1)})
    assert field == field_of(info.value)


@pytest.mark.parametrize("field", ["active_from", "active_to"])
def test_non_datetime_rejected(field: str) -> None:
    """An ISO string is not a datetime: models take datetimes only."""
    with pytest.raises(InvalidCustomizationError) as info:
        item_pin(**{field: "2025-02-01T00:00:00Z"})
    assert field == field_of(info.value)


def test_active_from_after_active_to_rejected() -> None:
    """A pin cannot start after it ends."""
    with pytest.raises(InvalidCustomizationError) as info:
        item_pin(active_from=TO, active_to=FROM)
    assert "active_from" == field_of(info.value)


def test_active_from_after_active_to_compared_as_instants() -> None:
    """Offsets are honoured: 01:00+02:00 is before 00:00Z, so the window is valid."""
    start = datetime(2025, 2, 1, 1, 0, tzinfo=timezone(timedelta(hours=2)))
    end = datetime(2025, 2, 1, 0, 0, tzinfo=UTC)
    assert (start, end) == (item_pin(active_from=start, active_to=end).active_from, end)


def test_active_window_of_zero_length_accepted() -> None:
    """active_from equal to active_to is a valid (if empty) window."""
    pin = item_pin(active_from=FROM, active_to=FROM)
    assert (FROM, FROM) == (pin.active_from, pin.active_to)


# -- stored customizations -----------------------------------------------------------


def test_stored_customization_gives_back_writable_part() -> None:
    """StoredCustomization.customization equals the customization it was stored from."""
    original = Customization(
        "basket",
        "criteria",
        target_criteria={"brand": "Fender"},
        target_metadata={"title": "Guitar"},
        tags=("summer",),
        pin_definitions=(item_pin(active_from=FROM, active_to=TO),),
    )
    stored = StoredCustomization(
        original.model,
        original.target_type,
        target_criteria=original.target_criteria,
        target_metadata=original.target_metadata,
        tags=original.tags,
        pin_definitions=original.pin_definitions,
        id=uuid.UUID(CUSTOMIZATION_ID),
        created_at=FROM,
        creator="admin",
        available=True,
    )
    assert original == stored.customization


def test_stored_customization_writable_part_is_a_plain_customization() -> None:
    """The writable part is exactly a Customization, without the read-only fields."""
    stored = StoredCustomization("basket", "all", id=uuid.UUID(CUSTOMIZATION_ID))
    assert Customization is type(stored.customization)


# -- immutability --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "field"),
    [
        (item_pin(), "position"),
        (Customization("basket", "all"), "model"),
        (StoredCustomization("basket", "all"), "id"),
        (CustomizationUpdate(CUSTOMIZATION_ID, Customization("basket", "all")), "customization"),
        (DeleteRequest(CUSTOMIZATION_ID), "customization_id"),
    ],
    ids=lambda v: type(v).__name__ if not isinstance(v, str) else v,
)
def test_models_are_frozen(model: object, field: str) -> None:
    """Assigning to a field of any model raises FrozenInstanceError."""
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        setattr(model, field, None)


def test_frozen_model_with_criteria_is_hashable() -> None:
    """A frozen model can be hashed (e.g. put in a set) even when it holds criteria."""
    customization = criteria_customization()
    assert {customization} == {criteria_customization()}


def test_models_differing_only_in_criteria_are_not_equal() -> None:
    """Criteria take part in equality even though they are left out of the hash."""
    first = criteria_customization(target_criteria={"brand": "Fender"})
    second = criteria_customization(target_criteria={"brand": "Gibson"})
    assert False is (first == second)


@pytest.mark.parametrize("raw", ["../x", "nope", 42])
def test_stored_customization_id_must_be_a_uuid(raw: object) -> None:
    """A StoredCustomization id that is not a UUID is rejected naming the field."""
    with pytest.raises(InvalidCustomizationError) as info:
        StoredCustomization("basket", "all", id=raw)  # type: ignore[arg-type]
    assert "id" == field_of(info.value)


# -- IDs -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw", ["../x", "a/b", "x?y", "", f"{CUSTOMIZATION_ID}/../x", "not-a-uuid", None, 42]
)
@pytest.mark.parametrize(
    "build",
    [
        lambda raw: CustomizationUpdate(raw, Customization("basket", "all")),
        DeleteRequest,
    ],
    ids=["CustomizationUpdate", "DeleteRequest"],
)
def test_customization_id_must_be_a_uuid(build: Any, raw: object) -> None:
    """Only a UUID may become a customization ID: path-injection strings are rejected."""
    with pytest.raises(InvalidCustomizationError) as info:
        build(raw)
    assert "customization_id" == field_of(info.value)


@pytest.mark.parametrize(
    "raw",
    [CUSTOMIZATION_ID, CUSTOMIZATION_ID.upper(), uuid.UUID(CUSTOMIZATION_ID)],
    ids=["str", "upper", "UUID"],
)
@pytest.mark.parametrize(
    "build",
    [
        lambda raw: CustomizationUpdate(raw, Customization("basket", "all")),
        DeleteRequest,
    ],
    ids=["CustomizationUpdate", "DeleteRequest"],
)
def test_customization_id_is_normalised_to_uuid(build: Any, raw: object) -> None:
    """A UUID given as a string or a UUID is stored as a UUID."""
    assert uuid.UUID(CUSTOMIZATION_ID) == build(raw).customization_id


@pytest.mark.parametrize("value", [None, {"model": "basket"}, "basket"])
def test_customization_update_requires_a_customization(value: object) -> None:
    """CustomizationUpdate carries a Customization model, not raw data."""
    with pytest.raises(InvalidCustomizationError) as info:
        CustomizationUpdate(CUSTOMIZATION_ID, value)  # type: ignore[arg-type]
    assert "customization" == field_of(info.value)


def test_an_empty_widget_id_is_allowed() -> None:
    """widget_id is any string, as the server accepts it."""
    assert "" == item_pin(widget_id="").widget_id


# -- the signatures type checkers see ------------------------------------------------


@pytest.mark.parametrize(
    ("literal", "enum_cls"), [(TargetTypeValue, TargetType), (PinTypeValue, PinType)]
)
def test_kind_literals_list_exactly_the_enum_values(literal: Any, enum_cls: Any) -> None:
    """The Literal accepted for a kind names each enum value, and nothing else."""
    assert [member.value for member in enum_cls] == list(typing.get_args(literal))


@pytest.mark.parametrize(
    ("model", "positional"),
    [
        (Customization, ["model", "target_type"]),
        (StoredCustomization, ["model", "target_type"]),
        (PinDefinition, []),
    ],
)
def test_only_model_and_target_type_are_positional(model: Any, positional: list[str]) -> None:
    """Every other field is keyword-only at run time, as tests/typing checks statically."""
    parameters = inspect.signature(model).parameters.values()
    assert positional == [p.name for p in parameters if p.kind is not p.KEYWORD_ONLY]


def test_criteria_given_positionally_is_refused() -> None:
    """The positional misuse that tests/typing marks as a type error also fails at run time."""
    with pytest.raises(TypeError):
        Customization("basket", "criteria", {"brand": "Fender"})  # type: ignore[call-arg, dict-item]

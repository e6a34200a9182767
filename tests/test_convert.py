"""The converter: models become the documented JSON and come back unchanged."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from luigis_async import (
    Customization,
    InvalidCustomizationError,
    PinDefinition,
    StoredCustomization,
    converter,
)
from luigis_async.convert import dumps, structure_customization

CUSTOMIZATION_ID = uuid.UUID("199620b4-df1a-46e8-ab59-9e9ed9af7106")
CET = timezone(timedelta(hours=1))
IST = timezone(timedelta(hours=5, minutes=30))
NEWFOUNDLAND = timezone(timedelta(hours=-3, minutes=-30))

ITEM_PIN = PinDefinition(position=1, pin_type="item", pin_identity="/p/555")
FULL_ITEM_PIN = PinDefinition(
    position=2,
    pin_type="item",
    pin_identity="/p/777",
    widget_id="homepage-top",
    is_block_pin=False,
    is_bundle_pin=True,
    active_from=datetime(2025, 2, 1, 1, 0, tzinfo=CET),
    active_to=datetime(2025, 3, 1, 5, 30, 0, 250000, tzinfo=IST),
)
FULL_CRITERIA_PIN = PinDefinition(
    position=0,
    pin_type="criteria",
    pin_criteria={"brand": {"in": ["Fender", "Gibson"]}, "price": {"lt": 999.5}},
    widget_id="w",
    is_block_pin=True,
    is_bundle_pin=False,
    active_from=datetime(2025, 1, 1, tzinfo=NEWFOUNDLAND),
    active_to=datetime(2026, 1, 1, tzinfo=UTC),
)

ROUND_TRIP_MODELS = {
    "item-target": Customization(
        "basket", "item", target_identity="/p/123", pin_definitions=(ITEM_PIN,)
    ),
    "criteria-target": Customization(
        "item_detail_complements",
        "criteria",
        target_criteria={"category": "Guitars", "nested": {"a": [1, 2.5, None, True]}},
        tags=("summer", "sale"),
    ),
    "all-target-no-pins": Customization("basket", "all"),
    "item-pin-every-field": Customization("basket", "all", pin_definitions=(FULL_ITEM_PIN,)),
    "criteria-pin-every-field": Customization(
        "basket", "all", pin_definitions=(FULL_CRITERIA_PIN,)
    ),
    "global-and-block-pins": Customization(
        "basket",
        "all",
        pin_definitions=(
            PinDefinition(position=-1, pin_type="item", pin_identity="/p/1"),
            FULL_CRITERIA_PIN,
            ITEM_PIN,
        ),
    ),
    "unicode": Customization(
        "košík",
        "item",
        target_identity="/p/žltý-kôň/😀",
        target_metadata={"title": "Gitara Ž", "image": "https://example.com/ü.png"},
        tags=("léto", "夏"),
        pin_definitions=(PinDefinition(position=1, pin_type="item", pin_identity="/p/ñ"),),
    ),
    "stored-with-read-only-fields": StoredCustomization(
        "basket",
        "item",
        target_identity="/p/123",
        pin_definitions=(FULL_ITEM_PIN, FULL_CRITERIA_PIN),
        tags=("x",),
        id=CUSTOMIZATION_ID,
        created_at=datetime(2025, 1, 20, 13, 0, 0, 123456, tzinfo=CET),
        creator="admin@example.com",
        available=False,
    ),
    "stored-without-read-only-fields": StoredCustomization("basket", "all"),
}


@pytest.mark.parametrize("model", ROUND_TRIP_MODELS.values(), ids=ROUND_TRIP_MODELS.keys())
def test_round_trip(model: Customization) -> None:
    """structure(unstructure(model)) gives back an equal model."""
    assert model == converter.structure(converter.unstructure(model), type(model))


@pytest.mark.parametrize("model", ROUND_TRIP_MODELS.values(), ids=ROUND_TRIP_MODELS.keys())
def test_round_trip_through_json_text(model: Customization) -> None:
    """A model survives the trip through JSON text, as it does over the wire."""
    text = json.dumps(converter.unstructure(model))
    assert model == structure_customization(json.loads(text), type(model))


# -- the JSON body -------------------------------------------------------------------

FULL_CUSTOMIZATION = Customization(
    "basket",
    "criteria",
    target_criteria={"brand": "Fender", "deep": {"list": [{"a": 1}, "b", 2.5, None, False]}},
    target_metadata={"title": "Guitar", "image": "https://example.com/g.png"},
    tags=("summer",),
    pin_definitions=(FULL_ITEM_PIN, FULL_CRITERIA_PIN),
)
FULL_BODY: dict[str, Any] = {
    "model": "basket",
    "target_type": "criteria",
    "target_criteria": {"brand": "Fender", "deep": {"list": [{"a": 1}, "b", 2.5, None, False]}},
    "target_metadata": {"title": "Guitar", "image": "https://example.com/g.png"},
    "tags": ["summer"],
    "pin_definitions": [
        {
            "position": 2,
            "pin_type": "item",
            "pin_identity": "/p/777",
            "widget_id": "homepage-top",
            "is_block_pin": False,
            "is_bundle_pin": True,
            "active_from": "2025-02-01T00:00:00Z",
            "active_to": "2025-03-01T00:00:00.250000Z",
        },
        {
            "position": 0,
            "pin_type": "criteria",
            "pin_criteria": {"brand": {"in": ["Fender", "Gibson"]}, "price": {"lt": 999.5}},
            "widget_id": "w",
            "is_block_pin": True,
            "is_bundle_pin": False,
            "active_from": "2025-01-01T03:30:00Z",
            "active_to": "2026-01-01T00:00:00Z",
        },
    ],
}


def body_of(model: Customization) -> Any:
    """The JSON a request would carry, parsed back."""
    return json.loads(dumps(model))


def test_full_body_has_exactly_the_expected_fields() -> None:
    """Every set field, and no other, is in the body."""
    assert set(FULL_BODY) == set(body_of(FULL_CUSTOMIZATION))


@pytest.mark.parametrize("field", FULL_BODY)
def test_full_body_field(field: str) -> None:
    """Each field of the body is exactly the documented JSON value."""
    assert FULL_BODY[field] == body_of(FULL_CUSTOMIZATION)[field]


def test_unstructure_matches_json_body() -> None:
    """converter.unstructure gives the same data that dumps serialises."""
    assert FULL_BODY == converter.unstructure(FULL_CUSTOMIZATION)


def test_seed_page_example_body() -> None:
    """The update page's example customization serialises to the page's JSON body."""
    model = Customization(
        "basket",
        "item",
        target_identity="/p/123",
        pin_definitions=(
            PinDefinition(
                position=1,
                pin_type="item",
                pin_identity="/p/555",
                active_from=datetime(2025, 2, 1, tzinfo=UTC),
            ),
        ),
    )
    expected = {
        "model": "basket",
        "target_type": "item",
        "target_identity": "/p/123",
        "tags": [],
        "pin_definitions": [
            {
                "position": 1,
                "pin_type": "item",
                "pin_identity": "/p/555",
                "active_from": "2025-02-01T00:00:00Z",
            }
        ],
    }
    assert expected == body_of(model)


def test_none_fields_omitted_but_lists_always_sent() -> None:
    """Unset optional fields are left out; pin_definitions and tags are sent even if empty."""
    expected = {"model": "basket", "target_type": "all", "pin_definitions": [], "tags": []}
    assert expected == body_of(Customization("basket", "all"))


def test_pin_none_fields_omitted() -> None:
    """A pin carries only the fields that were set."""
    expected = [{"position": 1, "pin_type": "item", "pin_identity": "/p/555"}]
    body = body_of(Customization("basket", "all", pin_definitions=(ITEM_PIN,)))
    assert expected == body["pin_definitions"]


def test_false_and_empty_values_are_sent() -> None:
    """False flags and empty objects are values, not absences: they are sent."""
    pin = PinDefinition(
        position=0, pin_type="criteria", pin_criteria={}, is_block_pin=False, is_bundle_pin=False
    )
    expected = {
        "position": 0,
        "pin_type": "criteria",
        "pin_criteria": {},
        "is_block_pin": False,
        "is_bundle_pin": False,
    }
    body = body_of(Customization("basket", "all", pin_definitions=(pin,)))
    assert expected == body["pin_definitions"][0]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (datetime(2025, 2, 1, tzinfo=UTC), "2025-02-01T00:00:00Z"),
        (datetime(2025, 2, 1, 1, 0, tzinfo=CET), "2025-02-01T00:00:00Z"),
        (datetime(2025, 2, 1, 5, 30, tzinfo=IST), "2025-02-01T00:00:00Z"),
        (datetime(2025, 1, 31, 20, 30, tzinfo=NEWFOUNDLAND), "2025-02-01T00:00:00Z"),
        (datetime(2025, 2, 1, 0, 0, 0, 5, tzinfo=UTC), "2025-02-01T00:00:00.000005Z"),
    ],
    ids=["utc", "cet", "ist", "newfoundland", "microseconds"],
)
def test_datetimes_sent_as_utc_z(value: datetime, expected: str) -> None:
    """Datetimes travel as ISO 8601 in UTC with a Z, whatever offset they were made in."""
    pin = PinDefinition(position=1, pin_type="item", pin_identity="/p/1", active_from=value)
    body = body_of(Customization("basket", "all", pin_definitions=(pin,)))
    assert expected == body["pin_definitions"][0]["active_from"]


def test_stored_read_only_fields_unstructured() -> None:
    """A stored customization's id is a string and created_at a UTC Z string."""
    model = ROUND_TRIP_MODELS["stored-with-read-only-fields"]
    data = converter.unstructure(model)
    expected = (str(CUSTOMIZATION_ID), "2025-01-20T12:00:00.123456Z", "admin@example.com", False)
    assert expected == (data["id"], data["created_at"], data["creator"], data["available"])


def test_dumps_sends_only_the_writable_part() -> None:
    """dumps of a stored customization carries no read-only fields (a PUT body)."""
    model = ROUND_TRIP_MODELS["stored-with-read-only-fields"]
    assert set() == {"id", "created_at", "creator", "available"} & set(body_of(model))


def test_dumps_is_compact_utf8() -> None:
    """The body is compact UTF-8 JSON with non-ASCII characters kept as they are."""
    model = Customization("košík", "item", target_identity="/p/ž")
    expected = (
        '{"model":"košík","target_type":"item","pin_definitions":[],"tags":[],'
        '"target_identity":"/p/ž"}'
    )
    assert expected == dumps(model).decode("utf-8")


# -- structuring responses -----------------------------------------------------------

MINIMAL = {"model": "basket", "target_type": "all"}
GOOD_PIN = {"position": 1, "pin_type": "item", "pin_identity": "/p/1"}


def test_unknown_fields_ignored() -> None:
    """Fields the API adds later, at the top or in a pin, are ignored."""
    data = {
        **MINIMAL,
        "brand_new_field": {"x": 1},
        "pin_definitions": [{**GOOD_PIN, "pin_score": 0.7}],
    }
    expected = Customization(
        "basket",
        "all",
        pin_definitions=(PinDefinition(position=1, pin_type="item", pin_identity="/p/1"),),
    )
    assert expected == structure_customization(data)


def test_structure_stored_customization_from_server_json() -> None:
    """A response body becomes a StoredCustomization with parsed id and created_at."""
    data = {
        **MINIMAL,
        "id": str(CUSTOMIZATION_ID),
        "created_at": "2025-01-20T12:00:00Z",
        "creator": "admin",
        "available": True,
        "pin_definitions": [{**GOOD_PIN, "active_from": "2025-02-01T01:00:00+01:00"}],
    }
    expected = StoredCustomization(
        "basket",
        "all",
        id=CUSTOMIZATION_ID,
        created_at=datetime(2025, 1, 20, 12, tzinfo=UTC),
        creator="admin",
        available=True,
        pin_definitions=(
            PinDefinition(
                position=1,
                pin_type="item",
                pin_identity="/p/1",
                active_from=datetime(2025, 2, 1, tzinfo=UTC),
            ),
        ),
    )
    assert expected == structure_customization(data, StoredCustomization)


def pins(*items: object) -> dict[str, Any]:
    return {**MINIMAL, "pin_definitions": list(items)}


BAD_SHAPES = {
    "not-an-object": ([MINIMAL], "expected a JSON object"),
    "model-missing": ({"target_type": "all"}, "model:"),
    "target-type-missing": ({"model": "basket"}, "target_type:"),
    "model-number": ({**MINIMAL, "model": 5}, "model:"),
    "model-null": ({**MINIMAL, "model": None}, "model:"),
    "model-empty": ({**MINIMAL, "model": ""}, "model:"),
    "target-type-unknown": ({**MINIMAL, "target_type": "everything"}, "target_type:"),
    "target-type-list": ({**MINIMAL, "target_type": ["all"]}, "target_type:"),
    "target-identity-missing": ({**MINIMAL, "target_type": "item"}, "target_identity:"),
    "target-identity-number": (
        {**MINIMAL, "target_type": "item", "target_identity": 123},
        "target_identity:",
    ),
    "target-criteria-missing": ({**MINIMAL, "target_type": "criteria"}, "target_criteria:"),
    "target-criteria-list": (
        {**MINIMAL, "target_type": "criteria", "target_criteria": ["brand"]},
        "target_criteria:",
    ),
    "target-criteria-string": (
        {**MINIMAL, "target_type": "criteria", "target_criteria": "brand = Fender"},
        "target_criteria:",
    ),
    "target-metadata-string": ({**MINIMAL, "target_metadata": "x"}, "target_metadata:"),
    "tags-string": ({**MINIMAL, "tags": "summer"}, "tags:"),
    "tags-object": ({**MINIMAL, "tags": {"summer": True}}, "tags:"),
    "tag-number": ({**MINIMAL, "tags": ["ok", 7]}, "tags[1]:"),
    "pin-definitions-object": ({**MINIMAL, "pin_definitions": {"0": GOOD_PIN}}, "pin_definitions:"),
    "pin-definitions-string": ({**MINIMAL, "pin_definitions": "[]"}, "pin_definitions:"),
    "pin-definitions-null": ({**MINIMAL, "pin_definitions": None}, "pin_definitions:"),
    "pin-not-object": (pins(GOOD_PIN, 5), "pin_definitions[1]:"),
    "pin-list": (pins(["position", 1]), "pin_definitions[0]:"),
    "pin-null": (pins(GOOD_PIN, GOOD_PIN, None), "pin_definitions[2]:"),
    "position-string": (
        pins(GOOD_PIN, {**GOOD_PIN, "position": "1"}),
        "pin_definitions[1]: position:",
    ),
    "position-float": (pins({**GOOD_PIN, "position": 1.5}), "pin_definitions[0]: position:"),
    "position-bool": (pins({**GOOD_PIN, "position": True}), "pin_definitions[0]: position:"),
    "position-too-low": (pins({**GOOD_PIN, "position": -2}), "pin_definitions[0]: position:"),
    "position-missing": (
        pins({"pin_type": "item", "pin_identity": "/p/1"}),
        "pin_definitions[0]: position:",
    ),
    "pin-type-missing": (
        pins({"position": 1, "pin_identity": "/p/1"}),
        "pin_definitions[0]: pin_type:",
    ),
    "pin-type-unknown": (pins({**GOOD_PIN, "pin_type": "all"}), "pin_definitions[0]: pin_type:"),
    "pin-identity-missing": (
        pins({"position": 1, "pin_type": "item"}),
        "pin_definitions[0]: pin_identity:",
    ),
    "pin-identity-number": (
        pins({**GOOD_PIN, "pin_identity": 555}),
        "pin_definitions[0]: pin_identity:",
    ),
    "pin-criteria-missing": (
        pins({"position": 1, "pin_type": "criteria"}),
        "pin_definitions[0]: pin_criteria:",
    ),
    "pin-criteria-list": (
        pins({"position": 1, "pin_type": "criteria", "pin_criteria": [1]}),
        "pin_definitions[0]: pin_criteria:",
    ),
    "widget-id-number": (pins({**GOOD_PIN, "widget_id": 3}), "pin_definitions[0]: widget_id:"),
    "is-block-pin-string": (
        pins({**GOOD_PIN, "is_block_pin": "true"}),
        "pin_definitions[0]: is_block_pin:",
    ),
    "is-bundle-pin-number": (
        pins({**GOOD_PIN, "is_bundle_pin": 1}),
        "pin_definitions[0]: is_bundle_pin:",
    ),
    "active-from-garbage": (
        pins({**GOOD_PIN, "active_from": "next week"}),
        "pin_definitions[0]: active_from:",
    ),
    "active-from-number": (
        pins({**GOOD_PIN, "active_from": 1738368000}),
        "pin_definitions[0]: active_from:",
    ),
    "active-to-naive": (
        pins({**GOOD_PIN, "active_to": "2025-02-01T00:00:00"}),
        "pin_definitions[0]: active_to:",
    ),
    "active-window-reversed": (
        pins(
            {**GOOD_PIN, "active_from": "2025-03-01T00:00:00Z", "active_to": "2025-02-01T00:00:00Z"}
        ),
        "pin_definitions[0]: active_from:",
    ),
}


@pytest.mark.parametrize(("data", "where"), BAD_SHAPES.values(), ids=BAD_SHAPES.keys())
def test_bad_shape_names_the_field(data: Any, where: str) -> None:
    """Bad JSON becomes an InvalidCustomizationError whose message starts with the field."""
    with pytest.raises(InvalidCustomizationError) as info:
        structure_customization(data)
    assert where == str(info.value)[: len(where)]


@pytest.mark.parametrize(("data", "where"), BAD_SHAPES.values(), ids=BAD_SHAPES.keys())
def test_bad_shape_in_stored_customization_names_the_field(data: Any, where: str) -> None:
    """A response body is checked by the same rules, with the same messages."""
    with pytest.raises(InvalidCustomizationError) as info:
        structure_customization(data, StoredCustomization)
    assert where == str(info.value)[: len(where)]


@pytest.mark.parametrize("id_", ["nope", "../x", 12, ["199620b4-df1a-46e8-ab59-9e9ed9af7106"]])
def test_bad_stored_id_rejected(id_: object) -> None:
    """A returned id that is not a UUID is rejected."""
    with pytest.raises(InvalidCustomizationError):
        structure_customization({**MINIMAL, "id": id_}, StoredCustomization)


def test_bad_stored_id_names_the_id_field() -> None:
    """A returned id that is not a UUID is reported under the field name 'id'."""
    with pytest.raises(InvalidCustomizationError) as info:
        structure_customization({**MINIMAL, "id": "nope"}, StoredCustomization)
    assert "id:" == str(info.value)[:3]


READ_ONLY_BAD_SHAPES = {
    "created-at-garbage": ({"created_at": "soon"}, "created_at:"),
    "created-at-number": ({"created_at": 1737374400}, "created_at:"),
    "created-at-naive": ({"created_at": "2025-01-20T12:00:00"}, "created_at:"),
    "creator-number": ({"creator": 5}, "creator:"),
    "available-string": ({"available": "yes"}, "available:"),
    "available-number": ({"available": 1}, "available:"),
}


@pytest.mark.parametrize(
    ("extra", "where"), READ_ONLY_BAD_SHAPES.values(), ids=READ_ONLY_BAD_SHAPES.keys()
)
def test_bad_read_only_field_names_the_field(extra: dict[str, Any], where: str) -> None:
    """A wrongly typed read-only field in a response is rejected, naming the field."""
    with pytest.raises(InvalidCustomizationError) as info:
        structure_customization({**MINIMAL, **extra}, StoredCustomization)
    assert where == str(info.value)[: len(where)]


def test_null_tags_mean_no_tags() -> None:
    """``"tags": null`` is read as no tags, as the server reads it."""
    assert () == structure_customization({**MINIMAL, "pin_definitions": [], "tags": None}).tags


def test_a_missing_pin_list_is_refused() -> None:
    """A body without pin_definitions would wipe every pin on PUT: it is refused."""
    body = {key: value for key, value in MINIMAL.items() if key != "pin_definitions"}
    with pytest.raises(InvalidCustomizationError, match="pin_definitions: required"):
        structure_customization(body)

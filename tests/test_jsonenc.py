"""The two JSON encoders: canonical text to compare, compact strict bytes to send."""

from __future__ import annotations

import json
from typing import Any

import pytest

from luigis_async import Customization, CustomizationFilter, InvalidCustomizationError
from luigis_async import natural_key as client_key
from luigis_async.endpoints import list_page
from luigis_async.jsonenc import _dumps_stdlib, canonical_json, wire_json
from luigis_async.sandbox.bulk import natural_key as sandbox_key

CRITERIA = {"brand": ["Fender", "Gibson"], "category": "kytary é"}


def test_canonical_json_is_one_text_whatever_the_key_order() -> None:
    """Sorted keys, no spaces, non-ASCII as is: equal data, equal text."""
    reordered = {"category": "kytary é", "brand": ["Fender", "Gibson"]}

    assert canonical_json(CRITERIA) == canonical_json(reordered)
    assert '{"brand":["Fender","Gibson"],"category":"kytary é"}' == canonical_json(reordered)


@pytest.mark.parametrize("encode", [wire_json, _dumps_stdlib], ids=["installed", "stdlib"])
def test_wire_json_is_compact_utf8_in_the_callers_order(encode: Any) -> None:
    reordered = {"category": "kytary é", "brand": ["Fender", "Gibson"]}

    assert '{"category":"kytary é","brand":["Fender","Gibson"]}'.encode() == encode(reordered)


@pytest.mark.parametrize(
    "bad", [float("nan"), float("inf"), "\udc80"], ids=["nan", "inf", "surrogate"]
)
def test_the_stdlib_encoder_refuses_what_is_not_strict_json(bad: object) -> None:
    with pytest.raises(InvalidCustomizationError, match="not representable as JSON"):
        _dumps_stdlib({"criteria": [{"x": bad}]})


def test_wire_json_refuses_a_lone_surrogate() -> None:
    with pytest.raises(InvalidCustomizationError, match="not representable as JSON"):
        wire_json({"criteria": [{"x": "\udc80"}]})


def test_the_list_criteria_body_is_wire_json() -> None:
    """The list call's criteria travel like every other body."""
    call = list_page(
        limit=10, offset=0, filters=CustomizationFilter(), sort=None, criteria=[CRITERIA]
    )

    assert wire_json({"criteria": [CRITERIA]}) == call.body
    assert {"criteria": [CRITERIA]} == json.loads(call.body or b"")


def test_client_and_sandbox_key_criteria_targets_alike() -> None:
    """Both natural keys use canonical_json, so the sandbox's bulk conflicts match the
    client's sync plan."""
    customization = Customization("basket", "criteria", target_criteria=CRITERIA)
    body = {"model": "basket", "target_type": "criteria", "target_criteria": dict(CRITERIA)}

    assert client_key(customization) == sandbox_key(body)

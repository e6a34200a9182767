"""The sandbox's validation of customization bodies, as the API does it."""

# STYLE.md asks for `assert expected == actual`; ruff's SIM300 calls that a Yoda condition.

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from luigis_async.sandbox import Sandbox
from luigis_async.sandbox.validation import CONFIG_REASON, PIN_REASON, check

from . import sandbox_support
from .sandbox_support import (
    item_body,
    pin,
    send,
)

# The shared fixtures, registered in this module.
clock, http, sb = sandbox_support.clock, sandbox_support.http, sandbox_support.sb


# --- body validation ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"model": None}, {"model": ["Missing required field"]}),
        ({"model": ""}, {"model": ["Must be a non-blank string"]}),
        ({"model": 3}, {"model": ["Must be a string"]}),
        ({"target_type": "page"}, {"target_type": ["Must be one of: item, criteria, all"]}),
        ({"target_identity": None}, {"target_identity": ["Missing required field"]}),
        ({"target_type": "all", "target_identity": None}, {}),
        ({"target_type": "criteria"}, {"target_criteria": ["Missing required field"]}),
        ({"target_metadata": "t"}, {"target_metadata": ["Must be a JSON object"]}),
        ({"tags": ["a", 1]}, {"tags": ["Must be an array of strings"]}),
        ({"tags": None, "target_metadata": None}, {}),
        ({"pin_definitions": None}, {"pin_definitions": ["Missing required field"]}),
        ({"pin_definitions": {}}, {"pin_definitions": ["Must be an array of pin objects"]}),
        ({"pin_definitions": []}, {}),
        ({"pin_definitions": [pin(), 7]}, {"pin_definitions[1]": ["Must be a JSON object"]}),
        ({"unknown": "ignored"}, {}),
    ],
)
def test_check_reports_customization_rules(
    changes: dict[str, Any], expected: dict[str, list[str]]
) -> None:
    """check() names each broken top-level rule under its field."""
    assert expected == check(item_body(**changes))


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"position": None}, {"position": ["Missing required field"]}),
        ({"position": True}, {"position": ["Must be an integer >= -1"]}),
        ({"position": -2}, {"position": ["Must be an integer >= -1"]}),
        ({"position": 1.0}, {"position": ["Must be an integer >= -1"]}),
        ({"position": -1}, {}),
        ({"position": 0, "is_block_pin": True}, {}),
        ({"pin_type": "brand"}, {"pin_type": ["Must be one of: item, criteria"]}),
        ({"pin_identity": ""}, {"pin_identity": ["Must be a non-blank string"]}),
        ({"pin_type": "criteria"}, {"pin_criteria": ["Missing required field"]}),
        ({"pin_type": "criteria", "pin_criteria": {"brand": "X"}}, {}),
        ({"widget_id": 5}, {"widget_id": ["Must be a string"]}),
        ({"is_bundle_pin": "yes"}, {"is_bundle_pin": ["Must be a boolean"]}),
        ({"active_from": "2025-02-01T00:00:00"}, {"active_from": ["naive"]}),
        ({"active_to": "next week"}, {"active_to": ["bad"]}),
        ({"active_to": 20250201}, {"active_to": ["bad"]}),
        (
            {"active_from": "2025-02-02T00:00:00Z", "active_to": "2025-02-01T00:00:00Z"},
            {"active_to": ["Must not be before active_from"]},
        ),
        ({"active_from": "2025-02-01T00:00:00Z", "active_to": "2025-02-01T01:00:00+01:00"}, {}),
        ({"widget_id": None, "active_from": None, "is_bundle_pin": None}, {}),
    ],
)
def test_check_reports_pin_rules_with_dotted_paths(
    fields: dict[str, Any], expected: dict[str, list[str]]
) -> None:
    """check() names each broken pin rule as pin_definitions[i].field."""
    date_message = "Must be an ISO 8601 date-time with a timezone, e.g. 2025-02-01T00:00:00Z"
    wanted = {
        f"pin_definitions[1].{name}": [date_message if m in ("naive", "bad") else m for m in msgs]
        for name, msgs in expected.items()
    }

    assert wanted == check(item_body(pin_definitions=[pin(), pin(**fields)]))


async def test_configuration_errors_answer_400(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    """Only non-pin errors: 400 Invalid configuration provided, with every detail."""
    reply = await send(http, sb, "POST", "/scope", item_body(model="", target_type="page"))

    assert 400 == reply.status
    assert {
        "reason": CONFIG_REASON,
        "exception_details": {
            "model": ["Must be a non-blank string"],
            "target_type": ["Must be one of: item, criteria, all"],
        },
    } == reply.json
    assert {} == sb.store


async def test_any_pin_error_answers_422_with_all_details(
    sb: Sandbox, http: aiohttp.ClientSession
) -> None:
    """A pin error makes it 422 Invalid pin definition provided, listing non-pin errors too."""
    customization_id = sb.add(item_body())
    body = item_body(target_type="page", pin_definitions=[pin(), pin(), {"pin_type": "item"}])

    reply = await send(http, sb, "PUT", f"/scope/{customization_id}", body)

    assert 422 == reply.status
    assert {
        "reason": PIN_REASON,
        "exception_details": {
            "target_type": ["Must be one of: item, criteria, all"],
            "pin_definitions[2].position": ["Missing required field"],
            "pin_definitions[2].pin_identity": ["Missing required field"],
        },
    } == reply.json
    assert item_body()["pin_definitions"] == sb.store[customization_id]["pin_definitions"]


@pytest.mark.parametrize(
    ("body", "reason_part"),
    [
        (b"{not json", "not valid JSON"),
        (b"", "must be a JSON object"),
        (b"[1, 2]", "must be a JSON object"),
        (b'"text"', "must be a JSON object"),
    ],
)
async def test_body_that_is_not_a_json_object_answers_400(
    sb: Sandbox, http: aiohttp.ClientSession, body: bytes, reason_part: str
) -> None:
    """Create with invalid JSON or a non-object body answers 400."""
    reply = await send(http, sb, "POST", "/scope", body)

    assert 400 == reply.status
    assert reason_part in reply.json["reason"]

"""The sandbox server, driven over real sockets with a raw aiohttp session and ``sign``."""

# STYLE.md asks for `assert expected == actual`; ruff's SIM300 calls that a Yoda condition.

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import io
import json
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import aiohttp
import pytest

from luigis_async.auth import CONTENT_TYPE, http_date, sign
from luigis_async.sandbox import Faults, RequestRecord, Sandbox
from luigis_async.sandbox.__main__ import describe, main, serve_forever
from luigis_async.sandbox.faults import Decision, FaultInjector
from luigis_async.sandbox.validation import CONFIG_REASON, PIN_REASON, check

NOW = 1_737_374_400.0  # Mon, 20 Jan 2025 12:00:00 GMT
NOW_ISO = "2025-01-20T12:00:00.000Z"
KEY = "test-private-key"
UNKNOWN_ID = "199620b4-df1a-46e8-ab59-9e9ed9af7106"
ROOT = Path(__file__).resolve().parents[1]  # the checkout, for the subprocess's PYTHONPATH


class Clock:
    """A settable clock for the sandbox."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Reply(NamedTuple):
    status: int
    json: Any
    headers: Mapping[str, str]


def api_path(sb: Sandbox, suffix: str, tracker_id: str | None = None) -> str:
    return f"/v1/recommender/pin/{tracker_id or sb.tracker_id}{suffix}"


def signed_headers(
    sb: Sandbox,
    method: str,
    path: str,
    *,
    key: str | None = None,
    date: str | None = None,
    content_type: str = CONTENT_TYPE,
) -> dict[str, str]:
    date = date if date is not None else http_date(sb.clock())
    signature = sign(key or sb.private_key, method, content_type, date, path)
    return {
        "Content-Type": content_type,
        "Date": date,
        "Authorization": f"ApiAuth {sb.tracker_id}:{signature}",
    }


async def send_raw(
    http: aiohttp.ClientSession,
    sb: Sandbox,
    method: str,
    path: str,
    headers: Mapping[str, str],
    body: Any = None,
    params: Sequence[tuple[str, str]] = (),
) -> Reply:
    data = (
        body if body is None or isinstance(body, bytes | io.BytesIO) else json.dumps(body).encode()
    )
    async with http.request(
        method,
        sb.url + path,
        headers=dict(headers),
        data=data,
        params=list(params),
        skip_auto_headers=["Content-Type"],  # send exactly the headers given, or none
    ) as response:
        text = await response.text()
        return Reply(response.status, json.loads(text) if text else None, response.headers)


async def send(
    http: aiohttp.ClientSession,
    sb: Sandbox,
    method: str,
    suffix: str,
    body: Any = None,
    params: Sequence[tuple[str, str]] = (),
    tracker_id: str | None = None,
) -> Reply:
    """A correctly signed request to ``/v1/recommender/pin/{tracker}{suffix}``."""
    path = api_path(sb, suffix, tracker_id)
    return await send_raw(http, sb, method, path, signed_headers(sb, method, path), body, params)


def item_body(**overrides: Any) -> dict[str, Any]:
    body = {
        "model": "basket",
        "target_type": "item",
        "target_identity": "/p/123",
        "pin_definitions": [
            {
                "position": 1,
                "pin_type": "item",
                "pin_identity": "/p/555",
                "active_from": "2025-02-01T00:00:00Z",
            }
        ],
    }
    return {**body, **overrides}


def pin(position: int = 1, **fields: Any) -> dict[str, Any]:
    return {"position": position, "pin_type": "item", "pin_identity": "/p/1", **fields}


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
async def sb(clock: Clock) -> AsyncIterator[Sandbox]:
    async with Sandbox(clock=clock, private_key=KEY) as sandbox:
        yield sandbox


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


# --- endpoints ------------------------------------------------------------------------


async def test_create_answers_201_with_the_stored_customization(
    sb: Sandbox, http: aiohttp.ClientSession
) -> None:
    """POST /scope stores the body plus id, created_at, creator, available and echoes it."""
    reply = await send(http, sb, "POST", "/scope", item_body(tags=["sale"]))

    assert 201 == reply.status
    [(stored_id, stored)] = sb.store.items()
    assert stored == reply.json
    assert stored_id == stored["id"]
    assert 36 == len(stored_id)
    assert "basket" == stored["model"]
    assert "item" == stored["target_type"]
    assert "/p/123" == stored["target_identity"]
    assert ["sale"] == stored["tags"]
    assert item_body()["pin_definitions"] == stored["pin_definitions"]
    assert NOW_ISO == stored["created_at"]
    assert "sandbox" == stored["creator"]
    assert stored["available"] is True


async def test_create_drops_nulls_and_read_only_fields(
    sb: Sandbox, http: aiohttp.ClientSession
) -> None:
    """Null fields and client-sent id/created_at/creator/available are not stored."""
    body = item_body(
        tags=None,
        id=UNKNOWN_ID,
        created_at="2000-01-01T00:00:00Z",
        creator="me",
        available=False,
        pin_definitions=[pin(widget_id=None, active_to=None)],
        extra_field="kept",
    )
    reply = await send(http, sb, "POST", "/scope", body)

    assert 201 == reply.status
    stored = sb.store[reply.json["id"]]
    assert UNKNOWN_ID != stored["id"]
    assert NOW_ISO == stored["created_at"]
    assert "sandbox" == stored["creator"]
    assert stored["available"] is True
    assert "tags" not in stored
    assert [pin()] == stored["pin_definitions"]
    assert "kept" == stored["extra_field"]


async def test_get_returns_the_stored_customization(
    sb: Sandbox, http: aiohttp.ClientSession
) -> None:
    """GET /scope/{id} answers 200 with exactly what is stored."""
    customization_id = sb.add(item_body())

    reply = await send(http, sb, "GET", f"/scope/{customization_id}")

    assert (200, sb.store[customization_id]) == (reply.status, reply.json)


async def test_update_replaces_everything_but_id_created_at_and_creator(
    sb: Sandbox, http: aiohttp.ClientSession, clock: Clock
) -> None:
    """PUT /scope/{id} answers 204 and replaces the whole body, keeping the read-only fields."""
    customization_id = sb.add(item_body(tags=["old"], target_metadata={"title": "Old"}))
    clock.now += 60
    new_body = {
        "model": "item_detail_complements",
        "target_type": "criteria",
        "target_criteria": {"brand": "Fender"},
        "pin_definitions": [pin(2), {"position": 0, "pin_type": "criteria", "pin_criteria": {}}],
    }

    reply = await send(http, sb, "PUT", f"/scope/{customization_id}", new_body)

    assert (204, None) == (reply.status, reply.json)
    stored = sb.store[customization_id]
    assert {
        "id": customization_id,
        **new_body,
        "created_at": NOW_ISO,
        "creator": "sandbox",
        "available": True,
    } == stored


async def test_delete_removes_the_customization(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    """DELETE /scope/{id} answers 204 and forgets it; a second delete is 404."""
    keep = sb.add(item_body())
    gone = sb.add(item_body())

    first = await send(http, sb, "DELETE", f"/scope/{gone}")
    second = await send(http, sb, "DELETE", f"/scope/{gone}")

    assert (204, 404) == (first.status, second.status)
    assert [keep] == list(sb.store)


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
@pytest.mark.parametrize("customization_id", [UNKNOWN_ID, "not-a-uuid", "12345"])
async def test_unknown_or_malformed_id_is_404(
    sb: Sandbox, http: aiohttp.ClientSession, method: str, customization_id: str
) -> None:
    """An ID that is unknown or not a UUID answers 404 with a JSON reason."""
    sb.add(item_body())

    reply = await send(http, sb, method, f"/scope/{customization_id}", item_body())

    assert (404, {"reason": "Customization not found"}) == (reply.status, reply.json)


async def test_id_lookup_ignores_case(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    """A UUID in upper case finds the same customization."""
    customization_id = sb.add(item_body())

    reply = await send(http, sb, "GET", f"/scope/{customization_id.upper()}")

    assert (200, customization_id) == (reply.status, reply.json["id"])


@pytest.mark.parametrize(
    ("method", "suffix"),
    [
        ("POST", "/scope"),
        ("POST", "/scopes"),
        ("POST", "/scopes/export"),
        ("GET", f"/scope/{UNKNOWN_ID}"),
    ],
)
async def test_other_tracker_in_path_is_404(
    sb: Sandbox, http: aiohttp.ClientSession, method: str, suffix: str
) -> None:
    """A correctly signed request for another tracker's path answers 404 Tracker not found."""
    reply = await send(http, sb, method, suffix, item_body(), tracker_id="9999-0000")

    assert (404, {"reason": "Tracker not found"}) == (reply.status, reply.json)
    assert {} == sb.store


async def test_unknown_route_and_method_answer_json(
    sb: Sandbox, http: aiohttp.ClientSession
) -> None:
    """Paths and methods the API lacks still answer a JSON error body."""
    missing = await send(http, sb, "GET", "/nothing")
    wrong_method = await send(http, sb, "GET", "/scope")

    assert (404, "Not Found") == (missing.status, missing.json["reason"])
    assert (405, "POST") == (wrong_method.status, wrong_method.headers["Allow"])
    assert "reason" in wrong_method.json


async def test_every_response_carries_the_sandbox_clock_as_date(
    sb: Sandbox, http: aiohttp.ClientSession, clock: Clock
) -> None:
    """Date on success and on 401 comes from the sandbox clock, so clients can learn skew."""
    ok = await send(http, sb, "POST", "/scopes")
    path = api_path(sb, "/scopes")
    rejected = await send_raw(http, sb, "POST", path, signed_headers(sb, "POST", path, key="x"))

    assert http_date(NOW) == ok.headers["Date"]
    assert (401, http_date(NOW)) == (rejected.status, rejected.headers["Date"])


async def test_oversized_body_answers_413_json(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    """A body over aiohttp's 1 MiB limit still gets a JSON error and a logged record."""
    reply = await send(http, sb, "POST", "/scope", io.BytesIO(b" " * (1024**2 + 1)))

    assert (413, 413) == (reply.status, sb.requests[-1].status)
    assert "reason" in reply.json


# --- list ---------------------------------------------------------------------------


@pytest.fixture
def catalog(sb: Sandbox, clock: Clock) -> list[str]:
    """Five customizations with distinct created_at, inserted out of alphabetical order."""
    bodies = [
        item_body(model="basket", target_identity="/p/1", tags=["sale"]),
        item_body(model="alpha", target_identity="/p/2", tags=["new", "sale"]),
        {"model": "basket", "target_type": "all", "pin_definitions": []},
        {
            "model": "zeta",
            "target_type": "criteria",
            "target_criteria": {"brand": "Fender"},
            "pin_definitions": [],
        },
        {
            "model": "alpha",
            "target_type": "criteria",
            "target_criteria": {"brand": "Gibson"},
            "pin_definitions": [],
            "tags": ["new"],
        },
    ]
    ids = []
    for offset, body in zip([30, 10, 40, 0, 20], bodies, strict=True):
        clock.now = NOW + offset
        ids.append(sb.add(body))
    clock.now = NOW
    return ids


async def test_list_returns_everything_in_insertion_order_by_default(
    sb: Sandbox, http: aiohttp.ClientSession, catalog: list[str]
) -> None:
    """POST /scopes without parameters answers all customizations, oldest insertion first."""
    reply = await send(http, sb, "POST", "/scopes")

    assert 200 == reply.status
    assert {"total": 5} == reply.json["pagination"]
    assert [sb.store[i] for i in catalog] == reply.json["results"]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ([("limit", "2")], [0, 1]),
        ([("limit", "2"), ("offset", "2")], [2, 3]),
        ([("offset", "4")], [4]),
        ([("offset", "9")], []),
        ([("limit", "0")], []),
    ],
)
async def test_list_pages_with_limit_and_offset(
    sb: Sandbox,
    http: aiohttp.ClientSession,
    catalog: list[str],
    params: list[tuple[str, str]],
    expected: list[int],
) -> None:
    """limit and offset slice the results; the total still counts every match."""
    reply = await send(http, sb, "POST", "/scopes", params=params)

    assert 5 == reply.json["pagination"]["total"]
    assert [catalog[i] for i in expected] == [c["id"] for c in reply.json["results"]]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ([("model", "alpha")], [1, 4]),
        ([("model", "alpha"), ("model", "zeta")], [1, 3, 4]),
        ([("tag", "sale")], [0, 1]),
        ([("tag", "new"), ("tag", "sale")], [0, 1, 4]),
        ([("target_type", "criteria")], [3, 4]),
        ([("target_identity", "/p/2")], [1]),
        ([("model", "basket"), ("target_type", "all")], [2]),
        ([("model", "nope")], []),
    ],
)
async def test_list_filters_and_repeated_keys_mean_any(
    sb: Sandbox,
    http: aiohttp.ClientSession,
    catalog: list[str],
    params: list[tuple[str, str]],
    expected: list[int],
) -> None:
    """Each filter narrows the results; repeating a key accepts any of its values."""
    reply = await send(http, sb, "POST", "/scopes", params=params)

    assert len(expected) == reply.json["pagination"]["total"]
    assert [catalog[i] for i in expected] == [c["id"] for c in reply.json["results"]]


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("created_at:asc", [3, 1, 4, 0, 2]),
        ("created_at:desc", [2, 0, 4, 1, 3]),
        ("created_at", [3, 1, 4, 0, 2]),
        ("model:asc", [1, 4, 0, 2, 3]),
        ("model:desc", [3, 0, 2, 1, 4]),
        ("model:asc,created_at:desc", [4, 1, 2, 0, 3]),
    ],
)
async def test_list_sorts(
    sb: Sandbox, http: aiohttp.ClientSession, catalog: list[str], sort: str, expected: list[int]
) -> None:
    """sort=field:asc|desc orders the results; ties keep insertion order."""
    reply = await send(http, sb, "POST", "/scopes", params=[("sort", sort)])

    assert [catalog[i] for i in expected] == [c["id"] for c in reply.json["results"]]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"criteria": [{"brand": "Gibson"}]}, [4]),
        ({"criteria": [{"brand": "Gibson"}, {"brand": "Fender"}]}, [3, 4]),
        ({"criteria": [{"brand": "Nobody"}]}, []),
        ({"criteria": []}, [0, 1, 2, 3, 4]),
        ({}, [0, 1, 2, 3, 4]),
    ],
)
async def test_list_criteria_body_keeps_equal_target_criteria(
    sb: Sandbox,
    http: aiohttp.ClientSession,
    catalog: list[str],
    body: dict[str, Any],
    expected: list[int],
) -> None:
    """A criteria body keeps customizations whose target_criteria equals one given object."""
    reply = await send(http, sb, "POST", "/scopes", body)

    assert [catalog[i] for i in expected] == [c["id"] for c in reply.json["results"]]


@pytest.mark.parametrize(
    ("params", "body", "field"),
    [
        ([("limit", "-1")], None, "limit"),
        ([("limit", "ten")], None, "limit"),
        ([("offset", "1.5")], None, "offset"),
        ([("sort", "price:asc")], None, "sort"),
        ([("sort", "model:up")], None, "sort"),
        ([], {"criteria": "brand=Fender"}, "criteria"),
        ([], {"criteria": ["brand=Fender"]}, "criteria"),
        ([], [1, 2], "body"),
    ],
)
async def test_list_rejects_bad_parameters_with_422(
    sb: Sandbox,
    http: aiohttp.ClientSession,
    params: list[tuple[str, str]],
    body: Any,
    field: str,
) -> None:
    """Bad paging, sort or criteria answers 422 Invalid filter naming the parameter."""
    reply = await send(http, sb, "POST", "/scopes", body, params=params)

    assert (422, "Invalid filter") == (reply.status, reply.json["reason"])
    assert [field] == list(reply.json["exception_details"])


async def test_list_rejects_a_body_that_is_not_json(
    sb: Sandbox, http: aiohttp.ClientSession
) -> None:
    """A list body that does not parse answers 400."""
    reply = await send(http, sb, "POST", "/scopes", b"{criteria")

    assert 400 == reply.status
    assert reply.json["reason"].startswith("Request body is not valid JSON")


# --- export -------------------------------------------------------------------------


async def test_export_returns_every_match_without_paging(
    sb: Sandbox, http: aiohttp.ClientSession, catalog: list[str]
) -> None:
    """POST /scopes/export answers all matches as {"results": [...]}, ignoring limit."""
    reply = await send(
        http, sb, "POST", "/scopes/export", params=[("model", "alpha"), ("limit", "1")]
    )

    assert 200 == reply.status
    assert {"results": [sb.store[catalog[1]], sb.store[catalog[4]]]} == reply.json


async def test_export_remove_expired_pins_drops_only_past_pins(
    sb: Sandbox, http: aiohttp.ClientSession
) -> None:
    """remove_expired_pins=true drops pins whose active_to is before the sandbox clock."""
    pins = [
        pin(1, active_to="2025-01-20T11:59:59Z"),  # expired a second ago
        pin(2, active_to="2025-01-20T13:00:00+01:00"),  # the same instant as now: kept
        pin(3, active_to="2030-01-01T00:00:00Z"),
        pin(4),
    ]
    customization_id = sb.add(item_body(pin_definitions=pins))

    pruned = await send(
        http, sb, "POST", "/scopes/export", params=[("remove_expired_pins", "true")]
    )
    everything = await send(
        http, sb, "POST", "/scopes/export", params=[("remove_expired_pins", "false")]
    )

    [exported] = pruned.json["results"]
    assert [2, 3, 4] == [p["position"] for p in exported["pin_definitions"]]
    assert [1, 2, 3, 4] == [p["position"] for p in everything.json["results"][0]["pin_definitions"]]
    assert pins == sb.store[customization_id]["pin_definitions"]


async def test_export_accepts_remove_nonexisting_item_pins_as_a_no_op(
    sb: Sandbox, http: aiohttp.ClientSession
) -> None:
    """remove_nonexisting_item_pins is accepted and changes nothing (no catalog)."""
    customization_id = sb.add(item_body())

    reply = await send(
        http, sb, "POST", "/scopes/export", params=[("remove_nonexisting_item_pins", "true")]
    )

    assert {"results": [sb.store[customization_id]]} == reply.json


async def test_export_rejects_a_bad_flag_with_422(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    """A flag that is not true/false answers 422 Invalid filter."""
    reply = await send(
        http, sb, "POST", "/scopes/export", params=[("remove_expired_pins", "maybe")]
    )

    assert (422, ["remove_expired_pins"]) == (
        reply.status,
        list(reply.json["exception_details"]),
    )


# --- authentication -----------------------------------------------------------------


def _raw_signature(key: str, method: str, date: str, signed_path: str) -> str:
    """A signature over any path, query string included (sign() would strip it)."""
    message = f"{method}\n{CONTENT_TYPE}\n{date}\n{signed_path}".encode()
    return base64.b64encode(hmac.new(key.encode(), message, hashlib.sha256).digest()).decode()


def _wrong_key(sb: Sandbox, method: str, path: str) -> dict[str, str]:
    return signed_headers(sb, method, path, key="not-the-key")


def _plain_json_content_type(sb: Sandbox, method: str, path: str) -> dict[str, str]:
    return signed_headers(sb, method, path, content_type="application/json")


def _no_content_type(sb: Sandbox, method: str, path: str) -> dict[str, str]:
    headers = signed_headers(sb, method, path)
    del headers["Content-Type"]
    return headers


def _no_date(sb: Sandbox, method: str, path: str) -> dict[str, str]:
    headers = signed_headers(sb, method, path)
    del headers["Date"]
    return headers


def _iso_date(sb: Sandbox, method: str, path: str) -> dict[str, str]:
    return signed_headers(sb, method, path, date="2025-01-20T12:00:00Z")


def _skewed_date(sb: Sandbox, method: str, path: str) -> dict[str, str]:
    return signed_headers(sb, method, path, date=http_date(NOW + 60))


def _no_authorization(sb: Sandbox, method: str, path: str) -> dict[str, str]:
    headers = signed_headers(sb, method, path)
    del headers["Authorization"]
    return headers


def _malformed_authorization(sb: Sandbox, method: str, path: str) -> dict[str, str]:
    return {**signed_headers(sb, method, path), "Authorization": "ApiAuth no-colon-here"}


def _other_tracker(sb: Sandbox, method: str, path: str) -> dict[str, str]:
    headers = signed_headers(sb, method, path)
    headers["Authorization"] = headers["Authorization"].replace(sb.tracker_id, "9999-0000")
    return headers


def _query_in_signed_path(sb: Sandbox, method: str, path: str) -> dict[str, str]:
    headers = signed_headers(sb, method, path)
    signature = _raw_signature(KEY, method, headers["Date"], path + "?limit=1")
    headers["Authorization"] = f"ApiAuth {sb.tracker_id}:{signature}"
    return headers


@pytest.mark.parametrize(
    ("make_headers", "reason_part"),
    [
        (_wrong_key, "Invalid signature"),
        (_plain_json_content_type, "Content-Type must be exactly"),
        (_no_content_type, "Missing Content-Type header"),
        (_no_date, "Missing Date header"),
        (_iso_date, "Malformed Date header"),
        (_skewed_date, "Date header is 60s away from server time"),
        (_no_authorization, "Missing Authorization header"),
        (_malformed_authorization, "Malformed Authorization header"),
        (_other_tracker, "Unknown tracker '9999-0000'"),
        (_query_in_signed_path, "Invalid signature"),
    ],
)
@pytest.mark.parametrize("method", ["POST", "GET"])
async def test_bad_authentication_is_401_with_a_diagnostic_reason(
    sb: Sandbox, http: aiohttp.ClientSession, make_headers: Any, reason_part: str, method: str
) -> None:
    """Each authentication mistake answers 401 whose reason names it, and changes nothing."""
    customization_id = sb.add(item_body())
    suffix = "/scopes" if method == "POST" else f"/scope/{customization_id}"
    path = api_path(sb, suffix)

    reply = await send_raw(
        http, sb, method, path, make_headers(sb, method, path), params=[("limit", "1")]
    )

    assert 401 == reply.status
    assert reason_part in reply.json["reason"]
    assert KEY not in reply.json["reason"]


async def test_skew_within_max_skew_is_accepted(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    """A Date up to max_skew seconds off the sandbox clock still authenticates."""
    path = api_path(sb, "/scopes")
    ahead = signed_headers(sb, "POST", path, date=http_date(NOW + 5))
    behind = signed_headers(sb, "POST", path, date=http_date(NOW - 5))

    replies = [await send_raw(http, sb, "POST", path, h) for h in (ahead, behind)]

    assert [200, 200] == [r.status for r in replies]


async def test_authentication_comes_before_faults(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    """A bad signature is 401 even under faults, and does not use up fail_next."""
    sb.faults = Faults(rate_503=1.0)
    sb.fail_next(1, 500)
    path = api_path(sb, "/scopes")

    rejected = await send_raw(http, sb, "POST", path, _wrong_key(sb, "POST", path))
    scripted = await send(http, sb, "POST", "/scopes")

    assert (401, 500) == (rejected.status, scripted.status)
    assert [None, "fail_next"] == [r.fault for r in sb.requests]


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


# --- faults -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("faults", "status", "retry_after"),
    [
        (Faults(rate_429=1.0), 429, "0"),
        (Faults(rate_429=1.0, retry_after="7"), 429, "7"),
        (Faults(rate_429=1.0, retry_after=None), 429, None),
        (Faults(rate_500=1.0), 500, None),
        (Faults(rate_502=1.0), 502, None),
        (Faults(rate_503=1.0, retry_after="2"), 503, "2"),
        (Faults(rate_504=1.0), 504, None),
    ],
)
async def test_status_faults_answer_their_status(
    sb: Sandbox,
    http: aiohttp.ClientSession,
    faults: Faults,
    status: int,
    retry_after: str | None,
) -> None:
    """A status fault answers that status with a JSON reason, Retry-After on 429 and 503."""
    sb.faults = faults

    reply = await send(http, sb, "POST", "/scope", item_body())

    assert (status, retry_after) == (reply.status, reply.headers.get("Retry-After"))
    assert "injected by the sandbox" in reply.json["reason"]
    assert http_date(NOW) == reply.headers["Date"]
    assert {} == sb.store
    assert (status, str(status)) == (sb.requests[-1].status, sb.requests[-1].fault)


async def test_drop_disconnects_without_answering_or_applying(
    sb: Sandbox, http: aiohttp.ClientSession
) -> None:
    """A drop closes the connection: the client sees a disconnect and nothing is stored."""
    sb.faults = Faults(drop=1.0)

    with pytest.raises(aiohttp.ServerDisconnectedError):
        await send(http, sb, "POST", "/scope", item_body())

    assert {} == sb.store
    assert (0, "drop") == (sb.requests[-1].status, sb.requests[-1].fault)


async def test_after_a_drop_the_sandbox_keeps_serving(
    sb: Sandbox, http: aiohttp.ClientSession
) -> None:
    """The connection after a dropped one is served normally."""
    sb.faults = Faults(drop=1.0)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await send(http, sb, "POST", "/scopes")
    sb.faults = Faults()

    reply = await send(http, sb, "POST", "/scopes")

    assert 200 == reply.status


@pytest.mark.parametrize("write", ["create", "update", "delete"])
async def test_lost_ack_applies_a_write_then_answers_503(
    sb: Sandbox, http: aiohttp.ClientSession, write: str
) -> None:
    """Under lost_ack a write takes effect but the client gets 503 with Retry-After."""
    existing = sb.add(item_body())
    sb.faults = Faults(lost_ack=1.0, retry_after="1")
    request = {
        "create": ("POST", "/scope"),
        "update": ("PUT", f"/scope/{existing}"),
        "delete": ("DELETE", f"/scope/{existing}"),
    }[write]

    reply = await send(http, sb, *request, item_body(model="changed"))

    assert (503, "1") == (reply.status, reply.headers.get("Retry-After"))
    models = [c["model"] for c in sb.store.values()]
    assert {"create": ["basket", "changed"], "update": ["changed"], "delete": []}[write] == models
    assert "lost_ack" == sb.requests[-1].fault


async def test_lost_ack_on_a_read_is_a_plain_503(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    """A read under lost_ack just answers 503."""
    customization_id = sb.add(item_body())
    sb.faults = Faults(lost_ack=1.0)

    reply = await send(http, sb, "GET", f"/scope/{customization_id}")

    assert 503 == reply.status
    assert [customization_id] == list(sb.store)


async def test_latency_delays_the_answer(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    """latency=1.0 delays every answer by at least latency_seconds, then serves it."""
    sb.faults = Faults(latency=1.0, latency_seconds=0.05)

    started = time.monotonic()
    reply = await send(http, sb, "POST", "/scopes")

    assert 0.05 <= time.monotonic() - started
    assert (200, "latency") == (reply.status, sb.requests[-1].fault)


async def test_latency_can_precede_an_error_fault(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    """Latency is drawn apart from the error faults, and both are logged."""
    sb.faults = Faults(latency=1.0, latency_seconds=0.01, rate_503=1.0)

    reply = await send(http, sb, "POST", "/scopes")

    assert (503, "latency+503") == (reply.status, sb.requests[-1].fault)


MIXED = Faults(
    seed=7,
    rate_429=0.15,
    rate_500=0.1,
    rate_502=0.1,
    rate_503=0.1,
    rate_504=0.1,
    drop=0.1,
    lost_ack=0.1,
)


async def _list_statuses(sb: Sandbox, http: aiohttp.ClientSession, n: int) -> list[int]:
    """Statuses of n sequential list requests; 0 for a dropped connection."""
    statuses = []
    for _ in range(n):
        try:
            statuses.append((await send(http, sb, "POST", "/scopes")).status)
        except aiohttp.ServerDisconnectedError:
            statuses.append(0)
    return statuses


async def test_seeded_faults_are_reproducible(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    """The same seed gives the same statuses, in the order its injector decides them."""
    injector = FaultInjector(MIXED)
    by_fault = {None: 200, "drop": 0, "lost_ack": 503}
    decided = [injector.decide().error for _ in range(30)]
    expected = [by_fault.get(e, int(e) if e and e.isdigit() else 0) for e in decided]

    sb.faults = MIXED
    first = await _list_statuses(sb, http, 30)
    sb.faults = MIXED  # assigning restarts the sequence
    second = await _list_statuses(sb, http, 30)

    assert expected == first == second
    assert {0: 1, 200: 10, 429: 7, 500: 2, 502: 3, 503: 6, 504: 1} == Counter(first)


def test_fault_injector_draw_order_is_stable() -> None:
    """Seed 7 keeps giving the same decisions, so seeds in bug reports stay meaningful."""
    injector = FaultInjector(Faults(seed=7, rate_503=0.5, latency=0.5, latency_seconds=2.0))

    decisions = [injector.decide() for _ in range(6)]

    assert [
        Decision("503", 0.0),
        Decision("503", 2.0),
        Decision("503", 2.0),
        Decision(None, 2.0),
        Decision("503", 0.0),
        Decision(None, 0.0),
    ] == decisions


async def test_max_in_flight_answers_429_when_exceeded(
    sb: Sandbox, http: aiohttp.ClientSession
) -> None:
    """With max_in_flight=2 and two requests held, a third gets 429 with Retry-After."""
    sb.faults = Faults(max_in_flight=2, latency=1.0, latency_seconds=60.0, retry_after="3")
    tasks = [asyncio.create_task(send(http, sb, "POST", "/scopes")) for _ in range(3)]

    done, held = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    [rejected] = [task.result() for task in done]
    in_flight_while_held = sb.in_flight
    await sb.stop()  # wakes the two delayed requests
    released = await asyncio.gather(*held)

    assert (429, "3") == (rejected.status, rejected.headers.get("Retry-After"))
    assert 2 == in_flight_while_held
    assert [200, 200] == [r.status for r in released]
    assert 3 == sb.max_in_flight_seen
    assert 0 == sb.in_flight
    assert ["max_in_flight", "latency", "latency"] == [r.fault for r in sb.requests]


async def test_stop_is_prompt_while_a_delayed_request_is_pending(
    sb: Sandbox, http: aiohttp.ClientSession
) -> None:
    """Stopping with a request sleeping in latency finishes at once and answers it."""
    sb.faults = Faults(max_in_flight=1, latency=1.0, latency_seconds=60.0)
    tasks = [asyncio.create_task(send(http, sb, "POST", "/scopes")) for _ in range(2)]
    done, [held] = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    assert [429] == [task.result().status for task in done]  # so the other one is held

    started = time.monotonic()
    await sb.stop()

    assert time.monotonic() - started < 2.0
    assert 200 == (await held).status


async def test_max_in_flight_seen_counts_concurrent_requests(
    sb: Sandbox, http: aiohttp.ClientSession
) -> None:
    """Sequential requests never exceed one in flight."""
    for _ in range(3):
        await send(http, sb, "POST", "/scopes")

    assert (1, 0) == (sb.max_in_flight_seen, sb.in_flight)


async def test_fail_next_answers_the_next_requests_then_resumes(
    sb: Sandbox, http: aiohttp.ClientSession
) -> None:
    """fail_next queues statuses in order, with Retry-After if given, then normal service."""
    sb.fail_next(2, 503, retry_after=2)
    sb.fail_next(1, 429, retry_after="Wed, 21 Oct 2015 07:28:00 GMT")

    replies = [await send(http, sb, "POST", "/scopes") for _ in range(4)]

    assert [
        (503, "2"),
        (503, "2"),
        (429, "Wed, 21 Oct 2015 07:28:00 GMT"),
        (200, None),
    ] == [(r.status, r.headers.get("Retry-After")) for r in replies]
    assert "injected by the sandbox: fail_next" in replies[0].json["reason"]


async def test_fail_next_takes_precedence_over_random_faults(
    sb: Sandbox, http: aiohttp.ClientSession
) -> None:
    """A scripted failure wins over a random fault, which resumes afterwards."""
    sb.faults = Faults(rate_500=1.0)
    sb.fail_next(1, 404)

    replies = [await send(http, sb, "POST", "/scopes") for _ in range(2)]

    assert [404, 500] == [r.status for r in replies]
    assert ["fail_next", "500"] == [r.fault for r in sb.requests]


@pytest.mark.parametrize(("n", "status"), [(-1, 503), (1, 200), (1, 302), (1, 600)])
def test_fail_next_rejects_bad_arguments(n: int, status: int) -> None:
    """fail_next wants a non-negative count and an error status."""
    with pytest.raises(ValueError):
        Sandbox().fail_next(n, status)


# --- Faults.parse -------------------------------------------------------------------


def test_parse_reads_the_full_cli_spec() -> None:
    """The documented CLI example parses to the matching Faults."""
    spec = (
        "429=0.1,503=0.1,drop=0.03,lost_ack=0.02,latency=0.05:2.0,"
        "retry_after=1,seed=7,max_in_flight=5"
    )

    assert Faults(
        rate_429=0.1,
        rate_503=0.1,
        drop=0.03,
        lost_ack=0.02,
        latency=0.05,
        latency_seconds=2.0,
        retry_after="1",
        seed=7,
        max_in_flight=5,
    ) == Faults.parse(spec)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("", Faults()),
        (" 500 = 0.5 , ", Faults(rate_500=0.5)),
        ("rate_502=1", Faults(rate_502=1.0)),
        ("504=0,retry_after=none", Faults(retry_after=None)),
        ("latency=0.5,latency_seconds=3", Faults(latency=0.5, latency_seconds=3.0)),
    ],
)
def test_parse_accepts_variants(spec: str, expected: Faults) -> None:
    """Whitespace, attribute names, 'none' and separate latency_seconds are understood."""
    assert expected == Faults.parse(spec)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("429", "expected KEY=VALUE"),
        ("429=", "expected KEY=VALUE"),
        ("418=0.1", "unknown fault '418'"),
        ("429=often", "bad value for '429'"),
        ("429=1.5", "rate_429 must be a probability"),
        ("drop=-0.1", "drop must be a probability"),
        ("latency=0.1:soon", "bad value for 'latency'"),
        ("latency=0.1:-1", "latency_seconds must be >= 0"),
        ("seed=1.5", "bad value for 'seed'"),
        ("max_in_flight=0", "max_in_flight must be an integer >= 1"),
        ("429=0.1,rate_429=0.2", "rate_429 given twice"),
        ("latency=0.1:1,latency_seconds=2", "latency_seconds given twice"),
    ],
)
def test_parse_rejects_bad_specs_clearly(spec: str, message: str) -> None:
    """A bad spec raises ValueError naming what is wrong."""
    with pytest.raises(ValueError, match=message):
        Faults.parse(spec)


@pytest.mark.parametrize(
    "kwargs", [{"rate_503": 2.0}, {"latency_seconds": -1.0}, {"max_in_flight": 0}]
)
def test_faults_validates_its_fields(kwargs: dict[str, Any]) -> None:
    """Out-of-range Faults fields are refused at construction."""
    with pytest.raises(ValueError):
        Faults(**kwargs)


# --- the Sandbox object -------------------------------------------------------------


async def test_add_seeds_a_customization_for_put(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    """add() with a chosen ID stores it so a PUT to that ID succeeds."""
    customization_id = sb.add(item_body(), UNKNOWN_ID.upper())

    reply = await send(http, sb, "PUT", f"/scope/{UNKNOWN_ID}", item_body(model="new"))

    assert (UNKNOWN_ID, 204) == (customization_id, reply.status)
    assert "new" == sb.store[UNKNOWN_ID]["model"]
    assert [] == [r for r in sb.requests if r.method != "PUT"]


@pytest.mark.parametrize(
    ("body", "customization_id", "message"),
    [
        (item_body(model=None), None, "Invalid configuration provided"),
        (item_body(pin_definitions=[{}]), None, "Invalid pin definition provided"),
        (item_body(), "not-a-uuid", "must be a UUID"),
        (item_body(), UNKNOWN_ID, "already exists"),
    ],
)
def test_add_rejects_what_the_api_would(
    body: dict[str, Any], customization_id: str | None, message: str
) -> None:
    """add() raises ValueError for an invalid body, a non-UUID or a taken ID."""
    sandbox = Sandbox()
    sandbox.add(item_body(), UNKNOWN_ID)

    with pytest.raises(ValueError, match=message):
        sandbox.add(body, customization_id)

    assert [UNKNOWN_ID] == list(sandbox.store)


def test_add_stores_a_copy() -> None:
    """Mutating the dict given to add() later does not change the stored customization."""
    sandbox = Sandbox()
    body = item_body()
    customization_id = sandbox.add(body)

    body["pin_definitions"][0]["position"] = 9

    assert 1 == sandbox.store[customization_id]["pin_definitions"][0]["position"]


async def test_repr_does_not_show_the_private_key(sb: Sandbox) -> None:
    """repr shows the tracker and URL but never the key."""
    text = repr(sb)

    assert sb.tracker_id in text
    assert sb.url in text
    assert KEY not in text


def test_private_keys_are_generated_per_sandbox() -> None:
    """Without a private_key each sandbox generates its own long random one."""
    first, second = Sandbox().private_key, Sandbox().private_key

    assert first != second
    assert 40 <= len(first)


async def test_lifecycle_start_stop() -> None:
    """url exists only while running; start twice fails; stop twice is harmless."""
    sandbox = Sandbox()
    with pytest.raises(RuntimeError):
        _ = sandbox.url
    await sandbox.start()
    try:
        assert sandbox.url == f"http://127.0.0.1:{sandbox.port}"
        assert 0 != sandbox.port
        with pytest.raises(RuntimeError):
            await sandbox.start()
    finally:
        await sandbox.stop()
    await sandbox.stop()
    with pytest.raises(RuntimeError):
        _ = sandbox.url


async def test_request_log_records_every_request(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    """Each request, rejected ones included, is logged with path, query, status and body."""
    path = api_path(sb, "/scopes")
    await send_raw(http, sb, "POST", path, _wrong_key(sb, "POST", path), {"criteria": []})
    await send(http, sb, "POST", "/scopes", None, [("model", "a"), ("model", "b")])

    assert [
        RequestRecord("POST", path, (), 401, {"criteria": []}, None),
        RequestRecord("POST", path, (("model", "a"), ("model", "b")), 200, None, None),
    ] == sb.requests


# --- standalone -----------------------------------------------------------------------


async def test_serve_forever_serves_until_stopped(http: aiohttp.ClientSession) -> None:
    """serve_forever answers requests once ready and returns when stop is set."""
    sandbox = Sandbox(tracker_id="1111-2222", private_key="k", clock=Clock(NOW))
    ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    stop = asyncio.Event()
    server = asyncio.create_task(
        serve_forever(sandbox, on_ready=lambda sb: ready.set_result(describe(sb)), stop=stop)
    )

    banner = await ready
    url = sandbox.url
    reply = await send(http, sandbox, "POST", "/scopes")
    stop.set()
    await server

    assert 200 == reply.status
    assert url in banner
    assert "1111-2222" in banner
    assert "private key: k" in banner
    with pytest.raises(RuntimeError):
        _ = sandbox.url


def test_main_rejects_a_bad_fault_spec(capsys: pytest.CaptureFixture[str]) -> None:
    """A bad --faults exits with status 2 and says why, before serving anything."""
    with pytest.raises(SystemExit) as exit_info:
        main(["--faults", "429=lots"])

    assert 2 == exit_info.value.code
    assert "bad value for '429'" in capsys.readouterr().err


async def test_main_runs_standalone_until_ctrl_c(http: aiohttp.ClientSession) -> None:
    """python -m luigis_async.sandbox prints URL, tracker and key, serves, and exits 0 on SIGINT."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "luigis_async.sandbox",
        "--port=0",
        "--tracker-id=1111-2222",
        "--private-key=cli-key",
        "--faults=seed=3",
        stdout=asyncio.subprocess.PIPE,
        env=env,
    )
    assert process.stdout is not None
    try:
        banner = [(await process.stdout.readline()).decode() for _ in range(5)]
        url = banner[0].split()[-1]
        sandbox = Sandbox(tracker_id="1111-2222", private_key="cli-key")
        path = api_path(sandbox, "/scopes")
        async with http.post(url + path, headers=signed_headers(sandbox, "POST", path)) as resp:
            status = resp.status
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
        try:
            async with asyncio.timeout(10):
                await process.communicate()
        except TimeoutError:
            process.kill()
            await process.communicate()

    assert url.startswith("http://127.0.0.1:")
    assert "tracker ID:  1111-2222" in banner[1]
    assert "private key: cli-key" in banner[2]
    assert (200, 0) == (status, process.returncode)

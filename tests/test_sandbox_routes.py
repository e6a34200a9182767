"""The sandbox's endpoints over real sockets: create, get, update, delete, list, export, summary."""

# STYLE.md asks for `assert expected == actual`; ruff's SIM300 calls that a Yoda condition.

from __future__ import annotations

import io
from typing import Any

import aiohttp
import pytest

from luigis_async.auth import http_date
from luigis_async.sandbox import Sandbox

from . import sandbox_support
from .sandbox_support import (
    NOW,
    NOW_ISO,
    UNKNOWN_ID,
    Clock,
    api_path,
    item_body,
    pin,
    send,
    send_raw,
    signed_headers,
)

# The shared fixtures, registered in this module.
clock, http, sb = sandbox_support.clock, sandbox_support.http, sandbox_support.sb


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
        ("GET", "/summary"),
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


# --- summary ------------------------------------------------------------------------


async def test_summary_of_an_empty_store(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    """GET /summary with nothing stored: no counts, no tags."""
    reply = await send(http, sb, "GET", "/summary")

    assert (200, {"scope_counts": {}, "user_tags": []}) == (reply.status, reply.json)
    assert "summary" == sb.requests[-1].route


async def test_summary_counts_per_model_and_lists_distinct_tags(
    sb: Sandbox, http: aiohttp.ClientSession
) -> None:
    """scope_counts by model (sorted), user_tags sorted without repeats; untagged count too."""
    sb.add(item_body(model="zeta", tags=["sale", "new"]))
    sb.add(item_body(model="alpha", tags=["sale"]))
    sb.add(item_body(model="zeta"))
    sb.add({"model": "basket", "target_type": "all", "pin_definitions": [], "tags": ["a"]})

    reply = await send(http, sb, "GET", "/summary")

    assert 200 == reply.status
    assert {"alpha": 1, "basket": 1, "zeta": 2} == reply.json["scope_counts"]
    assert ["alpha", "basket", "zeta"] == list(reply.json["scope_counts"])
    assert ["a", "new", "sale"] == reply.json["user_tags"]


async def test_summary_follows_writes(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    """The summary reflects a delete at once: a model with no customization disappears."""
    gone = sb.add(item_body(model="gone", tags=["old"]))
    sb.add(item_body(model="kept"))

    await send(http, sb, "DELETE", f"/scope/{gone}")
    reply = await send(http, sb, "GET", "/summary")

    assert {"scope_counts": {"kept": 1}, "user_tags": []} == reply.json


async def test_summary_only_answers_get(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    """POST /summary is 405 with Allow: GET."""
    reply = await send(http, sb, "POST", "/summary")

    assert (405, "GET") == (reply.status, reply.headers["Allow"])


@pytest.mark.parametrize("suffix", ["/summary", f"/scope/{UNKNOWN_ID}"])
async def test_head_is_not_served(sb: Sandbox, http: aiohttp.ClientSession, suffix: str) -> None:
    """The API has no HEAD: a signed HEAD is 405 with Allow: GET (and whatever else)."""
    reply = await send(http, sb, "HEAD", suffix)

    assert 405 == reply.status
    assert "HEAD" not in reply.headers["Allow"].split(",")

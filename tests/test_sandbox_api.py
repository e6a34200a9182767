"""The Sandbox object's test API: add, stored_body, client, lifecycle and the request log."""

# STYLE.md asks for `assert expected == actual`; ruff's SIM300 calls that a Yoda condition.

from __future__ import annotations

import uuid
from typing import Any

import aiohttp
import pytest

from luigis_async import (
    AuthenticationError,
    Customization,
    LuigisBoxClient,
    PinDefinition,
    converter,
)
from luigis_async.sandbox import BulkRules, Faults, RequestRecord, Sandbox

from . import sandbox_support
from .sandbox_support import (
    KEY,
    UNKNOWN_ID,
    api_path,
    item_body,
    send,
    send_raw,
    signed_headers,
)

# The shared fixtures, registered in this module.
clock, http, sb = sandbox_support.clock, sandbox_support.http, sandbox_support.sb


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
    wrong_key = signed_headers(sb, "POST", path, key="not-the-key")
    await send_raw(http, sb, "POST", path, wrong_key, {"criteria": []})
    await send(http, sb, "POST", "/scopes", None, [("model", "a"), ("model", "b")])

    assert [
        RequestRecord("POST", path, (), 401, {"criteria": []}, None),
        RequestRecord("POST", path, (("model", "a"), ("model", "b")), 200, None, None),
    ] == sb.requests


def test_record_names_its_route_without_comparing_it() -> None:
    """RequestRecord.route is informative only: records equal apart from it compare equal."""
    listed = RequestRecord("POST", "/p", (), 200, None, None, "list")
    unnamed = RequestRecord("POST", "/p", (), 200, None, None)

    assert ("list", None) == (listed.route, unnamed.route)
    assert listed == unnamed


async def test_request_log_names_each_route(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    """Each logged request carries its route name; a path the API lacks has None."""
    customization_id = sb.add(item_body())
    await send(http, sb, "GET", f"/scope/{customization_id}")
    await send(http, sb, "POST", "/scopes/export")
    await send(http, sb, "GET", "/summary")
    await send(http, sb, "GET", "/nothing")

    assert ["get", "export", "summary", None] == [r.route for r in sb.requests]


# --- stored_body and client -----------------------------------------------------------


def test_stored_body_is_the_body_without_read_only_fields() -> None:
    """stored_body drops id, created_at, creator and available, and nulls the API dropped."""
    sandbox = Sandbox()
    customization_id = sandbox.add({**item_body(tags=["a"]), "target_metadata": None})

    assert item_body(tags=["a"]) == sandbox.stored_body(customization_id)


@pytest.mark.parametrize("form", [str.upper, uuid.UUID])
def test_stored_body_accepts_any_case_and_uuid_objects(form: Any) -> None:
    """An upper-case ID or a uuid.UUID finds the same customization."""
    sandbox = Sandbox()
    sandbox.add(item_body(), UNKNOWN_ID)

    assert item_body() == sandbox.stored_body(form(UNKNOWN_ID))


def test_stored_body_is_a_copy() -> None:
    """Mutating what stored_body returns leaves the store unchanged."""
    sandbox = Sandbox()
    customization_id = sandbox.add(item_body())

    sandbox.stored_body(customization_id)["pin_definitions"][0]["position"] = 9

    assert 1 == sandbox.store[customization_id]["pin_definitions"][0]["position"]


@pytest.mark.parametrize("customization_id", [UNKNOWN_ID, "not-a-uuid"])
def test_stored_body_of_an_unknown_id_is_a_key_error(customization_id: str) -> None:
    """An ID that is not stored raises KeyError naming it."""
    with pytest.raises(KeyError, match=customization_id):
        Sandbox().stored_body(customization_id)


async def test_client_is_signed_for_the_sandbox(luigisbox_sandbox: Sandbox) -> None:
    """sandbox.client() talks to this sandbox with its tracker and key."""
    sb = luigisbox_sandbox  # with a real clock, which the client signs with
    pin = PinDefinition(position=1, pin_type="item", pin_identity="/p/555")
    body = Customization("basket", "item", target_identity="/p/1", pin_definitions=[pin])

    async with sb.client() as client:
        created = await client.create_customization(body)

    assert isinstance(client, LuigisBoxClient)
    assert (sb.tracker_id, sb.url) == (client.tracker_id, client.base_url)
    assert converter.unstructure(body, Customization) == sb.stored_body(created.id)
    assert [("POST", 201)] == [(r.method, r.status) for r in sb.requests]


async def test_client_takes_overrides(luigisbox_sandbox: Sandbox) -> None:
    """Keyword overrides reach LuigisBoxClient, the key included (then it is refused)."""
    sb = luigisbox_sandbox  # with a real clock, which the client signs with
    async with sb.client(max_connections=3, private_key="wrong") as client:
        with pytest.raises(AuthenticationError):
            await client.export_customizations()

    assert 3 == client.max_connections
    assert {401} == {r.status for r in sb.requests}


async def test_client_needs_a_running_sandbox() -> None:
    """Before start() there is no URL, so client() raises RuntimeError."""
    with pytest.raises(RuntimeError, match="not running"):
        Sandbox().client()


def test_settings_are_plain_attributes() -> None:
    """tracker, key, skew, clock, catalog, bulk rules and faults are readable and settable."""
    sandbox = Sandbox(
        tracker_id="1111-2222",
        private_key="k",
        max_skew=9.0,
        clock=lambda: 5.0,
        catalog=["/p/1"],
        bulk_rules=BulkRules(name_lines=True),
        faults=Faults(seed=3),
    )
    sandbox.max_skew = 1.0
    sandbox.bulk_rules = BulkRules(max_lines=10)

    assert ("1111-2222", "k", 1.0, 5.0) == (
        sandbox.tracker_id,
        sandbox.private_key,
        sandbox.max_skew,
        sandbox.clock(),
    )
    assert ({"/p/1"}, BulkRules(max_lines=10), Faults(seed=3)) == (
        sandbox.catalog,
        sandbox.bulk_rules,
        sandbox.faults,
    )

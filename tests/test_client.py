"""Every client method against the sandbox on loopback: signed, sent, and stored right."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta, timezone

import aiohttp
import pytest

from luigis_async import (
    AuthenticationError,
    BadRequestError,
    ClientClosedError,
    ConfigurationError,
    Customization,
    InvalidCustomizationError,
    LuigisBoxClient,
    NotFoundError,
    PinDefinition,
    RetryPolicy,
    StoredCustomization,
    TransportError,
    UnprocessableEntityError,
    converter,
)
from luigis_async.endpoints import Call, scope_path
from luigis_async.sandbox import Faults, Sandbox

from .helpers import FAST_RETRY, item_customization

PLUS_TWO = timezone(timedelta(hours=2))

FULL = Customization(
    "item_detail_complements",
    "item",
    target_identity="/p/123",
    tags=("nightly", "summer"),
    target_metadata={"title": "Guitar", "image": {"url": "https://example.invalid/g.png"}},
    pin_definitions=[
        PinDefinition(
            position=1,
            pin_type="item",
            pin_identity="/p/555",
            widget_id="w-1",
            is_bundle_pin=True,
            active_from=datetime(2025, 2, 1, tzinfo=UTC),
            active_to=datetime(2025, 3, 1, 2, tzinfo=PLUS_TWO),
        ),
        PinDefinition(
            position=0, pin_type="criteria", pin_criteria={"brand": "X"}, is_block_pin=True
        ),
        PinDefinition(position=-1, pin_type="item", pin_identity="/p/9"),
    ],
)
CRITERIA = Customization(
    "basket",
    "criteria",
    target_criteria={"category": ["guitars"], "price": {"gte": 100}},
    pin_definitions=[PinDefinition(position=2, pin_type="item", pin_identity="/p/1")],
)
EVERYWHERE = Customization("basket", "all", tags=("global",))


def stored_body(sandbox: Sandbox, cid: uuid.UUID | str) -> dict[str, object]:
    """The stored customization without the server-set fields."""
    stored = dict(sandbox.store[str(cid)])
    for read_only in ("id", "created_at", "creator", "available"):
        stored.pop(read_only)
    return stored


@pytest.mark.parametrize("body", [FULL, CRITERIA, EVERYWHERE], ids=["item", "criteria", "all"])
async def test_create_stores_the_body_and_returns_the_server_fields(
    client: LuigisBoxClient, sandbox: Sandbox, body: Customization
) -> None:
    """create sends the converter's JSON and returns id, created_at, creator, available."""
    created = await client.create_customization(body)

    assert isinstance(created, StoredCustomization)
    assert body == created.customization
    assert converter.unstructure(body) == stored_body(sandbox, created.id)  # type: ignore[arg-type]
    assert created.id is not None and str(created.id) in sandbox.store
    assert created.created_at is not None and created.created_at.tzinfo is not None
    assert "sandbox" == created.creator
    assert created.available is True


async def test_get_returns_what_create_stored(client: LuigisBoxClient) -> None:
    """get gives back the same customization, field for field, datetimes as instants."""
    created = await client.create_customization(FULL)
    assert created.id is not None

    fetched = await client.get_customization(str(created.id))

    assert created == fetched
    assert FULL == fetched.customization
    assert datetime(2025, 3, 1, 0, tzinfo=UTC) == fetched.pin_definitions[0].active_to


async def test_update_replaces_the_whole_customization(
    client: LuigisBoxClient, sandbox: Sandbox
) -> None:
    """update (PUT) replaces every field and keeps id and created_at."""
    created = await client.create_customization(FULL)
    assert created.id is not None
    before = dict(sandbox.store[str(created.id)])

    result = await client.update_customization(created.id, CRITERIA)

    assert result is None
    assert converter.unstructure(CRITERIA) == stored_body(sandbox, created.id)
    after = sandbox.store[str(created.id)]
    assert (before["id"], before["created_at"]) == (after["id"], after["created_at"])
    assert ("PUT", 204) == (sandbox.requests[-1].method, sandbox.requests[-1].status)


async def test_delete_removes_it(client: LuigisBoxClient, sandbox: Sandbox) -> None:
    """delete removes the customization; a second get is a NotFoundError."""
    created = await client.create_customization(EVERYWHERE)
    assert created.id is not None

    await client.delete_customization(created.id)

    assert str(created.id) not in sandbox.store
    with pytest.raises(NotFoundError) as caught:
        await client.get_customization(created.id)
    assert 404 == caught.value.status
    assert "GET" == caught.value.method
    assert caught.value.path.endswith(f"/scope/{created.id}")


async def test_list_pages_lazily_through_every_match(
    client: LuigisBoxClient, sandbox: Sandbox
) -> None:
    """list_customizations fetches limit/offset pages until pagination.total."""
    ids = [sandbox.add(converter.unstructure(item_customization(n))) for n in range(25)]
    sandbox.requests.clear()

    listed = [c async for c in client.list_customizations(page_size=10)]

    assert ids == [str(c.id) for c in listed]
    pages = [dict(r.query) for r in sandbox.requests]
    assert [("10", "0"), ("10", "10"), ("10", "20")] == [(p["limit"], p["offset"]) for p in pages]


async def test_list_stops_early_when_the_consumer_stops(
    client: LuigisBoxClient, sandbox: Sandbox
) -> None:
    """Pages are fetched only as the iteration needs them."""
    for n in range(30):
        sandbox.add(converter.unstructure(item_customization(n)))
    sandbox.requests.clear()

    async for _ in client.list_customizations(page_size=10):
        break

    assert 1 == len(sandbox.requests)


async def test_list_filters_repeat_keys_and_sort(client: LuigisBoxClient, sandbox: Sandbox) -> None:
    """Filters become repeated query keys the server applies; sort is passed through."""
    a = sandbox.add(converter.unstructure(item_customization(1, model="a", tags=("x",))))
    b = sandbox.add(converter.unstructure(item_customization(2, model="b", tags=("x",))))
    sandbox.add(converter.unstructure(item_customization(3, model="c", tags=("x",))))
    sandbox.add(converter.unstructure(item_customization(4, model="a")))

    listed = [
        c
        async for c in client.list_customizations(
            model=["a", "b"], tag="x", target_type="item", sort="created_at:desc"
        )
    ]

    assert {a, b} == {str(c.id) for c in listed}
    query = sandbox.requests[-1].query
    assert [("model", "a"), ("model", "b")] == [kv for kv in query if kv[0] == "model"]
    assert ("sort", "created_at:desc") in query
    assert ("target_type", "item") in query


async def test_list_page_returns_results_and_total(
    client: LuigisBoxClient, sandbox: Sandbox
) -> None:
    """One page holds at most limit results and the total of all matches."""
    for n in range(7):
        sandbox.add(converter.unstructure(item_customization(n)))

    page = await client.list_customizations_page(limit=3, offset=5)

    assert 7 == page.total
    assert ["/p/5", "/p/6"] == [c.target_identity for c in page.results]


async def test_list_by_criteria_sends_a_body(client: LuigisBoxClient, sandbox: Sandbox) -> None:
    """criteria travel in the JSON body of the list request."""
    wanted = sandbox.add(converter.unstructure(CRITERIA))
    sandbox.add(converter.unstructure(EVERYWHERE))

    listed = [c async for c in client.list_customizations(criteria=[CRITERIA.target_criteria])]

    assert [wanted] == [str(c.id) for c in listed]
    assert {"criteria": [CRITERIA.target_criteria]} == sandbox.requests[-1].body


async def test_export_returns_every_match_and_prunes_expired_pins(
    client: LuigisBoxClient, sandbox: Sandbox
) -> None:
    """export sends its filters and flags; the server prunes expired pins when asked."""
    expired = PinDefinition(
        position=3,
        pin_type="item",
        pin_identity="/p/old",
        active_to=datetime.now(UTC) - timedelta(days=1),
    )
    body = Customization("basket", "all", pin_definitions=[FULL.pin_definitions[2], expired])
    cid = sandbox.add(converter.unstructure(body))
    sandbox.add(converter.unstructure(item_customization(1, model="other")))

    exported = await client.export_customizations(model="basket", remove_expired_pins=True)

    assert [cid] == [str(c.id) for c in exported]
    assert (FULL.pin_definitions[2],) == exported[0].pin_definitions
    query = dict(sandbox.requests[-1].query)
    assert {"model": "basket", "remove_expired_pins": "true"} == query


async def test_export_removes_pins_of_items_gone_from_the_catalog() -> None:
    """remove_nonexisting_item_pins reaches the server, which prunes unknown items."""
    async with (
        Sandbox(catalog={"/p/1", "/p/2"}) as sb,
        LuigisBoxClient(sb.tracker_id, sb.private_key, base_url=sb.url) as c,
    ):
        pins = [PinDefinition(position=n, pin_type="item", pin_identity=f"/p/{n}") for n in (1, 2)]
        await c.create_customization(Customization("basket", "all", pin_definitions=pins))
        assert sb.catalog is not None
        sb.catalog.discard("/p/2")

        exported = await c.export_customizations(remove_nonexisting_item_pins=True)

    assert ["/p/1"] == [p.pin_identity for p in exported[0].pin_definitions]


async def test_server_rejections_carry_reason_and_details(
    client: LuigisBoxClient, sandbox: Sandbox
) -> None:
    """A 400 and a 422 from the server carry reason, exception_details, method and path."""
    cid = sandbox.add(converter.unstructure(EVERYWHERE))
    path = scope_path(cid)

    def raw_put(body: bytes) -> Call[None]:
        return Call("PUT", path, lambda _: None, body=body, answers_json=False)

    with pytest.raises(BadRequestError) as bad:
        await client.send(raw_put(b'{"target_type": "item"}'))
    with pytest.raises(UnprocessableEntityError) as unprocessable:
        await client.send(
            raw_put(b'{"model": "m", "target_type": "all", "pin_definitions": [{}]}')
        )

    assert 400 == bad.value.status
    assert "Invalid configuration provided" == bad.value.reason
    assert {"model", "target_identity"} <= set(bad.value.exception_details)
    assert 422 == unprocessable.value.status
    assert "Invalid pin definition provided" == unprocessable.value.reason
    assert "pin_definitions[0].position" in unprocessable.value.exception_details
    assert ("PUT", f"/v1/recommender/pin/1234-5678/scope/{cid}") == (
        unprocessable.value.method,
        unprocessable.value.path,
    )
    assert 1 == unprocessable.value.attempts


async def test_a_catalog_rejection_is_a_422_naming_the_pin() -> None:
    """A valid body naming an unknown item is refused by the server, not by the client."""
    async with (
        Sandbox(catalog={"/p/1"}) as sb,
        LuigisBoxClient(sb.tracker_id, sb.private_key, base_url=sb.url) as c,
    ):
        body = Customization(
            "basket",
            "all",
            pin_definitions=[PinDefinition(position=1, pin_type="item", pin_identity="/p/nope")],
        )
        with pytest.raises(UnprocessableEntityError) as caught:
            await c.create_customization(body)

    assert {"pin_definitions[0].pin_identity": ["Item not found in catalog"]} == (
        caught.value.exception_details
    )


async def test_wrong_key_is_an_authentication_error_tried_once(sandbox: Sandbox) -> None:
    """A wrong key gives 401 with the server's reason; it is not retried (clocks agree)."""
    async with LuigisBoxClient(
        sandbox.tracker_id, "not-the-key", base_url=sandbox.url, retry=FAST_RETRY
    ) as c:
        with pytest.raises(AuthenticationError) as caught:
            await c.get_customization(uuid.uuid4())

    assert 401 == caught.value.status
    assert "signature" in caught.value.reason.lower()
    assert 1 == caught.value.attempts
    assert 1 == len(sandbox.requests)


async def test_a_skewed_clock_is_corrected_from_the_servers_date(sandbox: Sandbox) -> None:
    """A client 60 s fast gets a 401, learns the offset from Date, and succeeds."""
    cid = sandbox.add(converter.unstructure(EVERYWHERE))
    fast_clock = lambda: time.time() + 60  # noqa: E731

    async with LuigisBoxClient(
        sandbox.tracker_id, sandbox.private_key, base_url=sandbox.url, clock=fast_clock
    ) as c:
        fetched = await c.get_customization(cid)
        await c.get_customization(cid)

        assert -62 < c.clock_offset < -58
    assert EVERYWHERE == fetched.customization
    assert [401, 200, 200] == [r.status for r in sandbox.requests]


async def test_retries_a_503_and_counts_attempts(client: LuigisBoxClient, sandbox: Sandbox) -> None:
    """An idempotent request is retried after 503s and then succeeds."""
    cid = sandbox.add(converter.unstructure(EVERYWHERE))
    sandbox.fail_next(2, 503)

    await client.update_customization(cid, CRITERIA)

    assert [503, 503, 204] == [r.status for r in sandbox.requests]
    assert converter.unstructure(CRITERIA) == stored_body(sandbox, cid)


async def test_a_create_is_not_retried_after_a_503(
    client: LuigisBoxClient, sandbox: Sandbox
) -> None:
    """A 503 may mean the create happened: retrying could duplicate it, so it surfaces."""
    sandbox.fail_next(1, 503)

    with pytest.raises(Exception) as caught:
        await client.create_customization(EVERYWHERE)

    assert 503 == caught.value.status  # type: ignore[attr-defined]
    assert 1 == len(sandbox.requests)


async def test_a_timeout_is_a_transport_error(sandbox: Sandbox) -> None:
    """A server slower than the timeout gives TransportError, retried per policy."""
    sandbox.faults = Faults(latency=1.0, latency_seconds=30.0)
    async with LuigisBoxClient(
        sandbox.tracker_id,
        sandbox.private_key,
        base_url=sandbox.url,
        timeout=0.2,
        retry=RetryPolicy(max_attempts=2, sleep=FAST_RETRY.sleep),
    ) as c:
        with pytest.raises(TransportError) as caught:
            await c.get_customization(uuid.uuid4())

    assert 2 == caught.value.attempts
    assert isinstance(caught.value.__cause__, TimeoutError)


@pytest.mark.parametrize(
    "bad_id",
    ["../../scopes", "a/b", "x?y=1", "", "199620b4-df1a-46e8-ab59-9e9ed9af7106/..", 42, None],
)
async def test_customization_ids_are_validated_before_any_request(
    client: LuigisBoxClient, sandbox: Sandbox, bad_id: object
) -> None:
    """Anything but a UUID is refused before a request could be built from it."""
    for call in (
        lambda: client.get_customization(bad_id),  # type: ignore[arg-type]
        lambda: client.delete_customization(bad_id),  # type: ignore[arg-type]
        lambda: client.update_customization(bad_id, EVERYWHERE),  # type: ignore[arg-type]
    ):
        with pytest.raises(InvalidCustomizationError, match="customization_id"):
            await call()

    assert [] == sandbox.requests


@pytest.mark.parametrize(
    "tracker_id",
    [".", "..", "../x?y=1/z", "a/b", "12 34", "1234\n5678", "12\x0034", "12é4", "", "a%2e"],
)
def test_a_tracker_id_that_could_alter_the_path_is_refused(tracker_id: str) -> None:
    """'.', '..', '/', whitespace, control and non-ASCII characters never reach a path."""
    with pytest.raises(ConfigurationError, match="tracker_id must be"):
        LuigisBoxClient(tracker_id, "key", base_url="http://127.0.0.1:9")


@pytest.mark.parametrize("tracker_id", ["1234-5678", "ab_CD-09"])
async def test_a_well_formed_tracker_id_is_the_path_segment(
    sandbox: Sandbox, tracker_id: str
) -> None:
    """Letters, digits, '-' and '_' go into the path as they are."""
    async with LuigisBoxClient(tracker_id, sandbox.private_key, base_url=sandbox.url) as c:
        if tracker_id != sandbox.tracker_id:
            with pytest.raises(NotFoundError, match="Tracker not found"):
                await c.export_customizations()
        else:
            await c.export_customizations()

    assert f"/v1/recommender/pin/{tracker_id}/scopes/export" == sandbox.requests[-1].path


@pytest.mark.parametrize(
    "make",
    [
        lambda: Customization("basket", "item"),
        lambda: Customization("basket", "criteria"),
        lambda: Customization("", "all"),
        lambda: Customization("basket", "everything"),
        lambda: PinDefinition(position=True, pin_type="item", pin_identity="/p/1"),
        lambda: PinDefinition(position=-2, pin_type="item", pin_identity="/p/1"),
        lambda: PinDefinition(position=1, pin_type="item"),
        lambda: PinDefinition(position=1, pin_type="criteria"),
        lambda: PinDefinition(
            position=1, pin_type="item", pin_identity="/p/1", active_from=datetime(2025, 1, 1)
        ),
        lambda: PinDefinition(
            position=1,
            pin_type="item",
            pin_identity="/p/1",
            active_from=datetime(2025, 2, 1, tzinfo=UTC),
            active_to=datetime(2025, 1, 1, tzinfo=UTC),
        ),
    ],
)
def test_invalid_input_never_becomes_a_model(make: object) -> None:
    """Each validation rule refuses at construction, so no request can carry it."""
    with pytest.raises(InvalidCustomizationError):
        make()  # type: ignore[operator]


async def test_a_non_customization_body_is_refused_before_sending(
    client: LuigisBoxClient, sandbox: Sandbox
) -> None:
    """A dict where a Customization belongs is refused, and nothing is sent."""
    with pytest.raises(InvalidCustomizationError, match="expected a Customization"):
        await client.update_customization(uuid.uuid4(), {"model": "x"})  # type: ignore[arg-type]
    assert [] == sandbox.requests


async def test_use_after_close_is_a_clear_error(sandbox: Sandbox) -> None:
    """A closed client refuses requests with ClientClosedError; close twice is fine."""
    c = LuigisBoxClient(sandbox.tracker_id, sandbox.private_key, base_url=sandbox.url)
    await c.export_customizations()  # opens lazily without `async with`
    await c.close()
    await c.close()

    with pytest.raises(ClientClosedError):
        await c.export_customizations()
    assert c.closed


async def test_an_exception_inside_async_with_still_closes(sandbox: Sandbox) -> None:
    """Leaving the block by an exception closes the session (no unclosed warning)."""
    with pytest.raises(RuntimeError, match="boom"):
        async with LuigisBoxClient(
            sandbox.tracker_id, sandbox.private_key, base_url=sandbox.url
        ) as c:
            await c.export_customizations()
            raise RuntimeError("boom")
    assert c.closed


async def test_a_session_passed_in_is_used_and_left_open(sandbox: Sandbox) -> None:
    """With session=..., the client sends through it and does not close it."""
    async with aiohttp.ClientSession() as session:
        async with LuigisBoxClient(
            sandbox.tracker_id, sandbox.private_key, base_url=sandbox.url, session=session
        ) as c:
            await c.export_customizations()
        assert not session.closed
    assert 1 == len(sandbox.requests)


async def test_many_tasks_share_one_pool_within_its_limit(sandbox: Sandbox) -> None:
    """200 concurrent calls through one client never exceed max_connections in flight."""
    sandbox.faults = Faults(latency=1.0, latency_seconds=0.01)
    cid = sandbox.add(converter.unstructure(EVERYWHERE))
    async with LuigisBoxClient(
        sandbox.tracker_id, sandbox.private_key, base_url=sandbox.url, max_connections=5
    ) as c:
        await asyncio.gather(*(c.update_customization(cid, EVERYWHERE) for _ in range(200)))

    assert 200 == len(sandbox.requests)
    assert sandbox.max_in_flight_seen <= 5  # the bound; how close load gets is timing


@pytest.mark.parametrize(
    "timeout", [aiohttp.ClientTimeout(), aiohttp.ClientTimeout(connect=5), 0, -1, True]
)
def test_a_timeout_without_a_total_is_refused(timeout: object) -> None:
    """A ClientTimeout with no total would never time out; it is refused up front."""
    with pytest.raises(ValueError, match="timeout"):
        LuigisBoxClient("1234-5678", "key", timeout=timeout)  # type: ignore[arg-type]


def test_the_key_appears_in_no_repr() -> None:
    """repr of the client and of its signer show the tracker, never the key."""
    c = LuigisBoxClient("1234-5678", "s3cr3t-k3y-value")
    text = repr(c) + repr(c._signer) + str(vars(c))

    assert "1234-5678" in repr(c)
    assert "s3cr3t-k3y-value" not in text


async def test_credentials_and_base_url_come_from_the_environment(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no arguments the client reads LUIGISBOX_TRACKER_ID, _PRIVATE_KEY, _BASE_URL."""
    monkeypatch.setenv("LUIGISBOX_TRACKER_ID", sandbox.tracker_id)
    monkeypatch.setenv("LUIGISBOX_PRIVATE_KEY", sandbox.private_key)
    monkeypatch.setenv("LUIGISBOX_BASE_URL", sandbox.url)
    async with LuigisBoxClient() as c:
        await c.export_customizations()

    assert sandbox.url == c.base_url
    assert 200 == sandbox.requests[-1].status


def test_missing_credentials_name_the_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without arguments or environment, the error says which variable to set."""
    monkeypatch.delenv("LUIGISBOX_TRACKER_ID", raising=False)
    monkeypatch.delenv("LUIGISBOX_PRIVATE_KEY", raising=False)
    with pytest.raises(ValueError, match="LUIGISBOX_TRACKER_ID"):
        LuigisBoxClient()
    with pytest.raises(ValueError, match="LUIGISBOX_PRIVATE_KEY"):
        LuigisBoxClient("1234-5678")

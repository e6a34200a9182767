"""The request pipeline's seams: any error fails one batch item, never the batch; a slot is
never leaked; a client belongs to one event loop. Through ``MockTransport``, no sockets."""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from email.utils import parsedate_to_datetime

import pytest

from luigis_async import (
    BatchUpdater,
    ClientClosedError,
    CreateRequest,
    CustomizationUpdate,
    DecodingError,
    EventKind,
    EventLoopError,
    HTTPRequest,
    HTTPResponse,
    LuigisBoxClient,
    LuigisBoxError,
    MockTransport,
    RequestEvent,
    TransportError,
    UnexpectedError,
)
from luigis_async.events import EventHook

from .helpers import FAST_RETRY, item_customization

EPOCH = 1_700_000_000
STORED = {
    "model": "basket",
    "target_type": "all",
    "pin_definitions": [],
    "created_at": "2025-01-20T12:00:00Z",
}


async def server(request: HTTPRequest) -> HTTPResponse:
    """A well-behaved API: 204 for writes, the created customization for creates."""
    await asyncio.sleep(0)  # let other requests interleave, as with a real server
    if request.method == "POST":
        body = json.loads(request.body or b"{}")
        answer = STORED | {"id": "199620b4-df1a-46e8-ab59-9e9ed9af7106"} | body
        return HTTPResponse(201, {"Content-Type": "application/json"}, json.dumps(answer).encode())
    return HTTPResponse(204)


def mock_client(
    transport: MockTransport, *, hooks: tuple[EventHook, ...] = (), max_connections: int = 16
) -> LuigisBoxClient:
    return LuigisBoxClient(
        "1234-5678", "key", base_url="http://127.0.0.1:9", retry=FAST_RETRY,
        transport=transport, event_hooks=hooks, max_connections=max_connections,
    )


def updates(n: int) -> list[CustomizationUpdate]:
    return [
        CustomizationUpdate(f"00000000-0000-4000-8000-{i:012d}", item_customization(i))
        for i in range(n)
    ]


@pytest.mark.parametrize("concurrency", [None, 16, 64])
async def test_a_raising_event_hook_fails_one_item_and_leaks_no_slot(
    concurrency: int | None,
) -> None:
    """A hook raising for one request fails that item (cause kept); the rest apply."""
    unlucky = "/scope/00000000-0000-4000-8000-000000000007"

    def hook(event: RequestEvent) -> None:
        if event.kind is EventKind.START and event.path.endswith(unlucky):
            raise KeyError("metrics backend down")

    transport = MockTransport(server)
    options = {} if concurrency is None else {"concurrency": concurrency}
    async with mock_client(transport, hooks=(hook,), max_connections=64) as client:
        async with BatchUpdater(client, **options).start(updates(200)) as run:  # type: ignore[arg-type]
            async for _ in run:
                pass
        report = run.report

    (failed,) = report.failed
    assert (199, 7, UnexpectedError, KeyError) == (
        report.succeeded, failed.index, type(failed.error), type(failed.error.__cause__)
    )
    assert "KeyError" in str(failed.error)
    assert 0 == run.pacer.in_flight


async def test_an_unreadable_answer_fails_its_item_only() -> None:
    """A create answered with a 2,000-level body fails as DecodingError; the rest apply."""

    async def deep_for_one(request: HTTPRequest) -> HTTPResponse:
        if request.body is not None and b'"/p/3"' in request.body:
            return HTTPResponse(201, {}, b"[" * 2000 + b"]" * 2000)
        return await server(request)

    async with mock_client(MockTransport(deep_for_one)) as client:
        report = await BatchUpdater(client, concurrency=16).run(
            CreateRequest(item_customization(i)) for i in range(50)
        )

    (failed,) = report.failed
    assert (49, 3, DecodingError) == (report.succeeded, failed.index, type(failed.error))


async def test_a_dropped_connection_from_a_mock_transport_is_retried() -> None:
    """A handler raising TransportError acts out a drop; an idempotent PUT is retried."""
    calls: Counter[str] = Counter()

    async def drop_odd_items_once(request: HTTPRequest) -> HTTPResponse:
        calls[request.path] += 1
        if calls[request.path] == 1 and int(request.path[-1]) % 2:
            raise TransportError("dropped", method=request.method, path=request.path)
        return await server(request)

    async with mock_client(MockTransport(drop_odd_items_once), max_connections=32) as client:
        report = await BatchUpdater(client, concurrency=32).run(updates(100))

    assert (100, 50) == (report.succeeded, report.retries)
    assert Counter({1: 50, 2: 50}) == Counter(calls.values())


def test_a_client_used_from_a_second_event_loop_is_a_clear_error() -> None:
    """Reusing a client in a second asyncio.run raises EventLoopError, a LuigisBoxError."""
    client = mock_client(MockTransport(server))

    async def update() -> None:
        await client.update_customization(
            "199620b4-df1a-46e8-ab59-9e9ed9af7106", item_customization(1)
        )

    asyncio.run(update())
    with pytest.raises(EventLoopError, match="one client per event loop"):
        asyncio.run(update())
    assert isinstance(EventLoopError("x"), LuigisBoxError | RuntimeError)


def test_a_batch_on_a_client_of_another_loop_fails_every_item_not_the_run() -> None:
    """Each item fails with EventLoopError; the batch reports them instead of raising."""
    client = mock_client(MockTransport(server))

    async def run() -> tuple[int, set[type[BaseException]]]:
        report = await BatchUpdater(client, concurrency=4, max_consecutive_failures=None).run(
            updates(10)
        )
        return report.succeeded, {type(r.error) for r in report.failed}

    assert (10, set()) == asyncio.run(run())
    assert (0, {EventLoopError}) == asyncio.run(run())


async def test_the_gate_bounds_requests_in_flight_and_signs_after_admission() -> None:
    """At most max_connections exchanges at once, each signed only once admitted."""
    completed = in_flight = peak = 0

    async def server_counting(request: HTTPRequest) -> HTTPResponse:
        nonlocal completed, in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        for _ in range(3):
            await asyncio.sleep(0)
        in_flight -= 1
        completed += 1
        return HTTPResponse(204)

    transport = MockTransport(server_counting)
    # The clock tells how many exchanges had completed when a request was signed.
    client = LuigisBoxClient(
        "1234-5678", "key", base_url="http://127.0.0.1:9", transport=transport,
        max_connections=4, clock=lambda: EPOCH + completed * 10,
    )
    async with client:
        await asyncio.gather(
            *(client.update_customization(u.customization_id, u.customization) for u in updates(20))
        )

    completed_when_signed = [
        int(parsedate_to_datetime(r.headers["Date"]).timestamp() - EPOCH) // 10
        for r in transport.requests
    ]
    assert (4, 20) == (peak, len(completed_when_signed))
    assert [] == [
        (k, done) for k, done in enumerate(completed_when_signed) if done < k - 3
    ]


async def test_with_options_changes_the_timeout_and_shares_the_pool() -> None:
    """A view sends with its own timeout through the same gate; closing it closes nothing."""
    in_flight = peak = 0
    release, full = asyncio.Event(), asyncio.Event()

    async def held(request: HTTPRequest) -> HTTPResponse:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        if in_flight == 3:
            full.set()
        await release.wait()
        in_flight -= 1
        return HTTPResponse(204)

    transport = MockTransport(held)
    async with mock_client(transport, max_connections=3) as client:
        quick = client.with_options(timeout=2.5)
        calls = [
            asyncio.create_task(c.update_customization(u.customization_id, u.customization))
            for c, u in zip([client, quick] * 5, updates(10), strict=True)
        ]
        await full.wait()
        release.set()
        await asyncio.gather(*calls)
        await quick.close()
        await client.delete_customization(updates(1)[0].customization_id)  # still open

    assert (3, {30.0, 2.5}) == (peak, {r.timeout.total for r in transport.requests})
    assert quick.retry is client.retry


async def test_a_view_of_a_closed_client_is_closed() -> None:
    """Closing the client ends its views: they raise ClientClosedError."""
    client = mock_client(MockTransport(server))
    view = client.with_options(retry=FAST_RETRY)
    await client.close()

    with pytest.raises(ClientClosedError):
        await view.delete_customization(updates(1)[0].customization_id)


def test_the_package_logger_has_a_null_handler() -> None:
    """The library's warnings never reach stderr unless the application asks for them."""
    handlers = logging.getLogger("luigis_async").handlers
    assert [logging.NullHandler] == [type(h) for h in handlers]

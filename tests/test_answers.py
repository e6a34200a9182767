"""Answers are read strictly: a success that is not the documented JSON is an error, and a
redirect is never followed. Unit tests through ``MockTransport``; redirects over sockets."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from luigis_async import (
    Customization,
    DecodingError,
    HTTPRequest,
    HTTPResponse,
    LuigisBoxClient,
    MockTransport,
    RedirectError,
)
from luigis_async import decode as decode_module
from luigis_async.reconcile import plan_sync
from luigis_async.sandbox import Sandbox

from .helpers import FAST_RETRY, item_customization

CID = "199620b4-df1a-46e8-ab59-9e9ed9af7106"
HTML = b"<!DOCTYPE html><html><body>Please log in to the Wi-Fi</body></html>"
STORED = {
    "id": CID,
    "model": "basket",
    "target_type": "all",
    "pin_definitions": [],
    "created_at": "2025-01-20T12:00:00Z",
}


def answering(
    status: int, body: bytes, content_type: str | None = "application/json"
) -> Callable[[HTTPRequest], HTTPResponse]:
    headers = {} if content_type is None else {"Content-Type": content_type}
    return lambda request: HTTPResponse(status, headers, body)


def mock_client(handler: Callable[[HTTPRequest], HTTPResponse]) -> LuigisBoxClient:
    return LuigisBoxClient(
        "1234-5678", "key", base_url="http://127.0.0.1:9", retry=FAST_RETRY,
        transport=MockTransport(handler),
    )


CALLS: dict[str, Callable[[LuigisBoxClient], Awaitable[Any]]] = {
    "list": lambda c: c.list_customizations_page(),
    "export": lambda c: c.export_customizations(),
    "get": lambda c: c.get_customization(CID),
    "create": lambda c: c.create_customization(Customization("basket", "all")),
    "update": lambda c: c.update_customization(CID, Customization("basket", "all")),
    "delete": lambda c: c.delete_customization(CID),
}


@pytest.mark.parametrize("call", CALLS)
async def test_an_html_page_with_200_is_a_decoding_error(call: str) -> None:
    """A proxy's 200 text/html page is never an empty result, nor a write that succeeded."""
    async with mock_client(answering(200, HTML, "text/html; charset=utf-8")) as client:
        with pytest.raises(DecodingError) as info:
            await CALLS[call](client)

    error = info.value
    assert (200, "text/html; charset=utf-8") == (error.status, error.content_type)
    assert 1 == error.attempts
    assert error.snippet.startswith("<!DOCTYPE html><html><body>Please log in")
    assert error.path.startswith("/v1/recommender/pin/1234-5678/")


@pytest.mark.parametrize(
    ("call", "body", "message"),
    [
        ("list", b'{"results": []}', "pagination.total"),
        ("list", b'{"pagination": {"total": 0}}', "'results' list"),
        ("export", b"{}", "'results' list"),
        ("export", b'{"results": {}}', "'results' list"),
        ("export", b"[]", "expected a JSON object, got list"),
        ("get", b'{"model": "basket"}', "not a stored customization"),
        ("get", b"", "not valid JSON"),
        ("get", b"null", "expected a JSON object, got NoneType"),
        ("create", b'{"id": "not-a-uuid", "model": "m", "target_type": "all"}', "stored"),
    ],
)
async def test_json_of_the_wrong_shape_is_a_decoding_error(
    call: str, body: bytes, message: str
) -> None:
    """Valid JSON that is not what the endpoint documents is refused, naming what is wrong."""
    async with mock_client(answering(200, body)) as client:
        with pytest.raises(DecodingError, match=message):
            await CALLS[call](client)


async def test_an_answer_nested_too_deep_is_a_decoding_error() -> None:
    """A 2,000-level answer raises DecodingError, not RecursionError."""
    deep = b'{"results": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    async with mock_client(answering(200, deep)) as client:
        with pytest.raises(DecodingError, match="RecursionError"):
            await client.export_customizations()


@pytest.mark.parametrize(
    ("status", "body", "content_type"),
    [(204, b"", None), (200, b"{}", "application/json"), (200, b"", "text/html")],
)
async def test_a_write_answered_without_a_body_succeeds(
    status: int, body: bytes, content_type: str | None
) -> None:
    """204, an empty body, or a JSON body: an update needs nothing more."""
    async with mock_client(answering(status, body, content_type)) as client:
        assert None is await client.update_customization(CID, Customization("basket", "all"))


async def test_a_large_answer_is_decoded_off_the_event_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An export over 1 MiB is decoded in a worker thread, so other requests keep going."""
    threads: list[threading.Thread] = []
    real_decode = decode_module.decode

    def spy(*args: Any) -> Any:
        threads.append(threading.current_thread())
        return real_decode(*args)

    monkeypatch.setattr("luigis_async.client.decode", spy)
    many = json.dumps({"results": [STORED | {"id": str(uuid.uuid4())} for _ in range(10_000)]})
    one = json.dumps(STORED).encode()

    def handler(request: HTTPRequest) -> HTTPResponse:
        body = many.encode() if request.path.endswith("/export") else one
        return HTTPResponse(200, {"Content-Type": "application/json"}, body)

    async with mock_client(handler) as client:
        small = await client.get_customization(CID)  # a small answer: on the loop
        exported = await client.export_customizations()

    assert (CID, 10_000) == (str(small.id), len(exported))
    assert threading.main_thread() is threads[0]
    assert threading.main_thread() is not threads[1]


async def test_plan_sync_refuses_to_plan_from_an_html_page() -> None:
    """A proxy page where the export belongs stops the plan: it never plans to create all."""
    async with mock_client(answering(200, HTML, "text/html")) as client:
        with pytest.raises(DecodingError):
            await plan_sync(client, [item_customization(1)], managed_tag="managed")


# --- redirects, over real sockets -------------------------------------------------------


@pytest.fixture
async def elsewhere() -> AsyncIterator[tuple[str, list[web.Request]]]:
    """Another local server, recording every request that reaches it."""
    seen: list[web.Request] = []

    async def record(request: web.Request) -> web.Response:
        seen.append(request)
        return web.json_response(STORED, status=201)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}", seen
    await runner.cleanup()


@pytest.fixture
async def redirector(
    elsewhere: tuple[str, list[web.Request]],
) -> AsyncIterator[Callable[[int], Awaitable[str]]]:
    """Starts a server answering every request with a redirect to ``elsewhere``."""
    runners: list[web.AppRunner] = []

    async def start(status: int) -> str:
        async def redirect(request: web.Request) -> web.Response:
            return web.Response(status=status, headers={"Location": elsewhere[0] + request.path})

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", redirect)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        runners.append(runner)
        return f"http://127.0.0.1:{runner.addresses[0][1]}"

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("call", ["create", "update", "get"])
async def test_a_redirect_is_an_error_and_nothing_reaches_its_target(
    redirector: Callable[[int], Awaitable[str]],
    elsewhere: tuple[str, list[web.Request]],
    status: int,
    call: str,
) -> None:
    """A 3xx names its Location and is not followed: the other host receives nothing."""
    url = await redirector(status)
    async with LuigisBoxClient("1234-5678", "key", base_url=url, retry=FAST_RETRY) as client:
        with pytest.raises(RedirectError) as info:
            await CALLS[call](client)

    assert (status, 1) == (info.value.status, info.value.attempts)
    assert info.value.location is not None and info.value.location.startswith(elsewhere[0])
    assert "not followed" in str(info.value)
    assert [] == elsewhere[1]


# --- the same, from the sandbox's scripted answers -----------------------------------

SANDBOX_CALLS: dict[str, Callable[[LuigisBoxClient, str], Awaitable[Any]]] = {
    "list": lambda c, cid: c.list_customizations_page(),
    "export": lambda c, cid: c.export_customizations(),
    "get": lambda c, cid: c.get_customization(cid),
    "create": lambda c, cid: c.create_customization(Customization("basket", "all")),
}


@pytest.mark.parametrize("route", SANDBOX_CALLS)
async def test_a_proxy_page_from_the_sandbox_is_a_decoding_error(
    sandbox: Sandbox, route: str
) -> None:
    """The sandbox answering one route with a 200 HTML page: DecodingError, nothing stored."""
    cid = sandbox.add({"model": "basket", "target_type": "all", "pin_definitions": []})
    sandbox.respond_next(status=200, body=HTML, content_type="text/html", route=route)
    async with sandbox.client(retry=FAST_RETRY) as client:
        with pytest.raises(DecodingError) as info:
            await SANDBOX_CALLS[route](client, cid)
        plan_error = None
        sandbox.respond_next(status=200, body=HTML, content_type="text/html", route="export")
        try:
            await plan_sync(client, [item_customization(1)], managed_tag="managed")
        except DecodingError as exc:
            plan_error = exc

    assert ("text/html", [cid]) == (info.value.content_type, list(sandbox.store))
    assert plan_error is not None


async def test_a_redirect_from_the_sandbox_reaches_nothing_elsewhere(
    sandbox: Sandbox, elsewhere: tuple[str, list[web.Request]]
) -> None:
    """A 307 to another local port: RedirectError, and that port receives nothing."""
    sandbox.respond_next(status=307, headers={"Location": elsewhere[0] + "/v1/steal"})
    async with sandbox.client(retry=FAST_RETRY) as client:
        with pytest.raises(RedirectError, match="not followed"):
            await client.create_customization(Customization("basket", "all"))

    assert ([], {}) == (elsewhere[1], dict(sandbox.store))

"""Scripted answers: fail_next, and respond_next's exact raw responses per route."""

# STYLE.md asks for `assert expected == actual`; ruff's SIM300 calls that a Yoda condition.

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from luigis_async.auth import http_date
from luigis_async.sandbox import Faults, Sandbox

from . import sandbox_support
from .sandbox_support import (
    NOW,
    UNKNOWN_ID,
    api_path,
    item_body,
    send,
    send_bulk,
    send_raw,
    signed_headers,
)

# The shared fixtures, registered in this module.
clock, http, sb = sandbox_support.clock, sandbox_support.http, sandbox_support.sb

PROXY_PAGE = b"<html><body><h1>502 Bad Gateway</h1></body></html>"


# --- fail_next ----------------------------------------------------------------------


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
    assert {"reason": "Service Unavailable (injected by the sandbox: fail_next)"} == replies[0].json
    assert "application/json; charset=utf-8" == replies[0].headers["Content-Type"]
    assert ["fail_next"] * 3 + [None] == [r.fault for r in sb.requests]


async def test_fail_next_takes_precedence_over_random_faults(
    sb: Sandbox, http: aiohttp.ClientSession
) -> None:
    """A scripted failure wins over a random fault, which resumes afterwards."""
    sb.faults = Faults(rate_500=1.0)
    sb.fail_next(1, 404)

    replies = [await send(http, sb, "POST", "/scopes") for _ in range(2)]

    assert [404, 500] == [r.status for r in replies]
    assert ["fail_next", "500"] == [r.fault for r in sb.requests]


@pytest.mark.parametrize(
    ("n", "status"), [(-1, 503), (1, 200), (1, 302), (1, 600), (1.5, 503), (1, True)]
)
def test_fail_next_rejects_bad_arguments(n: Any, status: Any) -> None:
    """fail_next wants a non-negative integer count and an error status."""
    with pytest.raises(ValueError):
        Sandbox().fail_next(n, status)


# --- respond_next -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "content_type"),
    [
        (200, PROXY_PAGE, "text/html; charset=iso-8859-1"),
        (200, b"", "application/json"),
        (200, b'{"unexpected": true}', "application/json"),
        (502, PROXY_PAGE, "text/html"),
        (418, "I'm a teapot \N{TEAPOT}", "text/plain; charset=utf-8"),
    ],
)
async def test_respond_next_sends_exactly_that_answer(
    sb: Sandbox, http: aiohttp.ClientSession, status: int, body: bytes | str, content_type: str
) -> None:
    """Status, body bytes and Content-Type arrive exactly as scripted; nothing is applied."""
    sb.respond_next(status=status, body=body, content_type=content_type)

    reply = await send(http, sb, "POST", "/scope", item_body())

    expected = body.encode() if isinstance(body, str) else body
    assert (status, expected) == (reply.status, reply.raw)
    assert content_type == reply.headers["Content-Type"]
    assert http_date(NOW) == reply.headers["Date"]
    assert {} == sb.store
    assert [(status, "scripted", "create")] == [(r.status, r.fault, r.route) for r in sb.requests]


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_respond_next_reproduces_a_redirect(
    sb: Sandbox, http: aiohttp.ClientSession, status: int
) -> None:
    """A scripted 3xx carries its Location and extra headers; the create is not applied."""
    location = "http://127.0.0.1:9/elsewhere"
    sb.respond_next(status=status, headers={"Location": location, "X-Proxy": "squid"})

    reply = await send(http, sb, "POST", "/scope", item_body())

    assert (status, location, "squid") == (
        reply.status,
        reply.headers["Location"],
        reply.headers["X-Proxy"],
    )
    assert (b"", {}) == (reply.raw, sb.store)


async def test_apply_runs_the_route_then_replaces_its_answer(
    sb: Sandbox, http: aiohttp.ClientSession
) -> None:
    """apply=True: the create takes effect, yet the client sees only the scripted 302."""
    sb.respond_next(status=302, headers={"Location": "/login"}, apply=True)

    reply = await send(http, sb, "POST", "/scope", item_body(model="applied"))

    assert (302, "/login", b"") == (reply.status, reply.headers["Location"], reply.raw)
    assert ["applied"] == [c["model"] for c in sb.store.values()]
    assert "scripted" == sb.requests[-1].fault


async def test_a_route_filter_lets_other_routes_pass_unconsumed(
    sb: Sandbox, http: aiohttp.ClientSession
) -> None:
    """A script for 'get' skips list and export requests and waits for the get."""
    customization_id = sb.add(item_body())
    sb.respond_next(2, status=200, body=PROXY_PAGE, content_type="text/html", route="get")

    listed = await send(http, sb, "POST", "/scopes")
    exported = await send(http, sb, "POST", "/scopes/export")
    got = [await send(http, sb, "GET", f"/scope/{customization_id}") for _ in range(3)]

    assert (200, 1, 1) == (
        listed.status,
        listed.json["pagination"]["total"],
        len(exported.json["results"]),
    )
    assert [PROXY_PAGE, PROXY_PAGE] == [r.raw for r in got[:2]]
    assert customization_id == got[2].json["id"]
    assert [None, None, "scripted", "scripted", None] == [r.fault for r in sb.requests]


async def test_scripts_for_different_routes_are_served_in_queue_order(
    sb: Sandbox, http: aiohttp.ClientSession
) -> None:
    """An unfiltered script queued after a filtered one still answers other routes first."""
    sb.respond_next(status=503, route="summary")
    sb.respond_next(status=504)

    listed = await send(http, sb, "POST", "/scopes")
    summary = await send(http, sb, "GET", "/summary")
    again = await send(http, sb, "GET", "/summary")

    assert [504, 503, 200] == [listed.status, summary.status, again.status]


async def test_respond_next_counts_down_and_queues_after_fail_next(
    sb: Sandbox, http: aiohttp.ClientSession
) -> None:
    """fail_next first, then respond_next's n answers, then normal service."""
    sb.fail_next(1, 500)
    sb.respond_next(2, status=204)

    statuses = [(await send(http, sb, "POST", "/scopes")).status for _ in range(4)]

    assert [500, 204, 204, 200] == statuses
    assert ["fail_next", "scripted", "scripted", None] == [r.fault for r in sb.requests]


async def test_headers_may_replace_the_date(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    """A scripted Date header wins over the sandbox clock's."""
    skewed = http_date(NOW + 3600)
    sb.respond_next(status=401, body=b'{"reason": "x"}', headers={"Date": skewed})

    reply = await send(http, sb, "POST", "/scopes")

    assert (401, skewed) == (reply.status, reply.headers["Date"])


async def test_unauthenticated_requests_do_not_consume_scripts(
    sb: Sandbox, http: aiohttp.ClientSession
) -> None:
    """A request with a bad signature gets its 401 and leaves the script queued."""
    sb.respond_next(status=200, body=PROXY_PAGE, content_type="text/html")
    path = api_path(sb, "/scopes")

    rejected = await send_raw(
        http, sb, "POST", path, signed_headers(sb, "POST", path, key="not-the-key")
    )
    scripted = await send(http, sb, "POST", "/scopes")

    assert (401, 200, PROXY_PAGE) == (rejected.status, scripted.status, scripted.raw)


async def test_scripts_bypass_admission_and_random_faults(
    sb: Sandbox, http: aiohttp.ClientSession
) -> None:
    """A script is served at once while max_in_flight is full and every request is delayed."""
    sb.faults = Faults(max_in_flight=1, latency=1.0, latency_seconds=60.0)
    tasks = [asyncio.create_task(send(http, sb, "POST", "/scopes")) for _ in range(2)]
    done, [held] = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    assert [429] == [task.result().status for task in done]  # so the other one is held
    sb.respond_next(status=299, route="summary")

    summary = await send(http, sb, "GET", "/summary")
    await sb.stop()

    assert 299 == summary.status
    assert 200 == (await held).status


async def test_a_bulk_route_script_with_apply(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    """route='bulk', apply=True: the lines are stored, the client sees the scripted 504."""
    sb.respond_next(status=504, body=PROXY_PAGE, content_type="text/html", route="bulk", apply=True)

    reply = await send_bulk(http, sb, [item_body(target_identity=f"/p/{n}") for n in range(3)])

    assert (504, PROXY_PAGE) == (reply.status, reply.raw)
    assert ["/p/0", "/p/1", "/p/2"] == [c["target_identity"] for c in sb.store.values()]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n": -1, "status": 200}, "n must be an integer >= 0"),
        ({"status": 99}, "status must be an HTTP status"),
        ({"status": 600}, "status must be an HTTP status"),
        ({"status": True}, "status must be an HTTP status"),
        ({"status": 200, "route": "scope"}, "route must be one of create, get"),
        ({"status": 204, "body": b"x"}, "a 204 answer cannot have a body"),
        ({"status": 304, "body": "x"}, "a 304 answer cannot have a body"),
        ({"status": 100, "body": b"x"}, "a 100 answer cannot have a body"),
    ],
)
async def test_respond_next_rejects_bad_arguments(
    sb: Sandbox, http: aiohttp.ClientSession, kwargs: dict[str, Any], message: str
) -> None:
    """Each bad argument raises ValueError naming the rule, and nothing is queued."""
    with pytest.raises(ValueError, match=message):
        sb.respond_next(**kwargs)

    assert 200 == (await send(http, sb, "POST", "/scopes")).status


async def test_a_1xx_answer_leaves_the_client_waiting(
    sb: Sandbox, http: aiohttp.ClientSession
) -> None:
    """A scripted 100 is sent as the final answer: an HTTP client waits on, like a hung server."""
    sb.respond_next(status=100)
    path = api_path(sb, f"/scope/{UNKNOWN_ID}")

    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.5):
            await send_raw(http, sb, "GET", path, signed_headers(sb, "GET", path))

    assert [(100, "scripted")] == [(r.status, r.fault) for r in sb.requests]

"""The sandbox's seeded random faults: statuses, drops, lost acks, latency, admission."""

# STYLE.md asks for `assert expected == actual`; ruff's SIM300 calls that a Yoda condition.

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import aiohttp
import pytest

from luigis_async.auth import http_date
from luigis_async.sandbox import Faults, Sandbox
from luigis_async.sandbox.faults import Decision, FaultInjector

from . import sandbox_support
from .sandbox_support import (
    NOW,
    item_body,
    send,
)

# The shared fixtures, registered in this module.
clock, http, sb = sandbox_support.clock, sandbox_support.http, sandbox_support.sb


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


async def test_latency_holds_a_request_until_its_time(
    sb: Sandbox, http: aiohttp.ClientSession
) -> None:
    """A delayed request is held in flight (a second one finds it there), then served."""
    sb.faults = Faults(max_in_flight=1, latency=1.0, latency_seconds=60.0)
    tasks = [asyncio.create_task(send(http, sb, "POST", "/scopes")) for _ in range(2)]

    done, [held] = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    in_flight_while_held = sb.in_flight
    await sb.stop()  # ends the delay at once

    assert [429] == [task.result().status for task in done]
    assert 1 == in_flight_while_held
    assert 200 == (await held).status
    assert ["max_in_flight", "latency"] == [r.fault for r in sb.requests]


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

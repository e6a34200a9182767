"""Hardening: a soak under every fault at once, a silent server, secrets, resource hygiene."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import traceback
import uuid
from collections import Counter
from typing import Any

import pytest

from luigis_async import (
    BatchUpdater,
    Customization,
    CustomizationUpdate,
    EventKind,
    LuigisBoxClient,
    PinDefinition,
    RequestEvent,
    RetryBudget,
    RetryPolicy,
    TransportError,
    UpdateResult,
    converter,
)
from luigis_async.sandbox import Faults, Sandbox

from .helpers import FAST_RETRY, item_customization

PLACEHOLDER = converter.unstructure(Customization("basket", "all"))


def loop_errors() -> list[dict[str, Any]]:
    """Collect what asyncio would log as 'Task exception was never retrieved' and the like."""
    errors: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _, context: errors.append(context))
    return errors


@pytest.mark.slow
async def test_soak_every_fault_at_once(sandbox: Sandbox) -> None:
    """20,000 updates through every fault kind at concurrency 64: the store equals the input."""
    errors = loop_errors()
    ids = [sandbox.add(PLACEHOLDER) for _ in range(20_000)]
    updates = [CustomizationUpdate(cid, item_customization(n)) for n, cid in enumerate(ids)]
    sandbox.faults = Faults(
        seed=11,
        rate_429=0.03,
        retry_after="0",
        rate_500=0.02,
        rate_502=0.02,
        rate_503=0.03,
        rate_504=0.02,
        drop=0.02,
        lost_ack=0.02,
        latency=0.002,
        latency_seconds=2.0,  # beyond the client's 0.5 s timeout
    )
    budget = RetryBudget()
    retries_seen = Counter[EventKind]()

    def count(event: RequestEvent) -> None:
        retries_seen[event.kind] += 1

    async with LuigisBoxClient(
        sandbox.tracker_id,
        sandbox.private_key,
        base_url=sandbox.url,
        timeout=0.5,
        max_connections=64,
        retry=RetryPolicy(max_attempts=10, sleep=FAST_RETRY.sleep),
        retry_budget=budget,
        event_hooks=[count],
    ) as client:
        report = await BatchUpdater(client, concurrency=64).run(iter(updates))

    assert 20_000 == report.total == report.succeeded
    assert ([], []) == (report.failed, report.not_attempted)
    for update in updates:
        stored = dict(sandbox.store[str(update.customization_id)])
        for read_only in ("id", "created_at", "creator", "available"):
            del stored[read_only]
        assert converter.unstructure(update.customization) == stored
    faults = Counter(r.fault for r in sandbox.requests)
    assert all(faults[kind] > 50 for kind in ("429", "500", "502", "503", "504", "drop"))
    assert faults["latency"] + faults["latency+503"] > 10
    # Every retry was granted by the budget, which never ran dry at this failure rate.
    assert report.retries == retries_seen[EventKind.RETRY]
    assert budget.tokens > 0
    assert report.requests_sent == report.total + report.retries
    # The server saw our attempts, plus aiohttp's own one resend of an idempotent request
    # whose reused keep-alive connection was dropped.
    assert len(sandbox.requests) <= report.requests_sent + faults["drop"]
    assert sandbox.max_in_flight_seen <= 64
    gc.collect()
    assert [] == errors


async def test_a_server_that_never_answers_times_out_and_the_batch_finishes() -> None:
    """A socket that accepts and stays silent: each attempt times out, retried, then failed."""
    errors = loop_errors()
    connections = 0
    release = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await release.wait()
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with LuigisBoxClient(
            "1234-5678",
            "key",
            base_url=f"http://127.0.0.1:{port}",
            timeout=0.2,
            retry=RetryPolicy(max_attempts=3, sleep=FAST_RETRY.sleep),
        ) as client:
            updates = [(uuid.uuid4(), Customization("basket", "all")) for _ in range(4)]
            report = await BatchUpdater(client, concurrency=2).run(updates)
    finally:
        release.set()
        server.close()
        await server.wait_closed()

    assert 4 == len(report.failed)
    for result in report.failed:
        assert (None, 3) == (result.status, result.attempts)
        assert isinstance(result.error, TransportError)
        assert "timed out" in str(result.error)
    assert 12 == report.requests_sent == connections
    assert [] == errors


async def test_the_key_is_nowhere_in_logs_reprs_or_errors(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    """DEBUG logs of this package and aiohttp, reprs, errors, tracebacks: no private key."""
    caplog.set_level(logging.DEBUG)
    ids = [sandbox.add(PLACEHOLDER) for _ in range(20)]
    unknown = PinDefinition(position=1, pin_type="item", pin_identity="/p/nope")
    updates: list[Any] = [
        CustomizationUpdate(cid, item_customization(n)) for n, cid in enumerate(ids)
    ]
    updates[3] = (uuid.uuid4(), Customization("basket", "all"))  # 404
    updates[4] = "garbage"
    updates[5] = CustomizationUpdate(ids[5], Customization("b", "all", pin_definitions=[unknown]))
    sandbox.catalog = {f"/p/{n}" for n in range(2000)}
    sandbox.faults = Faults(seed=2, rate_503=0.3, drop=0.1)
    results: list[UpdateResult] = []
    texts: list[str] = []
    async with LuigisBoxClient(
        sandbox.tracker_id, sandbox.private_key, base_url=sandbox.url, retry=FAST_RETRY
    ) as client:
        texts.append(repr(client))
        results += [r async for r in BatchUpdater(client, concurrency=4).stream(updates)]
        texts.append(repr(client.retry_budget))
    sandbox.faults = Faults()
    async with LuigisBoxClient(
        sandbox.tracker_id, "wrong-" + sandbox.private_key[:4], base_url=sandbox.url
    ) as wrong:
        results += [r async for r in BatchUpdater(wrong).stream(updates[:3])]

    failures = [r for r in results if r.error is not None]
    assert {401, 404, 422, None} <= {r.status for r in failures}
    for result in results:
        texts += [repr(result), str(result.error), repr(result.error)]
        if result.error is not None:
            texts += traceback.format_exception(result.error)
            texts.append(repr(vars(result.error)))
    texts.append(caplog.text)
    assert "retrying PUT" in caplog.text  # the logs were captured at all
    assert [] == [t for t in texts if sandbox.private_key in t]


async def test_a_thousand_concurrent_calls_share_one_bounded_pool(sandbox: Sandbox) -> None:
    """The web-service case: 1,000 concurrent calls never exceed max_connections."""
    cid = sandbox.add(PLACEHOLDER)
    sandbox.faults = Faults(latency=1.0, latency_seconds=0.005)
    body = item_customization(1)
    async with LuigisBoxClient(
        sandbox.tracker_id, sandbox.private_key, base_url=sandbox.url, max_connections=10
    ) as client:
        await asyncio.gather(*(client.update_customization(cid, body) for _ in range(1000)))

    assert 1000 == len(sandbox.requests)
    assert sandbox.max_in_flight_seen <= 10  # the bound; how close load gets is timing


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
@pytest.mark.slow
async def test_creating_and_closing_a_thousand_clients_leaks_no_descriptors() -> None:
    """Each client opens a connection and closes it; the descriptor count returns to start."""
    gc.collect()
    before = open_fds()
    async with Sandbox() as sb:
        for _ in range(10):

            async def one() -> None:
                async with LuigisBoxClient(sb.tracker_id, sb.private_key, base_url=sb.url) as c:
                    await c.export_customizations()

            await asyncio.gather(*(one() for _ in range(100)))
        assert 1000 == len(sb.requests)
    gc.collect()

    assert before == open_fds()

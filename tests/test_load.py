"""Correct under load: the defaults and concurrency 16-64, with a slow server, a skewed
clock and a busy CPU. Each test is one way a request used to end in a false 401."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import pytest

from luigis_async import (
    AuthenticationError,
    BatchUpdater,
    CustomizationUpdate,
    LuigisBoxClient,
    RateLimitError,
)
from luigis_async.batch import DEFAULT_CONCURRENCY
from luigis_async.convert import converter
from luigis_async.sandbox import Faults, Sandbox

from .helpers import FAST_RETRY, item_customization


@pytest.fixture
def cpu_load() -> Iterator[None]:
    """Both cores busy in other processes for the test's duration."""
    burners = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)
    ]
    try:
        yield
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()


def seeded(sandbox: Sandbox, n: int) -> list[str]:
    return [sandbox.add(converter.unstructure(item_customization(i))) for i in range(n)]


def refused_for_date(sandbox: Sandbox) -> int:
    return sum(1 for r in sandbox.requests if r.status == 401)


def client_for(sandbox: Sandbox, **options: object) -> LuigisBoxClient:
    return LuigisBoxClient(
        sandbox.tracker_id, sandbox.private_key, base_url=sandbox.url, **options  # type: ignore[arg-type]
    )


async def gather_updates(sandbox: Sandbox, client: LuigisBoxClient, ids: list[str]) -> list[object]:
    return await asyncio.gather(
        *(client.update_customization(cid, item_customization(n + 1)) for n, cid in enumerate(ids)),
        return_exceptions=True,
    )


@pytest.mark.parametrize(
    "max_connections", [pytest.param(2, marks=pytest.mark.slow), 16, 64]
)
async def test_calls_queued_longer_than_the_date_window_are_not_refused(
    max_connections: int,
) -> None:
    """Gathered calls that queue for longer than the server's Date window: none refused."""
    # Twelve waves of 0.25 s: the last call waits about 2.75 s, past a 2 s window.
    async with Sandbox(
        max_skew=2.0, faults=Faults(latency=1.0, latency_seconds=0.25)
    ) as sandbox:
        ids = seeded(sandbox, 12 * max_connections)
        async with client_for(sandbox, max_connections=max_connections) as client:
            results = await gather_updates(sandbox, client, ids)

    assert [] == [r for r in results if r is not None]
    assert 0 == refused_for_date(sandbox)
    assert sandbox.max_in_flight_seen <= max_connections


@pytest.mark.slow  # both cores busy for seconds: it would slow every test beside it
async def test_queued_calls_are_not_refused_under_cpu_load(cpu_load: None) -> None:
    """The same, with both cores busy elsewhere: waiting longer never ages a signature."""
    async with Sandbox(
        max_skew=2.0, faults=Faults(latency=1.0, latency_seconds=0.25)
    ) as sandbox:
        ids = seeded(sandbox, 12 * 16)
        async with client_for(sandbox, max_connections=16) as client:
            results = await gather_updates(sandbox, client, ids)

    assert [] == [r for r in results if r is not None]
    assert 0 == refused_for_date(sandbox)


@pytest.mark.slow
async def test_a_thousand_gathered_calls_on_a_default_client() -> None:
    """1,000 gathered updates on a default client against a 200 ms server: all applied."""
    async with Sandbox(faults=Faults(latency=1.0, latency_seconds=0.2)) as sandbox:
        ids = seeded(sandbox, 1000)
        async with client_for(sandbox) as client:
            results = await gather_updates(sandbox, client, ids)

    assert [] == [r for r in results if r is not None]
    assert 0 == refused_for_date(sandbox)
    for n, cid in enumerate(ids):
        assert converter.unstructure(item_customization(n + 1)) == sandbox.stored_body(cid)


def _server_clock(offset: float) -> Callable[[], float]:
    return lambda: time.time() + offset


@pytest.mark.parametrize("offset", [60.0, -60.0])
@pytest.mark.parametrize("concurrency", [None, 16, 64])
async def test_a_skewed_server_clock_costs_at_most_one_wave(
    offset: float, concurrency: int | None
) -> None:
    """Server 60 s away: every update applies, at most one wave of requests refused."""
    async with Sandbox(
        clock=_server_clock(offset), faults=Faults(latency=1.0, latency_seconds=0.02)
    ) as sandbox:
        ids = seeded(sandbox, 300)
        updates = [CustomizationUpdate(cid, item_customization(n + 1)) for n, cid in enumerate(ids)]
        options = {} if concurrency is None else {"concurrency": concurrency}
        async with client_for(sandbox, max_connections=concurrency or 16) as client:
            report = await BatchUpdater(client, **options).run(updates)  # type: ignore[arg-type]

    assert (300, [], [], None) == (
        report.succeeded, report.failed, report.not_attempted, report.stop_reason
    )
    assert 1 <= refused_for_date(sandbox) <= (concurrency or DEFAULT_CONCURRENCY)
    assert abs(client.clock_offset - offset) < 2.0


async def test_a_wrong_key_is_still_refused_under_concurrency() -> None:
    """Re-signing never hides a bad key: each request gets one 401 and the batch stops."""
    async with Sandbox(faults=Faults(latency=1.0, latency_seconds=0.02)) as sandbox:
        ids = seeded(sandbox, 100)
        updates = [CustomizationUpdate(cid, item_customization(n)) for n, cid in enumerate(ids)]
        async with LuigisBoxClient(
            sandbox.tracker_id, "wrong-key", base_url=sandbox.url
        ) as client:
            report = await BatchUpdater(client, concurrency=16).run(updates)

    assert 0 == report.succeeded
    assert report.stop_reason is not None and "authentication failed" in report.stop_reason
    assert all(isinstance(r.error, AuthenticationError) for r in report.failed)
    assert len(report.failed) == refused_for_date(sandbox) <= 16


async def test_a_retry_after_beyond_the_limit_fails_at_once_and_pauses_nothing(
    sandbox: Sandbox,
) -> None:
    """A 429 asking for an hour fails its item at once; the other items are not held."""
    ids = seeded(sandbox, 50)
    sandbox.fail_next(5, 429, retry_after=3600)
    updates = [CustomizationUpdate(cid, item_customization(n)) for n, cid in enumerate(ids)]
    async with client_for(sandbox, retry=FAST_RETRY) as client:
        updater = BatchUpdater(client, concurrency=16)
        async with asyncio.timeout(30):  # a hang guard only: an hour-long pause would trip it
            report = await updater.run(updates)

    assert 45 == report.succeeded
    assert [(429, 1, 3600.0)] * 5 == [
        (r.status, r.attempts, r.error.retry_after)
        for r in report.failed
        if isinstance(r.error, RateLimitError)
    ]
    assert 50 == len(sandbox.requests)

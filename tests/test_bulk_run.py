"""BulkCreator is frozen configuration; each run (BulkRun) owns its pacer, report and stop.

Stopping a run stops its pacer: a chunk waiting there for a place is never sent, and its
lines are reported not attempted. The deprecated ``BulkCreator.stop()`` stops the runs
it started that are not finished, ``stream()``'s included.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Iterator

import attrs
import pytest

from luigis_async import BulkCreator, Customization, UpdateResult
from luigis_async.client import DEFAULT_MAX_CONNECTIONS
from luigis_async.sandbox import Sandbox
from luigis_async.transport import AiohttpTransport, HTTPRequest, HTTPResponse

from .helpers import FAST_RETRY
from .test_bulk import bulk_requests, pinned


def lines(start: int, stop: int) -> Iterator[Customization]:
    return (pinned(n) for n in range(start, stop))


async def collect(results: AsyncIterable[UpdateResult]) -> list[UpdateResult]:
    return [result async for result in results]


class HoldAfterFirst:
    """aiohttp, but every request after the first waits for ``release``; ``held`` is set
    when the first of them arrives."""

    max_concurrency: int | None = None

    def __init__(self) -> None:
        self.inner = AiohttpTransport(max_connections=DEFAULT_MAX_CONNECTIONS)
        self.held = asyncio.Event()
        self.release = asyncio.Event()
        self.sent = 0

    async def send(self, request: HTTPRequest) -> HTTPResponse:
        self.sent += 1
        if self.sent > 1:
            self.held.set()
            await self.release.wait()
        return await self.inner.send(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def test_the_creator_is_frozen_configuration(sandbox: Sandbox) -> None:
    """Options cannot be changed on a creator: a run takes them as they are."""
    creator = BulkCreator(sandbox.client(), chunk_size=100)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        creator.chunk_size = 10  # type: ignore[misc]


def test_invalid_settings_are_still_refused(sandbox: Sandbox) -> None:
    client = sandbox.client(max_connections=4)
    for options in (
        {"conflict_strategy": "merge"},
        {"chunk_size": 0},
        {"chunk_size": 5_001},
        {"max_bytes": 0},
        {"concurrency": 0},
        {"concurrency": 5},
    ):
        with pytest.raises(ValueError):
            BulkCreator(client, **options)  # type: ignore[arg-type]


async def test_two_runs_of_one_creator_do_not_share_stop_state(sandbox: Sandbox) -> None:
    """Stopping one run of a creator leaves another run of it untouched."""
    async with sandbox.client(retry=FAST_RETRY) as client:
        creator = BulkCreator(client, chunk_size=10, concurrency=2)
        async with creator.start(lines(0, 20)) as first, creator.start(lines(20, 40)) as second:
            first.stop("only the first")
            second_results = await collect(second)
            first_results = await collect(first)

    assert (20, None) == (sum(r.ok for r in second_results), second.report.stop_reason)
    assert (20, "only the first") == (
        sum(r.not_attempted for r in first_results), first.report.stop_reason
    )
    assert (None, "only the first") == (second.stop_reason, first.stop_reason)
    assert first.pacer is not second.pacer
    assert [200, 200] == bulk_requests(sandbox)  # the second run's two chunks only


async def test_a_stop_before_the_first_result_sends_nothing(sandbox: Sandbox) -> None:
    """A run stopped before it is iterated sends nothing: every line is not attempted."""
    async with sandbox.client(retry=FAST_RETRY) as client:
        run = BulkCreator(client, chunk_size=10).start(lines(0, 25))
        run.stop("not today")
        results = await collect(run)
        assert "not today" == run.report.stop_reason

    assert (25, 25) == (len(results), sum(r.not_attempted for r in results))
    assert [] == bulk_requests(sandbox)


async def test_a_stop_refuses_the_chunks_waiting_for_the_pacer(sandbox: Sandbox) -> None:
    """A chunk waiting for the pacer when stop() comes is never sent.

    One chunk in flight at most: the 2-line chunk is refused (409) and split; the first
    half is held in flight, so the second waits in the pacer. Then stop, then release:
    the first half is applied, the second never sent.
    """
    sandbox.fail_next(1, 409)
    transport = HoldAfterFirst()
    async with sandbox.client(retry=FAST_RETRY, transport=transport) as client:
        run = BulkCreator(client, concurrency=1).start(lines(0, 2))
        consumer = asyncio.create_task(collect(run))
        await transport.held.wait()
        assert 1 == run.pacer.in_flight
        run.stop("enough")
        transport.release.set()
        results = await consumer

    assert ([0], [1], []) == (
        [r.index for r in results if r.ok],
        [r.index for r in results if r.not_attempted],
        [r.index for r in results if r.error is not None],
    )
    assert [409, 200] == bulk_requests(sandbox)
    assert 2 == transport.sent
    report = run.report
    assert (1, 2, 1, "enough") == (
        report.succeeded, report.requests_sent, len(report.not_attempted), report.stop_reason
    )


async def test_run_and_start_give_the_same_results(sandbox: Sandbox) -> None:
    """run()'s report and a started run's results agree."""
    async with sandbox.client(retry=FAST_RETRY) as client:
        creator = BulkCreator(client, chunk_size=7)
        report = await creator.run(lines(0, 30))
        streamed = await collect(creator.start(lines(30, 60)))

    assert (30, 30, 5, None) == (
        report.total, report.succeeded, report.requests_sent, report.stop_reason
    )
    assert sorted(range(30)) == sorted(r.index for r in streamed)
    assert all(r.ok for r in streamed)
    assert 10 == len(bulk_requests(sandbox))

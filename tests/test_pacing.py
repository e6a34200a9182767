"""BatchPacer on its own: the concurrency bound, the shared cooldown, pace, and AIMD."""

from __future__ import annotations

import asyncio

import pytest

from luigis_async.errors import RateLimitError, ServerError
from luigis_async.pacing import BatchPacer


def throttled(retry_after: float | None = None) -> RateLimitError:
    error = RateLimitError(429, "slow down", method="PUT", path="/x")
    error.retry_after = retry_after
    return error


async def test_never_more_than_the_limit_in_flight() -> None:
    """With limit 3, the fourth acquirer waits until one releases."""
    pacer = BatchPacer(3, adaptive=False)
    tickets = [await pacer.acquire() for _ in range(3)]
    fourth = asyncio.create_task(pacer.acquire())
    await asyncio.sleep(0)
    assert not fourth.done()

    pacer.release(tickets[0], 204, None)
    await fourth

    assert 3 == pacer.in_flight


async def test_a_retry_after_pauses_every_worker() -> None:
    """One 429 with Retry-After closes the gate for all acquirers until it passes."""
    loop = asyncio.get_running_loop()
    pacer = BatchPacer(8, adaptive=False)
    ticket = await pacer.acquire()
    started = loop.time()
    pacer.release(ticket, 429, throttled(retry_after=0.05))

    async def acquire_and_time() -> float:
        await pacer.acquire()
        return loop.time()

    times = await asyncio.gather(*(acquire_and_time() for _ in range(5)))

    assert all(t >= started + 0.05 for t in times)


async def test_the_cooldown_is_capped() -> None:
    """A Retry-After beyond max_cooldown closes the gate for max_cooldown only."""
    loop = asyncio.get_running_loop()
    pacer = BatchPacer(2, adaptive=False, max_cooldown=0.01)
    ticket = await pacer.acquire()
    pacer.release(ticket, 429, throttled(retry_after=3600))

    started = loop.time()
    await asyncio.wait_for(pacer.acquire(), timeout=5)

    assert loop.time() - started < 5


async def test_the_rate_spaces_attempts() -> None:
    """At 200/s, 11 attempts span at least 50 ms."""
    loop = asyncio.get_running_loop()
    pacer = BatchPacer(20, rate=200.0, adaptive=False)
    started = loop.time()
    for _ in range(11):
        ticket = await pacer.acquire()
        pacer.release(ticket, 204, None)

    assert loop.time() - started >= 0.05


async def test_multiplicative_decrease_once_per_window() -> None:
    """A 429 halves the limit, but only for attempts sent after the last decrease."""
    pacer = BatchPacer(16)
    first_window = [await pacer.acquire() for _ in range(3)]

    pacer.release(first_window[0], 429, throttled())
    assert 8.0 == pacer.limit
    pacer.release(first_window[1], 429, throttled())  # same window: no second halving
    assert 8.0 == pacer.limit

    later = await pacer.acquire()
    pacer.release(later, 429, throttled())
    assert 4.0 == pacer.limit
    pacer.release(first_window[2], 429, throttled())  # stale again
    assert 4.0 == pacer.limit

    for _ in range(5):
        ticket = await pacer.acquire()
        pacer.release(ticket, 429, throttled())
    assert 1.0 == pacer.limit


async def test_additive_increase_up_to_the_bound() -> None:
    """Successes raise the limit by about one per window, never above concurrency."""
    pacer = BatchPacer(8)
    ticket = await pacer.acquire()
    pacer.release(ticket, 429, throttled())
    assert 4.0 == pacer.limit

    for _ in range(4):
        ticket = await pacer.acquire()
        pacer.release(ticket, 204, None)
    assert 4.5 < pacer.limit < 5.5

    for _ in range(200):
        ticket = await pacer.acquire()
        pacer.release(ticket, 204, None)
    assert 8.0 == pacer.limit


async def test_errors_other_than_429_do_not_change_the_limit() -> None:
    """A 503 or a transport failure is not a throttling signal."""
    pacer = BatchPacer(8)
    ticket = await pacer.acquire()
    pacer.release(ticket, 503, ServerError(503, "down", method="PUT", path="/x"))
    ticket = await pacer.acquire()
    pacer.release(ticket, None, None)

    assert 8.0 == pacer.limit


async def test_fixed_mode_never_adapts() -> None:
    """adaptive=False keeps the configured limit whatever happens."""
    pacer = BatchPacer(8, adaptive=False)
    ticket = await pacer.acquire()
    pacer.release(ticket, 429, throttled())

    assert 8.0 == pacer.limit


async def test_a_cancelled_waiter_gives_its_place_back() -> None:
    """Cancelling an acquirer that waits for a slot leaves the books balanced."""
    pacer = BatchPacer(1, adaptive=False)
    ticket = await pacer.acquire()
    waiter = asyncio.create_task(pacer.acquire())
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    pacer.release(ticket, 204, None)

    await pacer.acquire()
    assert 1 == pacer.in_flight

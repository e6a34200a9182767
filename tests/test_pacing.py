"""The pacer: its window's decisions as a pure function of the events it is told about
(injected times), then whole scenarios in virtual time (``pacing_sim``), then the asyncio
wrapper."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Callable

import pytest

from luigis_async import (
    HTTPRequest,
    HTTPResponse,
    LuigisBoxClient,
    MockTransport,
    RetryPolicy,
    endpoints,
)
from luigis_async.errors import api_error_for
from luigis_async.pacing import (
    BACKOFF,
    INITIAL_WINDOW,
    MIN_LATENCY_MEMORY,
    PACING_GAIN,
    SLOW_START_BACKOFF,
    BatchPacer,
    Ticket,
    Window,
)

from .pacing_sim import InFlightLimit, NoLimit, Server, Simulation, Stats, TokenBucket

LATENCY = 0.05


def answered(window: Window, now: float, status: int, retry_after: float | None = None) -> float:
    """Admit one attempt at ``now`` and finish it LATENCY later with ``status``."""
    ticket = window.try_admit(now)
    assert ticket is not None
    window.finish(ticket, now + LATENCY, status, retry_after)
    return now + LATENCY


def fill(window: Window, now: float) -> list[Ticket]:
    """Admit attempts until the window is full."""
    tickets = []
    while (ticket := window.try_admit(now)) is not None:
        tickets.append(ticket)
    return tickets


def finish_all(
    window: Window, tickets: list[Ticket], status: int, latency: float = LATENCY
) -> float:
    """Answer each ticket ``latency`` after it is sent (paced tickets go out a little
    later than admitted); when the last answer came."""
    done = [ticket.send_at + latency for ticket in tickets]
    for ticket, now in zip(tickets, done, strict=True):
        window.finish(ticket, now, status)
    return max(done)


# --- the window, event by event ------------------------------------------------------


def test_the_window_starts_small_and_never_exceeds_its_limit() -> None:
    """INITIAL_WINDOW attempts are admitted, then none until one finishes."""
    window = Window(100)
    tickets = fill(window, 0.0)

    assert (INITIAL_WINDOW, None) == (len(tickets), window.try_admit(0.0))
    window.finish(tickets[0], LATENCY, 204)
    assert window.try_admit(LATENCY) is not None


def test_slow_start_doubles_the_window_per_round_trip_up_to_the_cap() -> None:
    """Each success of a full window adds one: 8, 16, 32, 64, then the cap of 100."""
    window = Window(100)
    sizes = []
    now = 0.0
    for _ in range(5):
        tickets = fill(window, now)
        now += LATENCY
        for ticket in tickets:
            window.finish(ticket, now, 204)
        sizes.append(window.limit)

    assert [16, 32, 64, 100, 100] == sizes
    assert window.slow_start


def test_a_throttle_ends_slow_start_by_halving_once_per_window() -> None:
    """Many 429s from one window shrink it once; an attempt sent after shrinks again."""
    window = Window(100)
    first = fill(window, 0.0)
    for ticket in first:
        window.finish(ticket, 0.001, 429)

    assert (INITIAL_WINDOW * SLOW_START_BACKOFF, False) == (window.size, window.slow_start)
    answered(window, 0.002, 429)
    assert INITIAL_WINDOW * SLOW_START_BACKOFF * BACKOFF == window.size
    assert INITIAL_WINDOW + 1 == window.throttled


def test_slow_start_ends_at_what_the_last_round_trip_delivered() -> None:
    """40 sent, 10 answered in the last round trip, then a 429: the window becomes 10,
    not half of 50 (the server takes 10 per round trip; 25 would be refused again)."""
    window = Window(100, initial=40)
    tickets = fill(window, 0.0)
    for ticket in tickets[:10]:
        window.finish(ticket, LATENCY, 204)
    window.finish(tickets[10], LATENCY, 429)

    assert (10.0, False) == (window.size, window.slow_start)


def test_after_a_throttle_growth_starts_slow_then_speeds_up() -> None:
    """Probing adds little at first (stay near the limit just found), more each window."""
    window = Window(100, initial=20)
    answered(window, 0.0, 429)
    sizes = [window.size]
    now = 1.0
    for _ in range(6):
        now = finish_all(window, fill(window, now), 204)
        sizes.append(window.size)

    growth = [round(b - a, 3) for a, b in itertools.pairwise(sizes)]
    assert growth[:4] == sorted(growth[:4])
    assert growth[0] < 0.1 and all(0.4 < g <= 0.55 for g in growth[-2:])


def test_a_decrease_never_leaves_more_than_the_delivery_rate_fills() -> None:
    """After a second of 10 successes per round, a throttle at 30 leaves what that rate
    fills (10 per round, less the round's pacing: about 8.6)."""
    window = Window(100, initial=30)
    window.slow_start = False
    now = rounds = 0.0
    while now < 1.2:
        tickets = [window.try_admit(now) for _ in range(10)]
        assert None not in tickets
        now = finish_all(window, tickets, 204)  # type: ignore[arg-type]
        rounds += 1
    answered(window, now, 429)

    assert abs(window.size - 10 * rounds / now * LATENCY) < 0.5


@pytest.mark.parametrize(("per_round", "after"), [(10, 15.0), (20, 20.0), (28, 28.5)])
def test_a_decrease_goes_down_to_what_the_last_round_trip_delivered(
    per_round: int, after: float
) -> None:
    """Before a second of deliveries is known, the last round trip's stands in (a token
    bucket's burst running out, a capacity falling threefold): at 30, a throttle after
    rounds of 10 leaves 15 (never below half), of 20 leaves 20, of 28 the usual 0.95."""
    window = Window(100, initial=30)
    window.slow_start = False
    now = 0.0
    for last in (False, False, True):
        tickets = [window.try_admit(now) for _ in range(per_round + last)]
        assert None not in tickets
        refused = tickets.pop() if last else None
        now = finish_all(window, tickets, 204)  # type: ignore[arg-type]
    window.finish(refused, now, 429)  # type: ignore[arg-type]

    assert after == pytest.approx(window.size, abs=0.3)


def full_rounds(window: Window, now: float, rounds: int) -> float:
    """``rounds`` round trips, each a full window answered 204."""
    for _ in range(rounds):
        now = finish_all(window, fill(window, now), 204)
    return now


@pytest.mark.parametrize("rounds_since", [3, 10])
def test_the_last_stretch_stops_probing_and_steps_back(rounds_since: int) -> None:
    """When the items left fit in what the server delivers while a refused attempt waits,
    a refusal would hold the batch's end up for its Retry-After: the window goes back to
    where the last decrease left it, by one decrease at most (3 rounds of probing since:
    all the way; 10: 5 %, the rest may be a capacity that rose), and stops growing. Not
    knowing the count, it grows."""
    knows, guesses = Window(100, initial=20), Window(100, initial=20)
    for window in (knows, guesses):
        window.slow_start = False
        window.remaining = None if window is guesses else 100_000
        now = full_rounds(window, 0.0, 25)
        answered(window, now, 429, retry_after=1.0)
        settled = window.size
        now = full_rounds(window, now + LATENCY, rounds_since)
        assert window.size > settled  # probing again
    grown = knows.size
    knows.remaining = 50  # under a second at this rate
    full_rounds(knows, now, 10)
    full_rounds(guesses, now, 10)

    assert knows.size == max(settled, grown * BACKOFF) < grown < guesses.size
    assert (knows.size == settled) == (rounds_since == 3)


def test_idle_room_does_not_grow_the_window() -> None:
    """Successes while most of the window is unused (a slow producer) leave it as it is."""
    window = Window(100, initial=20)
    now = 0.0
    for _ in range(200):
        now = answered(window, now, 204)
    assert 20.0 == window.size


def test_rising_latency_stops_growth_but_shrinks_nothing() -> None:
    """Answers slowing to 2.5x, then 4x, the minimum: the window stops growing and stays
    (a busy client's own loop lag looks the same as a slower server)."""
    window = Window(100, initial=10)
    window.slow_start = False

    def round_trip(now: float, latency: float) -> float:
        return finish_all(window, fill(window, now), 204, latency)

    now = round_trip(0.0, LATENCY)
    for _ in range(15):
        now = round_trip(now, LATENCY * 2.5)
    held = window.size
    for _ in range(15):
        now = round_trip(now, LATENCY * 4)
    assert now < MIN_LATENCY_MEMORY  # the minimum is still the first round's

    assert held < 11.0  # the smoothed latency lags a little behind the change
    assert held == window.size


def test_errors_other_than_429_leave_the_window_alone() -> None:
    """A 503, a 500 or a dropped connection say nothing about capacity."""
    window = Window(100, initial=10)
    window.slow_start = False
    for status in (503, 500, None):
        ticket = window.try_admit(0.0)
        assert ticket is not None
        window.finish(ticket, 0.01, status)

    assert (10.0, 0) == (window.size, window.throttled)


def test_a_retry_after_at_the_floor_holds_the_place_until_it_passes() -> None:
    """Down to one, a second refusal in a row with Retry-After: 30 admits nothing for
    30 s. The first holds nothing: a batch squeezed to one by others sharing the limit
    must still be able to grow back (held, it starved at a few updates a second)."""
    window = Window(100, initial=1)
    answered(window, 0.0, 429, retry_after=30.0)
    assert window.next_release() is None
    answered(window, 0.05, 429, retry_after=30.0)

    assert (None, 30.1) == (window.try_admit(29.0), window.next_release())
    assert window.try_admit(30.2) is not None


def test_a_retry_after_above_the_floor_pauses_nothing() -> None:
    """With room in the window, a refusal's Retry-After holds nothing for the others."""
    window = Window(100, initial=20)
    window.slow_start = False
    answered(window, 0.0, 429, retry_after=30.0)

    assert (None, 19) == (window.next_release(), len(fill(window, 0.1)))


def test_a_retry_after_beyond_max_hold_holds_nothing() -> None:
    """A refusal for longer than max_hold fails its request; it holds no place."""
    window = Window(100, initial=1, max_hold=60.0)
    answered(window, 0.0, 429, retry_after=3600.0)
    answered(window, 0.05, 429, retry_after=3600.0)
    assert window.try_admit(0.1) is not None


def test_without_retry_after_the_floor_holds_its_place_longer_each_refusal() -> None:
    """Down to one, refusals in a row without Retry-After hold the place 0.5 s, 1 s,
    2 s... from the second: a server refusing everything gets fewer and fewer requests;
    a success resets it."""
    window = Window(100, initial=1)
    now = answered(window, 0.0, 429)
    assert window.next_release() is None
    holds = []
    for _ in range(4):
        now = answered(window, now, 429)
        release = window.next_release()
        assert release is not None and window.try_admit(release - 0.001) is None
        holds.append(round(release - now, 3))
        now = release
    answered(window, now, 204)
    answered(window, now + 1.0, 429)
    answered(window, now + 2.0, 429)

    assert [0.5, 1.0, 2.0, 4.0] == holds
    assert 0.5 == pytest.approx(window.next_release() - (now + 2.0 + LATENCY))  # type: ignore[operator]


def test_a_window_is_sent_spread_over_a_round_trip() -> None:
    """Once latency is known, a window admitted at one instant is sent spaced by
    latency / (window x gain): a burst of answers does not become a burst of requests."""
    window = Window(100, initial=10)
    window.slow_start = False
    now = finish_all(window, fill(window, 0.0), 204)
    tickets = fill(window, now)
    gaps = {round(b.send_at - a.send_at, 6) for a, b in itertools.pairwise(tickets)}

    assert tickets[0].wait == 0.0 and tickets[-1].wait > 0.0
    assert {round(LATENCY / (window.size * PACING_GAIN), 6)} == gaps


def test_fixed_mode_keeps_the_window_at_the_cap() -> None:
    """adaptive=False: the cap in flight whatever the answers."""
    window = Window(16, adaptive=False)
    for _ in range(5):
        answered(window, 0.0, 429)
    assert 16 == len(fill(window, 1.0))


def test_the_rate_spaces_admissions() -> None:
    """rate=10: attempts are admitted at once but sent 0.1 s apart."""
    window = Window(100, rate=10.0)
    send_times = [ticket.send_at for ticket in fill(window, 5.0)]
    assert [5.0, 5.1, 5.2] == [round(t, 3) for t in send_times[:3]]


# --- scenarios in virtual time -------------------------------------------------------


def goodput(stats: list[Stats], start: int, end: int) -> float:
    return sum(s.per_second[i] for s in stats for i in range(start, end)) / (end - start)


def refusals_per_applied(stats: list[Stats]) -> float:
    return sum(s.refused for s in stats) / sum(s.applied for s in stats)


@pytest.mark.parametrize("retry_after", [1.0, None])
@pytest.mark.parametrize(
    ("server", "capacity"),
    [(lambda: InFlightLimit(32), 640.0), (lambda: TokenBucket(lambda now: 200.0), 200.0)],
    ids=["32-in-flight", "200-per-second"],
)
def test_a_batch_finds_and_uses_a_fixed_capacity(
    server: Callable[[], Server], capacity: float, retry_after: float | None
) -> None:
    """At least 95 % of capacity, at most 0.05 refusals per update applied."""
    stats = Simulation(server(), [Window(100)], retry_after=retry_after).run(30.0)

    assert goodput(stats, 0, 30) >= 0.95 * capacity
    assert refusals_per_applied(stats) <= 0.05


def test_without_a_limit_the_window_grows_to_the_cap() -> None:
    """Latency only: the cap of 100 in flight at 50 ms, about 2,000 per second."""
    window = Window(100)
    stats = Simulation(NoLimit(), [window]).run(10.0)

    assert (100, 0) == (window.limit, stats[0].refused)
    assert goodput(stats, 1, 10) >= 0.95 * 100 / LATENCY


@pytest.mark.parametrize("retry_after", [1.0, None])
def test_a_changing_capacity_is_tracked_within_three_seconds(retry_after: float | None) -> None:
    """300/s, then 100/s, then 300/s: 90 % of each new capacity within 3 s of the change."""

    def capacity(now: float) -> float:
        return 100.0 if 10.0 <= now < 20.0 else 300.0

    stats = Simulation(TokenBucket(capacity), [Window(100)], retry_after=retry_after).run(30.0)

    assert goodput(stats, 13, 20) >= 0.9 * 100
    assert goodput(stats, 23, 30) >= 0.9 * 300
    assert refusals_per_applied(stats) <= 0.05


@pytest.mark.parametrize(
    ("refusal_latency", "seed"), [(0.001, 0), (LATENCY, 4), (LATENCY, 5)],
    ids=["fast-refusals", "slow-refusals-4", "slow-refusals-5"],
)
def test_three_batches_share_one_limit_fairly(refusal_latency: float, seed: int) -> None:
    """Three batches on one 300/s limit: 90 % of it together, each within 20 % of a third.
    With refusals as slow as answers (the benchmark's server), seeds 4 and 5 starved one
    batch at 7/s when a window of one held its place on its first refusal."""
    server = TokenBucket(lambda now: 300.0, refusal_latency=refusal_latency)
    windows = [Window(100) for _ in range(3)]
    stats = Simulation(server, windows, seed=seed).run(40.0)
    shares = [sum(s.per_second[i] for i in range(10, 40)) / 30 for s in stats]

    assert sum(shares) >= 0.9 * 300
    assert all(abs(share - 100) <= 20 for share in shares), shares


# --- the asyncio wrapper -------------------------------------------------------------


async def test_the_pacer_admits_a_full_window_then_waits_for_a_release() -> None:
    """The ninth attempt waits until one of the first eight is released."""
    pacer = BatchPacer(100)
    tickets = [await pacer.acquire() for _ in range(INITIAL_WINDOW)]
    ninth = asyncio.create_task(pacer.acquire())
    await asyncio.sleep(0)
    assert not ninth.done()

    pacer.release(tickets[0], 204, None)
    assert isinstance(await ninth, Ticket)
    assert INITIAL_WINDOW == pacer.in_flight


async def test_a_release_learns_the_retry_after_from_the_error() -> None:
    """A 429's retry_after reaches the window: at the floor its place is held."""
    now = [0.0]
    pacer = BatchPacer(100, clock=lambda: now[0])
    pacer.window.size = 1.0
    ticket = await pacer.acquire()
    throttled = api_error_for(429, None, "", method="PUT", path="/p", retry_after=30.0)
    pacer.release(ticket, 429, throttled)
    second = pacer.try_acquire()
    assert second is not None  # the first refusal holds nothing
    pacer.release(second, 429, throttled)

    assert 30.0 == pacer.window.next_release()


async def test_a_cancelled_waiter_gives_its_place_back() -> None:
    """Cancelling an attempt that waits for the rate frees its place at once."""
    pacer = BatchPacer(100, rate=1.0)
    await pacer.acquire()
    waiting = asyncio.create_task(pacer.acquire())
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert 1 == pacer.in_flight


async def test_a_slot_is_freed_whatever_raises_inside_it() -> None:
    """``async with pacer.slot()`` releases even when the attempt raises."""
    pacer = BatchPacer(4)
    with pytest.raises(KeyError):
        async with pacer.slot():
            raise KeyError("hook")
    assert 0 == pacer.in_flight


@pytest.mark.parametrize("in_batch", [True, False])
async def test_a_refused_batch_attempt_steps_aside_briefly_however_often_refused(
    in_batch: bool,
) -> None:
    """Without Retry-After, five 429s in a row: in a batch each retry waits at most the
    first backoff (the window slows the batch); alone, the backoff doubles each time."""
    refusals = iter(range(5))

    async def server(request: HTTPRequest) -> HTTPResponse:
        return HTTPResponse(429 if next(refusals, None) is not None else 204)

    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    policy = RetryPolicy(sleep=sleep, random=lambda: 1.0)
    pacer = BatchPacer(64) if in_batch else None
    async with LuigisBoxClient(
        "1234-5678", "key", base_url="http://127.0.0.1:9", transport=MockTransport(server)
    ) as client:
        reply = await client.send(endpoints.delete(uuid.uuid4()), retry=policy, pacer=pacer)

    assert 6 == reply.attempts
    expected = [0.5] * 5 if in_batch else [0.5, 1.0, 2.0, 4.0, 8.0]
    assert expected == slept


def test_a_retry_after_of_zero_at_the_floor_holds_nothing() -> None:
    """'Retry-After: 0' says now: the place is not held (no backoff instead of it)."""
    window = Window(100, initial=1)
    answered(window, 0.0, 429, retry_after=0.0)
    answered(window, LATENCY, 429, retry_after=0.0)

    assert (None, True) == (window.next_release(), window.try_admit(2 * LATENCY) is not None)

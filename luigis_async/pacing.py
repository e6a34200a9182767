"""How fast a batch sends: a congestion window that finds the server's capacity by itself.

The API publishes no limit and its limit changes, so a batch probes for it the way TCP
does, with a *window* of attempts that may be in flight at once (``Window``, pure: every
decision is a function of the events it is told about and the times it is given):

- **slow start**: the window starts at ``INITIAL_WINDOW`` and grows by one per success
  (doubling per round trip) until the first throttle or rising latency;
- **probing**: then by ``PROBE`` in the first window of successes, doubling in each
  window after (near the limit it just found, then faster if the limit went up), and
  only while the window is in use and latency stays flat (below ``LATENCY_HOLD`` x the
  minimum);
- **multiplicative decrease**: a 429 shrinks it by ``BACKOFF`` (``SLOW_START_BACKOFF``
  when it ends slow start). Rising latency stops growth but shrinks nothing: the latency
  a busy client measures includes its own event loop's lag, and shrinking then only
  costs throughput (and CPU per request). Only
  attempts sent since the last decrease can cause the next one, so a burst of 429s from
  one window shrinks it once. Several batches sharing one tracker converge to fair
  shares this way, without talking to each other;
- **Retry-After without a stall**: only the refused attempt waits out its
  ``Retry-After``; the rest of the batch goes on at the reduced window (no batch-wide
  freeze). Once the window is down to one, a second refusal in a row holds that place
  for its ``Retry-After``, so a server out of quota gets one request per pause (not on
  the first: a batch squeezed to one by others sharing the limit must grow back);
- **pacing**: starts are spread over the round trip (``PACING_GAIN``), as TCP paces
  its segments, so a burst of answers does not turn into a burst of requests;
- **without Retry-After**: a refused attempt steps aside briefly (the client waits only
  its first backoff in a batch, since the window does the slowing); at a window of one,
  from the second refusal in a row, its place is held for a backoff that doubles with
  each refusal;
- **the last stretch**: when the batch knows how many items remain (a sized input) and
  they fit in what the server delivers while a refused attempt waits, the window stops
  probing and steps back to where the last decrease left it (by one decrease at most): a
  refusal then would keep the batch waiting that long for its last items, and probing
  could gain nothing back;
- hard bounds: never more than ``cap`` in flight, and with ``rate``, never more than
  ``rate`` attempts started per second, spaced evenly.

``BatchPacer`` runs a ``Window`` on the event loop: attempts wait in it for a place.
"""

from __future__ import annotations

import asyncio
import heapq
from collections import deque
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Final, Protocol

import attrs

from .errors import APIError, LuigisBoxError
from .gate import READY

__all__ = [
    "BACKOFF",
    "NO_SLOT",
    "PacerStopped",
    "INITIAL_WINDOW",
    "PROBE",
    "BatchPacer",
    "Pacer",
    "PacerSlot",
    "Ticket",
    "Window",
]

#: Attempts in flight before anything is known about the server.
INITIAL_WINDOW: Final = 8
#: The window after a throttle, as a fraction of what it was (TCP uses 0.5, CUBIC 0.7:
#: closer to 1 keeps a server with a fixed limit busier between probes).
BACKOFF: Final = 0.95
#: Slow start may overshoot the limit twofold, so its end halves the window.
SLOW_START_BACKOFF: Final = 0.5
#: After a decrease the window grows by this much in its first window of successes,
#: doubling in each window after up to ``MAX_PROBE``: it stays near the limit it just
#: found, then probes faster if the limit went up.
PROBE: Final = 0.05
MAX_PROBE: Final = 0.5
#: Successes counted over this many seconds (and over the last round trip) give the rate
#: the server delivers; a decrease that would still leave ``OVERSHOOT`` times more in
#: flight than that rate sustains goes straight down to it (a token bucket's burst can
#: hide the limit while the window grows far past it, and a capacity can fall threefold).
#: Within that, only ``BACKOFF`` applies: shrinking every batch to its own delivery would
#: freeze unfair shares between batches.
DELIVERY_WINDOW: Final = 1.0
OVERSHOOT: Final = 1.1
#: Smoothed latency above this multiple of the minimum stops the window growing.
LATENCY_HOLD: Final = 2.0
#: The minimum latency is forgotten after this long, so a server that became slower for
#: good is not mistaken for a congested one forever.
MIN_LATENCY_MEMORY: Final = 10.0
#: Starts are spaced so that a window's attempts spread over a round trip, sent at this
#: many times the window's own pace (TCP pacing): answers that arrive in a burst would
#: otherwise send the next attempts in a burst, which queue behind each other in both
#: event loops (a few ms each, idle time for a server that limits requests in flight) and
#: empty a token bucket at once. Twice also keeps up with slow start's doubling; 1.5 to 4
#: measured the same.
PACING_GAIN: Final = 2.0
#: The last stretch starts this many refused attempts' waits before the end: a client
#: waits a ``Retry-After`` plus up to a quarter of it (``retry.RETRY_AFTER_JITTER``).
LAST_STRETCH: Final = 1.5
#: Without ``Retry-After``, a refusal at a window of one holds its place this long at
#: first, doubling with each refusal in a row up to the second figure, in seconds.
FLOOR_BACKOFF: Final = (0.5, 30.0)
#: The statuses that mean "slower" rather than "failed".
THROTTLED: Final = frozenset({429})


@attrs.define
class Ticket:
    """One admitted attempt: when it may be sent, and the window epoch it belongs to."""

    epoch: int
    send_at: float
    #: Seconds from admission to ``send_at`` (pacing or the rate): the attempt waits them.
    wait: float = 0.0


class Window:
    """The congestion window of one batch; see the module docstring. Not thread-safe.

    Args:
        cap: the most attempts in flight, whatever the window says.
        adaptive: False keeps the window at ``cap`` (Retry-After is still honoured).
        rate: the most attempts started per second (None: no ceiling).
        max_hold: a Retry-After longer than this holds no place (its request fails).
        initial: the window before anything is known (at most ``cap``).
    """

    def __init__(
        self,
        cap: int,
        *,
        adaptive: bool = True,
        rate: float | None = None,
        max_hold: float = 60.0,
        initial: int = INITIAL_WINDOW,
    ) -> None:
        self.cap = cap
        self.adaptive = adaptive
        self.rate = rate
        self.max_hold = max_hold
        self._size = 0.0
        self.limit: int = 1
        self.size = float(min(initial, cap) if adaptive else cap)
        self.in_flight: int = 0
        self.slow_start: bool = adaptive
        self.epoch: int = 0
        self.min_latency: float | None = None
        self.latency: float | None = None
        self.throttled: int = 0
        self._probe = PROBE
        self._floor_refusals = 0  # refusals in a row at a window of one
        self._delivered: deque[float] = deque()  # when each recent success was answered
        self._started_at: float | None = None
        self._min_latency_at = 0.0
        self._held: list[float] = []  # when each place held by a Retry-After comes free
        self._next_start = 0.0
        self._full_at = -1.0  # when an admission last (nearly) filled the window
        #: Items of the batch not finished yet, when it knows (None: it does not).
        self.remaining: int | None = None
        self._refusal_wait = 0.0  # how long the last refused attempt had to wait
        self._settled = self.size  # the window the last decrease left
        self._stepped_back = False  # the last stretch began (and stepped back once)

    def __repr__(self) -> str:
        return (
            f"<Window {self.size:.1f}/{self.cap} in_flight={self.in_flight} "
            f"held={len(self._held)}{' slow-start' if self.slow_start else ''}>"
        )

    @property
    def size(self) -> float:
        """The current window, in attempts (fractional: it grows by fractions)."""
        return self._size

    @size.setter
    def size(self, value: float) -> None:
        self._size = value
        #: Attempts that may be in flight (or held) now: the whole part of ``size``.
        self.limit = max(1, min(self.cap, int(value)))

    def held(self, now: float) -> int:
        """Places held by refused attempts waiting out their Retry-After."""
        while self._held and self._held[0] <= now:
            heapq.heappop(self._held)
        return len(self._held)

    def try_admit(self, now: float) -> Ticket | None:
        """A ticket when there is room (maybe to be sent a little later, for the rate);
        None when the window is full: wait for ``finish`` or ``next_release``."""
        in_use = self.in_flight + self.held(now)
        if in_use >= self.limit:
            return None
        self.in_flight += 1
        send_at = max(now, self._next_start)
        self._next_start = send_at + self._interval()
        if in_use + 2 >= self.limit:
            self._full_at = send_at
        return Ticket(self.epoch, send_at, send_at - now)

    def _interval(self) -> float:
        """Seconds from one start to the next: the rate's spacing, or (adaptive) the window
        spread over a round trip at ``PACING_GAIN`` times its pace, whichever is longer."""
        interval = 1.0 / self.rate if self.rate is not None else 0.0
        if self.adaptive and self.latency is not None:
            interval = max(interval, self.latency / (self.size * PACING_GAIN))
        return interval

    def next_release(self) -> float | None:
        """When the next held place comes free, if any is held."""
        return self._held[0] if self._held else None

    def finish(
        self, ticket: Ticket, now: float, status: int | None, retry_after: float | None = None
    ) -> None:
        """Learn how an attempt ended (``status`` None: no HTTP answer, or never sent).

        A second refusal in a row at the window's floor of one also holds that place
        for its ``Retry-After``: a server refusing everything for a minute then gets one
        request a minute, not one per round trip.
        """
        self.in_flight -= 1
        if status in THROTTLED:
            self.throttled += 1
            self._refusal_wait = FLOOR_BACKOFF[0] if retry_after is None else retry_after
            self._shrink(ticket, now)
            if self.limit == 1:
                self._hold(now, retry_after)
        elif status is not None and 200 <= status < 300:
            self._floor_refusals = 0
            self._succeeded(ticket, now)

    def _hold(self, now: float, retry_after: float | None) -> None:
        """Hold the window's last place for ``Retry-After``, or without one for a backoff
        doubling with each refusal in a row (``FLOOR_BACKOFF``)."""
        self._floor_refusals += 1
        if self._floor_refusals < 2:
            return
        if retry_after is None:
            initial, cap = FLOOR_BACKOFF
            retry_after = min(cap, initial * 2.0 ** min(self._floor_refusals - 2, 16))
        if 0 < retry_after <= self.max_hold:  # "Retry-After: 0" holds nothing
            heapq.heappush(self._held, now + retry_after)

    def _succeeded(self, ticket: Ticket, now: float) -> None:
        delivered = self._delivered
        delivered.append(now)
        while delivered[0] < now - DELIVERY_WINDOW:
            delivered.popleft()
        if self._started_at is None:
            self._started_at = ticket.send_at
        latency = max(0.0, now - ticket.send_at)
        if self.min_latency is None or latency <= self.min_latency or (
            now - self._min_latency_at > MIN_LATENCY_MEMORY
        ):
            self.min_latency, self._min_latency_at = latency, now
        self.latency = latency if self.latency is None else 0.875 * self.latency + 0.125 * latency
        if not self.adaptive:
            return
        if self._ending(now):
            if not self._stepped_back:
                # Back to where the last decrease left it, but by one decrease at most:
                # a capacity that rose since (no refusal) is still there.
                self._stepped_back = True
                self.size = min(self.size, max(self._settled, self.size * BACKOFF))
            return
        floor = self.min_latency + 0.001  # a millisecond of jitter is not queueing
        if self.latency <= LATENCY_HOLD * floor and self._full_at >= ticket.send_at:
            # Grow only a window that filled up while this attempt was out: idle room
            # (a slow producer) says nothing about the server.
            self.size = min(float(self.cap), self.size + self._step())

    def _step(self) -> float:
        """How much one success grows the window."""
        if self.slow_start:
            return 1.0
        step = self._probe / self.size
        self._probe = min(MAX_PROBE, self._probe + step)  # doubles per window
        return step

    def _ending(self, now: float) -> bool:
        """True in the last stretch: the items remaining fit in what the server delivers
        while a refused attempt waits (``LAST_STRETCH`` times its wait, and a round trip)."""
        if self.remaining is None or not self._refusal_wait or self.latency is None:
            return False
        rate = len(self._delivered) / DELIVERY_WINDOW  # pruned to the last second just now
        return self.remaining <= rate * (LAST_STRETCH * self._refusal_wait + self.latency)

    def _answered_since(self, start: float) -> float:
        """Successes answered since ``start`` (within the last ``DELIVERY_WINDOW``)."""
        return float(sum(1 for t in self._delivered if t >= start))

    def sustained(self, now: float) -> float | None:
        """The window the recent delivery rate fills, once a second of it is known."""
        if self.latency is None or self._started_at is None:
            return None
        if now - self._started_at < DELIVERY_WINDOW:
            return None
        return self._answered_since(now - DELIVERY_WINDOW) / DELIVERY_WINDOW * self.latency

    def _last_trip(self, now: float) -> float | None:
        """What the last round trip delivered, but at least half the window: it sees a
        token bucket's burst run out, or a capacity fall, a second before ``sustained``
        does; the half keeps one unlucky round trip from cutting deeper than TCP would."""
        if self.latency is None:
            return None
        return max(self._answered_since(now - self.latency), self.size / 2)

    def _shrink(self, ticket: Ticket, now: float) -> None:
        """Shrink once per window of attempts."""
        if not self.adaptive or ticket.epoch != self.epoch:
            return  # sent before the last decrease: already accounted for
        factor = SLOW_START_BACKOFF if self.slow_start else BACKOFF
        size = self.size * factor
        for delivered in (self.sustained(now), self._last_trip(now)):
            if delivered is not None and size > OVERSHOOT * delivered:
                size = delivered  # far past what the server delivers: back to that at once
        if self.slow_start and self.latency is not None:
            # The window just overran the server: what it answered in the last round trip
            # is what it takes per round trip (halving may still leave twice that).
            size = min(size, self._answered_since(now - self.latency))
        self.size = self._settled = max(1.0, size)
        self._probe = PROBE
        self.slow_start = False
        self.epoch += 1


class PacerStopped(LuigisBoxError):
    """Raised to an attempt still waiting for its place when its batch stops: not sent.

    The batch reports its item not attempted; it reaches no caller of the client.
    """


class PacerSlot(Protocol):
    """One attempt's place in the pace: entered before the attempt, left after it.

    The client sets ``status`` (None: no HTTP answer) and ``error`` before leaving, so the
    pacer learns how the attempt went; leaving always frees the place, whatever raised.
    """

    status: int | None
    error: LuigisBoxError | None

    def __aenter__(self) -> Awaitable[object]: ...

    def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Awaitable[object]: ...


class Pacer(Protocol):
    """A policy the client applies around each attempt of a batch (on top of its gate)."""

    @property
    def stopping(self) -> bool:
        """True once the batch is stopping: a failed attempt is then not retried."""

    def slot(self) -> PacerSlot:
        """A place for one attempt, to be used with ``async with``."""


class _Slot:
    """``BatchPacer``'s slot: a ticket taken on entry and handed back with the outcome.

    Entering costs no coroutine when the window has room (the common case).
    """

    __slots__ = ("_pacer", "_ticket", "error", "status")

    def __init__(self, pacer: BatchPacer) -> None:
        self._pacer = pacer
        self._ticket: Ticket | None = None
        self.status: int | None = None
        self.error: LuigisBoxError | None = None

    def __aenter__(self) -> Awaitable[object]:
        ticket = self._ticket = self._pacer.try_acquire()
        if ticket is None:
            return self._acquire()
        return READY if ticket.wait <= 0.0 else self._pacer.until_send(ticket)

    async def _acquire(self) -> None:
        self._ticket = await self._pacer.acquire()

    def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Awaitable[object]:
        assert self._ticket is not None
        self._pacer.release(self._ticket, self.status, self.error)
        return READY


class _NoSlot:
    """The slot of an attempt outside any batch: nothing to wait for; what it is told is
    never read (so one shared instance serves every request)."""

    __slots__ = ("error", "status")

    def __init__(self) -> None:
        self.status: int | None = None
        self.error: LuigisBoxError | None = None

    def __aenter__(self) -> Awaitable[object]:
        return READY

    def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Awaitable[object]:
        return READY


#: What a request outside a batch is paced by: nothing.
NO_SLOT: Final = _NoSlot()


class BatchPacer:
    """A ``Window`` on the event loop: attempts wait in it for a place, in arrival order.

    ``clock`` defaults to the loop's clock; tests inject one.
    """

    def __init__(
        self,
        concurrency: int,
        *,
        rate: float | None = None,
        adaptive: bool = True,
        max_retry_after: float = 60.0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.window: Window = Window(
            concurrency, adaptive=adaptive, rate=rate, max_hold=max_retry_after
        )
        #: Set when the batch stops: attempts that fail are then not retried.
        self.stopping: bool = False
        self._clock = clock
        self._waiters: deque[asyncio.Future[None]] = deque()

    def __repr__(self) -> str:
        return f"<BatchPacer {self.window!r}>"

    @property
    def limit(self) -> int:
        """Attempts that may be in flight now."""
        return self.window.limit

    @property
    def in_flight(self) -> int:
        """Attempts admitted and not yet finished."""
        return self.window.in_flight

    def _now(self) -> float:
        return self._clock() if self._clock is not None else asyncio.get_running_loop().time()

    def slot(self) -> _Slot:
        """A place for one attempt (``async with pacer.slot() as slot``)."""
        return _Slot(self)

    def stop(self) -> None:
        """The batch stops: attempts waiting for a place get ``PacerStopped``, and so does
        every later one (attempts in flight finish, without retries)."""
        self.stopping = True
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)

    def try_acquire(self) -> Ticket | None:
        """A ticket at once when the window has room and nobody waits (its ``wait`` is
        still to be waited: see ``until_send``)."""
        if self._waiters or self.stopping:
            return None
        return self.window.try_admit(self._now())

    async def acquire(self) -> Ticket:
        """Wait for a place (and the rate's next start); the ticket goes back to ``release``.

        Raises:
            PacerStopped: the batch stopped, before or while this attempt waited: it is
                not sent (its item is reported not attempted).
        """
        window = self.window
        while True:
            if self.stopping:
                raise PacerStopped
            if (ticket := window.try_admit(self._now())) is not None:
                break
            await self._wait(window.next_release())
        if ticket.wait > 0.0:
            await self.until_send(ticket)
        return ticket

    async def until_send(self, ticket: Ticket) -> None:
        """Wait out an admitted ticket's ``wait``; a stop meanwhile gives its place back.

        Raises:
            PacerStopped: the batch stopped while it waited: not sent.
        """
        try:
            await asyncio.sleep(ticket.wait)
            if self.stopping:
                raise PacerStopped
        except BaseException:
            self.release(ticket, None, None)
            raise

    async def _wait(self, until: float | None) -> None:
        """Until a place is released, or (if given) a held place comes free at ``until``."""
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        self._waiters.append(waiter)
        timer = None
        if until is not None:
            timer = loop.call_later(max(0.0, until - self._now()), _resolve, waiter)
        try:
            await waiter
        finally:
            if timer is not None:
                timer.cancel()
            if not waiter.done():
                waiter.cancel()
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    def release(self, ticket: Ticket, status: int | None, error: LuigisBoxError | None) -> None:
        """Tell the window how an attempt ended, and let waiting attempts in."""
        retry_after = error.retry_after if isinstance(error, APIError) else None
        now = self._now()
        window = self.window
        window.finish(ticket, now, status, retry_after)
        if not self._waiters:
            return
        free = window.limit - window.in_flight - window.held(now)
        while free > 0 and self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                free -= 1


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)

"""How fast a batch may send: concurrency, pace, a shared cooldown, and AIMD adaptation.

One ``BatchPacer`` is shared by every worker of a batch and wraps each attempt:

- at most ``limit`` attempts in flight (``limit <= concurrency``, a hard bound);
- at most ``rate`` attempts started per second, spaced evenly;
- a ``Retry-After`` on 429/503 closes one gate for *all* workers until that time, since
  per-request backoff cannot coordinate many parallel senders;
- adaptive mode halves ``limit`` (and the pace) on a 429 and adds back about one slot
  per window of successes (TCP's additive increase, multiplicative decrease). Only
  attempts sent after the last decrease can trigger the next one, so a burst of 429s
  from one window of requests halves once, not once per request.
"""

from __future__ import annotations

import asyncio
from collections import deque
from types import TracebackType
from typing import Protocol, Self

from .errors import APIError, LuigisBoxError

__all__ = ["BatchPacer", "Pacer", "PacerSlot"]


class PacerSlot(Protocol):
    """One attempt's place in the pace: entered before the attempt, left after it.

    The client sets ``status`` (None: no HTTP answer) and ``error`` before leaving, so the
    pacer learns how the attempt went; leaving always frees the place, whatever raised.
    """

    status: int | None
    error: LuigisBoxError | None

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class Pacer(Protocol):
    """A policy the client applies around each attempt of a batch (on top of its gate)."""

    @property
    def stopping(self) -> bool:
        """True once the batch is stopping: a failed attempt is then not retried."""

    def slot(self) -> PacerSlot:
        """A place for one attempt, to be used with ``async with``."""


class _Slot:
    """``BatchPacer``'s slot: a ticket taken on entry and handed back with the outcome."""

    __slots__ = ("_pacer", "_ticket", "error", "status")

    def __init__(self, pacer: BatchPacer) -> None:
        self._pacer = pacer
        self._ticket = 0
        self.status: int | None = None
        self.error: LuigisBoxError | None = None

    async def __aenter__(self) -> Self:
        pacer = self._pacer
        ticket = pacer.try_acquire()
        self._ticket = ticket if ticket is not None else await pacer.acquire()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._pacer.release(self._ticket, self.status, self.error)


class BatchPacer:
    """Gates each attempt of a batch; see the module docstring."""

    def __init__(
        self,
        concurrency: int,
        *,
        rate: float | None = None,
        adaptive: bool = True,
        max_cooldown: float = 60.0,
    ) -> None:
        self.concurrency = concurrency
        self.rate = rate
        self.adaptive = adaptive
        self.max_cooldown = max_cooldown
        #: The current bound on attempts in flight (float: it grows by fractions).
        self.limit = float(concurrency)
        self.in_flight = 0
        #: Set when the batch stops: attempts that fail are then not retried.
        self.stopping = False
        self._epoch = 0
        self._cooldown_until = 0.0
        self._next_slot = 0.0
        self._waiters: deque[asyncio.Future[None]] = deque()

    def slot(self) -> _Slot:
        """A place for one attempt (``async with pacer.slot() as slot``)."""
        return _Slot(self)

    def _effective_rate(self) -> float | None:
        if self.rate is None:
            return None
        return self.rate * self.limit / self.concurrency

    def try_acquire(self) -> int | None:
        """Take a slot at once if nothing holds the attempt back; else None (then await
        ``acquire``). The common case costs no coroutine."""
        if (
            self.rate is None
            and not self._cooldown_until
            and self.in_flight < max(1, int(self.limit))
        ):
            self.in_flight += 1
            return self._epoch
        return None

    async def acquire(self) -> int:
        """Wait for a slot; returns a ticket to hand back to ``release``."""
        loop = asyncio.get_running_loop()
        while True:
            now = loop.time()
            if self._cooldown_until > now:
                await asyncio.sleep(self._cooldown_until - now)
                continue
            if self.in_flight >= max(1, int(self.limit)):
                waiter = loop.create_future()
                self._waiters.append(waiter)
                try:
                    await waiter
                finally:
                    if not waiter.done():
                        waiter.cancel()
                    if waiter in self._waiters:
                        self._waiters.remove(waiter)
                continue
            self.in_flight += 1
            rate = self._effective_rate()
            if rate is not None:
                slot = max(now, self._next_slot)
                self._next_slot = slot + 1.0 / rate
                if slot > now:
                    try:
                        await asyncio.sleep(slot - now)
                    except BaseException:
                        self._leave()
                        raise
            return self._epoch

    def release(self, ticket: int, status: int | None, error: LuigisBoxError | None) -> None:
        """Record how an attempt ended and let the next waiter go."""
        self._leave()
        # A Retry-After beyond max_cooldown fails its request at once: it pauses nothing.
        if (
            isinstance(error, APIError)
            and error.retry_after is not None
            and error.retry_after <= self.max_cooldown
        ):
            now = asyncio.get_running_loop().time()
            until = now + error.retry_after
            self._cooldown_until = max(self._cooldown_until, until)
        elif self._cooldown_until and asyncio.get_running_loop().time() >= self._cooldown_until:
            self._cooldown_until = 0.0  # passed: back to the fast path
        if not self.adaptive:
            return
        if status == 429:
            if ticket == self._epoch:
                self._epoch += 1
                self.limit = max(1.0, self.limit / 2)
        elif error is None and status is not None and self.limit < self.concurrency:
            self.limit = min(float(self.concurrency), self.limit + 1.0 / self.limit)
            self._wake()

    def _leave(self) -> None:
        self.in_flight -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self.in_flight < max(1, int(self.limit)):
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

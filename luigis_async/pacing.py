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

from .errors import APIError, LuigisBoxError

__all__ = ["BatchPacer"]


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
        if isinstance(error, APIError) and error.retry_after is not None:
            now = asyncio.get_running_loop().time()
            until = now + min(error.retry_after, self.max_cooldown)
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

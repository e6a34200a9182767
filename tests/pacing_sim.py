"""A discrete-event simulation of batches pacing themselves against a throttled server.

Virtual time, seeded randomness and the real ``pacing.Window``: each simulated second
costs microseconds, and the same seed gives the same run. The server models match
``benchmarks/bench_throttled.py``'s: latency only, N in flight then 429, a token bucket
then 429 (with or without ``Retry-After``), and a capacity that changes mid-run.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections import Counter
from collections.abc import Callable
from typing import Protocol

import attrs

from luigis_async.pacing import Ticket, Window

#: How long a server takes to refuse by default (429 answers come back almost at once;
#: the benchmark's server takes as long as for an answer).
REFUSAL_LATENCY = 0.001


def jittered(latency: float, draw: float) -> float:
    """Latency varies by +-20 % (a server answering in lockstep would synchronise batches)."""
    return latency * (0.8 + 0.4 * draw)


class Server(Protocol):
    """Decides each request's status and when its answer arrives."""

    def request(self, now: float, draw: float) -> tuple[int, float]: ...

    def done(self, now: float) -> None: ...

    def capacity(self, now: float) -> float:
        """Requests per second it can serve at ``now``."""


@attrs.define
class NoLimit:
    latency: float = 0.05

    def request(self, now: float, draw: float) -> tuple[int, float]:
        return 204, now + jittered(self.latency, draw)

    def done(self, now: float) -> None:
        pass

    def capacity(self, now: float) -> float:
        return float("inf")


@attrs.define
class InFlightLimit:
    limit: int
    latency: float = 0.05
    refusal_latency: float = REFUSAL_LATENCY
    active: int = 0

    def request(self, now: float, draw: float) -> tuple[int, float]:
        if self.active >= self.limit:
            return 429, now + self.refusal_latency
        self.active += 1
        return 204, now + jittered(self.latency, draw)

    def done(self, now: float) -> None:
        self.active -= 1

    def capacity(self, now: float) -> float:
        return self.limit / self.latency


@attrs.define
class TokenBucket:
    """``rate(now)`` tokens a second, at most ``burst`` saved up; no token: 429."""

    rate: Callable[[float], float]
    burst: float = 20.0
    latency: float = 0.05
    refusal_latency: float = REFUSAL_LATENCY
    tokens: float = attrs.field()
    last: float = 0.0

    @tokens.default
    def _full(self) -> float:
        return self.burst

    def request(self, now: float, draw: float) -> tuple[int, float]:
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate(now))
        self.last = now
        if self.tokens < 1.0:
            return 429, now + self.refusal_latency
        self.tokens -= 1.0
        return 204, now + jittered(self.latency, draw)

    def done(self, now: float) -> None:
        pass

    def capacity(self, now: float) -> float:
        return self.rate(now)


@attrs.define
class Stats:
    """What one simulated batch achieved."""

    applied: int = 0
    refused: int = 0
    #: Applied updates per whole second of virtual time.
    per_second: Counter[int] = attrs.Factory(Counter)


class _Batch:
    """``workers`` loops, each sending one item at a time through its own Window."""

    def __init__(self, sim: Simulation, window: Window, workers: int) -> None:
        self.sim = sim
        self.window = window
        self.stats = Stats()
        self.waiting: list[int] = []
        self.wakes: set[float] = set()
        for worker in range(workers):
            sim.at(0.0, lambda w=worker: self.try_send(w))

    def try_send(self, worker: int) -> None:
        now = self.sim.now
        ticket = self.window.try_admit(now)
        if ticket is None:
            self.waiting.append(worker)
            release = self.window.next_release()
            if release is not None and release not in self.wakes:
                self.wakes.add(release)
                self.sim.at(release, self.wake)
            return
        self.sim.at(ticket.send_at, lambda: self.send(worker, ticket))

    def send(self, worker: int, ticket: Ticket) -> None:
        status, answered = self.sim.server.request(self.sim.now, self.sim.random.random())
        self.sim.at(answered, lambda: self.answer(worker, ticket, status))

    def answer(self, worker: int, ticket: Ticket, status: int) -> None:
        now = self.sim.now
        retry_after = self.sim.retry_after if status == 429 else None
        if status != 429:
            self.sim.server.done(now)
        self.window.finish(ticket, now, status, retry_after)
        self.wake()
        if status == 429:
            self.stats.refused += 1
            self.sim.at(now + self._retry_delay(worker, retry_after), lambda: self.try_send(worker))
            return
        self.stats.applied += 1
        self.stats.per_second[int(now)] += 1
        self.try_send(worker)

    def _retry_delay(self, worker: int, retry_after: float | None) -> float:
        """As the client's in a batch: Retry-After plus up to a quarter, else the first
        backoff (0 .. 0.5 s) however often refused: the window does the slowing."""
        draw = self.sim.random.random()
        if retry_after is not None:
            return retry_after * (1.0 + draw / 4)
        return draw * 0.5

    def wake(self) -> None:
        self.wakes.discard(self.sim.now)
        waiting, self.waiting = self.waiting, []
        for worker in waiting:
            self.try_send(worker)


class Simulation:
    """Runs ``batches`` windows against one server for ``duration`` virtual seconds."""

    def __init__(
        self,
        server: Server,
        windows: list[Window],
        *,
        workers: int = 100,
        retry_after: float | None = 1.0,
        seed: int = 0,
    ) -> None:
        self.server = server
        self.retry_after = retry_after
        self.random = random.Random(seed)
        self.now = 0.0
        self._events: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self.batches = [_Batch(self, window, workers) for window in windows]

    def at(self, when: float, action: Callable[[], None]) -> None:
        heapq.heappush(self._events, (max(when, self.now), next(self._order), action))

    def run(self, duration: float) -> list[Stats]:
        while self._events and self._events[0][0] < duration:
            self.now, _, action = heapq.heappop(self._events)
            action()
        return [batch.stats for batch in self.batches]

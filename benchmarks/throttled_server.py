"""A throttling stand-in for the pin API, in its own process, for bench_throttled.py
and bench_bulk_create.py.

Under ``/v1/recommender/pin/{tracker}`` it answers

- ``PUT /scope/{uuid}``: ``204`` after ``--latency`` seconds;
- ``POST /scope`` (create): ``201`` after ``--latency``, the body echoed with an ``id``
  and a ``created_at``;
- ``POST /scopes/_bulk`` (bulk create, NDJSON): ``200 {}`` after ``--latency`` plus
  ``--bulk-line-latency`` per line (parsing the lines counts towards it), every line
  counted as created; more than ``--max-bulk-lines`` (5,000) lines: ``413``.

Each request, a bulk one too, is one request in flight for the limit: unless the limit
refuses it, then ``429`` (after ``--reject-latency``, by default the same latency: a
refusal still costs a round trip), with ``Retry-After`` unless ``--retry-after none``.
Creates check nothing (no conflicts, no validation). Limits (``--limit``):

- ``none``: latency only;
- ``inflight=N``: at most N admitted requests in flight, the next ones are refused;
- ``rate=R``: a token bucket refilled at R per second, holding ``--burst`` seconds of it;
- ``rate=300:10,100:10,300``: the same with a rate that changes (R:seconds phases, the
  last one holds). Time starts at the first request, so process start-up eats no phase.

Like fast_server.py it verifies no signature (the client is what is measured). It counts
requests, successes (2xx), 429s, 413s, distinct customizations applied (PUT), customizations
created and their distinct natural keys (model, target type, target), and per ``--bucket``
seconds the successes and 429s (by admission time), per uuid first hex digit too with
``--tags`` (how bench_throttled.py tells its fairness processes apart). ``GET /_stats``
returns them as JSON. Run as ``python benchmarks/throttled_server.py [--port 0] [--cpu 0]
...``: it prints ``PORT <n> PID <pid>`` once listening and exits on SIGTERM/SIGINT or,
with ``--exit-on-stdin-eof``, when its stdin closes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import socket
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web
from fast_server import stop_signal

PREFIX = "/v1/recommender/pin/{tracker}"
PIN_ROUTE = PREFIX + "/scope/{uuid}"
CREATE_ROUTE = PREFIX + "/scope"
BULK_ROUTE = PREFIX + "/scopes/_bulk"
#: The API's documented maximum of lines per bulk request.
MAX_BULK_LINES = 5000
#: A bulk request's cost per line on top of --latency: 5,000 lines take 100 ms more than one
#: create, so a full bulk request costs three single creates, not one.
BULK_LINE_LATENCY = 20e-6
#: Bulk bodies run to megabytes (aiohttp refuses more than 1 MiB by default).
MAX_BODY = 64 * 2**20


# -- capacity: pure arithmetic, shared with bench_throttled.py -------------------------


@dataclass(frozen=True)
class Schedule:
    """Requests per second over time: ``(rate, seconds)`` phases, the last one holds."""

    phases: tuple[tuple[float, float], ...]

    @classmethod
    def parse(cls, text: str) -> Schedule:
        """``"200"`` or ``"300:10,100:10,300"`` (rate:seconds; the last duration is
        optional and ignored: the last phase never ends)."""
        phases = []
        for part in text.split(","):
            rate, _, seconds = part.partition(":")
            phases.append((float(rate), float(seconds) if seconds else math.inf))
        if any(rate <= 0 or seconds <= 0 for rate, seconds in phases):
            raise ValueError(f"rates and durations must be positive: {text!r}")
        last_rate, _ = phases[-1]
        phases[-1] = (last_rate, math.inf)
        return cls(tuple(phases))

    def starts(self) -> list[float]:
        """When each phase begins."""
        starts, t = [], 0.0
        for _, seconds in self.phases:
            starts.append(t)
            t += seconds
        return starts

    def rate_at(self, t: float) -> float:
        current = self.phases[0][0]
        for (rate, _), start in zip(self.phases, self.starts(), strict=True):
            if t >= start:
                current = rate
        return current

    def integral(self, t0: float, t1: float) -> float:
        """Requests the schedule admits between t0 and t1 (its capacity over a window)."""
        total = 0.0
        for (rate, seconds), start in zip(self.phases, self.starts(), strict=True):
            lo, hi = max(t0, start), min(t1, start + seconds)
            if hi > lo:
                total += rate * (hi - lo)
        return total


@dataclass(frozen=True)
class LimitSpec:
    """A parsed ``--limit``: its kind and, for the capacity, a schedule of rates."""

    kind: str  # "none", "inflight" or "rate"
    inflight: int = 0
    schedule: Schedule | None = None

    @classmethod
    def parse(cls, text: str) -> LimitSpec:
        if text == "none":
            return cls("none")
        kind, _, value = text.partition("=")
        if kind == "inflight" and value.isdigit() and int(value) > 0:
            return cls("inflight", inflight=int(value))
        if kind == "rate" and value:
            return cls("rate", schedule=Schedule.parse(value))
        raise ValueError(f"--limit must be none, inflight=N or rate=R[:s,R:s...], not {text!r}")

    def capacity(self, latency: float) -> Schedule | None:
        """What the server can apply per second: ``N / latency`` for an in-flight limit
        (an upper bound: it ignores the client's own overhead), None when unlimited."""
        if self.kind == "inflight":
            return Schedule(((self.inflight / latency, math.inf),))
        return self.schedule


# -- the limits ------------------------------------------------------------------------


class Limit(Protocol):
    def admit(self, t: float) -> bool: ...

    def release(self) -> None: ...


class Unlimited:
    def admit(self, t: float) -> bool:
        return True

    def release(self) -> None:
        pass


class InFlight:
    """At most ``n`` admitted requests being processed at once."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.busy = 0

    def admit(self, t: float) -> bool:
        if self.busy >= self.n:
            return False
        self.busy += 1
        return True

    def release(self) -> None:
        self.busy -= 1


class TokenBucket:
    """Refilled at the schedule's rate, holding ``burst`` seconds of it (at least 1)."""

    def __init__(self, schedule: Schedule, burst: float) -> None:
        self.schedule = schedule
        self.burst = burst
        self.tokens = self._size(0.0)
        self.last = 0.0

    def _size(self, t: float) -> float:
        return max(1.0, self.schedule.rate_at(t) * self.burst)

    def admit(self, t: float) -> bool:
        rate = self.schedule.rate_at(t)
        self.tokens = min(self._size(t), self.tokens + (t - self.last) * rate)
        self.last = t
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def release(self) -> None:
        pass


def make_limit(spec: LimitSpec, burst: float) -> Limit:
    if spec.kind == "inflight":
        return InFlight(spec.inflight)
    if spec.kind == "rate":
        assert spec.schedule is not None
        return TokenBucket(spec.schedule, burst)
    return Unlimited()


# -- counting --------------------------------------------------------------------------


class Stats:
    """Totals and per-bucket time series, with t = 0 at the first request."""

    def __init__(self, bucket: float, tags: bool) -> None:
        self.bucket = bucket
        self.tags = tags
        self.origin: float | None = None  # monotonic time of the first request
        self.origin_wall: float | None = None  # the same instant as time.time()
        self.cpu0 = 0.0
        self.last = 0.0
        self.requests = self.applied = self.refused = self.open = self.max_open = 0
        self.too_large = self.created = 0
        self.held_s = 0.0
        self.distinct: set[str] = set()
        self.created_keys: set[str] = set()
        self.applied_series: list[int] = []
        self.refused_series: list[int] = []
        self.tag_series: dict[str, list[int]] = {}

    def arrive(self) -> float:
        """Count a request; return its time since the first request."""
        now = time.monotonic()
        if self.origin is None:
            self.origin, self.origin_wall, self.cpu0 = now, time.time(), time.process_time()
        self.requests += 1
        self.open += 1
        self.max_open = max(self.max_open, self.open)
        return now - self.origin

    def leave(self) -> None:
        self.open -= 1
        if self.origin is not None:
            self.last = time.monotonic() - self.origin

    def _bump(self, series: list[int], t: float) -> None:
        i = int(t / self.bucket)
        if i >= len(series):
            series.extend([0] * (i + 1 - len(series)))
        series[i] += 1

    def count_applied(self, t: float, uuid: str) -> None:
        self.applied += 1
        self.distinct.add(uuid)
        self._bump(self.applied_series, t)
        if self.tags:
            self._bump(self.tag_series.setdefault(uuid[:1], []), t)

    def count_created(self, t: float, keys: list[str]) -> None:
        """One successful create request (bulk or not) that created ``keys``."""
        self.applied += 1
        self.created += len(keys)
        self.created_keys.update(keys)
        self._bump(self.applied_series, t)

    def count_held(self, seconds: float) -> None:
        """An admitted request held its place (in flight, for an in-flight limit) this long."""
        self.held_s += seconds

    def count_refused(self, t: float) -> None:
        self.refused += 1
        self._bump(self.refused_series, t)

    def as_json(self) -> dict[str, Any]:
        busy = time.process_time() - self.cpu0 if self.origin is not None else 0.0
        return {
            "requests": self.requests,
            "applied": self.applied,
            "refused": self.refused,
            "distinct_applied": len(self.distinct),
            "too_large": self.too_large,
            "created": self.created,
            "distinct_created": len(self.created_keys),
            "max_open": self.max_open,
            "held_s": self.held_s,
            "active_s": self.last,
            "cpu_s": busy,
            "origin_wall": self.origin_wall,
            "bucket_s": self.bucket,
            "applied_series": self.applied_series,
            "refused_series": self.refused_series,
            "tag_series": self.tag_series,
        }


# -- the application -------------------------------------------------------------------

STATS = web.AppKey("stats", Stats)

Handler = Callable[[web.Request, bytes, float], Awaitable[web.Response]]


def natural_key(fields: Mapping[str, Any]) -> str:
    """What makes two creates the same customization: model, target type and target."""
    target = fields.get("target_identity") or json.dumps(fields.get("target_criteria"),
                                                          sort_keys=True)
    return f"{fields.get('model')}|{fields.get('target_type')}|{target}"


def created_at() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def make_app(args: argparse.Namespace) -> web.Application:
    stats = Stats(args.bucket, args.tags)
    limit = make_limit(LimitSpec.parse(args.limit), args.burst)
    latency = args.latency
    reject_latency = args.latency if args.reject_latency is None else args.reject_latency
    refusal = {} if args.retry_after == "none" else {"Retry-After": args.retry_after}

    def throttled(handle: Handler) -> Callable[[web.Request], Awaitable[web.Response]]:
        """Every route: counted, then admitted by the limit (``handle`` runs while it
        holds its place in flight) or refused with 429."""

        async def route(request: web.Request) -> web.Response:
            t = stats.arrive()
            try:
                body = await request.read()
                if not limit.admit(t):
                    await asyncio.sleep(reject_latency)
                    stats.count_refused(t)
                    return web.Response(status=429, headers=refusal)
                admitted = time.monotonic()
                try:
                    return await handle(request, body, t)
                finally:
                    limit.release()
                    stats.count_held(time.monotonic() - admitted)
            finally:
                stats.leave()

        return route

    async def put_pin(request: web.Request, body: bytes, t: float) -> web.Response:
        await asyncio.sleep(latency)
        stats.count_applied(t, request.match_info["uuid"])
        return web.Response(status=204)

    async def create(request: web.Request, body: bytes, t: float) -> web.Response:
        fields = json.loads(body)
        await asyncio.sleep(latency)
        stats.count_created(t, [natural_key(fields)])
        stored = {**fields, "id": str(uuid.uuid4()), "created_at": created_at()}
        return web.json_response(stored, status=201)

    async def bulk_create(request: web.Request, body: bytes, t: float) -> web.Response:
        done = time.monotonic() + latency  # parsing counts towards the per-line cost
        lines = [line for line in body.split(b"\n") if line.strip()]
        if len(lines) > args.max_bulk_lines:
            await asyncio.sleep(latency)
            stats.too_large += 1
            return web.json_response({"reason": "Request Entity Too Large"}, status=413)
        keys = [natural_key(json.loads(line)) for line in lines]
        done += len(lines) * args.bulk_line_latency
        await asyncio.sleep(max(0.0, done - time.monotonic()))
        stats.count_created(t, keys)
        return web.json_response({})

    async def get_stats(request: web.Request) -> web.Response:
        return web.json_response(stats.as_json())

    app = web.Application(client_max_size=MAX_BODY)
    app[STATS] = stats
    app.router.add_put(PIN_ROUTE, throttled(put_pin))
    app.router.add_post(CREATE_ROUTE, throttled(create))
    app.router.add_post(BULK_ROUTE, throttled(bulk_create))
    app.router.add_get("/_stats", get_stats)
    return app


async def serve(args: argparse.Namespace) -> None:
    stop = await stop_signal(watch_stdin=args.exit_on_stdin_eof)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    runner = web.AppRunner(make_app(args), access_log=None, handle_signals=False)
    await runner.setup()
    await web.SockSite(runner, sock, backlog=1024).start()
    print(f"PORT {sock.getsockname()[1]} PID {os.getpid()}", flush=True)
    try:
        await stop
    finally:
        await runner.cleanup()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--cpu", type=int, default=None, help="pin to this core if allowed")
    parser.add_argument("--limit", default="none",
                        help="none | inflight=N | rate=R | rate=R:s,R:s,...,R (default none)")
    parser.add_argument("--latency", type=float, default=0.05,
                        help="seconds before a 204 (0.05)")
    parser.add_argument("--reject-latency", type=float, default=None,
                        help="seconds before a 429 (default: --latency)")
    parser.add_argument("--bulk-line-latency", type=float, default=BULK_LINE_LATENCY,
                        help="a bulk request's seconds per line on top of --latency "
                             f"({BULK_LINE_LATENCY:g})")
    parser.add_argument("--max-bulk-lines", type=int, default=MAX_BULK_LINES,
                        help=f"more lines in a bulk request: 413 ({MAX_BULK_LINES})")
    parser.add_argument("--retry-after", default="1",
                        help="Retry-After value on a 429, or 'none' to send none (1)")
    parser.add_argument("--burst", type=float, default=0.1,
                        help="token bucket size, in seconds of its rate (0.1)")
    parser.add_argument("--bucket", type=float, default=0.1,
                        help="time series resolution in seconds (0.1)")
    parser.add_argument("--tags", action="store_true",
                        help="also count 204s per first hex digit of the uuid")
    parser.add_argument("--exit-on-stdin-eof", action="store_true",
                        help="exit when stdin closes (the benchmark holds a pipe open)")
    args = parser.parse_args(argv)
    try:
        LimitSpec.parse(args.limit)
    except ValueError as exc:
        parser.error(str(exc))
    return args


def main() -> None:
    args = parse_args()
    if args.cpu is not None and hasattr(os, "sched_setaffinity"):
        try:
            os.sched_setaffinity(0, {args.cpu})
        except OSError as exc:
            print(f"throttled_server: could not pin to core {args.cpu}: {exc}", file=sys.stderr)
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()

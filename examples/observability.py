"""What the client does, in your logs and metrics: ``logging`` and ``event_hooks``.

Logs: the client logs to the ``luigis_async`` logger: a DEBUG line per response (method,
path, status, elapsed, attempt), INFO per retry (delay, why), WARNING when it gives up.
The private key is never logged. Configure it like any other logger.

Metrics: ``event_hooks`` callbacks get a ``RequestEvent`` at each step of each request
(start, response or transport_error, retry, success or give_up). ``RequestMetrics`` below
counts them as one would feed Prometheus counters (``Counter.labels(...).inc()``) or
OpenTelemetry instruments, without this package depending on either. Label by method
and status, never by path: every customization ID would become its own time series.

    python examples/observability.py

It runs against a local sandbox told to throttle (429) the first request twice, so the
retries show.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter

import attrs

from luigis_async import (
    Customization,
    EventKind,
    LuigisBoxClient,
    PinDefinition,
    RequestEvent,
)
from luigis_async.sandbox import Sandbox


class RequestMetrics:
    """Counters of finished requests, attempts by status, retries, and request latency.

    Prometheus equivalents: ``luigisbox_requests_total{method,outcome}``,
    ``luigisbox_responses_total{status}``, ``luigisbox_retries_total{method}`` and the
    sum and count of a ``luigisbox_request_seconds`` histogram.
    """

    def __init__(self) -> None:
        self.requests: Counter[tuple[str, str]] = Counter()
        self.responses: Counter[int] = Counter()
        self.retries: Counter[str] = Counter()
        self.seconds_sum = 0.0
        self.seconds_count = 0

    def __call__(self, event: RequestEvent) -> None:
        """The hook: quick, and never raises (an exception would fail the request)."""
        if event.kind is EventKind.RESPONSE and event.status is not None:
            self.responses[event.status] += 1
        elif event.kind is EventKind.RETRY:
            self.retries[event.method] += 1
        elif event.kind in (EventKind.SUCCESS, EventKind.GIVE_UP):
            self.requests[event.method, event.kind.value] += 1
            self.seconds_sum += event.elapsed
            self.seconds_count += 1


def configure_logging() -> None:
    """Timestamps and logger names on stderr; the client's per-request lines included."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s"
    )
    logging.getLogger("luigis_async").setLevel(logging.DEBUG)


async def exercise(client: LuigisBoxClient) -> uuid.UUID:
    """Create a customization, pin an item on it, and read it back; return its ID."""
    bare = Customization("basket", "item", target_identity="/p/1")
    created = await client.create_customization(bare)
    assert created.id is not None
    pin = PinDefinition(position=1, pin_type="item", pin_identity="/p/2")
    await client.update_customization(created.id, attrs.evolve(bare, pin_definitions=[pin]))
    await client.get_customization(created.id)
    return created.id


async def main() -> None:
    configure_logging()
    metrics = RequestMetrics()
    async with Sandbox() as sandbox, LuigisBoxClient(
        sandbox.tracker_id,
        sandbox.private_key,
        base_url=sandbox.url,
        event_hooks=[metrics],
    ) as client:
        sandbox.fail_next(2, 429, retry_after=0)  # throttle the create twice: 2 retries
        await exercise(client)
    print("requests:", dict(metrics.requests))
    print("responses by status:", dict(metrics.responses))
    print("retries:", dict(metrics.retries))
    print(f"latency: {metrics.seconds_count} requests, {metrics.seconds_sum * 1000:.1f} ms total")


if __name__ == "__main__":
    asyncio.run(main())

"""N asyncio workers pulling customization updates from an ``asyncio.Queue``, one client.

For updates that arrive over time (a message-bus consumer, webhooks, a change feed): a
producer puts them on a bounded queue, so it waits when the workers fall behind; the
workers share one ``LuigisBoxClient``, so all of them draw on one connection pool of
``max_connections``. (For a stream you already hold, ``BatchUpdater`` does all of this,
with pacing and accounting: see ``bulk_refresh.py``.)

Graceful shutdown: on SIGINT or SIGTERM the producer stops queueing, ``queue.join()``
waits until every update already queued is done, and only then are the idle workers
cancelled. Nothing queued is lost and nothing is cut off mid-request.

    python examples/worker_pool.py [--updates 40] [--workers 4] [--latency SECONDS]

It runs against a local sandbox (never a real account: the updates are made up).
``--latency 0.2`` slows every request, to try Ctrl-C halfway.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from luigis_async import (
    Customization,
    CustomizationUpdate,
    LuigisBoxClient,
    PinDefinition,
    converter,
)
from luigis_async.sandbox import Faults, Sandbox


@dataclass(frozen=True)
class PoolResult:
    """How one update ended, and which worker did it."""

    customization_id: uuid.UUID
    worker: int
    error: Exception | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


async def worker(
    number: int,
    client: LuigisBoxClient,
    queue: asyncio.Queue[CustomizationUpdate],
    results: list[PoolResult],
) -> None:
    """Apply updates from ``queue`` until cancelled; one failed update never stops it."""
    while True:
        update = await queue.get()
        try:
            await client.update_customization(update.customization_id, update.customization)
            result = PoolResult(update.customization_id, number)
            print(f"worker {number}: applied {update.customization_id}", flush=True)
        except Exception as exc:  # a worker must outlive any one bad update
            result = PoolResult(update.customization_id, number, exc)
            print(f"worker {number}: failed {update.customization_id}: {exc}", flush=True)
        finally:
            queue.task_done()  # always, or queue.join() would wait forever
        results.append(result)


async def run_pool(
    client: LuigisBoxClient,
    updates: Iterable[CustomizationUpdate],
    *,
    workers: int,
    stop: asyncio.Event | None = None,
) -> list[PoolResult]:
    """Apply ``updates`` with ``workers`` workers sharing ``client``; one result per update.

    Once ``stop`` is set, take no more updates, finish the queued ones, and return.
    """
    queue: asyncio.Queue[CustomizationUpdate] = asyncio.Queue(maxsize=2 * workers)
    results: list[PoolResult] = []
    tasks = [
        asyncio.create_task(worker(n, client, queue, results), name=f"pool-worker-{n}")
        for n in range(1, workers + 1)
    ]
    stop = stop or asyncio.Event()
    pending = iter(updates)
    try:
        # Check before taking the next update, so none is taken and then dropped.
        while not stop.is_set() and (update := next(pending, None)) is not None:
            await queue.put(update)  # waits while the queue is full: backpressure
        await queue.join()  # every queued update is done...
    finally:
        for task in tasks:  # ...so the workers are idle in queue.get(): stop them
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return results


def make_updates(ids: Iterable[uuid.UUID]) -> Iterator[CustomizationUpdate]:
    """Pin a bestseller first on each customization (stand-in for a real feed)."""
    for n, cid in enumerate(ids):
        pin = PinDefinition(position=1, pin_type="item", pin_identity=f"/p/bestseller-{n}")
        yield CustomizationUpdate(
            cid, Customization("basket", "item", target_identity=f"/p/{n}", pin_definitions=[pin])
        )


async def main() -> None:
    parser = argparse.ArgumentParser(description="Apply updates with a pool of workers.")
    parser.add_argument("--updates", type=int, default=40)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per request")
    args = parser.parse_args()

    stop = asyncio.Event()

    def on_signal() -> None:
        if not stop.is_set():
            print("stopping: finishing the queued updates, queueing no more", flush=True)
            stop.set()

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal)

    faults = Faults(latency=1.0 if args.latency else 0.0, latency_seconds=args.latency)
    async with Sandbox(faults=faults) as sandbox:
        placeholder = converter.unstructure(Customization("basket", "all"))
        ids = [uuid.UUID(sandbox.add(placeholder)) for _ in range(args.updates)]
        async with LuigisBoxClient(
            sandbox.tracker_id, sandbox.private_key, base_url=sandbox.url
        ) as client:
            print(f"{args.workers} workers, {args.updates} updates, sandbox at {sandbox.url}")
            results = await run_pool(client, make_updates(ids), workers=args.workers, stop=stop)
    applied = sum(r.ok for r in results)
    print(
        f"{applied} applied, {len(results) - applied} failed, "
        f"{args.updates - len(results)} not sent"
    )


if __name__ == "__main__":
    asyncio.run(main())

"""A bulk pin-refresh job: stream updates from a generator through ``BatchUpdater``.

The generator yields one ``CustomizationUpdate`` at a time (in a real job: from a
database cursor or a product feed), so memory stays flat however many there are.
``BatchUpdater`` keeps a bounded number in flight, retries what may be retried, and ends
every update as exactly one ``UpdateResult``; ``on_result`` prints progress and appends
each failure to a JSON Lines file as it happens (``{"customization_id", "customization",
"error"}``, which ``luigis-async push`` accepts once fixed). Finally the report is printed.

    python examples/bulk_refresh.py [FAILURES.jsonl]

It runs against a local sandbox seeded with the generated IDs, minus a few (as if deleted
meanwhile: those end in the failures file), and injecting some 503s (retried). It never
touches a real account: to refresh yours, call ``refresh`` with your own client and updates.
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from collections.abc import AsyncIterable, Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Final, Self

from luigis_async import (
    BatchReport,
    BatchUpdater,
    Customization,
    CustomizationUpdate,
    LuigisBoxClient,
    PinDefinition,
    UpdateResult,
    converter,
)
from luigis_async.sandbox import Faults, Sandbox

COUNT: Final = 1_000
#: Every this-many-th generated ID is missing from the sandbox, so its update fails (404).
MISSING_EVERY: Final = 250
PROGRESS_EVERY: Final = 100
_IDS: Final = uuid.UUID("6f1d0c3e-8a7b-4c55-9a43-1e0b8f6e2d10")  # namespace for stable IDs


def customization_id(n: int) -> uuid.UUID:
    """The (stable) ID of the customization for product ``n``."""
    return uuid.uuid5(_IDS, f"/p/{n}")


def planned_updates(count: int) -> Iterator[CustomizationUpdate]:
    """Pin three complements on each product's basket recommendation, one at a time."""
    for n in range(count):
        pins = [
            PinDefinition(position=p, pin_type="item", pin_identity=f"/p/{10_000 + n * 3 + p}")
            for p in (1, 2, 3)
        ]
        customization = Customization(
            "basket", "item", target_identity=f"/p/{n}", pin_definitions=pins, tags=["refresh"]
        )
        yield CustomizationUpdate(customization_id(n), customization)


class FailuresFile:
    """Appends one JSON line per failed update, flushed at once, so a killed job loses none."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        self._file: IO[str] | None = None

    def __enter__(self) -> Self:
        self._file = self.path.open("w", encoding="utf-8")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._file is not None:
            self._file.close()

    def write(self, result: UpdateResult, reason: str) -> None:
        assert self._file is not None, "use FailuresFile in a with block"
        cid = result.customization_id
        record: dict[str, Any] = {
            "customization_id": str(cid) if cid is not None else None,
            "customization": None,
            "error": {"index": result.index, "status": result.status, "reason": reason},
        }
        if isinstance(result.item, CustomizationUpdate):
            record["customization"] = converter.unstructure(result.item.customization)
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        self.count += 1


async def refresh(
    client: LuigisBoxClient,
    updates: Iterable[CustomizationUpdate] | AsyncIterable[CustomizationUpdate],
    failures_path: Path,
) -> BatchReport:
    """Apply ``updates``, printing progress and writing each failure to ``failures_path``.

    An update a stopped batch never sent (say, the key was rejected) is written there too.
    """
    with FailuresFile(failures_path) as failures:
        done = 0

        def on_result(result: UpdateResult) -> None:
            nonlocal done
            done += 1
            if result.error is not None:
                failures.write(result, str(result.error))
                print(f"  failed {result.customization_id}: {result.error}")
            elif result.not_attempted:
                failures.write(result, f"not attempted: {run.stop_reason}")
            if done % PROGRESS_EVERY == 0:
                print(f"{done} done, {failures.count} failed", flush=True)

        updater = BatchUpdater(client, concurrency=16, on_result=on_result)
        async with updater.start(updates) as run:
            async for _ in run:
                pass
        return run.report


def describe(report: BatchReport) -> str:
    """The report in one line."""
    text = (
        f"{report.succeeded} of {report.total} applied, {len(report.failed)} failed, "
        f"{len(report.not_attempted)} not attempted; {report.requests_sent} requests "
        f"({report.retries} retries) in {report.elapsed:.1f}s"
    )
    return text + (f"; stopped: {report.stop_reason}" if report.stop_reason else "")


async def main() -> None:
    failures_path = Path(sys.argv[1] if len(sys.argv) > 1 else "bulk_refresh.failures.jsonl")
    placeholder = converter.unstructure(Customization("basket", "all"))
    async with Sandbox(faults=Faults(rate_503=0.02, seed=7)) as sandbox:
        for n in range(COUNT):
            if n % MISSING_EVERY != MISSING_EVERY - 1:
                sandbox.add(placeholder, str(customization_id(n)))
        print(f"refreshing {COUNT} customizations on a local sandbox at {sandbox.url}")
        async with LuigisBoxClient(
            sandbox.tracker_id, sandbox.private_key, base_url=sandbox.url
        ) as client:
            report = await refresh(client, planned_updates(COUNT), failures_path)
    print(describe(report))
    print(f"failures written to {failures_path}")


if __name__ == "__main__":
    asyncio.run(main())

"""The export job: page through the customizations, write them as push-ready JSON Lines.

Each line is ``{"customization_id": ..., "customization": <the writable body>}``, exactly
what ``push`` reads, so export -> edit -> push round-trips. The output is written to
``PATH.part`` and renamed into place only when complete.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from pathlib import Path
from typing import IO, Any, Final, TypeVar

import attrs

from ..client import LuigisBoxClient
from ..errors import LuigisBoxError
from ..jsonl import dump_update
from ..sandbox import Sandbox
from ..sandbox.demo import seed_demo_customizations
from .options import BatchOptions, TargetOptions
from .probe import Where, failed
from .progress import Output, Snapshot, Tracker, Verbosity, Words, output
from .run import Connection, session
from .signals import Signals

__all__ = ["ExportFilters", "count", "export", "export_to"]

log: Final[logging.Logger] = logging.getLogger("luigis_async.cli")

T = TypeVar("T")

#: How many demo customizations ``export --sandbox`` starts with.
DEMO_EXPORT_COUNT: Final = 250
#: Requests an export has in flight at most (it pages one list after another).
EXPORT_CONNECTIONS: Final = 4


@attrs.frozen
class ExportFilters:
    """Which customizations to export; an empty filter matches everything."""

    models: Sequence[str] = ()
    tags: Sequence[str] = ()
    target_type: str | None = None

    def query(self) -> dict[str, Any]:
        """Keyword arguments for ``list_customizations``."""
        return {
            "model": list(self.models) or None,
            "tag": list(self.tags) or None,
            "target_type": self.target_type,
        }


async def count(client: LuigisBoxClient, filters: ExportFilters) -> int:
    """How many customizations match: one page of one, for the progress total."""
    page = await client.list_customizations_page(limit=1, **filters.query())
    return page.total


async def export(
    client: LuigisBoxClient, filters: ExportFilters, out: IO[str], tracker: Tracker
) -> tuple[int, float]:
    """Write every matching customization to ``out``; returns (how many, seconds)."""
    started = time.monotonic()
    written = 0
    async for stored in client.list_customizations(**filters.query()):
        assert stored.id is not None, "the server returned a customization without an id"
        out.write(dump_update(stored.id, stored.customization) + "\n")
        written += 1
        tracker.update(Snapshot(done=written, applied=written))
    return written, time.monotonic() - started


async def _seed(sandbox: Sandbox) -> None:
    seed_demo_customizations(sandbox, DEMO_EXPORT_COUNT)


def export_to(
    path: Path,
    filters: ExportFilters,
    target: TargetOptions,
    verbosity: Verbosity,
    *,
    run: Callable[[Coroutine[Any, Any, tuple[int, float]]], tuple[int, float]],
) -> None:
    """The export command: ``run`` runs the event loop.

    Raises:
        TargetError: the export failed (it only reads: any failure says what is wrong
            with the target, see ``probe``); no output file is left.
    """
    connection = Connection(
        target.resolve(), BatchOptions(concurrency=EXPORT_CONNECTIONS), target.preflight
    )

    async def run_export(out: Output, out_file: IO[str]) -> tuple[int, float]:
        async with session(connection, Signals(), _seed) as client:
            try:
                total = await count(client, filters)
                words = Words("exported", None, sends=False)
                with out.progress("export", total, "items", words) as tracker:
                    return await export(client, filters, out_file, tracker)
            except LuigisBoxError as exc:
                raise failed("export", exc, Where.of(client)) from None

    with output(verbosity) as out:
        with _output_file(path) as out_file:
            written, elapsed = run(run_export(out, out_file))
        where = "stdout" if str(path) == "-" else path
        log.info("exported %d customizations to %s in %.2f s", written, where, elapsed)


@contextlib.contextmanager
def _output_file(path: Path) -> Iterator[IO[str]]:
    """Stdout for ``-``; else a ``.part`` file renamed into place only when complete."""
    if str(path) == "-":
        yield sys.stdout
        return
    part = path.with_name(path.name + ".part")
    try:
        with part.open("w", encoding="utf-8", newline="\n") as file:
            yield file
        part.replace(path)
    finally:
        part.unlink(missing_ok=True)

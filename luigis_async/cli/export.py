"""The export job: page through the customizations, write them as push-ready JSON Lines.

Each line is ``{"customization_id": ..., "customization": <the writable body>}``, exactly
what ``push`` reads, so export -> edit -> push round-trips.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import IO, Any

import attrs

from ..client import LuigisBoxClient
from ..jsonl import dump_update
from .progress import Tracker

__all__ = ["ExportFilters", "count", "export"]


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
        tracker.update(written, exported=written)
    return written, time.monotonic() - started

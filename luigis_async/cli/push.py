"""The push job: updates in JSON Lines, one ``BatchUpdater`` run, each result to its line.

Each line is ``{"customization_id": ..., "customization": {...}}``; the lines are read,
skipped (``--resume``), checked and accounted for as ``lines.py`` says, and each valid
one is PUT by one run of the ``BatchUpdater`` (adaptive pacing, retries, fail fast),
whose ``on_result`` journals each result in the worker, before it takes its next line.
After a stop, lines the updater took but the pacer had not let out are never sent: they
come back not attempted (``pacing.PacerStopped``).
"""

from __future__ import annotations

from collections.abc import Callable

import attrs

from ..batch import BatchRun, BatchUpdater
from ..jsonl import Line
from ..models import CustomizationUpdate
from .lines import LinesJob, Parsed, parsed_update

__all__ = ["PushJob"]


class PushJob(LinesJob[CustomizationUpdate, BatchUpdater]):
    """One push: the valid lines through one run of ``runner``."""

    parse: Callable[[Line], Parsed[CustomizationUpdate]] = staticmethod(parsed_update)
    _run: BatchRun | None = None

    async def drive(self) -> None:
        updater = attrs.evolve(self.runner, on_result=self.finished)
        async with updater.start(self.items()) as run:
            self._run = run
            async for result in run:
                self.record(result)

    def requests_in_flight(self) -> int:
        return self._run.pacer.in_flight if self._run is not None else 0

    def stop_runner(self, reason: str) -> None:
        if self._run is not None:
            self._run.stop(reason)

    def runner_stop_reason(self) -> str | None:
        return self._run.stop_reason if self._run is not None else None

"""The push job: updates in JSON Lines, one ``BatchUpdater`` run, each result to its line.

Each line is ``{"customization_id": ..., "customization": {...}}``; the lines are read,
skipped (``--resume``), checked and accounted for as ``lines.py`` says, and each valid
one is PUT by one run of the ``BatchUpdater`` (adaptive pacing, retries, fail fast),
whose ``on_result`` journals each result in the worker, before it takes its next line.

The updater's workers would each take a line at once and wait for the pacer's window;
a stop would then still send them all. So the job hands out at most ``AHEAD`` times the
window's lines not yet answered: a stop sends little more than what is really in flight,
and the display's "in flight" is the requests the pacer let out.
"""

from __future__ import annotations

import asyncio
from typing import Final

import attrs

from ..batch import BatchRun, BatchUpdater
from ..models import CustomizationUpdate
from .lines import LinesJob, parsed_update

__all__ = ["AHEAD", "PushJob"]

#: Lines handed to the updater and not answered yet, at most, in pacer windows.
AHEAD: Final = 2


class PushJob(LinesJob[CustomizationUpdate, BatchUpdater]):
    """One push: the valid lines through one run of ``runner``."""

    parse = staticmethod(parsed_update)
    _run: BatchRun | None = None
    _answered: asyncio.Event | None = None

    async def drive(self) -> None:
        updater = attrs.evolve(self.runner, on_result=self.finished)
        self._answered = asyncio.Event()
        async with updater.start(self.items()) as run:
            self._run = run
            async for result in run:
                self.record(result)
                self._answered.set()

    async def room(self) -> None:
        run, answered = self._run, self._answered
        assert run is not None and answered is not None
        while len(self.in_flight) >= AHEAD * run.pacer.limit and not self.halted():
            answered.clear()
            await answered.wait()

    def requests_in_flight(self) -> int:
        return self._run.pacer.in_flight if self._run is not None else 0

    def stop_runner(self, reason: str) -> None:
        if self._run is not None:
            self._run.stop(reason)

    def runner_stop_reason(self) -> str | None:
        return self._run.stop_reason if self._run is not None else None

"""The import job: customization bodies in JSON Lines, created through the bulk endpoint.

Each line is one customization body without an ID (the shape ``sync`` reads). The lines
are read, skipped (``--resume``), checked and accounted for as ``lines.py`` says, and the
valid ones are created by a ``BulkCreator``: up to 5,000 per request, one result per line
(a refused request is split until its refused lines stand alone; under ``raise``, a chunk
whose answer was lost is looked up before anything is resent, so nothing is created
twice). A chunk's results are journaled as they come out, so after a kill the chunks in
flight, and those finished but not yet journaled, are sent again by ``--resume``: with
``--conflict raise`` (the default) their lines then fail as conflicts (409) instead of
being created twice; ``ignore`` or ``override`` resend them harmlessly.
"""

from __future__ import annotations

from collections.abc import Callable

from ..bulk import BulkCreator, BulkRun
from ..jsonl import Line
from ..models import Customization
from .lines import LinesJob, Parsed, parsed_body

__all__ = ["ImportJob"]


class ImportJob(LinesJob[Customization, BulkCreator]):
    """One import: the valid lines through one stream of ``runner``."""

    parse: Callable[[Line], Parsed[Customization]] = staticmethod(parsed_body)

    _run: BulkRun | None = None

    async def drive(self) -> None:
        async with self.runner.start(self.items()) as run:
            self._run = run
            async for result in run:
                self.finished(result)
                self.record(result)

    def stop_runner(self, reason: str) -> None:
        if self._run is not None:
            self._run.stop(reason)

    def runner_stop_reason(self) -> str | None:
        return self._run.stop_reason if self._run is not None else None

    def requests_in_flight(self) -> int:
        return self._run.pacer.in_flight if self._run is not None else 0

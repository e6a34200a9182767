"""What a batch run and a bulk run share: their workers start on entering the run (or on
its first result) and are cancelled and awaited on leaving it, so nothing outlives the
``async with`` block."""

from __future__ import annotations

import asyncio
import time
from types import TracebackType
from typing import ClassVar, Self

__all__ = ["WorkerRun"]


class WorkerRun:
    """The lifecycle of a run's worker tasks; ``BatchRun`` and ``BulkRun`` add the rest."""

    #: The workers' task names start with this (so a debugger shows whose they are).
    worker_name: ClassVar[str]
    _workers: list[asyncio.Task[None]]
    #: Workers that have not said they are done.
    _live: int
    #: When the workers started (``time.monotonic``).
    _started: float

    def _no_workers_yet(self) -> None:
        self._workers = []
        self._live = 0
        self._started = 0.0

    def _worker_count(self) -> int:
        raise NotImplementedError

    async def _worker(self) -> None:
        raise NotImplementedError

    def _start(self) -> None:
        if self._workers:
            return
        self._started = time.monotonic()
        self._workers = [
            asyncio.create_task(self._worker(), name=f"{self.worker_name}-{n}")
            for n in range(self._worker_count())
        ]
        self._live = len(self._workers)

    async def __aenter__(self) -> Self:
        self._start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Cancel the workers still running and wait for them."""
        pending = [worker for worker in self._workers if not worker.done()]
        for worker in pending:
            worker.cancel()
        if pending:
            await asyncio.wait(pending)

    def __aiter__(self) -> Self:
        return self

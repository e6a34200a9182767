"""The client's admission gate: the one place a client's concurrency waits.

A count of free places and a queue of waiters, first come first served, like
``asyncio.Semaphore``, but ``async with gate:`` creates no coroutine when a place is free,
the common case on every request's hot path: ``__aenter__`` then takes the place and
returns an awaitable that is already finished (``READY``).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Generator
from types import TracebackType
from typing import Any, Final

__all__ = ["READY", "Gate"]


#: An iterator that is already exhausted: what awaiting a finished awaitable runs.
_DONE: Final = iter(())


class _Ready:
    """An awaitable that is already finished: awaiting it returns None at once."""

    __slots__ = ()

    def __await__(self) -> Generator[Any, None, None]:
        return _DONE  # type: ignore[return-value]  # an iterator is all `await` needs


#: Returned by ``__aenter__``/``__aexit__`` fast paths instead of a fresh coroutine.
READY: Final = _Ready()


class Gate:
    """At most ``size`` holders at once; the others wait in arrival order."""

    __slots__ = ("_free", "_waiters", "size")

    def __init__(self, size: int) -> None:
        self.size: int = size
        self._free = size
        self._waiters: deque[asyncio.Future[None]] = deque()

    def __aenter__(self) -> Awaitable[None]:
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return READY
        return self._wait()

    async def _wait(self) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter  # the releaser hands its place over: _free is not incremented
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self._release()  # handed a place, then cancelled: pass it on
            else:
                self._waiters.remove(waiter)
            raise

    def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Awaitable[None]:
        self._release()
        return READY

    def _release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._free += 1

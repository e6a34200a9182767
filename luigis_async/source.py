"""Pulling input one item at a time, from a plain or an async iterable, numbered.

Batches and bulk create read their input lazily (a generator of millions runs in flat
memory) and number what they pull, so every result names its input item.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from typing import Any

__all__ = ["Source"]


class Source:
    """Pulls input items one at a time, sync or async, numbering them.

    Args:
        items: a plain or an async iterable, read lazily.
    """

    def __init__(self, items: Iterable[Any] | AsyncIterable[Any]) -> None:
        self._sync: Iterable[Any] | None = None
        self._async: AsyncIterator[Any] | None = None
        if isinstance(items, AsyncIterable):
            self._async = aiter(items)
        else:
            self._sync = iter(items)
        self._lock = asyncio.Lock()
        self._next_index = 0
        #: True once the input has no more items.
        self.exhausted: bool = False

    @property
    def is_sync(self) -> bool:
        """True when the input is a plain iterable (use ``next_sync``)."""
        return self._sync is not None

    def next_sync(self) -> tuple[int, Any] | None:
        """The next item of a plain iterable (no coroutine needed).

        Returns:
            ``(index, item)``, the index counting from 0; None once the input is exhausted.
        """
        if self.exhausted:
            return None
        try:
            raw = next(self._sync)  # type: ignore[call-overload]
        except StopIteration:
            self.exhausted = True
            return None
        index = self._next_index
        self._next_index += 1
        return index, raw

    async def next(self) -> tuple[int, Any] | None:
        """The next item of an async iterable, one puller at a time.

        Returns:
            ``(index, item)``, the index counting from 0; None once the input is exhausted.
        """
        if self.exhausted:
            return None
        assert self._async is not None
        try:
            async with self._lock:
                raw = await anext(self._async)
        except StopAsyncIteration:
            self.exhausted = True
            return None
        index = self._next_index
        self._next_index += 1
        return index, raw

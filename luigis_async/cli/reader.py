"""The input of a job, read and parsed in a thread and handed to the loop in chunks.

Reading a file or stdin, and parsing its lines, must never block the event loop: a
producer pausing between lines on stdin would otherwise hold every request in flight
(signed, so soon stale) and every signal until its next line. A daemon thread reads
blocks (one ``read`` of a pipe returns what is there), splits them into lines, skips
the lines a journal says are applied, parses the rest, and puts them on a bounded queue
of chunks: memory stays flat, the thread waits while the loop is behind.

``stop(reason)`` ends the delivery. What was read but not delivered, and the rest of the
input, is then handed to ``account`` / ``account_line`` in the thread (a push writes them
to the failures file as they are, without parsing them again), until the input ends.
A pipe or terminal is read after a stop only as far as it has data at once: a producer
that is not writing is not waited for, and if the thread is blocked waiting for it when
the stop comes, it is abandoned where it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import stat
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Final, Generic, TypeVar

import attrs

from ..jsonl import BLOCK_BYTES, Line, LineSplitter

__all__ = ["CHUNKS_AHEAD", "Chunk", "LineReader", "ReadEnd", "input_size", "open_input"]

T = TypeVar("T")

#: Chunks (of up to one block's lines) parsed ahead of the job at most.
CHUNKS_AHEAD: Final = 4
THREAD_NAME: Final = "luigis_async-reader"


@attrs.frozen
class Chunk(Generic[T]):
    """Lines parsed from one block, and how far into the input (bytes) they reach."""

    items: list[T]
    end: int


@attrs.frozen
class ReadEnd:
    """How reading ended: at the end of the input, on an error, or abandoned after a stop."""

    lines: int  # lines seen (blank ones included), i.e. the number of the last one
    skipped: int  # lines skipped because the journal says they were applied
    error: BaseException | None = None
    abandoned: bool = False


@contextlib.contextmanager
def open_input(file: Path) -> Iterator[IO[bytes]]:
    """The input, unbuffered: the reader's thread reads it in blocks of its own.

    For stdin (``-``), the raw file under ``sys.stdin.buffer``: a thread waiting in a read
    there holds no buffer lock that the interpreter's exit would then wait for.
    """
    if str(file) == "-":
        yield getattr(sys.stdin.buffer, "raw", sys.stdin.buffer)
        return
    with file.open("rb", buffering=0) as stream:
        yield stream


def input_size(stream: IO[bytes]) -> int | None:
    """The bytes left to read when that is cheap to know (a regular file), else None."""
    try:
        info = os.fstat(stream.fileno())
        return info.st_size - stream.tell() if stat.S_ISREG(info.st_mode) else None
    except (OSError, AttributeError, ValueError):
        return None


def _may_block(stream: IO[bytes]) -> int | None:
    """The descriptor of a pipe, terminal or socket (whose reads may wait), else None."""
    try:
        fd = stream.fileno()
        return None if stat.S_ISREG(os.fstat(fd).st_mode) else fd
    except (OSError, AttributeError, ValueError):
        return None  # e.g. BytesIO: never waits


def _has_data(fd: int) -> bool:
    try:
        readable, _, _ = select.select([fd], [], [], 0)
    except (OSError, ValueError):
        return False
    return bool(readable)


class LineReader(Generic[T]):
    """Reads ``stream`` in a thread; ``next_chunk()`` on the loop returns what it parsed.

    Args:
        parse: turns a line into what the job takes; runs in the thread, must not raise.
        skip: line numbers not to parse nor deliver (applied by an earlier run).
        account: after a stop, given each parsed item that was never delivered.
        account_line: after a stop, given each line not parsed (the rest of the input).
    """

    def __init__(
        self,
        stream: IO[bytes],
        parse: Callable[[Line], T],
        *,
        skip: Callable[[int], bool] | None = None,
        account: Callable[[T, str], None] | None = None,
        account_line: Callable[[Line, str], None] | None = None,
        ahead: int = CHUNKS_AHEAD,
    ) -> None:
        self.stream = stream
        self.parse = parse
        self.skip = skip
        self.account = account
        self.account_line = account_line
        self.ahead = ahead
        self.skipped: int = 0
        self._blocking_fd = _may_block(stream)
        read = getattr(stream, "read1", None) or stream.read
        self._read: Callable[[int], bytes] = read
        self._cond = threading.Condition()
        self._chunks: deque[Chunk[T]] = deque()
        self._stop_reason: str | None = None
        self._waiting = False  # the thread is in a read that may wait for a producer
        self._abandoned = False
        self._done = False
        self._splitter = LineSplitter()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wakeup = asyncio.Event()
        self._ended: asyncio.Future[ReadEnd] | None = None

    # -- on the event loop ---------------------------------------------------------------

    def start(self) -> None:
        """Start the thread; call from the event loop that will take the chunks."""
        self._loop = asyncio.get_running_loop()
        self._ended = self._loop.create_future()
        threading.Thread(target=self._run, name=THREAD_NAME, daemon=True).start()

    async def next_chunk(self) -> Chunk[T] | None:
        """The next chunk; None at the end of the input or once stopped."""
        while True:
            with self._cond:
                if self._stop_reason is not None:
                    return None
                if self._chunks:
                    chunk = self._chunks.popleft()
                    self._cond.notify_all()
                    return chunk
                if self._done:
                    return None
                self._wakeup.clear()
            await self._wakeup.wait()

    def stop(self, reason: str) -> None:
        """Deliver nothing more; the thread accounts for the rest with ``reason``."""
        with self._cond:
            if self._stop_reason is None:
                self._stop_reason = reason
            if self._waiting:  # blocked on a producer that may never write again
                self._abandoned = True
            self._cond.notify_all()
        self._wakeup.set()
        if self._abandoned:
            self._end_once(ReadEnd(self._splitter.number, self.skipped, abandoned=True))

    def drain(self) -> list[Chunk[T]]:
        """The chunks delivered to the queue but not taken (after a stop: the caller's)."""
        with self._cond:
            chunks = list(self._chunks)
            self._chunks.clear()
            self._cond.notify_all()
        return chunks

    async def ended(self) -> ReadEnd:
        """Wait until the thread has read (and, after a stop, accounted for) all it will."""
        assert self._ended is not None, "start() first"
        return await asyncio.shield(self._ended)

    def close(self) -> None:
        """Abandon the thread wherever it is: it delivers and accounts for nothing more."""
        with self._cond:
            self._stop_reason = self._stop_reason or "closed"
            self._abandoned = True
            self._cond.notify_all()
        self._wakeup.set()
        self._end_once(ReadEnd(self._splitter.number, self.skipped, abandoned=True))

    def _end_once(self, end: ReadEnd) -> None:
        if self._ended is not None and not self._ended.done():
            self._ended.set_result(end)
        self._wakeup.set()

    # -- in the thread -------------------------------------------------------------------

    def _run(self) -> None:
        """The thread: read, split, parse, deliver; any exception ends it, reported."""
        error: BaseException | None = None
        try:
            while (block := self._next_block()) is not None:
                lines = self._splitter.feed(block) if block else self._splitter.finish()
                self._handle(lines)
                if not block:
                    break
        except BaseException as exc:  # reported to the loop, never lost in the thread
            error = exc
        end = ReadEnd(self._splitter.number, self.skipped, error)
        with self._cond:
            self._done = True
            abandoned = self._abandoned
        if not abandoned:
            self._call_soon(self._end_once, end)

    def _next_block(self) -> bytes | None:
        """The next block (b"" at the end of the input); None once abandoned."""
        with self._cond:
            if self._abandoned:
                return None
            fd = self._blocking_fd
            if fd is not None and self._stop_reason is not None and not _has_data(fd):
                return b""  # stopped: what a producer has not written yet is not waited for
            self._waiting = fd is not None and self._stop_reason is None
        block = self._read(BLOCK_BYTES)
        with self._cond:
            self._waiting = False
            return None if self._abandoned else block

    def _handle(self, lines: list[Line]) -> None:
        """Skip, parse and deliver ``lines``; once stopped, hand them back unparsed."""
        items: list[T] = []
        for line in lines:
            if self.skip is not None and self.skip(line.number):
                self.skipped += 1
            elif (reason := self._stop_reason) is not None:
                if self.account_line is not None:
                    self.account_line(line, reason)
            else:
                items.append(self.parse(line))
        if items:
            self._deliver(Chunk(items, self._splitter.end))

    def _deliver(self, chunk: Chunk[T]) -> None:
        """Queue ``chunk`` when there is room; after a stop, account for it here instead."""
        with self._cond:
            while len(self._chunks) >= self.ahead and self._stop_reason is None:
                self._cond.wait()
            reason = self._stop_reason
            if reason is None:
                self._chunks.append(chunk)
        if reason is None:
            self._call_soon(self._wakeup.set)
        elif self.account is not None:
            for item in chunk.items:
                self.account(item, reason)

    def _call_soon(self, callback: Callable[..., object], *args: object) -> None:
        assert self._loop is not None
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting
            self._loop.call_soon_threadsafe(callback, *args)

"""The journal of a run: which lines (or planned writes) finished, and how; nothing else.

A kill (SIGKILL, the OOM killer, a power cut) loses whatever a run kept in memory, so each
finished line is appended to the journal as it completes: ``a 17`` (applied) or ``f 18``
(failed), numbers not bodies. Entries are written to the file in small groups (every
pass of the event loop), so at most the requests in flight are unknown after a kill, and
fsync'd in a thread at least once a second and at the end.

The first line is a JSON header: what wrote it and a fingerprint of the input, so
``--resume`` refuses a journal that belongs to another file (reading a journal back, and
the fingerprint, are in ``resume.py``). Later JSON lines are markers (``{"resumed": ...}``).

A journal exists only while its run is unfinished: a run that ends with every line
accounted for removes it; one cut short keeps it, to resume.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

__all__ = [
    "APPLIED",
    "ENTRY",
    "FAILED",
    "FSYNC_INTERVAL",
    "MAGIC",
    "Journal",
    "JournalError",
    "now_iso",
]

log: Final[logging.Logger] = logging.getLogger("luigis_async.cli")

#: What the header's ``journal`` field holds, and the format's version.
MAGIC: Final = "luigis-async journal"
VERSION: Final = 1
#: Seconds between two fsyncs of a journal being written, at most.
FSYNC_INTERVAL: Final = 1.0
APPLIED: Final = "a"
FAILED: Final = "f"
#: An entry: the outcome, then the key (a line number, or ``create:12``, ``delete:<id>``).
ENTRY: Final = re.compile(rb"([af]) ([A-Za-z0-9:._-]+)")


class JournalError(Exception):
    """A journal that cannot be used: not a journal, another input, unwritable."""


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _fsync_directory(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class Journal:
    """An open journal, appended to from the event loop.

    ``record`` queues an entry; the queued entries are written with one ``write`` at the
    next pass of the loop. ``start()`` runs the fsync task, ``close()`` flushes, fsyncs
    and closes (and removes the file when the run finished). A write error is kept in
    ``error`` and reported once to ``on_error``; the journal then stays as it was: correct,
    if incomplete (a line missing from it is only pushed again).
    """

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self.fd = fd
        self.error: OSError | None = None
        self.on_error: Callable[[OSError], None] | None = None
        self.written: int = 0  # entries written by this run
        #: Created by this run (not resumed): with nothing written, nothing worth keeping.
        self.fresh = True
        #: How the file is made durable (run in a thread); a test may count the calls.
        self.fsync: Callable[[int], None] = os.fsync
        self._pending: list[str] = []
        self._scheduled = False
        self._dirty = False
        self._syncer: asyncio.Task[None] | None = None
        self._closed = False

    @classmethod
    def create(cls, path: Path, header: dict[str, Any]) -> Journal:
        """A new journal with ``header``, replacing any file at ``path`` only once written.

        Raises:
            OSError: it cannot be created or written.
        """
        record = {"journal": MAGIC, "version": VERSION, "started": now_iso(), **header}
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND | os.O_CLOEXEC, 0o644)
        try:
            _write_all(fd, (json.dumps(record) + "\n").encode())
            os.fsync(fd)
            os.replace(tmp, path)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        _fsync_directory(path)
        return cls(path, fd)

    @classmethod
    def reopen(cls, path: Path, valid_end: int | None, marker: dict[str, Any]) -> Journal:
        """Append to an existing journal, after cutting off a torn last line (the bytes
        from ``valid_end`` on; None when there is none).

        Raises:
            OSError: it cannot be written.
        """
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        try:
            if valid_end is not None:
                os.ftruncate(fd, valid_end)
            _write_all(fd, (json.dumps(marker) + "\n").encode())
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            raise
        journal = cls(path, fd)
        journal.fresh = False
        return journal

    def record(self, outcome: str, key: str) -> None:
        """Queue ``outcome`` (APPLIED or FAILED) for ``key`` (e.g. a line number)."""
        if self.error is not None or self._closed:
            return
        self._pending.append(f"{outcome} {key}\n")
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def mark(self, marker: dict[str, Any]) -> None:
        """Queue a JSON marker line, e.g. the plan of a sync."""
        if self.error is None and not self._closed:
            self._pending.append(json.dumps(marker) + "\n")
            self.flush()

    def flush(self) -> None:
        """Write the queued entries now, in one write."""
        self._scheduled = False
        if not self._pending or self.error is not None or self._closed:
            return
        entries, self._pending = self._pending, []
        try:
            _write_all(self.fd, "".join(entries).encode())
        except OSError as exc:
            self._fail(exc)
            return
        self.written += len(entries)
        self._dirty = True

    def start(self, interval: float = FSYNC_INTERVAL) -> None:
        """fsync at least once every ``interval`` seconds while entries come."""
        self._syncer = asyncio.create_task(self._sync_every(interval))

    async def _sync_every(self, interval: float) -> None:
        """Bound what a power cut can take back to about ``interval`` seconds."""
        while True:
            await asyncio.sleep(interval)
            await self.sync()

    async def sync(self) -> None:
        """fsync what was written, in a thread (it can take long on a busy disk)."""
        if not self._dirty or self.error is not None or self._closed:
            return
        self._dirty = False
        try:
            await asyncio.to_thread(self.fsync, self.fd)
        except OSError as exc:
            self._fail(exc)

    def _fail(self, exc: OSError) -> None:
        """Keep the first error and stop writing: what is written stays true."""
        if self.error is None:
            self.error = exc
            log.error("cannot write the journal %s: %s", self.path, exc.strerror or exc)
            if self.on_error is not None:
                self.on_error(exc)

    async def close(self, *, remove: bool) -> None:
        """Flush, fsync and close; ``remove`` (the run finished): delete the file too."""
        if self._closed:
            return
        if self._syncer is not None:
            self._syncer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._syncer
        self.flush()
        self._dirty = True
        await self.sync()
        self._closed = True
        os.close(self.fd)
        if remove and self.error is None:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


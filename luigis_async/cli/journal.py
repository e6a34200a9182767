"""The journal of a run: which lines (or planned writes) finished, and how; nothing else.

A kill (SIGKILL, the OOM killer, a power cut) loses whatever a run kept in memory, so each
finished line is appended to the journal as it completes: ``a 17`` (applied) or ``f 18``
(failed), numbers not bodies. Entries are written to the file in small groups (every
pass of the event loop), so at most the requests in flight are unknown after a kill, and
fsync'd in a thread at least once a second and at the end.

The first line is a JSON header: what wrote it and a fingerprint of the input (its size
and a hash of its first, last and some middle blocks), so ``push --resume`` refuses a
journal that belongs to another file. Later JSON lines are markers (``{"resumed": ...}``).
Only complete lines count: a torn last line (a kill during a write, zeros after a power
cut) ends the journal there, and is cut off before a resumed run appends to it.

A journal exists only while its run is unfinished: a run that ends with every line
accounted for removes it; one cut short keeps it, to resume.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import re
import stat
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import attrs

__all__ = [
    "FSYNC_INTERVAL",
    "AppliedLines",
    "Fingerprint",
    "Journal",
    "JournalError",
    "JournalState",
    "read_journal",
]

log = logging.getLogger("luigis_async.cli")

#: What the header's ``journal`` field holds, and the format's version.
MAGIC: Final = "luigis-async journal"
VERSION: Final = 1
#: Seconds between two fsyncs of a journal being written, at most.
FSYNC_INTERVAL: Final = 1.0
APPLIED: Final = "a"
FAILED: Final = "f"
#: An entry: the outcome, then the key (a line number, or ``create:12``, ``delete:<id>``).
_ENTRY: Final = re.compile(rb"([af]) ([A-Za-z0-9:._-]+)")
#: The fingerprint hashes the first and last HEAD_BYTES and SAMPLES blocks in between.
HEAD_BYTES: Final = 64 * 1024
SAMPLES: Final = 16
SAMPLE_BYTES: Final = 4 * 1024


class JournalError(Exception):
    """A journal that cannot be used: not a journal, another input, unwritable."""


class AppliedLines:
    """A set of line numbers as a bitmap: a million lines in 125 kB."""

    def __init__(self) -> None:
        self._bits = bytearray()
        self.count = 0

    def add(self, number: int) -> None:
        byte, bit = divmod(number, 8)
        if byte >= len(self._bits):
            self._bits.extend(bytes(byte - len(self._bits) + 1 + len(self._bits) // 2))
        if not self._bits[byte] & (1 << bit):
            self._bits[byte] |= 1 << bit
            self.count += 1

    def __contains__(self, number: object) -> bool:
        if not isinstance(number, int) or number < 0:
            return False
        byte, bit = divmod(number, 8)
        return byte < len(self._bits) and bool(self._bits[byte] & (1 << bit))

    def __len__(self) -> int:
        return self.count


@attrs.frozen
class Fingerprint:
    """Enough of a file to tell it from another: its size and a hash of sampled blocks.

    Reads a fixed amount however large the file (about 200 kB), so it is instant. A change
    that keeps the size and touches none of the sampled blocks goes unnoticed.
    """

    size: int
    sample: str

    @classmethod
    def of(cls, fd: int, start: int = 0) -> Fingerprint | None:
        """The fingerprint of the regular file open on ``fd`` from ``start``; None otherwise."""
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return None
        size = max(0, info.st_size - start)
        digest = hashlib.sha256()
        for offset, length in _sampled(size):
            digest.update(os.pread(fd, length, start + offset))
        return cls(size, digest.hexdigest())

    def to_json(self) -> dict[str, Any]:
        return {"size": self.size, "sample_sha256": self.sample}

    @classmethod
    def from_json(cls, data: Any) -> Fingerprint | None:
        if not isinstance(data, dict):
            return None
        size, sample = data.get("size"), data.get("sample_sha256")
        if not isinstance(size, int) or not isinstance(sample, str):
            return None
        return cls(size, sample)


def _sampled(size: int) -> list[tuple[int, int]]:
    """(offset, length) of the blocks a fingerprint hashes: all of a small file."""
    if size <= 2 * HEAD_BYTES + SAMPLES * SAMPLE_BYTES:
        return [(0, size)]
    middle = size - 2 * HEAD_BYTES
    step = middle // (SAMPLES + 1)
    inner = [(HEAD_BYTES + step * (n + 1), SAMPLE_BYTES) for n in range(SAMPLES)]
    return [(0, HEAD_BYTES), *inner, (size - HEAD_BYTES, HEAD_BYTES)]


@attrs.define
class JournalState:
    """What a journal file says: its header, what was applied, where its last entry ends."""

    header: dict[str, Any]
    #: The line numbers applied (a push's keys).
    applied: AppliedLines = attrs.Factory(AppliedLines)
    #: Other applied keys by kind, e.g. ``{"create": 12}`` (a sync's keys).
    applied_kinds: Counter[str] = attrs.Factory(Counter)
    failed: int = 0
    #: Bytes of the file up to the end of its last complete line: a torn tail starts here.
    valid_end: int = 0
    torn: bool = False

    @property
    def command(self) -> str:
        return str(self.header.get("command", ""))

    @property
    def applied_count(self) -> int:
        return self.applied.count + sum(self.applied_kinds.values())

    def describe(self) -> str:
        """E.g. ``started 2026-01-05T03:00:00Z, 1,200 applied, 3 failed``."""
        started = self.header.get("started", "at an unknown time")
        return f"started {started}, {self.applied_count:,} applied, {self.failed:,} failed"


def read_journal(path: Path) -> JournalState | None:
    """The journal at ``path``; None when there is none (no file, or an empty one).

    Raises:
        JournalError: the file is not a journal (or not a regular file).
        OSError: it cannot be read.
    """
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(info.st_mode):
        raise JournalError(f"{path} is not a regular file")
    data = path.read_bytes()
    if not data.strip():
        return None
    head, newline, _ = data.partition(b"\n")
    header = _header(head) if newline else None
    if header is None:
        raise JournalError(f"{path} exists and is not a luigis-async journal")
    state = JournalState(header, valid_end=len(head) + 1)
    _read_entries(data, state)
    return state


def _header(line: bytes) -> dict[str, Any] | None:
    try:
        header = json.loads(line)
    except ValueError:
        return None
    if not isinstance(header, dict) or header.get("journal") != MAGIC:
        return None
    return header


def _read_entries(data: bytes, state: JournalState) -> None:
    """Fill ``state`` from the entries after the header, stopping at the first torn line."""
    offset = state.valid_end
    *complete, _torn = data[offset:].split(b"\n")
    for line in complete:
        if line.startswith(b"{"):
            try:
                json.loads(line)
            except ValueError:
                break
        elif (entry := _ENTRY.fullmatch(line)) is not None:
            outcome, key = entry[1], entry[2]
            if outcome == b"f":
                state.failed += 1
            elif key.isdigit():
                state.applied.add(int(key))
            else:
                state.applied_kinds[key.partition(b":")[0].decode()] += 1
        else:
            break
        offset += len(line) + 1
    state.valid_end = offset
    state.torn = offset < len(data)


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
        self.written = 0  # entries written by this run
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
    def reopen(cls, path: Path, state: JournalState, marker: dict[str, Any]) -> Journal:
        """Append to an existing journal, after cutting off a torn last line.

        Raises:
            OSError: it cannot be written.
        """
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        try:
            if state.torn:
                os.ftruncate(fd, state.valid_end)
            _write_all(fd, (json.dumps(marker) + "\n").encode())
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            raise
        return cls(path, fd)

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


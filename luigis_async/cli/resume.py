"""Reading the journal an unfinished run left: what it applied, and whether it is ours.

``push --resume`` (and ``import --resume``) skip the lines a journal says were applied,
so a journal must be the one of this very input: its header holds a ``Fingerprint`` of
the input (the size and a hash of sampled blocks), compared before anything is skipped.
Only complete lines count: a torn last line (a kill during a write, zeros after a power
cut) ends the journal there (``valid_end``), and is cut off before a resumed run appends.
The format itself, and the writing, are in ``journal.py``.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections import Counter
from pathlib import Path
from typing import Any, Final

import attrs

from .journal import ENTRY, MAGIC, JournalError

__all__ = [
    "HEAD_BYTES",
    "SAMPLES",
    "AppliedLines",
    "Fingerprint",
    "JournalState",
    "read_journal",
]

#: The fingerprint hashes the first and last HEAD_BYTES and SAMPLES blocks in between.
HEAD_BYTES: Final = 64 * 1024
SAMPLES: Final = 16
SAMPLE_BYTES: Final = 4 * 1024


class AppliedLines:
    """A set of line numbers as a bitmap: a million lines in 125 kB."""

    def __init__(self) -> None:
        self._bits = bytearray()
        self.count: int = 0

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
    def torn_at(self) -> int | None:
        """Where a torn last line starts, to be cut off; None when there is none."""
        return self.valid_end if self.torn else None

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
        elif (entry := ENTRY.fullmatch(line)) is not None:
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

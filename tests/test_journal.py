"""The journal: what a killed run leaves behind, read back exactly, torn tails and all."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from luigis_async.cli.journal import APPLIED, FAILED, Journal, JournalError
from luigis_async.cli.resume import (
    HEAD_BYTES,
    SAMPLES,
    AppliedLines,
    Fingerprint,
    read_journal,
)

HEADER = {"command": "push", "input": {"size": 3, "sample_sha256": "x"}}


async def written(path: Path, entries: list[tuple[str, str]]) -> Journal:
    """A new journal at ``path`` holding ``entries``, written and still open."""
    journal = Journal.create(path, HEADER)
    for outcome, key in entries:
        journal.record(outcome, key)
    await asyncio.sleep(0)  # one pass of the loop: the queued entries are written
    return journal


async def test_entries_read_back(tmp_path: Path) -> None:
    """What a run records is what the next one reads: header, applied lines, failures."""
    path = tmp_path / "j"
    journal = await written(path, [(APPLIED, "1"), (FAILED, "2"), (APPLIED, "7")])
    await journal.close(remove=False)

    state = read_journal(path)

    assert state is not None
    assert ("push", {1, 7}, 1, False) == (
        state.command, {n for n in range(10) if n in state.applied}, state.failed, state.torn
    )
    assert HEADER["input"] == state.header["input"]


async def test_queued_entries_are_written_in_one_write_per_loop_pass(tmp_path: Path) -> None:
    """Entries recorded in one pass of the loop reach the file together, at its end."""
    path = tmp_path / "j"
    journal = Journal.create(path, HEADER)
    size = path.stat().st_size
    for n in range(1, 51):
        journal.record(APPLIED, str(n))
    unwritten = path.stat().st_size

    await asyncio.sleep(0)

    assert (size, 50) == (unwritten, path.read_text().count("\na "))
    await journal.close(remove=False)


@pytest.mark.parametrize(
    ("tail", "torn_applied"),
    [(b"a 12", set()), (b"a 1", set()), (b"\x00" * 4096, set()), (b"a 12\nzz 13\na 14\n", {12})],
    ids=["no newline", "a prefix of a longer number", "zeros after a power cut", "garbage"],
)
async def test_a_torn_tail_is_ignored_and_cut_off_on_resume(
    tmp_path: Path, tail: bytes, torn_applied: set[int]
) -> None:
    """Only complete, well-formed entries count; reopening cuts off the rest before appending."""
    path = tmp_path / "j"
    journal = await written(path, [(APPLIED, "3")])
    await journal.close(remove=False)
    with path.open("ab") as file:
        file.write(tail)

    state = read_journal(path)
    assert state is not None and state.torn
    assert {3} | torn_applied == {n for n in range(20) if n in state.applied}
    reopened = Journal.reopen(path, state.torn_at, {"resumed": "now"})
    reopened.record(APPLIED, "5")
    await reopened.close(remove=False)

    again = read_journal(path)
    assert again is not None and not again.torn
    assert {3, 5} | torn_applied == {n for n in range(20) if n in again.applied}


@pytest.mark.parametrize("content", [b"hello\n", b'{"journal": "other"}\n', b"no newline"])
def test_a_file_that_is_not_a_journal_is_refused(tmp_path: Path, content: bytes) -> None:
    """Another file at the journal's path is never taken for a journal, nor overwritten."""
    path = tmp_path / "j"
    path.write_bytes(content)
    with pytest.raises(JournalError, match="not a luigis-async journal"):
        read_journal(path)


@pytest.mark.parametrize("content", [None, b"", b"  \n"])
def test_no_journal_or_an_empty_file_is_no_journal(tmp_path: Path, content: bytes | None) -> None:
    """A missing or empty file means nothing was recorded."""
    path = tmp_path / "j"
    if content is not None:
        path.write_bytes(content)
    assert read_journal(path) is None


async def test_close_removes_the_journal_of_a_finished_run(tmp_path: Path) -> None:
    """A finished run needs no journal; an unfinished one keeps it."""
    kept, removed = tmp_path / "kept", tmp_path / "removed"
    await (await written(kept, [(APPLIED, "1")])).close(remove=False)
    await (await written(removed, [(APPLIED, "1")])).close(remove=True)
    assert (True, False) == (kept.exists(), removed.exists())


async def test_an_fsync_comes_at_least_every_interval_while_entries_come(tmp_path: Path) -> None:
    """The fsync task makes what was written durable, in a thread, while the run goes on."""
    journal = Journal.create(tmp_path / "j", HEADER)
    synced = asyncio.Event()
    loop = asyncio.get_running_loop()
    journal.fsync = lambda fd: loop.call_soon_threadsafe(synced.set)
    journal.start(interval=0.01)
    journal.record(APPLIED, "1")

    async with asyncio.timeout(5):
        await synced.wait()
    await journal.close(remove=False)


async def test_a_write_error_is_reported_once_and_keeps_the_journal_correct(
    tmp_path: Path,
) -> None:
    """A full disk: on_error is called once, later entries are dropped, nothing raises."""
    errors: list[OSError] = []
    journal = Journal(tmp_path / "j", os.open("/dev/full", os.O_WRONLY))
    journal.on_error = errors.append
    journal.record(APPLIED, "1")
    journal.flush()
    journal.record(APPLIED, "2")
    journal.flush()
    await journal.close(remove=False)
    assert ([28], 0) == ([error.errno for error in errors], journal.written)


def test_the_fingerprint_tells_files_apart(tmp_path: Path) -> None:
    """Same content: same fingerprint; a changed head, middle byte or size: another."""
    data = bytes(range(256)) * 4096  # 1 MiB: sampled, not hashed whole
    path = tmp_path / "in"

    def fingerprint(content: bytes) -> Fingerprint | None:
        path.write_bytes(content)
        with path.open("rb") as file:
            return Fingerprint.of(file.fileno())

    original = fingerprint(data)
    middle = HEAD_BYTES + (len(data) - 2 * HEAD_BYTES) // (SAMPLES + 1)  # the first sample
    changed = [
        fingerprint(b"X" + data[1:]),
        fingerprint(data[:-1] + b"X"),
        fingerprint(data[:middle] + b"X" + data[middle + 1 :]),
        fingerprint(data + b"\n"),
    ]
    assert original == fingerprint(data)
    assert [False] * 4 == [fp == original for fp in changed]


def test_a_pipe_has_no_fingerprint() -> None:
    """A pipe cannot be read twice, so it cannot be recognised again."""
    read, write = os.pipe()
    try:
        assert Fingerprint.of(read) is None
    finally:
        os.close(read)
        os.close(write)


def test_applied_lines_is_a_set_of_numbers() -> None:
    """The bitmap holds exactly the numbers added, counting each once."""
    lines = AppliedLines()
    for n in (5, 1_000_000, 5, 0):
        lines.add(n)
    assert (3, [0, 5, 1_000_000]) == (
        len(lines), [n for n in (0, 1, 4, 5, 6, 999_999, 1_000_000, 2_000_000) if n in lines]
    )

"""The input's thread: lines parsed off the loop, bounded ahead, every line accounted for."""

from __future__ import annotations

import asyncio
import io
import os
from collections.abc import Iterator

import pytest

from luigis_async.cli.reader import LineReader
from luigis_async.jsonl import Line


def data(count: int, width: int = 100) -> bytes:
    """``count`` lines numbered in their text, padded to ``width`` bytes."""
    return b"".join(f"{n:<{width - 1}}\n".encode() for n in range(1, count + 1))


class Accounts:
    """What a reader hands back after a stop, by line number (in its thread)."""

    def __init__(self) -> None:
        self.parsed: list[int] = []
        self.unread: list[int] = []

    def item(self, item: int, reason: str) -> None:
        self.parsed.append(item)

    def line(self, line: Line, reason: str) -> None:
        self.unread.append(line.number)


def reader(
    stream: io.RawIOBase | io.BytesIO, accounts: Accounts, **options: object
) -> LineReader[int]:
    return LineReader(
        stream,  # type: ignore[arg-type]
        lambda line: line.number,
        account=accounts.item,
        account_line=accounts.line,
        **options,  # type: ignore[arg-type]
    )


async def test_every_line_arrives_in_order() -> None:
    """Without a stop, the chunks hold every non-blank line, in order, then None."""
    lines = LineReader(io.BytesIO(data(3000) + b"\n\n"), lambda line: line.number)
    lines.start()
    got: list[int] = []
    while (chunk := await lines.next_chunk()) is not None:
        got += chunk.items
    end = await lines.ended()
    assert (list(range(1, 3001)), 3002, None) == (got, end.lines, end.error)


async def test_skipped_lines_are_neither_parsed_nor_delivered() -> None:
    """Lines the journal says were applied are counted, not parsed."""
    parsed: list[int] = []

    def parse(line: Line) -> int:
        parsed.append(line.number)
        return line.number

    lines = LineReader(io.BytesIO(data(10)), parse, skip=lambda n: n % 2 == 0)
    lines.start()
    got = []
    while (chunk := await lines.next_chunk()) is not None:
        got += chunk.items
    assert ([1, 3, 5, 7, 9], [1, 3, 5, 7, 9], 5) == (got, parsed, (await lines.ended()).skipped)


@pytest.mark.parametrize("take", [0, 1, 5])
async def test_after_a_stop_every_line_is_accounted_for_once(take: int) -> None:
    """Taken, drained, handed back parsed, or handed back unread: each line exactly once."""
    accounts = Accounts()
    lines = reader(io.BytesIO(data(20_000)), accounts, ahead=2)
    lines.start()
    taken: list[int] = []
    for _ in range(take):
        chunk = await lines.next_chunk()
        assert chunk is not None
        taken += chunk.items

    lines.stop("stopped")
    drained = [n for chunk in lines.drain() for n in chunk.items]
    end = await lines.ended()

    everything = sorted(taken + drained + accounts.parsed + accounts.unread)
    assert (list(range(1, 20_001)), None) == (everything, end.error)
    assert accounts.unread  # the rest was copied unparsed
    assert await lines.next_chunk() is None


async def test_a_pipe_with_no_data_is_abandoned_at_a_stop() -> None:
    """A producer that is not writing is not waited for: the stop ends reading at once."""
    read, write = os.pipe()
    os.write(write, data(3))
    with os.fdopen(read, "rb", buffering=0) as stream:
        accounts = Accounts()
        lines = reader(stream, accounts)
        lines.start()
        chunk = await lines.next_chunk()
        assert chunk is not None and [1, 2, 3] == chunk.items

        lines.stop("stopped")
        async with asyncio.timeout(5):
            end = await lines.ended()
        os.close(write)
    # Abandoned in its read, or stopped before it: either way, not waited for.
    assert (3, [], []) == (end.lines, accounts.parsed, accounts.unread)


async def test_a_read_error_ends_reading_with_the_error() -> None:
    """An input that fails mid-way: what was read arrives, then the end carries the error."""

    class Failing(io.RawIOBase):
        def __init__(self) -> None:
            self.blocks: Iterator[bytes] = iter([data(2)])

        def readable(self) -> bool:
            return True

        def read(self, size: int = -1) -> bytes:
            block = next(self.blocks, None)
            if block is None:
                raise OSError(5, "Input/output error")
            return block

    lines = LineReader(Failing(), lambda line: line.number)  # type: ignore[arg-type]
    lines.start()
    chunk = await lines.next_chunk()
    assert chunk is not None and [1, 2] == chunk.items
    assert await lines.next_chunk() is None
    end = await lines.ended()
    assert isinstance(end.error, OSError) and 5 == end.error.errno

"""Hostile lines are that line's failure, never the run's.

Each kind sits at line 100 of a 250-line file: that line must end in the failures file
(valid UTF-8 JSON Lines, whatever the line held), the other 249 applied, exit 1, and no
traceback anywhere.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from luigis_async.sandbox import Faults, Sandbox

from .cli_helpers import (
    applied,
    body,
    credentials,
    failed_lines,
    invoke,
    line,
    records,
    seed,
)

COUNT = 250
AT = 100
HUNDRED_MB = 100 * 1024 * 1024


def _in_target(n: int, insert: bytes) -> bytes:
    """Line ``n`` with ``insert`` (raw bytes) inside its target identity string."""
    text = line(n).encode()
    target = f'"target_identity": "/p/{n}'.encode()
    return text.replace(target, target + insert)


def _criteria(n: int, criteria: str) -> bytes:
    """Line ``n`` with ``criteria`` as the criteria of its second pin."""
    return line(n).replace('{"brand": ["Fender"]}', criteria).encode()


HOSTILE: dict[str, Callable[[int], bytes]] = {
    "lone surrogate": lambda n: _in_target(n, b"\\ud800"),
    "lone low surrogate in a key": lambda n: _criteria(n, '{"\\udc00": 1}'),
    "nesting 1,000 deep": lambda n: _criteria(n, '{"a": ' + "[" * 1000 + "]" * 1000 + "}"),
    "nesting 100 deep": lambda n: _criteria(n, '{"a": ' + "[" * 100 + "]" * 100 + "}"),
    "100 MB line": lambda n: _in_target(n, b"x" * HUNDRED_MB),
    "NUL bytes": lambda n: _in_target(n, b"\x00\x00"),
    "only NUL bytes": lambda n: b"\x00" * 64,
    "invalid UTF-8": lambda n: _in_target(n, b"\xff\xfe\xc3"),
    "integer above 2**63": lambda n: line(n).replace('"position": 1', f'"position": {2**63}')
    .encode(),
    "integer above 2**64 in criteria": lambda n: _criteria(n, '{"n": 18446744073709551616}'),
    "number that overflows": lambda n: _criteria(n, '{"n": 1e400}'),
}


def hostile_file(path: Path, kinds: list[str], at: list[int]) -> Path:
    """COUNT lines, the hostile ``kinds`` at the line numbers ``at``."""
    bad = dict(zip(at, kinds, strict=True))
    with path.open("wb") as file:
        for n in range(1, COUNT + 1):
            file.write((HOSTILE[bad[n]](n) if n in bad else line(n).encode()) + b"\n")
    return path


def assert_valid_jsonl(path: Path) -> None:
    """Strict UTF-8, and each line strict JSON (no NaN or Infinity)."""
    for text in path.read_bytes().decode("utf-8").splitlines():
        json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in {path}"))


@pytest.mark.parametrize("kind", list(HOSTILE))
async def test_a_hostile_line_fails_alone(sandbox: Sandbox, tmp_path: Path, kind: str) -> None:
    """That line is in the failures file; the other 249 are applied; exit 1, no traceback."""
    seed(sandbox, range(1, COUNT + 1))
    path = hostile_file(tmp_path / "pins.jsonl", [kind], [AT])

    result = await invoke(["push", str(path), "--base-url", sandbox.url], credentials(sandbox))

    assert 1 == result.exit_code, result.output
    failures = tmp_path / "pins.jsonl.failed.jsonl"
    assert [AT] == failed_lines(failures)
    assert set(range(1, COUNT + 1)) - {AT} == applied(sandbox, range(1, COUNT + 1))
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
    assert_valid_jsonl(failures)


async def test_every_hostile_line_at_once_under_load(sandbox: Sandbox, tmp_path: Path) -> None:
    """All of them in one file, at concurrency 48 with a slow server: each fails alone."""
    sandbox.faults = Faults(latency=1.0, latency_seconds=0.01)
    seed(sandbox, range(1, COUNT + 1))
    at = list(range(10, 10 + 20 * len(HOSTILE), 20))
    path = hostile_file(tmp_path / "pins.jsonl", list(HOSTILE), at)

    result = await invoke(
        ["push", str(path), "--base-url", sandbox.url, "--concurrency", "48"],
        credentials(sandbox),
    )

    assert 1 == result.exit_code, result.output
    failures = tmp_path / "pins.jsonl.failed.jsonl"
    assert at == sorted(failed_lines(failures))
    assert set(range(1, COUNT + 1)) - set(at) == applied(sandbox, range(1, COUNT + 1))
    assert "Traceback" not in result.output
    assert_valid_jsonl(failures)


@pytest.mark.parametrize("kind", ["lone surrogate", "nesting 1,000 deep", "invalid UTF-8"])
async def test_a_hostile_line_fails_alone_in_a_dry_run(
    sandbox: Sandbox, tmp_path: Path, kind: str
) -> None:
    """--dry-run reports the line invalid and goes on: exit 1, nothing sent."""
    path = hostile_file(tmp_path / "pins.jsonl", [kind], [AT])

    result = await invoke(["push", str(path), "--dry-run"], {})

    assert 1 == result.exit_code, result.output
    assert [AT] == failed_lines(tmp_path / "pins.jsonl.failed.jsonl")
    assert "Traceback" not in result.output and [] == sandbox.requests
    assert "valid:" in result.stdout and "249" in result.stdout


@pytest.mark.parametrize("kind", ["lone surrogate", "nesting 1,000 deep", "integer above 2**63"])
async def test_a_hostile_line_refuses_a_sync_cleanly(
    sandbox: Sandbox, tmp_path: Path, kind: str
) -> None:
    """sync refuses a desired set holding one: exit 1, that line on record, nothing sent."""
    lines = [json.dumps(body(n)).encode() for n in range(1, 11)]
    lines[4] = HOSTILE[kind](5).split(b'"customization": ', 1)[1][:-1]  # the bare body
    path = tmp_path / "desired.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")

    result = await invoke(
        ["sync", str(path), "--managed-tag", "t", "--yes", "--base-url", sandbox.url],
        credentials(sandbox),
    )

    assert 1 == result.exit_code, result.output
    assert [5] == [r["error"]["line"] for r in records(tmp_path / "desired.jsonl.failed.jsonl")]
    assert "Traceback" not in result.output and [] == sandbox.requests

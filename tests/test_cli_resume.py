"""The journal and ``--resume``: after a kill at any moment, nothing lost and little resent.

A push appends each finished line to FILE.journal; ``push FILE --resume`` skips the lines
it says were applied. An unfinished run's journal without ``--resume`` is an error that
says how to resume or start afresh (``--restart``); a journal of another input is never
resumed. sync journals its writes too, and resumes by planning again.
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
from collections import Counter
from pathlib import Path

import pytest

from luigis_async.cli.journal import MAGIC
from luigis_async.cli.resume import Fingerprint
from luigis_async.sandbox import Faults, Sandbox

from .cli_helpers import (
    applied,
    body,
    cid,
    credentials,
    invoke,
    line,
    puts,
    seed,
    start,
    stored,
    wait_for_stderr,
    write,
)


def pins(sandbox: Sandbox, tmp_path: Path, count: int) -> Path:
    seed(sandbox, range(1, count + 1))
    return write(tmp_path / "pins.jsonl", [line(n) for n in range(1, count + 1)])


def journal_of(path: Path, entries: str, *, journal: Path | None = None) -> Path:
    """The journal an unfinished push of ``path`` would leave, holding ``entries``."""
    with path.open("rb") as file:
        fingerprint = Fingerprint.of(file.fileno())
    assert fingerprint is not None
    header = {"journal": MAGIC, "version": 1, "command": "push", "started": "earlier",
              "input": fingerprint.to_json()}
    target = journal or path.with_name(path.name + ".journal")
    target.write_text(json.dumps(header) + "\n" + entries)
    return target


async def push(sandbox: Sandbox, path: Path | str, *args: str) -> tuple[int, str, str]:
    result = await invoke(
        ["push", str(path), "--base-url", sandbox.url, *args], credentials(sandbox)
    )
    return result.exit_code, result.stdout, result.output


def sent(sandbox: Sandbox) -> list[int]:
    """The line numbers whose update was PUT, in order (the IDs are cid(line number))."""
    by_id = {cid(n): n for n in range(1, 100_001)}
    return [by_id[path.rsplit("/", 1)[1]] for path in puts(sandbox)]


# -- the journal's rules ---------------------------------------------------------------


async def test_an_unfinished_journal_without_resume_is_exit_2(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """It says how to resume or restart, and sends nothing."""
    path = pins(sandbox, tmp_path, 10)
    journal_of(path, "a 1\na 2\nf 3\n")

    code, _, output = await push(sandbox, path)

    assert 2 == code, output
    assert "found the journal of an unfinished push" in output
    assert f"luigis-async push {path} --resume" in output and "--restart" in output
    assert [] == sandbox.requests


async def test_resume_skips_the_lines_applied_and_pushes_the_rest(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """Only the lines not applied are sent; the summary counts the skipped; journal removed."""
    path = pins(sandbox, tmp_path, 30)
    journal = journal_of(path, "".join(f"a {n}\n" for n in range(1, 31, 3)) + "f 2\n")

    code, stdout, output = await push(sandbox, path, "--resume")

    assert 0 == code, output
    assert [n for n in range(1, 31) if n % 3 != 1] == sorted(sent(sandbox))
    assert "skipped:" in stdout and "10" in stdout.split("skipped:")[1].split("\n")[0]
    assert not journal.exists()


async def test_a_torn_last_entry_is_pushed_again(sandbox: Sandbox, tmp_path: Path) -> None:
    """An entry cut short by the kill (no newline) does not count: that line is sent."""
    path = pins(sandbox, tmp_path, 20)
    journal_of(path, "a 2\na 3\na 1")  # "a 1" torn: maybe "a 12", or "a 1" unfinished

    code, _, output = await push(sandbox, path, "--resume")

    assert 0 == code, output
    assert [1, *range(4, 21)] == sorted(sent(sandbox))


async def test_resume_refuses_the_journal_of_another_input(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """The input changed since (size or content): exit 2, nothing sent, --restart named."""
    path = pins(sandbox, tmp_path, 10)
    journal_of(path, "a 1\n")
    path.write_text(path.read_text().replace("summer-sale", "winter-sale"))  # same size

    code, _, output = await push(sandbox, path, "--resume")

    assert 2 == code, output
    assert "another input" in output and "--restart" in output
    assert [] == sandbox.requests


async def test_restart_discards_the_journal_and_pushes_every_line(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """--restart: every line sent again, and the old journal gone at the end."""
    path = pins(sandbox, tmp_path, 10)
    journal = journal_of(path, "a 1\na 2\n")

    code, _, output = await push(sandbox, path, "--restart")

    assert 0 == code, output
    assert list(range(1, 11)) == sorted(sent(sandbox))
    assert not journal.exists()


async def test_resume_without_a_journal_pushes_every_line(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """Nothing to resume is not an error (a service may always pass --resume)."""
    path = pins(sandbox, tmp_path, 10)

    code, _, output = await push(sandbox, path, "--resume")

    assert 0 == code, output
    assert list(range(1, 11)) == sorted(sent(sandbox))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--resume", "--restart"], "exclude each other"),
        (["--dry-run", "--resume"], "--dry-run sends nothing"),
    ],
)
async def test_contradictory_options_are_usage_errors(
    sandbox: Sandbox, tmp_path: Path, args: list[str], message: str
) -> None:
    """Exit 2, nothing sent."""
    path = pins(sandbox, tmp_path, 3)

    code, _, output = await push(sandbox, path, *args)

    assert (2, True, []) == (code, message in output, sandbox.requests)


async def test_a_file_that_is_not_a_journal_is_never_overwritten(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """--journal naming some other file: exit 2, the file intact, even with --restart."""
    path = pins(sandbox, tmp_path, 3)
    other = write(tmp_path / "notes.txt", ["my notes"])

    code, _, output = await push(sandbox, path, "--journal", str(other), "--restart")

    assert 2 == code, output
    assert "not a luigis-async journal" in output
    assert ("my notes\n", []) == (other.read_text(), sandbox.requests)


async def test_resume_needs_a_file_not_a_pipe(sandbox: Sandbox, tmp_path: Path) -> None:
    """A pipe cannot be checked to be the same input: --resume from one is exit 2."""
    proc = await start(
        sandbox, "push", "-", "--resume", "--journal", str(tmp_path / "j"),
        stdin=asyncio.subprocess.PIPE,
    )
    _, stderr = await proc.communicate(line(1).encode())

    assert 2 == proc.returncode, stderr.decode()
    assert b"needs the input as a regular file" in stderr and [] == sandbox.requests


async def test_stdin_from_a_file_resumes_like_the_file(sandbox: Sandbox, tmp_path: Path) -> None:
    """push - < FILE keeps ./push.journal, recognises FILE, and resumes it."""
    path = pins(sandbox, tmp_path, 10)
    journal_of(path, "a 1\na 2\n", journal=tmp_path / "push.journal")

    with path.open("rb") as stdin:
        proc = await start(sandbox, "push", "-", "--resume", stdin=stdin, cwd=tmp_path)
        _, stderr = await proc.communicate()

    assert 0 == proc.returncode, stderr.decode()
    assert list(range(3, 11)) == sorted(sent(sandbox))


# -- after a stop or a kill ------------------------------------------------------------


@pytest.mark.parametrize(
    ("concurrency", "latency"), [pytest.param(8, 0.02, marks=pytest.mark.slow), (48, 0.02)]
)
async def test_sigterm_then_resume_sends_each_line_once(
    sandbox: Sandbox, tmp_path: Path, concurrency: int, latency: float
) -> None:
    """A graceful stop loses nothing in flight, so resuming it resends no line at all."""
    sandbox.faults = Faults(latency=1.0, latency_seconds=latency)
    count = 20 * concurrency
    path = pins(sandbox, tmp_path, count)
    proc = await start(sandbox, "push", str(path), "--concurrency", str(concurrency), "-vv")
    await wait_for_stderr(proc, b": applied", times=concurrency)
    proc.send_signal(signal.SIGTERM)
    _, stderr = await proc.communicate()
    assert 143 == proc.returncode, stderr.decode()

    again = await start(sandbox, "push", str(path), "--resume", "--concurrency", str(concurrency))
    _, stderr = await again.communicate()

    assert 0 == again.returncode, stderr.decode()
    assert set(range(1, count + 1)) == applied(sandbox, range(1, count + 1))
    assert list(range(1, count + 1)) == sorted(sent(sandbox))


async def _applied_lines(proc: asyncio.subprocess.Process, times: int) -> bool:
    """Read the child's stderr until ``times`` lines were applied; False if it ended first."""
    assert proc.stderr is not None
    seen = 0
    async with asyncio.timeout(120):
        while seen < times:
            output = await proc.stderr.readline()
            if not output:
                return False
            seen += b": applied" in output
    return True


@pytest.mark.slow
@pytest.mark.parametrize(
    ("concurrency", "latency", "count"), [(8, 0.0, 20_000), (32, 0.005, 5_000)]
)
async def test_sigkill_at_twenty_random_moments_then_resume_gives_exactly_the_input(
    sandbox: Sandbox, tmp_path: Path, concurrency: int, latency: float, count: int
) -> None:
    """SIGKILL at 20 random moments of the run (startup and the last line included),
    push --resume each time: the store ends equal to the input, and across all resumes at
    most 20 x concurrency lines were sent twice."""
    sandbox.faults = Faults(latency=1.0, latency_seconds=latency)
    numbers = range(1, count + 1)
    path = pins(sandbox, tmp_path, count)
    rng = random.Random(f"sigkill-{concurrency}")
    args = ["push", str(path), "--resume", "--concurrency", str(concurrency), "-vv"]
    for _ in range(20):
        remaining = count - len(applied(sandbox, numbers))
        proc = await start(sandbox, *args)
        if not await _applied_lines(proc, rng.randint(0, remaining)):
            break  # it finished first: nothing is left to kill
        proc.kill()
        await proc.wait()

    last = await start(sandbox, *args)
    _, stderr = await last.communicate()

    assert 0 == last.returncode, stderr.decode()[-2000:]
    assert count == len(sandbox.store)
    assert [body(n) for n in numbers] == [stored(sandbox, n) for n in numbers]
    twice = sum(times - 1 for times in Counter(puts(sandbox)).values())
    print(f"\nconcurrency {concurrency}: {twice} lines sent twice over 20 kills")
    assert twice <= 20 * concurrency
    assert not (tmp_path / "pins.jsonl.journal").exists()


# -- sync ------------------------------------------------------------------------------


def desired_file(tmp_path: Path, count: int) -> Path:
    return write(tmp_path / "desired.jsonl", [json.dumps(body(n)) for n in range(1, count + 1)])


async def test_a_sync_journal_records_its_writes_and_goes_when_done(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """While a sync applies, its journal holds each write; a finished sync removes it."""
    sandbox.faults = Faults(latency=1.0, latency_seconds=0.05)
    path = desired_file(tmp_path, 40)
    proc = await start(sandbox, "sync", str(path), "--managed-tag", "t", "--yes", "-vv")
    await wait_for_stderr(proc, b": applied", times=10)
    journal = (tmp_path / "desired.jsonl.journal").read_text().splitlines()
    _, stderr = await proc.communicate()

    assert 0 == proc.returncode, stderr.decode()
    assert {"command": "sync", "managed_tag": "t"}.items() <= json.loads(journal[0]).items()
    assert any(row.startswith("a create:") for row in journal)
    assert not (tmp_path / "desired.jsonl.journal").exists()


async def test_a_killed_sync_resumes_by_syncing_again(sandbox: Sandbox, tmp_path: Path) -> None:
    """SIGKILL mid-apply, then the same sync: it says so, plans afresh, and converges with
    each desired customization exactly once (no create is duplicated)."""
    sandbox.faults = Faults(latency=1.0, latency_seconds=0.05)
    count = 60
    path = desired_file(tmp_path, count)
    args = ["sync", str(path), "--managed-tag", "t", "--yes", "--concurrency", "4", "-vv"]
    proc = await start(sandbox, *args)
    await wait_for_stderr(proc, b": applied", times=10)
    proc.kill()
    await proc.wait()
    assert (tmp_path / "desired.jsonl.journal").exists()

    again = await start(sandbox, *args)
    _, stderr = await again.communicate()

    assert 0 == again.returncode, stderr.decode()
    assert b"an earlier sync was cut short" in stderr
    targets = Counter(c["target_identity"] for c in sandbox.store.values())
    assert {f"/p/{n}": 1 for n in range(1, count + 1)} == dict(targets)
    assert not (tmp_path / "desired.jsonl.journal").exists()

"""Before the first request: the failures file and journal can be written, and neither is
the input. Otherwise exit 2 with the reason, and nothing sent. A write error later (a full
disk) stops the run like a Ctrl-C, with the journal still correct.
"""

from __future__ import annotations

import os
import resource
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from luigis_async.sandbox import Faults, Sandbox

from .cli_helpers import (
    applied,
    credentials,
    failed_lines,
    invoke,
    line,
    seed,
    start,
    write,
)

INVALID = '{"customization_id": "not-a-uuid", "customization": {}}'


def pins(tmp_path: Path, count: int = 20) -> Path:
    return write(tmp_path / "pins.jsonl", [line(n) for n in range(1, count + 1)])


@pytest.fixture
def unwritable_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory no file can be created in: read-only for a user, /sys for root."""
    directory = tmp_path / "read-only"
    directory.mkdir()
    directory.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        (directory / "probe").touch()
    except PermissionError:
        yield directory
    else:  # root ignores permissions
        if os.access("/sys", os.W_OK) and _creatable(Path("/sys/probe")):
            pytest.skip("no unwritable directory here")
        yield Path("/sys")
    finally:
        directory.chmod(stat.S_IRWXU)


def _creatable(path: Path) -> bool:
    try:
        path.touch()
    except OSError:
        return False
    path.unlink()
    return True


async def push(sandbox: Sandbox, path: Path, *args: str) -> tuple[int, str]:
    result = await invoke(
        ["push", str(path), "--base-url", sandbox.url, *args], credentials(sandbox)
    )
    return result.exit_code, result.output


@pytest.mark.parametrize("option", ["--failures-out", "--journal"])
async def test_an_unwritable_directory_is_exit_2_before_any_request(
    sandbox: Sandbox, tmp_path: Path, unwritable_dir: Path, option: str
) -> None:
    """A failures file or journal that cannot be created: exit 2, the reason, nothing sent."""
    path = pins(tmp_path)

    code, output = await push(sandbox, path, option, str(unwritable_dir / "out.jsonl"))

    assert 2 == code, output
    which = "failures file" if option == "--failures-out" else "journal"
    assert f"cannot write the {which}" in output and "nothing was sent" in output
    assert [] == sandbox.requests


@pytest.mark.parametrize("command", ["push", "sync"])
async def test_a_full_disk_is_exit_2_before_any_request(
    sandbox: Sandbox, tmp_path: Path, command: str
) -> None:
    """/dev/full as the failures file: exit 2 with the reason; no request, not even a plan."""
    path = pins(tmp_path)
    args = ["--failures-out", "/dev/full"]
    if command == "sync":
        path = write(tmp_path / "desired.jsonl", ['{"model": "m", "target_type": "all"}'])
        args += ["--managed-tag", "t", "--yes"]

    result = await invoke(
        [command, str(path), "--base-url", sandbox.url, *args], credentials(sandbox)
    )

    assert 2 == result.exit_code, result.output
    assert "No space left on device" in result.output
    assert [] == sandbox.requests


@pytest.mark.parametrize("option", ["--failures-out", "--journal"])
async def test_the_input_under_another_name_is_exit_2(
    sandbox: Sandbox, tmp_path: Path, option: str
) -> None:
    """A hard link to the input as the failures file or journal: exit 2, the input intact."""
    path = pins(tmp_path)
    before = path.read_bytes()
    link = tmp_path / "link.jsonl"
    os.link(path, link)

    code, output = await push(sandbox, path, option, str(link))

    assert 2 == code, output
    assert "is the input" in output
    assert (before, []) == (path.read_bytes(), sandbox.requests)


async def test_stdin_redirected_from_the_failures_file_is_exit_2(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """push - < FILE --failures-out FILE: exit 2 before FILE is emptied, nothing sent."""
    path = pins(tmp_path)
    before = path.read_bytes()

    with path.open("rb") as stdin:
        proc = await start(sandbox, "push", "-", "--failures-out", str(path), stdin=stdin)
        _, stderr = await proc.communicate()

    assert 2 == proc.returncode, stderr.decode()
    assert b"is the input stdin" in stderr
    assert (before, []) == (path.read_bytes(), sandbox.requests)


async def test_the_journal_as_the_failures_file_is_exit_2(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """One file for both: exit 2, nothing sent."""
    path = pins(tmp_path)
    out = str(tmp_path / "out.jsonl")

    code, output = await push(sandbox, path, "--failures-out", out, "--journal", out)

    assert 2 == code, output
    assert "is the failures file" in output and [] == sandbox.requests


def _file_size_limit(limit: int) -> None:
    """In the child: files may not grow past ``limit`` bytes (EFBIG, like a full disk)."""
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


@pytest.mark.parametrize(
    ("concurrency", "latency"), [pytest.param(8, 0.0, marks=pytest.mark.slow), (32, 0.002)]
)
async def test_a_disk_full_later_stops_like_ctrl_c_and_resume_finishes(
    sandbox: Sandbox, tmp_path: Path, concurrency: int, latency: float
) -> None:
    """The failures file stops growing mid-run: the run stops, in-flight lines finish, the
    journal holds exactly the lines applied, and --resume (with room) finishes the job."""
    sandbox.faults = Faults(latency=1.0, latency_seconds=latency)
    count = 2000
    numbers = range(1, count + 1)
    seed(sandbox, numbers)
    lines = [INVALID if n % 2 == 0 else line(n) for n in numbers]  # a failure every other line
    path = write(tmp_path / "pins.jsonl", lines)
    journal = tmp_path / "pins.jsonl.journal"

    proc = await start(
        sandbox, "push", str(path), "--concurrency", str(concurrency),
        preexec_fn=lambda: _file_size_limit(20_000),
    )
    _, stderr = await proc.communicate()

    assert 1 == proc.returncode, stderr.decode()
    assert b"could not write the failures file" in stderr and b"Traceback" not in stderr
    done = applied(sandbox, numbers)
    assert 0 < len(done) < count // 2
    recorded = [int(row[2:]) for row in journal.read_text().splitlines()[1:] if row[:2] == "a "]
    assert done == set(recorded)

    again = await start(sandbox, "push", str(path), "--resume")
    _, stderr = await again.communicate()

    assert 1 == again.returncode, stderr.decode()
    assert set(range(1, count + 1, 2)) == applied(sandbox, numbers)
    failures = tmp_path / "pins.jsonl.failed.jsonl"
    assert list(range(2, count + 1, 2)) == sorted(failed_lines(failures))
    assert not journal.exists()

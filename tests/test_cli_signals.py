"""SIGTERM and SIGHUP stop a job like the first Ctrl-C; later signals cannot cut the writes.

Each test runs ``python -m luigis_async`` as a subprocess against the sandbox and
synchronises on the child's stderr, never on a sleep.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from luigis_async.sandbox import Faults, Sandbox

from .cli_helpers import (
    applied,
    body,
    cid,
    failed_lines,
    line,
    records,
    seed,
    start,
    wait_for_stderr,
    write,
)

STALE = '{"raw": "from an earlier run", "error": {"line": 1, "reason": "stale"}}\n'


def pins(sandbox: Sandbox, tmp_path: Path, count: int) -> Path:
    seed(sandbox, range(1, count + 1))
    path = write(tmp_path / "pins.jsonl", [line(n) for n in range(1, count + 1)])
    (tmp_path / "pins.jsonl.failed.jsonl").write_text(STALE)
    return path


def assert_accounted(sandbox: Sandbox, tmp_path: Path, count: int) -> set[int]:
    """Applied lines plus failures-file lines are the whole input, with no overlap."""
    done = applied(sandbox, range(1, count + 1))
    failed = failed_lines(tmp_path / "pins.jsonl.failed.jsonl")
    assert set() == done & set(failed)
    assert list(range(1, count + 1)) == sorted([*done, *failed])
    return done


@pytest.mark.parametrize(
    ("signum", "status"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)], ids=["TERM", "HUP"]
)
@pytest.mark.parametrize(("concurrency", "count"), [(8, 200), (32, 600)])
async def test_a_stop_signal_finishes_in_flight_and_writes_everything(
    sandbox: Sandbox, tmp_path: Path, signum: int, status: int, concurrency: int, count: int
) -> None:
    """Exit 128 + the signal; applied + failures == input; the stale failures file is gone."""
    sandbox.faults = Faults(latency=1.0, latency_seconds=0.05)
    path = pins(sandbox, tmp_path, count)
    proc = await start(sandbox, "push", str(path), "--concurrency", str(concurrency), "-vv")
    await wait_for_stderr(proc, b": applied", times=concurrency)

    proc.send_signal(signum)
    stdout, stderr = await proc.communicate()

    assert status == proc.returncode, stderr.decode()
    done = assert_accounted(sandbox, tmp_path, count)
    assert len(done) >= concurrency
    assert STALE not in (tmp_path / "pins.jsonl.failed.jsonl").read_text()
    assert b"Traceback" not in stderr
    assert "not attempted" in stdout.decode()
    assert (tmp_path / "pins.jsonl.journal").exists()  # unfinished: kept for --resume


async def test_a_kill_leaves_no_stale_failures_file(sandbox: Sandbox, tmp_path: Path) -> None:
    """Even a SIGKILL mid-run leaves no failures file from an earlier run behind."""
    sandbox.faults = Faults(latency=1.0, latency_seconds=0.05)
    path = pins(sandbox, tmp_path, 100)
    proc = await start(sandbox, "push", str(path), "-vv")
    await wait_for_stderr(proc, b": applied")

    proc.kill()
    await proc.wait()

    assert STALE not in (tmp_path / "pins.jsonl.failed.jsonl").read_text()


@pytest.mark.slow
async def test_later_signals_cannot_cut_the_failures_file_short(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """SIGTERM near the start of 300,000 lines, then a storm of signals while the rest is
    written: exit 143, and every line applied or in the failures file, copied as it was."""
    count = 300_000
    sandbox.faults = Faults(latency=1.0, latency_seconds=0.2)
    seed(sandbox, range(1, 9))
    short = {"model": "basket", "target_type": "all", "pin_definitions": []}
    path = tmp_path / "pins.jsonl"
    with path.open("w") as file:
        for n in range(1, count + 1):
            file.write(json.dumps({"customization_id": cid(n), "customization": short}) + "\n")
    proc = await start(sandbox, "push", str(path), "-vv")
    await wait_for_stderr(proc, b"PUT")  # the first requests are in flight

    proc.send_signal(signal.SIGTERM)
    stopped = time.monotonic()
    await wait_for_stderr(proc, b"interrupted: finishing")
    for signum in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
        proc.send_signal(signum)
    _, stderr = await proc.communicate()
    took = time.monotonic() - stopped

    assert 143 == proc.returncode, stderr.decode()[-2000:]
    failures = records(tmp_path / "pins.jsonl.failed.jsonl")
    done = {n for n in range(1, 9) if sandbox.store[cid(n)]["model"] == short["model"]}
    lines = [record["error"]["line"] for record in failures]
    # Each line once in the file, and every line there or applied (a request cancelled in
    # flight by the second signal may be both: it is written as "may have been applied").
    assert (len(lines), set(range(1, count + 1))) == (len(set(lines)), set(lines) | done)
    assert {"customization_id", "customization", "error"} == set(failures[-1])
    print(f"\n300,000 lines accounted for {took:.1f} s after SIGTERM")
    assert took < 60


async def test_sigterm_stops_a_sync_apply(sandbox: Sandbox, tmp_path: Path) -> None:
    """sync's apply stops the same way: exit 143, every planned create applied or written."""
    sandbox.faults = Faults(latency=1.0, latency_seconds=0.05)
    count = 100
    path = write(tmp_path / "desired.jsonl", [json.dumps(body(n)) for n in range(1, count + 1)])
    proc = await start(
        sandbox, "sync", str(path), "--managed-tag", "t", "--yes", "--concurrency", "4", "-vv"
    )
    await wait_for_stderr(proc, b": applied", times=4)

    proc.send_signal(signal.SIGTERM)
    _, stderr = await proc.communicate()

    assert 143 == proc.returncode, stderr.decode()
    created = {int(c["target_identity"][3:]) for c in sandbox.store.values()}
    failed = failed_lines(tmp_path / "desired.jsonl.failed.jsonl")
    assert list(range(1, count + 1)) == sorted([*created, *failed])
    assert (tmp_path / "desired.jsonl.journal").exists()

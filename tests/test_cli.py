"""The ``luigis-async`` command, run for real against a sandbox on 127.0.0.1.

In-process runs use click's CliRunner in a worker thread (the command runs its own event
loop there, the sandbox keeps serving on the test's loop); signal tests run
``python -m luigis_async`` as a subprocess.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import shutil
import signal
import sys
from collections import Counter
from pathlib import Path

import pytest
from click.testing import Result

from luigis_async import BatchUpdater, LuigisBoxClient
from luigis_async.cli.lines import LinesSummary
from luigis_async.cli.progress import LogProgress, Snapshot, Unit, Words
from luigis_async.cli.push import PushJob
from luigis_async.jsonl import FailuresFile
from luigis_async.sandbox import Faults, Sandbox
from luigis_async.sandbox.demo import PLACEHOLDER, demo_customizations

from .cli_helpers import (
    MODELS,
    ROOT,
    body,
    cid,
    credentials,
    invoke,
    line,
    records,
    seed,
    stored,
    subprocess_env,
    wait_for_stderr,
    write,
)

#: Invalid lines, each with the start of the reason the failures file must give.
INVALID = {
    "bad JSON": ('{"customization_id": "' + cid(900) + '", "customization": {', "invalid JSON"),
    "missing target_identity": (
        json.dumps(
            {
                "customization_id": cid(901),
                "customization": {"model": "basket", "target_type": "item", "pin_definitions": []},
            }
        ),
        "invalid update: customization: target_identity",
    ),
    "bool position": (
        line(902).replace('"position": 1', '"position": true'),
        "invalid update: customization: pin_definitions[0]",
    ),
    "bad UUID": (line(903).replace(cid(903), "not-a-uuid"), "invalid update: customization_id"),
}


async def push(sandbox: Sandbox, path: Path | str, *args: str, **env: str | None) -> Result:
    return await invoke(
        ["push", str(path), "--base-url", sandbox.url, *args], credentials(sandbox, **env)
    )


# -- push ------------------------------------------------------------------------------


async def test_push_applies_every_line(sandbox: Sandbox, tmp_path: Path) -> None:
    """Every line is applied: the store holds each line's body, field by field; exit 0."""
    numbers = range(1, 21)
    seed(sandbox, numbers)
    path = write(tmp_path / "pins.jsonl", [line(n) for n in numbers])

    result = await push(sandbox, path)

    assert 0 == result.exit_code, result.output
    assert [body(n) for n in numbers] == [stored(sandbox, n) for n in numbers]
    assert not (tmp_path / "pins.jsonl.failed.jsonl").exists()
    assert "applied:" in result.stdout and "20" in result.stdout


async def test_invalid_lines_go_to_the_failures_file(sandbox: Sandbox, tmp_path: Path) -> None:
    """Exit 1; the failures file holds exactly the invalid lines, with line number and reason."""
    seed(sandbox, [1, 2, 3])
    lines = [line(1), INVALID["bad JSON"][0], line(2), "", INVALID["missing target_identity"][0],
             INVALID["bool position"][0], line(3), INVALID["bad UUID"][0]]
    path = write(tmp_path / "pins.jsonl", lines)

    result = await push(sandbox, path)

    assert 1 == result.exit_code, result.output
    failed = records(tmp_path / "pins.jsonl.failed.jsonl")
    assert [2, 5, 6, 8] == [record["error"]["line"] for record in failed]
    assert [{"raw": lines[1]}] + [json.loads(lines[i - 1]) for i in (5, 6, 8)] == [
        {k: v for k, v in record.items() if k != "error"} for record in failed
    ]
    expected_reasons = [INVALID[kind][1] for kind in INVALID]
    assert expected_reasons == [
        record["error"]["reason"][: len(reason)]
        for record, reason in zip(failed, expected_reasons, strict=True)
    ]
    assert [body(n) for n in (1, 2, 3)] == [stored(sandbox, n) for n in (1, 2, 3)]


async def test_fixed_failures_file_pushes_clean(sandbox: Sandbox, tmp_path: Path) -> None:
    """Fixing the failures file's lines and pushing it applies them all: exit 0, no new file."""
    seed(sandbox, [1, 900, 901, 902, 903])
    path = write(tmp_path / "pins.jsonl", [line(1), *(text for text, _ in INVALID.values())])
    assert 1 == (await push(sandbox, path)).exit_code
    failures = tmp_path / "pins.jsonl.failed.jsonl"
    fixed = []
    for record in records(failures):  # the "error" field stays: push ignores it
        n = 900 + record["error"]["line"] - 2
        fixed.append(json.dumps({**record, "customization_id": cid(n), "customization": body(n)}))
    write(failures, fixed)

    result = await push(sandbox, failures)

    assert 0 == result.exit_code, result.output
    assert [body(n) for n in (900, 901, 902, 903)] == [
        stored(sandbox, n) for n in (900, 901, 902, 903)
    ]
    assert not (tmp_path / "pins.jsonl.failed.jsonl.failed.jsonl").exists()


async def test_wrong_key_stops_and_writes_every_line(sandbox: Sandbox, tmp_path: Path) -> None:
    """Without the preflight, a rejected key stops the run (exit 2) at its first answer,
    and every line lands in the failures file."""
    numbers = range(1, 41)
    seed(sandbox, numbers)
    path = write(tmp_path / "pins.jsonl", [line(n) for n in numbers])

    result = await push(
        sandbox, path, "--concurrency", "2", "--no-preflight", LUIGISBOX_PRIVATE_KEY="wrong-key"
    )

    assert 2 == result.exit_code, result.output
    assert "rejected the credentials" in result.output
    failed = records(tmp_path / "pins.jsonl.failed.jsonl")
    assert list(range(1, 41)) == sorted(record["error"]["line"] for record in failed)
    assert [PLACEHOLDER["model"]] * 40 == [stored(sandbox, n)["model"] for n in numbers]
    assert "wrong-key" not in result.output


async def test_dry_run_sends_nothing(sandbox: Sandbox, tmp_path: Path) -> None:
    """--dry-run validates every line, writes the invalid ones, sends nothing: exit 1."""
    path = write(tmp_path / "pins.jsonl", [line(1), INVALID["bad UUID"][0], line(2)])

    result = await invoke(
        ["push", str(path), "--dry-run", "--base-url", sandbox.url],
        {"LUIGISBOX_TRACKER_ID": None, "LUIGISBOX_PRIVATE_KEY": None},
    )

    assert 1 == result.exit_code, result.output
    assert [] == sandbox.requests
    assert [2] == [r["error"]["line"] for r in records(tmp_path / "pins.jsonl.failed.jsonl")]
    assert "valid:" in result.stdout


@pytest.mark.parametrize(
    ("missing", "named"),
    [
        ({"LUIGISBOX_TRACKER_ID": None}, "LUIGISBOX_TRACKER_ID"),
        ({"LUIGISBOX_PRIVATE_KEY": None}, "LUIGISBOX_PRIVATE_KEY"),
        (
            {"LUIGISBOX_TRACKER_ID": None, "LUIGISBOX_PRIVATE_KEY": None},
            "LUIGISBOX_TRACKER_ID and LUIGISBOX_PRIVATE_KEY",
        ),
    ],
)
async def test_missing_credentials_exit_2(
    sandbox: Sandbox, tmp_path: Path, missing: dict[str, None], named: str
) -> None:
    """Without a tracker ID or key: exit 2, a message naming what to set, no request sent."""
    path = write(tmp_path / "pins.jsonl", [line(1)])

    result = await push(sandbox, path, **missing)

    assert 2 == result.exit_code, result.output
    assert f"Error: missing credentials: {named} not set." in result.output
    assert [] == sandbox.requests


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--faults", "503=0.1"], "--faults needs --sandbox"),
        (["--sandbox"], "exclude each other"),
        (["--faults", "nonsense=1", "--sandbox"], "unknown fault"),
        (["--concurrency", "0"], "--concurrency"),
        (["--base-url", "ftp://example.com"], "must be an http(s) URL"),
        (["--failures-out", "no/such/dir/f.jsonl"], "no such directory"),
    ],
)
async def test_usage_errors_exit_2(
    sandbox: Sandbox, tmp_path: Path, args: list[str], message: str
) -> None:
    """Contradictory or invalid options are usage errors: exit 2, nothing sent."""
    path = write(tmp_path / "pins.jsonl", [line(1)])

    result = await push(sandbox, path, *args)

    assert 2 == result.exit_code, result.output
    assert message in result.output
    assert [] == sandbox.requests


async def test_key_never_appears_in_output(sandbox: Sandbox, tmp_path: Path) -> None:
    """With -vv, rejections and invalid lines, the key is in no output and no failures file."""
    seed(sandbox, [1, 2])
    sandbox.fail_next(1, 422)
    path = write(tmp_path / "pins.jsonl", [line(1), INVALID["bad JSON"][0], line(2)])

    result = await push(sandbox, path, "-vv", "--concurrency", "1", "--no-preflight")

    assert 1 == result.exit_code, result.output
    failures = (tmp_path / "pins.jsonl.failed.jsonl").read_text()
    assert "422" in failures  # the rejection is there, with its reason
    assert "DEBUG" in result.output  # -v really logged
    # ``output`` is stdout and stderr together, on every supported click version.
    assert [] == [
        where
        for where, text in (("stdout and stderr", result.output), ("failures file", failures))
        if sandbox.private_key in text
    ]


async def test_bom_crlf_and_blank_lines(sandbox: Sandbox, tmp_path: Path) -> None:
    """A BOM, CRLF endings and blank lines are tolerated; line numbers count blank lines."""
    seed(sandbox, [1, 2])
    lines = [line(1), "", "   ", line(2), INVALID["bad UUID"][0], ""]
    path = write(tmp_path / "pins.jsonl", lines, newline="\r\n", bom=True)

    result = await push(sandbox, path)

    assert 1 == result.exit_code, result.output
    assert [body(1), body(2)] == [stored(sandbox, 1), stored(sandbox, 2)]
    assert [5] == [r["error"]["line"] for r in records(tmp_path / "pins.jsonl.failed.jsonl")]


async def test_stdin(sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`push -` reads stdin; its failures go to ./push-failed.jsonl."""
    monkeypatch.chdir(tmp_path)
    seed(sandbox, [1, 2])
    data = "\n".join([line(1), INVALID["bad JSON"][0], line(2)]).encode()

    result = await invoke(
        ["push", "-", "--base-url", sandbox.url], credentials(sandbox), stdin=data
    )

    assert 1 == result.exit_code, result.output
    assert [body(1), body(2)] == [stored(sandbox, 1), stored(sandbox, 2)]
    assert [2] == [r["error"]["line"] for r in records(tmp_path / "push-failed.jsonl")]


async def test_sandbox_flag_runs_the_example(tmp_path: Path) -> None:
    """The README's command: the example file against --sandbox, exit 1 for its 5 bad lines."""
    path = Path(shutil.copy(ROOT / "examples" / "pins.jsonl", tmp_path / "pins.jsonl"))

    result = await invoke(
        ["push", str(path), "--sandbox", "--faults", "503=0.05,seed=1"],
        {"LUIGISBOX_TRACKER_ID": None, "LUIGISBOX_PRIVATE_KEY": None},
    )

    assert 1 == result.exit_code, result.output
    assert 5 == len(records(tmp_path / "pins.jsonl.failed.jsonl"))
    summary = dict(
        (label.strip(), value.split()[0]) for label, _, value in
        (row.partition(":") for row in result.stdout.splitlines()) if value
    )
    assert ("1,000", "5", "0") == (summary["applied"], summary["failed"], summary["not attempted"])
    assert int(summary["retries"]) > 0


# -- Ctrl-C ----------------------------------------------------------------------------


async def _start_slow_push(
    sandbox: Sandbox, tmp_path: Path, count: int, latency: float
) -> asyncio.subprocess.Process:
    """``push -v`` of ``count`` lines in a subprocess, each request delayed ``latency`` s."""
    sandbox.faults = Faults(latency=1.0, latency_seconds=latency)
    numbers = range(1, count + 1)
    seed(sandbox, numbers)
    path = write(tmp_path / "pins.jsonl", [line(n) for n in numbers])
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "luigis_async", "push", str(path), "--base-url", sandbox.url,
        "--concurrency", "2", "-vv",
        env=subprocess_env(sandbox),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    return proc


def _accounted(sandbox: Sandbox, failures: Path, count: int) -> tuple[set[int], list[int]]:
    """The updates the store holds, and the line numbers in the failures file."""
    applied = {n for n in range(1, count + 1) if stored(sandbox, n) == body(n)}
    return applied, [record["error"]["line"] for record in records(failures)]


async def test_ctrl_c_finishes_in_flight_and_writes_the_rest(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """SIGINT mid-run: exit 130; applied lines plus failures-file lines are the whole input."""
    proc = await _start_slow_push(sandbox, tmp_path, count=40, latency=0.1)
    await wait_for_stderr(proc, b": applied", times=3)

    proc.send_signal(signal.SIGINT)
    stdout, stderr = await proc.communicate()

    assert 130 == proc.returncode, stderr.decode()
    applied, failed = _accounted(sandbox, tmp_path / "pins.jsonl.failed.jsonl", 40)
    assert set() == applied & set(failed)
    assert list(range(1, 41)) == sorted([*applied, *failed])
    assert len(applied) >= 3
    reasons = {r["error"]["reason"] for r in records(tmp_path / "pins.jsonl.failed.jsonl")}
    assert {"not attempted: interrupted"} == reasons
    assert sandbox.private_key.encode() not in stdout + stderr


async def test_second_ctrl_c_cancels_in_flight(sandbox: Sandbox, tmp_path: Path) -> None:
    """A second SIGINT cancels the requests in flight; still every line is accounted for."""
    proc = await _start_slow_push(sandbox, tmp_path, count=20, latency=0.5)
    await wait_for_stderr(proc, b": applied")
    proc.send_signal(signal.SIGINT)
    await wait_for_stderr(proc, b"interrupted: finishing")

    proc.send_signal(signal.SIGINT)
    _, stderr = await proc.communicate()

    assert 130 == proc.returncode, stderr.decode()
    applied, failed = _accounted(sandbox, tmp_path / "pins.jsonl.failed.jsonl", 20)
    assert list(range(1, 21)) == sorted(set(failed) | applied)
    reasons = [r["error"]["reason"] for r in records(tmp_path / "pins.jsonl.failed.jsonl")]
    assert reasons.count("cancelled in flight: may or may not have been applied") >= 1


# -- export and the other commands -----------------------------------------------------


async def test_export_push_round_trip(sandbox: Sandbox, tmp_path: Path) -> None:
    """Export writes what push reads: pushing the export restores every customization."""
    for customization_id, demo in demo_customizations(30, seed=3):
        sandbox.add(demo, customization_id)
    before = {key: dict(value) for key, value in sandbox.store.items()}
    out = tmp_path / "export.jsonl"

    exported = await invoke(
        ["export", "-o", str(out), "--base-url", sandbox.url], credentials(sandbox)
    )
    assert 0 == exported.exit_code, exported.output
    for key in before:  # wipe them, so only the push can bring them back
        sandbox.store[key] = {**sandbox.store[key], **PLACEHOLDER}
    result = await push(sandbox, out)

    assert 0 == result.exit_code, result.output
    assert before == sandbox.store
    assert {"customization_id", "customization"} == set().union(*map(set, records(out)))


async def test_export_filters(sandbox: Sandbox, tmp_path: Path) -> None:
    """--model and --tag select what export writes: any of the models, and the tag."""
    for n in range(1, 7):
        sandbox.add({**body(n), "tags": ["sale"] if n % 2 else []}, cid(n))
    out = tmp_path / "export.jsonl"

    result = await invoke(
        ["export", "-o", str(out), "--model", MODELS[1], "--model", MODELS[0], "--tag", "sale",
         "--base-url", sandbox.url],
        credentials(sandbox),
    )

    assert 0 == result.exit_code, result.output
    assert [cid(1), cid(3)] == [record["customization_id"] for record in records(out)]


async def test_export_with_wrong_key_exits_2(sandbox: Sandbox, tmp_path: Path) -> None:
    """A rejected key is a credential error for export too, and leaves no output file."""
    out = tmp_path / "export.jsonl"

    result = await invoke(
        ["export", "-o", str(out), "--base-url", sandbox.url],
        credentials(sandbox, LUIGISBOX_PRIVATE_KEY="wrong-key"),
    )

    assert 2 == result.exit_code, result.output
    assert [] == [path.name for path in os.scandir(tmp_path)]


async def test_sandbox_command_prints_where_it_listens() -> None:
    """`luigis-async sandbox` prints its URL, tracker ID and key, and stops on Ctrl-C."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "luigis_async", "sandbox", "--tracker-id", "9-9",
        "--faults", "503=0.5",
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    banner: list[str] = []
    async with asyncio.timeout(10):
        while not banner or "Ctrl-C" not in banner[-1]:
            banner.append((await proc.stdout.readline()).decode())
            assert banner[-1], f"the banner ended early: {banner}"

    proc.send_signal(signal.SIGINT)
    await proc.communicate()

    assert 0 == proc.returncode
    assert banner[0].startswith("Luigi's Box sandbox listening on http://127.0.0.1:")
    text = "".join(banner)
    assert ("9-9", "503", "KEY") == (
        "9-9" if "tracker ID:" in text and "9-9" in text else text,
        "503" if "faults:" in text and "503" in text else text,
        "KEY" if "private key:" in text or "LUIGISBOX_PRIVATE_KEY=" in text else text,
    )


async def test_without_the_extra_says_what_to_install() -> None:
    """Without click and rich the library still imports, and the command says what to install."""
    code = (
        "import sys; sys.modules['click'] = None; sys.modules['rich'] = None\n"
        "import luigis_async, luigis_async.jsonl, luigis_async.sandbox\n"
        "from luigis_async.cli import main\n"
        "main(['push', '-'])\n"
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await proc.communicate()

    assert 2 == proc.returncode, stderr.decode()
    assert "install luigis-async[cli]" in stderr.decode()


async def test_cancelled_push_still_writes_every_line(
    sandbox: Sandbox, client: LuigisBoxClient, tmp_path: Path
) -> None:
    """A push task cancelled from outside (no Ctrl-C handler) still writes every line."""
    sandbox.faults = Faults(latency=1.0, latency_seconds=0.05)
    numbers = range(1, 31)
    seed(sandbox, numbers)
    data = "\n".join(line(n) for n in numbers).encode()
    tracker = AppliedTracker(3)
    path = tmp_path / "failed.jsonl"

    with FailuresFile(path) as failures:
        job = PushJob(BatchUpdater(client, concurrency=2), io.BytesIO(data), failures, tracker)
        task = asyncio.create_task(job.run())
        async with asyncio.timeout(10):
            await tracker.reached.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    applied, failed = _accounted(sandbox, path, 30)
    assert list(range(1, 31)) == sorted(set(failed) | applied)
    assert len(applied) >= 3


# -- what the terminal shows -----------------------------------------------------------


class AppliedTracker:
    """A progress tracker that sets ``reached`` once ``count`` lines are applied."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.reached = asyncio.Event()

    def update(self, snapshot: Snapshot, *, force: bool = False) -> None:
        if snapshot.applied >= self.count:
            self.reached.set()


def test_summary_lines_up_the_numbers() -> None:
    """The summary: applied, failed by reason (under the numbers, not beside the labels),
    not attempted, retries, elapsed, the rate of lines applied."""
    summary = LinesSummary(
        applied=1000,
        failed=Counter({"invalid JSON": 1, "422 UnprocessableEntityError": 4}),
        not_attempted=2,
        retries=12,
        elapsed=2.0,
        stop_reason="interrupted",
        failures_path=Path("f.jsonl"),
        failures_written=7,
    )
    assert [
        "applied:       1,000",
        "failed:            5",
        "                   4 422 UnprocessableEntityError",
        "                   1 invalid JSON",
        "not attempted:     2 (interrupted)",
        "retries:          12",
        "elapsed:        2.00 s",
        "rate:            500 applied/s",
        "failures:          7 lines in f.jsonl",
    ] == summary.format().splitlines()


@pytest.mark.parametrize(
    ("total", "unit", "words", "snapshots", "expected"),
    [
        (
            5_000_000, "bytes", Words(),
            [Snapshot(), Snapshot(2_000_000, 1200, 3, 0, 57, 8)],
            "push: 40% (2.0 MB of 5.0 MB), 1,200 applied, 3 failed, 57 retries, 8 in flight, "
            "120 applied/s, ETA 0:00:15",
        ),
        (
            5_000_000, "bytes", Words(),
            [Snapshot(), Snapshot(1_000_000, 500, 0, 4_000, 9, 0, stopping=True)],
            "push: 20% (1.0 MB of 5.0 MB), 500 applied, 0 failed, 4,000 not attempted, "
            "9 retries, 0 in flight, 50 applied/s, stopping",
        ),
        (
            None, "bytes", Words(), [Snapshot(), Snapshot(2_500, 10)],
            "push: 2.5 kB read, 10 applied, 0 failed, 0 retries, 0 in flight, 1 applied/s",
        ),
        (
            None, "items", Words("exported", None, sends=False), [Snapshot(1500, 1500)],
            "push: 1,500 exported, 150 exported/s",
        ),
    ],
)
def test_plain_progress_line(
    total: int | None, unit: Unit, words: Words, snapshots: list[Snapshot], expected: str
) -> None:
    """Without a terminal, progress is a log line: where, the counts (failed only for lines
    tried), retries, in flight, the applied rate over the recent window, and an ETA."""
    progress = LogProgress("push", total, unit, words, clock=lambda: 100.0)
    lines = [progress.describe(snapshot, now=110.0) for snapshot in snapshots]
    assert expected == lines[-1]


def test_the_rate_counts_only_the_recent_window() -> None:
    """After a fast start and a slow minute, applied/s is the recent pace, not the average."""
    progress = LogProgress("push", 100_000, "items", clock=lambda: 0.0)
    progress.describe(Snapshot(10_000, 10_000), now=10.0)  # 1,000/s for 10 s
    progress.describe(Snapshot(10_500, 10_500), now=60.0)
    line = progress.describe(Snapshot(10_600, 10_600), now=70.0)  # 10/s lately
    assert ", 10 applied/s, ETA 2:29:00" in line

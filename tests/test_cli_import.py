"""``luigis-async import`` and ``sync --bulk``, run for real against a sandbox on 127.0.0.1.

import reads customization bodies without IDs (the shape sync reads) and creates them
through the bulk endpoint, up to 5,000 per request, with push's failures file, journal,
``--resume``, signals and exit codes.
"""

from __future__ import annotations

import json
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from luigis_async.sandbox import Faults, Sandbox

from .cli_helpers import (
    body,
    credentials,
    failed_lines,
    invoke,
    records,
    start,
    wait_for_stderr,
    write,
)

BAD_JSON = '{"model": "basket",'
UNKNOWN_FIELD = json.dumps({**body(0), "tag": ["typo"]})


def bodies(tmp_path: Path, numbers: range, *, bad: dict[int, str] | None = None) -> Path:
    """A file of bodies ``numbers``; ``bad`` replaces line N (1-based) with its text."""
    lines = [json.dumps(body(n)) for n in numbers]
    for number, text in (bad or {}).items():
        lines[number - 1] = text
    return write(tmp_path / "bodies.jsonl", lines)


async def import_(sandbox: Sandbox, path: Path | str, *args: str, **env: str | None) -> Result:
    return await invoke(
        ["import", str(path), "--base-url", sandbox.url, *args], credentials(sandbox, **env)
    )


def targets(sandbox: Sandbox) -> Counter[str]:
    """How many stored customizations each target identity has."""
    return Counter(c.get("target_identity", "") for c in sandbox.store.values())


def bulk_requests(sandbox: Sandbox) -> list[int]:
    """The statuses of the bulk create requests the sandbox answered."""
    return [r.status for r in sandbox.requests if r.route == "bulk"]


def stored_bodies(sandbox: Sandbox) -> list[dict[str, Any]]:
    return sorted(
        (sandbox.stored_body(key) for key in sandbox.store), key=lambda b: b["target_identity"]
    )


@pytest.mark.parametrize(
    ("count", "chunk_size", "requests"),
    [pytest.param(12_000, 5_000, 3, marks=pytest.mark.slow), (3_000, 1_000, 3), (7, 2, 4)],
)
async def test_import_creates_every_line_in_bulk(
    sandbox: Sandbox, tmp_path: Path, count: int, chunk_size: int, requests: int
) -> None:
    """Every line is created once, in ceil(lines / chunk) bulk requests; exit 0, no file."""
    path = bodies(tmp_path, range(count))

    result = await import_(sandbox, path, "--chunk-size", str(chunk_size))

    assert 0 == result.exit_code, result.output
    assert [200] * requests == bulk_requests(sandbox)
    assert {f"/p/{n}": 1 for n in range(count)} == targets(sandbox)
    assert not (tmp_path / "bodies.jsonl.failed.jsonl").exists()
    assert f"{count:,}" in result.stdout.split("applied:")[1].split("\n")[0]


async def test_invalid_and_refused_lines_go_to_the_failures_file(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """Lines invalid locally and lines the server refuses (422) end in the failures file,
    each with its line number and reason; every other line is created: exit 1."""
    sandbox.catalog = {f"/p/{n + 1000}" for n in range(40) if n not in (13, 31)}
    path = bodies(tmp_path, range(40), bad={3: BAD_JSON, 7: UNKNOWN_FIELD})

    result = await import_(sandbox, path, "--chunk-size", "16")

    assert 1 == result.exit_code, result.output
    failures = records(tmp_path / "bodies.jsonl.failed.jsonl")
    reasons = {record["error"]["line"]: record["error"]["reason"] for record in failures}
    assert [3, 7, 14, 32] == sorted(reasons)
    assert reasons[3].startswith("invalid JSON")
    assert reasons[7].startswith("invalid customization: unknown field 'tag'")
    assert all(" -> 422: " in reasons[line] for line in (14, 32))
    created = {f"/p/{n}" for n in range(40)} - {"/p/2", "/p/6", "/p/13", "/p/31"}
    assert {target: 1 for target in created} == targets(sandbox)


@pytest.mark.parametrize(
    ("conflict", "code", "failed", "kept"),
    [("raise", 1, [2, 4, 6, 8, 10], True), ("ignore", 0, [], True), ("override", 0, [], False)],
)
async def test_conflict_strategies(
    sandbox: Sandbox,
    tmp_path: Path,
    conflict: str,
    code: int,
    failed: list[int],
    kept: bool,
) -> None:
    """Five targets exist: raise fails exactly those lines (409), ignore keeps them,
    override replaces their definition under the same IDs; never a duplicate."""
    existing = {n: sandbox.add({**body(n), "tags": ["old"]}) for n in range(1, 10, 2)}
    path = bodies(tmp_path, range(12))

    result = await import_(sandbox, path, "--conflict", conflict)

    assert code == result.exit_code, result.output
    assert failed == failed_lines(tmp_path / "bodies.jsonl.failed.jsonl")
    assert {f"/p/{n}": 1 for n in range(12)} == targets(sandbox)
    tags = {sandbox.stored_body(key)["tags"][0] for key in existing.values()}
    assert {"old" if kept else body(0)["tags"][0]} == tags


async def test_a_fixed_failures_file_imports_clean(sandbox: Sandbox, tmp_path: Path) -> None:
    """The failures file's lines, fixed, import as they are ("error" is ignored): exit 0."""
    path = bodies(tmp_path, range(5), bad={2: json.dumps({**body(1), "model": ""})})
    assert 1 == (await import_(sandbox, path)).exit_code
    failures = tmp_path / "bodies.jsonl.failed.jsonl"
    write(failures, [json.dumps({**record, **body(1)}) for record in records(failures)])

    result = await import_(sandbox, failures)

    assert 0 == result.exit_code, result.output
    assert {f"/p/{n}": 1 for n in range(5)} == targets(sandbox)


async def test_dry_run_checks_every_line_and_sends_nothing(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """--dry-run: exit 1 for the bad line, which is in the failures file; no request."""
    path = bodies(tmp_path, range(6), bad={4: UNKNOWN_FIELD})

    result = await invoke(
        ["import", str(path), "--dry-run"], {"LUIGISBOX_TRACKER_ID": None}
    )

    assert 1 == result.exit_code, result.output
    assert ([], [4]) == (sandbox.requests, failed_lines(tmp_path / "bodies.jsonl.failed.jsonl"))
    assert "valid:" in result.stdout


async def test_stdin(sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`import -` reads stdin; its failures go to ./import-failed.jsonl."""
    monkeypatch.chdir(tmp_path)
    data = "\n".join([json.dumps(body(1)), BAD_JSON, json.dumps(body(2))]).encode()

    result = await invoke(
        ["import", "-", "--base-url", sandbox.url], credentials(sandbox), stdin=data
    )

    assert 1 == result.exit_code, result.output
    assert {"/p/1": 1, "/p/2": 1} == targets(sandbox)
    assert [2] == failed_lines(tmp_path / "import-failed.jsonl")


@pytest.mark.parametrize(
    ("chunk_size", "concurrency", "latency"), [(40, None, 0.05), (25, 32, 0.02)]
)
async def test_an_interrupted_import_resumed_creates_every_line_once(
    sandbox: Sandbox,
    tmp_path: Path,
    chunk_size: int,
    concurrency: int | None,
    latency: float,
) -> None:
    """SIGTERM mid-run: exit 143, the journal kept; --resume creates the rest: every line
    of the file exists exactly once, and the journal is gone."""
    sandbox.faults = Faults(latency=1.0, latency_seconds=latency)
    count = 2_000
    path = bodies(tmp_path, range(count))
    args = ["--chunk-size", str(chunk_size), "-vv"]
    args += ["--concurrency", str(concurrency)] if concurrency else []

    proc = await start(sandbox, "import", str(path), *args)
    await wait_for_stderr(proc, b": applied", times=chunk_size + 1)
    proc.send_signal(signal.SIGTERM)
    _, stderr = await proc.communicate()

    assert 143 == proc.returncode, stderr.decode()
    assert 0 < len(sandbox.store) < count
    again = await start(sandbox, "import", str(path), "--resume", *args)
    _, stderr = await again.communicate()

    assert 0 == again.returncode, stderr.decode()
    assert {f"/p/{n}": 1 for n in range(count)} == targets(sandbox)
    assert not (tmp_path / "bodies.jsonl.journal").exists()
    assert [] == [status for status in bulk_requests(sandbox) if status != 200]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rate", "5"], "--rate does not apply to import"),
        (["--dry-run", "--resume"], "--dry-run sends nothing"),
        (["--resume", "--restart"], "exclude each other"),
        (["--conflict", "merge"], "'merge' is not one of 'raise', 'ignore', 'override'"),
        (["--chunk-size", "5001"], "5001 is not in the range 1<=x<=5000"),
    ],
)
async def test_usage_errors_exit_2(
    sandbox: Sandbox, tmp_path: Path, args: list[str], message: str
) -> None:
    """Options that cannot apply are usage errors: exit 2, nothing sent."""
    path = bodies(tmp_path, range(3))

    result = await import_(sandbox, path, *args)

    assert (2, True, []) == (result.exit_code, message in result.output, sandbox.requests)


# -- sync --bulk -----------------------------------------------------------------------


TAG = "managed:nightly"


async def test_sync_bulk_creates_through_the_bulk_endpoint(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """sync --bulk: 5,001 creates in 2 bulk requests and no single create; a changed line
    is still one PUT, and nothing else is written."""
    count = 5_001
    path = bodies(tmp_path, range(count))
    args = ["sync", str(path), "--managed-tag", TAG, "--yes", "--bulk", "--base-url", sandbox.url]

    first = await invoke(args, credentials(sandbox))

    assert 0 == first.exit_code, first.output
    assert [200] * 2 == bulk_requests(sandbox)
    assert [] == [r for r in sandbox.requests if r.route == "create"]
    assert {f"/p/{n}": 1 for n in range(count)} == targets(sandbox)
    assert "5,001 of 5,001" in first.stdout
    sandbox.requests.clear()
    write(path, [json.dumps({**body(n), "tags": ["v2"]}) if n == 7 else json.dumps(body(n))
                 for n in range(count)])

    second = await invoke(args, credentials(sandbox))

    assert 0 == second.exit_code, second.output
    assert (["update"], []) == (
        [r.route for r in sandbox.requests if r.method in ("PUT", "POST") and r.route != "export"],
        bulk_requests(sandbox),
    )

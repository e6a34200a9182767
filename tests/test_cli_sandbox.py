"""``luigis-async sandbox``, and the in-process sandbox of ``--sandbox``.

The command is the sandbox's one command line: it calls ``luigis_async.sandbox.cli.run``
with every option, and prints the ``export`` lines that point the other commands at it.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from luigis_async.cli import commands
from luigis_async.cli.commands import cli
from luigis_async.sandbox import Faults

from .cli_helpers import ROOT, body, line, records, write


async def _banner(proc: asyncio.subprocess.Process) -> list[str]:
    """The lines the sandbox prints until it says how to stop it."""
    assert proc.stdout is not None
    banner: list[str] = []
    async with asyncio.timeout(10):
        while not banner or "Ctrl-C" not in banner[-1]:
            banner.append((await proc.stdout.readline()).decode())
            assert banner[-1], f"the banner ended early: {banner}"
    return banner


async def test_the_printed_exports_point_the_other_commands_at_it(tmp_path: Path) -> None:
    """With a key, a tracker, faults and a seed file: the banner names them, and its
    export lines, pasted, let ``export`` read the seeded customizations; Ctrl-C exits 0."""
    seeds = write(tmp_path / "seed.jsonl", [json.dumps(body(n)) for n in range(3)])
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "luigis_async", "sandbox", "--private-key", "s3cret key",
        "--tracker-id", "9-9", "--faults", "latency=0.5:0.01,seed=3", "--seed-file", str(seeds),
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    banner = await _banner(proc)
    exports = dict(
        shlex.split(text.strip())[1].split("=", 1) for text in banner if "export " in text
    )
    out = tmp_path / "out.jsonl"

    exported = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "luigis_async", "export", "-o", str(out),
        env={**os.environ, "PYTHONPATH": str(ROOT), **exports},
    )
    await exported.wait()
    proc.send_signal(signal.SIGINT)
    await proc.communicate()

    assert (0, 0) == (exported.returncode, proc.returncode)
    assert {"LUIGISBOX_BASE_URL", "LUIGISBOX_TRACKER_ID", "LUIGISBOX_PRIVATE_KEY"} == set(exports)
    assert ("9-9", "s3cret key") == (
        exports["LUIGISBOX_TRACKER_ID"], exports["LUIGISBOX_PRIVATE_KEY"]
    )
    assert "  faults:          latency=0.5, latency_seconds=0.01, seed=3\n" in banner
    assert "  customizations:  3\n" in banner
    assert [body(n) for n in range(3)] == sorted(
        (record["customization"] for record in records(out)), key=lambda b: b["target_identity"]
    )


def test_every_option_goes_to_the_sandboxs_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """The command calls ``sandbox.cli.run`` with each option as given, and exits with its
    status: no argument list is rebuilt for another parser."""
    calls: list[dict[str, Any]] = []

    def run(**options: Any) -> int:
        calls.append(options)
        return 7

    monkeypatch.setattr(commands, "serve_sandbox", run)

    result = CliRunner().invoke(
        cli,
        ["sandbox", "--host", "0.0.0.0", "--port", "8080", "--tracker-id", "1-2",
         "--private-key", "k", "--max-skew", "2.5", "--faults", "503=0.1,seed=4",
         "--seed-file", str(ROOT / "examples" / "desired.jsonl")],
    )

    assert 7 == result.exit_code, result.output
    assert [
        {
            "host": "0.0.0.0", "port": 8080, "tracker_id": "1-2", "private_key": "k",
            "max_skew": 2.5, "faults": Faults(rate_503=0.1, seed=4),
            "seed_file": str(ROOT / "examples" / "desired.jsonl"),
        }
    ] == calls


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--faults", "nonsense=1"], 2, "unknown fault 'nonsense'"),
        (["--faults", "503=2"], 2, "must be a probability"),
        (["--seed-file", "BAD"], 2, "line 1"),
        (["--port", "TAKEN"], 1, "cannot serve on 127.0.0.1"),
    ],
)
def test_bad_options_exit_before_serving(
    tmp_path: Path, args: list[str], code: int, message: str
) -> None:
    """A bad fault spec or seed file is exit 2, a taken port exit 1, each saying why."""
    bad = write(tmp_path / "bad.jsonl", ['{"model": "basket", "target_type": "item"}'])
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        argv = [{"BAD": str(bad), "TAKEN": port}.get(arg, arg) for arg in args]

        result = CliRunner().invoke(cli, ["sandbox", *argv])

    assert code == result.exit_code, result.output
    assert message in result.output


async def test_ctrl_c_while_seeding_a_sandbox_stops_at_once(tmp_path: Path) -> None:
    """Ctrl-C while ``push --sandbox`` seeds the sandbox from the file stops the seeding
    there, sends nothing, and writes every line to the failures file: exit 130."""
    count = 30_000
    path = write(tmp_path / "pins.jsonl", [line(n) for n in range(1, count + 1)])
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "luigis_async", "push", str(path), "--sandbox",
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    async with asyncio.timeout(10):
        while b"seeding the sandbox" not in await proc.stderr.readline():
            pass

    proc.send_signal(signal.SIGINT)
    stdout, stderr = await proc.communicate()

    assert 130 == proc.returncode, stderr.decode()
    seeded = re.search(rb"\((?:tracker \S+, )?(\d+) customizations", stderr)
    assert seeded is not None and int(seeded[1]) < count, stderr.decode()
    failed = records(tmp_path / "pins.jsonl.failed.jsonl")
    assert (count, {"not attempted: interrupted"}) == (
        len(failed), {record["error"]["reason"] for record in failed}
    )
    assert re.search(rb"^applied: +0$", stdout, re.MULTILINE), stdout.decode()


async def test_a_base_url_left_in_the_environment_does_not_contradict_sandbox(
    tmp_path: Path,
) -> None:
    """$LUIGISBOX_BASE_URL (say, from a sandbox's export lines) gives way to --sandbox;
    only --base-url given on the command line contradicts it."""
    path = write(tmp_path / "pins.jsonl", [line(1)])
    env = {"LUIGISBOX_BASE_URL": "http://127.0.0.1:9", "LUIGISBOX_TRACKER_ID": None}

    from_env = await asyncio.to_thread(
        CliRunner().invoke, cli, ["push", str(path), "--sandbox"], env=env
    )
    given = await asyncio.to_thread(
        CliRunner().invoke, cli, ["push", str(path), "--sandbox", "--base-url", "http://x.example"],
        env=env,
    )

    assert (0, 2) == (from_env.exit_code, given.exit_code), from_env.output + given.output
    assert "--base-url and --sandbox exclude each other" in given.output

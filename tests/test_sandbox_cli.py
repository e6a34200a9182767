"""The sandbox standalone: run(), python -m luigis_async.sandbox, and seed files."""

# STYLE.md asks for `assert expected == actual`; ruff's SIM300 calls that a Yoda condition.

from __future__ import annotations

import asyncio
import io
import json
import os
import shlex
import signal
import socket
import sys
from pathlib import Path

import aiohttp
import pytest

from luigis_async import LuigisBoxClient
from luigis_async.sandbox import Faults, Sandbox
from luigis_async.sandbox import cli as sandbox_cli
from luigis_async.sandbox.__main__ import main
from luigis_async.sandbox.cli import describe, export_lines, run, serve_forever
from luigis_async.sandbox.seed import SeedFileError, seed_from_file, seed_from_lines

from . import sandbox_support
from .sandbox_support import NOW, UNKNOWN_ID, Clock, api_path, item_body, send, signed_headers

# The shared fixtures, registered in this module.
clock, http, sb = sandbox_support.clock, sandbox_support.http, sandbox_support.sb

ROOT = Path(__file__).resolve().parents[1]  # the checkout, for the subprocess's PYTHONPATH
OTHER_ID = "0b8e3f4c-2d51-4c1e-9f0a-6a7b8c9d0e1f"


def push_line(customization_id: str, **overrides: object) -> dict[str, object]:
    return {"customization_id": customization_id, "customization": item_body(**overrides)}


# --- serve_forever and the banner ---------------------------------------------------


async def test_serve_forever_serves_until_stopped(http: aiohttp.ClientSession) -> None:
    """serve_forever answers requests once ready and returns when stop is set."""
    sandbox = Sandbox(tracker_id="1111-2222", private_key="k", clock=Clock(NOW))
    ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    stop = asyncio.Event()
    server = asyncio.create_task(
        serve_forever(sandbox, on_ready=lambda sb: ready.set_result(describe(sb)), stop=stop)
    )

    banner = await ready
    url = sandbox.url
    reply = await send(http, sandbox, "POST", "/scopes")
    stop.set()
    await server

    assert 200 == reply.status
    assert f"Luigi's Box sandbox listening on {url}" == banner.splitlines()[0]
    with pytest.raises(RuntimeError):
        _ = sandbox.url


async def test_describe_prints_settings_and_ready_to_paste_exports() -> None:
    """The banner: URL, tracker, count, faults that differ from none, and export lines."""
    sandbox = Sandbox(
        tracker_id="1111-2222", private_key="it's a key", faults=Faults(rate_503=0.1, seed=7)
    )
    sandbox.add(item_body())
    async with sandbox:
        lines = describe(sandbox).splitlines()

        assert [
            f"Luigi's Box sandbox listening on {sandbox.url}",
            "  tracker ID:      1111-2222",
            "  customizations:  1",
            "  faults:          rate_503=0.1, seed=7",
            "Point a client at it (paste into a shell):",
            f"  export LUIGISBOX_BASE_URL={sandbox.url}",
            "  export LUIGISBOX_TRACKER_ID=1111-2222",
            "  export LUIGISBOX_PRIVATE_KEY='it'\"'\"'s a key'",
            "Press Ctrl-C to stop.",
        ] == lines


async def test_export_lines_round_trip_through_a_shell_parser() -> None:
    """Each export line, split as a shell does, gives back the exact value."""
    async with Sandbox(private_key="a b'c\"$HOME;`x`") as sandbox:
        parsed = dict(shlex.split(line)[1].split("=", 1) for line in export_lines(sandbox))

        assert {
            "LUIGISBOX_BASE_URL": sandbox.url,
            "LUIGISBOX_TRACKER_ID": sandbox.tracker_id,
            "LUIGISBOX_PRIVATE_KEY": "a b'c\"$HOME;`x`",
        } == parsed


async def test_the_exported_lines_configure_a_client_with_no_arguments(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With the printed export lines in the environment, LuigisBoxClient() just works."""
    async with Sandbox() as sandbox:
        for line in export_lines(sandbox):
            name, _, value = shlex.split(line)[1].partition("=")
            monkeypatch.setenv(name, value)
        async with LuigisBoxClient() as client:
            assert [] == await client.export_customizations()

    assert [200] == [r.status for r in sandbox.requests]


@pytest.mark.parametrize(
    ("faults", "expected"),
    [
        (Faults(), "none"),
        (Faults(seed=7, rate_503=0.1), "rate_503=0.1, seed=7"),
        (Faults(rate_429=0.5, retry_after=None), "rate_429=0.5, retry_after=None"),
        (Faults(latency=1.0, latency_seconds=2.0), "latency=1.0, latency_seconds=2.0"),
        (Faults(max_in_flight=5), "max_in_flight=5"),
    ],
)
def test_faults_describe_shows_only_what_differs(faults: Faults, expected: str) -> None:
    """Faults.describe lists the changed fields, seed last, or 'none'."""
    assert expected == faults.describe()


# --- seed files ---------------------------------------------------------------------


def test_seed_file_takes_bare_bodies_and_push_lines(tmp_path: Path) -> None:
    """Bare bodies get new IDs, push lines keep theirs; blank lines and 'error' are ignored."""
    path = tmp_path / "seed.jsonl"
    lines = [
        json.dumps(item_body(target_identity="/p/1")),
        "",
        json.dumps({**push_line(UNKNOWN_ID.upper(), model="m"), "error": {"line": 3}}),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    sandbox = Sandbox()

    added = seed_from_file(sandbox, path)

    [new_id, pushed_id] = list(sandbox.store)
    assert (2, UNKNOWN_ID) == (added, pushed_id)
    assert item_body(target_identity="/p/1") == sandbox.stored_body(new_id)
    assert item_body(model="m") == sandbox.stored_body(UNKNOWN_ID)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "line 2: not valid JSON"),
        ("[1, 2]", "line 2: must be a JSON object"),
        (json.dumps({"customization": item_body()}), "line 2: a line with 'customization' needs"),
        (
            json.dumps({"customization_id": OTHER_ID, "customization": "x"}),
            "line 2: 'customization' must be a JSON object",
        ),
        (json.dumps(item_body(model="")), "line 2: Invalid configuration provided"),
        (json.dumps(item_body(pin_definitions=[{}])), "line 2: Invalid pin definition"),
        (json.dumps(push_line("not-a-uuid")), "line 2: customization_id must be a UUID"),
        (json.dumps(push_line(UNKNOWN_ID)), f"line 2: customization {UNKNOWN_ID} already"),
    ],
)
def test_a_bad_seed_line_names_its_number_and_adds_nothing(line: str, message: str) -> None:
    """Any bad line raises SeedFileError naming the source and line; nothing stays added."""
    sandbox = Sandbox()

    with pytest.raises(SeedFileError, match=f"^seed.jsonl {message}"):
        seed_from_lines(sandbox, [json.dumps(push_line(UNKNOWN_ID)), line], "seed.jsonl")

    assert {} == sandbox.store


def test_an_unreadable_seed_file_is_a_seed_file_error(tmp_path: Path) -> None:
    """A missing file or one that is not UTF-8 raises SeedFileError naming the path."""
    binary = tmp_path / "binary.jsonl"
    binary.write_bytes(b"\xff\xfe\n")

    with pytest.raises(SeedFileError, match=r"cannot read seed file .*missing\.jsonl"):
        seed_from_file(Sandbox(), tmp_path / "missing.jsonl")
    with pytest.raises(SeedFileError, match=r"cannot read seed file .*binary\.jsonl"):
        seed_from_file(Sandbox(), binary)


# --- run() and main() ---------------------------------------------------------------


def test_run_with_a_bad_seed_file_exits_2_before_listening(tmp_path: Path) -> None:
    """run() reports the bad line on err and returns 2 without printing a banner."""
    path = tmp_path / "seed.jsonl"
    path.write_text(json.dumps(item_body()) + "\n{oops\n", encoding="utf-8")
    out, err = io.StringIO(), io.StringIO()

    status = run(seed_file=path, out=out, err=err)

    assert 2 == status
    assert "" == out.getvalue()
    assert err.getvalue().startswith(f"error: {path} line 2: not valid JSON")


def test_run_on_a_taken_port_exits_1() -> None:
    """run() on a port another socket holds says why on err and returns 1."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        err = io.StringIO()

        status = run(port=port, out=io.StringIO(), err=err)

    assert 1 == status
    assert err.getvalue().startswith(f"error: cannot serve on 127.0.0.1:{port}: ")


def test_main_rejects_a_bad_fault_spec(capsys: pytest.CaptureFixture[str]) -> None:
    """A bad --faults exits with status 2 and says why, before serving anything."""
    with pytest.raises(SystemExit) as exit_info:
        main(["--faults", "429=lots"])

    assert 2 == exit_info.value.code
    assert "bad value for '429'" in capsys.readouterr().err


def test_main_passes_every_option_to_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """main() parses each option into run()'s keyword of the same meaning."""
    calls: list[dict[str, object]] = []
    monkeypatch.setattr(sandbox_cli, "run", lambda **kwargs: calls.append(kwargs) or 0)

    status = sandbox_cli.main(
        [
            "--host=::1",
            "--port=8080",
            "--tracker-id=1111-2222",
            "--private-key=k",
            "--max-skew=30",
            "--faults=503=0.1,seed=7",
            "--seed-file=pins.jsonl",
        ]
    )

    assert 0 == status
    assert [
        {
            "host": "::1",
            "port": 8080,
            "tracker_id": "1111-2222",
            "private_key": "k",
            "max_skew": 30.0,
            "faults": Faults(rate_503=0.1, seed=7),
            "seed_file": "pins.jsonl",
        }
    ] == calls


async def test_module_serves_seeded_customizations_until_ctrl_c(
    http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """python -m luigis_async.sandbox prints paste-ready exports, serves the seed, exits 0."""
    seed = tmp_path / "seed.jsonl"
    seed.write_text(json.dumps(push_line(UNKNOWN_ID)) + "\n", encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "luigis_async.sandbox",
        "--port=0",
        "--tracker-id=1111-2222",
        "--private-key=cli key",
        "--faults=seed=3",
        f"--seed-file={seed}",
        stdout=asyncio.subprocess.PIPE,
        env=env,
    )
    assert process.stdout is not None
    try:
        banner = [(await process.stdout.readline()).decode().rstrip("\n") for _ in range(9)]
        exported = dict(shlex.split(line)[1].split("=", 1) for line in banner if "export " in line)
        sandbox = Sandbox(tracker_id="1111-2222", private_key=exported["LUIGISBOX_PRIVATE_KEY"])
        path = api_path(sandbox, f"/scope/{UNKNOWN_ID}")
        url = exported["LUIGISBOX_BASE_URL"] + path
        async with http.get(url, headers=signed_headers(sandbox, "GET", path)) as response:
            status, body = response.status, await response.json()
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
        try:
            async with asyncio.timeout(10):
                await process.communicate()
        except TimeoutError:
            process.kill()
            await process.communicate()

    assert exported["LUIGISBOX_BASE_URL"].startswith("http://127.0.0.1:")
    assert ("1111-2222", "cli key") == (
        exported["LUIGISBOX_TRACKER_ID"],
        exported["LUIGISBOX_PRIVATE_KEY"],
    )
    assert "  customizations:  1" == banner[2]
    assert "  faults:          seed=3" == banner[3]
    assert (200, UNKNOWN_ID, "basket") == (status, body["id"], body["model"])
    assert 0 == process.returncode

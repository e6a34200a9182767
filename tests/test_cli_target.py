"""Is the API there, and is it ours? The preflight request and the fail fast of a run.

Before any line, one signed GET /summary tells an unreachable base URL (exit 3), a
tracker the API does not know (4), a rejected key (2) and something that is not the API
(5) apart, each with its own message; nothing else is sent and no file is left. During a
run (``--no-preflight``), requests that all fail the same way stop it after a handful.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from luigis_async.cli.probe import FAIL_FAST_AFTER
from luigis_async.sandbox import Faults, Sandbox

from .cli_helpers import applied, body, credentials, invoke, line, puts, records, seed, write

TRACKER_NOT_FOUND = json.dumps({"reason": "Tracker not found"})
HTML = "<!DOCTYPE html><html><body><h1>Welcome to our shop</h1></body></html>"


def closed_port() -> int:
    """A local port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def names(directory: Path) -> list[str]:
    """The files in ``directory``."""
    return sorted(path.name for path in directory.iterdir())


def pins(sandbox: Sandbox, tmp_path: Path, count: int = 20) -> Path:
    seed(sandbox, range(1, count + 1))
    return write(tmp_path / "pins.jsonl", [line(n) for n in range(1, count + 1)])


def script_not_found(sandbox: Sandbox) -> None:
    """The API's documented answer for a tracker it does not know."""
    sandbox.respond_next(status=404, body=TRACKER_NOT_FOUND, route="summary")


def script_html(sandbox: Sandbox) -> None:
    """A shop's page (a proxy, a wrong host) answering 200 text/html."""
    sandbox.respond_next(status=200, body=HTML, content_type="text/html", route="summary")


def script_redirect(sandbox: Sandbox) -> None:
    """A login page's redirect."""
    sandbox.respond_next(
        status=302, headers={"Location": "https://sso.example.com/login"}, route="summary"
    )


def script_html_404(sandbox: Sandbox) -> None:
    """A web server's own 404 page: not the API's JSON."""
    sandbox.respond_next(status=404, body=HTML, content_type="text/html", route="summary")


@pytest.mark.parametrize(
    ("script", "env", "code", "message"),
    [
        (script_not_found, {}, 4, "does not know tracker 1234-5678 (404: Tracker not found)"),
        (None, {"LUIGISBOX_TRACKER_ID": "9999-0000"}, 4,
         "does not know tracker 9999-0000 (404: Tracker not found)"),
        (None, {"LUIGISBOX_PRIVATE_KEY": "wrong"}, 2, "the server rejected the credentials"),
        (script_html, {}, 5, "does not answer like the Luigi's Box API"),
        (script_redirect, {}, 5, "redirected to https://sso.example.com/login"),
        (script_html_404, {}, 5, "does not answer like the Luigi's Box API"),
    ],
    ids=["unknown tracker", "wrong tracker ID", "wrong key", "an HTML page", "a redirect",
         "a 404 page"],
)
async def test_each_preflight_outcome_has_its_code_and_message(
    sandbox: Sandbox,
    tmp_path: Path,
    script: object,
    env: dict[str, str],
    code: int,
    message: str,
) -> None:
    """Only the summary request is sent; the exit code and message say what is wrong;
    no failures file and no journal are left."""
    path = pins(sandbox, tmp_path)
    if callable(script):
        script(sandbox)

    result = await invoke(
        ["push", str(path), "--base-url", sandbox.url], credentials(sandbox, **env)
    )

    assert code == result.exit_code, result.output
    assert message in result.output and "Nothing was sent" in result.output
    assert ["summary"] == [r.route for r in sandbox.requests]
    assert ["pins.jsonl"] == names(tmp_path)


async def test_an_unreachable_port_is_exit_3(sandbox: Sandbox, tmp_path: Path) -> None:
    """Nothing listens at the base URL: exit 3, naming it; no file left."""
    path = pins(sandbox, tmp_path)
    url = f"http://127.0.0.1:{closed_port()}"

    result = await invoke(
        ["push", str(path), "--base-url", url, "--max-attempts", "2"], credentials(sandbox)
    )

    assert 3 == result.exit_code, result.output
    assert f"cannot reach the API at {url}" in result.output
    assert "2 attempts" in result.output
    assert ["pins.jsonl"] == names(tmp_path)


@pytest.mark.parametrize("command", ["push", "import", "sync", "export"])
async def test_every_command_checks_first(sandbox: Sandbox, tmp_path: Path, command: str) -> None:
    """push, import, sync and export all stop at an unknown tracker: exit 4, nothing sent."""
    path = pins(sandbox, tmp_path)
    args = {
        "push": [str(path)],
        "import": [str(write(tmp_path / "bodies.jsonl", [json.dumps(body(1))]))],
        "sync": [str(write(tmp_path / "d.jsonl", [json.dumps(body(1))])), "--managed-tag", "t",
                 "--yes"],
        "export": ["-o", str(tmp_path / "out.jsonl")],
    }[command]
    script_not_found(sandbox)

    result = await invoke([command, *args, "--base-url", sandbox.url], credentials(sandbox))

    assert 4 == result.exit_code, result.output
    assert ["summary"] == [r.route for r in sandbox.requests]


async def test_no_preflight_sends_no_summary_request(sandbox: Sandbox, tmp_path: Path) -> None:
    """--no-preflight: the first request is the first line's."""
    path = pins(sandbox, tmp_path, 3)

    result = await invoke(
        ["push", str(path), "--base-url", sandbox.url, "--no-preflight"], credentials(sandbox)
    )

    assert 0 == result.exit_code, result.output
    assert ["update"] * 3 == [r.route for r in sandbox.requests]


@pytest.mark.parametrize(("concurrency", "latency"), [(None, 0.0), (32, 0.01)])
async def test_a_run_where_every_request_finds_no_tracker_stops_early(
    sandbox: Sandbox, tmp_path: Path, concurrency: int | None, latency: float
) -> None:
    """Without the preflight, every PUT answered 404 "Tracker not found": the run stops
    after a handful (not a hundred), exit 4, and every line is in the failures file."""
    sandbox.faults = Faults(latency=1.0, latency_seconds=latency)
    count = 1_000
    path = pins(sandbox, tmp_path, count)
    sandbox.respond_next(count, status=404, body=TRACKER_NOT_FOUND, route="update")
    args = ["--concurrency", str(concurrency)] if concurrency else []

    result = await invoke(
        ["push", str(path), "--base-url", sandbox.url, "--no-preflight", *args],
        credentials(sandbox),
    )

    assert 4 == result.exit_code, result.output
    assert "does not know tracker" in result.output
    sent = len(puts(sandbox))
    assert FAIL_FAST_AFTER <= sent <= FAIL_FAST_AFTER + (concurrency or 8) * 2, sent
    failed = records(tmp_path / "pins.jsonl.failed.jsonl")
    assert list(range(1, count + 1)) == sorted(r["error"]["line"] for r in failed)


async def test_customizations_not_found_do_not_stop_a_run(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """A 404 for a customization (not the tracker) is that line's problem: the run goes on."""
    count = 40
    path = write(tmp_path / "pins.jsonl", [line(n) for n in range(1, count + 1)])
    seed(sandbox, range(1, count + 1, 2))  # the even lines' IDs do not exist

    result = await invoke(["push", str(path), "--base-url", sandbox.url], credentials(sandbox))

    assert 1 == result.exit_code, result.output
    assert set(range(1, count + 1, 2)) == applied(sandbox, range(1, count + 1, 2))
    failed = records(tmp_path / "pins.jsonl.failed.jsonl")
    assert list(range(2, count + 1, 2)) == sorted(r["error"]["line"] for r in failed)

"""What a person sees: the live display on a terminal, warnings, -v and -vv, the help.

The live display runs under a pseudo-terminal (``pty``), as it would in a shell: the
test reads the screen the command draws, mid-run, with faults injected.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import pty
import re
import struct
import sys
import termios
from pathlib import Path

import pytest
from click.testing import CliRunner

from luigis_async.cli.commands import cli
from luigis_async.sandbox import Faults, Sandbox

from .cli_helpers import line, records, seed, subprocess_env, write

#: An ANSI control sequence (colour, cursor movement) as rich draws them.
_CONTROL = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")
#: A frame of the bar with retries and a rate, both above zero.
_FRAME = re.compile(r"push .*[1-9][\d,]* retries, .*[1-9][\d,]* applied/s")


class Terminal:
    """The screen of a pseudo-terminal, read until its program closes it."""

    def __init__(self, master: int) -> None:
        self.master = master
        self.lines: list[str] = []
        self.changed = asyncio.Event()
        self._partial = ""

    async def drain(self) -> None:
        """Read until the program ends (the terminal then reads as an error), keeping the
        text of every line drawn, control codes removed."""
        while True:
            try:
                data = await asyncio.to_thread(os.read, self.master, 65536)
            except OSError:
                data = b""
            text = self._partial + _CONTROL.sub("", data.decode("utf-8", "replace"))
            *done, self._partial = re.split(r"[\r\n]+", text)
            self.lines += [line.strip() for line in done if line.strip()]
            self.changed.set()
            if not data:
                return

    async def frame(self, pattern: re.Pattern[str]) -> str:
        """The first line drawn that matches ``pattern``."""
        async with asyncio.timeout(30):
            while not (found := [line for line in self.lines if pattern.search(line)]):
                self.changed.clear()
                await self.changed.wait()
        return found[0]


@pytest.mark.parametrize(("concurrency", "latency"), [(None, 0.01), (32, 0.02)])
async def test_the_live_display_shows_retries_in_flight_and_the_applied_rate(
    sandbox: Sandbox, tmp_path: Path, concurrency: int | None, latency: float
) -> None:
    """Mid-run under a terminal, with 503s injected, the bar shows applied, failed,
    retries (above zero), in flight, applied/s (above zero) and an ETA."""
    sandbox.faults = Faults(rate_503=0.2, latency=1.0, latency_seconds=latency, seed=3)
    numbers = range(1, 1501)
    seed(sandbox, numbers)
    path = write(tmp_path / "pins.jsonl", [line(n) for n in numbers])
    master, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 160, 0, 0))
    args = ["--concurrency", str(concurrency)] if concurrency else []
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "luigis_async", "push", str(path), "--base-url", sandbox.url,
        "--max-attempts", "10", *args,
        env={**subprocess_env(sandbox), "TERM": "xterm-256color", "COLUMNS": "160"},
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=terminal,
    )
    os.close(terminal)
    screen = Terminal(master)
    drain = asyncio.create_task(screen.drain())
    try:
        frame = await screen.frame(_FRAME)
        await proc.communicate()
        await drain
    finally:
        os.close(master)

    assert 0 == proc.returncode, frame
    assert re.fullmatch(
        r"push \S+ +\d+% [\d.]+/[\d.]+ [kM]B [\d,]+ applied, 0 failed, [\d,]+ retries, "
        r"\d+ in flight, [\d,]+ applied/s, ETA \d+:\d\d:\d\d",
        frame,
    ), frame


async def test_a_line_given_up_is_warned_about_by_its_number(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """A line that fails after its retries is a warning naming the line (the request's path
    once); the library's own warning without the line is not shown."""
    sandbox.faults = Faults(rate_503=0.6, seed=11)
    numbers = range(1, 41)
    seed(sandbox, numbers)
    path = write(tmp_path / "pins.jsonl", [line(n) for n in numbers])
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "luigis_async", "push", str(path), "--base-url", sandbox.url,
        "--max-attempts", "2", "--concurrency", "1", "--no-preflight",
        env=subprocess_env(sandbox), stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await proc.communicate()

    assert 1 == proc.returncode, stderr.decode()
    warnings = [text for text in stderr.decode().splitlines() if " WARNING " in text]
    failed = sorted(r["error"]["line"] for r in records(tmp_path / "pins.jsonl.failed.jsonl"))
    assert failed, "the faults should fail some lines"
    assert failed == sorted(int(re.findall(r"line (\d+): ", text)[0]) for text in warnings)
    assert all(text.count("/scope/") == 1 for text in warnings)
    assert all("(after 2 attempts)" in text for text in warnings)


@pytest.mark.parametrize(
    ("flag", "shown", "hidden"),
    [
        ("-v", ["INFO retrying PUT "], [" DEBUG "]),
        ("-vv", ["INFO retrying PUT ", "DEBUG line 1: applied", "DEBUG PUT "], []),
    ],
)
async def test_v_and_vv_differ(
    sandbox: Sandbox, tmp_path: Path, flag: str, shown: list[str], hidden: list[str]
) -> None:
    """-v adds the library's INFO (each retry); -vv adds DEBUG (every request and line)."""
    sandbox.faults = Faults(rate_503=0.3, seed=2)
    seed(sandbox, range(1, 21))
    path = write(tmp_path / "pins.jsonl", [line(n) for n in range(1, 21)])
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "luigis_async", "push", str(path), "--base-url", sandbox.url,
        "--max-attempts", "10", flag,
        env=subprocess_env(sandbox), stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await proc.communicate()
    text = stderr.decode()

    assert 0 == proc.returncode, text
    assert ([], []) == (
        [wanted for wanted in shown if wanted not in text],
        [unwanted for unwanted in hidden if unwanted in text],
    )


@pytest.mark.parametrize("command", ["push", "import", "sync", "export"])
def test_the_help_shows_the_environment_exit_codes_and_faults(command: str) -> None:
    """Every command's help names the environment variables, says the key is never an
    option, and ends with the exit codes and the --faults grammar."""
    result = CliRunner().invoke(cli, [command, "--help"], terminal_width=100)

    assert 0 == result.exit_code, result.output
    text = " ".join(result.output.split())
    expected = [
        "[env var: LUIGISBOX_TRACKER_ID]",
        "[env var: LUIGISBOX_BASE_URL]",
        "The private key is read only from $LUIGISBOX_PRIVATE_KEY, never from an option",
        "--no-preflight",
        "Exit codes: 0 everything applied",
        "3 the API unreachable",
        "4 the API does not know the tracker ID (404)",
        "5 something else answers at the base URL",
        "latency=P:SECONDS share of requests delayed by SECONDS",
        "-vv: DEBUG",
    ]
    assert [] == [phrase for phrase in expected if phrase not in text]


def test_the_command_list_has_whole_summaries() -> None:
    """``luigis-async --help`` lists each command with its whole one-line summary."""
    result = CliRunner().invoke(cli, ["--help"], terminal_width=100)

    assert 0 == result.exit_code, result.output
    commands = dict(
        re.findall(
            r"^  (\w+) +(.+)$", result.output.split("Commands:")[1].split("\n\n")[0], re.MULTILINE
        )
    )
    assert {"export", "import", "push", "sandbox", "sync"} == set(commands)
    assert [] == [summary for summary in commands.values() if not summary.endswith(".")]

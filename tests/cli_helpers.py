"""Helpers for the command-line tests: files, credentials, running the command."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from luigis_async.cli.commands import cli
from luigis_async.sandbox import Sandbox

ROOT = Path(__file__).parents[1]


def write(path: Path, lines: Sequence[str], *, newline: str = "\n", bom: bool = False) -> Path:
    data = "".join(text + newline for text in lines).encode()
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data)
    return path


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(text) for text in path.read_text(encoding="utf-8").splitlines()]


def credentials(sandbox: Sandbox, **overrides: str | None) -> dict[str, str | None]:
    env: dict[str, str | None] = {
        "LUIGISBOX_TRACKER_ID": sandbox.tracker_id,
        "LUIGISBOX_PRIVATE_KEY": sandbox.private_key,
    }
    return env | overrides


async def invoke(
    args: Sequence[str], env: Mapping[str, str | None], stdin: bytes | None = None
) -> Result:
    """Run the command in a worker thread, so the sandbox keeps serving on this loop."""
    runner = CliRunner()
    return await asyncio.to_thread(runner.invoke, cli, list(args), env=env, input=stdin)


def subprocess_env(sandbox: Sandbox) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LUIGISBOX_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["LUIGISBOX_TRACKER_ID"] = sandbox.tracker_id
    env["LUIGISBOX_PRIVATE_KEY"] = sandbox.private_key
    return env


async def wait_for_stderr(proc: asyncio.subprocess.Process, text: bytes, times: int = 1) -> None:
    """Read the child's stderr until ``text`` has appeared on ``times`` lines."""
    assert proc.stderr is not None
    seen = 0
    async with asyncio.timeout(10):
        while seen < times:
            output = await proc.stderr.readline()
            assert output, f"the command ended before printing {text!r} {times} times"
            seen += text in output

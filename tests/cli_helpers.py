"""Helpers for the command-line tests: files, credentials, running the command."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from click.testing import CliRunner, Result

from luigis_async.cli.commands import cli
from luigis_async.sandbox import Sandbox
from luigis_async.sandbox.demo import PLACEHOLDER
from luigis_async.sandbox.validation import READ_ONLY_FIELDS

ROOT = Path(__file__).parents[1]
MODELS = ("basket", "item_detail_complements", "category_bestsellers")


def cid(n: int) -> str:
    """A fixed customization ID for line ``n``."""
    return str(uuid.UUID(int=n, version=4))


def body(n: int) -> dict[str, Any]:
    """A realistic API body, already in the canonical form the server stores."""
    return {
        "model": MODELS[n % len(MODELS)],
        "target_type": "item",
        "target_identity": f"/p/{n}",
        "pin_definitions": [
            {
                "position": 1,
                "pin_type": "item",
                "pin_identity": f"/p/{n + 1000}",
                "active_from": "2025-02-01T00:00:00Z",
                "active_to": "2025-03-01T00:00:00Z",
            },
            {"position": 2, "pin_type": "criteria", "pin_criteria": {"brand": ["Fender"]}},
        ],
        "tags": ["summer-sale"],
    }


def line(n: int) -> str:
    """The JSON Lines text of update ``n``."""
    return json.dumps({"customization_id": cid(n), "customization": body(n)})


def seed(sandbox: Sandbox, numbers: Iterable[int]) -> None:
    """Placeholders under the IDs a push will update."""
    for n in numbers:
        sandbox.add(PLACEHOLDER, cid(n))


def stored(sandbox: Sandbox, n: int) -> dict[str, Any]:
    """What the sandbox holds for update ``n``, without the read-only fields."""
    return {k: v for k, v in sandbox.store[cid(n)].items() if k not in READ_ONLY_FIELDS}


def applied(sandbox: Sandbox, numbers: Iterable[int]) -> set[int]:
    """The updates among ``numbers`` the store holds."""
    return {n for n in numbers if stored(sandbox, n) == body(n)}


def failed_lines(path: Path) -> list[int]:
    """The line numbers in a failures file (none if there is no file)."""
    return [record["error"]["line"] for record in records(path)] if path.exists() else []


def puts(sandbox: Sandbox) -> list[str]:
    """The paths of the PUTs the sandbox received, one per request."""
    return [r.path for r in sandbox.requests if r.method == "PUT"]


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


async def start(
    sandbox: Sandbox,
    *args: str,
    stdin: int | IO[Any] | None = None,
    env: Mapping[str, str] | None = None,
    preexec_fn: Callable[[], object] | None = None,
    cwd: Path | None = None,
) -> asyncio.subprocess.Process:
    """``python -m luigis_async ARGS --base-url SANDBOX`` as a subprocess, output piped."""
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "luigis_async", *args, "--base-url", sandbox.url,
        env={**subprocess_env(sandbox), **(env or {})},
        stdin=stdin,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=preexec_fn,
        cwd=cwd,
    )


async def wait_for_stderr(proc: asyncio.subprocess.Process, text: bytes, times: int = 1) -> None:
    """Read the child's stderr until ``text`` has appeared on ``times`` lines."""
    assert proc.stderr is not None
    seen = 0
    async with asyncio.timeout(10):
        while seen < times:
            output = await proc.stderr.readline()
            assert output, f"the command ended before printing {text!r} {times} times"
            seen += text in output

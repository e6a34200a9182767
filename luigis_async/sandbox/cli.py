"""Serving a sandbox standalone: ``run`` for any command line, and ``main`` for
``python -m luigis_async.sandbox``.

``run`` is a plain function, so ``luigis-async sandbox`` (click) and the module entry point
(argparse) are two thin front ends over one implementation.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import sys
from collections.abc import Callable, Sequence
from typing import TextIO

from luigis_async.config import ENV_BASE_URL, ENV_PRIVATE_KEY, ENV_TRACKER_ID
from luigis_async.sandbox.faults import Faults
from luigis_async.sandbox.seed import SeedFileError, seed_from_file
from luigis_async.sandbox.server import DEFAULT_TRACKER_ID, Sandbox

__all__ = ["build_parser", "describe", "export_lines", "main", "run", "serve_forever"]

#: The environment variables a ``LuigisBoxClient`` reads (see ``luigis_async.client``).

#: Exit statuses of ``run``.
EXIT_OK, EXIT_CANNOT_SERVE, EXIT_BAD_INPUT = 0, 1, 2


async def serve_forever(
    sandbox: Sandbox,
    *,
    on_ready: Callable[[Sandbox], object] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Run ``sandbox`` until ``stop`` is set or this task is cancelled (e.g. by Ctrl-C).

    ``on_ready`` is called once it is listening, e.g. to print where.
    """
    async with sandbox:
        if on_ready is not None:
            on_ready(sandbox)
        await (stop if stop is not None else asyncio.Event()).wait()


def export_lines(sandbox: Sandbox) -> list[str]:
    """Shell lines that point a ``LuigisBoxClient`` (or ``luigis-async``) at ``sandbox``."""
    return [
        f"export {name}={shlex.quote(value)}"
        for name, value in (
            (ENV_BASE_URL, sandbox.url),
            (ENV_TRACKER_ID, sandbox.tracker_id),
            (ENV_PRIVATE_KEY, sandbox.private_key),
        )
    ]


def describe(sandbox: Sandbox) -> str:
    """What a user needs to use a running sandbox, its key included (it is the sandbox's)."""
    return "\n".join(
        [
            f"Luigi's Box sandbox listening on {sandbox.url}",
            f"  tracker ID:      {sandbox.tracker_id}",
            f"  customizations:  {len(sandbox.store)}",
            f"  faults:          {sandbox.faults.describe()}",
            "Point a client at it (paste into a shell):",
            *(f"  {line}" for line in export_lines(sandbox)),
            "Press Ctrl-C to stop.",
        ]
    )


def run(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    tracker_id: str = DEFAULT_TRACKER_ID,
    private_key: str | None = None,
    max_skew: float = 5.0,
    faults: Faults | None = None,
    seed_file: str | os.PathLike[str] | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Serve a sandbox until Ctrl-C, printing where it listens and how to use it.

    Args:
        private_key: the sandbox's key; a new random one when None.
        faults: fault injection (None: none).
        seed_file: a JSON Lines file of customizations to start with (see ``seed``).
        out, err: where the banner and errors go (stdout and stderr by default).

    Returns:
        0 after Ctrl-C; 1 when it cannot listen (e.g. the port is taken); 2 when the seed
        file cannot be loaded (the message names the line), before listening.
    """
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    sandbox = Sandbox(
        tracker_id=tracker_id,
        private_key=private_key,
        host=host,
        port=port,
        max_skew=max_skew,
        faults=faults,
    )
    try:
        if seed_file is not None:
            seed_from_file(sandbox, seed_file)
    except SeedFileError as exc:
        print(f"error: {exc}", file=err)
        return EXIT_BAD_INPUT
    try:
        asyncio.run(
            serve_forever(sandbox, on_ready=lambda sb: print(describe(sb), file=out, flush=True))
        )
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        print(f"error: cannot serve on {host}:{port}: {exc}", file=err)
        return EXIT_CANNOT_SERVE
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m luigis_async.sandbox",
        description="Serve a local stand-in for the Luigi's Box pin customization API.",
        epilog="Exit status: 0 after Ctrl-C, 1 when it cannot listen, 2 for bad arguments "
        "or a bad seed file.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (%(default)s)")
    parser.add_argument("--port", type=int, default=0, help="port to bind; 0 picks a free one")
    parser.add_argument("--tracker-id", default=DEFAULT_TRACKER_ID, help="tracker ID (%(default)s)")
    parser.add_argument("--private-key", help="private key; a random one when omitted")
    parser.add_argument(
        "--max-skew", type=float, default=5.0, help="allowed Date skew in seconds (%(default)s)"
    )
    parser.add_argument(
        "--faults",
        default="",
        metavar="SPEC",
        help="fault injection, e.g. '429=0.1,503=0.1,drop=0.03,latency=0.05:2.0,seed=7'",
    )
    parser.add_argument(
        "--seed-file",
        metavar="FILE.jsonl",
        help="customizations to start with: one API body, or one push line "
        '({"customization_id": ..., "customization": {...}}), per line',
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The module entry point; a bad argument exits with status 2, like any argparse error."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        faults = Faults.parse(args.faults)
    except ValueError as exc:
        parser.error(str(exc))
    return run(
        host=args.host,
        port=args.port,
        tracker_id=args.tracker_id,
        private_key=args.private_key,
        max_skew=args.max_skew,
        faults=faults,
        seed_file=args.seed_file,
    )

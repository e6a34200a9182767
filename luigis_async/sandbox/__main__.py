"""``python -m luigis_async.sandbox``: run the sandbox standalone, for demos and manual tests.

``serve_forever`` is the reusable part, so a later CLI can offer the same command.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable

from luigis_async.sandbox.faults import Faults
from luigis_async.sandbox.server import Sandbox

__all__ = ["build_parser", "describe", "main", "serve_forever"]


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


def describe(sandbox: Sandbox) -> str:
    """What a user needs to point a client at a running sandbox (the key included)."""
    return "\n".join(
        [
            f"Luigi's Box sandbox listening on {sandbox.url}",
            f"  tracker ID:  {sandbox.tracker_id}",
            f"  private key: {sandbox.private_key}",
            f"  faults:      {sandbox.faults}",
            "Press Ctrl-C to stop.",
        ]
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m luigis_async.sandbox",
        description="Serve a local stand-in for the Luigi's Box pin customization API.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (%(default)s)")
    parser.add_argument("--port", type=int, default=0, help="port to bind; 0 picks a free one")
    parser.add_argument(
        "--faults",
        default="",
        metavar="SPEC",
        help="fault injection, e.g. '429=0.1,503=0.1,drop=0.03,latency=0.05:2.0,seed=7'",
    )
    parser.add_argument("--tracker-id", default="1234-5678", help="tracker ID (%(default)s)")
    parser.add_argument("--private-key", help="private key; generated when omitted")
    parser.add_argument(
        "--max-skew", type=float, default=5.0, help="allowed Date skew in seconds (%(default)s)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Serve until Ctrl-C; a bad argument exits with status 2, like any argparse error."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        faults = Faults.parse(args.faults)
    except ValueError as exc:
        parser.error(str(exc))
    sandbox = Sandbox(
        tracker_id=args.tracker_id,
        private_key=args.private_key,
        host=args.host,
        port=args.port,
        max_skew=args.max_skew,
        faults=faults,
    )
    try:
        asyncio.run(serve_forever(sandbox, on_ready=lambda sb: print(describe(sb), flush=True)))
    except KeyboardInterrupt:
        pass
    except OSError as exc:  # e.g. the port is taken
        print(f"error: cannot serve on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``python -m luigis_async.sandbox``: serve a sandbox standalone (see ``cli.run``)."""

from __future__ import annotations

import sys

from luigis_async.sandbox.cli import build_parser, describe, main, run, serve_forever

__all__ = ["build_parser", "describe", "main", "run", "serve_forever"]

if __name__ == "__main__":
    sys.exit(main())

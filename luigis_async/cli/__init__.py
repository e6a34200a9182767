"""The ``luigis-async`` command line (the optional ``cli`` extra: click and rich).

This module imports neither, so the entry point can say what to install when they are
missing instead of failing with a traceback; the library never imports this package.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["main"]

#: The extra's distributions, by the module name an ImportError reports.
_EXTRA = frozenset({"click", "rich"})


def main(argv: Sequence[str] | None = None) -> None:
    """Run the command line; exits with the command's status (2 without the extra)."""
    try:
        from .commands import cli
    except ModuleNotFoundError as exc:
        if (exc.name or "").partition(".")[0] not in _EXTRA:
            raise
        print(
            f"luigis-async: the command line needs {exc.name}, which is not installed; "
            "install luigis-async[cli]: pip install 'luigis-async[cli]'",
            file=sys.stderr,
        )
        raise SystemExit(2) from None
    cli.main(args=list(argv) if argv is not None else None, prog_name="luigis-async")

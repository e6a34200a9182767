"""How a job ends, for every command alike: exit codes, failure reasons, the summary table.

Signals (Ctrl-C, SIGTERM, SIGHUP) are in ``signals.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from ..batch import UpdateResult
from ..errors import APIError, LuigisBoxError

__all__ = [
    "CANCELLED_IN_FLIGHT",
    "EXIT_AUTH",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "INTERRUPTED",
    "failure_group",
    "failure_reason",
    "format_rows",
]

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
#: Usage and credential errors, a key the server rejects included.
EXIT_AUTH: Final = 2
#: 128 + SIGINT, as a shell reports a process stopped by Ctrl-C (SIGTERM: 143).
EXIT_INTERRUPTED: Final = 130

#: Why a job stopped on Ctrl-C, and what became of a request cancelled by a second one.
INTERRUPTED: Final = "interrupted"
CANCELLED_IN_FLIGHT: Final = "cancelled in flight: may or may not have been applied"


def failure_group(error: LuigisBoxError) -> str:
    """A summary group for a failure: the status and error class, e.g. ``422 Unpro...``."""
    if isinstance(error, APIError):
        return f"{error.status} {type(error).__name__}"
    return type(error).__name__


def failure_reason(result: UpdateResult) -> str:
    """The error of a failed result, and how many attempts it took."""
    assert result.error is not None
    after = f" (after {result.attempts} attempts)" if result.attempts > 1 else ""
    return f"{result.error}{after}"


def format_rows(rows: Sequence[tuple[str, str, str]]) -> str:
    """``(label, number, note)`` rows as a table: labels aligned, numbers right-aligned."""
    label_width = max(len(label) for label, _, _ in rows) + 1
    number_width = max(len(number) for _, number, _ in rows)
    return "\n".join(
        f"{label + ':':<{label_width}} {number:>{number_width}} {note}".rstrip()
        for label, number, note in rows
    )

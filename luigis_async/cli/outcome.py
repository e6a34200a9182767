"""How a job ends, for every command alike: exit codes, failure reasons, the summary table.

Signals (Ctrl-C, SIGTERM, SIGHUP) are in ``signals.py``; what a failed request says
about the target as a whole (exit codes 2 to 5) is in ``probe.py``.
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
    "EXIT_NOT_API",
    "EXIT_NO_TRACKER",
    "EXIT_OK",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "INTERRUPTED",
    "failure_group",
    "failure_reason",
    "format_rows",
]

EXIT_OK: Final = 0
#: Some lines (or writes) not applied, or a file that could not be written to its end.
EXIT_FAILED: Final = 1
#: Usage errors, missing credentials, a key the server rejects, an unusable output file.
EXIT_USAGE: Final = 2
EXIT_AUTH: Final = EXIT_USAGE
#: No answer from the base URL (refused, DNS, timeout), or the API failing (5xx, 429).
EXIT_UNREACHABLE: Final = 3
#: The API answers 404 for the tracker: a wrong tracker ID (or a base URL of another API).
EXIT_NO_TRACKER: Final = 4
#: Something answers at the base URL, but not the API: an HTML page, a redirect.
EXIT_NOT_API: Final = 5
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
    """``(label, number, note)`` rows as a table: labels aligned, numbers right-aligned.

    A row with an empty label (say, a failure group under ``failed``) puts its number in
    the number column and its text after it, so a long reason never pushes the numbers
    to the right.
    """
    label_width = max(len(label) for label, _, _ in rows) + 1
    number_width = max(len(number) for _, number, _ in rows)
    return "\n".join(
        f"{label + ':' if label else '':<{label_width}} {number:>{number_width}} {note}".rstrip()
        for label, number, note in rows
    )

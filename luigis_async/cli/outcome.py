"""How a job ends, for every command alike: exit codes, failure reasons, the summary
table, and Ctrl-C turned into a graceful stop.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
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
    "on_sigint",
]

log = logging.getLogger("luigis_async.cli")

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
#: Usage and credential errors, a key the server rejects included.
EXIT_AUTH: Final = 2
#: 128 + SIGINT, as a shell reports a process stopped by Ctrl-C.
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


@contextmanager
def on_sigint(callback: Callable[[], None]) -> Iterator[None]:
    """Call ``callback`` on Ctrl-C instead of raising KeyboardInterrupt, where possible.

    Signal handlers exist only in the main thread on Unix; elsewhere Ctrl-C keeps its
    default behaviour.
    """
    loop = asyncio.get_running_loop()
    try:
        loop.add_signal_handler(signal.SIGINT, callback)
    except (NotImplementedError, RuntimeError, ValueError) as exc:
        log.debug("Ctrl-C handling unavailable here: %s", exc)
        yield
        return
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGINT)

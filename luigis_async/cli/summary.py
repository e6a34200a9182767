"""What a job counts, and the summary table it prints at its end.

``JobSummary`` holds what every job counts (failures by group, not attempted, retries,
why it stopped, what its files hold) and decides the exit code; ``LinesSummary`` adds a
push's or an import's lines (a sync's writes are ``sync.SyncSummary``).
"""

from __future__ import annotations

import abc
from collections import Counter
from pathlib import Path

import attrs

from .outcome import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, format_rows
from .probe import Diagnosis
from .signals import exit_status

__all__ = ["JobSummary", "LinesSummary"]


@attrs.define
class JobSummary(abc.ABC):
    """The totals every job keeps; ``failed`` counts by reason group."""

    failed: Counter[str] = attrs.Factory(Counter)
    not_attempted: int = 0
    retries: int = 0
    elapsed: float = 0.0
    stop_reason: str | None = None
    interrupted: bool = False
    #: What the failed requests say about the target (a rejected key, no such tracker).
    diagnosis: Diagnosis | None = None
    failures_path: Path | None = None
    failures_written: int = 0
    #: The first signal received (SIGINT, SIGTERM, SIGHUP), which sets the exit status.
    signal_number: int | None = None
    #: Why the failures file could not be written, and how many records it is missing.
    failures_error: str | None = None
    failures_unwritten: int = 0
    journal_path: Path | None = None
    #: Why the journal could not be written (it stays correct, if incomplete).
    journal_error: str | None = None
    #: Why the input could not be read to its end.
    input_error: str | None = None

    @property
    def failed_total(self) -> int:
        return sum(self.failed.values())

    @property
    def finished(self) -> bool:
        """True when the run got to its end and wrote everything: no journal is needed."""
        errors = (self.failures_error, self.journal_error, self.input_error, self.stop_reason)
        return not self.interrupted and all(error is None for error in errors)

    @property
    @abc.abstractmethod
    def applied_total(self) -> int:
        """Actions applied by this run."""

    @property
    @abc.abstractmethod
    def complete(self) -> bool:
        """True when everything the job had to do was applied."""

    @abc.abstractmethod
    def format(self) -> str:
        """The human summary printed at the end of the run, numbers right-aligned."""

    @property
    def exit_code(self) -> int:
        """128 + the signal (130 Ctrl-C, 143 SIGTERM); the diagnosis's code (2 a rejected
        key, 3 to 5, see ``probe``); 1 anything not applied (or not written); else 0."""
        if self.interrupted:
            return exit_status(self.signal_number) if self.signal_number else EXIT_INTERRUPTED
        if self.diagnosis is not None:
            return self.diagnosis.exit_code
        return EXIT_OK if self.complete and self.finished else EXIT_FAILED

    def table(
        self, head: list[tuple[str, str, str]], *, written: str, sent: bool = True
    ) -> str:
        """The summary printed at the end: ``head``, failures by group, then how it went.

        The failures file holds ``written``. A job that ``sent`` nothing has no "not
        attempted" and no "retries"; its rate counts lines checked, not applied.
        """
        by_count = sorted(self.failed.items(), key=lambda item: (-item[1], item[0]))
        rows = head + [("", f"{count:,}", reason) for reason, count in by_count]
        if sent:
            stopped = f"({self.stop_reason})" if self.stop_reason else ""
            rows += [
                ("not attempted", f"{self.not_attempted:,}", stopped),
                ("retries", f"{self.retries:,}", ""),
            ]
        done, per = (self.applied_total, "applied/s") if sent else (
            self.applied_total + self.failed_total, "lines/s"
        )
        rate = done / self.elapsed if self.elapsed > 0 else 0.0
        rows += [("elapsed", f"{self.elapsed:.2f}", "s"), ("rate", f"{rate:,.0f}", per)]
        if self.failures_written:
            rows.append(
                ("failures", f"{self.failures_written:,}", f"{written} in {self.failures_path}")
            )
        return format_rows(rows)


@attrs.define
class LinesSummary(JobSummary):
    """The totals of one push or import (or dry run); ``failed`` counts lines by group."""

    applied: int = 0
    #: Lines an earlier run applied, per the journal: not sent again (``--resume``).
    skipped: int = 0
    dry_run: bool = False

    @property
    def lines(self) -> int:
        """Non-blank lines accounted for."""
        return self.applied + self.skipped + self.failed_total + self.not_attempted

    @property
    def applied_total(self) -> int:
        return self.applied

    @property
    def complete(self) -> bool:
        return self.lines == self.applied + self.skipped

    def format(self) -> str:
        applied, failed = ("valid", "invalid") if self.dry_run else ("applied", "failed")
        head = [(applied, f"{self.applied:,}", "")]
        if self.skipped:
            head.append(("skipped", f"{self.skipped:,}", "applied by an earlier run (journal)"))
        head.append((failed, f"{self.failed_total:,}", ""))
        return self.table(head, written="lines", sent=not self.dry_run)

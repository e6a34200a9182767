"""How a writing command ends: the summary on stdout, then why it stopped and what next.

The summary comes first (even after a stop, it says what was done); then, on stderr, one
line that says what stopped the run, where what was not applied went, and the command
that finishes the job (``--resume``) or retries the failures; then the exit code.
"""

from __future__ import annotations

from typing import NoReturn

import attrs
import click

from .probe import target_error
from .signals import signal_name
from .summary import JobSummary

__all__ = ["Advice", "finish"]


@attrs.frozen
class Advice:
    """What to run next: ``again`` finishes the job (from its journal), ``retry`` is the
    whole advice when lines failed."""

    again: str
    retry: str


def finish(ctx: click.Context, summary: JobSummary, advice: Advice, *, quiet: bool) -> NoReturn:
    """Print the summary, then what stopped the run and how to go on; exit."""
    if not quiet:
        click.echo(summary.format())
    diagnosis = summary.diagnosis
    if diagnosis is not None:
        raise target_error(diagnosis.message, diagnosis.exit_code)
    for message in what_next(summary, advice, quiet=quiet):
        click.echo(message, err=True)
    ctx.exit(summary.exit_code)


def what_next(summary: JobSummary, advice: Advice, *, quiet: bool) -> list[str]:
    """Why the run did not finish, and what to run next."""
    journal = summary.journal_path
    resume = f"; to finish the job: {advice.again}" if journal is not None else ""
    failures = summary.failures_path
    if summary.failures_error is not None:
        kept = f"the journal {journal} records every line applied" if journal else "no journal"
        return [
            f"could not write the failures file {failures}: {summary.failures_error} "
            f"({summary.failures_unwritten:,} records missing from it); {kept}{resume}"
        ]
    if summary.journal_error is not None:
        return [f"could not write the journal {journal}: {summary.journal_error}{resume}"]
    if summary.interrupted:
        by = f" ({signal_name(summary.signal_number)})" if summary.signal_number else ""
        where = (
            f"what was not applied is in {failures}"
            if summary.failures_written
            else "everything read was applied"
        )
        return [f"interrupted{by}: {where}{resume}"]
    if summary.input_error is not None:
        return [f"could not read the whole input: {summary.input_error}{resume}"]
    if summary.stop_reason is not None and journal is not None:
        return [f"stopped ({summary.stop_reason}): the journal {journal} is kept{resume}"]
    if summary.failures_written and not quiet:
        return [advice.retry]
    return []

"""How a sync plan looks: the counts, then the first changes with their field diffs.

Plain text when stdout is not a terminal (a log, a pipe, a CI job); on a terminal the same
lines, coloured by kind, through rich.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from typing import Final

import attrs
import click
from rich.console import Console
from rich.text import Text

from ..models import Customization, NaturalKey, natural_key
from ..reconcile import SyncPlan
from .outcome import format_rows

__all__ = ["PREVIEW", "Row", "describe_key", "plan_rows", "print_plan"]

#: How many changes the plan shows unless ``-v`` asks for all of them.
PREVIEW: Final = 20


@attrs.frozen
class Row:
    """One line of the plan and its rich style ("" for none)."""

    text: str
    style: str = ""


def describe_key(key: NaturalKey) -> str:
    """``basket item /p/1``, ``basket all``, ``bestsellers criteria {"brand":["Fender"]}``."""
    return " ".join(part for part in key if part)


def _target(customization: Customization) -> str:
    return describe_key(natural_key(customization))


def _counts(plan: SyncPlan) -> list[Row]:
    not_pruning = "" if plan.prune else (
        f"(no --prune: {len(plan.not_desired):,} no longer desired are kept)"
        if plan.not_desired
        else "(no --prune: nothing is deleted)"
    )
    kept = "kept (--prune deletes them)" if plan.duplicates and not plan.prune else ""
    table = format_rows(
        [
            ("create", f"{len(plan.create):,}", ""),
            ("update", f"{len(plan.update):,}", ""),
            ("delete", f"{len(plan.delete):,}", not_pruning),
            ("unchanged", f"{len(plan.unchanged):,}", ""),
            ("duplicates", f"{len(plan.duplicates):,}", kept),
        ]
    )
    title = Row(f"plan for managed tag {plan.managed_tag}", "bold")
    return [title, *(Row(f"  {line}") for line in table.splitlines())]


def _changes(plan: SyncPlan) -> Iterator[list[Row]]:
    """Each change with its diff lines: deletes, updates, then creates.

    The riskiest first, so a preview cut short never hides a delete behind the creates.
    """
    duplicates = {stored.id for stored in plan.duplicates}
    for stored in plan.delete:
        note = " (duplicate)" if stored.id in duplicates else ""
        yield [Row(f"- delete  {stored.id} {_target(stored)}{note}", "red")]
    for update in plan.update:
        yield [
            Row(f"~ update  {update.customization_id} {_target(update.desired)}", "yellow"),
            *(Row(f"    {change}", "dim") for change in update.changes),
        ]
    for customization in plan.create:
        yield [Row(f"+ create  {_target(customization)}", "green")]


def plan_rows(plan: SyncPlan, limit: int | None = PREVIEW) -> list[Row]:
    """The plan as rows: counts, a blank line, then at most ``limit`` changes (None: all)."""
    rows = [*_counts(plan), Row("")]
    if plan.is_empty:
        return [*rows, Row("no changes: the managed customizations already match")]
    total = len(plan.create) + len(plan.update) + len(plan.delete)
    for shown, change in enumerate(_changes(plan)):
        if limit is not None and shown == limit:
            rows.append(Row(f"... and {total - shown:,} more changes (-v shows them all)", "dim"))
            break
        rows += change
    return rows


def print_plan(rows: Sequence[Row], console: Console | None = None) -> None:
    """Print to stdout: through rich on a terminal (or the ``console`` given), else plain."""
    if console is None and sys.stdout.isatty():
        console = Console(highlight=False)
    if console is None:
        click.echo("\n".join(row.text for row in rows))
        return
    for row in rows:
        console.print(Text(row.text, style=row.style), soft_wrap=True)

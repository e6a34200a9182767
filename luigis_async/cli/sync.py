"""The sync job: a desired set in JSON Lines, one plan, its writes, every failure on record.

The desired file is read whole (a plan needs the whole set) and refused if any line is
invalid or repeats another line's natural key: a plan from part of the desired set would
prune good customizations. A map from natural key to line ties each planned create and
update back to its line, so a failure is written as that line plus ``"error": {"line": N,
"reason": ...}``; a delete has no line and is written as ``{"delete": "<id>", "target":
..., "error": {"reason": ...}}``.

Apply runs creates, then updates, then deletes, as ``luigis_async.sync.apply_sync`` does,
but as the phases of a ``Job`` (``job.py``), because ``apply_sync`` has no way to be
stopped from outside: a signal stops the running phase and no later one starts. Either way
every planned action that did not end applied is written to the failures file.

The journal of a sync records each write applied (``a create:12``, ``a delete:<id>``), so
what a killed run did is known; no ``--resume`` is needed, because every run plans from
what the server holds: after a kill, the same sync again is the resume.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any, Final, Literal

import attrs

from ..batch import DEFAULT_CONCURRENCY, BatchItem
from ..client import LuigisBoxClient
from ..convert import converter
from ..errors import LuigisBoxError
from ..jsonl import FailuresFile, Line, ParsedBody
from ..models import Customization, DeleteRequest, PinDefinition
from ..sandbox import Sandbox
from ..sync import NaturalKey, SyncPlan, natural_key
from .job import Job, JobSummary
from .journal import Journal
from .outcome import failure_group
from .plan import describe_key
from .progress import Tracker
from .signals import Signals

__all__ = [
    "KINDS",
    "Action",
    "Desired",
    "SyncSummary",
    "actions",
    "apply",
    "read_desired",
    "seed_demo",
]

Kind = Literal["create", "update", "delete"]
KINDS: Final[tuple[Kind, ...]] = ("create", "update", "delete")
_DONE: Final = {"create": "created", "update": "updated", "delete": "deleted"}
#: How many problems of a refused desired set are quoted on the terminal.
SHOWN_PROBLEMS: Final = 5


@attrs.define
class Desired:
    """A desired set as read: the valid customizations, the line of each, the problems."""

    customizations: list[Customization] = attrs.Factory(list)
    lines: dict[NaturalKey, Line] = attrs.Factory(dict)
    #: Lines refused: invalid, or repeating an earlier line's key. Any refuses the set.
    refused: int = 0
    #: The first few refusals, ``line N: reason``, to show on the terminal.
    problems: list[str] = attrs.Factory(list)

    @property
    def lines_read(self) -> int:
        """Non-blank lines read, valid or not."""
        return len(self.customizations) + self.refused

    def refuse(self, line: Line, reason: str, failures: FailuresFile) -> None:
        self.refused += 1
        failures.write(line, reason)
        if len(self.problems) < SHOWN_PROBLEMS:
            self.problems.append(f"line {line.number}: {reason}")

    def add(self, item: ParsedBody, failures: FailuresFile) -> None:
        """Take one line: its customization, or a refusal (invalid, or a repeated key)."""
        if item.customization is None:
            assert item.error is not None
            self.refuse(item.line, item.error.reason, failures)
            return
        key = natural_key(item.customization)
        first = self.lines.get(key)
        if first is not None:
            reason = f"duplicate key: line {first.number} has the same ({describe_key(key)})"
            self.refuse(item.line, reason, failures)
            return
        self.lines[key] = item.line
        self.customizations.append(item.customization)


def read_desired(parsed: Iterable[ParsedBody], failures: FailuresFile) -> Desired:
    """Every line read; invalid and repeated-key lines go to ``failures``."""
    desired = Desired()
    for item in parsed:
        desired.add(item, failures)
    return desired


@attrs.frozen
class Action:
    """One planned write, and where to report it: its desired line (none for a delete)."""

    kind: Kind
    item: BatchItem
    target: str
    line: Line | None = None

    def __str__(self) -> str:
        return f"{self.kind} {self.target}"


def actions(plan: SyncPlan, lines: dict[NaturalKey, Line]) -> list[list[Action]]:
    """The plan's writes as ``SyncPlan.phases()`` orders them, each with its desired line."""
    deleted = {stored.id: stored for stored in plan.delete}

    def action(kind: Kind, item: BatchItem) -> Action:
        if isinstance(item, DeleteRequest):
            key = natural_key(deleted[item.customization_id])
            return Action(kind, item, describe_key(key))
        key = natural_key(item.customization)
        return Action(kind, item, describe_key(key), lines[key])

    return [
        [action(kind, item) for item in items]
        for kind, items in zip(KINDS, plan.phases(), strict=True)
    ]


@attrs.define
class SyncSummary(JobSummary):
    """The totals of one apply, per kind of write.

    ``failed`` counts by kind and reason group, e.g. ``update 422 UnprocessableEntityError``.
    """

    planned: Counter[str] = attrs.Factory(Counter)
    applied: Counter[str] = attrs.Factory(Counter)

    @property
    def done(self) -> int:
        """Planned actions accounted for."""
        return sum(self.applied.values()) + self.failed_total + self.not_attempted

    @property
    def complete(self) -> bool:
        return self.applied == self.planned

    def format(self) -> str:
        head = [
            (_DONE[kind], f"{self.applied[kind]:,}", f"of {self.planned[kind]:,}")
            for kind in KINDS
        ]
        head.append(("failed", f"{self.failed_total:,}", ""))
        return self.table(head, done=self.done, per="writes", written="records")


class _Apply(Job[Action, SyncSummary]):
    """One apply: a phase per kind of write; a failed delete is written as a record."""

    def applied(self, action: Action) -> None:
        self.summary.applied[action.kind] += 1

    def group(self, action: Action, error: LuigisBoxError) -> str:
        return f"{action.kind} {failure_group(error)}"

    def write(self, action: Action, reason: str) -> None:
        item = action.item
        if isinstance(item, DeleteRequest):
            self.failures.write_record(
                {
                    "delete": str(item.customization_id),
                    "target": action.target,
                    "error": {"reason": reason},
                }
            )
            return
        assert action.line is not None
        self.failures.write(action.line, f"{action.kind}: {reason}", checked=True)

    def key(self, action: Action) -> str:
        item = action.item
        if isinstance(item, DeleteRequest):
            return f"delete:{item.customization_id}"
        assert action.line is not None
        return f"{action.kind}:{action.line.number}"

    def show(self) -> None:
        s = self.summary
        self.tracker.update(
            s.done, applied=sum(s.applied.values()), failed=s.failed_total + s.not_attempted
        )


async def apply(
    client: LuigisBoxClient,
    plan: SyncPlan,
    lines: dict[NaturalKey, Line],
    failures: FailuresFile,
    tracker: Tracker,
    *,
    journal: Journal | None = None,
    signals: Signals | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    rate: float | None = None,
) -> SyncSummary:
    """Apply every planned write; record every one not applied against its line."""
    phases = actions(plan, lines)
    planned: Counter[str] = Counter(action.kind for phase in phases for action in phase)
    summary = SyncSummary(planned=planned, failures_path=failures.path)
    if journal is not None:
        journal.mark({"plan": dict(planned)})
    job = _Apply(
        client, phases, summary, failures, tracker,
        concurrency=concurrency, rate=rate, journal=journal, signals=signals,
    )
    return await job.run()


#: Products no demo desired set uses: the demo's are /p/10000 to /p/99999.
_OTHER_PINS: Final = (PinDefinition(position=1, pin_type="item", pin_identity="/p/9996"),)
_RETIRED: Final = Customization(
    "basket", "item", target_identity="/p/9999", pin_definitions=_OTHER_PINS, tags=("christmas",)
)
_HAND_MADE: Final = (
    Customization(
        "item_detail_complements",
        "item",
        target_identity="/p/9998",
        pin_definitions=_OTHER_PINS,
        tags=("manual",),
    ),
    Customization(
        "category_bestsellers",
        "criteria",
        target_criteria={"category": ["Drums"]},
        pin_definitions=[
            PinDefinition(position=1, pin_type="criteria", pin_criteria={"brand": ["Roland"]})
        ],
        tags=("merchandising",),
    ),
)


def seed_demo(sandbox: Sandbox, desired: Sequence[Customization], managed_tag: str) -> None:
    """Give a demo plan every kind of change.

    Managed copies of the first desired customizations, two with other bodies (updates)
    and one equal (unchanged); one managed customization no longer desired (a delete with
    ``--prune``); and two made by hand, without the tag, that sync never touches.
    """

    def add(customization: Customization) -> None:
        sandbox.add(converter.unstructure(customization, Customization))

    def managed(customization: Customization, **changes: Any) -> Customization:
        tags = tuple(tag for tag in customization.tags if tag != managed_tag)
        return attrs.evolve(customization, **{"tags": (*tags, managed_tag), **changes})

    edits: list[dict[str, Any]] = [
        {"pin_definitions": _OTHER_PINS},
        {"tags": (managed_tag, "clearance")},
        {},
    ]
    for customization, changes in zip(desired, edits, strict=False):
        add(managed(customization, **changes))
    add(managed(_RETIRED))
    for customization in _HAND_MADE:
        add(customization)

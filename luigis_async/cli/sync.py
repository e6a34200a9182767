"""The sync job: a desired set in JSON Lines, one plan, its writes, every failure on record.

The desired file is read whole (a plan needs the whole set) and refused if any line is
invalid or repeats another line's natural key: a plan from part of the desired set would
prune good customizations. A map from natural key to line ties each planned create and
update back to its line, so a failure is written as that line plus ``"error": {"line": N,
"reason": ...}``; a delete has no line and is written as ``{"delete": "<id>", "target":
..., "error": {"reason": ...}}``.

The writes are applied by the library's ``SyncApplier`` (creates, then updates, then
deletes; the creates through the bulk endpoint with ``--bulk``), whose hooks tell the job
what it takes and what it finishes; the job writes the journal and the failures file,
and a signal stops the applier (no later phase starts) or, the second time, cancels it.

The journal of a sync records each write applied (``a create:12``, ``a delete:<id>``), so
what a killed run did is known; no ``--resume`` is needed, because every run plans from
what the server holds: after a kill, the same sync again is the resume.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable
from typing import Final, Literal

import attrs

from ..batch import BatchItem, UpdateResult
from ..client import LuigisBoxClient
from ..errors import LuigisBoxError
from ..jsonl import FailuresFile, Line, ParsedBody
from ..models import (
    CreateRequest,
    Customization,
    CustomizationUpdate,
    DeleteRequest,
    NaturalKey,
    natural_key,
)
from ..reconcile import SyncApplier, SyncPlan
from .job import Job
from .journal import Journal
from .outcome import failure_group
from .plan import describe_key
from .probe import Where
from .progress import Tracker
from .signals import Signals
from .summary import JobSummary

__all__ = ["KINDS", "Action", "Desired", "SyncJob", "SyncSummary", "actions", "read_desired"]

Kind = Literal["create", "update", "delete"]
KINDS: Final[tuple[Kind, ...]] = ("create", "update", "delete")
_DONE: Final = {"create": "created", "update": "updated", "delete": "deleted"}
#: Which phase an item belongs to, by its type.
_PHASE: Final = {CreateRequest: 0, CustomizationUpdate: 1, DeleteRequest: 2}
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
        customization = item.customization
        if customization is None:
            assert item.error is not None
            self.refuse(item.line, item.error.reason, failures)
            return
        key = natural_key(customization)
        first = self.lines.get(key)
        if first is not None:
            reason = f"duplicate key: line {first.number} has the same ({describe_key(key)})"
            self.refuse(item.line, reason, failures)
            return
        self.lines[key] = item.line
        self.customizations.append(customization)


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
        where = f"line {self.line.number}: " if self.line is not None else ""
        return f"{where}{self.kind} {self.target}"


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
    def applied_total(self) -> int:
        return sum(self.applied.values())

    @property
    def done(self) -> int:
        """Planned actions accounted for."""
        return self.applied_total + self.failed_total + self.not_attempted

    @property
    def complete(self) -> bool:
        return self.applied == self.planned

    def format(self) -> str:
        head = [
            (_DONE[kind], f"{self.applied[kind]:,}", f"of {self.planned[kind]:,}")
            for kind in KINDS
        ]
        head.append(("failed", f"{self.failed_total:,}", ""))
        return self.table(head, written="records")


class SyncJob(Job[Action, SyncSummary]):
    """One apply: the plan through a ``SyncApplier`` (``bulk``: the creates through the
    bulk endpoint); a failed delete is written as a record."""

    def __init__(
        self,
        client: LuigisBoxClient,
        plan: SyncPlan,
        lines: dict[NaturalKey, Line],
        failures: FailuresFile,
        tracker: Tracker,
        *,
        bulk: bool = False,
        concurrency: int | None = None,
        rate: float | None = None,
        journal: Journal | None = None,
        signals: Signals | None = None,
    ) -> None:
        self.plan = plan
        self.phases: list[list[Action]] = actions(plan, lines)
        planned: Counter[str] = Counter(action.kind for phase in self.phases for action in phase)
        summary = SyncSummary(planned=planned, failures_path=failures.path)
        where = Where.of(client)
        super().__init__(summary, failures, tracker, where, journal=journal, signals=signals)
        self.applier: SyncApplier = SyncApplier(
            client, bulk=bulk, concurrency=concurrency, rate_limit=rate,
            on_result=self.finished, on_taken=self.taken,
        )
        self.seen: set[Hashable] = set()  # the writes taken by the applier, or answered
        if journal is not None:
            journal.mark({"plan": dict(planned)})

    def key_of(self, result: UpdateResult) -> tuple[int, int]:
        return _PHASE[type(result.item)], result.index

    def untaken(self, result: UpdateResult) -> Action:
        phase, index = self.key_of(result)
        return self.phases[phase][index]

    def taken(self, item: BatchItem, index: int) -> None:
        """``SyncApplier``'s ``on_taken``: the item is about to be sent."""
        phase = _PHASE[type(item)]
        self.seen.add((phase, index))
        self.take((phase, index), self.phases[phase][index])

    async def drive(self) -> None:
        async for result in self.applier.stream(self.plan):
            self.seen.add(self.key_of(result))
            self.record(result)

    def stop_runner(self, reason: str) -> None:
        self.applier.stop(reason)

    def runner_stop_reason(self) -> str | None:
        return self.applier.stop_reason

    def requests_in_flight(self) -> int:
        requests = self.applier.requests_in_flight
        return len(self.in_flight) if requests is None else requests

    async def account_unsent(self, reason: str) -> None:
        """After a cancellation: the planned writes the applier never took."""
        for phase, phase_actions in enumerate(self.phases):
            for index, action in enumerate(phase_actions):
                if (phase, index) not in self.seen:
                    self.summary.not_attempted += 1
                    self.write(action, reason)
        self.seen.clear()

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

    def done(self) -> int:
        return self.summary.done

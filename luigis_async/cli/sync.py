"""The sync job: a desired set in JSON Lines, one plan, its writes, every failure on record.

The desired file is read whole (a plan needs the whole set) and refused if any line is
invalid or repeats another line's natural key: a plan from part of the desired set would
prune good customizations. A map from natural key to line ties each planned create and
update back to its line, so a failure is written as that line plus ``"error": {"line": N,
"reason": ...}``; a delete has no line and is written as ``{"delete": "<id>", "target":
..., "error": {"reason": ...}}``.

Apply runs creates, then updates, then deletes, as ``luigis_async.sync.apply_sync`` does,
but with ``BatchUpdater`` objects held here, because ``apply_sync`` has no way to be
stopped from outside. Ctrl-C once: the running phase stops, its requests in flight finish,
the rest is not attempted. Twice: those in flight are cancelled too. Either way every
planned action that did not end applied is written to the failures file.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, deque
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final, Literal

import attrs

from ..batch import DEFAULT_CONCURRENCY, BatchItem, BatchUpdater, UpdateResult
from ..client import LuigisBoxClient
from ..convert import converter
from ..errors import AuthenticationError
from ..jsonl import FailuresFile, Line, ParsedBody
from ..models import (
    CreateRequest,
    Customization,
    CustomizationUpdate,
    DeleteRequest,
    PinDefinition,
)
from ..sandbox import Sandbox
from ..sync import NaturalKey, SyncPlan, natural_key
from .outcome import (
    CANCELLED_IN_FLIGHT,
    EXIT_AUTH,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    INTERRUPTED,
    failure_group,
    failure_reason,
    format_rows,
    on_sigint,
)
from .plan import describe_key
from .progress import Tracker

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

log = logging.getLogger("luigis_async.cli")

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


def read_desired(parsed: Iterable[ParsedBody], failures: FailuresFile) -> Desired:
    """Every line read; invalid and repeated-key lines go to ``failures``."""
    desired = Desired()
    for item in parsed:
        if item.error is not None:
            desired.refuse(item.line, item.error.reason, failures)
            continue
        assert item.customization is not None
        key = natural_key(item.customization)
        first = desired.lines.get(key)
        if first is not None:
            reason = f"duplicate key: line {first.number} has the same ({describe_key(key)})"
            desired.refuse(item.line, reason, failures)
            continue
        desired.lines[key] = item.line
        desired.customizations.append(item.customization)
    return desired


@attrs.frozen
class Action:
    """One planned write, and where to report it: its desired line (none for a delete)."""

    kind: Kind
    item: BatchItem
    target: str
    line: Line | None = None


def actions(plan: SyncPlan, lines: dict[NaturalKey, Line]) -> list[list[Action]]:
    """The plan's writes, one list per phase, in the order ``apply_sync`` runs them."""

    def from_line(kind: Kind, item: BatchItem, customization: Customization) -> Action:
        key = natural_key(customization)
        return Action(kind, item, describe_key(key), lines[key])

    return [
        [from_line("create", CreateRequest(c), c) for c in plan.create],
        [
            from_line("update", CustomizationUpdate(u.customization_id, u.desired), u.desired)
            for u in plan.update
        ],
        [
            Action("delete", DeleteRequest(s.id), describe_key(natural_key(s)))
            for s in plan.delete
            if s.id is not None
        ],
    ]


@attrs.define
class SyncSummary:
    """The totals of one apply, per kind of write."""

    planned: Counter[str] = attrs.Factory(Counter)
    applied: Counter[str] = attrs.Factory(Counter)
    #: Failures by kind and reason group, e.g. ``update 422 UnprocessableEntityError``.
    failed: Counter[str] = attrs.Factory(Counter)
    not_attempted: int = 0
    retries: int = 0
    elapsed: float = 0.0
    stop_reason: str | None = None
    interrupted: bool = False
    #: The server's reason when it rejected the credentials (401).
    auth_error: str | None = None
    failures_path: Path | None = None
    failures_written: int = 0

    @property
    def failed_total(self) -> int:
        return sum(self.failed.values())

    @property
    def done(self) -> int:
        """Planned actions accounted for."""
        return sum(self.applied.values()) + self.failed_total + self.not_attempted

    @property
    def exit_code(self) -> int:
        """130 interrupted, 2 credentials rejected, 1 any action not applied, else 0."""
        if self.interrupted:
            return EXIT_INTERRUPTED
        if self.auth_error is not None:
            return EXIT_AUTH
        return EXIT_OK if self.applied == self.planned else EXIT_FAILED

    def format(self) -> str:
        """The human summary printed at the end of the run, numbers right-aligned."""
        rows = [
            (_DONE[kind], f"{self.applied[kind]:,}", f"of {self.planned[kind]:,}")
            for kind in KINDS
        ]
        rows.append(("failed", f"{self.failed_total:,}", ""))
        by_count = sorted(self.failed.items(), key=lambda item: (-item[1], item[0]))
        rows += [(f"  {reason}", f"{count:,}", "") for reason, count in by_count]
        stopped = f"({self.stop_reason})" if self.stop_reason else ""
        rate = self.done / self.elapsed if self.elapsed > 0 else 0.0
        rows += [
            ("not attempted", f"{self.not_attempted:,}", stopped),
            ("retries", f"{self.retries:,}", ""),
            ("elapsed", f"{self.elapsed:.2f}", "s"),
            ("rate", f"{rate:,.0f}", "writes/s"),
        ]
        if self.failures_written:
            rows.append(
                ("failures", f"{self.failures_written:,}", f"records in {self.failures_path}")
            )
        return format_rows(rows)


class _Apply:
    """The state of one apply: the phases not started, the actions in flight, the totals."""

    def __init__(
        self,
        client: LuigisBoxClient,
        phases: Sequence[Sequence[Action]],
        failures: FailuresFile,
        tracker: Tracker,
        options: dict[str, Any],
    ) -> None:
        self.client = client
        self.options = options
        self.failures = failures
        self.tracker = tracker
        self.summary = SyncSummary(failures_path=failures.path)
        for phase in phases:
            for action in phase:
                self.summary.planned[action.kind] += 1
        self.unstarted: deque[Sequence[Action]] = deque(phases)
        self.unread: Iterator[Action] = iter(())  # the running phase's actions not yet sent
        self.in_flight: dict[int, Action] = {}
        self.updater: BatchUpdater | None = None
        self.stop_reason: str | None = None
        self.interrupts = 0

    def _items(self) -> Iterator[BatchItem]:
        """The running phase's items; the updater's n-th pull is ``UpdateResult.index`` n."""
        for index, action in enumerate(self.unread):
            self.in_flight[index] = action
            yield action.item

    async def _phases(self) -> None:
        while self.unstarted and self.stop_reason is None:
            self.unread = iter(self.unstarted.popleft())
            self.updater = updater = BatchUpdater(self.client, **self.options)
            async for result in updater.stream(self._items()):
                self._record(result, updater)
            self.stop_reason = self.stop_reason or updater.stop_reason

    def _record(self, result: UpdateResult, updater: BatchUpdater) -> None:
        action = self.in_flight.pop(result.index)
        summary = self.summary
        summary.retries += max(0, result.attempts - 1)
        if result.ok:
            summary.applied[action.kind] += 1
            log.debug("%s %s: applied (%d attempts)", action.kind, action.target, result.attempts)
        elif result.error is None:
            summary.not_attempted += 1
            self._write(action, f"not attempted: {updater.stop_reason}")
        else:
            if isinstance(result.error, AuthenticationError) and summary.auth_error is None:
                summary.auth_error = result.error.reason
            summary.failed[f"{action.kind} {failure_group(result.error)}"] += 1
            reason = failure_reason(result)
            log.debug("%s %s: %s", action.kind, action.target, reason)
            self._write(action, reason)
        self._show()

    def _write(self, action: Action, reason: str) -> None:
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
        self.failures.write(action.line, f"{action.kind}: {reason}")

    def _show(self) -> None:
        s = self.summary
        self.tracker.update(
            s.done, applied=sum(s.applied.values()), failed=s.failed_total + s.not_attempted
        )

    def interrupt(self, task: asyncio.Task[None]) -> None:
        self.interrupts += 1
        self.summary.interrupted = True
        if self.interrupts == 1:
            log.warning(
                "interrupted: finishing the requests in flight, then writing the failures "
                "file (Ctrl-C again to cancel the requests in flight)"
            )
            self.stop_reason = INTERRUPTED
            if self.updater is not None:
                self.updater.stop(INTERRUPTED)
        elif self.interrupts == 2:
            log.warning("cancelling the requests in flight")
            task.cancel()

    async def run(self) -> SyncSummary:
        started = time.monotonic()
        task = asyncio.create_task(self._phases())
        try:
            with on_sigint(lambda: self.interrupt(task)):
                await asyncio.wait([task])
        except asyncio.CancelledError:  # from outside, e.g. Ctrl-C where no handler can be set
            self.summary.interrupted = True
            task.cancel()
            await asyncio.wait([task])
            raise
        finally:
            self._account_for_the_rest()
        if not task.cancelled() and (error := task.exception()) is not None:
            raise error
        summary = self.summary
        summary.failed = +summary.failed  # drop zero counts
        summary.stop_reason = self.stop_reason
        summary.elapsed = time.monotonic() - started
        summary.failures_written = self.failures.count
        self._show()
        return summary

    def _account_for_the_rest(self) -> None:
        """Write the actions never answered for: cancelled in flight, or never sent.

        Both are empty after a complete run; after a cancelled or failed one, this keeps
        every planned action on record.
        """
        self.summary.failed[CANCELLED_IN_FLIGHT] += len(self.in_flight)
        for action in self.in_flight.values():
            self._write(action, CANCELLED_IN_FLIGHT)
        self.in_flight.clear()
        why = self.stop_reason or (INTERRUPTED if self.summary.interrupted else "aborted")
        rest = [*self.unread, *(action for phase in self.unstarted for action in phase)]
        self.unstarted.clear()
        for action in rest:
            self.summary.not_attempted += 1
            self._write(action, f"not attempted: {why}")


async def apply(
    client: LuigisBoxClient,
    plan: SyncPlan,
    lines: dict[NaturalKey, Line],
    failures: FailuresFile,
    tracker: Tracker,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    rate: float | None = None,
) -> SyncSummary:
    """Apply every planned write; record every one not applied against its line."""
    options: dict[str, Any] = {"concurrency": concurrency, "rate_limit": rate}
    return await _Apply(client, actions(plan, lines), failures, tracker, options).run()


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

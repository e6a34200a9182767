"""Declarative sync against the sandbox: converges, touches only the managed set."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import attrs
import pytest

from luigis_async import (
    Customization,
    FieldChange,
    InvalidCustomizationError,
    LuigisBoxClient,
    PinDefinition,
    RetryPolicy,
    SyncApplier,
    UpdateResult,
    apply_sync,
    converter,
    plan_sync,
)
from luigis_async.sandbox import Faults, Sandbox

from .helpers import FAST_RETRY, item_customization

TAG = "managed:nightly-refresh"
WRITES = {"POST", "PUT", "DELETE"}


def desired_set(count: int = 30) -> list[Customization]:
    """Item, criteria and all targets, each with pins and dates."""
    items = [item_customization(n, model="basket") for n in range(count - 2)]
    criteria = Customization(
        "category_bestsellers",
        "criteria",
        target_criteria={"category": "guitars", "brand": ["Fender", "Gibson"]},
        pin_definitions=[
            PinDefinition(
                position=1,
                pin_type="item",
                pin_identity="/p/77",
                active_from=datetime(2026, 1, 1, tzinfo=UTC),
            )
        ],
    )
    everywhere = Customization("basket", "all", tags=("global",))
    return [*items, criteria, everywhere]


def writes(sandbox: Sandbox) -> list[tuple[str, int]]:
    """The write requests the sandbox saw since the log was last cleared."""
    return [
        (r.method, r.status)
        for r in sandbox.requests
        if r.method in WRITES and not r.path.endswith(("/scopes", "/scopes/export"))
    ]


def manual_customization(sandbox: Sandbox) -> str:
    """A customization made by hand in the app: same key as a desired one, no tag."""
    return sandbox.add(converter.unstructure(item_customization(0, model="basket")))


async def test_from_empty_sync_creates_all_then_converges(
    client: LuigisBoxClient, sandbox: Sandbox
) -> None:
    """The first sync creates everything with the tag; the second plan is empty."""
    manual = manual_customization(sandbox)
    manual_before = dict(sandbox.store[manual])
    desired = desired_set()

    plan = await plan_sync(client, desired, managed_tag=TAG)
    assert (30, 0, 0) == (len(plan.create), len(plan.update), len(plan.delete))
    assert [("POST", 200)] == [(r.method, r.status) for r in sandbox.requests]  # export only

    report = await apply_sync(client, plan, concurrency=4)
    assert report.ok and 30 == report.create.succeeded

    managed = [c for c in sandbox.store.values() if TAG in c["tags"]]
    assert 30 == len(managed)
    assert manual_before == sandbox.store[manual]
    second = await plan_sync(client, desired, managed_tag=TAG)
    assert second.is_empty
    assert 30 == len(second.unchanged)


async def test_changing_three_entries_updates_exactly_those(
    client: LuigisBoxClient, sandbox: Sandbox
) -> None:
    """Three changed bodies mean three PUTs and no other write."""
    desired = desired_set()
    await apply_sync(client, await plan_sync(client, desired, managed_tag=TAG))
    manual = manual_customization(sandbox)
    manual_before = dict(sandbox.store[manual])
    changed = list(desired)
    for n in (2, 11, 20):
        changed[n] = attrs.evolve(changed[n], tags=("edited",))
    sandbox.requests.clear()

    plan = await plan_sync(client, changed, managed_tag=TAG)
    report = await apply_sync(client, plan)

    assert 3 == len(plan.update) == report.update.succeeded
    assert [("PUT", 204)] * 3 == writes(sandbox)
    fields = {change.field for update in plan.update for change in update.changes}
    assert {"tags"} == fields
    assert "tags: [" in str(plan.update[0].changes[0])
    assert manual_before == sandbox.store[manual]
    assert (await plan_sync(client, changed, managed_tag=TAG)).is_empty


async def test_prune_deletes_what_is_no_longer_desired(
    client: LuigisBoxClient, sandbox: Sandbox
) -> None:
    """Removed entries are deleted only with prune; unmanaged ones never."""
    desired = desired_set()
    await apply_sync(client, await plan_sync(client, desired, managed_tag=TAG))
    manual = manual_customization(sandbox)
    other_tag = sandbox.add(
        converter.unstructure(item_customization(999, tags=("managed:someone-else",)))
    )
    fewer = desired[5:]
    sandbox.requests.clear()

    kept = await plan_sync(client, fewer, managed_tag=TAG)
    await apply_sync(client, kept)
    assert ([], 30) == (writes(sandbox), sum(TAG in c["tags"] for c in sandbox.store.values()))

    pruned = await plan_sync(client, fewer, managed_tag=TAG, prune=True)
    report = await apply_sync(client, pruned)

    assert 5 == len(pruned.delete) == report.delete.succeeded
    assert [("DELETE", 204)] * 5 == writes(sandbox)
    assert 25 == sum(TAG in c["tags"] for c in sandbox.store.values())
    assert manual in sandbox.store and other_tag in sandbox.store


async def test_lost_create_acknowledgements_do_not_duplicate(
    client: LuigisBoxClient, sandbox: Sandbox
) -> None:
    """Creates applied but answered 503 are reported; the next plan finds them: no dupes."""
    desired = desired_set(40)
    sandbox.faults = Faults(seed=5, lost_ack=0.25)

    first = await apply_sync(client, await plan_sync(client, desired, managed_tag=TAG))
    lost = len(first.create.failed)
    assert lost > 3
    assert all(r.status == 503 and r.attempts == 1 for r in first.create.failed)
    assert 40 == len(sandbox.store)  # every create happened, answered or not

    sandbox.faults = Faults()
    second = await plan_sync(client, desired, managed_tag=TAG)
    assert second.is_empty
    assert 40 == len(sandbox.store)


async def test_semantically_equal_bodies_are_unchanged(
    client: LuigisBoxClient, sandbox: Sandbox
) -> None:
    """The same instant in +02:00, reordered tags, pins and criteria keys: no update."""
    pin = PinDefinition(
        position=1,
        pin_type="item",
        pin_identity="/p/1",
        active_from=datetime(2026, 3, 1, 10, tzinfo=UTC),
    )
    other_pin = PinDefinition(position=2, pin_type="criteria", pin_criteria={"a": 1, "b": 2})
    original = Customization(
        "basket",
        "criteria",
        target_criteria={"x": 1, "y": [1, 2]},
        tags=("a", "b"),
        pin_definitions=[pin, other_pin],
    )
    await apply_sync(client, await plan_sync(client, [original], managed_tag=TAG))

    plus_two = timezone(timedelta(hours=2))
    same = Customization(
        "basket",
        "criteria",
        target_criteria={"y": [1, 2], "x": 1},
        tags=(TAG, "b", "a"),
        pin_definitions=[
            PinDefinition(position=2, pin_type="criteria", pin_criteria={"b": 2, "a": 1}),
            attrs.evolve(pin, active_from=datetime(2026, 3, 1, 12, tzinfo=plus_two)),
        ],
    )
    plan = await plan_sync(client, [same], managed_tag=TAG)

    assert plan.is_empty and 1 == len(plan.unchanged)


async def test_duplicate_desired_keys_are_refused_before_any_request(
    client: LuigisBoxClient, sandbox: Sandbox
) -> None:
    """Two desired entries for one (model, target) are an input error; nothing is sent."""
    twice = [item_customization(1), attrs.evolve(item_customization(1), tags=("x",))]

    with pytest.raises(InvalidCustomizationError, match="duplicate natural keys"):
        await plan_sync(client, twice, managed_tag=TAG)
    assert [] == sandbox.requests


async def test_existing_duplicates_are_reported_and_pruned(
    client: LuigisBoxClient, sandbox: Sandbox
) -> None:
    """Two managed copies of one key: the oldest is kept, the other deleted with prune."""
    body = converter.unstructure(attrs.evolve(item_customization(1), tags=(TAG,)))
    oldest = sandbox.add(body)
    sandbox.clock = lambda: datetime.now(UTC).timestamp() + 1  # created a second later
    newer = sandbox.add(body)

    plan = await plan_sync(client, [item_customization(1)], managed_tag=TAG, prune=True)
    await apply_sync(client, plan)

    assert [newer] == [str(d.id) for d in plan.duplicates]
    assert [oldest] == list(sandbox.store)


async def test_a_wrong_key_stops_every_phase(sandbox: Sandbox) -> None:
    """Fail fast in the create phase reports the later phases as not attempted."""
    async with LuigisBoxClient(
        sandbox.tracker_id, sandbox.private_key, base_url=sandbox.url, retry=FAST_RETRY
    ) as good:
        await apply_sync(good, await plan_sync(good, desired_set(10), managed_tag=TAG))
        changed = [attrs.evolve(c, tags=("v2",)) for c in desired_set(10)[:5]]
        plan = await plan_sync(good,
            [*changed, item_customization(500)], managed_tag=TAG, prune=True
        )
    assert (1, 5, 5) == (len(plan.create), len(plan.update), len(plan.delete))

    async with LuigisBoxClient(
        sandbox.tracker_id, "wrong", base_url=sandbox.url, retry=RetryPolicy(max_attempts=1)
    ) as bad:
        report = await apply_sync(bad, plan)

    assert 1 == len(report.create.failed)
    assert (5, 5) == (len(report.update.not_attempted), len(report.delete.not_attempted))
    assert not report.ok


async def test_stopping_an_applier_reports_the_rest_not_attempted(
    client: LuigisBoxClient, sandbox: Sandbox
) -> None:
    """stop() during the creates finishes what is in flight; updates and deletes wait."""
    await apply_sync(client, await plan_sync(client, desired_set(10), managed_tag=TAG))
    changed = [attrs.evolve(c, tags=("v2",)) for c in desired_set(10)[:4]]
    new = [item_customization(100 + n) for n in range(20)]
    plan = await plan_sync(client, [*changed, *new], managed_tag=TAG, prune=True)
    applier: SyncApplier

    def stop_after_five(result: UpdateResult) -> None:
        if result.ok and result.index == 4:
            applier.stop("enough")

    applier = SyncApplier(client, concurrency=1, on_result=stop_after_five)
    report = await applier.run(plan)

    assert (5, 15) == (report.create.succeeded, len(report.create.not_attempted))
    assert (4, 6) == (len(report.update.not_attempted), len(report.delete.not_attempted))
    assert "enough" == applier.stop_reason


def test_a_field_change_shows_where_long_values_differ() -> None:
    """Long values that share a start are shown from a little before they differ."""
    before = [{"pin_identity": f"/p/{n}", "position": n} for n in range(30)]
    after = [*before[:29], {"pin_identity": "/p/changed", "position": 29}]

    text = str(FieldChange("pin_definitions", before, after))

    assert "/p/29" in text and "/p/changed" in text
    assert text.startswith("pin_definitions: ...")


async def test_the_plan_lists_what_is_no_longer_desired(
    client: LuigisBoxClient, sandbox: Sandbox
) -> None:
    """Without prune, managed customizations no longer desired are listed, not deleted."""
    await apply_sync(client, await plan_sync(client, desired_set(10), managed_tag=TAG))

    plan = await plan_sync(client, desired_set(10)[3:], managed_tag=TAG)

    assert (3, 0) == (len(plan.not_desired), len(plan.delete))
    assert "3 no longer desired, kept (prune deletes them)" in plan.summary()

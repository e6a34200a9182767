"""BatchUpdater against the sandbox: lossless under faults, bounded, lazy, cancellable."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from email.utils import formatdate

import attrs
import pytest

from luigis_async import (
    BatchUpdater,
    Customization,
    CustomizationUpdate,
    DeleteRequest,
    LuigisBoxClient,
    PinDefinition,
    RetryBudget,
    RetryPolicy,
    UpdateResult,
    converter,
)
from luigis_async.batch import WORKER_NAME, BatchRun
from luigis_async.sandbox import Faults, Sandbox

from .helpers import FAST_RETRY, item_customization


def seeded(sandbox: Sandbox, count: int) -> list[str]:
    """``count`` stored customizations to update."""
    placeholder = converter.unstructure(Customization("basket", "all"))
    return [sandbox.add(placeholder) for _ in range(count)]


def updates_for(ids: list[str]) -> list[CustomizationUpdate]:
    return [CustomizationUpdate(cid, item_customization(n)) for n, cid in enumerate(ids)]


def stored_body(sandbox: Sandbox, cid: str) -> dict[str, object]:
    stored = dict(sandbox.store[cid])
    for read_only in ("id", "created_at", "creator", "available"):
        stored.pop(read_only)
    return stored


@pytest.mark.slow
async def test_every_update_lands_despite_faults(sandbox: Sandbox) -> None:
    """2,000 updates through 429s, 503s, drops and lost acks: all applied, body for body."""
    ids = seeded(sandbox, 2000)
    updates = updates_for(ids)
    sandbox.faults = Faults(
        seed=3,
        rate_429=0.10,
        retry_after="0",
        rate_503=0.10,
        drop=0.03,
        lost_ack=0.02,
        latency=0.3,  # so requests overlap in the server and the bound is tested
        latency_seconds=0.005,
    )
    policy = RetryPolicy(max_attempts=10, sleep=FAST_RETRY.sleep)
    async with LuigisBoxClient(
        sandbox.tracker_id, sandbox.private_key, base_url=sandbox.url, max_connections=32
    ) as client:
        report = await BatchUpdater(client, concurrency=16, retry=policy).run(updates)

    assert 2000 == report.total == report.succeeded
    assert ([], []) == (report.failed, report.not_attempted)
    for update in updates:
        expected = converter.unstructure(update.customization)
        assert expected == stored_body(sandbox, str(update.customization_id))
    faults = Counter(r.fault for r in sandbox.requests if r.fault)
    assert faults["429"] > 100 and faults["503"] > 100 and faults["drop"] > 20
    assert report.retries > 400
    assert report.requests_sent == report.total + report.retries
    assert sandbox.max_in_flight_seen <= 16


async def test_rejected_items_fail_once_and_the_rest_succeed() -> None:
    """Items the server refuses with 422 are tried once, with details; others apply."""
    async with (
        Sandbox(catalog={f"/p/{n}" for n in range(2000)}) as sb,
        LuigisBoxClient(sb.tracker_id, sb.private_key, base_url=sb.url, retry=FAST_RETRY) as client,
    ):
        ids = seeded(sb, 50)
        updates = updates_for(ids)  # pins /p/1000.. (in the catalog) and a criteria pin
        unknown = PinDefinition(position=1, pin_type="item", pin_identity="/p/unknown")
        for n in (5, 17, 33):
            updates[n] = CustomizationUpdate(
                ids[n], Customization("basket", "all", pin_definitions=[unknown])
            )

        report = await BatchUpdater(client, concurrency=4).run(updates)

    assert (50, 47) == (report.total, report.succeeded)
    assert {5, 17, 33} == {r.index for r in report.failed}
    for result in report.failed:
        assert (422, 1) == (result.status, result.attempts)
        assert result.error is not None
        assert {"pin_definitions[0].pin_identity": ["Item not found in catalog"]} == (
            result.error.exception_details  # type: ignore[attr-defined]
        )


async def test_a_wrong_key_stops_the_batch_with_every_item_accounted_for(
    sandbox: Sandbox,
) -> None:
    """401s stop the batch fast; failed + not_attempted equals the input."""
    ids = seeded(sandbox, 500)
    async with LuigisBoxClient(
        sandbox.tracker_id, "wrong-key", base_url=sandbox.url, retry=FAST_RETRY
    ) as client:
        report = await BatchUpdater(client, concurrency=8).run(updates_for(ids))

    assert 500 == report.total == len(report.failed) + len(report.not_attempted)
    assert 0 == report.succeeded
    assert len(sandbox.requests) <= 8
    assert report.stop_reason is not None and "authentication" in report.stop_reason
    assert list(range(500)) == sorted(r.index for r in report.failed + report.not_attempted)


async def test_a_run_of_failures_stops_the_batch(sandbox: Sandbox) -> None:
    """max_consecutive_failures server errors in a row end the batch; nothing is lost."""
    ids = seeded(sandbox, 300)
    sandbox.fail_next(10_000, 500)
    async with LuigisBoxClient(
        sandbox.tracker_id, sandbox.private_key, base_url=sandbox.url, retry=FAST_RETRY
    ) as client:
        updater = BatchUpdater(
            client, concurrency=2, retry=RetryPolicy(max_attempts=1), max_consecutive_failures=10
        )
        report = await updater.run(updates_for(ids))

    assert 300 == len(report.failed) + len(report.not_attempted)
    assert len(report.failed) <= 11
    assert report.stop_reason is not None and "10 consecutive failures" in report.stop_reason


async def test_a_skewed_clock_still_applies_everything(sandbox: Sandbox) -> None:
    """A local clock 60 s fast: one 401 teaches the offset, then every update applies."""
    ids = seeded(sandbox, 100)
    async with LuigisBoxClient(
        sandbox.tracker_id,
        sandbox.private_key,
        base_url=sandbox.url,
        clock=lambda: time.time() + 60,
        retry=FAST_RETRY,
    ) as client:
        report = await BatchUpdater(client, concurrency=1).run(updates_for(ids))

    assert 100 == report.succeeded
    assert 1 == sum(1 for r in sandbox.requests if r.status == 401)


async def test_deletes_go_through_the_same_machinery(sandbox: Sandbox) -> None:
    """DeleteRequest items delete; a retried delete finding nothing (lost ack) is success.

    With a fifth of answers lost, five in a row for one of 200 items (about one run in
    fifteen, by how requests interleave) or an empty retry budget is not what this is
    about: attempts and budget here cannot run out."""
    ids = seeded(sandbox, 200)
    sandbox.faults = Faults(seed=1, lost_ack=0.2)
    async with LuigisBoxClient(
        sandbox.tracker_id, sandbox.private_key, base_url=sandbox.url,
        retry=attrs.evolve(FAST_RETRY, max_attempts=30), retry_budget=RetryBudget(capacity=1e9),
    ) as client:
        report = await BatchUpdater(client, concurrency=8).run(DeleteRequest(c) for c in ids)

    assert 200 == report.succeeded
    assert {} == sandbox.store
    assert any(r.status == 404 for r in sandbox.requests)


async def test_pairs_and_bad_items_are_accepted_and_reported(sandbox: Sandbox) -> None:
    """(id, customization) pairs work; an unusable item fails alone with a clear error."""
    ids = seeded(sandbox, 3)
    items: list[object] = [
        (ids[0], item_customization(1)),
        "nonsense",
        (ids[1], item_customization(2)),
    ]
    async with LuigisBoxClient(
        sandbox.tracker_id, sandbox.private_key, base_url=sandbox.url
    ) as client:
        report = await BatchUpdater(client).run(items)  # type: ignore[arg-type]

    assert (3, 2) == (report.total, report.succeeded)
    assert [1] == [r.index for r in report.failed]
    assert "expected CustomizationUpdate" in str(report.failed[0].error)


async def test_an_async_iterable_input_works(sandbox: Sandbox) -> None:
    """An async generator is consumed like a plain iterable."""
    ids = seeded(sandbox, 40)

    async def produce() -> AsyncIterator[CustomizationUpdate]:
        for update in updates_for(ids):
            yield update

    async with LuigisBoxClient(
        sandbox.tracker_id, sandbox.private_key, base_url=sandbox.url
    ) as client:
        results = [r async for r in BatchUpdater(client, concurrency=4).stream(produce())]

    assert list(range(40)) == sorted(r.index for r in results)
    assert all(r.ok and r.status == 204 and r.attempts == 1 for r in results)


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [("7", [8.75, 8.75]), ("0.25", [0.3125, 0.3125]), (None, [0.5, 1.0])],
    ids=["seconds", "fraction", "absent-backoff"],
)
async def test_retry_delays_follow_the_policy(
    sandbox: Sandbox, retry_after: str | None, expected: list[float]
) -> None:
    """Sleeps are Retry-After plus up to a quarter of it (here the most) when given, else
    the jittered backoff."""
    cid = sandbox.add(converter.unstructure(Customization("basket", "all")))
    sandbox.fail_next(2, 503, retry_after=retry_after)
    slept: list[float] = []

    async def record(seconds: float) -> None:
        slept.append(seconds)

    policy = RetryPolicy(sleep=record, random=lambda: 1.0)
    async with LuigisBoxClient(
        sandbox.tracker_id, sandbox.private_key, base_url=sandbox.url, retry=policy
    ) as client:
        await client.update_customization(cid, Customization("basket", "all"))

    assert expected == slept


async def test_retry_after_as_an_http_date(sandbox: Sandbox) -> None:
    """A Retry-After HTTP date is turned into seconds from the (injected) clock."""
    cid = sandbox.add(converter.unstructure(Customization("basket", "all")))
    now = 1_800_000_000.0
    sandbox.clock = lambda: now
    sandbox.fail_next(1, 429, retry_after=formatdate(now + 12, usegmt=True))
    slept: list[float] = []

    async def record(seconds: float) -> None:
        slept.append(seconds)

    async with LuigisBoxClient(
        sandbox.tracker_id,
        sandbox.private_key,
        base_url=sandbox.url,
        clock=lambda: now,
        retry=RetryPolicy(sleep=record, random=lambda: 0.0),
    ) as client:
        await client.update_customization(cid, Customization("basket", "all"))

    assert [12.0] == slept


async def test_a_retry_after_beyond_the_cap_surfaces_at_once(sandbox: Sandbox) -> None:
    """A Retry-After longer than max_retry_after is not slept: the 429 surfaces."""
    cid = sandbox.add(converter.unstructure(Customization("basket", "all")))
    sandbox.fail_next(1, 429, retry_after="3600")
    slept: list[float] = []

    async def record(seconds: float) -> None:
        slept.append(seconds)

    async with LuigisBoxClient(
        sandbox.tracker_id,
        sandbox.private_key,
        base_url=sandbox.url,
        retry=RetryPolicy(sleep=record, max_retry_after=60),
    ) as client:
        report = await BatchUpdater(client).run([(cid, Customization("basket", "all"))])

    assert [] == slept
    assert [(429, 1)] == [(r.status, r.attempts) for r in report.failed]
    assert 3600.0 == report.failed[0].error.retry_after  # type: ignore[union-attr]


@pytest.mark.slow
class _BrokenLength(list[CustomizationUpdate]):
    def __len__(self) -> int:
        raise RuntimeError("no length today")


async def test_a_sized_input_tells_the_pacer_how_many_items_remain(sandbox: Sandbox) -> None:
    """A list's length reaches the pacer (its last stretch stops probing) and counts down
    to 0 as results come; a generator's, or a broken ``__len__``, leaves it unknown."""
    updates = updates_for(seeded(sandbox, 40))
    async with LuigisBoxClient(
        sandbox.tracker_id, sandbox.private_key, base_url=sandbox.url
    ) as client:
        updater = BatchUpdater(client)
        run = updater.start(updates)
        assert 40 == run.pacer.window.remaining
        seen = [run.pacer.window.remaining async for _ in run]
        unknown = [updater.start(u for u in updates), updater.start(_BrokenLength(updates))]
        assert [None, None] == [other.pacer.window.remaining for other in unknown]
        report = await updater.run(_BrokenLength(updates))

    assert (40, 0) == (len(seen), seen[-1])
    assert seen == sorted(seen, reverse=True)
    assert 40 == report.succeeded


class _Hinted(list[CustomizationUpdate]):
    """A list whose ``__length_hint__`` lies (``len`` is what ``length_hint`` asks first,
    so this hides it)."""

    def __init__(self, items: list[CustomizationUpdate], hint: int) -> None:
        super().__init__(items)
        self.hint = hint

    def __len__(self) -> int:
        raise TypeError("no len")

    def __length_hint__(self) -> int:
        return self.hint


@pytest.mark.parametrize("concurrency", [None, 16, 64], ids=["defaults", "c16", "c64"])
@pytest.mark.parametrize("hint", ["exact", "too-small", "too-large"])
async def test_the_last_stretch_loses_nothing_under_429s_and_latency(
    sandbox: Sandbox, concurrency: int | None, hint: str
) -> None:
    """300 sized updates through 429s (Retry-After: 0.2) and server latency: every one
    applied, body for body, whatever the length claims (too small: the last stretch from
    the first refusal on; too large: never)."""
    updates = updates_for(seeded(sandbox, 300))
    claimed = {"exact": 300, "too-small": 5, "too-large": 10**9}[hint]
    sandbox.faults = Faults(
        seed=11, rate_429=0.05, retry_after="0.2", latency=1.0, latency_seconds=0.005
    )
    async with LuigisBoxClient(
        sandbox.tracker_id, sandbox.private_key, base_url=sandbox.url
    ) as client:
        run = BatchUpdater(client, concurrency=concurrency, retry=FAST_RETRY).start(
            _Hinted(updates, claimed)
        )
        async with run:
            results = [result async for result in run]

    assert 300 == sum(r.ok for r in results) == len({r.index for r in results})
    assert run.pacer.window.throttled > 0
    assert claimed - 300 == run.pacer.window.remaining
    for update in updates:
        expected = converter.unstructure(update.customization)
        assert expected == stored_body(sandbox, str(update.customization_id))


async def test_the_input_is_consumed_lazily(sandbox: Sandbox) -> None:
    """20,000 items: never more than concurrency + a few pulled ahead of those finished."""
    concurrency = 8
    cid = sandbox.add(converter.unstructure(Customization("basket", "all")))
    body = Customization("basket", "all")
    pulled = 0
    finished = 0
    ahead: list[int] = []

    def generate() -> Iterator[CustomizationUpdate]:
        nonlocal pulled
        for _ in range(20_000):
            pulled += 1
            ahead.append(pulled - finished)
            yield CustomizationUpdate(cid, body)

    def count(_: UpdateResult) -> None:
        nonlocal finished
        finished += 1

    async with LuigisBoxClient(
        sandbox.tracker_id, sandbox.private_key, base_url=sandbox.url
    ) as client:
        report = await BatchUpdater(client, concurrency=concurrency, on_result=count).run(
            generate()
        )

    assert 20_000 == report.succeeded
    assert max(ahead) <= concurrency + 2


async def test_a_slow_consumer_bounds_the_items_held(sandbox: Sandbox) -> None:
    """A slow stream consumer holds back the input: at most 2 x concurrency pulled ahead."""
    ids = seeded(sandbox, 200)
    pulled = consumed = 0
    ahead: list[int] = []

    def generate() -> Iterator[CustomizationUpdate]:
        nonlocal pulled
        for update in updates_for(ids):
            pulled += 1
            ahead.append(pulled - consumed)
            yield update

    async with LuigisBoxClient(
        sandbox.tracker_id, sandbox.private_key, base_url=sandbox.url
    ) as client:
        async for _ in BatchUpdater(client, concurrency=4).stream(generate()):
            consumed += 1
            for _ in range(50):  # a consumer much slower than the workers
                await asyncio.sleep(0)

    assert 200 == consumed
    assert max(ahead) <= 2 * 4 + 1


async def test_cancelling_a_run_stops_promptly_and_cleanly(sandbox: Sandbox) -> None:
    """Cancelling run() re-raises CancelledError and leaves no task or connection behind."""
    ids = seeded(sandbox, 1000)
    sandbox.faults = Faults(latency=1.0, latency_seconds=0.05)
    some_done = asyncio.Event()

    def on_result(result: UpdateResult) -> None:
        if result.index >= 0:
            some_done.set()

    async with LuigisBoxClient(
        sandbox.tracker_id, sandbox.private_key, base_url=sandbox.url
    ) as client:
        run = BatchUpdater(client, concurrency=8, on_result=on_result).start(updates_for(ids))

        async def consume() -> None:
            async with run:
                async for _ in run:
                    pass

        task = asyncio.create_task(consume())
        await some_done.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

        workers = [t for t in asyncio.all_tasks() if t.get_name().startswith(WORKER_NAME)]
        assert [] == workers
        assert 0 == run.pacer.in_flight
    assert len(sandbox.requests) < 1000


@pytest.mark.slow
async def test_adaptive_concurrency_converges_under_a_server_limit(sandbox: Sandbox) -> None:
    """Against a server serving 4 at once, adaptive mode settles near 4 and gets few 429s.

    Fixed concurrency keeps hammering: most of its attempts are throttled, until its retry
    budget runs dry (items fail) rather than multiplying the load.
    """
    ids = seeded(sandbox, 600)
    sandbox.faults = Faults(max_in_flight=4, latency=1.0, latency_seconds=0.002)
    throttled: dict[bool, int] = {}
    reports = {}
    patient = RetryPolicy(max_attempts=10, sleep=FAST_RETRY.sleep)
    for adaptive in (True, False):
        sandbox.requests.clear()
        async with LuigisBoxClient(
            sandbox.tracker_id, sandbox.private_key, base_url=sandbox.url, retry=patient
        ) as client:
            async with BatchUpdater(client, concurrency=32, adaptive=adaptive).start(
                updates_for(ids)
            ) as run:
                async for _ in run:
                    pass
            reports[adaptive] = run.report
        if adaptive:
            assert run.pacer.limit <= 8
        throttled[adaptive] = sum(1 for r in sandbox.requests if r.status == 429)

    assert 600 == reports[True].succeeded
    assert throttled[True] < 150  # one 429 per ~10 successes: AIMD probing for room
    assert throttled[True] * 3 < throttled[False]


async def test_a_failing_on_result_callback_aborts_the_run(sandbox: Sandbox) -> None:
    """A bug in the caller's callback surfaces as itself, not as a lost item."""
    ids = seeded(sandbox, 20)

    def explode(_: UpdateResult) -> None:
        raise KeyError("callback bug")

    async with LuigisBoxClient(
        sandbox.tracker_id, sandbox.private_key, base_url=sandbox.url
    ) as client:
        with pytest.raises(KeyError, match="callback bug"):
            await BatchUpdater(client, concurrency=2, on_result=explode).run(updates_for(ids))


async def test_stop_reports_the_rest_as_not_attempted(sandbox: Sandbox) -> None:
    """stop() lets in-flight requests finish and lists every remaining item."""
    ids = seeded(sandbox, 100)
    async with LuigisBoxClient(
        sandbox.tracker_id, sandbox.private_key, base_url=sandbox.url
    ) as client:
        def stop_after_ten(result: UpdateResult) -> None:
            if result.ok and result.index == 9:
                run.stop("enough")

        updater = BatchUpdater(client, concurrency=4, on_result=stop_after_ten)
        async with updater.start(updates_for(ids)) as run:
            async for _ in run:
                pass
        report = run.report

    assert 100 == report.total
    assert report.succeeded >= 10
    assert 100 == report.succeeded + len(report.not_attempted)
    assert "enough" == report.stop_reason
    assert report.succeeded == sum(1 for r in sandbox.requests if r.status == 204)


def test_invalid_settings_are_refused() -> None:
    """Nonsense settings fail at construction, not mid-batch."""
    client = LuigisBoxClient("1234-5678", "key")
    for bad in ({"concurrency": 0}, {"concurrency": True}, {"rate_limit": 0}):
        with pytest.raises(ValueError):
            BatchUpdater(client, **bad)  # type: ignore[arg-type]


def test_an_unknown_uuid_string_is_still_a_uuid() -> None:
    """CustomizationUpdate normalises string IDs to UUID objects."""
    cid = uuid.uuid4()
    assert cid == CustomizationUpdate(str(cid), Customization("basket", "all")).customization_id


async def test_an_empty_retry_budget_stops_a_retry_storm(sandbox: Sandbox) -> None:
    """A server failing everything gets a bounded number of retries, not 5 per item."""
    ids = seeded(sandbox, 200)
    sandbox.fail_next(100_000, 503)
    budget = RetryBudget(50.0)  # 10 retries at 5 tokens each
    async with LuigisBoxClient(
        sandbox.tracker_id,
        sandbox.private_key,
        base_url=sandbox.url,
        retry=FAST_RETRY,
        retry_budget=budget,
    ) as client:
        updater = BatchUpdater(client, concurrency=4, max_consecutive_failures=None)
        report = await updater.run(updates_for(ids))

    assert 200 == len(report.failed)
    assert 10 == report.retries
    assert 210 == len(sandbox.requests)


async def test_stop_ends_retries_in_progress(sandbox: Sandbox) -> None:
    """An item waiting to retry when stop() comes fails with its last error, unretried."""
    ids = seeded(sandbox, 10)
    sandbox.fail_next(1000, 503)
    run: BatchRun

    async def stop_while_backing_off(_: float) -> None:
        run.stop("operator said so")

    async with LuigisBoxClient(
        sandbox.tracker_id, sandbox.private_key, base_url=sandbox.url
    ) as client:
        updater = BatchUpdater(
            client, concurrency=1, retry=RetryPolicy(sleep=stop_while_backing_off)
        )
        async with updater.start(updates_for(ids)) as run:
            async for _ in run:
                pass
        report = run.report

    assert [(503, 1)] == [(r.status, r.attempts) for r in report.failed]
    assert 9 == len(report.not_attempted)
    assert 1 == len(sandbox.requests)


async def test_two_runs_of_one_updater_do_not_interfere(sandbox: Sandbox) -> None:
    """Stopping one run of an updater leaves another run of it untouched."""
    ids = seeded(sandbox, 40)
    async with sandbox.client(retry=FAST_RETRY) as client:
        updater = BatchUpdater(client, concurrency=4)
        async with (
            updater.start(updates_for(ids[:20])) as first,
            updater.start(updates_for(ids[20:])) as second,
        ):
            first.stop("only the first")
            second_results = [result async for result in second]
            first_results = [result async for result in first]

    assert (20, None) == (sum(r.ok for r in second_results), second.stop_reason)
    assert (20, "only the first") == (len(first_results), first.stop_reason)
    assert first.pacer is not second.pacer


async def test_leaving_the_block_after_a_break_leaves_no_worker(sandbox: Sandbox) -> None:
    """A break out of ``async with updater.start(...)`` cancels the workers at once."""
    ids = seeded(sandbox, 200)
    sandbox.faults = Faults(latency=1.0, latency_seconds=0.05)
    async with sandbox.client(retry=FAST_RETRY) as client:
        async with BatchUpdater(client, concurrency=8).start(updates_for(ids)) as run:
            async for _ in run:
                break
        workers = [t for t in asyncio.all_tasks() if t.get_name().startswith(WORKER_NAME)]

    assert ([], 0) == (workers, run.pacer.in_flight)
    assert len(sandbox.requests) < 200


def test_the_updater_is_frozen_configuration(sandbox: Sandbox) -> None:
    """Options cannot be changed on an updater: a run takes them as they are."""
    updater = BatchUpdater(sandbox.client(), concurrency=4)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        updater.concurrency = 8  # type: ignore[misc]


@pytest.mark.parametrize("concurrency", [None, 16, 64])
async def test_a_stop_sends_nothing_that_was_waiting_for_the_pacer(
    sandbox: Sandbox, concurrency: int | None
) -> None:
    """After stop(), attempts waiting for a place in the window are never sent."""
    ids = seeded(sandbox, 300)
    sandbox.faults = Faults(latency=1.0, latency_seconds=0.05)
    async with sandbox.client(retry=FAST_RETRY) as client:

        def stop_at_first(result: UpdateResult) -> None:
            run.stop("enough")

        updater = BatchUpdater(client, concurrency=concurrency, on_result=stop_at_first)
        async with updater.start(updates_for(ids)) as run:
            async for _ in run:
                pass

    report = run.report
    assert 300 == report.succeeded + len(report.not_attempted) + len(report.failed)
    assert report.succeeded == len(sandbox.requests) <= 8  # the first window, no more
    assert "enough" == report.stop_reason

"""Bulk create against the sandbox: thousands per request, one result per line, refused
lines isolated, and no duplicate or false conflict after a lost answer."""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import AsyncIterator

import attrs
import pytest

from luigis_async import (
    BulkCreator,
    ConflictError,
    Customization,
    InvalidCustomizationError,
    PinDefinition,
    RetryPolicy,
    UnprocessableEntityError,
    bulk_create,
    natural_key,
)
from luigis_async import bulk as bulk_module
from luigis_async.auth import NDJSON_CONTENT_TYPE
from luigis_async.convert import converter
from luigis_async.reconcile import apply_sync, plan_sync
from luigis_async.sandbox import Faults, Sandbox

from .helpers import FAST_RETRY


def pinned(n: int, *, pin: str | None = None, model: str = "basket") -> Customization:
    """A distinct item customization per ``n``, pinning ``/p/{n + 1000000}`` by default."""
    identity = pin or f"/p/{n + 1_000_000}"
    return Customization(
        model, "item", target_identity=f"/p/{n}", tags=("bulk",),
        pin_definitions=[PinDefinition(position=1, pin_type="item", pin_identity=identity)],
    )


def stored_keys(sandbox: Sandbox) -> Counter[tuple[str, str, str]]:
    return Counter(
        natural_key(converter.structure(sandbox.stored_body(cid), Customization))
        for cid in sandbox.store
    )


def bulk_requests(sandbox: Sandbox) -> list[int]:
    """The status of every bulk request the sandbox answered."""
    return [r.status for r in sandbox.requests if r.path.endswith("/scopes/_bulk")]


@pytest.mark.slow  # volume
async def test_twelve_thousand_creates_take_three_requests(sandbox: Sandbox) -> None:
    """12,000 valid creates: 3 requests of at most 5,000 lines, all 12,000 stored."""
    async with sandbox.client(retry=FAST_RETRY) as client:
        report = await bulk_create(client, (pinned(n) for n in range(12_000)))

    assert (12_000, 12_000, [], []) == (
        report.total, report.succeeded, report.failed, report.not_attempted
    )
    assert ([200, 200, 200], 3) == (bulk_requests(sandbox), report.requests_sent)
    assert Counter({natural_key(pinned(n)): 1 for n in range(12_000)}) == stored_keys(sandbox)
    for cid in list(sandbox.store)[:50]:
        body = sandbox.stored_body(cid)
        n = int(body["target_identity"].removeprefix("/p/"))
        assert converter.unstructure(pinned(n)) == body


@pytest.mark.slow
async def test_lines_only_the_server_refuses_are_isolated_by_splitting(
    sandbox: Sandbox,
) -> None:
    """3 lines of 13,000 name items the server does not know: those 3 fail with 422."""
    unknown = {17, 6_001, 12_999}
    sandbox.catalog = {f"/p/{n + 1_000_000}" for n in range(13_000) if n not in unknown}
    async with sandbox.client(retry=FAST_RETRY) as client:
        report = await bulk_create(client, (pinned(n) for n in range(13_000)))

    assert (12_997, sorted(unknown)) == (
        report.succeeded, sorted(r.index for r in report.failed)
    )
    assert all(
        isinstance(r.error, UnprocessableEntityError) and r.status == 422 for r in report.failed
    )
    assert 12_997 == len(sandbox.store) == len(stored_keys(sandbox))
    bound = 2 * len(unknown) * math.ceil(math.log2(5_000))
    assert report.split_requests <= bound
    assert report.requests_sent == 3 + report.split_requests


@pytest.fixture
def five_existing(sandbox: Sandbox) -> dict[int, str]:
    """Customizations already stored under the keys of lines 0, 100, 200, 300 and 400."""
    return {
        n: sandbox.add(converter.unstructure(pinned(n, pin="/p/old")))
        for n in range(0, 500, 100)
    }


async def test_raise_refuses_exactly_the_conflicting_lines(
    sandbox: Sandbox, five_existing: dict[int, str]
) -> None:
    """Under raise, the 5 lines whose keys exist fail with 409; the rest apply."""
    before = {cid: sandbox.stored_body(cid) for cid in five_existing.values()}
    async with sandbox.client(retry=FAST_RETRY) as client:
        report = await bulk_create(client, [pinned(n) for n in range(1_000)])

    assert sorted(five_existing) == sorted(r.index for r in report.failed)
    assert all(isinstance(r.error, ConflictError) for r in report.failed)
    assert 995 == report.succeeded
    assert before == {cid: sandbox.stored_body(cid) for cid in five_existing.values()}
    assert 1_000 == len(sandbox.store)


async def test_override_replaces_the_existing_and_keeps_their_ids(
    sandbox: Sandbox, five_existing: dict[int, str]
) -> None:
    """Under override, the 5 existing customizations take the new body, same ids."""
    async with sandbox.client(retry=FAST_RETRY) as client:
        report = await bulk_create(
            client, [pinned(n) for n in range(1_000)], conflict_strategy="override"
        )

    assert (1_000, []) == (report.succeeded, report.failed)
    assert {n: converter.unstructure(pinned(n)) for n in five_existing} == {
        n: sandbox.stored_body(cid) for n, cid in five_existing.items()
    }
    assert 1_000 == len(sandbox.store)


async def test_ignore_keeps_the_existing_untouched(
    sandbox: Sandbox, five_existing: dict[int, str]
) -> None:
    """Under ignore, the 5 existing customizations keep their old pins."""
    async with sandbox.client(retry=FAST_RETRY) as client:
        report = await bulk_create(
            client, [pinned(n) for n in range(1_000)], conflict_strategy="ignore"
        )

    assert (1_000, []) == (report.succeeded, report.failed)
    assert {converter.unstructure(pinned(n, pin="/p/old")) == sandbox.stored_body(cid)
            for n, cid in five_existing.items()} == {True}
    assert 1_000 == len(sandbox.store)


@pytest.mark.slow
@pytest.mark.parametrize("concurrency", [4, 16])
async def test_lost_answers_under_raise_apply_each_line_exactly_once(
    sandbox: Sandbox, concurrency: int
) -> None:
    """30 % lost acknowledgements and 5 % drops: every line applied once, no conflict."""
    sandbox.faults = Faults(seed=5, lost_ack=0.3, drop=0.05, latency=1.0, latency_seconds=0.01)
    policy = RetryPolicy(max_attempts=10, sleep=FAST_RETRY.sleep)
    async with sandbox.client(retry=policy, max_connections=16) as client:
        creator = BulkCreator(client, chunk_size=1_000, concurrency=concurrency)
        report = await creator.run(pinned(n) for n in range(20_000))

    assert (20_000, [], []) == (report.succeeded, report.failed, report.not_attempted)
    assert Counter({natural_key(pinned(n)): 1 for n in range(20_000)}) == stored_keys(sandbox)
    bulk = [r for r in sandbox.requests if r.path.endswith("/_bulk")]
    assert any("lost_ack" in (r.fault or "") for r in bulk) and report.lookups > 0


async def test_invalid_input_is_reported_and_never_sent(sandbox: Sandbox) -> None:
    """Something that is not a Customization fails its line locally; the rest apply."""
    items: list[object] = [pinned(0), {"model": "basket"}, pinned(2), None]
    async with sandbox.client(retry=FAST_RETRY) as client:
        report = await bulk_create(client, items)  # type: ignore[arg-type]

    assert (2, [1, 3]) == (report.succeeded, sorted(r.index for r in report.failed))
    assert all(isinstance(r.error, InvalidCustomizationError) for r in report.failed)
    assert [200] == bulk_requests(sandbox)


async def test_a_413_halves_the_chunk_size_for_the_rest_of_the_run(sandbox: Sandbox) -> None:
    """With a server cap of 1,000 lines, 5,000-line chunks shrink and everything applies."""
    sandbox.bulk_rules = attrs.evolve(sandbox.bulk_rules, max_lines=1_000)
    async with sandbox.client(retry=FAST_RETRY) as client:
        report = await bulk_create(client, (pinned(n) for n in range(6_000)))

    assert (6_000, []) == (report.succeeded, report.failed)
    statuses = Counter(bulk_requests(sandbox))
    assert 413 in statuses and statuses[200] >= 6
    assert 6_000 == len(sandbox.store)


async def test_the_bulk_request_is_signed_as_ndjson(sandbox: Sandbox) -> None:
    """The sandbox verifies the signature over application/x-ndjson: 200, not 401."""
    async with sandbox.client(retry=FAST_RETRY) as client:
        await bulk_create(client, [pinned(1)])

    (request,) = [r for r in sandbox.requests if r.path.endswith("/_bulk")]
    assert (200, (("conflict_strategy", "raise"),)) == (request.status, request.query)
    assert "application/x-ndjson" == NDJSON_CONTENT_TYPE


async def test_summary_counts_what_bulk_created(sandbox: Sandbox) -> None:
    """client.summary() reads the counts per model and the tags in use."""
    async with sandbox.client(retry=FAST_RETRY) as client:
        await bulk_create(client, [pinned(n, model="basket") for n in range(7)])
        await bulk_create(client, [pinned(n, model="detail") for n in range(3)])
        summary = await client.summary()

    assert ({"basket": 7, "detail": 3}, ("bulk",)) == (
        dict(summary.scope_counts), summary.user_tags
    )


@pytest.mark.slow  # volume
async def test_apply_sync_creates_through_the_bulk_endpoint(sandbox: Sandbox) -> None:
    """From empty to 12,000 managed customizations in at most 6 create requests; converged."""
    desired = [pinned(n) for n in range(12_000)]
    async with sandbox.client(retry=FAST_RETRY) as client:
        plan = await plan_sync(client, desired, managed_tag="managed:nightly")
        report = await apply_sync(client, plan, bulk=True)
        again = await plan_sync(client, desired, managed_tag="managed:nightly")

    assert (12_000, True) == (report.create.succeeded, report.ok)
    assert len(bulk_requests(sandbox)) <= 6
    assert [] == [r for r in sandbox.requests if r.path.endswith("/scope")]
    assert (True, 12_000) == (again.is_empty, len(again.unchanged))
    assert all("managed:nightly" in sandbox.stored_body(cid)["tags"] for cid in sandbox.store)


async def test_a_byte_cap_splits_chunks_without_losing_a_line(sandbox: Sandbox) -> None:
    """With max_bytes of 2,000, 100 lines of about 160 bytes take about nine requests."""
    async with sandbox.client(retry=FAST_RETRY) as client:
        report = await BulkCreator(client, max_bytes=2_000).run(pinned(n) for n in range(100))

    sizes = [len(r.body or []) for r in sandbox.requests if r.path.endswith("/_bulk")]
    assert (100, 100) == (report.succeeded, sum(sizes))
    assert len(sizes) >= 8 and max(sizes) <= 12


async def test_lines_are_encoded_off_the_event_loop(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Packing a chunk (thousands of encodes) runs in a worker thread, sync or async input."""
    threads: set[threading.Thread] = set()
    encode = bulk_module._encode

    def spy(index: int, raw: object) -> object:
        threads.add(threading.current_thread())
        return encode(index, raw)

    monkeypatch.setattr(bulk_module, "_encode", spy)

    async def async_input() -> AsyncIterator[Customization]:
        for n in range(10, 20):
            yield pinned(n)

    async with sandbox.client(retry=FAST_RETRY) as client:
        first = await bulk_create(client, (pinned(n) for n in range(10)))
        second = await bulk_create(client, async_input())

    assert (10, 10) == (first.succeeded, second.succeeded)
    assert threads and threading.main_thread() not in threads

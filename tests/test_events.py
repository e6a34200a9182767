"""Event hooks and logs: what a metrics or tracing integration sees of each request."""

from __future__ import annotations

import logging
import uuid

import aiohttp
import pytest

from luigis_async import (
    Customization,
    EventKind,
    LuigisBoxClient,
    NotFoundError,
    RequestEvent,
    converter,
)
from luigis_async.sandbox import Sandbox

from .helpers import FAST_RETRY

BODY = Customization("basket", "all")


async def test_a_request_retried_twice_emits_the_whole_sequence(sandbox: Sandbox) -> None:
    """start/response/retry twice, then start/response/success, with statuses and delays."""
    cid = sandbox.add(converter.unstructure(BODY))
    sandbox.fail_next(2, 503, retry_after=0)
    events: list[RequestEvent] = []
    async with LuigisBoxClient(
        sandbox.tracker_id,
        sandbox.private_key,
        base_url=sandbox.url,
        retry=FAST_RETRY,
        event_hooks=[events.append],
    ) as client:
        await client.update_customization(cid, BODY)

    assert [
        (EventKind.START, 1, None),
        (EventKind.RESPONSE, 1, 503),
        (EventKind.RETRY, 1, 503),
        (EventKind.START, 2, None),
        (EventKind.RESPONSE, 2, 503),
        (EventKind.RETRY, 2, 503),
        (EventKind.START, 3, None),
        (EventKind.RESPONSE, 3, 204),
        (EventKind.SUCCESS, 3, 204),
    ] == [(e.kind, e.attempt, e.status) for e in events]
    assert {f"/v1/recommender/pin/1234-5678/scope/{cid}"} == {e.path for e in events}
    assert [0.0, 0.0] == [e.delay for e in events if e.kind is EventKind.RETRY]
    elapsed = [e.elapsed for e in events]
    assert elapsed == sorted(elapsed)


async def test_a_final_failure_emits_give_up_with_the_error(sandbox: Sandbox) -> None:
    """A 404 is not retried: start, response, give_up carrying the NotFoundError."""
    events: list[RequestEvent] = []
    async with LuigisBoxClient(
        sandbox.tracker_id, sandbox.private_key, base_url=sandbox.url, event_hooks=[events.append]
    ) as client:
        with pytest.raises(NotFoundError) as caught:
            await client.get_customization(uuid.uuid4())

    assert [EventKind.START, EventKind.RESPONSE, EventKind.GIVE_UP] == [e.kind for e in events]
    assert caught.value is events[-1].error


async def test_debug_logs_name_method_path_status_and_never_the_key(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    """DEBUG logs each response and INFO each retry, with no trace of the key."""
    cid = sandbox.add(converter.unstructure(BODY))
    sandbox.fail_next(1, 503, retry_after=0)
    caplog.set_level(logging.DEBUG)
    async with LuigisBoxClient(
        sandbox.tracker_id, sandbox.private_key, base_url=sandbox.url, retry=FAST_RETRY
    ) as client:
        await client.update_customization(cid, BODY)

    messages = [r.getMessage() for r in caplog.records if r.name.startswith("luigis_async")]
    path = f"/v1/recommender/pin/1234-5678/scope/{cid}"
    assert any(m.startswith(f"PUT {path} -> 503") for m in messages)
    assert any(m.startswith(f"retrying PUT {path} in 0.00s after ServerError") for m in messages)
    assert any(m.startswith(f"PUT {path} -> 204") for m in messages)
    assert sandbox.private_key not in caplog.text


async def test_aiohttp_trace_configs_are_passed_through(sandbox: Sandbox) -> None:
    """Users who trace aiohttp see each attempt through their own TraceConfig."""
    seen: list[str] = []

    async def on_request_start(
        _: object, __: object, params: aiohttp.TraceRequestStartParams
    ) -> None:
        seen.append(f"{params.method} {params.url.path}")

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_request_start)
    cid = sandbox.add(converter.unstructure(BODY))
    sandbox.fail_next(1, 503, retry_after=0)
    async with LuigisBoxClient(
        sandbox.tracker_id,
        sandbox.private_key,
        base_url=sandbox.url,
        retry=FAST_RETRY,
        trace_configs=[trace],
    ) as client:
        await client.update_customization(cid, BODY)

    assert [f"PUT /v1/recommender/pin/1234-5678/scope/{cid}"] * 2 == seen

"""Shared helpers of the sandbox tests: raw signed requests over loopback, and fixtures.

The sandbox tests speak raw HTTP with ``aiohttp`` and ``luigis_async.auth.sign``, not the
client, so they test the server on its own. Test modules import the fixtures by name::

    from .sandbox_support import clock, http, sb  # noqa: F401 (fixtures)
"""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import aiohttp
import pytest

from luigis_async.auth import CONTENT_TYPE, NDJSON_CONTENT_TYPE, http_date, sign
from luigis_async.sandbox import Sandbox

NOW = 1_737_374_400.0  # Mon, 20 Jan 2025 12:00:00 GMT
NOW_ISO = "2025-01-20T12:00:00.000Z"
KEY = "test-private-key"
UNKNOWN_ID = "199620b4-df1a-46e8-ab59-9e9ed9af7106"
BULK = "/scopes/_bulk"


class Clock:
    """A settable clock for the sandbox."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Reply(NamedTuple):
    status: int
    json: Any  # None when the body is empty or not JSON
    headers: Mapping[str, str]
    raw: bytes = b""


def _json_or_none(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


def api_path(sb: Sandbox, suffix: str, tracker_id: str | None = None) -> str:
    return f"/v1/recommender/pin/{tracker_id or sb.tracker_id}{suffix}"


def signed_headers(
    sb: Sandbox,
    method: str,
    path: str,
    *,
    key: str | None = None,
    date: str | None = None,
    content_type: str = CONTENT_TYPE,
) -> dict[str, str]:
    date = date if date is not None else http_date(sb.clock())
    signature = sign(key or sb.private_key, method, content_type, date, path)
    return {
        "Content-Type": content_type,
        "Date": date,
        "Authorization": f"ApiAuth {sb.tracker_id}:{signature}",
    }


async def send_raw(
    http: aiohttp.ClientSession,
    sb: Sandbox,
    method: str,
    path: str,
    headers: Mapping[str, str],
    body: Any = None,
    params: Sequence[tuple[str, str]] = (),
) -> Reply:
    data = (
        body if body is None or isinstance(body, bytes | io.BytesIO) else json.dumps(body).encode()
    )
    async with http.request(
        method,
        sb.url + path,
        headers=dict(headers),
        data=data,
        params=list(params),
        skip_auto_headers=["Content-Type"],  # send exactly the headers given, or none
        allow_redirects=False,
    ) as response:
        raw = await response.read()
        return Reply(response.status, _json_or_none(raw), response.headers, raw)


async def send(
    http: aiohttp.ClientSession,
    sb: Sandbox,
    method: str,
    suffix: str,
    body: Any = None,
    params: Sequence[tuple[str, str]] = (),
    tracker_id: str | None = None,
) -> Reply:
    """A correctly signed request to ``/v1/recommender/pin/{tracker}{suffix}``."""
    path = api_path(sb, suffix, tracker_id)
    return await send_raw(http, sb, method, path, signed_headers(sb, method, path), body, params)


def ndjson(lines: Iterable[Any]) -> bytes:
    """One JSON document per line, each ended by a newline."""
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


async def send_bulk(
    http: aiohttp.ClientSession,
    sb: Sandbox,
    body: Iterable[Any] | bytes,
    strategy: str | None = None,
    tracker_id: str | None = None,
) -> Reply:
    """A correctly signed bulk create of ``body`` (lines, or the raw NDJSON bytes)."""
    path = api_path(sb, BULK, tracker_id)
    headers = signed_headers(sb, "POST", path, content_type=NDJSON_CONTENT_TYPE)
    data = body if isinstance(body, bytes) else ndjson(body)
    params = [] if strategy is None else [("conflict_strategy", strategy)]
    return await send_raw(http, sb, "POST", path, headers, data, params)


def item_body(**overrides: Any) -> dict[str, Any]:
    body = {
        "model": "basket",
        "target_type": "item",
        "target_identity": "/p/123",
        "pin_definitions": [
            {
                "position": 1,
                "pin_type": "item",
                "pin_identity": "/p/555",
                "active_from": "2025-02-01T00:00:00Z",
            }
        ],
    }
    return {**body, **overrides}


def pin(position: int = 1, **fields: Any) -> dict[str, Any]:
    return {"position": position, "pin_type": "item", "pin_identity": "/p/1", **fields}


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
async def sb(clock: Clock) -> AsyncIterator[Sandbox]:
    async with Sandbox(clock=clock, private_key=KEY) as sandbox:
        yield sandbox


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session

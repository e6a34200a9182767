"""The sandbox's authentication: each mistake is a 401 naming it, an unknown tracker a 404;
each route signs its type."""

# STYLE.md asks for `assert expected == actual`; ruff's SIM300 calls that a Yoda condition.

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

import aiohttp
import pytest

from luigis_async.auth import CONTENT_TYPE, NDJSON_CONTENT_TYPE, http_date, sign
from luigis_async.sandbox import Faults, Sandbox

from . import sandbox_support
from .helpers import authentication_failure
from .sandbox_support import (
    BULK,
    KEY,
    NOW,
    UNKNOWN_ID,
    api_path,
    item_body,
    send,
    send_raw,
    signed_headers,
)

# The shared fixtures, registered in this module.
clock, http, sb = sandbox_support.clock, sandbox_support.http, sandbox_support.sb


# --- authentication -----------------------------------------------------------------


def _raw_signature(key: str, method: str, date: str, signed_path: str) -> str:
    """A signature over any path, query string included (sign() would strip it)."""
    message = f"{method}\n{CONTENT_TYPE}\n{date}\n{signed_path}".encode()
    return base64.b64encode(hmac.new(key.encode(), message, hashlib.sha256).digest()).decode()


def _wrong_key(sb: Sandbox, method: str, path: str) -> dict[str, str]:
    return signed_headers(sb, method, path, key="not-the-key")


def _plain_json_content_type(sb: Sandbox, method: str, path: str) -> dict[str, str]:
    return signed_headers(sb, method, path, content_type="application/json")


def _no_content_type(sb: Sandbox, method: str, path: str) -> dict[str, str]:
    headers = signed_headers(sb, method, path)
    del headers["Content-Type"]
    return headers


def _no_date(sb: Sandbox, method: str, path: str) -> dict[str, str]:
    headers = signed_headers(sb, method, path)
    del headers["Date"]
    return headers


def _iso_date(sb: Sandbox, method: str, path: str) -> dict[str, str]:
    return signed_headers(sb, method, path, date="2025-01-20T12:00:00Z")


def _skewed_date(sb: Sandbox, method: str, path: str) -> dict[str, str]:
    return signed_headers(sb, method, path, date=http_date(NOW + 60))


def _no_authorization(sb: Sandbox, method: str, path: str) -> dict[str, str]:
    headers = signed_headers(sb, method, path)
    del headers["Authorization"]
    return headers


def _malformed_authorization(sb: Sandbox, method: str, path: str) -> dict[str, str]:
    return {**signed_headers(sb, method, path), "Authorization": "ApiAuth no-colon-here"}


def _other_tracker(sb: Sandbox, method: str, path: str) -> dict[str, str]:
    headers = signed_headers(sb, method, path)
    headers["Authorization"] = headers["Authorization"].replace(sb.tracker_id, "9999-0000")
    return headers


def _query_in_signed_path(sb: Sandbox, method: str, path: str) -> dict[str, str]:
    headers = signed_headers(sb, method, path)
    signature = _raw_signature(KEY, method, headers["Date"], path + "?limit=1")
    headers["Authorization"] = f"ApiAuth {sb.tracker_id}:{signature}"
    return headers


@pytest.mark.parametrize(
    ("make_headers", "reason_part"),
    [
        (_wrong_key, "Invalid signature"),
        (_plain_json_content_type, "Content-Type must be exactly"),
        (_no_content_type, "Missing Content-Type header"),
        (_no_date, "Missing Date header"),
        (_iso_date, "Malformed Date header"),
        (_skewed_date, "Date header is 60s away from server time"),
        (_no_authorization, "Missing Authorization header"),
        (_malformed_authorization, "Malformed Authorization header"),
        (_query_in_signed_path, "Invalid signature"),
    ],
)
@pytest.mark.parametrize("method", ["POST", "GET"])
async def test_bad_authentication_is_401_with_a_diagnostic_reason(
    sb: Sandbox, http: aiohttp.ClientSession, make_headers: Any, reason_part: str, method: str
) -> None:
    """Each authentication mistake answers 401 whose reason names it, and changes nothing."""
    customization_id = sb.add(item_body())
    suffix = "/scopes" if method == "POST" else f"/scope/{customization_id}"
    path = api_path(sb, suffix)

    reply = await send_raw(
        http, sb, method, path, make_headers(sb, method, path), params=[("limit", "1")]
    )

    assert 401 == reply.status
    assert reason_part in reply.json["reason"]
    assert KEY not in reply.json["reason"]


@pytest.mark.parametrize("method", ["POST", "GET"])
async def test_an_unknown_tracker_in_the_authorization_header_is_404(
    sb: Sandbox, http: aiohttp.ClientSession, method: str
) -> None:
    """The API's errors list 404 for a tracker it does not know, not 401: the body is the
    API's error shape, the diagnostic in its details; nothing changes."""
    customization_id = sb.add(item_body())
    before = sb.stored_body(customization_id)
    suffix = "/scopes" if method == "POST" else f"/scope/{customization_id}"
    path = api_path(sb, suffix)

    reply = await send_raw(http, sb, method, path, _other_tracker(sb, method, path))

    assert 404 == reply.status
    assert {
        "reason": "Tracker not found",
        "exception_details": {
            "Authorization": ["Unknown tracker '9999-0000' in Authorization header"]
        },
    } == reply.json
    assert (1, before) == (len(sb.store), sb.stored_body(customization_id))


async def test_skew_within_max_skew_is_accepted(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    """A Date up to max_skew seconds off the sandbox clock still authenticates."""
    path = api_path(sb, "/scopes")
    ahead = signed_headers(sb, "POST", path, date=http_date(NOW + 5))
    behind = signed_headers(sb, "POST", path, date=http_date(NOW - 5))

    replies = [await send_raw(http, sb, "POST", path, h) for h in (ahead, behind)]

    assert [200, 200] == [r.status for r in replies]


async def test_authentication_comes_before_faults(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    """A bad signature is 401 even under faults, and does not use up fail_next."""
    sb.faults = Faults(rate_503=1.0)
    sb.fail_next(1, 500)
    path = api_path(sb, "/scopes")

    rejected = await send_raw(http, sb, "POST", path, _wrong_key(sb, "POST", path))
    scripted = await send(http, sb, "POST", "/scopes")

    assert (401, 500) == (rejected.status, scripted.status)
    assert [None, "fail_next"] == [r.fault for r in sb.requests]


# --- the signed Content-Type, per route -----------------------------------------------


ROUTE_TYPES = [
    # method, path suffix, the type it signs, the other type, status when signed right
    ("POST", BULK, NDJSON_CONTENT_TYPE, CONTENT_TYPE, 200),
    ("POST", "/scope", CONTENT_TYPE, NDJSON_CONTENT_TYPE, 400),
    ("POST", "/scopes", CONTENT_TYPE, NDJSON_CONTENT_TYPE, 200),
    ("POST", "/scopes/export", CONTENT_TYPE, NDJSON_CONTENT_TYPE, 200),
    ("GET", f"/scope/{UNKNOWN_ID}", CONTENT_TYPE, NDJSON_CONTENT_TYPE, 404),
    ("GET", "/summary", CONTENT_TYPE, NDJSON_CONTENT_TYPE, 200),
    ("GET", "/nothing", CONTENT_TYPE, NDJSON_CONTENT_TYPE, 404),
]


@pytest.mark.parametrize(("method", "suffix", "expected", "other", "status"), ROUTE_TYPES)
async def test_each_route_refuses_the_other_content_type(
    sb: Sandbox,
    http: aiohttp.ClientSession,
    method: str,
    suffix: str,
    expected: str,
    other: str,
    status: int,
) -> None:
    """Bulk wants application/x-ndjson signed, every other path the JSON type: else 401."""
    path = api_path(sb, suffix)
    headers = signed_headers(sb, method, path, content_type=other)

    reply = await send_raw(http, sb, method, path, headers, b"")

    assert (
        401,
        f"Content-Type must be exactly {expected!r} (it is signed), got {other!r}",
    ) == (reply.status, reply.json["reason"])


@pytest.mark.parametrize(("method", "suffix", "expected", "other", "status"), ROUTE_TYPES)
async def test_each_route_accepts_its_own_content_type(
    sb: Sandbox,
    http: aiohttp.ClientSession,
    method: str,
    suffix: str,
    expected: str,
    other: str,
    status: int,
) -> None:
    """Signed with its own type, each route gets past authentication to its own answer."""
    path = api_path(sb, suffix)
    headers = signed_headers(sb, method, path, content_type=expected)

    reply = await send_raw(http, sb, method, path, headers, b"")

    assert status == reply.status


@pytest.mark.parametrize("content_type", [CONTENT_TYPE, NDJSON_CONTENT_TYPE, "text/plain"])
def test_authentication_failure_takes_the_expected_content_type(content_type: str) -> None:
    """A request signed and sent with the expected type passes; the default is the JSON one."""
    path = "/v1/recommender/pin/1234-5678/scopes/_bulk"
    date = http_date(NOW)
    signature = sign(KEY, "POST", content_type, date, path)
    headers = {
        "Content-Type": content_type,
        "Date": date,
        "Authorization": f"ApiAuth 1234-5678:{signature}",
    }

    def check(**expected: str) -> str | None:
        return authentication_failure(
            method="POST",
            path=path,
            headers=headers,
            tracker_id="1234-5678",
            private_key=KEY,
            now=NOW,
            max_skew=5.0,
            **expected,
        )

    assert check(content_type=content_type) is None
    assert (check() is None) == (CONTENT_TYPE == content_type)

"""Signing: the documented HMAC-SHA256 scheme, a fresh Date from an injected clock."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable

import pytest

from luigis_async import CONTENT_TYPE, sign
from luigis_async.auth import Signer, http_date

# The update page's example request.
TRACKER_ID = "1234-5678"
PRIVATE_KEY = "your_private_api_key"
METHOD = "PUT"
PATH = "/v1/recommender/pin/1234-5678/scope/199620b4-df1a-46e8-ab59-9e9ed9af7106"
DATE = "Mon, 20 Jan 2025 12:00:00 GMT"
#: DATE as a Unix timestamp.
DATE_TIMESTAMP = 1737374400.0
STRING_TO_SIGN = (
    "PUT\n"
    "application/json; charset=utf-8\n"
    "Mon, 20 Jan 2025 12:00:00 GMT\n"
    "/v1/recommender/pin/1234-5678/scope/199620b4-df1a-46e8-ab59-9e9ed9af7106"
)
#: Computed with the page's shell recipe (printf | openssl dgst -sha256 -hmac | base64).
EXPECTED_SIGNATURE = "MvcWrLm1j3Q/NjPN/pT6zmVY9rYJeq0iasJN5qr6FiQ="


def reference_signature(key: str, string_to_sign: str) -> str:
    """The documented recipe, written out independently of the library."""
    digest = hmac.new(key.encode(), string_to_sign.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode().strip()


def frozen_clock(timestamp: float = DATE_TIMESTAMP) -> Callable[[], float]:
    return lambda: timestamp


def test_content_type_is_the_documented_one() -> None:
    """The Content-Type sent and signed is exactly the page's."""
    assert "application/json; charset=utf-8" == CONTENT_TYPE


def test_sign_matches_independent_hmac() -> None:
    """sign() equals HMAC-SHA256/Base64 of the literal string to sign."""
    expected = reference_signature(PRIVATE_KEY, STRING_TO_SIGN)
    assert expected == sign(PRIVATE_KEY, METHOD, CONTENT_TYPE, DATE, PATH)


def test_sign_matches_pinned_seed_page_signature() -> None:
    """The seed page example signs to a fixed, known Base64 string."""
    assert EXPECTED_SIGNATURE == sign(PRIVATE_KEY, METHOD, CONTENT_TYPE, DATE, PATH)


def test_reference_recipe_agrees_with_pinned_signature() -> None:
    """The test's own recipe reproduces the pinned value (so both checks are meaningful)."""
    assert EXPECTED_SIGNATURE == reference_signature(PRIVATE_KEY, STRING_TO_SIGN)


@pytest.mark.parametrize(
    "query", ["?limit=1", "?limit=10&offset=20&model=a&model=b", "?", "?sort=created_at:desc"]
)
def test_query_string_is_never_signed(query: str) -> None:
    """A path with a query string signs the same as the bare path."""
    expected = sign(PRIVATE_KEY, "POST", CONTENT_TYPE, DATE, PATH)
    assert expected == sign(PRIVATE_KEY, "POST", CONTENT_TYPE, DATE, PATH + query)


@pytest.mark.parametrize(
    ("part", "value"),
    [
        ("method", "GET"),
        ("content_type", "application/json"),
        ("date", "Mon, 20 Jan 2025 12:00:01 GMT"),
        ("path", PATH + "0"),
        ("private_key", "another_key"),
    ],
)
def test_every_signed_part_changes_the_signature(part: str, value: str) -> None:
    """Changing any of key, method, content type, date or path changes the signature."""
    args = {
        "private_key": PRIVATE_KEY,
        "method": METHOD,
        "content_type": CONTENT_TYPE,
        "date": DATE,
        "path": PATH,
    }
    assert EXPECTED_SIGNATURE != sign(**{**args, part: value})


# -- http_date -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        (DATE_TIMESTAMP, DATE),
        (DATE_TIMESTAMP + 0.999, DATE),
        (0.0, "Thu, 01 Jan 1970 00:00:00 GMT"),
        (1709164800.0, "Thu, 29 Feb 2024 00:00:00 GMT"),
        (1735689599.0, "Tue, 31 Dec 2024 23:59:59 GMT"),
    ],
)
def test_http_date(timestamp: float, expected: str) -> None:
    """http_date formats a timestamp as an RFC 1123 date in GMT."""
    assert expected == http_date(timestamp)


# -- Signer --------------------------------------------------------------------------


def test_signer_headers_for_seed_example() -> None:
    """Signer gives Date, Content-Type and an ApiAuth Authorization matching sign()."""
    signer = Signer(TRACKER_ID, PRIVATE_KEY, clock=frozen_clock())
    expected = {
        "Date": DATE,
        "Content-Type": "application/json; charset=utf-8",
        "Authorization": f"ApiAuth 1234-5678:{EXPECTED_SIGNATURE}",
    }
    assert expected == signer.headers(METHOD, PATH)


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE"])
def test_signer_authorization_matches_sign(method: str) -> None:
    """The Authorization header carries exactly sign() of the same request."""
    signer = Signer(TRACKER_ID, PRIVATE_KEY, clock=frozen_clock())
    headers = signer.headers(method, PATH + "?limit=1")
    expected = "ApiAuth 1234-5678:" + sign(PRIVATE_KEY, method, CONTENT_TYPE, headers["Date"], PATH)
    assert expected == headers["Authorization"]


def test_signer_is_reusable_across_requests() -> None:
    """Signing one request does not disturb the next (the keyed HMAC is copied per use)."""
    signer = Signer(TRACKER_ID, PRIVATE_KEY, clock=frozen_clock())
    signer.headers("GET", "/other")
    expected = f"ApiAuth 1234-5678:{EXPECTED_SIGNATURE}"
    assert expected == signer.headers(METHOD, PATH)["Authorization"]


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        (DATE_TIMESTAMP, "Mon, 20 Jan 2025 12:00:00 GMT"),
        (DATE_TIMESTAMP + 0.5, "Mon, 20 Jan 2025 12:00:00 GMT"),
        (DATE_TIMESTAMP + 61, "Mon, 20 Jan 2025 12:01:01 GMT"),
        (1740787200.0, "Sat, 01 Mar 2025 00:00:00 GMT"),
    ],
)
def test_signer_date_from_injected_clock(timestamp: float, expected: str) -> None:
    """The Date header is the injected clock's time in RFC 1123 GMT."""
    signer = Signer(TRACKER_ID, PRIVATE_KEY, clock=frozen_clock(timestamp))
    assert expected == signer.headers("GET", PATH)["Date"]


def test_signer_date_follows_the_clock() -> None:
    """Each request gets a fresh Date: a later clock reading gives a later header."""
    now = [DATE_TIMESTAMP]
    signer = Signer(TRACKER_ID, PRIVATE_KEY, clock=lambda: now[0])
    first = signer.headers("GET", PATH)["Date"]
    now[0] += 7
    second = signer.headers("GET", PATH)["Date"]
    assert (DATE, "Mon, 20 Jan 2025 12:00:07 GMT") == (first, second)


@pytest.mark.parametrize(
    ("offset", "expected"),
    [
        (0.0, "Mon, 20 Jan 2025 12:00:00 GMT"),
        (30.0, "Mon, 20 Jan 2025 12:00:30 GMT"),
        (-3600.0, "Mon, 20 Jan 2025 11:00:00 GMT"),
        (86400.0, "Tue, 21 Jan 2025 12:00:00 GMT"),
    ],
)
def test_signer_offset_shifts_the_date(offset: float, expected: str) -> None:
    """A learned clock offset is added to the local clock when dating a request."""
    signer = Signer(TRACKER_ID, PRIVATE_KEY, clock=frozen_clock())
    signer.offset = offset
    assert (expected, DATE_TIMESTAMP + offset) == (signer.date(), signer.now())


def test_signer_offset_applies_after_a_date_was_cached() -> None:
    """Setting the offset after a request re-dates the next one in the same second."""
    signer = Signer(TRACKER_ID, PRIVATE_KEY, clock=frozen_clock())
    signer.headers("GET", PATH)
    signer.offset = 10.0
    assert "Mon, 20 Jan 2025 12:00:10 GMT" == signer.headers("GET", PATH)["Date"]


def test_signer_repr_names_tracker_not_key() -> None:
    """repr(Signer) shows the tracker and offset and never the private key."""
    signer = Signer(TRACKER_ID, PRIVATE_KEY, clock=frozen_clock())
    assert "<Signer 1234-5678 offset=+0.0s>" == repr(signer)


def test_signer_attributes_never_hold_the_key() -> None:
    """No attribute of a Signer holds or shows the private key string."""
    signer = Signer(TRACKER_ID, PRIVATE_KEY, clock=frozen_clock())
    shown = {name: repr(getattr(signer, name)) for name in Signer.__slots__}
    assert {} == {name: text for name, text in shown.items() if PRIVATE_KEY in text}


def test_signer_has_no_instance_dict() -> None:
    """A slotted Signer has no __dict__ where the key could be stashed and dumped."""
    signer = Signer(TRACKER_ID, PRIVATE_KEY, clock=frozen_clock())
    assert False is hasattr(signer, "__dict__")

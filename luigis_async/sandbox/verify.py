"""Server-side check of a request's HMAC signature, with the real service's strictness.

It returns a diagnostic reason rather than a bare "no": the point of a sandbox is to tell
a developer which of the four signed parts they got wrong.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping
from email.utils import parsedate_to_datetime

from luigis_async.auth import CONTENT_TYPE, http_date, sign

__all__ = ["authentication_failure"]

_RFC1123 = re.compile(
    r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} "
    r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} GMT"
)


def _date_timestamp(value: str) -> float | None:
    if not _RFC1123.fullmatch(value):
        return None
    try:
        return parsedate_to_datetime(value).timestamp()
    except ValueError:  # e.g. 31 Feb
        return None


def authentication_failure(
    *,
    method: str,
    path: str,
    headers: Mapping[str, str],
    tracker_id: str,
    private_key: str,
    now: float,
    max_skew: float,
    content_type: str = CONTENT_TYPE,
) -> str | None:
    """Why the request fails authentication, or None when it passes.

    ``path`` must be the path exactly as sent, without the query string; ``content_type``
    is the one the route expects, sent and signed byte for byte (the bulk route's is
    ``application/x-ndjson``, every other route's ``application/json; charset=utf-8``).
    """
    sent_type = headers.get("Content-Type")
    if sent_type is None:
        return f"Missing Content-Type header; send and sign {content_type!r}"
    if sent_type != content_type:
        return f"Content-Type must be exactly {content_type!r} (it is signed), got {sent_type!r}"

    date = headers.get("Date")
    if date is None:
        return "Missing Date header"
    timestamp = _date_timestamp(date)
    if timestamp is None:
        return f"Malformed Date header {date!r}: expected RFC 1123 in GMT, e.g. {http_date(0)!r}"

    authorization = headers.get("Authorization")
    if authorization is None:
        return "Missing Authorization header"
    words = authorization.split()
    client_tracker, colon, signature = words[-1].partition(":") if len(words) == 2 else ("", "", "")
    if not (client_tracker and colon and signature):
        return "Malformed Authorization header: expected 'ApiAuth {tracker_id}:{signature}'"
    if client_tracker != tracker_id:
        return f"Unknown tracker {client_tracker!r} in Authorization header"

    skew = timestamp - now
    if abs(skew) > max_skew:
        return (
            f"Date header is {abs(skew):.0f}s away from server time "
            f"(server time {http_date(now)}, at most {max_skew:g}s allowed)"
        )

    expected = sign(private_key, method, content_type, date, path)
    if not hmac.compare_digest(
        signature.encode("utf-8", "surrogateescape"), expected.encode("ascii")
    ):
        string_to_sign = f"{method}\n{content_type}\n{date}\n{path}"
        return (
            "Invalid signature: expected Base64 HMAC-SHA256 of "
            f"{string_to_sign!r} with the private key (the path has no query string)"
        )
    return None

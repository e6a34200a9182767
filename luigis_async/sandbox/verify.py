"""Server-side check of a request's HMAC signature, with the real service's strictness.

It returns a diagnostic reason rather than a bare "no": the point of a sandbox is to tell
a developer which of the four signed parts they got wrong. Every mistake is a 401 but one:
a tracker the server does not know is 404 "Tracker not found", as the API's errors say
("404 tracker or customization not found"; bulk: "404 (tracker not found)"), whether the
path or the Authorization header names it; the diagnostic is then the error body's
``exception_details``.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Final

import attrs

from luigis_async.auth import CONTENT_TYPE, http_date, sign

__all__ = ["TRACKER_NOT_FOUND", "Refusal", "refusal"]

#: The ``reason`` of the 404 for a tracker the server does not know.
TRACKER_NOT_FOUND: Final = "Tracker not found"

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


@attrs.frozen
class Refusal:
    """A request refused before its route: the status and the API's error body parts."""

    status: int
    reason: str
    #: What ``diagnostic`` says, by header, when ``reason`` is the API's fixed text.
    details: Mapping[str, list[str]] | None = None

    @property
    def diagnostic(self) -> str:
        """What is wrong, in one line."""
        if self.details:
            return "; ".join(message for messages in self.details.values() for message in messages)
        return self.reason


def refusal(
    *,
    method: str,
    path: str,
    headers: Mapping[str, str],
    tracker_id: str,
    private_key: str,
    now: float,
    max_skew: float,
    content_type: str = CONTENT_TYPE,
) -> Refusal | None:
    """How the request is refused (401, or 404 for an unknown tracker), or None when it
    passes.

    ``path`` must be the path exactly as sent, without the query string; ``content_type``
    is the one the route expects, sent and signed byte for byte (the bulk route's is
    ``application/x-ndjson``, every other route's ``application/json; charset=utf-8``).
    """
    sent_type = headers.get("Content-Type")
    if sent_type is None:
        return Refusal(401, f"Missing Content-Type header; send and sign {content_type!r}")
    if sent_type != content_type:
        return Refusal(
            401, f"Content-Type must be exactly {content_type!r} (it is signed), got {sent_type!r}"
        )

    date = headers.get("Date")
    if date is None:
        return Refusal(401, "Missing Date header")
    timestamp = _date_timestamp(date)
    if timestamp is None:
        return Refusal(
            401,
            f"Malformed Date header {date!r}: expected RFC 1123 in GMT, e.g. {http_date(0)!r}",
        )

    authorization = headers.get("Authorization")
    if authorization is None:
        return Refusal(401, "Missing Authorization header")
    words = authorization.split()
    client_tracker, colon, signature = words[-1].partition(":") if len(words) == 2 else ("", "", "")
    if not (client_tracker and colon and signature):
        return Refusal(
            401, "Malformed Authorization header: expected 'ApiAuth {tracker_id}:{signature}'"
        )
    if client_tracker != tracker_id:
        unknown = f"Unknown tracker {client_tracker!r} in Authorization header"
        return Refusal(404, TRACKER_NOT_FOUND, {"Authorization": [unknown]})

    skew = timestamp - now
    if abs(skew) > max_skew:
        return Refusal(
            401,
            f"Date header is {abs(skew):.0f}s away from server time "
            f"(server time {http_date(now)}, at most {max_skew:g}s allowed)",
        )

    expected = sign(private_key, method, content_type, date, path)
    if not hmac.compare_digest(
        signature.encode("utf-8", "surrogateescape"), expected.encode("ascii")
    ):
        string_to_sign = f"{method}\n{content_type}\n{date}\n{path}"
        return Refusal(
            401,
            "Invalid signature: expected Base64 HMAC-SHA256 of "
            f"{string_to_sign!r} with the private key (the path has no query string)",
        )
    return None

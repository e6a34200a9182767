"""Signing and the clock: how a request proves who sent it.

The API signs ``METHOD\\nCONTENT_TYPE\\nDATE\\nPATH`` with HMAC-SHA256 and the private key,
Base64-encoded, sent as ``Authorization: ApiAuth {tracker_id}:{signature}``. The server
accepts a ``Date`` only within about 5 s of its own clock, so every request and every retry
is signed afresh; ``Signer`` corrects for a measured clock offset.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable
from email.utils import formatdate

__all__ = ["CONTENT_TYPE", "NDJSON_CONTENT_TYPE", "Signer", "http_date", "sign"]

#: The exact Content-Type sent and signed on every request (GET and DELETE included).
CONTENT_TYPE = "application/json; charset=utf-8"
#: The exact Content-Type sent and signed by the bulk create endpoint (an NDJSON body).
NDJSON_CONTENT_TYPE = "application/x-ndjson"


def http_date(timestamp: float) -> str:
    """RFC 1123 date in GMT, e.g. ``Mon, 20 Jan 2025 12:00:00 GMT``."""
    return formatdate(timestamp, usegmt=True)


def _string_to_sign(method: str, content_type: str, date: str, path: str) -> bytes:
    bare_path = path.split("?", 1)[0]
    return f"{method}\n{content_type}\n{date}\n{bare_path}".encode()


def sign(private_key: str, method: str, content_type: str, date: str, path: str) -> str:
    """The request signature; the query string, if any, is never part of the signed path."""
    digest = hmac.new(
        private_key.encode(), _string_to_sign(method, content_type, date, path), hashlib.sha256
    ).digest()
    return base64.b64encode(digest).decode("ascii")


class Signer:
    """Signs requests for one tracker, with a cached HMAC key and a skew-corrected clock.

    It keeps only the keyed HMAC state, never the key string, so neither ``repr`` nor an
    attribute dump of a client reveals the key.
    """

    __slots__ = ("_date_cache", "_mac", "_prefix", "clock", "offset")

    def __init__(
        self, tracker_id: str, private_key: str, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._mac = hmac.new(private_key.encode(), digestmod=hashlib.sha256)
        self._prefix = f"ApiAuth {tracker_id}:"
        self._date_cache: tuple[int, str] = (-1, "")
        #: The time source; tests inject a skewed or frozen one.
        self.clock = clock
        #: Seconds to add to the local clock to get the server's (learned from a 401).
        self.offset = 0.0

    def __repr__(self) -> str:
        return f"<Signer {self._prefix.split(' ', 1)[1].rstrip(':')} offset={self.offset:+.1f}s>"

    def now(self) -> float:
        """The current time as the server sees it."""
        return self.clock() + self.offset

    def date(self) -> str:
        """The ``Date`` header for now, formatted at most once per second."""
        second = int(self.now())
        cached_second, cached = self._date_cache
        if second != cached_second:
            cached = http_date(second)
            self._date_cache = (second, cached)
        return cached

    def headers(self, method: str, path: str) -> dict[str, str]:
        """Fresh ``Date``, ``Content-Type`` and ``Authorization`` headers for one attempt."""
        date = self.date()
        mac = self._mac.copy()
        mac.update(_string_to_sign(method, CONTENT_TYPE, date, path))
        signature = base64.b64encode(mac.digest()).decode("ascii")
        return {
            "Date": date,
            "Content-Type": CONTENT_TYPE,
            "Authorization": self._prefix + signature,
        }

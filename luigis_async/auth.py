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
import logging
import time
from collections.abc import Callable
from email.utils import formatdate, parsedate_to_datetime
from typing import Final

__all__ = ["CONTENT_TYPE", "NDJSON_CONTENT_TYPE", "SKEW_THRESHOLD", "Signer", "http_date", "sign"]

log: Final[logging.Logger] = logging.getLogger("luigis_async")

#: A 401 whose server ``Date`` differs from our clock by more than this is taken as skew.
SKEW_THRESHOLD: Final = 2.0

#: The exact Content-Type sent and signed on every request (GET and DELETE included).
CONTENT_TYPE = "application/json; charset=utf-8"
#: The exact Content-Type sent and signed by the bulk create endpoint (an NDJSON body).
NDJSON_CONTENT_TYPE = "application/x-ndjson"


def http_date(timestamp: float) -> str:
    """RFC 1123 date in GMT, e.g. ``Mon, 20 Jan 2025 12:00:00 GMT``.

    Args:
        timestamp: seconds since the epoch.

    Returns:
        The date, as a ``Date`` header writes it.
    """
    return formatdate(timestamp, usegmt=True)


def _string_to_sign(method: str, content_type: str, date: str, path: str) -> bytes:
    bare_path = path.split("?", 1)[0]
    return f"{method}\n{content_type}\n{date}\n{bare_path}".encode()


def sign(private_key: str, method: str, content_type: str, date: str, path: str) -> str:
    """The request signature; the query string, if any, is never part of the signed path.

    Args:
        private_key: the tracker's private key.
        method: the HTTP method, e.g. ``GET``.
        content_type: the exact ``Content-Type`` sent (``CONTENT_TYPE``).
        date: the exact ``Date`` sent (see ``http_date``).
        path: the request's path, without the host.

    Returns:
        The Base64 HMAC-SHA256 of ``METHOD\\nCONTENT_TYPE\\nDATE\\nPATH``: what follows
        ``ApiAuth {tracker_id}:`` in the ``Authorization`` header.
    """
    digest = hmac.new(
        private_key.encode(), _string_to_sign(method, content_type, date, path), hashlib.sha256
    ).digest()
    return base64.b64encode(digest).decode("ascii")


class Signer:
    """Signs requests for one tracker, with a cached HMAC key and a skew-corrected clock.

    It keeps only the keyed HMAC state, never the key string, so neither ``repr`` nor an
    attribute dump of a client reveals the key. ``epoch`` counts offset changes, so a
    request refused with 401 can tell whether it was signed before the latest correction.

    Args:
        tracker_id: the tracker the requests are for.
        private_key: its private key (only the keyed HMAC state is kept).
        clock: the local time source (``time.time``).
    """

    __slots__ = ("_date_cache", "_mac", "_offset", "_prefix", "clock", "epoch")

    def __init__(
        self, tracker_id: str, private_key: str, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._mac = hmac.new(private_key.encode(), digestmod=hashlib.sha256)
        self._prefix = f"ApiAuth {tracker_id}:"
        self._date_cache: tuple[int, str] = (-1, "")
        #: The time source; tests inject a skewed or frozen one.
        self.clock: Callable[[], float] = clock
        self._offset = 0.0
        #: How many times ``offset`` changed.
        self.epoch: int = 0

    @property
    def offset(self) -> float:
        """Seconds to add to the local clock to get the server's (learned from a 401)."""
        return self._offset

    @offset.setter
    def offset(self, value: float) -> None:
        self._offset = value
        self.epoch += 1

    def should_resign(self, signed_epoch: int, server_date: str | None) -> bool:
        """After a 401: is signing again worth it? True when the request was signed before
        the latest clock correction, or its answer's ``Date`` shows a new skew (learnt here).

        Under concurrency many requests signed with the old offset are refused together;
        only the first teaches the offset, the others are simply signed again.

        Args:
            signed_epoch: the ``epoch`` the refused request was signed in.
            server_date: the 401's ``Date`` header, if any.

        Returns:
            Whether to sign the request again and resend it.
        """
        if signed_epoch != self.epoch:
            return True
        try:
            server_time = parsedate_to_datetime(server_date).timestamp() + 0.5  # type: ignore[arg-type]
        except (TypeError, ValueError, IndexError):
            return False
        offset = server_time - self.clock()
        if abs(offset - self._offset) <= SKEW_THRESHOLD:
            return False
        log.warning("local clock is %.1fs off the server's; signing with corrected time", -offset)
        self.offset = offset
        return True

    def __repr__(self) -> str:
        return f"<Signer {self._prefix.split(' ', 1)[1].rstrip(':')} offset={self.offset:+.1f}s>"

    def now(self) -> float:
        """The current time as the server sees it.

        Returns:
            Epoch seconds: ``clock()`` plus the learned ``offset``.
        """
        return self.clock() + self._offset

    def date(self) -> str:
        """The ``Date`` header for now, formatted at most once per second.

        Returns:
            The server's current time as an RFC 1123 date.
        """
        second = int(self.now())
        cached_second, cached = self._date_cache
        if second != cached_second:
            cached = http_date(second)
            self._date_cache = (second, cached)
        return cached

    def headers(
        self, method: str, path: str, content_type: str = CONTENT_TYPE
    ) -> dict[str, str]:
        """Fresh ``Date``, ``Content-Type`` and ``Authorization`` headers for one attempt.

        Args:
            method: the HTTP method.
            path: the request's path, without the host (a query string is not signed).
            content_type: the exact ``Content-Type`` to send and sign.

        Returns:
            The three headers.
        """
        date = self.date()
        mac = self._mac.copy()
        mac.update(_string_to_sign(method, content_type, date, path))
        signature = base64.b64encode(mac.digest()).decode("ascii")
        return {
            "Date": date,
            "Content-Type": content_type,
            "Authorization": self._prefix + signature,
        }

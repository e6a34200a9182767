"""Scripted answers: exact responses queued by a test, sent instead of the route's.

``fail_next`` and ``respond_next`` queue them; the pipeline takes the first one that fits
each authenticated request's route, before admission and random faults. They reproduce
what no random fault does: a proxy's HTML page, a redirect, an empty 200.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

import attrs
from aiohttp import web

from luigis_async.sandbox.routes import ENDPOINTS
from luigis_async.sandbox.wire import fault_reason

__all__ = ["ScriptedResponse", "Scripts"]

#: Statuses whose answers HTTP forbids a body for.
_NO_BODY: Final = frozenset({204, 304, *range(100, 200)})


def _status(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 100 <= value <= 599:
        raise ValueError(f"status must be an HTTP status (100-599), got {value!r}")


def _route(instance: object, attribute: attrs.Attribute[str | None], value: str | None) -> None:
    if value is not None and value not in ENDPOINTS:
        raise ValueError(f"route must be one of {', '.join(ENDPOINTS)} or None, got {value!r}")


def _header_seconds(value: str | float) -> str:
    if isinstance(value, str):
        return value
    return str(int(value)) if float(value).is_integer() else str(value)


def _headers(value: Mapping[str, str]) -> dict[str, str]:
    return dict(value)


def _body(value: bytes | str) -> bytes:
    return value.encode() if isinstance(value, str) else bytes(value)


@attrs.frozen(kw_only=True)
class ScriptedResponse:
    """An exact answer to send instead of the route's: status, body bytes and headers.

    ``route`` limits it to one route's requests (others do not consume it); ``apply``
    runs the route first, so a write takes effect, and then discards its answer. A 1xx,
    204 or 304 may not have a body; a 1xx is sent as the final answer (HTTP clients then
    wait for another one, as from a server that hangs). ``headers`` are set last, so they
    may replace the Content-Type or the ``Date``.
    """

    status: int = attrs.field(validator=_status)
    body: bytes = attrs.field(default=b"", converter=_body)
    content_type: str = "application/json"
    headers: Mapping[str, str] = attrs.field(factory=dict, converter=_headers)
    route: str | None = attrs.field(default=None, validator=_route)
    apply: bool = False
    #: What the request log's ``fault`` says.
    fault: str = "scripted"

    @classmethod
    def error(cls, status: int, retry_after: str | float | None = None) -> ScriptedResponse:
        """``fail_next``'s answer: the API's error body, with ``Retry-After`` if given."""
        if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599:
            raise ValueError(f"status must be an HTTP error status (400-599), got {status!r}")
        headers = {} if retry_after is None else {"Retry-After": _header_seconds(retry_after)}
        return cls(
            status=status,
            body=json.dumps({"reason": fault_reason(status, "fail_next")}),
            content_type="application/json; charset=utf-8",
            headers=headers,
            fault="fail_next",
        )

    def __attrs_post_init__(self) -> None:
        if self.body and self.status in _NO_BODY:
            raise ValueError(f"a {self.status} answer cannot have a body")

    def response(self) -> web.Response:
        headers = {"Content-Type": self.content_type, **self.headers}
        return web.Response(status=self.status, body=self.body or None, headers=headers)


class Scripts:
    """Scripted answers in the order queued, each with how many requests it still answers."""

    def __init__(self) -> None:
        self._queue: list[list[Any]] = []  # [ScriptedResponse, remaining count]

    def add(self, n: int, script: ScriptedResponse) -> None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"n must be an integer >= 0, got {n!r}")
        if n:
            self._queue.append([script, n])

    def take(self, route: str | None) -> ScriptedResponse | None:
        """The first script for ``route`` (or for any route), counted down; None if none."""
        for entry in self._queue:
            script: ScriptedResponse = entry[0]
            if script.route is None or script.route == route:
                entry[1] -= 1
                if not entry[1]:
                    self._queue.remove(entry)
                return script
        return None

    def __len__(self) -> int:
        """How many requests are still scripted."""
        return sum(entry[1] for entry in self._queue)

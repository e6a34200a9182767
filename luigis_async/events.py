"""Request lifecycle events, for metrics and tracing without depending on any backend.

Pass ``event_hooks=[callback]`` to ``LuigisBoxClient``; each callback is called
synchronously with a ``RequestEvent`` at every step of every request::

    start -> response (or transport_error) -> retry -> start -> ... -> success | give_up

Callbacks must be quick and must not raise (an exception propagates into the request).
Feed Prometheus counters or OpenTelemetry spans from them; the key is never in an event.
"""

from __future__ import annotations

import enum
from collections.abc import Callable

import attrs

from .errors import LuigisBoxError

__all__ = ["EventHook", "EventKind", "RequestEvent"]


class EventKind(enum.StrEnum):
    """A step of a request's life."""

    #: An attempt is about to be sent (signed with a fresh Date).
    START = "start"
    #: An attempt got an HTTP answer (any status).
    RESPONSE = "response"
    #: An attempt got no answer: connection refused or dropped, or a timeout.
    TRANSPORT_ERROR = "transport_error"
    #: The request will be tried again after ``delay`` seconds.
    RETRY = "retry"
    #: The request succeeded (after ``attempt`` attempts).
    SUCCESS = "success"
    #: The request failed for good; ``error`` is what the caller gets.
    GIVE_UP = "give_up"


@attrs.frozen
class RequestEvent:
    """One step of one request.

    Args:
        kind: which step.
        method: the HTTP method.
        path: the path as signed (no host, no key).
        attempt: the attempt this step belongs to, 1-based.
        elapsed: seconds since the request began.
        status: the HTTP status when there was one: on ``response`` and ``success``, and
            on ``retry`` and ``give_up`` after an API error.
        delay: on ``retry``, the seconds before the next attempt.
        error: on ``transport_error``, ``retry`` and ``give_up``, the error met.
    """

    kind: EventKind
    method: str
    path: str
    attempt: int
    elapsed: float
    status: int | None = None
    delay: float | None = None
    error: LuigisBoxError | None = None


EventHook = Callable[[RequestEvent], None]

"""The request pipeline: what every request passes on its way to (or instead of) its route.

In order: the body is read and parsed once (413 when over the limit); authentication (401
with a diagnostic reason, 404 "Tracker not found" for a tracker the sandbox does not know;
each route signs its own Content-Type); a scripted answer, when
one is queued for the request's route; admission (``max_in_flight``: 429); the random
faults (latency, then an error status, a dropped connection or a lost acknowledgement);
and finally the route. Every request is logged in ``requests``, rejected ones included.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any, Final, Protocol

import attrs
from aiohttp import web
from aiohttp.typedefs import Handler

from luigis_async.auth import CONTENT_TYPE, http_date
from luigis_async.sandbox.faults import Decision, FaultInjector, Faults
from luigis_async.sandbox.routes import ENDPOINTS, Endpoint
from luigis_async.sandbox.scripted import Scripts
from luigis_async.sandbox.verify import refusal
from luigis_async.sandbox.wire import (
    Body,
    error_response,
    fault_response,
    hand_over,
    parse_json,
    parse_ndjson,
)

__all__ = ["JSON_BODY_LIMIT", "Account", "Pipeline", "RequestRecord"]

#: The largest JSON body (every route but bulk) accepted; a larger one is 413.
JSON_BODY_LIMIT: Final = 1024**2


@attrs.frozen
class RequestRecord:
    """One request as the sandbox saw it, for tests to assert on.

    ``path`` is the raw path as sent (what was signed), without the query string; ``body``
    the parsed JSON, or None when empty or not JSON (for a bulk request: the list of its
    parsed lines, None for a line that is not JSON, parsed once and shared with the
    handler); ``status`` 0 when the connection was dropped; ``fault`` the injected faults
    joined by ``+`` (e.g. ``latency+503``), ``scripted`` or ``fail_next`` for a scripted
    answer, or None; ``route`` the route's name (``create``, ``bulk``, ...), None for a path
    the API lacks. ``route`` is left out of comparisons.
    """

    method: str
    path: str
    query: tuple[tuple[str, str], ...]
    status: int
    body: Any
    fault: str | None
    route: str | None = attrs.field(default=None, eq=False)


class Account(Protocol):
    """What the pipeline reads at every request, so a test may change it at any time."""

    @property
    def tracker_id(self) -> str: ...
    @property
    def private_key(self) -> str: ...
    @property
    def max_skew(self) -> float: ...
    @property
    def clock(self) -> Callable[[], float]: ...


class Pipeline:
    """Authentication, scripted answers, admission and faults, as one aiohttp middleware."""

    def __init__(self, account: Account, faults: Faults) -> None:
        self.account = account
        self.injector: FaultInjector = FaultInjector(faults)
        self.scripts: Scripts = Scripts()
        self.requests: list[RequestRecord] = []
        self.in_flight: int = 0
        self.max_in_flight_seen: int = 0
        #: Set by stop(): wakes requests delayed by latency.
        self.stopping: asyncio.Event = asyncio.Event()
        self._admitted = 0  # requests past the max_in_flight gate, being served

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.in_flight += 1
        self.max_in_flight_seen = max(self.max_in_flight_seen, self.in_flight)
        route = request.match_info.route.name
        status, fault, body = 0, None, Body(None)
        response: web.StreamResponse | None
        try:
            read = await _read(request, route)
            if isinstance(read, web.Response):
                response = read
            else:
                body = read
                hand_over(body)
                response, fault = await self._respond(request, handler, ENDPOINTS.get(route or ""))
            if response is None:
                if request.transport is not None:
                    request.transport.close()
                # Never written: aiohttp sees the closed transport and gives up quietly.
                return web.Response()
            response.headers.setdefault("Date", http_date(self.account.clock()))
            status = response.status
            return response
        finally:
            self.in_flight -= 1
            path = request.raw_path.partition("?")[0]
            query = tuple(request.query.items())
            self.requests.append(
                RequestRecord(request.method, path, query, status, body.value, fault, route)
            )

    async def _respond(
        self, request: web.Request, handler: Handler, endpoint: Endpoint | None
    ) -> tuple[web.StreamResponse | None, str | None]:
        """The response (None: drop the connection) and the injected faults, if any."""
        account = self.account
        refused = refusal(
            method=request.method,
            path=request.raw_path.partition("?")[0],
            headers=request.headers,
            tracker_id=account.tracker_id,
            private_key=account.private_key,
            now=account.clock(),
            max_skew=account.max_skew,
            content_type=endpoint.content_type if endpoint is not None else CONTENT_TYPE,
        )
        if refused is not None:
            return error_response(refused.status, refused.reason, refused.details), None
        faults = self.injector.faults
        # Drawn for every authenticated request, so the seeded sequence never shifts.
        decision = self.injector.decide()
        script = self.scripts.take(request.match_info.route.name)
        if script is not None:
            if script.apply:
                await handler(request)
            return script.response(), script.fault
        # Admission is checked and counted with no await in between, so exactly N get in.
        if faults.max_in_flight is not None and self._admitted >= faults.max_in_flight:
            return fault_response(429, "max_in_flight", faults.retry_after), "max_in_flight"
        self._admitted += 1
        try:
            return await self._serve(request, handler, decision, faults, endpoint)
        finally:
            self._admitted -= 1

    async def _serve(
        self,
        request: web.Request,
        handler: Handler,
        decision: Decision,
        faults: Faults,
        endpoint: Endpoint | None,
    ) -> tuple[web.StreamResponse | None, str | None]:
        """Apply the random faults decided for an admitted request, else handle it."""
        injected = []
        if decision.delay:
            injected.append("latency")
            await self._delay(decision.delay)
        response: web.StreamResponse | None
        if decision.error is None:
            response = await handler(request)
        elif decision.error == "drop":
            injected.append("drop")
            response = None
        else:
            injected.append(decision.error)
            if decision.error == "lost_ack" and endpoint is not None and endpoint.writes:
                await handler(request)
            status = 503 if decision.error == "lost_ack" else int(decision.error)
            retry_after = faults.retry_after if status in (429, 503) else None
            response = fault_response(status, decision.error, retry_after)
        return response, "+".join(injected) or None

    async def _delay(self, seconds: float) -> None:
        """Wait, but wake at once when the sandbox stops, so stopping stays prompt."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self.stopping.wait()


async def _read(request: web.Request, route: str | None) -> Body | web.Response:
    """The parsed body, or the 413 answer for one over the limit."""
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge as exc:  # over the application's absolute cap
        return error_response(exc.status, exc.reason)
    if route == "bulk":
        return parse_ndjson(raw)
    if len(raw) > JSON_BODY_LIMIT:
        return error_response(413, f"Request Entity Too Large (at most {JSON_BODY_LIMIT} bytes)")
    return parse_json(raw)

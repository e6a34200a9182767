"""Sandbox: a local stand-in for the pin customization API, served by aiohttp.web.

Like moto for boto: tests, benchmarks and demos speak plain HTTP to it exactly as to the
real service (same paths, signatures, statuses and error bodies); it keeps its state in a
dict that tests can read and seed; and it misbehaves on demand (``Faults``,
``fail_next``) so retry and throttling code gets exercised against real sockets.

Every request passes, in order: authentication (401), scripted and random faults, routing
and the handler. Each one is logged in ``Sandbox.requests``, rejected ones included.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import secrets
import time
import uuid
from collections import deque
from collections.abc import Callable, Collection, Mapping
from datetime import UTC, datetime
from http import HTTPStatus
from types import TracebackType
from typing import Any, Self

import attrs
from aiohttp import web
from aiohttp.typedefs import Handler

from luigis_async.auth import http_date
from luigis_async.sandbox.faults import Decision, FaultInjector, Faults
from luigis_async.sandbox.queries import ExportQuery, InvalidFilter, ListQuery
from luigis_async.sandbox.validation import InvalidCustomization, validated
from luigis_async.sandbox.verify import authentication_failure

__all__ = ["API_PREFIX", "CREATOR", "RequestRecord", "Sandbox", "error_response"]

#: Every route lives under this path.
API_PREFIX = "/v1/recommender/pin/{tracker_id}"
#: The ``creator`` of customizations made through the sandbox.
CREATOR = "sandbox"
#: Routes that change state, which a lost acknowledgement applies before failing.
_WRITES = frozenset({"create", "update", "delete"})
#: Only a backstop: stop() wakes delayed requests, so shutdown never waits for latency.
_SHUTDOWN_TIMEOUT = 5.0
_UUID = re.compile(r"[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")


@attrs.frozen
class RequestRecord:
    """One request as the sandbox saw it, for tests to assert on.

    ``path`` is the raw path as sent (what was signed), without the query string; ``body``
    the parsed JSON, or None when empty or not JSON; ``status`` 0 when the connection was
    dropped; ``fault`` the injected faults joined by ``+`` (e.g. ``latency+503``) or None.
    """

    method: str
    path: str
    query: tuple[tuple[str, str], ...]
    status: int
    body: Any
    fault: str | None


class _Reject(Exception):
    """Raised by a handler to answer with an API error body."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(status, reason)
        self.status = status
        self.reason = reason


def error_response(
    status: int,
    reason: str,
    details: Mapping[str, list[str]] | None = None,
    *,
    retry_after: str | None = None,
) -> web.Response:
    """The API's error body: ``{"reason": ..., "exception_details": {field: [msg]}}``."""
    payload: dict[str, Any] = {"reason": reason}
    if details:
        payload["exception_details"] = dict(details)
    response = web.json_response(payload, status=status)
    if retry_after is not None:
        response.headers["Retry-After"] = retry_after
    return response


def _fault_response(status: int, fault: str, retry_after: str | None) -> web.Response:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return error_response(
        status, f"{phrase} (injected by the sandbox: {fault})", retry_after=retry_after
    )


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _strict_json(raw: bytes) -> Any:
    """Parse like a strict server: NaN and Infinity are not JSON."""
    return json.loads(raw, parse_constant=_refuse_constant)


def _json_or_none(raw: bytes) -> Any:
    try:
        return _strict_json(raw) if raw.strip() else None
    except ValueError:
        return None


async def _json_body(request: web.Request) -> Any:
    """The parsed body, or None when empty; 400 when it is not JSON."""
    raw = await request.read()
    if not raw.strip():
        return None
    try:
        return _strict_json(raw)
    except ValueError as exc:
        raise _Reject(400, f"Request body is not valid JSON: {exc}") from None


async def _json_object(request: web.Request) -> dict[str, Any]:
    body = await _json_body(request)
    if not isinstance(body, dict):
        raise _Reject(400, "Request body must be a JSON object")
    return body


def _canonical_id(value: str) -> str | None:
    """The lower-case UUID, or None when ``value`` is not one (the API then answers 404)."""
    return value.lower() if _UUID.fullmatch(value) else None


def _header_seconds(value: str | float) -> str:
    if isinstance(value, str):
        return value
    return str(int(value)) if float(value).is_integer() else str(value)


class Sandbox:
    """A local, stateful fake of the pin customization API on a free port.

    ``async with Sandbox() as sb:`` then point a client at ``sb.url`` with
    ``sb.tracker_id`` and ``sb.private_key``. ``faults`` and ``clock`` may be replaced
    while it runs; assigning ``faults`` restarts its seeded sequence.
    """

    def __init__(
        self,
        *,
        tracker_id: str = "1234-5678",
        private_key: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        max_skew: float = 5.0,
        faults: Faults | None = None,
        clock: Callable[[], float] = time.time,
        catalog: Collection[str] | None = None,
    ) -> None:
        self.tracker_id = tracker_id
        self.private_key = private_key if private_key is not None else secrets.token_urlsafe(32)
        self.host = host
        #: The port asked for; after start(), the one actually bound.
        self.port = port
        #: How far (in seconds) a request's Date may be from ``clock()``.
        self.max_skew = max_skew
        #: The server's time source, for the Date check, Date headers and created_at.
        self.clock = clock
        #: Known item identities; when set, item pins naming others are refused (422) and
        #: ``remove_nonexisting_item_pins`` prunes them from exports. None: no catalog.
        self.catalog: set[str] | None = set(catalog) if catalog is not None else None
        #: Stored customizations by ID, in insertion order, exactly as GET returns them.
        self.store: dict[str, dict[str, Any]] = {}
        #: Every request received, in completion order.
        self.requests: list[RequestRecord] = []
        #: Requests being handled now, and the most ever handled at once.
        self.in_flight = 0
        self.max_in_flight_seen = 0
        self._admitted = 0  # requests past the max_in_flight gate, being served
        self._injector = FaultInjector(faults or Faults())
        self._scripted: deque[tuple[int, str | None]] = deque()
        self._runner: web.AppRunner | None = None
        self._stopping = asyncio.Event()

    def __repr__(self) -> str:
        where = self.url if self._runner is not None else "stopped"
        return (
            f"<Sandbox tracker_id={self.tracker_id!r} {where} "
            f"customizations={len(self.store)} requests={len(self.requests)}>"
        )

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:54321``; only while running."""
        if self._runner is None:
            raise RuntimeError("the sandbox is not running: use 'async with' or start()")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def faults(self) -> Faults:
        """The fault configuration; assigning one restarts the seeded sequence."""
        return self._injector.faults

    @faults.setter
    def faults(self, faults: Faults) -> None:
        self._injector = FaultInjector(faults)

    async def start(self) -> None:
        """Bind the port and start serving."""
        if self._runner is not None:
            raise RuntimeError("the sandbox is already running")
        self._stopping = asyncio.Event()
        app = web.Application(middlewares=[self._middleware])
        app.add_routes(self._routes())
        runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=_SHUTDOWN_TIMEOUT
        )
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self.port = runner.addresses[0][1]
        self._runner = runner

    async def stop(self) -> None:
        """Stop serving; delayed requests are answered at once. Safe to call twice."""
        runner, self._runner = self._runner, None
        if runner is not None:
            self._stopping.set()
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def add(self, body: dict[str, Any], customization_id: str | None = None) -> str:
        """Store a customization directly (no request) and return its ID.

        Raises:
            ValueError: the body breaks a rule the API enforces, or the ID is not a
                UUID or already taken.
        """
        if customization_id is None:
            key = str(uuid.uuid4())
        else:
            key = _canonical_id(customization_id) or ""
            if not key:
                raise ValueError(f"customization_id must be a UUID, got {customization_id!r}")
            if key in self.store:
                raise ValueError(f"customization {key} already exists")
        self._save(key, body)
        return key

    def fail_next(self, n: int, status: int, *, retry_after: str | float | None = None) -> None:
        """Answer the next ``n`` authenticated requests with ``status`` and an error body.

        Queued after any earlier ``fail_next``, and served before random faults.
        """
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        if not 400 <= status <= 599:
            raise ValueError(f"status must be an HTTP error status (400-599), got {status}")
        header = None if retry_after is None else _header_seconds(retry_after)
        self._scripted.extend([(status, header)] * n)

    # --- request pipeline ---------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.in_flight += 1
        self.max_in_flight_seen = max(self.max_in_flight_seen, self.in_flight)
        status, fault, body = 0, None, None
        response: web.StreamResponse | None
        try:
            try:
                body = _json_or_none(await request.read())
            except web.HTTPRequestEntityTooLarge as exc:
                response, fault = error_response(exc.status, exc.reason), None
            else:
                response, fault = await self._respond(request, handler)
            if response is None:
                if request.transport is not None:
                    request.transport.close()
                # Never written: aiohttp sees the closed transport and gives up quietly.
                return web.Response()
            response.headers["Date"] = http_date(self.clock())
            status = response.status
            return response
        finally:
            self.in_flight -= 1
            self.requests.append(
                RequestRecord(
                    request.method,
                    request.raw_path.partition("?")[0],
                    tuple(request.query.items()),
                    status,
                    body,
                    fault,
                )
            )

    async def _respond(
        self, request: web.Request, handler: Handler
    ) -> tuple[web.StreamResponse | None, str | None]:
        """The response (None: drop the connection) and the injected faults, if any."""
        reason = authentication_failure(
            method=request.method,
            path=request.raw_path.partition("?")[0],
            headers=request.headers,
            tracker_id=self.tracker_id,
            private_key=self.private_key,
            now=self.clock(),
            max_skew=self.max_skew,
        )
        if reason is not None:
            return error_response(401, reason), None

        faults = self.faults
        # Drawn for every authenticated request, so the seeded sequence never shifts.
        decision = self._injector.decide()
        if self._scripted:
            status, retry_after = self._scripted.popleft()
            return _fault_response(status, "fail_next", retry_after), "fail_next"
        # Admission is checked and counted with no await in between, so exactly N get in.
        if faults.max_in_flight is not None and self._admitted >= faults.max_in_flight:
            return _fault_response(429, "max_in_flight", faults.retry_after), "max_in_flight"
        self._admitted += 1
        try:
            return await self._serve(request, handler, decision, faults)
        finally:
            self._admitted -= 1

    async def _serve(
        self, request: web.Request, handler: Handler, decision: Decision, faults: Faults
    ) -> tuple[web.StreamResponse | None, str | None]:
        """Apply the random faults decided for an admitted request, else handle it."""
        injected = []
        if decision.delay:
            injected.append("latency")
            await self._delay(decision.delay)
        response: web.StreamResponse | None
        if decision.error is None:
            response = await self._handle(request, handler)
        elif decision.error == "drop":
            injected.append("drop")
            response = None
        else:
            injected.append(decision.error)
            if decision.error == "lost_ack" and request.match_info.route.name in _WRITES:
                await self._handle(request, handler)
            status = 503 if decision.error == "lost_ack" else int(decision.error)
            retry_after = faults.retry_after if status in (429, 503) else None
            response = _fault_response(status, decision.error, retry_after)
        return response, "+".join(injected) or None

    async def _delay(self, seconds: float) -> None:
        """Wait, but wake at once when the sandbox stops, so stopping stays prompt."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stopping.wait()

    async def _handle(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Run the route's handler, turning every refusal into the API's error body."""
        try:
            return await handler(request)
        except _Reject as exc:
            return error_response(exc.status, exc.reason)
        except InvalidCustomization as exc:
            return error_response(exc.status, exc.reason, exc.details)
        except InvalidFilter as exc:
            return error_response(422, "Invalid filter", exc.details)
        except web.HTTPException as exc:  # the router's own 404 and 405
            response = error_response(exc.status, exc.reason)
            if "Allow" in exc.headers:
                response.headers["Allow"] = exc.headers["Allow"]
            return response

    # --- routes -------------------------------------------------------------------------

    def _routes(self) -> list[web.RouteDef]:
        scope = API_PREFIX + "/scope"
        one = scope + "/{customization_id}"
        return [
            web.post(scope, self._create, name="create"),
            web.get(one, self._get, name="get", allow_head=False),
            web.put(one, self._update, name="update"),
            web.delete(one, self._delete, name="delete"),
            web.post(API_PREFIX + "/scopes", self._list, name="list"),
            web.post(API_PREFIX + "/scopes/export", self._export, name="export"),
        ]

    def _check_tracker(self, request: web.Request) -> None:
        if request.match_info["tracker_id"] != self.tracker_id:
            raise _Reject(404, "Tracker not found")

    def _existing_id(self, request: web.Request) -> str:
        self._check_tracker(request)
        key = _canonical_id(request.match_info["customization_id"])
        if key is None or key not in self.store:
            raise _Reject(404, "Customization not found")
        return key

    def _save(self, key: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Validate and store ``body``; a replacement keeps id, created_at and creator."""
        fields = validated(body)
        self._check_catalog(fields)
        previous = self.store.get(key)
        created_at = (
            previous["created_at"]
            if previous is not None
            else datetime.fromtimestamp(self.clock(), UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z")
        )
        self.store[key] = stored = {
            "id": key,
            **fields,
            "created_at": created_at,
            "creator": previous["creator"] if previous is not None else CREATOR,
            "available": True,
        }
        return stored

    def _check_catalog(self, fields: Mapping[str, Any]) -> None:
        if self.catalog is None:
            return
        details = {
            f"pin_definitions[{i}].pin_identity": ["Item not found in catalog"]
            for i, pin in enumerate(fields.get("pin_definitions", []))
            if pin.get("pin_type") == "item" and pin.get("pin_identity") not in self.catalog
        }
        if details:
            raise InvalidCustomization(details)

    async def _create(self, request: web.Request) -> web.StreamResponse:
        self._check_tracker(request)
        stored = self._save(str(uuid.uuid4()), await _json_object(request))
        return web.json_response(stored, status=201)

    async def _get(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self.store[self._existing_id(request)])

    async def _update(self, request: web.Request) -> web.StreamResponse:
        body = await _json_object(request)  # before the lookup: no await between it and _save
        self._save(self._existing_id(request), body)
        return web.Response(status=204)

    async def _delete(self, request: web.Request) -> web.StreamResponse:
        del self.store[self._existing_id(request)]
        return web.Response(status=204)

    async def _list(self, request: web.Request) -> web.StreamResponse:
        self._check_tracker(request)
        query = ListQuery.parse(request.query, await _json_body(request))
        total, page = query.apply(self.store.values())
        return web.json_response({"pagination": {"total": total}, "results": page})

    async def _export(self, request: web.Request) -> web.StreamResponse:
        self._check_tracker(request)
        query = ExportQuery.parse(request.query)
        now = datetime.fromtimestamp(self.clock(), UTC)
        results = query.apply(self.store.values(), now, self.catalog)
        return web.json_response({"results": results})

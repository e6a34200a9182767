"""Sandbox: a local stand-in for the pin customization API, served by aiohttp.web.

Like moto for boto: tests, benchmarks and demos speak plain HTTP to it exactly as to the
real service (same paths, signatures, statuses and error bodies); it keeps its state in a
dict that tests can read and seed; and it misbehaves on demand (``Faults``, ``fail_next``,
``respond_next``) so retry, throttling and decoding code gets exercised over real sockets.

``Sandbox`` only wires three parts and offers the test API: ``store.Store`` (the state
and the API's storage rules, no HTTP), ``pipeline.Pipeline`` (authentication, scripted
answers, admission and faults, as a middleware) and ``routes.Routes`` (thin handlers).
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Callable, Collection, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Self

from aiohttp import web

from luigis_async.sandbox.bulk import BulkRules
from luigis_async.sandbox.faults import FaultInjector, Faults
from luigis_async.sandbox.pipeline import Pipeline, RequestRecord
from luigis_async.sandbox.routes import API_PREFIX, Routes, errors
from luigis_async.sandbox.scripted import ScriptedResponse
from luigis_async.sandbox.store import CREATOR, Store
from luigis_async.sandbox.wire import error_response

if TYPE_CHECKING:
    from luigis_async.client import LuigisBoxClient

__all__ = [
    "API_PREFIX",
    "CREATOR",
    "DEFAULT_TRACKER_ID",
    "RequestRecord",
    "Sandbox",
    "error_response",
]

#: The tracker ID of a sandbox unless told otherwise.
DEFAULT_TRACKER_ID: Final = "1234-5678"
#: Only a backstop: stop() wakes delayed requests, so shutdown never waits for latency.
_SHUTDOWN_TIMEOUT: Final = 5.0
#: The absolute cap on any request body (bulk bodies have no other cap by default).
_MAX_BODY: Final = 64 * 1024**2


class Sandbox:
    """A local, stateful fake of the pin customization API on a free port.

    ``async with Sandbox() as sb:`` then ``async with sb.client() as client:``, or point
    any client at ``sb.url`` with ``sb.tracker_id`` and ``sb.private_key``. Every
    setting may be changed while it runs; assigning ``faults`` restarts its seeded
    sequence.

    Args:
        tracker_id: the tracker it serves.
        private_key: the key requests must be signed with (None: a random one).
        host: the address to listen on.
        port: the port to listen on (0: a free one; ``port`` is the bound one once started).
        max_skew: how far (in seconds) a request's ``Date`` may be from ``clock()``.
        faults: how often it misbehaves (None: never).
        clock: the server's time source.
        catalog: the known item identities; item pins naming others are refused (422).
        bulk_rules: how bulk create behaves where the API's docs are silent.
    """

    def __init__(
        self,
        *,
        tracker_id: str = DEFAULT_TRACKER_ID,
        private_key: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        max_skew: float = 5.0,
        faults: Faults | None = None,
        clock: Callable[[], float] = time.time,
        catalog: Collection[str] | None = None,
        bulk_rules: BulkRules | None = None,
    ) -> None:
        self.tracker_id = tracker_id
        self.private_key: str = (
            private_key if private_key is not None else secrets.token_urlsafe(32)
        )
        self.host = host
        #: The port asked for; after start(), the one actually bound.
        self.port: int = port
        #: How far (in seconds) a request's Date may be from ``clock()``.
        self.max_skew = max_skew
        #: The server's time source: the Date check, Date headers, created_at, pin expiry.
        self.clock = clock
        #: Known item identities; when set, item pins naming others are refused (422) and
        #: ``remove_nonexisting_item_pins`` prunes them from exports. None: no catalog.
        self.catalog: set[str] | None = set(catalog) if catalog is not None else None
        #: What bulk create assumes where the API's docs are silent (see ``BulkRules``).
        self.bulk_rules: BulkRules = bulk_rules if bulk_rules is not None else BulkRules()
        self._store = Store(self)
        self._pipeline = Pipeline(self, faults or Faults())
        self._runner: web.AppRunner | None = None

    def __repr__(self) -> str:
        where = self.url if self._runner is not None else "stopped"
        return (
            f"<Sandbox tracker_id={self.tracker_id!r} {where} "
            f"customizations={len(self.store)} requests={len(self.requests)}>"
        )

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:54321``; only while running.

        Raises:
            RuntimeError: the sandbox is not running.
        """
        if self._runner is None:
            raise RuntimeError("the sandbox is not running: use 'async with' or start()")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def store(self) -> dict[str, dict[str, Any]]:
        """Stored customizations by ID, in insertion order, exactly as GET returns them."""
        return self._store.customizations

    @property
    def requests(self) -> list[RequestRecord]:
        """Every request received, in completion order."""
        return self._pipeline.requests

    @property
    def faults(self) -> Faults:
        """The fault configuration; assigning one restarts the seeded sequence."""
        return self._pipeline.injector.faults

    @faults.setter
    def faults(self, faults: Faults) -> None:
        self._pipeline.injector = FaultInjector(faults)

    @property
    def in_flight(self) -> int:
        """Requests being handled now."""
        return self._pipeline.in_flight

    @property
    def max_in_flight_seen(self) -> int:
        """The most requests ever handled at once."""
        return self._pipeline.max_in_flight_seen

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Bind the port and start serving.

        Raises:
            RuntimeError: it is already running.
            OSError: the port cannot be bound.
        """
        if self._runner is not None:
            raise RuntimeError("the sandbox is already running")
        self._pipeline.stopping.clear()
        app = web.Application(
            middlewares=[self._pipeline.middleware, errors], client_max_size=_MAX_BODY
        )
        app.add_routes(Routes(self._store, self).table())
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
            self._pipeline.stopping.set()
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

    # --- the test API -------------------------------------------------------------------

    def add(self, body: Mapping[str, Any], customization_id: str | None = None) -> str:
        """Store a customization directly (no request) and return its ID.

        Args:
            body: an API body, as a create sends it.
            customization_id: the ID to store it under (None: a new UUID).

        Returns:
            The customization's ID.

        Raises:
            ValueError: the body breaks a rule the API enforces, or the ID is not a
                UUID or already taken.
        """
        return self._store.add(body, customization_id)

    def stored_body(self, customization_id: str | uuid.UUID) -> dict[str, Any]:
        """A copy of a stored customization without id, created_at, creator and available.

        That is the body a create or update sent (minus null fields), to compare with.

        Args:
            customization_id: the stored customization's ID.

        Returns:
            The body, a copy.

        Raises:
            KeyError: no customization has that ID.
        """
        return self._store.stored_body(str(customization_id))

    def client(self, **overrides: Any) -> LuigisBoxClient:
        """A new ``LuigisBoxClient`` signed for this sandbox; open it with ``async with``.

        Args:
            overrides: ``LuigisBoxClient`` arguments (``max_connections=4``,
                ``retry=...``); they may replace the tracker ID, key or base URL too.

        Returns:
            The client, not yet opened.

        Raises:
            RuntimeError: the sandbox is not running (it has no URL yet).
            ConfigurationError: an override the client refuses.
        """
        from luigis_async.client import LuigisBoxClient

        options: dict[str, Any] = {
            "tracker_id": self.tracker_id,
            "private_key": self.private_key,
            "base_url": self.url,
            **overrides,
        }
        return LuigisBoxClient(**options)

    def fail_next(self, n: int, status: int, *, retry_after: str | float | None = None) -> None:
        """Answer the next ``n`` authenticated requests with ``status`` and an error body.

        The body is the API's error JSON, its reason saying ``fail_next``; the request log
        marks them with fault ``fail_next``. Queued after any earlier scripted answer, and
        served before random faults. The general form is ``respond_next``.

        Args:
            n: how many requests.
            status: an HTTP error status (400-599).
            retry_after: the ``Retry-After`` header to send, if any.

        Raises:
            ValueError: a negative count, or a status that is not an error.
        """
        self._pipeline.scripts.add(n, ScriptedResponse.error(status, retry_after))

    def respond_next(
        self,
        n: int = 1,
        *,
        status: int,
        body: bytes | str = b"",
        content_type: str = "application/json",
        headers: Mapping[str, str] | None = None,
        route: str | None = None,
        apply: bool = False,
    ) -> None:
        """Answer the next ``n`` authenticated requests with exactly this raw response.

        For proxy pages, captive portals and redirects: any ``status`` from 100 to 599
        (200 and 3xx included), the ``body`` bytes (a str is sent as UTF-8), that
        ``content_type`` and extra ``headers`` (e.g. ``{"Location": ...}``; they are set
        last, so they may replace the Content-Type or the Date).

        ``route`` (``create``, ``get``, ``update``, ``delete``, ``list``, ``export``,
        ``bulk``, ``summary``) limits it to that route's requests; others pass by without
        consuming it. ``apply=True`` runs the route first (a write takes effect) and then
        sends this answer instead of the route's. Queued after any earlier scripted
        answer (``fail_next`` too); served before admission and random faults; logged
        with fault ``scripted``. A 1xx, 204 or 304 cannot have a body.

        Args:
            n: how many requests.
            status: the status to answer with.
            body: the body to send.
            content_type: the ``Content-Type`` to send.
            headers: more headers, set last.
            route: the only route whose requests it answers (None: any).
            apply: run the route first, so a write takes effect.

        Raises:
            ValueError: a bad count, status, route, or a body a status forbids.
        """
        script = ScriptedResponse(
            status=status,
            body=body,
            content_type=content_type,
            headers=headers or {},
            route=route,
            apply=apply,
        )
        self._pipeline.scripts.add(n, script)

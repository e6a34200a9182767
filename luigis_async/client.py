"""LuigisBoxClient: one pooled session, one admission gate, one method per endpoint.

Each attempt passes, in order: the batch's pacer (if any), the client's admission gate
(sized by ``max_connections``, the one place a client's concurrency waits), then it is
signed with a fresh ``Date`` and sent at once, so no signature ages in a queue. Failures
are retried per ``RetryPolicy`` within a client-wide ``RetryBudget``; a 401 is signed
again when it was signed before the latest clock correction, or when its ``Date`` shows a
new skew (which the signer then adopts). Success bodies are decoded strictly
(``decode.py``).
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, Final, Generic, Literal, Self, TypeVar, Unpack
from urllib.parse import urlencode

import aiohttp
import attrs

from . import config, endpoints
from .auth import Signer
from .config import (
    DEFAULT_BASE_URL,
    DEFAULT_TIMEOUT,
)
from .decode import LARGE_ANSWER, decode
from .endpoints import DEFAULT_PAGE_SIZE, Call, CustomizationFilter, FilterArgs
from .errors import (
    APIError,
    AuthenticationError,
    ClientClosedError,
    DecodingError,
    EventLoopError,
    InvalidCustomizationError,
    LuigisBoxError,
    TransportError,
    api_error_for,
    header,
)
from .events import EventHook, EventKind, RequestEvent
from .gate import Gate
from .models import Customization, Page, StoredCustomization, Summary
from .pacing import NO_SLOT, Pacer
from .retry import (
    RETRY_AFTER_STATUSES,
    RetryBudget,
    RetryPolicy,
    is_throttle,
    parse_retry_after,
)
from .transport import AiohttpTransport, HTTPRequest, HTTPResponse, Transport

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_TIMEOUT",
    "LuigisBoxClient",
    "Outcome",
    "Reply",
]

log: Final[logging.Logger] = logging.getLogger("luigis_async")

T = TypeVar("T")

#: aiohttp's own default pool size; a batch's window grows up to it.
DEFAULT_MAX_CONNECTIONS: Final = 100
#: How many times one request is signed again after a 401 (a stale epoch, then new skew).
MAX_RESIGNS: Final = 2

_API_PREFIX: Final = "/v1/recommender/pin/"
_State = Literal["unopened", "open", "closed"]


@attrs.define
class Reply(Generic[T]):
    """A successful response: its status, the decoded result and the attempts it took
    (treat as immutable: one is built per request, where frozen costs twice as much)."""

    status: int
    value: T
    attempts: int


class LuigisBoxClient:
    """Async client for the pin customization API.

    Use it as ``async with LuigisBoxClient(tracker_id, private_key) as client:``, or call
    ``await client.close()`` yourself. It owns one ``aiohttp.ClientSession`` for its whole
    life, unless you pass ``session=`` (then you close that session yourself). It belongs
    to the event loop it is first used in.

    Args:
        tracker_id, private_key, base_url: default to the environment variables
            ``LUIGISBOX_TRACKER_ID``, ``LUIGISBOX_PRIVATE_KEY`` and ``LUIGISBOX_BASE_URL``
            (the base URL then to ``https://live.luigisbox.tech``).
        timeout: an ``aiohttp.ClientTimeout`` with a ``total``, or seconds.
        max_connections: the size of the pool and of the admission gate: the most
            requests this client has in flight. More concurrent calls wait, unsigned.
        retry: the default RetryPolicy (a batch may override it).
        retry_budget: shared token bucket that stops retry storms; one per client.
        ssl: passed to aiohttp (True: verify certificates).
        trust_env: send through the proxy ``HTTPS_PROXY``/``HTTP_PROXY`` name, unless
            ``NO_PROXY`` exempts the host.
        trace_configs: aiohttp tracing, for those who already trace aiohttp.
        clock: the time source used for signing (tests inject a skewed one).
        event_hooks: callbacks receiving a ``RequestEvent`` at every step of a request.
        transport: sends the signed requests instead of aiohttp (``MockTransport`` in
            unit tests).

    Raises:
        ConfigurationError: missing credentials, a malformed tracker ID or base URL, or a
            bad option.
    """

    def __init__(
        self,
        tracker_id: str | None = None,
        private_key: str | None = None,
        *,
        base_url: str | None = None,
        timeout: aiohttp.ClientTimeout | float = DEFAULT_TIMEOUT,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        session: aiohttp.ClientSession | None = None,
        retry: RetryPolicy | None = None,
        retry_budget: RetryBudget | None = None,
        ssl: bool | Any = True,
        trust_env: bool = True,
        trace_configs: Sequence[aiohttp.TraceConfig] | None = None,
        clock: Callable[[], float] = time.time,
        event_hooks: Sequence[EventHook] = (),
        transport: Transport | None = None,
    ) -> None:
        tracker_id, private_key = config.credentials(tracker_id, private_key)
        base = config.base_url(base_url)
        max_connections = config.max_connections(max_connections)
        self.tracker_id = tracker_id
        self.base_url: str = str(base).rstrip("/")
        self.timeout: aiohttp.ClientTimeout = config.timeout(timeout)
        self.retry: RetryPolicy = retry if retry is not None else RetryPolicy()
        self.retry_budget: RetryBudget = retry_budget if retry_budget is not None else RetryBudget()
        self._signer = Signer(tracker_id, private_key, clock=clock)
        self._root = f"{base.path.rstrip('/')}{_API_PREFIX}{tracker_id}"
        self._origin = str(base.origin())
        self._transport: Transport = transport or AiohttpTransport(
            max_connections=max_connections,
            session=session,
            ssl=ssl,
            trace_configs=trace_configs or (),
            trust_env=trust_env,
        )
        #: The most requests in flight at once: the admission gate's size.
        self.max_connections: int = min(max_connections, self._transport.max_concurrency or 2**31)
        self._gate = Gate(self.max_connections)
        self._event_hooks = tuple(event_hooks)
        self._budget_empty_reported = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._state: _State = "unopened"
        self._parent: LuigisBoxClient | None = None  # set on views from with_options()

    def __repr__(self) -> str:
        return f"<LuigisBoxClient tracker_id={self.tracker_id!r} {self._state} {self.base_url}>"

    # -- lifecycle ---------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self._open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def closed(self) -> bool:
        """True once ``close()`` was called."""
        return self._state == "closed"

    @property
    def clock_offset(self) -> float:
        """Seconds added to the local clock when signing (learned from the server)."""
        return self._signer.offset

    def with_options(
        self,
        *,
        timeout: aiohttp.ClientTimeout | float | None = None,
        retry: RetryPolicy | None = None,
    ) -> LuigisBoxClient:
        """A view of this client with another timeout or retry policy, for some calls.

        It shares everything else: the pool and its gate, the clock correction, the retry
        budget. Closing the view closes nothing shared; closing this client ends the view.

        Args:
            timeout: the view's timeout (seconds, or an ``aiohttp.ClientTimeout``).
            retry: the view's retry policy.

        Returns:
            The view, a ``LuigisBoxClient``.

        Raises:
            ConfigurationError: a timeout without a total, or not positive seconds.
        """
        view = copy.copy(self)
        if timeout is not None:
            view.timeout = config.timeout(timeout)
        if retry is not None:
            view.retry = retry
        view._parent = self._parent or self
        return view

    def _open(self) -> None:
        """Bind to the running loop on first use; refuse a closed client or another loop."""
        loop = asyncio.get_running_loop()
        if self._state == "open" and self._loop is loop and not self._parent_closed():
            return
        if self._state == "closed" or self._parent_closed():
            raise ClientClosedError(f"{self!r} is closed; create a new client")
        if self._loop is not None and self._loop is not loop:
            raise EventLoopError(
                f"{self!r} was opened in another event loop (often an earlier asyncio.run); "
                "create one client per event loop"
            )
        self._loop = loop
        self._state = "open"

    def _parent_closed(self) -> bool:
        return self._parent is not None and self._parent.closed

    async def close(self) -> None:
        """Close the pooled session (if this client created it). Safe to call twice.

        On a view from ``with_options`` it only ends the view.
        """
        if self._state == "closed":
            return
        self._state = "closed"
        if self._parent is None:
            await self._transport.aclose()

    # -- endpoints ---------------------------------------------------------------------

    async def create_customization(self, customization: Customization) -> StoredCustomization:
        """Create a customization (``POST /scope``).

        Not idempotent: retried only when the server surely did not act on it (429, 408,
        a connection that never opened), so a retry never creates a duplicate.

        Args:
            customization: the body; validated when it was built.

        Returns:
            The customization as stored, with its server-assigned ``id`` and ``created_at``.

        Raises:
            InvalidCustomizationError: ``customization`` is not a ``Customization``.
            APIError: the server refused it (``BadRequestError``,
                ``UnprocessableEntityError``, ...), or retries ran out.
            TransportError: no answer after the retries.
            DecodingError: a success whose body is not a stored customization.
        """
        return (await self.send(endpoints.create(customization))).value

    async def get_customization(self, customization_id: uuid.UUID | str) -> StoredCustomization:
        """Fetch one customization (``GET /scope/{id}``).

        Args:
            customization_id: a UUID (or its string); anything else never reaches a path.

        Returns:
            The stored customization.

        Raises:
            InvalidCustomizationError: the ID is not a UUID.
            NotFoundError: no such customization (or tracker).
            APIError, TransportError, DecodingError: as for ``create_customization``.
        """
        return (await self.send(endpoints.get(customization_id))).value

    async def update_customization(
        self, customization_id: uuid.UUID | str, customization: Customization
    ) -> None:
        """Replace the whole customization (``PUT /scope/{id}``); idempotent, so retried.

        Args:
            customization_id: a UUID (or its string).
            customization: the new body: every field, since a PUT replaces all of them.

        Raises:
            InvalidCustomizationError: a bad ID or body, before anything is sent.
            NotFoundError: no such customization.
            APIError, TransportError, DecodingError: as for ``create_customization``.
        """
        await self.send(endpoints.update(customization_id, customization))

    async def delete_customization(self, customization_id: uuid.UUID | str) -> None:
        """Delete one customization (``DELETE /scope/{id}``).

        Args:
            customization_id: a UUID (or its string).

        Raises:
            InvalidCustomizationError: the ID is not a UUID.
            NotFoundError: no such customization.
            APIError, TransportError, DecodingError: as for ``create_customization``.
        """
        await self.send(endpoints.delete(customization_id))

    async def list_customizations_page(
        self,
        *,
        limit: int = DEFAULT_PAGE_SIZE,
        offset: int = 0,
        sort: str | None = None,
        criteria: Sequence[Mapping[str, Any]] | None = None,
        **filters: Unpack[FilterArgs],
    ) -> Page:
        """One page of the customizations matching the filters, and the total count.

        Args:
            limit, offset: the page.
            sort: e.g. ``created_at:desc``.
            criteria: JSON objects the customizations' criteria must match.
            filters: ``model``, ``tag``, ``target_type``, ``target_identity``, each a
                string or several (matching any); see ``CustomizationFilter``.

        Returns:
            The page's customizations and the total number matching.

        Raises:
            InvalidCustomizationError: a negative limit or offset, or a bad filter
                value (a ``ValueError`` too).
            APIError, TransportError, DecodingError: as for ``create_customization``.
        """
        call = endpoints.list_page(
            limit=limit, offset=offset, filters=CustomizationFilter.of(**filters),
            sort=sort, criteria=criteria,
        )
        return (await self.send(call)).value

    async def list_customizations(
        self,
        *,
        sort: str | None = None,
        criteria: Sequence[Mapping[str, Any]] | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
        **filters: Unpack[FilterArgs],
    ) -> AsyncIterator[StoredCustomization]:
        """Every matching customization, fetching pages lazily until ``pagination.total``.

        Args:
            sort, criteria, filters: as for ``list_customizations_page``.
            page_size: customizations per request.

        Returns:
            An async iterator; each page is requested when the previous one is used up.

        Raises:
            InvalidCustomizationError: a bad page size or filter, before the first
                request (a ``ValueError`` too).
            APIError, TransportError, DecodingError: as for ``create_customization``.
        """
        if isinstance(page_size, bool) or not isinstance(page_size, int) or page_size < 1:
            raise InvalidCustomizationError(f"page_size must be a positive int, got {page_size!r}")
        CustomizationFilter.of(**filters)  # refuse bad filters before the first page
        offset = 0
        while True:
            page = await self.list_customizations_page(
                limit=page_size, offset=offset, sort=sort, criteria=criteria, **filters
            )
            for item in page.results:
                yield item
            offset += len(page.results)
            if not page.results or offset >= page.total:
                return

    async def export_customizations(
        self,
        *,
        remove_expired_pins: bool | None = None,
        remove_nonexisting_item_pins: bool | None = None,
        **filters: Unpack[FilterArgs],
    ) -> list[StoredCustomization]:
        """Every matching customization in one response (``POST /scopes/export``).

        An answer over 1 MiB is decoded in a worker thread, off the event loop.

        Args:
            remove_expired_pins: leave out pins whose ``active_to`` has passed.
            remove_nonexisting_item_pins: leave out pins of items the catalog lacks.
            filters: as for ``list_customizations_page``.

        Returns:
            The customizations, as stored.

        Raises:
            InvalidCustomizationError: a bad filter or flag, before the request (a
                ``ValueError`` too).
            APIError, TransportError, DecodingError: as for ``create_customization``.
        """
        call = endpoints.export(
            CustomizationFilter.of(**filters),
            remove_expired_pins=remove_expired_pins,
            remove_nonexisting_item_pins=remove_nonexisting_item_pins,
        )
        return (await self.send(call)).value

    async def summary(self) -> Summary:
        """Customizations per model and the tags in use (``GET /summary``).

        One cheap signed request: a preflight that tells a wrong base URL, an unknown
        tracker and a rejected key apart before a job starts.

        Returns:
            ``Summary(scope_counts, user_tags)``.

        Raises:
            AuthenticationError: the key was rejected.
            NotFoundError: no such tracker.
            TransportError, DecodingError, RedirectError: not the API at this base URL.
        """
        return (await self.send(endpoints.summary())).value

    # -- the request pipeline ----------------------------------------------------------

    async def send(
        self, call: Call[T], *, retry: RetryPolicy | None = None, pacer: Pacer | None = None
    ) -> Reply[T]:
        """Send one API request with retries; raise the last error when they run out.

        Each attempt waits for the pacer (in a batch), then the client's gate, and is
        signed just before it is written.

        Args:
            call: the request (see ``luigis_async.endpoints``).
            retry: this call's policy instead of the client's.
            pacer: a batch's pacer; None outside a batch.

        Returns:
            The status, the decoded result and how many attempts it took.

        Raises:
            APIError: the server's error status (a subclass per status).
            TransportError: no answer (connection, drop, timeout).
            DecodingError: a success whose body is not what the endpoint documents.
            ClientClosedError, EventLoopError: the client cannot be used here.
        """
        self._open()
        policy = retry or self.retry
        path = self._root + call.endpoint
        url = self._origin + path + ("?" + urlencode(call.query) if call.query else "")
        began = time.monotonic() if self._event_hooks else 0.0
        tries = _Tries(policy)
        while True:
            tries.total += 1
            slot = pacer.slot() if pacer is not None else NO_SLOT
            async with slot:  # whatever raises, the pacer gets its place back
                response, error, epoch = await self._exchange(
                    call, url, path, tries.total, began
                )
                slot.status = response.status if response is not None else None
                slot.error = error
            if error is None:
                assert response is not None
                if len(response.body) >= LARGE_ANSWER:
                    return await self._succeeded_off_loop(call, response, path, tries.total, began)
                return self._succeeded(call, response, path, tries.total, began)
            if self._resign(error, epoch, tries):
                self._emit(EventKind.RETRY, call.method, path, tries.total, began, 0.0, error)
                continue
            delay = self._retry_delay(policy, error, tries, call.idempotent, pacer)
            if delay is None:
                error.attempts = tries.total
                self._emit(EventKind.GIVE_UP, call.method, path, tries.total, began, None, error)
                raise error
            self._emit(EventKind.RETRY, call.method, path, tries.total, began, delay, error)
            log.info(
                "retrying %s %s in %.2fs after %s (attempt %d)",
                call.method, path, delay, _short(error), tries.total,
            )
            await policy.sleep(delay)
            if pacer is not None and pacer.stopping:
                error.attempts = tries.total
                raise error

    def _resign(self, error: LuigisBoxError, epoch: int, tries: _Tries) -> bool:
        """A 401 worth signing again: signed before the latest clock fix, or a new skew."""
        if tries.resigned >= MAX_RESIGNS or not isinstance(error, AuthenticationError):
            return False
        if not self._signer.should_resign(epoch, header(error.headers, "Date")):
            return False
        tries.resigned += 1
        return True

    async def _exchange(
        self, call: Call[Any], url: str, path: str, attempt: int, began: float
    ) -> tuple[HTTPResponse | None, LuigisBoxError | None, int]:
        """Gate, sign, send: the answer (or the error) and the clock epoch it was signed in.

        Signing happens only once the gate admits the request, just before it is written,
        so however long the queue, the ``Date`` is fresh.
        """
        signer = self._signer
        async with self._gate:
            epoch = signer.epoch
            headers = signer.headers(call.method, path, call.content_type)
            request = HTTPRequest(call.method, url, path, headers, call.body, self.timeout)
            if self._event_hooks:
                self._emit(EventKind.START, call.method, path, attempt, began)
            try:
                response = await self._transport.send(request)
            except TransportError as exc:
                self._emit(EventKind.TRANSPORT_ERROR, call.method, path, attempt, began, None, exc)
                return None, exc, epoch
        status = response.status
        if self._event_hooks:
            self._emit(EventKind.RESPONSE, call.method, path, attempt, began, status=status)
        if _debug_enabled():
            log.debug("%s %s -> %d (attempt %d)", call.method, path, status, attempt)
        if 200 <= status < 300:
            return response, None, epoch
        return response, self._api_error(call, response, path), epoch

    async def _succeeded_off_loop(
        self, call: Call[T], response: HTTPResponse, path: str, attempt: int, began: float
    ) -> Reply[T]:
        """A large answer is decoded in a thread, so other requests keep going."""
        try:
            value = await asyncio.to_thread(decode, call, response, path)
        except DecodingError as exc:
            raise self._undecodable(exc, call, path, attempt, began) from None
        return self._reply(call, response, value, path, attempt, began)

    def _succeeded(
        self, call: Call[T], response: HTTPResponse, path: str, attempt: int, began: float
    ) -> Reply[T]:
        try:
            value = decode(call, response, path)
        except DecodingError as exc:
            raise self._undecodable(exc, call, path, attempt, began) from None
        return self._reply(call, response, value, path, attempt, began)

    def _undecodable(
        self, error: DecodingError, call: Call[Any], path: str, attempt: int, began: float
    ) -> DecodingError:
        error.attempts = attempt
        self._emit(EventKind.GIVE_UP, call.method, path, attempt, began, None, error)
        return error

    def _reply(
        self,
        call: Call[T],
        response: HTTPResponse,
        value: T,
        path: str,
        attempt: int,
        began: float,
    ) -> Reply[T]:
        self.retry_budget.refund(retried=attempt > 1)
        self._budget_empty_reported = False
        if self._event_hooks:
            self._emit(EventKind.SUCCESS, call.method, path, attempt, began, status=response.status)
        return Reply(response.status, value, attempt)

    def _retry_delay(
        self,
        policy: RetryPolicy,
        error: LuigisBoxError,
        tries: _Tries,
        idempotent: bool,
        pacer: Pacer | None,
    ) -> float | None:
        """Seconds before the next attempt, or None to give up (logged here)."""
        count = tries.count(error)
        if pacer is not None and is_throttle(error):
            count = 1  # the batch's window slows it down; the refused attempt only steps aside
        delay = policy.delay(error, count, idempotent=idempotent)
        deadline = policy.deadline
        if delay is not None and deadline is not None and tries.past(deadline, delay):
            log.warning("%s: giving up at the %.0fs deadline", _short(error), deadline)
            return None
        if delay is None or (pacer is not None and pacer.stopping):
            if tries.total > 1:
                # INFO: the caller gets the error (or a batch its result) and reports it.
                log.info("%s failed after %d attempts", _short(error), tries.total)
            return None
        if not self.retry_budget.withdraw(error):
            self._report_empty_budget()
            return None
        return delay

    def _report_empty_budget(self) -> None:
        """Warn once per dry spell, not once per request of a failing batch."""
        if not self._budget_empty_reported:
            self._budget_empty_reported = True
            log.warning(
                "retry budget empty: failures now surface without retries until successes "
                "refill it (the server is failing most requests)"
            )

    def _emit(
        self,
        kind: EventKind,
        method: str,
        path: str,
        attempt: int,
        began: float,
        delay: float | None = None,
        error: LuigisBoxError | None = None,
        *,
        status: int | None = None,
    ) -> None:
        if not self._event_hooks:
            return
        if status is None and isinstance(error, APIError):
            status = error.status
        event = RequestEvent(
            kind, method, path, attempt, time.monotonic() - began, status, delay, error
        )
        for hook in self._event_hooks:
            hook(event)

    def _api_error(self, call: Call[Any], response: HTTPResponse, path: str) -> APIError:
        status = response.status
        text = response.body.decode("utf-8", "replace")
        try:
            payload = json.loads(text) if text else None
        except (ValueError, RecursionError):
            payload = None
        retry_after = None
        if status in RETRY_AFTER_STATUSES:
            retry_after = parse_retry_after(
                header(response.headers, "Retry-After"), self._signer.now()
            )
        return api_error_for(
            status, payload, text, method=call.method, path=path,
            headers=dict(response.headers), retry_after=retry_after,
        )


class _Tries:
    """The attempts of one request, counted by kind: throttles never use up max_attempts."""

    __slots__ = ("_clock", "began", "failed", "resigned", "throttled", "total")

    def __init__(self, policy: RetryPolicy) -> None:
        self._clock = policy.clock
        self.began = policy.clock() if policy.deadline is not None else 0.0
        self.total = self.failed = self.throttled = self.resigned = 0

    def past(self, deadline: float, delay: float) -> bool:
        """Whether waiting ``delay`` more would end after ``deadline``."""
        return self._clock() - self.began + delay > deadline

    def count(self, error: LuigisBoxError) -> int:
        """Record a failed attempt; how many of its kind so far."""
        if is_throttle(error):
            self.throttled += 1
            return self.throttled
        self.failed += 1
        return self.failed


def _debug_enabled() -> bool:
    return log.isEnabledFor(logging.DEBUG)


#: The old name of ``Reply`` (it clashed with the command line's outcome module); it goes
#: in 0.3.
Outcome = Reply


def _short(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__

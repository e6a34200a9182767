"""LuigisBoxClient: one pooled aiohttp session, one method per endpoint.

Every attempt of every request is signed afresh (``auth.Signer``); failures are retried
per ``RetryPolicy`` within a client-wide ``RetryBudget``; a 401 whose ``Date`` shows our
clock is off is corrected and retried once.
"""

from __future__ import annotations

import io
import json
import logging
import os
import time
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Mapping, Sequence
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol, Self
from urllib.parse import quote, urlencode

import aiohttp
import attrs
from multidict import CIMultiDictProxy
from yarl import URL

from .auth import Signer
from .convert import dumps, structure_customization
from .errors import (
    APIError,
    ClientClosedError,
    LuigisBoxError,
    TransportError,
    api_error_for,
)
from .events import EventHook, EventKind, RequestEvent
from .models import Customization, Page, StoredCustomization, TargetType, customization_id
from .retry import RETRY_AFTER_STATUSES, RetryBudget, RetryPolicy, parse_retry_after

if TYPE_CHECKING:
    from .batch import BatchInput, BatchReport
    from .sync import SyncPlan, SyncReport

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_TIMEOUT",
    "LuigisBoxClient",
    "Outcome",
    "Pacer",
]

log = logging.getLogger("luigis_async")

DEFAULT_BASE_URL: Final = "https://live.luigisbox.tech"
#: Environment variables read when the constructor is not given the value.
ENV_TRACKER_ID: Final = "LUIGISBOX_TRACKER_ID"
ENV_PRIVATE_KEY: Final = "LUIGISBOX_PRIVATE_KEY"
ENV_BASE_URL: Final = "LUIGISBOX_BASE_URL"
#: 30 s for the whole request, 10 s to connect: a hung server cannot park a caller forever.
DEFAULT_TIMEOUT: Final = aiohttp.ClientTimeout(total=30.0, connect=10.0)
DEFAULT_MAX_CONNECTIONS: Final = 16
DEFAULT_PAGE_SIZE: Final = 100
#: A 401 whose server ``Date`` differs from our clock by more than this is taken as skew.
SKEW_THRESHOLD: Final = 2.0
USER_AGENT: Final = "luigis-async/0.1"

_API_PREFIX: Final = "/v1/recommender/pin/"
#: Bodies this large are streamed (aiohttp warns that raw bytes might block the loop).
_LARGE_BODY: Final = 2**20
_State = Literal["unopened", "open", "closed"]


class Pacer(Protocol):
    """Hooks the batch updater wraps around each attempt (gates, rate, adaptive limits)."""

    def try_acquire(self) -> int | None:
        """A ticket at once when nothing holds the attempt back, else None."""

    async def acquire(self) -> int:
        """Wait until this attempt may be sent; return a ticket for ``release``."""

    def release(self, ticket: int, status: int | None, error: LuigisBoxError | None) -> None:
        """Report how the attempt ended (``status`` None when there was no HTTP answer)."""

    @property
    def stopping(self) -> bool:
        """True once the batch is stopping: a failed attempt is then not retried."""


@attrs.frozen
class Outcome:
    """A successful response: status, parsed JSON (or None) and attempts it took."""

    status: int
    payload: Any
    attempts: int


def _coerce_timeout(timeout: aiohttp.ClientTimeout | float) -> aiohttp.ClientTimeout:
    if isinstance(timeout, aiohttp.ClientTimeout):
        if timeout.total is None:
            raise ValueError(
                "timeout must have a total; a ClientTimeout() without one never times out"
            )
        return timeout
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    return aiohttp.ClientTimeout(total=float(timeout))


class LuigisBoxClient:
    """Async client for the pin customization API.

    Use it as ``async with LuigisBoxClient(tracker_id, private_key) as client:``, or call
    ``await client.close()`` yourself. It owns one ``aiohttp.ClientSession`` for its whole
    life, unless you pass ``session=`` (then you close that session yourself).

    Args:
        tracker_id, private_key, base_url: default to the environment variables
            ``LUIGISBOX_TRACKER_ID``, ``LUIGISBOX_PRIVATE_KEY`` and ``LUIGISBOX_BASE_URL``
            (the base URL then to ``https://live.luigisbox.tech``).
        timeout: an ``aiohttp.ClientTimeout`` with a ``total``, or seconds.
        max_connections: the pool size: the most requests this client has in flight.
        retry: the default RetryPolicy (methods and batches may override it).
        retry_budget: shared token bucket that stops retry storms; one per client.
        ssl: passed to aiohttp (True: verify certificates).
        trace_configs: aiohttp tracing, for those who already trace aiohttp.
        clock: the time source used for signing (tests inject a skewed one).
        event_hooks: callbacks receiving a ``RequestEvent`` at every step of a request.
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
        trace_configs: Sequence[aiohttp.TraceConfig] | None = None,
        clock: Callable[[], float] = time.time,
        event_hooks: Sequence[EventHook] = (),
    ) -> None:
        tracker_id = tracker_id if tracker_id is not None else os.environ.get(ENV_TRACKER_ID)
        private_key = private_key if private_key is not None else os.environ.get(ENV_PRIVATE_KEY)
        base_url = base_url or os.environ.get(ENV_BASE_URL) or DEFAULT_BASE_URL
        if not isinstance(tracker_id, str) or not tracker_id.strip():
            raise ValueError(f"tracker_id must be a non-empty string (or set {ENV_TRACKER_ID})")
        if not isinstance(private_key, str) or not private_key:
            raise ValueError(f"private_key must be a non-empty string (or set {ENV_PRIVATE_KEY})")
        if isinstance(max_connections, bool) or not isinstance(max_connections, int):
            raise ValueError(f"max_connections must be an int, got {max_connections!r}")
        if max_connections < 1:
            raise ValueError(f"max_connections must be >= 1, got {max_connections}")
        base = URL(base_url)
        if base.scheme not in ("http", "https") or not base.host:
            raise ValueError(f"base_url must be an http(s) URL, got {base_url!r}")
        self.tracker_id = tracker_id
        self.base_url = str(base).rstrip("/")
        self.timeout = _coerce_timeout(timeout)
        self.max_connections = max_connections
        self.retry = retry if retry is not None else RetryPolicy()
        self.retry_budget = retry_budget if retry_budget is not None else RetryBudget()
        self._signer = Signer(tracker_id, private_key, clock=clock)
        self._root = f"{base.path.rstrip('/')}{_API_PREFIX}{quote(tracker_id, safe='')}"
        self._origin = str(base.origin())
        self._ssl = ssl
        self._trace_configs = list(trace_configs or ())
        self._event_hooks = tuple(event_hooks)
        self._budget_empty_reported = False
        self._session = session
        self._owns_session = session is None
        self._state: _State = "unopened"

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

    def _open(self) -> aiohttp.ClientSession:
        if self._state == "closed":
            raise ClientClosedError(f"{self!r} is closed; create a new client")
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self.max_connections,
                limit_per_host=self.max_connections,
                ttl_dns_cache=300,
                keepalive_timeout=30.0,
                ssl=self._ssl,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=self.timeout,
                trace_configs=self._trace_configs or None,
                headers={"User-Agent": USER_AGENT},
            )
        self._state = "open"
        return self._session

    async def close(self) -> None:
        """Close the pooled session (if this client created it). Safe to call twice."""
        if self._state == "closed":
            return
        self._state = "closed"
        session, self._session = self._session, None
        if session is not None and self._owns_session:
            await session.close()

    # -- endpoints ---------------------------------------------------------------------

    async def create_customization(self, customization: Customization) -> StoredCustomization:
        """Create a customization; returns it with its server-assigned ``id``.

        Not idempotent: retried only when the server surely did not act on it.
        """
        body = dumps(_checked(customization))
        outcome = await self.execute("POST", "/scope", body=body, idempotent=False)
        return _stored(outcome.payload)

    async def get_customization(self, customization_id: uuid.UUID | str) -> StoredCustomization:
        """Fetch one customization by ID."""
        outcome = await self.execute("GET", self.scope_path(customization_id))
        return _stored(outcome.payload)

    async def update_customization(
        self, customization_id: uuid.UUID | str, customization: Customization
    ) -> None:
        """Replace the whole customization with ``customization`` (PUT)."""
        path = self.scope_path(customization_id)
        await self.execute("PUT", path, body=dumps(_checked(customization)))

    async def delete_customization(self, customization_id: uuid.UUID | str) -> None:
        """Delete one customization."""
        await self.execute("DELETE", self.scope_path(customization_id))

    async def list_customizations_page(
        self,
        *,
        limit: int = DEFAULT_PAGE_SIZE,
        offset: int = 0,
        model: str | Iterable[str] | None = None,
        tag: str | Iterable[str] | None = None,
        target_type: TargetType | str | Iterable[TargetType | str] | None = None,
        target_identity: str | Iterable[str] | None = None,
        sort: str | None = None,
        criteria: Sequence[Mapping[str, Any]] | None = None,
    ) -> Page:
        """One page of the customizations matching the filters, and the total count."""
        for name, value in (("limit", limit), ("offset", offset)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative int, got {value!r}")
        query = [("limit", str(limit)), ("offset", str(offset))]
        query += _filters(model=model, tag=tag, target_type=target_type,
                          target_identity=target_identity)
        if sort is not None:
            query.append(("sort", _text("sort", sort)))
        body = _criteria_body(criteria)
        outcome = await self.execute("POST", "/scopes", query=query, body=body)
        payload = _object(outcome.payload)
        results = tuple(_stored(item) for item in _list(payload.get("results", [])))
        pagination = payload.get("pagination")
        total = pagination.get("total") if isinstance(pagination, Mapping) else None
        return Page(results=results, total=total if isinstance(total, int) else len(results))

    async def list_customizations(
        self,
        *,
        model: str | Iterable[str] | None = None,
        tag: str | Iterable[str] | None = None,
        target_type: TargetType | str | Iterable[TargetType | str] | None = None,
        target_identity: str | Iterable[str] | None = None,
        sort: str | None = None,
        criteria: Sequence[Mapping[str, Any]] | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> AsyncIterator[StoredCustomization]:
        """Every matching customization, fetching pages lazily until ``pagination.total``."""
        if isinstance(page_size, bool) or not isinstance(page_size, int) or page_size < 1:
            raise ValueError(f"page_size must be a positive int, got {page_size!r}")
        offset = 0
        while True:
            page = await self.list_customizations_page(
                limit=page_size, offset=offset, model=model, tag=tag,
                target_type=target_type, target_identity=target_identity,
                sort=sort, criteria=criteria,
            )
            for item in page.results:
                yield item
            offset += len(page.results)
            if not page.results or offset >= page.total:
                return

    async def export_customizations(
        self,
        *,
        model: str | Iterable[str] | None = None,
        tag: str | Iterable[str] | None = None,
        target_type: TargetType | str | Iterable[TargetType | str] | None = None,
        target_identity: str | Iterable[str] | None = None,
        remove_expired_pins: bool | None = None,
        remove_nonexisting_item_pins: bool | None = None,
    ) -> list[StoredCustomization]:
        """Every matching customization in one response."""
        query = _filters(model=model, tag=tag, target_type=target_type,
                         target_identity=target_identity)
        for name, flag in (
            ("remove_expired_pins", remove_expired_pins),
            ("remove_nonexisting_item_pins", remove_nonexisting_item_pins),
        ):
            if flag is not None:
                if not isinstance(flag, bool):
                    raise ValueError(f"{name} must be a bool, got {flag!r}")
                query.append((name, "true" if flag else "false"))
        outcome = await self.execute("POST", "/scopes/export", query=query)
        payload = _object(outcome.payload)
        return [_stored(item) for item in _list(payload.get("results", []))]

    async def update_many(
        self, updates: Iterable[BatchInput] | AsyncIterable[BatchInput], **options: Any
    ) -> BatchReport:
        """Apply many updates (or deletes) in parallel; ``options`` go to ``BatchUpdater``."""
        from .batch import BatchUpdater

        return await BatchUpdater(self, **options).run(updates)

    async def plan_sync(
        self, desired: Iterable[Customization], *, managed_tag: str, prune: bool = False
    ) -> SyncPlan:
        """Plan the writes that make the managed customizations match ``desired``.

        Reads only; see ``luigis_async.sync``.
        """
        from .sync import plan_sync

        return await plan_sync(self, desired, managed_tag=managed_tag, prune=prune)

    async def apply_sync(self, plan: SyncPlan, **options: Any) -> SyncReport:
        """Execute a plan from ``plan_sync``; ``options`` go to ``BatchUpdater``."""
        from .sync import apply_sync

        return await apply_sync(self, plan, **options)

    # -- the request machinery ---------------------------------------------------------

    def scope_path(self, customization_id_: uuid.UUID | str) -> str:
        """``/scope/{id}`` for a validated UUID: no input can alter the request path."""
        return f"/scope/{customization_id(customization_id_)}"

    async def execute(
        self,
        method: str,
        endpoint: str,
        *,
        query: Sequence[tuple[str, str]] = (),
        body: bytes | None = None,
        idempotent: bool = True,
        retry: RetryPolicy | None = None,
        pacer: Pacer | None = None,
    ) -> Outcome:
        """Send one API request with retries; raise the last error when they run out.

        ``endpoint`` is relative to ``/v1/recommender/pin/{tracker}`` and must already be
        validated (see ``scope_path``). ``idempotent`` decides which failures may be retried.
        """
        policy = retry or self.retry
        path = self._root + endpoint
        url = URL(self._origin + path + ("?" + urlencode(query) if query else ""), encoded=True)
        hooks = self._event_hooks
        debug = log.isEnabledFor(logging.DEBUG)
        began = time.monotonic() if hooks or debug else 0.0
        attempt = 0
        skew_corrected = False
        while True:
            attempt += 1
            error: LuigisBoxError
            ticket = 0
            if pacer is not None:
                taken = pacer.try_acquire()
                ticket = taken if taken is not None else await pacer.acquire()
            if hooks:
                self._emit(EventKind.START, method, path, attempt, began)
            try:
                status, headers, data = await self._attempt(method, url, path, body)
            except TransportError as exc:
                if pacer is not None:
                    pacer.release(ticket, None, exc)
                error = exc
                if hooks:
                    self._emit(EventKind.TRANSPORT_ERROR, method, path, attempt, began, error=exc)
            except BaseException:
                if pacer is not None:
                    pacer.release(ticket, None, None)
                raise
            else:
                if hooks:
                    self._emit(EventKind.RESPONSE, method, path, attempt, began, status=status)
                if debug:
                    log.debug(
                        "%s %s -> %d in %.1f ms (attempt %d)",
                        method, path, status, (time.monotonic() - began) * 1000, attempt,
                    )
                if status < 400:
                    if pacer is not None:
                        pacer.release(ticket, status, None)
                    self.retry_budget.refund(retried=attempt > 1)
                    self._budget_empty_reported = False
                    if hooks:
                        self._emit(EventKind.SUCCESS, method, path, attempt, began, status=status)
                    return Outcome(status, _json(data) if data else None, attempt)
                error = self._api_error(status, headers, data, method, path)
                if pacer is not None:
                    pacer.release(ticket, status, error)
                if status == 401 and not skew_corrected and self._learn_skew(headers):
                    skew_corrected = True
                    if hooks:
                        self._emit(EventKind.RETRY, method, path, attempt, began, delay=0.0,
                                   status=status, error=error)
                    continue
            delay = policy.delay(error, attempt, idempotent=idempotent)
            if pacer is not None and pacer.stopping:
                delay = None
            if delay is None or not self.retry_budget.withdraw(error):
                error.attempts = attempt
                if hooks:
                    self._emit(EventKind.GIVE_UP, method, path, attempt, began,
                               status=getattr(error, "status", None), error=error)
                if delay is not None:  # retryable, but the budget is empty
                    self._report_empty_budget()
                    log.debug("%s %s gave up: retry budget empty", method, path)
                elif attempt > 1:
                    log.warning(
                        "%s %s failed after %d attempts: %s",
                        method, path, attempt, _short(error),
                    )
                raise error
            if hooks:
                self._emit(EventKind.RETRY, method, path, attempt, began, delay=delay,
                           status=getattr(error, "status", None), error=error)
            log.info(
                "retrying %s %s in %.2fs after %s (attempt %d of %d)",
                method, path, delay, _short(error), attempt, policy.max_attempts,
            )
            await policy.sleep(delay)
            if pacer is not None and pacer.stopping:
                error.attempts = attempt
                raise error

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
        *,
        status: int | None = None,
        delay: float | None = None,
        error: LuigisBoxError | None = None,
    ) -> None:
        event = RequestEvent(
            kind, method, path, attempt, time.monotonic() - began, status, delay, error
        )
        for hook in self._event_hooks:
            hook(event)

    async def _attempt(
        self, method: str, url: URL, path: str, body: bytes | None
    ) -> tuple[int, CIMultiDictProxy[str], bytes]:
        session = self._open() if self._state != "open" or self._session is None else self._session
        headers = self._signer.headers(method, path)
        data: bytes | io.BytesIO | None = body
        if body is not None and len(body) >= _LARGE_BODY:
            data = io.BytesIO(body)  # aiohttp streams it instead of blocking the loop
        try:
            async with session.request(
                method, url, data=data, headers=headers, timeout=self.timeout, ssl=self._ssl
            ) as response:
                return response.status, response.headers, await response.read()
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            raise TransportError(
                f"could not connect: {_short(exc)}", method=method, path=path, connect_failed=True
            ) from exc
        except TimeoutError as exc:
            raise TransportError(
                f"timed out after {self.timeout.total}s", method=method, path=path
            ) from exc
        except aiohttp.ClientError as exc:
            raise TransportError(_short(exc), method=method, path=path) from exc

    def _api_error(
        self, status: int, headers: CIMultiDictProxy[str], data: bytes, method: str, path: str
    ) -> APIError:
        text = data.decode("utf-8", "replace")
        try:
            payload = json.loads(text) if text else None
        except ValueError:
            payload = None
        retry_after = None
        if status in RETRY_AFTER_STATUSES:
            retry_after = parse_retry_after(headers.get("Retry-After"), self._signer.now())
        return api_error_for(
            status, payload, text, method=method, path=path,
            headers=dict(headers), retry_after=retry_after,
        )

    def _learn_skew(self, headers: Mapping[str, str]) -> bool:
        """Adopt the server's clock from its ``Date`` header if ours is off; True if so."""
        try:
            server_time = parsedate_to_datetime(headers["Date"]).timestamp() + 0.5
        except (KeyError, TypeError, ValueError, IndexError):
            return False
        offset = server_time - self._signer.clock()
        if abs(offset - self._signer.offset) <= SKEW_THRESHOLD:
            return False
        log.warning(
            "local clock is %.1fs off the server's; signing with corrected time", -offset
        )
        self._signer.offset = offset
        return True


def _checked(customization: Customization) -> Customization:
    if not isinstance(customization, Customization):
        raise TypeError(f"expected a Customization, got {type(customization).__name__}")
    return customization


def _stored(item: Any) -> StoredCustomization:
    return structure_customization(item, StoredCustomization)


def _json(data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return None


def _object(payload: Any) -> Mapping[str, Any]:
    return payload if isinstance(payload, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _short(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _text(name: str, value: object) -> str:
    if isinstance(value, TargetType):
        return value.value
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} filter must be a non-empty string, got {value!r}")
    return value


def _filters(**filters: Any) -> list[tuple[str, str]]:
    """Query pairs; a filter given several values repeats its key (``model=a&model=b``)."""
    query: list[tuple[str, str]] = []
    for name, value in filters.items():
        if value is None:
            continue
        values = [value] if isinstance(value, str) else list(value)
        if name == "target_type":
            values = [TargetType(v) if isinstance(v, str) else v for v in values]
        query += [(name, _text(name, v)) for v in values]
    return query


def _criteria_body(criteria: Sequence[Mapping[str, Any]] | None) -> bytes | None:
    if criteria is None:
        return None
    if isinstance(criteria, Mapping | str) or not all(isinstance(c, Mapping) for c in criteria):
        raise ValueError("criteria must be a sequence of JSON objects")
    return json.dumps({"criteria": [dict(c) for c in criteria]}).encode()

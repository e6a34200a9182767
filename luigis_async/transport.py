"""The transport seam: one HTTP exchange, its bytes in and out, and nothing else.

The client signs, retries and decodes; a transport only sends what it is given and maps
its own failures to ``TransportError``. ``AiohttpTransport`` is the real one (one pooled
session, redirects never followed); ``MockTransport(handler)`` answers from a function,
so a unit test needs no socket (httpx's ``MockTransport`` is the model).
"""

from __future__ import annotations

import inspect
import io
import urllib.request
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final, Protocol

import aiohttp
import attrs
from yarl import URL

from ._version import __version__
from .errors import RequestTimeoutError, TransportError, header

__all__ = ["AiohttpTransport", "HTTPRequest", "HTTPResponse", "MockTransport", "Transport"]

#: Bodies this large are streamed (aiohttp warns that raw bytes might block the loop).
LARGE_BODY: Final = 2**20
USER_AGENT: Final = f"luigis-async/{__version__}"


@attrs.define
class HTTPRequest:
    """One signed attempt: ``path`` is what was signed, ``url`` what is requested.

    Treat it as immutable (not frozen only because frozen attrs classes cost twice as much
    to build, and one is built per attempt).

    Args:
        method: the HTTP method.
        url: the full URL, already quoted.
        path: the path as signed (no host).
        headers: the headers to send, ``Date`` and ``Authorization`` included.
        body: the body, if any.
        timeout: how long the whole exchange may take.
    """

    method: str
    url: str
    path: str
    headers: Mapping[str, str]
    body: bytes | None = None
    #: How long the whole exchange may take.
    timeout: aiohttp.ClientTimeout = attrs.field(factory=lambda: aiohttp.ClientTimeout(total=30.0))


@attrs.define
class HTTPResponse:
    """Whatever came back: any status, the headers and the whole body (treat as immutable).

    Args:
        status: the HTTP status.
        headers: the response's headers.
        body: the whole body.
    """

    status: int
    headers: Mapping[str, str] = attrs.field(factory=dict)
    body: bytes = b""

    @property
    def content_type(self) -> str | None:
        """The ``Content-Type`` header, if any."""
        return header(self.headers, "Content-Type")


class Transport(Protocol):
    """Sends one request and returns the answer, whatever its status."""

    @property
    def max_concurrency(self) -> int | None:
        """How many exchanges it can run at once without queueing (None: no bound)."""

    async def send(self, request: HTTPRequest) -> HTTPResponse:
        """Send one request and wait for its whole answer.

        Args:
            request: the signed attempt.

        Returns:
            The answer, whatever its status (redirects are not followed).

        Raises:
            TransportError: there is no answer (connect, drop); ``RequestTimeoutError``
                after the request's timeout.
        """

    async def aclose(self) -> None:
        """Release the connections; safe to call twice."""


def environment_proxy(url: str) -> str | None:
    """The proxy ``HTTPS_PROXY``/``HTTP_PROXY`` name for ``url``, unless ``NO_PROXY`` exempts it.

    Looked up once per host here rather than by aiohttp's ``trust_env``, which also reads
    ``~/.netrc`` in a thread on every request (and refuses our ``Authorization`` header
    when it finds an entry).

    Args:
        url: the URL (or origin) to be requested.

    Returns:
        The proxy's URL, or None to connect directly.
    """
    parsed = URL(url)
    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get(parsed.scheme)
    host = f"{parsed.host}:{parsed.port}" if parsed.port else (parsed.host or "")
    if proxy is None or urllib.request.proxy_bypass_environment(  # type: ignore[attr-defined]
        host, proxies
    ):
        return None
    return proxy


def _short(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class AiohttpTransport:
    """One ``aiohttp.ClientSession`` for the transport's life, created on first use.

    Pass ``session=`` to share a session you own (then you close it); its connector's
    limit bounds ``max_concurrency``. With ``trust_env`` (the default) requests go through
    the proxy the environment names (``HTTPS_PROXY``, ``NO_PROXY``, ...).

    Args:
        max_connections: the pool's size, when it creates the session.
        session: a session of yours to send through, instead of its own.
        ssl: passed to aiohttp (True: verify certificates).
        trace_configs: aiohttp tracing for the session it creates.
        trust_env: use the proxy the environment names.
    """

    def __init__(
        self,
        *,
        max_connections: int,
        session: aiohttp.ClientSession | None = None,
        ssl: Any = True,
        trace_configs: Sequence[aiohttp.TraceConfig] = (),
        trust_env: bool = True,
    ) -> None:
        self._max_connections = max_connections
        self._session = session
        self._owns_session = session is None
        self._ssl = ssl
        self._trace_configs = list(trace_configs)
        self._trust_env = trust_env
        self._proxies: dict[str, str | None] = {}

    @property
    def max_concurrency(self) -> int | None:
        """``max_connections``, or the limit of a given session's connector (None: none)."""
        if self._owns_session:
            return self._max_connections
        assert self._session is not None
        connector = self._session.connector
        limits = [connector.limit, connector.limit_per_host] if connector is not None else []
        return min([limit for limit in limits if limit > 0], default=None)

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections,
                limit_per_host=self._max_connections,
                ttl_dns_cache=300,
                keepalive_timeout=30.0,
                ssl=self._ssl,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                trace_configs=self._trace_configs or None,
                headers={"User-Agent": USER_AGENT},
            )
        return self._session

    def _proxy(self, url: str) -> str | None:
        if not self._trust_env:
            return None
        end = url.find("/", url.find("//") + 2)
        origin = url if end < 0 else url[:end]
        try:
            return self._proxies[origin]
        except KeyError:
            proxy = self._proxies[origin] = environment_proxy(origin)
            return proxy

    async def send(self, request: HTTPRequest) -> HTTPResponse:
        """Send one request through the session (opening it on first use).

        Args:
            request: the signed attempt.

        Returns:
            The answer, whatever its status; redirects are not followed.

        Raises:
            TransportError: the connection failed (``connect_failed``) or dropped, or
                aiohttp refused the request (a bad header value, say).
            RequestTimeoutError: no whole answer within ``request.timeout``.
        """
        session = self._session if self._session is not None else self._open()
        body = request.body
        data: bytes | io.BytesIO | None = body
        if body is not None and len(body) >= LARGE_BODY:
            data = io.BytesIO(body)  # aiohttp streams it instead of blocking the loop
        method, path, timeout = request.method, request.path, request.timeout
        try:
            async with session.request(
                method,
                URL(request.url, encoded=True),  # ours, already quoted: no re-parsing
                data=data,
                headers=request.headers,
                timeout=timeout,
                ssl=self._ssl,
                proxy=self._proxy(request.url),
                allow_redirects=False,
            ) as response:
                body = await response.read()
                return HTTPResponse(response.status, response.headers, body)
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            raise TransportError(
                f"could not connect: {_short(exc)}", method=method, path=path, connect_failed=True
            ) from exc
        except TimeoutError as exc:
            raise RequestTimeoutError(
                f"timed out after {timeout.total}s", method=method, path=path
            ) from exc
        except (aiohttp.ClientError, ValueError) as exc:  # ValueError: e.g. a bad header value
            raise TransportError(_short(exc), method=method, path=path) from exc

    async def aclose(self) -> None:
        """Close the session if it created it; safe to call twice."""
        session, self._session = self._session, None
        if session is not None and self._owns_session:
            await session.close()


Handler = Callable[[HTTPRequest], HTTPResponse | Awaitable[HTTPResponse]]


class MockTransport:
    """Answers every request with ``handler(request)`` (sync or async): no sockets.

    ``requests`` lists what was sent, signed headers included. A handler may raise
    ``TransportError`` to act out a dropped connection.

    Args:
        handler: called with each ``HTTPRequest``; returns (or awaits to) its
            ``HTTPResponse``.
    """

    max_concurrency: int | None = None

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[HTTPRequest] = []

    async def send(self, request: HTTPRequest) -> HTTPResponse:
        """Record ``request`` in ``requests`` and answer it with the handler.

        Args:
            request: the signed attempt.

        Returns:
            What the handler returned (awaited, if it was awaitable).

        Raises:
            TransportError: when the handler raises one, to act out a failed
                connection (anything else it raises propagates too).
        """
        self.requests.append(request)
        answer = self.handler(request)
        return await answer if inspect.isawaitable(answer) else answer

    async def aclose(self) -> None:
        """Nothing to release."""

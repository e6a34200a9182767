"""The exception tree: one root, so callers can catch everything this library raises.

::

    LuigisBoxError
    ├── ConfigurationError          (also ValueError) bad credentials, tracker ID or options
    ├── InvalidCustomizationError   (also ValueError) bad input, raised before any request
    ├── ClientClosedError           (also RuntimeError) the client was used after close()
    ├── EventLoopError              (also RuntimeError) the client was used from another loop
    ├── TransportError              connection failed, dropped, or timed out (cause chained)
    │   └── RequestTimeoutError         no complete answer within the timeout
    ├── DecodingError               a 2xx whose body is not the answer the endpoint documents
    ├── UnexpectedError             a batch item hit an error of another kind (cause chained)
    └── APIError                    the server answered with an error status
        ├── RedirectError               3xx: never followed (location)
        ├── BadRequestError             400
        ├── AuthenticationError         401
        ├── NotFoundError               404
        ├── ConflictError               409
        ├── PayloadTooLargeError        413
        ├── UnprocessableEntityError    422
        ├── RateLimitError              429 (retry_after)
        └── ServerError                 5xx

No exception ever carries the private key: messages are built from the tracker ID,
method, path, status and the server's reason only. Every error pickles (results may cross
process boundaries), keeping its attributes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "APIError",
    "AuthenticationError",
    "BadRequestError",
    "ClientClosedError",
    "ConfigurationError",
    "ConflictError",
    "DecodingError",
    "EventLoopError",
    "InvalidCustomizationError",
    "LuigisBoxError",
    "NotFoundError",
    "PayloadTooLargeError",
    "RateLimitError",
    "RedirectError",
    "RequestTimeoutError",
    "ServerError",
    "TransportError",
    "UnexpectedError",
    "UnprocessableEntityError",
    "api_error_for",
]

#: How much of an unexpected body an error quotes.
SNIPPET_LENGTH = 200


def snippet(data: bytes | str) -> str:
    """The start of a body on one line, for messages: enough to recognise an HTML page.

    Args:
        data: a body; bytes are decoded as UTF-8, replacing what does not decode.

    Returns:
        At most ``SNIPPET_LENGTH`` characters, runs of whitespace made one space.
    """
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    return " ".join(text[: SNIPPET_LENGTH * 4].split())[:SNIPPET_LENGTH]


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A header by case-insensitive name from any mapping (a plain dict included).

    Args:
        headers: the headers, e.g. ``HTTPResponse.headers`` or a plain dict.
        name: the header's name, in any case.

    Returns:
        Its value, or None when there is no such header.
    """
    value = headers.get(name)  # aiohttp's headers are case-insensitive already
    if value is not None:
        return value
    wanted = name.lower()
    return next((value for key, value in headers.items() if key.lower() == wanted), None)


def _restore(cls: type[LuigisBoxError], args: tuple[Any, ...], state: dict[str, Any]) -> Any:
    error = cls.__new__(cls, *args)
    error.__dict__.update(state)
    return error


class LuigisBoxError(Exception):
    """Root of every exception this library raises."""

    #: How many attempts were made before this error surfaced (1 when not retried).
    attempts: int = 1

    def __reduce__(self) -> tuple[Any, ...]:
        # Subclasses take keyword-only arguments, which Exception's pickling drops.
        return (_restore, (type(self), self.args, self.__dict__))


class ConfigurationError(LuigisBoxError, ValueError):
    """A bad setting: missing credentials, a bad tracker ID or URL, or an option of the
    client, a ``RetryPolicy``, ``BatchUpdater`` or ``BulkCreator`` out of range."""


class InvalidCustomizationError(LuigisBoxError, ValueError):
    """Input that the API would reject; raised before any request is sent."""


class ClientClosedError(LuigisBoxError, RuntimeError):
    """The client was used after ``close()``."""


class EventLoopError(LuigisBoxError, RuntimeError):
    """The client was used from an event loop other than the one it was opened in.

    Its pool belongs to that loop (often one ``asyncio.run`` already closed): create one
    client per loop.
    """


class UnexpectedError(LuigisBoxError):
    """A batch item failed with an error that is not a ``LuigisBoxError``; see ``__cause__``.

    The batch goes on: one item's surprise (a raising event hook, say) fails that item only.
    """


class TransportError(LuigisBoxError):
    """The request did not get an HTTP answer: connection error, drop or timeout.

    ``connect_failed`` is true only when the connection could not be established,
    so the server surely never saw the request (safe to retry even a create).

    Args:
        message: what went wrong, with the cause's type.
        method, path: the request (the path as signed, without the host).
        connect_failed: the connection was never established.
    """

    def __init__(
        self, message: str, *, method: str, path: str, connect_failed: bool = False
    ) -> None:
        super().__init__(message)
        self.method = method
        self.path = path
        self.connect_failed = connect_failed

    def __str__(self) -> str:
        return f"{self.method} {self.path}: {self.args[0]}"


class RequestTimeoutError(TransportError):
    """No complete answer within the client's (or the call's) timeout."""


class DecodingError(LuigisBoxError):
    """A success status whose body is not the answer the endpoint documents.

    A proxy, captive portal or maintenance page answering ``200 text/html`` ends here,
    never as an empty result. ``snippet`` is the start of the body.

    Args:
        message: what the body was expected to be.
        status: the HTTP status (a success).
        content_type: the response's ``Content-Type``, if any.
        body: the body; only its start is kept, as ``snippet``.
        method, path: the request (the path as signed, without the host).
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        content_type: str | None,
        body: bytes | str,
        method: str,
        path: str,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.content_type = content_type
        self.snippet: str = snippet(body)
        self.method = method
        self.path = path

    def __str__(self) -> str:
        kind = self.content_type or "no Content-Type"
        return (
            f"{self.method} {self.path} -> {self.status} ({kind}): {self.args[0]}; "
            f"body starts {self.snippet!r}"
        )


class APIError(LuigisBoxError):
    """The server answered with an error status.

    Use ``api_error_for`` to get the subclass that matches a status.

    Args:
        status: the HTTP status.
        reason: the server's ``reason``, else the start of its body.
        method, path: the request (the path as signed, without the host).
        exception_details: the server's ``exception_details``: messages by field.
        headers: the response's headers.
    """

    def __init__(
        self,
        status: int,
        reason: str,
        *,
        method: str,
        path: str,
        exception_details: Mapping[str, Sequence[str]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(status, reason)
        self.status = status
        self.reason = reason
        self.method = method
        self.path = path
        self.exception_details: dict[str, list[str]] = {
            str(k): [str(m) for m in v] for k, v in (exception_details or {}).items()
        }
        self.headers: Mapping[str, str] = headers or {}
        #: Seconds the server asked us to wait (``Retry-After`` on 429/503), if it said.
        self.retry_after: float | None = None

    def __str__(self) -> str:
        text = f"{self.method} {self.path} -> {self.status}: {self.reason}"
        if self.exception_details:
            details = "; ".join(
                f"{field}: {', '.join(msgs)}" for field, msgs in self.exception_details.items()
            )
            text += f" ({details})"
        return text


class RedirectError(APIError):
    """3xx: the API never redirects, so a redirect is a proxy or a wrong base URL.

    It is not followed: signed headers never go to another host. ``location`` is where
    it pointed.
    """

    @property
    def location(self) -> str | None:
        """The ``Location`` header, if any."""
        return header(self.headers, "Location")


class BadRequestError(APIError):
    """400: the customization body is invalid."""


class AuthenticationError(APIError):
    """401: bad signature, wrong key, or a clock too far from the server's."""


class NotFoundError(APIError):
    """404: unknown tracker or customization."""


class ConflictError(APIError):
    """409: a bulk create met an existing customization (``conflict_strategy=raise``)."""


class PayloadTooLargeError(APIError):
    """413: too many customizations (or bytes) in one bulk request."""


class UnprocessableEntityError(APIError):
    """422: invalid pin definition or filter."""


class RateLimitError(APIError):
    """429: throttled; ``retry_after`` is the server's requested wait in seconds, if any."""


class ServerError(APIError):
    """5xx: the server failed; usually transient."""


_BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}


def _by_class(status: int) -> type[APIError]:
    if 300 <= status < 400:
        return RedirectError
    return ServerError if status >= 500 else APIError


def api_error_for(
    status: int,
    payload: Any,
    raw_text: str,
    *,
    method: str,
    path: str,
    headers: Mapping[str, str] | None = None,
    retry_after: float | None = None,
) -> APIError:
    """Build the right APIError subclass from a status and a (maybe non-JSON) body.

    Args:
        status: the HTTP status: 3xx, 4xx or 5xx.
        payload: the decoded JSON body, or None when it was not JSON.
        raw_text: the body as text, quoted when ``payload`` has no ``reason``.
        method, path: the request (the path as signed, without the host).
        headers: the response's headers.
        retry_after: the seconds its ``Retry-After`` asked for, if any.

    Returns:
        The error (not raised): ``NotFoundError`` for a 404, ``ServerError`` for a 5xx,
        ``RedirectError`` for a 3xx, a plain ``APIError`` for an unlisted 4xx.
    """
    reason: str | None = None
    details: Mapping[str, Sequence[str]] | None = None
    if isinstance(payload, Mapping):
        raw_reason = payload.get("reason")
        reason = str(raw_reason) if raw_reason is not None else None
        raw_details = payload.get("exception_details")
        if isinstance(raw_details, Mapping):
            details = {
                str(k): v if isinstance(v, list) else [v] for k, v in raw_details.items()
            }
    if 300 <= status < 400:
        location = header(headers or {}, "Location") or "nowhere"
        reason = f"redirected to {location}; not followed"
    if reason is None:
        reason = snippet(raw_text) or f"HTTP {status} with an empty body"
    cls = _BY_STATUS.get(status) or _by_class(status)
    error = cls(
        status, reason, method=method, path=path, exception_details=details, headers=headers
    )
    error.retry_after = retry_after
    return error

"""The exception tree: one root, so callers can catch everything this library raises.

::

    LuigisBoxError
    ├── InvalidCustomizationError   (also ValueError) bad input, raised before any request
    ├── ClientClosedError           (also RuntimeError) the client was used after close()
    ├── TransportError              connection failed, dropped, or timed out (cause chained)
    └── APIError                    the server answered with an error status
        ├── BadRequestError             400
        ├── AuthenticationError         401
        ├── NotFoundError               404
        ├── UnprocessableEntityError    422
        ├── RateLimitError              429 (retry_after)
        └── ServerError                 5xx

No exception ever carries the private key: messages are built from the tracker ID,
method, path, status and the server's reason only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "APIError",
    "AuthenticationError",
    "BadRequestError",
    "ClientClosedError",
    "InvalidCustomizationError",
    "LuigisBoxError",
    "NotFoundError",
    "RateLimitError",
    "ServerError",
    "TransportError",
    "UnprocessableEntityError",
    "api_error_for",
]


class LuigisBoxError(Exception):
    """Root of every exception this library raises."""

    #: How many attempts were made before this error surfaced (1 when not retried).
    attempts: int = 1


class InvalidCustomizationError(LuigisBoxError, ValueError):
    """Input that the API would reject; raised before any request is sent."""


class ClientClosedError(LuigisBoxError, RuntimeError):
    """The client was used after ``close()``."""


class TransportError(LuigisBoxError):
    """The request did not get an HTTP answer: connection error, drop or timeout.

    ``connect_failed`` is true only when the connection could not be established,
    so the server surely never saw the request (safe to retry even a create).
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


class APIError(LuigisBoxError):
    """The server answered with an error status."""

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


class BadRequestError(APIError):
    """400: the customization body is invalid."""


class AuthenticationError(APIError):
    """401: bad signature, wrong key, or a clock too far from the server's."""


class NotFoundError(APIError):
    """404: unknown tracker or customization."""


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
    422: UnprocessableEntityError,
    429: RateLimitError,
}


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
    """Build the right APIError subclass from a status and a (maybe non-JSON) body."""
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
    if reason is None:
        snippet = " ".join(raw_text.split())[:200]
        reason = snippet or f"HTTP {status} with an empty body"
    cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else APIError)
    error = cls(
        status, reason, method=method, path=path, exception_details=details, headers=headers
    )
    error.retry_after = retry_after
    return error

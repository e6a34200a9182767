"""How a success answer becomes a result: exactly as documented, or ``DecodingError``.

A proxy, captive portal or maintenance page can answer ``200 text/html``; read leniently,
that becomes an empty list, and an empty list makes a sync plan create everything again.
So a success body must have the media type and shape its endpoint documents.
"""

from __future__ import annotations

import json
from typing import Final, TypeVar

from .endpoints import Call, ShapeError
from .errors import DecodingError
from .transport import HTTPResponse

__all__ = ["LARGE_ANSWER", "decode"]

T = TypeVar("T")

#: Answers at least this large are decoded in a worker thread, off the event loop.
LARGE_ANSWER: Final = 2**20


def _is_json(content_type: str | None) -> bool:
    """``application/json`` or ``*+json``, any parameters; no header counts as maybe."""
    if content_type is None:
        return True
    media = content_type.partition(";")[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def decode(call: Call[T], response: HTTPResponse, path: str) -> T:
    """The result of a 2xx ``response`` to ``call`` (sent to ``path``).

    Raises:
        DecodingError: the body is not what the endpoint documents (wrong media type,
            not JSON, nested too deep, or the wrong shape).
    """
    body = response.body
    if not call.answers_json and not body:
        return call.read(None)  # the common 204
    content_type = response.content_type

    def failure(message: str) -> DecodingError:
        return DecodingError(
            message,
            status=response.status,
            content_type=content_type,
            body=body,
            method=call.method,
            path=path,
        )

    if not call.answers_json:
        if body.strip() and (content_type is None or not _is_json(content_type)):
            raise failure("expected no content or JSON")
        return call.read(None)
    if not _is_json(content_type):
        raise failure("expected a JSON answer")
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise failure(f"not valid JSON ({type(exc).__name__}: {exc})") from None
    if not isinstance(payload, dict):
        raise failure(f"expected a JSON object, got {type(payload).__name__}")
    try:
        return call.read(payload)
    except (ShapeError, RecursionError) as exc:
        raise failure(str(exc) or type(exc).__name__) from None

"""The sandbox's wire formats: request bodies parsed as strictly as a server does, and the
API's error body.

A body is parsed once, by the request pipeline, so the request log and the route handler
share one parse (a bulk request's thousands of lines are never decoded twice). The pipeline
hands it over in a context variable (each request runs in its own task, so its own context):
aiohttp's typed request storage only exists from 3.14 on.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from contextvars import ContextVar, Token
from http import HTTPStatus
from typing import Any

import attrs
from aiohttp import web

__all__ = [
    "Body",
    "error_response",
    "fault_reason",
    "fault_response",
    "hand_over",
    "parse_json",
    "parse_ndjson",
    "request_body",
]


@attrs.frozen
class Body:
    """A request body parsed once.

    ``value``: the parsed JSON (None when empty or not JSON), or for NDJSON the list of
    parsed lines (None for a line that is not JSON). ``errors``: why it did not parse, by
    line number (1-based; JSON bodies use line 1).
    """

    value: Any
    errors: Mapping[int, str] = attrs.field(factory=dict)
    raw_size: int = 0


_BODY: ContextVar[Body] = ContextVar("luigis_async.sandbox.body")


def hand_over(body: Body) -> Token[Body]:
    """Make ``body`` the current request's, for its route handler (the pipeline calls this)."""
    return _BODY.set(body)


def request_body() -> Body:
    """The current request's body as the pipeline parsed it (route handlers call this)."""
    return _BODY.get()


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _strict_json(raw: bytes) -> Any:
    """Parse like a strict server: NaN and Infinity are not JSON."""
    return json.loads(raw, parse_constant=_refuse_constant)


def parse_json(raw: bytes) -> Body:
    """A JSON body; empty (or only whitespace) is None, not an error."""
    if not raw.strip():
        return Body(None, raw_size=len(raw))
    try:
        return Body(_strict_json(raw), raw_size=len(raw))
    except ValueError as exc:
        return Body(None, {1: f"Request body is not valid JSON: {exc}"}, len(raw))


def parse_ndjson(raw: bytes) -> Body:
    """One JSON value per line; a final newline ends the last line, it does not add one.

    An empty line in the middle is a line that is not JSON.
    """
    lines = raw.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    values: list[Any] = []
    errors: dict[int, str] = {}
    for number, line in enumerate(lines, start=1):
        try:
            values.append(_strict_json(line))
        except ValueError as exc:
            values.append(None)
            errors[number] = f"Line is not valid JSON: {exc}"
    return Body(values, errors, len(raw))


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


def fault_reason(status: int, fault: str) -> str:
    """The reason of an injected error: the status's phrase, marked as the sandbox's doing."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return f"{phrase} (injected by the sandbox: {fault})"


def fault_response(status: int, fault: str, retry_after: str | None = None) -> web.Response:
    """An injected error in the API's error body."""
    return error_response(status, fault_reason(status, fault), retry_after=retry_after)

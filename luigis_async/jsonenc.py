"""The library's two JSON encoders, each for one purpose; nothing else writes JSON to send
or to compare.

- ``wire_json``: request bodies. Compact UTF-8 bytes in the caller's key order, with
  orjson when the ``fast`` extra is installed (models are validated, so hold only JSON).
- ``canonical_json``: comparison. Sorted keys and no spaces, so equal data gives equal
  text: natural keys, and the order and diffs of a sync plan. Never sent as a body.
"""

from __future__ import annotations

import json
from typing import Any

from .errors import InvalidCustomizationError

__all__ = ["canonical_json", "wire_json"]


def canonical_json(value: Any) -> str:
    """Sorted keys, no spaces, non-ASCII as is: one text per value, to compare or key by."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _dumps_stdlib(body: Any) -> bytes:
    try:
        return _ENCODER.encode(body).encode()
    except ValueError as exc:  # a NaN put into a model's criteria dict after validation
        raise InvalidCustomizationError(f"not representable as JSON: {exc}") from None


try:  # the `fast` extra: orjson encodes the same JSON several times faster
    import orjson  # type: ignore[import-not-found, unused-ignore]

    def _dumps_orjson(body: Any) -> bytes:
        try:
            encoded: bytes = orjson.dumps(body)
        except orjson.JSONEncodeError as exc:  # e.g. an int put into criteria after validation
            raise InvalidCustomizationError(f"not representable as JSON: {exc}") from None
        return encoded

    _encode = _dumps_orjson
except ImportError:  # pragma: no cover - depends on the environment
    _encode = _dumps_stdlib


def wire_json(body: Any) -> bytes:
    """A request body: compact UTF-8 JSON, keys in their order; with orjson if installed.

    Raises:
        InvalidCustomizationError: ``body`` cannot be written as JSON: a lone surrogate;
            without orjson NaN or an infinity (orjson writes them as ``null``); with
            orjson an integer beyond 64 bits or a non-str key.
    """
    return _encode(body)

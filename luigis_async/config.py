"""Where a client's settings come from: its arguments, else the environment, validated.

The one place the ``LUIGISBOX_*`` variables are read, so the library, the command line
and the sandbox's printed ``export`` lines agree on them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Final

import aiohttp
from yarl import URL

from .errors import ConfigurationError

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_TIMEOUT",
    "ENV_BASE_URL",
    "ENV_PRIVATE_KEY",
    "ENV_TRACKER_ID",
    "TRACKER_ID_PATTERN",
    "base_url",
    "credentials",
    "max_connections",
    "timeout",
]

DEFAULT_BASE_URL: Final = "https://live.luigisbox.tech"
#: Environment variables read when the constructor is not given the value.
ENV_TRACKER_ID: Final = "LUIGISBOX_TRACKER_ID"
ENV_PRIVATE_KEY: Final = "LUIGISBOX_PRIVATE_KEY"
ENV_BASE_URL: Final = "LUIGISBOX_BASE_URL"
#: 30 s for the whole request, 10 s to connect: a hung server cannot park a caller forever.
DEFAULT_TIMEOUT: Final = aiohttp.ClientTimeout(total=30.0, connect=10.0)
#: The API's tracker IDs are digits and hyphens; nothing that a path could reinterpret
#: (``.``, ``..``, ``/``, whitespace, control or non-ASCII characters) gets through.
TRACKER_ID_PATTERN: Final = re.compile(r"[A-Za-z0-9_-]+")


def credentials(
    tracker_id: str | None,
    private_key: str | None,
    environ: Mapping[str, str] = os.environ,
) -> tuple[str, str]:
    """The tracker ID and private key, from the arguments or else the environment.

    Args:
        tracker_id: the tracker ID, or None to read ``LUIGISBOX_TRACKER_ID``.
        private_key: the private key, or None to read ``LUIGISBOX_PRIVATE_KEY``.
        environ: where the variables are read (``os.environ``).

    Returns:
        ``(tracker_id, private_key)``, both validated.

    Raises:
        ConfigurationError: one is missing, or the tracker ID could alter a path.
    """
    tracker_id = tracker_id if tracker_id is not None else environ.get(ENV_TRACKER_ID)
    private_key = private_key if private_key is not None else environ.get(ENV_PRIVATE_KEY)
    if not isinstance(tracker_id, str) or not TRACKER_ID_PATTERN.fullmatch(tracker_id):
        raise ConfigurationError(
            f"tracker_id must be letters, digits, '-' or '_' (like 1234-5678), got "
            f"{tracker_id!r} (or set {ENV_TRACKER_ID})"
        )
    if not isinstance(private_key, str) or not private_key:
        raise ConfigurationError(
            f"private_key must be a non-empty string (or set {ENV_PRIVATE_KEY})"
        )
    return tracker_id, private_key


def base_url(value: str | None, environ: Mapping[str, str] = os.environ) -> URL:
    """The API's base URL: the argument, else ``LUIGISBOX_BASE_URL``, else the live one.

    Args:
        value: the base URL, or None (or empty) to read the environment.
        environ: where ``LUIGISBOX_BASE_URL`` is read (``os.environ``).

    Returns:
        The parsed URL.

    Raises:
        ConfigurationError: it is not an http(s) URL with a host.
    """
    text = value or environ.get(ENV_BASE_URL) or DEFAULT_BASE_URL
    url = URL(text)
    if url.scheme not in ("http", "https") or not url.host:
        raise ConfigurationError(f"base_url must be an http(s) URL, got {text!r}")
    return url


def max_connections(value: object) -> int:
    """A pool size: a positive int.

    Args:
        value: the ``max_connections`` given.

    Returns:
        ``value``, checked.

    Raises:
        ConfigurationError: anything else.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"max_connections must be an int >= 1, got {value!r}")
    return value


def timeout(value: aiohttp.ClientTimeout | float) -> aiohttp.ClientTimeout:
    """An ``aiohttp.ClientTimeout`` with a total, from one or from seconds.

    Args:
        value: a ``ClientTimeout``, or the total in seconds.

    Returns:
        ``value`` itself when it is a ``ClientTimeout``, else one with that total.

    Raises:
        ConfigurationError: no total (it would never time out), or not positive seconds.
    """
    if isinstance(value, aiohttp.ClientTimeout):
        if value.total is None:
            raise ConfigurationError(
                "timeout must have a total; a ClientTimeout() without one never times out"
            )
        return value
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigurationError(f"timeout must be a positive number of seconds, got {value!r}")
    return aiohttp.ClientTimeout(total=float(value))

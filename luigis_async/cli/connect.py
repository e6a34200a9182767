"""Where a command sends its requests: the real API, or an in-process sandbox.

Credentials come from the environment (the tracker ID may also come from an option); the
private key is never an option, where it would land in shell history and ``ps``, and
never appears in a repr, a log line or a message.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Final

import attrs

from ..client import LuigisBoxClient
from ..config import DEFAULT_BASE_URL, ENV_PRIVATE_KEY, ENV_TRACKER_ID
from ..retry import RetryPolicy
from ..sandbox import Faults, Sandbox
from ..sandbox.server import DEFAULT_TRACKER_ID

__all__ = [
    "ENV_PRIVATE_KEY",
    "ENV_TRACKER_ID",
    "Credentials",
    "MissingCredentialsError",
    "SandboxTarget",
    "Seed",
    "connect",
]

log: Final[logging.Logger] = logging.getLogger("luigis_async.cli")

#: Fills an in-process sandbox before the client opens (it may run in a thread).
Seed = Callable[[Sandbox], Awaitable[object]]


class MissingCredentialsError(Exception):
    """The environment lacks the tracker ID or the private key."""


@attrs.frozen
class Credentials:
    """The real API: a base URL, a tracker ID and its private key."""

    tracker_id: str
    private_key: str = attrs.field(repr=False)
    base_url: str = DEFAULT_BASE_URL

    @classmethod
    def from_env(
        cls,
        tracker_id: str | None,
        base_url: str,
        environ: Mapping[str, str] = os.environ,
    ) -> Credentials:
        """Take the key (and the tracker ID unless given) from the environment.

        Raises:
            MissingCredentialsError: saying which variable to set.
        """
        tracker_id = tracker_id or environ.get(ENV_TRACKER_ID, "").strip() or None
        private_key = environ.get(ENV_PRIVATE_KEY) or None
        missing = [
            name
            for name, value in ((ENV_TRACKER_ID, tracker_id), (ENV_PRIVATE_KEY, private_key))
            if value is None
        ]
        if missing:
            raise MissingCredentialsError(
                f"missing credentials: {' and '.join(missing)} not set. Set "
                f"{ENV_TRACKER_ID} (or pass --tracker-id) and {ENV_PRIVATE_KEY} in the "
                "environment, or try it without an account: --sandbox"
            )
        assert tracker_id is not None and private_key is not None
        return cls(tracker_id, private_key, base_url)


@attrs.frozen
class SandboxTarget:
    """An in-process sandbox started for this one command."""

    tracker_id: str = DEFAULT_TRACKER_ID
    faults: Faults = attrs.Factory(Faults)


@asynccontextmanager
async def connect(
    target: Credentials | SandboxTarget,
    *,
    seed: Seed | None = None,
    retry: RetryPolicy | None = None,
    max_connections: int,
) -> AsyncIterator[LuigisBoxClient]:
    """An open client for ``target``; for a sandbox, ``seed`` fills it before the client opens."""
    async with _started(target, seed) as credentials, LuigisBoxClient(
        credentials.tracker_id,
        credentials.private_key,
        base_url=credentials.base_url,
        retry=retry,
        max_connections=max_connections,
    ) as client:
        yield client


@asynccontextmanager
async def _started(
    target: Credentials | SandboxTarget, seed: Seed | None
) -> AsyncIterator[Credentials]:
    """The credentials of ``target``; a sandbox is started (and seeded) for the duration."""
    if isinstance(target, Credentials):
        yield target
        return
    async with Sandbox(tracker_id=target.tracker_id, faults=target.faults) as sandbox:
        if seed is not None:
            await seed(sandbox)
        log.info(
            "in-process sandbox at %s (tracker %s, %d customizations, faults: %s)",
            sandbox.url, sandbox.tracker_id, len(sandbox.store), sandbox.faults.describe(),
        )
        yield Credentials(sandbox.tracker_id, sandbox.private_key, sandbox.url)

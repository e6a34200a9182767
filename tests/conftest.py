"""Shared fixtures: a sandbox on loopback and a client pointed at it, retrying instantly."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from luigis_async import LuigisBoxClient
from luigis_async.sandbox import Sandbox

from .helpers import FAST_RETRY


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with Sandbox() as sb:
        yield sb


@pytest.fixture
async def client(sandbox: Sandbox) -> AsyncIterator[LuigisBoxClient]:
    async with LuigisBoxClient(
        sandbox.tracker_id, sandbox.private_key, base_url=sandbox.url, retry=FAST_RETRY
    ) as c:
        yield c

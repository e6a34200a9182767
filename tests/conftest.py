"""Shared fixtures, built on the package's own pytest plugin (``luigis_async.pytest_plugin``).

``sandbox`` is the plugin's ``luigisbox_sandbox``; ``client`` is a client on it that
retries instantly, so tests count retries instead of waiting for them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from luigis_async import LuigisBoxClient
from luigis_async.sandbox import Sandbox

from .helpers import FAST_RETRY


@pytest.fixture
def sandbox(luigisbox_sandbox: Sandbox) -> Sandbox:
    return luigisbox_sandbox


@pytest.fixture
async def client(luigisbox_sandbox: Sandbox) -> AsyncIterator[LuigisBoxClient]:
    async with LuigisBoxClient(
        luigisbox_sandbox.tracker_id,
        luigisbox_sandbox.private_key,
        base_url=luigisbox_sandbox.url,
        retry=FAST_RETRY,
    ) as c:
        yield c

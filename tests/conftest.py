"""Shared fixtures, built on the package's own pytest plugin (``luigis_async.pytest_plugin``).

``sandbox`` is the plugin's ``luigisbox_sandbox``; ``client`` is a client on it that
retries instantly, so tests count retries instead of waiting for them.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest

from luigis_async import LuigisBoxClient
from luigis_async.sandbox import Sandbox

from .helpers import FAST_RETRY


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: half again as many workers as usable cores. Many tests wait on a
    server's latency or a child process, so a spare worker fills the idle time (on two
    cores: 48 s instead of 60 s)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(2, (cores or 1) * 3 // 2)


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

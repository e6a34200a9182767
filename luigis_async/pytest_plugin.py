"""pytest fixtures for code that uses luigis_async: a running sandbox and a client on it.

Installed with the package (entry point ``pytest11``), so there is nothing to configure;
the fixtures need pytest-asyncio and work in its strict and auto modes. A test::

    async def test_pin(luigisbox_client, luigisbox_sandbox):
        created = await luigisbox_client.create_customization(Customization("basket", "all"))
        assert [str(created.id)] == list(luigisbox_sandbox.store)

(in strict mode, mark it ``@pytest.mark.asyncio``). Each test gets its own empty sandbox on
127.0.0.1. The client has the default RetryPolicy; for another one, build your own client
from ``luigisbox_sandbox.url``, ``.tracker_id`` and ``.private_key``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, Final, NoReturn, TypeVar, cast

import pytest

from luigis_async.client import LuigisBoxClient
from luigis_async.sandbox import Sandbox

__all__ = ["luigisbox_client", "luigisbox_sandbox"]

MISSING_PYTEST_ASYNCIO: Final = (
    "the {name} fixture of luigis-async is async and needs pytest-asyncio: "
    "pip install pytest-asyncio"
)

_F = TypeVar("_F", bound=Callable[..., Any])


def _async_fixture(func: _F) -> _F:
    """``pytest_asyncio.fixture``; without pytest-asyncio, a fixture that fails clearly.

    Installing luigis-async must never break pytest for someone who does not use these
    fixtures, so a missing pytest-asyncio surfaces only in a test that asks for one.
    """
    try:
        import pytest_asyncio
    except ImportError:
        name = func.__name__

        def missing() -> NoReturn:
            pytest.fail(MISSING_PYTEST_ASYNCIO.format(name=name), pytrace=False)

        missing.__doc__ = func.__doc__
        return cast(_F, pytest.fixture(name=name)(missing))
    return cast(_F, pytest_asyncio.fixture(func))


@_async_fixture
async def luigisbox_sandbox() -> AsyncIterator[Sandbox]:
    """A running, empty ``Sandbox`` on 127.0.0.1, stopped after the test.

    Yields:
        The sandbox, on a free port, with a random private key.
    """
    async with Sandbox(host="127.0.0.1") as sandbox:
        yield sandbox


@_async_fixture
async def luigisbox_client(luigisbox_sandbox: Sandbox) -> AsyncIterator[LuigisBoxClient]:
    """A ``LuigisBoxClient`` signed for ``luigisbox_sandbox``, closed after the test.

    Args:
        luigisbox_sandbox: the fixture; the client points at it.

    Yields:
        The open client, with the default ``RetryPolicy``.
    """
    async with LuigisBoxClient(
        luigisbox_sandbox.tracker_id,
        luigisbox_sandbox.private_key,
        base_url=luigisbox_sandbox.url,
    ) as client:
        yield client

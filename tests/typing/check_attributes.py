"""The declared types of the public attributes: checked by mypy and pyright in CI.

Not a pytest module. ``pyright --verifytypes luigis_async`` asks for these declarations
(an inferred type may differ between checkers); ``assert_type`` keeps them what they are.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, assert_type

import aiohttp

from luigis_async import (
    DecodingError,
    LuigisBoxClient,
    MockTransport,
    RetryBudget,
    RetryPolicy,
)
from luigis_async.auth import Signer
from luigis_async.sandbox import BulkRules, Faults, Sandbox
from luigis_async.sandbox.demo import PLACEHOLDER


def client(c: LuigisBoxClient) -> None:
    """The client's settings, as the constructor resolved them."""
    assert_type(c.base_url, str)
    assert_type(c.timeout, aiohttp.ClientTimeout)
    assert_type(c.retry, RetryPolicy)
    assert_type(c.retry_budget, RetryBudget)
    assert_type(c.max_connections, int)


def retry_budget(budget: RetryBudget) -> None:
    """The token bucket's slots."""
    assert_type(budget.capacity, float)
    assert_type(budget.retry_cost, float)
    assert_type(budget.timeout_cost, float)
    assert_type(budget.tokens, float)


def others(
    error: DecodingError, signer: Signer, sandbox: Sandbox, transport: MockTransport
) -> None:
    """Attributes of an error, the signer, the sandbox and a module constant."""
    assert_type(error.snippet, str)
    assert_type(signer.clock, Callable[[], float])
    assert_type(signer.epoch, int)
    assert_type(sandbox.private_key, str)
    assert_type(sandbox.port, int)
    assert_type(sandbox.bulk_rules, BulkRules)
    assert_type(sandbox.faults, Faults)
    assert_type(PLACEHOLDER, Mapping[str, Any])
    assert_type(transport.max_concurrency, int | None)

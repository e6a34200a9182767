"""Test helpers shared by several test modules."""

from __future__ import annotations

from typing import Any

from luigis_async import Customization, PinDefinition, RetryPolicy
from luigis_async.sandbox.verify import refusal


async def _no_sleep(_: float) -> None:
    """Retries in tests never wait for real."""


#: The default policy, but without real waiting: tests count retries, not seconds.
FAST_RETRY = RetryPolicy(sleep=_no_sleep)


def item_customization(
    n: int, *, model: str = "basket", tags: tuple[str, ...] = ()
) -> Customization:
    """A realistic item-targeted customization, distinct for each ``n``."""
    return Customization(
        model,
        "item",
        target_identity=f"/p/{n}",
        tags=tags,
        pin_definitions=[
            PinDefinition(position=1, pin_type="item", pin_identity=f"/p/{n + 1000}"),
            PinDefinition(position=2, pin_type="criteria", pin_criteria={"brand": ["Fender"]}),
        ],
    )


def authentication_failure(**request: Any) -> str | None:
    """The sandbox verifier's one-line diagnosis of a request (None: it passes)."""
    refused = refusal(**request)
    return refused.diagnostic if refused is not None else None

"""Tests written as a user of luigis-async writes them: only the plugin's fixtures.

Nothing here comes from our own test helpers or conftest; ``luigisbox_client`` and
``luigisbox_sandbox`` are there because luigis-async is installed.
"""

from __future__ import annotations

import uuid

import pytest

from luigis_async import Customization, LuigisBoxClient, NotFoundError, PinDefinition, converter
from luigis_async.sandbox import Sandbox


def pinned(item: str, pinned_item: str, position: int = 1) -> Customization:
    return Customization(
        "basket",
        "item",
        target_identity=item,
        pin_definitions=[
            PinDefinition(position=position, pin_type="item", pin_identity=pinned_item)
        ],
    )


async def test_pin(luigisbox_client: LuigisBoxClient, luigisbox_sandbox: Sandbox) -> None:
    """A created customization is in the sandbox's store."""
    created = await luigisbox_client.create_customization(Customization("basket", "all"))
    assert [str(created.id)] == list(luigisbox_sandbox.store)


async def test_create_get_update(
    luigisbox_client: LuigisBoxClient, luigisbox_sandbox: Sandbox
) -> None:
    """A created customization can be read back, and an update replaces it in the store."""
    created = await luigisbox_client.create_customization(pinned("/p/1", "/p/2"))
    assert created.id is not None
    fetched = await luigisbox_client.get_customization(created.id)
    await luigisbox_client.update_customization(created.id, pinned("/p/1", "/p/3", 2))

    assert pinned("/p/1", "/p/2") == fetched.customization
    assert [str(created.id)] == list(luigisbox_sandbox.store)
    assert [{"position": 2, "pin_type": "item", "pin_identity": "/p/3"}] == (
        luigisbox_sandbox.store[str(created.id)]["pin_definitions"]
    )


async def test_seeded_customization_is_listed(
    luigisbox_client: LuigisBoxClient, luigisbox_sandbox: Sandbox
) -> None:
    """A customization put straight into the sandbox is what the client lists."""
    cid = luigisbox_sandbox.add(converter.unstructure(pinned("/p/7", "/p/8")))

    listed = [c async for c in luigisbox_client.list_customizations(model="basket")]

    assert [(uuid.UUID(cid), "/p/7")] == [(c.id, c.target_identity) for c in listed]


async def test_each_test_starts_empty(luigisbox_sandbox: Sandbox) -> None:
    """Every test gets its own sandbox, with nothing stored and nothing requested yet."""
    assert ({}, []) == (luigisbox_sandbox.store, luigisbox_sandbox.requests)


async def test_a_503_is_retried(
    luigisbox_client: LuigisBoxClient, luigisbox_sandbox: Sandbox
) -> None:
    """An injected 503 with Retry-After: 0 is retried, and the update lands."""
    cid = luigisbox_sandbox.add(converter.unstructure(pinned("/p/1", "/p/2")))
    luigisbox_sandbox.fail_next(1, 503, retry_after=0)

    await luigisbox_client.update_customization(cid, pinned("/p/1", "/p/9"))

    assert [503, 204] == [r.status for r in luigisbox_sandbox.requests]
    assert "/p/9" == luigisbox_sandbox.store[cid]["pin_definitions"][0]["pin_identity"]


async def test_unknown_id_raises_not_found(luigisbox_client: LuigisBoxClient) -> None:
    """Reading a customization that does not exist raises NotFoundError with status 404."""
    with pytest.raises(NotFoundError) as caught:
        await luigisbox_client.get_customization(uuid.uuid4())

    assert 404 == caught.value.status

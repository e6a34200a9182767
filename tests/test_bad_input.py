"""A tour of bad and awkward input: each item fails alone, clearly, and the rest proceeds."""

from __future__ import annotations

import asyncio
import inspect
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from luigis_async import (
    BatchUpdater,
    Customization,
    CustomizationUpdate,
    InvalidCustomizationError,
    LuigisBoxClient,
    PinDefinition,
    converter,
)
from luigis_async.cli.commands import cli
from luigis_async.convert import structure_customization
from luigis_async.sandbox import Sandbox

from .helpers import FAST_RETRY

PLACEHOLDER = converter.unstructure(Customization("basket", "all"))
GOOD_PIN = {"position": 1, "pin_type": "item", "pin_identity": "/p/1"}
GOOD = {
    "model": "basket",
    "target_type": "item",
    "target_identity": "/p/9",
    "pin_definitions": [GOOD_PIN],
    "tags": ["a"],
}


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("model",), 42),
        (("model",), ["basket"]),
        (("target_type",), 1),
        (("target_identity",), {"id": 1}),
        (("target_criteria",), "brand=Fender"),
        (("target_metadata",), [1, 2]),
        (("tags",), "summer"),
        (("tags",), [1]),
        (("pin_definitions",), {"position": 1}),
        (("pin_definitions", 0, "position"), "1"),
        (("pin_definitions", 0, "position"), 1.5),
        (("pin_definitions", 0, "position"), True),
        (("pin_definitions", 0, "pin_type"), ["item"]),
        (("pin_definitions", 0, "pin_identity"), 555),
        (("pin_definitions", 0, "pin_criteria"), "x"),
        (("pin_definitions", 0, "widget_id"), 7),
        (("pin_definitions", 0, "is_block_pin"), "yes"),
        (("pin_definitions", 0, "is_bundle_pin"), 1),
        (("pin_definitions", 0, "active_from"), 1738368000),
        (("pin_definitions", 0, "active_to"), "next tuesday"),
    ],
    ids=lambda v: ".".join(map(str, v)) if isinstance(v, tuple) else repr(v)[:20],
)
def test_a_wrong_type_in_any_field_is_named(path: tuple[Any, ...], value: object) -> None:
    """Whatever field holds the wrong type, the error names that field."""
    body: Any = json.loads(json.dumps(GOOD))
    target = body
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value

    with pytest.raises(InvalidCustomizationError) as caught:
        structure_customization(body)

    assert str(path[-1]) in str(caught.value)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_nan_like_values_are_refused(value: float) -> None:
    """NaN and infinities are not JSON: refused in criteria and metadata before sending."""
    with pytest.raises(InvalidCustomizationError, match="target_criteria"):
        Customization("basket", "criteria", target_criteria={"price": {"gte": value}})
    with pytest.raises(InvalidCustomizationError, match="target_metadata"):
        Customization("basket", "all", target_metadata={"score": [value]})


async def test_awkward_but_valid_bodies_apply_and_bad_ones_fail_alone() -> None:
    """Unicode, 10,000 pins, no pins, duplicate positions apply; an oversized body fails.

    The API sets no rule against duplicate positions, so neither do we: they are applied.
    The oversized body (over the server's 1 MiB limit) fails with a clear 413 on its own.
    """
    unicode_body = Customization(
        "košík",
        "item",
        target_identity="/p/čučoriedka-🫐",
        tags=("léto", "夏"),
        pin_definitions=[PinDefinition(position=1, pin_type="item", pin_identity="/p/ñandú")],
    )
    many_pins = Customization(
        "basket",
        "all",
        pin_definitions=[
            PinDefinition(position=n % 100, pin_type="item", pin_identity=f"/p/{n}")
            for n in range(10_000)
        ],
    )
    no_pins = Customization("basket", "all")
    duplicate_positions = Customization(
        "basket",
        "all",
        pin_definitions=[
            PinDefinition(position=1, pin_type="item", pin_identity="/p/1"),
            PinDefinition(position=1, pin_type="item", pin_identity="/p/2"),
        ],
    )
    oversized = Customization("basket", "item", target_identity="/p/" + "x" * 2_000_000)
    bodies = [unicode_body, many_pins, oversized, no_pins, duplicate_positions]

    async with (
        Sandbox() as sb,
        LuigisBoxClient(sb.tracker_id, sb.private_key, base_url=sb.url, retry=FAST_RETRY) as client,
    ):
        ids = [sb.add(PLACEHOLDER) for _ in bodies]
        updates = [CustomizationUpdate(cid, body) for cid, body in zip(ids, bodies, strict=True)]
        report = await BatchUpdater(client, concurrency=2).run(updates)

        assert 4 == report.succeeded
        [failure] = report.failed
        assert (2, 413, 1) == (failure.index, failure.status, failure.attempts)
        assert "413" in str(failure.error) and "Too Large" in str(failure.error)
        for cid, body in zip(ids, bodies, strict=True):
            if body is not oversized:
                stored = structure_customization(sb.store[cid], type(body))
                assert body == stored


async def test_a_file_of_garbage_and_awkward_lines(tmp_path: Path) -> None:
    """Binary garbage, a BOM, CRLF, blank lines and a truncated last line: each bad line is
    reported with its number, and every good line is applied."""
    async with Sandbox() as sb:
        ids = [sb.add(PLACEHOLDER) for _ in range(3)]

        def line(cid: str) -> bytes:
            return json.dumps({"customization_id": cid, "customization": GOOD}).encode()

        data = b"".join(
            [
                b"\xef\xbb\xbf" + line(ids[0]) + b"\r\n",  # 1: BOM, CRLF
                b"\r\n",  # 2: blank
                b"\x00\xff\xfe garbage \x89PNG\r\n",  # 3: binary garbage
                line(ids[1]) + b"\r\n",  # 4
                b"   \r\n",  # 5: blank
                line(ids[2]) + b"\n",  # 6: LF among CRLF
                line(ids[0])[:40],  # 7: truncated, no newline at the end
            ]
        )
        path = tmp_path / "pins.jsonl"
        path.write_bytes(data)
        env = {"LUIGISBOX_TRACKER_ID": sb.tracker_id, "LUIGISBOX_PRIVATE_KEY": sb.private_key}
        result = await asyncio.to_thread(
            CliRunner().invoke, cli, ["push", str(path), "--base-url", sb.url], env=env
        )

        assert 1 == result.exit_code, result.output
        stored_bodies = [{k: v for k, v in sb.store[cid].items() if k in GOOD} for cid in ids]
        assert [GOOD] * 3 == stored_bodies

    failures = [
        json.loads(text)
        for text in (tmp_path / "pins.jsonl.failed.jsonl").read_text("utf-8").splitlines()
    ]
    assert [3, 7] == [f["error"]["line"] for f in failures]
    assert all("invalid JSON" in f["error"]["reason"] for f in failures)
    assert "raw" in failures[0] and "raw" in failures[1]


def bad_calls(client: LuigisBoxClient) -> dict[str, Any]:
    """Each a wrong argument to the library; each must fail before any request."""
    from luigis_async import BulkCreator, RetryPolicy

    return {
        "max_attempts=0": lambda: RetryPolicy(max_attempts=0),
        "multiplier=0.5": lambda: RetryPolicy(multiplier=0.5),
        "initial_backoff=-1": lambda: RetryPolicy(initial_backoff=-1),
        "concurrency=0": lambda: BatchUpdater(client, concurrency=0),
        "concurrency above the pool": lambda: BatchUpdater(client, concurrency=10_000),
        "rate_limit=0": lambda: BatchUpdater(client, rate_limit=0),
        "chunk_size=0": lambda: BulkCreator(client, chunk_size=0),
        "conflict_strategy": lambda: BulkCreator(client, conflict_strategy="merge"),  # type: ignore[arg-type]
        "limit=-1": lambda: client.list_customizations_page(limit=-1),
        "page_size=0": lambda: client.list_customizations(page_size=0).__anext__(),
        "tag=''": lambda: client.export_customizations(tag=""),
        "criteria NaN": lambda: client.list_customizations_page(
            criteria=[{"brand": float("nan")}]
        ),
        "criteria str": lambda: client.list_customizations_page(criteria="brand"),  # type: ignore[arg-type]
    }


BAD_CALLS = [
    "max_attempts=0", "multiplier=0.5", "initial_backoff=-1", "concurrency=0",
    "concurrency above the pool", "rate_limit=0", "chunk_size=0", "conflict_strategy",
    "limit=-1", "page_size=0", "tag=''", "criteria NaN", "criteria str",
]


@pytest.mark.parametrize("case", BAD_CALLS)
async def test_every_wrong_argument_is_a_luigisbox_error_and_a_value_error(case: str) -> None:
    """README: every exception is a LuigisBoxError. Wrong arguments are ValueErrors too
    (ConfigurationError for settings, InvalidCustomizationError for request input), and
    nothing is sent."""
    from luigis_async import LuigisBoxError

    sent = []

    async def transport(request: Any) -> Any:
        sent.append(request)
        raise AssertionError("nothing may be sent")

    from luigis_async import MockTransport

    async with LuigisBoxClient("1234-5678", "key", transport=MockTransport(transport)) as client:
        assert set(BAD_CALLS) == set(bad_calls(client))
        with pytest.raises(LuigisBoxError) as caught:
            outcome = bad_calls(client)[case]()
            if inspect.isawaitable(outcome):
                await outcome

    assert isinstance(caught.value, ValueError)
    assert [] == sent

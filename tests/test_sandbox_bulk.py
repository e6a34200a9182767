"""Bulk create (POST /scopes/_bulk): NDJSON lines, conflict strategies, BulkRules, faults."""

# STYLE.md asks for `assert expected == actual`; ruff's SIM300 calls that a Yoda condition.

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest

from luigis_async.sandbox import BulkRules, Faults, RequestRecord, Sandbox
from luigis_async.sandbox.bulk import natural_key
from luigis_async.sandbox.validation import CONFIG_REASON, PIN_REASON

from . import sandbox_support
from .sandbox_support import (
    BULK,
    NOW_ISO,
    Clock,
    api_path,
    item_body,
    ndjson,
    send_bulk,
)

# The shared fixtures, registered in this module.
clock, http, sb = sandbox_support.clock, sandbox_support.http, sandbox_support.sb


def items(*identities: str, **overrides: Any) -> list[dict[str, Any]]:
    return [item_body(target_identity=identity, **overrides) for identity in identities]


def criteria_body(criteria: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    body = {
        "model": "category_bestsellers",
        "target_type": "criteria",
        "target_criteria": criteria,
        "pin_definitions": [],
    }
    return {**body, **overrides}


def bodies(sandbox: Sandbox) -> list[dict[str, Any]]:
    """Every stored customization as its body, in store order."""
    return [sandbox.stored_body(key) for key in sandbox.store]


# --- success ------------------------------------------------------------------------


async def test_bulk_stores_every_line_and_answers_an_empty_object(
    sb: Sandbox, http: aiohttp.ClientSession
) -> None:
    """200 {} and one customization per line, in order, with fresh read-only fields."""
    lines = items("/p/1", "/p/2", "/p/3", tags=["job"])

    reply = await send_bulk(http, sb, lines)

    assert (200, {}) == (reply.status, reply.json)
    assert lines == bodies(sb)
    assert [(NOW_ISO, "sandbox", True)] * 3 == [
        (c["created_at"], c["creator"], c["available"]) for c in sb.store.values()
    ]
    assert [key for key in sb.store] == [c["id"] for c in sb.store.values()]


async def test_bulk_request_log_holds_the_parsed_lines(
    sb: Sandbox, http: aiohttp.ClientSession
) -> None:
    """The log records the bulk body as its list of parsed lines, and the route 'bulk'."""
    lines = items("/p/1", "/p/2")

    await send_bulk(http, sb, lines, strategy="ignore")

    path = api_path(sb, BULK)
    assert [
        RequestRecord("POST", path, (("conflict_strategy", "ignore"),), 200, lines, None)
    ] == sb.requests
    assert "bulk" == sb.requests[0].route


@pytest.mark.parametrize(
    ("raw", "count"),
    [
        (b"", 0),
        (ndjson(items("/p/1")).rstrip(b"\n"), 1),  # no final newline
        (ndjson(items("/p/1", "/p/2")), 2),
        (ndjson(items("/p/1")).replace(b"\n", b"\r\n"), 1),
    ],
)
async def test_bulk_line_endings(
    sb: Sandbox, http: aiohttp.ClientSession, raw: bytes, count: int
) -> None:
    """A final newline is optional, CRLF works, and an empty body is 200 with nothing stored."""
    reply = await send_bulk(http, sb, raw)

    assert (200, count) == (reply.status, len(sb.store))


async def test_bulk_for_another_tracker_is_404(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    """A signed bulk request to another tracker's path: 404 Tracker not found, nothing stored."""
    reply = await send_bulk(http, sb, items("/p/1"), tracker_id="9999-0000")

    assert (404, {"reason": "Tracker not found"}) == (reply.status, reply.json)
    assert {} == sb.store


@pytest.mark.parametrize("strategy", ["", "RAISE", "replace", "raise,ignore"])
async def test_an_unknown_conflict_strategy_is_422(
    sb: Sandbox, http: aiohttp.ClientSession, strategy: str
) -> None:
    """conflict_strategy other than raise, ignore, override: 422 naming the parameter."""
    reply = await send_bulk(http, sb, items("/p/1"), strategy=strategy)

    assert 422 == reply.status
    assert {
        "reason": "Invalid parameter",
        "exception_details": {"conflict_strategy": ["Must be one of: raise, ignore, override"]},
    } == reply.json
    assert {} == sb.store


# --- conflicts with stored customizations ------------------------------------------------


@pytest.fixture
def existing(sb: Sandbox, clock: Clock) -> str:
    """A stored customization for basket /p/2, created a minute before the bulk request."""
    clock.now -= 60
    customization_id = sb.add(item_body(target_identity="/p/2", tags=["old"]))
    clock.now += 60
    return customization_id


async def test_raise_refuses_the_whole_request_with_409(
    sb: Sandbox, http: aiohttp.ClientSession, existing: str
) -> None:
    """raise (the default, and explicit): 409, no line applied, the stored one unchanged."""
    before = dict(sb.store)
    default = await send_bulk(http, sb, items("/p/1", "/p/2", "/p/3"))
    explicit = await send_bulk(http, sb, items("/p/1", "/p/2", "/p/3"), strategy="raise")

    assert [409, 409] == [default.status, explicit.status]
    assert {"reason": "Conflicting customization exists"} == default.json
    assert before == sb.store


async def test_ignore_keeps_the_stored_one_and_creates_the_rest(
    sb: Sandbox, http: aiohttp.ClientSession, existing: str
) -> None:
    """ignore: 200, the stored /p/2 untouched, /p/1 and /p/3 created."""
    before = sb.store[existing]

    reply = await send_bulk(http, sb, items("/p/1", "/p/2", "/p/3"), strategy="ignore")

    assert (200, {}) == (reply.status, reply.json)
    assert before is sb.store[existing]
    assert ["/p/2", "/p/1", "/p/3"] == [c["target_identity"] for c in sb.store.values()]


async def test_override_replaces_the_definition_and_keeps_id_and_created_at(
    sb: Sandbox, http: aiohttp.ClientSession, existing: str
) -> None:
    """override: 200, /p/2 gets the line's whole body under its old id and created_at."""
    created_at = sb.store[existing]["created_at"]
    lines = items("/p/1", "/p/2", tags=["new"])

    reply = await send_bulk(http, sb, lines, strategy="override")

    [kept, created] = sb.store
    assert 200 == reply.status
    assert existing == kept
    assert [lines[1], lines[0]] == [sb.stored_body(kept), sb.stored_body(created)]
    assert (created_at, "sandbox") == (sb.store[kept]["created_at"], sb.store[kept]["creator"])


async def test_override_replaces_every_stored_duplicate(
    sb: Sandbox, http: aiohttp.ClientSession
) -> None:
    """Two stored customizations with one key (made one by one) are both replaced."""
    first = sb.add(item_body(target_identity="/p/2"))
    second = sb.add(item_body(target_identity="/p/2"))

    await send_bulk(http, sb, items("/p/2", tags=["new"]), strategy="override")

    assert [first, second] == list(sb.store)
    assert [["new"], ["new"]] == [c["tags"] for c in sb.store.values()]
    assert sb.store[first]["pin_definitions"] is not sb.store[second]["pin_definitions"]


@pytest.mark.parametrize(
    ("stored", "line", "conflicts"),
    [
        (item_body(), item_body(pin_definitions=[]), True),  # only the definition differs
        (item_body(), item_body(model="other"), False),
        (item_body(), item_body(target_identity="/p/124"), False),
        (
            criteria_body({"brand": "Fender", "category": ["Guitars"]}),
            criteria_body({"category": ["Guitars"], "brand": "Fender"}),  # key order
            True,
        ),
        (criteria_body({"brand": "Fender"}), criteria_body({"brand": "Gibson"}), False),
        (
            {"model": "basket", "target_type": "all", "pin_definitions": []},
            {"model": "basket", "target_type": "all", "pin_definitions": [], "tags": ["x"]},
            True,
        ),
        (
            {"model": "basket", "target_type": "all", "pin_definitions": []},
            {"model": "homepage", "target_type": "all", "pin_definitions": []},
            False,
        ),
    ],
)
async def test_a_conflict_is_the_natural_key(
    sb: Sandbox,
    http: aiohttp.ClientSession,
    stored: dict[str, Any],
    line: dict[str, Any],
    conflicts: bool,
) -> None:
    """Same model and target (identity, canonical criteria, or none for all) conflict."""
    sb.add(stored)

    reply = await send_bulk(http, sb, [line])

    assert (409 if conflicts else 200) == reply.status
    assert (natural_key(stored) == natural_key(line)) is conflicts


@pytest.mark.parametrize(
    ("customization", "key"),
    [
        (item_body(), ("basket", "item", "/p/123")),
        (
            criteria_body({"b": 1, "a": "é"}),
            ("category_bestsellers", "criteria", '{"a":"é","b":1}'),
        ),
        ({"model": "m", "target_type": "all"}, ("m", "all", "")),
    ],
)
def test_natural_key_matches_the_sync_keys(customization: dict[str, Any], key: Any) -> None:
    """natural_key: (model, target_type, identity | canonical criteria JSON | '')."""
    assert key == natural_key(customization)


# --- lines of one request with one key ----------------------------------------------


@pytest.mark.parametrize(
    ("strategy", "status", "tags"),
    [("raise", 409, []), ("override", 200, [["second"]]), ("ignore", 200, [["first"]])],
)
async def test_two_lines_with_one_key(
    sb: Sandbox, http: aiohttp.ClientSession, strategy: str, status: int, tags: list[list[str]]
) -> None:
    """Within a request: raise refuses (409), override keeps the last, ignore the first."""
    lines = [item_body(tags=["first"]), item_body(tags=["second"])]

    reply = await send_bulk(http, sb, lines, strategy=strategy)

    assert status == reply.status
    assert tags == [c["tags"] for c in sb.store.values()]


async def test_lines_conflict_false_creates_both(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    """BulkRules(lines_conflict=False): lines meet only the stored ones, so both create."""
    sb.bulk_rules = BulkRules(lines_conflict=False)

    reply = await send_bulk(http, sb, [item_body(tags=["a"]), item_body(tags=["b"])])

    assert 200 == reply.status
    assert [["a"], ["b"]] == [c["tags"] for c in sb.store.values()]


# --- refused lines ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad_line", "reason"),
    [
        (json.dumps(item_body(pin_definitions=[{"position": -5}])), PIN_REASON),
        (json.dumps(item_body(model="")), CONFIG_REASON),
        ("[1, 2]", CONFIG_REASON),
        ("null", CONFIG_REASON),
        ("{not json", CONFIG_REASON),
        ("", CONFIG_REASON),  # an empty line in the middle
        ('{"model": NaN}', CONFIG_REASON),
    ],
)
async def test_one_refused_line_refuses_the_request_with_422(
    sb: Sandbox, http: aiohttp.ClientSession, bad_line: str, reason: str
) -> None:
    """Any line the server refuses makes it 422, naming no line, with nothing applied."""
    raw = ndjson(items("/p/1")) + bad_line.encode() + b"\n" + ndjson(items("/p/3"))

    reply = await send_bulk(http, sb, raw)

    assert (422, {"reason": reason}) == (reply.status, reply.json)
    assert {} == sb.store


async def test_unparsable_lines_are_logged_as_none(
    sb: Sandbox, http: aiohttp.ClientSession
) -> None:
    """A line that is not JSON is None in the logged list; the others are parsed."""
    raw = ndjson(items("/p/1")) + b"{oops\n"

    await send_bulk(http, sb, raw)

    assert [item_body(target_identity="/p/1"), None] == sb.requests[-1].body


async def test_invalid_lines_are_checked_before_conflicts(
    sb: Sandbox, http: aiohttp.ClientSession
) -> None:
    """A request with a refused line and a conflicting one is a 422."""
    sb.add(item_body(target_identity="/p/1"))

    reply = await send_bulk(http, sb, [*items("/p/1"), item_body(model="")])

    assert 422 == reply.status


async def test_catalog_applies_to_bulk_lines(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    """An item pin missing from the catalog refuses the request like in a create."""
    sb.catalog = {"/p/555"}
    good = item_body()
    bad = item_body(
        target_identity="/p/9",
        pin_definitions=[{**good["pin_definitions"][0], "pin_identity": "/p/404"}],
    )

    reply = await send_bulk(http, sb, [good, bad])

    assert (422, {"reason": PIN_REASON}) == (reply.status, reply.json)
    assert {} == sb.store


# --- BulkRules switches -------------------------------------------------------------


async def test_name_lines_puts_line_numbers_in_the_422(
    sb: Sandbox, http: aiohttp.ClientSession
) -> None:
    """BulkRules(name_lines=True): exception_details maps 'line N' to its problems."""
    sb.bulk_rules = BulkRules(name_lines=True)
    raw = ndjson([item_body(), item_body(model="", target_identity=None)]) + b"{x\n"

    reply = await send_bulk(http, sb, raw)

    assert 422 == reply.status
    assert {
        "line 2": ["model: Must be a non-blank string", "target_identity: Missing required field"],
        "line 3": [
            "body: Line is not valid JSON: Expecting property name enclosed in double quotes: "
            "line 1 column 2 (char 1)"
        ],
    } == reply.json["exception_details"]


async def test_name_lines_puts_line_numbers_in_the_409(
    sb: Sandbox, http: aiohttp.ClientSession
) -> None:
    """BulkRules(name_lines=True): a 409 names each conflicting line and what it hits."""
    sb.bulk_rules = BulkRules(name_lines=True)
    stored = sb.add(item_body(target_identity="/p/2"))

    reply = await send_bulk(http, sb, items("/p/1", "/p/2", "/p/1"))

    assert 409 == reply.status
    assert {
        "line 2": [f"Conflicts with existing customization {stored}"],
        "line 3": ["Same key as line 1"],
    } == reply.json["exception_details"]


async def test_invalid_refuses_all_false_applies_the_valid_lines(
    sb: Sandbox, http: aiohttp.ClientSession
) -> None:
    """BulkRules(invalid_refuses_all=False): the valid lines are stored, the answer still 422."""
    sb.bulk_rules = BulkRules(invalid_refuses_all=False)

    reply = await send_bulk(http, sb, [*items("/p/1"), item_body(model=""), *items("/p/3")])

    assert 422 == reply.status
    assert ["/p/1", "/p/3"] == [c["target_identity"] for c in sb.store.values()]


async def test_conflict_refuses_all_false_applies_the_other_lines(
    sb: Sandbox, http: aiohttp.ClientSession
) -> None:
    """BulkRules(conflict_refuses_all=False): under raise the rest is stored, still 409."""
    sb.bulk_rules = BulkRules(conflict_refuses_all=False)
    sb.add(item_body(target_identity="/p/2", tags=["old"]))

    reply = await send_bulk(http, sb, items("/p/1", "/p/2", "/p/3"))

    assert 409 == reply.status
    assert [("/p/2", ["old"]), ("/p/1", None), ("/p/3", None)] == [
        (c["target_identity"], c.get("tags")) for c in sb.store.values()
    ]


async def test_override_keeps_id_false_recreates(
    sb: Sandbox, http: aiohttp.ClientSession, existing: str
) -> None:
    """BulkRules(override_keeps_id=False): the stored one is deleted, the line created anew."""
    sb.bulk_rules = BulkRules(override_keeps_id=False)

    reply = await send_bulk(http, sb, items("/p/2", tags=["new"]), strategy="override")

    [(new_id, stored)] = sb.store.items()
    assert 200 == reply.status
    assert existing != new_id
    assert (["new"], NOW_ISO) == (stored["tags"], stored["created_at"])


@pytest.mark.parametrize(("lines", "status"), [(5000, 200), (5001, 413)])
async def test_at_most_5000_lines(
    sb: Sandbox, http: aiohttp.ClientSession, lines: int, status: int
) -> None:
    """The documented limit: 5,000 lines are stored; 5,001 are 413 with nothing stored."""
    reply = await send_bulk(http, sb, items(*(f"/p/{n}" for n in range(lines))))

    assert status == reply.status
    assert (lines if status == 200 else 0) == len(sb.store)


@pytest.mark.parametrize(
    ("rules", "status"),
    [
        (BulkRules(max_lines=3), 200),
        (BulkRules(max_lines=2), 413),
        (BulkRules(max_bytes=10_000), 200),
        (BulkRules(max_bytes=100), 413),
    ],
)
async def test_line_and_byte_caps_are_options(
    sb: Sandbox, http: aiohttp.ClientSession, rules: BulkRules, status: int
) -> None:
    """max_lines and max_bytes give 413 past them, with nothing stored."""
    sb.bulk_rules = rules

    reply = await send_bulk(http, sb, items("/p/1", "/p/2", "/p/3"))

    assert status == reply.status
    assert (3 if status == 200 else 0) == len(sb.store)


@pytest.mark.parametrize("field", ["max_lines", "max_bytes"])
@pytest.mark.parametrize("value", [0, -1, 1.5, True])
def test_bulk_rules_validate_the_caps(field: str, value: Any) -> None:
    """Caps must be integers >= 1 (max_bytes may also be None)."""
    with pytest.raises(ValueError, match=f"{field} must be an integer >= 1"):
        BulkRules(**{field: value})


def test_custom_conflict_key() -> None:
    """BulkRules(key=...) decides what conflicts: here, the model alone."""
    rules = BulkRules(key=lambda c: c.get("model"))

    assert "basket" == rules.key(item_body())


async def test_a_custom_key_is_used_for_conflicts(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    """With key=model, a line for another item of a stored model conflicts."""
    sb.bulk_rules = BulkRules(key=lambda c: c.get("model"))
    sb.add(item_body(target_identity="/p/1"))

    reply = await send_bulk(http, sb, items("/p/2"))

    assert 409 == reply.status


# --- faults -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("faults", "status", "stored"),
    [
        (Faults(lost_ack=1.0), 503, 2),
        (Faults(rate_429=1.0), 429, 0),
        (Faults(rate_503=1.0), 503, 0),
        (Faults(rate_500=1.0), 500, 0),
    ],
)
async def test_status_faults_and_lost_acks_apply_to_bulk(
    sb: Sandbox, http: aiohttp.ClientSession, faults: Faults, status: int, stored: int
) -> None:
    """A lost ack stores the lines then answers 503; a status fault stores nothing."""
    sb.faults = faults

    reply = await send_bulk(http, sb, items("/p/1", "/p/2"))

    assert (status, stored) == (reply.status, len(sb.store))
    assert "injected by the sandbox" in reply.json["reason"]


async def test_a_dropped_bulk_request_stores_nothing(
    sb: Sandbox, http: aiohttp.ClientSession
) -> None:
    """drop closes the connection unanswered, and no line is stored."""
    sb.faults = Faults(drop=1.0)

    with pytest.raises(aiohttp.ServerDisconnectedError):
        await send_bulk(http, sb, items("/p/1", "/p/2"))

    assert {} == sb.store
    assert (0, "drop") == (sb.requests[-1].status, sb.requests[-1].fault)


async def test_a_resend_after_a_lost_ack_conflicts_under_raise(
    sb: Sandbox, http: aiohttp.ClientSession
) -> None:
    """The hazard a client must handle: the lines were applied, so resending is a 409."""
    sb.faults = Faults(lost_ack=1.0)
    lost = await send_bulk(http, sb, items("/p/1", "/p/2"))
    sb.faults = Faults()

    resent = await send_bulk(http, sb, items("/p/1", "/p/2"))
    ignored = await send_bulk(http, sb, items("/p/1", "/p/2"), strategy="ignore")

    assert [503, 409, 200] == [lost.status, resent.status, ignored.status]
    assert 2 == len(sb.store)


# --- concurrency --------------------------------------------------------------------


async def test_32_concurrent_bulk_requests_under_latency_all_apply(
    sb: Sandbox, http: aiohttp.ClientSession
) -> None:
    """32 bulk requests at once, each of 100 distinct lines, delayed: 3,200 stored once each."""
    sb.faults = Faults(seed=1, latency=0.5, latency_seconds=0.01)
    chunks = [items(*(f"/p/{c}-{n}" for n in range(100))) for c in range(32)]

    replies = await asyncio.gather(*(send_bulk(http, sb, chunk) for chunk in chunks))

    assert [200] * 32 == [r.status for r in replies]
    assert sorted(f"/p/{c}-{n}" for c in range(32) for n in range(100)) == sorted(
        c["target_identity"] for c in sb.store.values()
    )
    assert 32 == sum(r.route == "bulk" and r.status == 200 for r in sb.requests)
    assert 0 == sb.in_flight


async def test_concurrent_bulk_requests_for_one_key_are_atomic(
    sb: Sandbox, http: aiohttp.ClientSession
) -> None:
    """32 delayed requests sharing a key under raise: exactly one applies, whole; 31 get 409."""
    sb.faults = Faults(latency=1.0, latency_seconds=0.01)
    chunks = [items("/p/shared", *(f"/p/{c}-{n}" for n in range(10))) for c in range(32)]

    replies = await asyncio.gather(*(send_bulk(http, sb, chunk) for chunk in chunks))

    statuses = [r.status for r in replies]
    assert (1, 31) == (statuses.count(200), statuses.count(409))
    winner = statuses.index(200)
    assert sorted(c["target_identity"] for c in chunks[winner]) == sorted(
        c["target_identity"] for c in sb.store.values()
    )


async def test_max_in_flight_admits_bulk_requests_like_any_other(
    sb: Sandbox, http: aiohttp.ClientSession
) -> None:
    """With max_in_flight=4, of 32 held bulk requests exactly 4 are admitted, 28 get 429."""
    sb.faults = Faults(max_in_flight=4, latency=1.0, latency_seconds=60.0)
    tasks = [asyncio.create_task(send_bulk(http, sb, items(f"/p/{c}"))) for c in range(32)]
    refused: list[int] = []
    pending = set(tasks)
    while len(refused) < 28:  # wait, by completions, for every refusal
        done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        refused += [task.result().status for task in done]
    admitted_while_held = sb.in_flight
    await sb.stop()
    admitted = [(await task).status for task in pending]

    assert [429] * 28 == refused
    assert (4, [200] * 4) == (admitted_while_held, admitted)
    assert 4 == len(sb.store)

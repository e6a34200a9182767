"""``luigis-async sync``, run for real against a sandbox on 127.0.0.1.

Every test also checks that the customizations without the managed tag (made by hand,
or managed by another job) are untouched. "Writes" are the POST, PUT and DELETE requests
on ``/scope``, as the sandbox logged them.
"""

from __future__ import annotations

import asyncio
import importlib.util
import io
import json
import signal
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from rich.console import Console

from luigis_async import Customization, InvalidCustomizationError, LuigisBoxClient, converter
from luigis_async.cli import commands
from luigis_async.cli.plan import plan_rows, print_plan
from luigis_async.cli.progress import LogProgress
from luigis_async.cli.sync import KINDS, SyncJob, read_desired
from luigis_async.jsonl import FailuresFile, read_bodies
from luigis_async.reconcile import plan_sync
from luigis_async.sandbox import Faults, Sandbox
from luigis_async.sandbox.validation import READ_ONLY_FIELDS

from .cli_helpers import ROOT, credentials, invoke, records, subprocess_env, wait_for_stderr, write
from .helpers import item_customization

TAG = "managed:nightly"
MODELS = ("basket", "item_detail_complements", "category_bestsellers")
WRITES = frozenset({"POST", "PUT", "DELETE"})


def desired(n: int, *, pin: int | None = None) -> dict[str, Any]:
    """Desired body ``n``: an item target, every fifth a criteria target; 0 targets all."""
    body: dict[str, Any] = {"model": MODELS[n % len(MODELS)]}
    if n == 0:
        body["target_type"] = "all"
    elif n % 5 == 0:
        body |= {"target_type": "criteria", "target_criteria": {"category": [f"Category {n}"]}}
    else:
        body |= {"target_type": "item", "target_identity": f"/p/{n}"}
    body["pin_definitions"] = [
        {"position": 1, "pin_type": "item", "pin_identity": f"/p/{pin or n + 1000}"},
        {
            "position": 2,
            "pin_type": "criteria",
            "pin_criteria": {"brand": ["Fender"]},
            "active_from": "2026-02-01T00:00:00Z",
        },
    ]
    body["tags"] = ["summer-sale"]
    return body


def desired_file(tmp_path: Path, numbers: Iterable[int], **pins: int) -> Path:
    """The desired set ``numbers``; ``pins={"n3": 7}`` gives body 3 the pin /p/7."""
    bodies = [desired(n, pin=pins.get(f"n{n}")) for n in numbers]
    return write(tmp_path / "desired.jsonl", [json.dumps(body) for body in bodies])


def stored_as(body: dict[str, Any]) -> dict[str, Any]:
    """How the sandbox holds a body sync wrote: with the managed tag."""
    return {**body, "tags": [*body["tags"], TAG]}


def managed(sandbox: Sandbox) -> list[dict[str, Any]]:
    """The managed customizations' writable bodies, in a stable order."""
    bodies = [
        {k: v for k, v in c.items() if k not in READ_ONLY_FIELDS}
        for c in sandbox.store.values()
        if TAG in c["tags"]
    ]
    return sorted(bodies, key=lambda body: json.dumps(body, sort_keys=True))


def expected(numbers: Iterable[int], **pins: int) -> list[dict[str, Any]]:
    bodies = [stored_as(desired(n, pin=pins.get(f"n{n}"))) for n in numbers]
    return sorted(bodies, key=lambda body: json.dumps(body, sort_keys=True))


def writes(sandbox: Sandbox) -> list[tuple[str, int]]:
    """The writes on /scope the sandbox saw since its log was last cleared."""
    return [
        (r.method, r.status)
        for r in sandbox.requests
        if r.method in WRITES and (r.path.endswith("/scope") or "/scope/" in r.path)
    ]


def id_of(sandbox: Sandbox, n: int) -> str:
    """The ID of the managed customization for desired body ``n``."""
    body = desired(n)
    target = ("model", "target_type", "target_identity", "target_criteria")
    (key,) = [
        key
        for key, c in sandbox.store.items()
        if TAG in c["tags"] and all(c.get(field) == body.get(field) for field in target)
    ]
    return key


@pytest.fixture
def hand_made(sandbox: Sandbox) -> dict[str, dict[str, Any]]:
    """Two customizations sync must never touch, as they were before the test.

    One made by hand in the app (no tag) for the same target as desired body 3; one
    managed by another job, for the target of body 4.
    """
    manual = {**desired(3, pin=555), "tags": ["manual"]}
    other = {**desired(4, pin=444), "tags": ["managed:someone-else"]}
    ids = [sandbox.add(manual), sandbox.add(other)]
    return {key: dict(sandbox.store[key]) for key in ids}


def untouched(sandbox: Sandbox, before: dict[str, dict[str, Any]]) -> bool:
    return before == {key: sandbox.store.get(key) for key in before}


async def sync(sandbox: Sandbox, path: Path | str, *args: str, **env: str | None) -> Result:
    return await invoke(
        ["sync", str(path), "--managed-tag", TAG, "--base-url", sandbox.url, *args],
        credentials(sandbox, **env),
    )


async def synced(sandbox: Sandbox, tmp_path: Path, numbers: Iterable[int]) -> None:
    """Bring the sandbox to the desired set ``numbers``, then clear its request log."""
    result = await sync(sandbox, desired_file(tmp_path, numbers), "--yes")
    assert 0 == result.exit_code, result.output
    sandbox.requests.clear()


def summary(result: Result) -> dict[str, str]:
    """The summary rows of stdout: label -> the rest of the row."""
    rows = (row.partition(":") for row in result.stdout.splitlines())
    return {label.strip(): value.strip() for label, _, value in rows if value}


# -- plan and apply --------------------------------------------------------------------


async def test_from_empty_creates_all_then_a_second_sync_writes_nothing(
    sandbox: Sandbox, tmp_path: Path, hand_made: dict[str, dict[str, Any]]
) -> None:
    """The first sync creates every line with the tag; the second plans and writes nothing."""
    path = desired_file(tmp_path, range(20))

    first = await sync(sandbox, path, "--yes")
    assert 0 == first.exit_code, first.output
    assert [("POST", 201)] * 20 == writes(sandbox)
    assert expected(range(20)) == managed(sandbox)
    sandbox.requests.clear()

    second = await sync(sandbox, path, "--yes")

    assert 0 == second.exit_code, second.output
    assert [] == writes(sandbox)
    assert "no changes: the managed customizations already match" in second.stdout
    assert untouched(sandbox, hand_made)


async def test_changing_three_lines_updates_exactly_those_three(
    sandbox: Sandbox, tmp_path: Path, hand_made: dict[str, dict[str, Any]]
) -> None:
    """Three changed lines: three PUTs, no other write, each shown with its field diff."""
    await synced(sandbox, tmp_path, range(20))
    changed = {"n2": 7002, "n10": 7010, "n17": 7017}

    result = await sync(sandbox, desired_file(tmp_path, range(20), **changed), "--yes")

    assert 0 == result.exit_code, result.output
    assert [("PUT", 204)] * 3 == writes(sandbox)
    assert expected(range(20), **changed) == managed(sandbox)
    rows = result.stdout.splitlines()
    assert [
        f"~ update  {id_of(sandbox, 2)} category_bestsellers item /p/2",
        f"~ update  {id_of(sandbox, 10)} item_detail_complements criteria "
        '{"category":["Category 10"]}',
        f"~ update  {id_of(sandbox, 17)} category_bestsellers item /p/17",
    ] == [row for row in rows if row.startswith("~ update")]
    diffs = [row.partition(":")[0] for row in rows if row.startswith("    ")]
    assert ["    pin_definitions"] * 3 == diffs
    assert "3 of 3" == summary(result)["updated"]
    assert untouched(sandbox, hand_made)


async def test_prune_deletes_removed_lines_and_without_it_they_stay(
    sandbox: Sandbox, tmp_path: Path, hand_made: dict[str, dict[str, Any]]
) -> None:
    """Four lines removed: no write without --prune; with it, exactly four DELETEs."""
    await synced(sandbox, tmp_path, range(20))
    fewer = desired_file(tmp_path, range(4, 20))

    kept = await sync(sandbox, fewer, "--yes")
    assert 0 == kept.exit_code, kept.output
    assert ([], expected(range(20))) == (writes(sandbox), managed(sandbox))
    assert "delete:      0 (no --prune: 4 no longer desired are kept)" in kept.stdout

    pruned = await sync(sandbox, fewer, "--yes", "--prune")

    assert 0 == pruned.exit_code, pruned.output
    assert [("DELETE", 204)] * 4 == writes(sandbox)
    assert expected(range(4, 20)) == managed(sandbox)
    assert 4 == sum(row.startswith("- delete  ") for row in pruned.stdout.splitlines())
    assert untouched(sandbox, hand_made)


async def test_plan_only_prints_the_plan_and_writes_nothing(
    sandbox: Sandbox, tmp_path: Path, hand_made: dict[str, dict[str, Any]]
) -> None:
    """--plan-only: the counts and the first 20 changes; exit 0; no write at all."""
    result = await sync(sandbox, desired_file(tmp_path, range(25)), "--plan-only", "--prune")

    assert 0 == result.exit_code, result.output
    assert [] == writes(sandbox)
    rows = result.stdout.splitlines()
    assert [
        f"plan for managed tag {TAG}",
        "  create:     25",
        "  update:      0",
        "  delete:      0",
        "  unchanged:   0",
        "  duplicates:  0",
        "",
        "+ create  basket all",
        "+ create  item_detail_complements item /p/1",
    ] == rows[:9]
    assert 20 == sum(row.startswith("+ create  ") for row in rows)
    assert "... and 5 more changes (-v shows them all)" == rows[-1]
    assert not (tmp_path / "desired.jsonl.failed.jsonl").exists()
    assert untouched(sandbox, hand_made)


async def test_plan_shows_deletes_and_diffs_before_creates(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """A delete, an update with its diff and a create, in that order, riskiest first."""
    await synced(sandbox, tmp_path, [1, 2])
    gone, changed = id_of(sandbox, 1), id_of(sandbox, 2)

    result = await sync(
        sandbox, desired_file(tmp_path, [2, 3], n2=9), "--plan-only", "--prune"
    )

    assert 0 == result.exit_code, result.output
    changes = result.stdout.splitlines()[7:]
    assert [
        f"- delete  {gone} item_detail_complements item /p/1",
        f"~ update  {changed} category_bestsellers item /p/2",
        "+ create  basket item /p/3",
    ] == [changes[0], changes[1], changes[3]]
    assert changes[2].startswith("    pin_definitions: ")
    assert "/p/9" in changes[2]
    assert [] == writes(sandbox)


# -- refusals: nothing is sent ---------------------------------------------------------


async def test_duplicate_keys_are_refused_before_any_request(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """Two lines for one (model, target): exit 1, both lines named, no request at all."""
    lines = [json.dumps(desired(n)) for n in (1, 2)] + [json.dumps(desired(1, pin=5))]
    path = write(tmp_path / "desired.jsonl", lines)

    result = await sync(sandbox, path, "--yes", "--prune")

    assert 1 == result.exit_code, result.output
    assert [] == sandbox.requests
    reason = "duplicate key: line 1 has the same (item_detail_complements item /p/1)"
    assert [(3, reason)] == [
        (r["error"]["line"], r["error"]["reason"])
        for r in records(tmp_path / "desired.jsonl.failed.jsonl")
    ]
    assert f"line 3: {reason}" in result.output


@pytest.mark.parametrize("args", [["--yes"], ["--yes", "--prune"], ["--plan-only"]])
async def test_an_invalid_line_refuses_the_whole_file(
    sandbox: Sandbox, tmp_path: Path, args: list[str]
) -> None:
    """Any invalid line: exit 1 before any request; every bad line in the failures file."""
    lines = [
        json.dumps(desired(1)),
        '{"model": "basket",',
        json.dumps({**desired(2), "tag": ["typo"]}),
        json.dumps({**desired(3), "id": "1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b"}),
        json.dumps(desired(4)),
    ]
    path = write(tmp_path / "desired.jsonl", lines)

    result = await sync(sandbox, path, *args)

    assert 1 == result.exit_code, result.output
    assert [] == sandbox.requests
    failed = records(tmp_path / "desired.jsonl.failed.jsonl")
    reasons = [
        (2, "invalid JSON: Expecting property name"),
        (3, "invalid customization: unknown field 'tag'"),
        (4, "invalid customization: unknown field 'id' (a desired body has no ID"),
    ]
    assert reasons == [
        (record["error"]["line"], record["error"]["reason"][: len(reason)])
        for record, (_, reason) in zip(failed, reasons, strict=True)
    ]
    assert "refusing to sync: 3 of 5 lines are invalid or repeat a key" in result.output


async def test_an_empty_desired_set_with_prune_is_refused(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """An empty file with --prune would delete everything managed: exit 1, nothing sent."""
    result = await sync(sandbox, write(tmp_path / "desired.jsonl", []), "--yes", "--prune")

    assert 1 == result.exit_code, result.output
    assert [] == sandbox.requests
    assert "holds no customizations" in result.output
    assert "--allow-empty" in result.output


async def test_allow_empty_prunes_every_managed_customization(
    sandbox: Sandbox, tmp_path: Path, hand_made: dict[str, dict[str, Any]]
) -> None:
    """With --allow-empty an empty file deletes every managed customization, and no other."""
    await synced(sandbox, tmp_path, range(5))
    empty = write(tmp_path / "empty.jsonl", [])

    result = await sync(sandbox, empty, "--yes", "--prune", "--allow-empty")

    assert 0 == result.exit_code, result.output
    assert [("DELETE", 204)] * 5 == writes(sandbox)
    assert ([], True) == (managed(sandbox), untouched(sandbox, hand_made))


@pytest.mark.parametrize("desired", [[], "consumed"], ids=["empty list", "consumed iterator"])
async def test_plan_sync_refuses_an_empty_desired_set_with_prune(
    client: LuigisBoxClient, sandbox: Sandbox, desired: list[Customization] | str
) -> None:
    """plan_sync with prune and nothing desired raises, saying why, before any request."""
    if desired == "consumed":
        iterator = iter([item_customization(1)])
        list(iterator)
        desired = iterator  # type: ignore[assignment]

    with pytest.raises(InvalidCustomizationError, match="allow_empty=True"):
        await plan_sync(client, desired, managed_tag=TAG, prune=True)  # type: ignore[arg-type]

    assert [] == sandbox.requests


async def test_plan_sync_with_allow_empty_plans_every_delete(
    client: LuigisBoxClient, sandbox: Sandbox
) -> None:
    """allow_empty=True plans to delete every managed customization, as asked."""
    ids = [sandbox.add(stored_as(desired(n))) for n in range(1, 4)]

    plan = await plan_sync(client, iter([]), managed_tag=TAG, prune=True, allow_empty=True)

    assert sorted(ids) == sorted(str(stored.id) for stored in plan.delete)


async def test_without_yes_and_without_a_terminal_exits_2(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """A script that forgot --yes: exit 2, no request, a message naming --yes."""
    result = await sync(sandbox, desired_file(tmp_path, range(3)))

    assert 2 == result.exit_code, result.output
    assert [] == sandbox.requests
    assert "pass --yes to apply the plan, or --plan-only to print it" in result.output


@pytest.mark.parametrize(("answer", "code", "posts"), [("n\n", 1, 0), ("y\n", 0, 3)])
async def test_on_a_terminal_sync_asks_first(
    sandbox: Sandbox,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    answer: str,
    code: int,
    posts: int,
) -> None:
    """Without --yes on a terminal: no applies nothing (exit 1), yes applies the plan."""
    monkeypatch.setattr(commands, "_stdin_is_terminal", lambda: True)

    result = await invoke(
        ["sync", str(desired_file(tmp_path, range(3))), "--managed-tag", TAG,
         "--base-url", sandbox.url],
        credentials(sandbox),
        stdin=answer.encode(),
    )

    assert code == result.exit_code, result.output
    assert [("POST", 201)] * posts == writes(sandbox)
    assert "Apply these 3 writes? [y/N]" in result.output


async def test_a_wrong_key_exits_2_and_writes_nothing(sandbox: Sandbox, tmp_path: Path) -> None:
    """A key the server rejects while planning is a credential error: exit 2, no write."""
    result = await sync(
        sandbox, desired_file(tmp_path, range(3)), "--yes", LUIGISBOX_PRIVATE_KEY="wrong"
    )

    assert 2 == result.exit_code, result.output
    assert [] == writes(sandbox)
    assert "the server rejected the credentials" in result.output


# -- failures --------------------------------------------------------------------------


async def test_failed_writes_are_reported_against_their_lines(
    client: LuigisBoxClient, sandbox: Sandbox, tmp_path: Path
) -> None:
    """A failed create or update is written as its desired line; a failed delete by its ID."""
    await synced(sandbox, tmp_path, [1, 2, 3])
    gone, updated = id_of(sandbox, 1), id_of(sandbox, 2)
    path = desired_file(tmp_path, [2, 3, 4], n2=8)
    with path.open("rb") as stream, FailuresFile(tmp_path / "invalid.jsonl") as invalid:
        wanted = read_desired(read_bodies(stream), invalid)
    plan = await plan_sync(client, wanted.customizations, managed_tag=TAG, prune=True)
    sandbox.fail_next(3, 422)

    with FailuresFile(tmp_path / "failed.jsonl") as failures:
        job = SyncJob(
            client, plan, wanted.lines, failures, LogProgress("sync", 3, "items"), concurrency=1
        )
        result = await job.run()

    assert 1 == result.exit_code
    assert {f"{kind} 422 UnprocessableEntityError": 1 for kind in KINDS} == result.failed
    failed = records(tmp_path / "failed.jsonl")
    scope = f"/v1/recommender/pin/{sandbox.tracker_id}/scope"
    expected_records = [
        {**desired(4), "error": {"line": 3, "reason": f"create: POST {scope} -> 422: "}},
        {**desired(2, pin=8), "error": {"line": 1, "reason": f"update: PUT {scope}/{updated} "}},
        {
            "delete": gone,
            "target": "item_detail_complements item /p/1",
            "error": {"reason": f"DELETE {scope}/{gone} -> 422: "},
        },
    ]
    assert expected_records == [
        {**record, "error": {**record["error"], "reason": record["error"]["reason"][:size]}}
        for record, want in zip(failed, expected_records, strict=True)
        for size in [len(want["error"]["reason"])]
    ]


async def test_key_never_appears_in_output(sandbox: Sandbox, tmp_path: Path) -> None:
    """With -v and rejected writes, the key is in no output and no failures file."""
    sandbox.catalog = {f"/p/{n + 1000}" for n in range(1, 5)}  # /p/1005 is not in it

    result = await sync(sandbox, desired_file(tmp_path, range(1, 6)), "--yes", "-vv")

    assert 1 == result.exit_code, result.output
    failures = (tmp_path / "desired.jsonl.failed.jsonl").read_text()
    assert '"line": 5' in failures and "422" in failures
    assert "DEBUG" in result.output
    assert [] == [
        where
        for where, text in (("stdout and stderr", result.output), ("failures file", failures))
        if sandbox.private_key in text
    ]


async def _start_slow_sync(
    sandbox: Sandbox, tmp_path: Path, count: int, latency: float
) -> tuple[asyncio.subprocess.Process, dict[str, int]]:
    """``sync -v --yes`` of ``count`` item lines in a subprocess, each request delayed.

    Returns the process and the line of each target identity.
    """
    sandbox.faults = Faults(latency=1.0, latency_seconds=latency)
    numbers = [n for n in range(1, 2 * count) if n % 5][:count]  # item targets only
    path = desired_file(tmp_path, numbers)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "luigis_async", "sync", str(path), "--managed-tag", TAG,
        "--base-url", sandbox.url, "--yes", "--concurrency", "2", "-vv",
        env=subprocess_env(sandbox),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    return proc, {f"/p/{n}": number for number, n in enumerate(numbers, start=1)}


def _accounted(
    sandbox: Sandbox, tmp_path: Path, line_of: dict[str, int]
) -> tuple[set[int], list[int], set[str]]:
    """The lines created, the lines in the failures file, and its reasons."""
    created = {line_of[c["target_identity"]] for c in sandbox.store.values()}
    failed = records(tmp_path / "desired.jsonl.failed.jsonl")
    return created, [r["error"]["line"] for r in failed], {r["error"]["reason"] for r in failed}


async def test_ctrl_c_finishes_in_flight_and_writes_the_rest(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """SIGINT mid-apply: exit 130; created lines plus failures-file lines are every line."""
    proc, line_of = await _start_slow_sync(sandbox, tmp_path, count=40, latency=0.1)
    await wait_for_stderr(proc, b": applied", times=3)

    proc.send_signal(signal.SIGINT)
    stdout, stderr = await proc.communicate()

    assert 130 == proc.returncode, stderr.decode()
    created, failed, reasons = _accounted(sandbox, tmp_path, line_of)
    assert set() == created & set(failed)
    assert list(range(1, 41)) == sorted([*created, *failed])
    assert len(created) >= 3
    assert {"create: not attempted: interrupted"} == reasons
    assert sandbox.private_key.encode() not in stdout + stderr


async def test_second_ctrl_c_cancels_in_flight(sandbox: Sandbox, tmp_path: Path) -> None:
    """A second SIGINT cancels the requests in flight; still every line is accounted for."""
    proc, line_of = await _start_slow_sync(sandbox, tmp_path, count=20, latency=0.5)
    await wait_for_stderr(proc, b": applied")
    proc.send_signal(signal.SIGINT)
    await wait_for_stderr(proc, b"interrupted: finishing")

    proc.send_signal(signal.SIGINT)
    _, stderr = await proc.communicate()

    assert 130 == proc.returncode, stderr.decode()
    created, failed, reasons = _accounted(sandbox, tmp_path, line_of)
    assert list(range(1, 21)) == sorted(set(failed) | created)
    assert "create: cancelled in flight: may or may not have been applied" in reasons


# -- the demo and the terminal ---------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "deleted"), [([], "0 of 0"), (["--prune"], "1 of 1")]
)
async def test_the_sandbox_demo(tmp_path: Path, args: list[str], deleted: str) -> None:
    """The README's command: creates, two updates, a delete with --prune; exit 0."""
    result = await invoke(
        ["sync", str(ROOT / "examples" / "desired.jsonl"), "--managed-tag", TAG,
         "--sandbox", "--yes", "--failures-out", str(tmp_path / "f.jsonl"), *args],
        {"LUIGISBOX_TRACKER_ID": None, "LUIGISBOX_PRIVATE_KEY": None},
    )

    assert 0 == result.exit_code, result.output
    rows = summary(result)
    assert ("47 of 47", "2 of 2", deleted, "0") == (
        rows["created"], rows["updated"], rows["deleted"], rows["failed"]
    )
    assert "2 without the tag, untouched" in result.output


def test_the_example_desired_set_is_what_its_script_writes(tmp_path: Path) -> None:
    """examples/make_desired.py regenerates examples/desired.jsonl byte for byte."""
    spec = importlib.util.spec_from_file_location(
        "make_desired", ROOT / "examples" / "make_desired.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    module.main(tmp_path / "desired.jsonl")

    expected_bytes = (ROOT / "examples" / "desired.jsonl").read_bytes()
    assert expected_bytes == (tmp_path / "desired.jsonl").read_bytes()


async def test_on_a_terminal_the_plan_has_the_same_lines_in_colour(
    client: LuigisBoxClient, sandbox: Sandbox
) -> None:
    """Rich shows the plain lines, each change coloured by its kind."""
    sandbox.add(converter.unstructure(item_customization(1, tags=(TAG,))))
    plan = await plan_sync(client,
        [item_customization(1, tags=("new",)), item_customization(2)], managed_tag=TAG
    )
    rows = plan_rows(plan)
    console = Console(file=io.StringIO(), record=True, force_terminal=True, width=300)

    print_plan(rows, console)

    assert "".join(row.text + "\n" for row in rows) == console.export_text()
    styles = {row.text[:8]: row.style for row in rows if row.text.startswith(("~", "+"))}
    assert {"~ update": "yellow", "+ create": "green"} == styles

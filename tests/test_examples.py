"""Every example in examples/ runs to completion and does what its docstring says.

Each example is imported from its file and its functions run against the sandbox
fixture, checking the effect in the sandbox's store; each is also run as a real
subprocess, ``python examples/<name>.py``, as a reader would run it. Subprocesses are
synchronised on the lines they print, never on sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import re
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from luigis_async import (
    Customization,
    CustomizationUpdate,
    LuigisBoxClient,
    NotFoundError,
    converter,
)
from luigis_async.jsonl import read_updates
from luigis_async.sandbox import Sandbox
from luigis_async.sandbox.validation import READ_ONLY_FIELDS

from .helpers import FAST_RETRY

ROOT = Path(__file__).parents[1]
EXAMPLES = ROOT / "examples"
PLACEHOLDER = converter.unstructure(Customization("basket", "all"))
#: Seconds any one subprocess step may take before the test fails instead of hanging.
STEP_TIMEOUT = 30


def load(name: str) -> ModuleType:
    """Import ``examples/<name>.py`` as a module, the way ``python`` would run it."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


web_service = load("web_service")
bulk_refresh = load("bulk_refresh")
worker_pool = load("worker_pool")
observability = load("observability")


def writable(stored: dict[str, Any]) -> dict[str, Any]:
    """A stored body without the fields the server sets."""
    return {k: v for k, v in stored.items() if k not in READ_ONLY_FIELDS}


def body(customization: Customization) -> dict[str, Any]:
    """The body the sandbox stores for ``customization`` (``None`` fields left out)."""
    return {k: v for k, v in converter.unstructure(customization).items() if v is not None}


def item_pins(stored: dict[str, Any]) -> list[tuple[int, str]]:
    return [(p["position"], p["pin_identity"]) for p in stored["pin_definitions"]]


def seed(sandbox: Sandbox, ids: Sequence[uuid.UUID]) -> None:
    for cid in ids:
        sandbox.add(PLACEHOLDER, str(cid))


# -- web_service, in-process -------------------------------------------------------------


@contextlib.asynccontextmanager
async def serving(app: Any) -> AsyncIterator[TestClient[Any, Any]]:
    async with TestClient(TestServer(app, host="127.0.0.1")) as http:
        yield http


def service_for(sandbox: Sandbox) -> Any:
    return web_service.build_app(
        tracker_id=sandbox.tracker_id, private_key=sandbox.private_key, base_url=sandbox.url
    )


async def test_web_service_creates_and_pins(sandbox: Sandbox) -> None:
    """POST /pins creates, PUT /pins/{id} replaces the pin; the store holds the last one."""
    async with serving(service_for(sandbox)) as http:
        created = await http.post(
            "/pins", json={"item": "/p/1", "pinned_item": "/p/2", "position": 1}
        )
        cid = (await created.json())["id"]
        updated = await http.put(
            f"/pins/{cid}", json={"item": "/p/1", "pinned_item": "/p/3", "position": 2}
        )
        fetched = await http.get(f"/pins/{cid}")

        assert (201, 200, 200) == (created.status, updated.status, fetched.status)
        assert writable(sandbox.store[cid]) == writable(await fetched.json())
    assert [cid] == list(sandbox.store)
    assert ("/p/1", [(2, "/p/3")]) == (
        sandbox.store[cid]["target_identity"],
        item_pins(sandbox.store[cid]),
    )


async def test_web_service_shares_one_client_and_closes_it(sandbox: Sandbox) -> None:
    """One client is opened at startup, serves every request, and is closed at shutdown."""
    app = service_for(sandbox)
    async with serving(app) as http:
        client = app[web_service.CLIENT]
        for n in range(3):
            response = await http.post(
                "/pins", json={"item": f"/p/{n}", "pinned_item": "/p/9", "position": 1}
            )
            assert 201 == response.status
        assert (client, False) == (app[web_service.CLIENT], client.closed)

    assert (True, 3) == (client.closed, len(sandbox.store))


@pytest.mark.parametrize(
    ("method", "path", "payload", "status", "error"),
    [
        ("POST", "/pins", [1], 400, "body: must be a JSON object"),
        ("POST", "/pins", {"item": "/p/1"}, 400, "body: missing pinned_item, position"),
        (
            "POST",
            "/pins",
            {"item": "/p/1", "pinned_item": "/p/2", "position": "1"},
            400,
            "position: must be an int, got '1'",
        ),
        (
            "PUT",
            "/pins/00000000-0000-4000-8000-000000000000",
            {"item": "/p/1", "pinned_item": "/p/2", "position": 1},
            404,
            "no such customization",
        ),
        ("GET", "/pins/bad-id", None, 400, "customization_id: must be a UUID, got 'bad-id'"),
    ],
)
async def test_web_service_maps_errors(
    sandbox: Sandbox, method: str, path: str, payload: Any, status: int, error: str
) -> None:
    """Bad input is a 400 and an unknown ID a 404, each with a JSON error; nothing stored."""
    async with serving(service_for(sandbox)) as http:
        response = await http.request(method, path, json=payload)

        assert (status, {"error": error}) == (response.status, await response.json())
    assert {} == sandbox.store


async def test_web_service_upstream_failure_is_a_502(sandbox: Sandbox) -> None:
    """An upstream 500 (not retried: the server may have acted) is a 502 naming it."""
    sandbox.fail_next(1, 500)
    async with serving(service_for(sandbox)) as http:
        response = await http.post(
            "/pins", json={"item": "/p/1", "pinned_item": "/p/2", "position": 1}
        )

        assert 502 == response.status
        assert (await response.json())["error"].startswith("Luigi's Box answered 500")


async def test_web_service_sandbox_app_runs_its_own_sandbox() -> None:
    """Without credentials the app starts a sandbox with itself and stops it with itself."""
    app = web_service.build_sandbox_app()
    async with serving(app) as http:
        response = await http.post(
            "/pins", json={"item": "/p/1", "pinned_item": "/p/2", "position": 1}
        )
        sandbox = app[web_service.SANDBOX]
        cid = (await response.json())["id"]

        assert [(1, "/p/2")] == item_pins(sandbox.store[cid])
    with pytest.raises(RuntimeError, match="not running"):
        sandbox.url  # noqa: B018


# -- bulk_refresh, in-process ------------------------------------------------------------


async def test_bulk_refresh_applies_updates_and_writes_failures(
    sandbox: Sandbox, client: LuigisBoxClient, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Seeded IDs end with the new body; missing ones are in the failures file, pushable."""
    updates = list(bulk_refresh.planned_updates(200))
    missing = {7, 120}
    seed(sandbox, [u.customization_id for n, u in enumerate(updates) if n not in missing])
    failures_path = tmp_path / "failures.jsonl"

    report = await bulk_refresh.refresh(client, iter(updates), failures_path)

    assert (200, 198, [7, 120]) == (
        report.total,
        report.succeeded,
        sorted(r.index for r in report.failed),
    )
    assert {
        str(u.customization_id): body(u.customization)
        for n, u in enumerate(updates)
        if n not in missing
    } == {cid: writable(stored) for cid, stored in sandbox.store.items()}
    with failures_path.open("rb") as failures:
        parsed = list(read_updates(failures))
    assert sorted(
        (updates[n].customization_id, updates[n].customization) for n in missing
    ) == sorted((p.update.customization_id, p.update.customization) for p in parsed if p.update)
    assert [404, 404] == [json.loads(p.line.text)["error"]["status"] for p in parsed]
    progress = re.findall(r"\d+ done, \d+ failed", capsys.readouterr().out)
    assert ["100 done, 1 failed", "200 done, 2 failed"] == progress


async def test_bulk_refresh_writes_every_update_when_the_key_is_rejected(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """A rejected key stops the batch; every update, sent or not, is in the failures file."""
    updates = list(bulk_refresh.planned_updates(50))
    seed(sandbox, [u.customization_id for u in updates])
    failures_path = tmp_path / "failures.jsonl"
    async with LuigisBoxClient(
        sandbox.tracker_id, "not-the-key", base_url=sandbox.url, retry=FAST_RETRY
    ) as wrong:
        report = await bulk_refresh.refresh(wrong, updates, failures_path)

    records = [json.loads(text) for text in failures_path.read_text().splitlines()]
    assert (0, 50) == (report.succeeded, len(records))
    assert sorted(str(u.customization_id) for u in updates) == sorted(
        r["customization_id"] for r in records
    )
    assert {PLACEHOLDER["model"]} == {stored["model"] for stored in sandbox.store.values()}
    # Those in flight when the first 401 came back are 401s; the batch sent no more.
    assert {401, None} == {r["error"]["status"] for r in records}
    unsent = [r["error"]["reason"] for r in records if r["error"]["status"] is None]
    prefix = "not attempted: authentication failed: "
    assert (True, []) == (bool(unsent), [x for x in unsent if not x.startswith(prefix)])


# -- worker_pool, in-process -------------------------------------------------------------


def pool_updates(sandbox: Sandbox, count: int) -> list[CustomizationUpdate]:
    ids = [uuid.UUID(sandbox.add(PLACEHOLDER)) for _ in range(count)]
    return list(worker_pool.make_updates(ids))


async def test_worker_pool_applies_every_update(
    sandbox: Sandbox, client: LuigisBoxClient
) -> None:
    """Every update is applied once, spread over all workers, never more in flight."""
    updates = pool_updates(sandbox, 30)

    results = await worker_pool.run_pool(client, updates, workers=4)

    assert sorted(u.customization_id for u in updates) == sorted(
        r.customization_id for r in results
    )
    assert ([], {1, 2, 3, 4}) == ([r for r in results if not r.ok], {r.worker for r in results})
    assert {str(u.customization_id): body(u.customization) for u in updates} == {
        cid: writable(stored) for cid, stored in sandbox.store.items()
    }
    assert sandbox.max_in_flight_seen <= 4
    assert [] == [t for t in asyncio.all_tasks() if t.get_name().startswith("pool-worker")]


async def test_worker_pool_survives_a_failed_update(
    sandbox: Sandbox, client: LuigisBoxClient
) -> None:
    """A 404 is that update's result; the workers go on and apply all the others."""
    updates = pool_updates(sandbox, 10)
    gone = updates[3].customization_id
    del sandbox.store[str(gone)]

    results = await worker_pool.run_pool(client, updates, workers=3)

    failed = [r for r in results if not r.ok]
    assert [(gone, NotFoundError)] == [(r.customization_id, type(r.error)) for r in failed]
    assert (10, 9) == (len(results), len(sandbox.store))


async def test_worker_pool_stop_finishes_what_was_taken(
    sandbox: Sandbox, client: LuigisBoxClient
) -> None:
    """After stop, no update is taken; every one taken before is applied, none dropped."""
    updates = pool_updates(sandbox, 20)
    stop = asyncio.Event()
    taken: list[CustomizationUpdate] = []

    def source() -> Iterator[CustomizationUpdate]:
        for update in updates:
            taken.append(update)
            if len(taken) == 6:
                stop.set()  # as a SIGTERM arriving while the sixth is being queued
            yield update

    results = await worker_pool.run_pool(client, source(), workers=2, stop=stop)

    assert updates[:6] == taken
    assert sorted(u.customization_id for u in taken) == sorted(
        r.customization_id for r in results if r.ok
    )
    assert 6 == sum(stored["pin_definitions"] != [] for stored in sandbox.store.values())


# -- observability, in-process -----------------------------------------------------------


async def test_observability_counts_requests_retries_and_statuses(sandbox: Sandbox) -> None:
    """The hook counts 3 requests, 2 retries of the throttled create, and every status."""
    metrics = observability.RequestMetrics()
    sandbox.fail_next(2, 429, retry_after=0)
    async with LuigisBoxClient(
        sandbox.tracker_id,
        sandbox.private_key,
        base_url=sandbox.url,
        retry=FAST_RETRY,
        event_hooks=[metrics],
    ) as client:
        cid = await observability.exercise(client)

    assert {("POST", "success"): 1, ("PUT", "success"): 1, ("GET", "success"): 1} == dict(
        metrics.requests
    )
    assert ({429: 2, 201: 1, 204: 1, 200: 1}, {"POST": 2}) == (
        dict(metrics.responses),
        dict(metrics.retries),
    )
    assert 3 == metrics.seconds_count
    assert [(1, "/p/2")] == item_pins(sandbox.store[str(cid)])


# -- every example as a subprocess -------------------------------------------------------


def example_env(**extra: str) -> dict[str, str]:
    """The environment minus any real credentials, so the examples use their sandbox."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LUIGISBOX_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env | extra


@contextlib.asynccontextmanager
async def spawned(
    name: str, *args: str, cwd: Path, env: dict[str, str] | None = None
) -> AsyncIterator[asyncio.subprocess.Process]:
    """``python -W error examples/<name>.py``; killed if the test ends with it running."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-W", "error", str(EXAMPLES / f"{name}.py"), *args,
        cwd=cwd,
        env=env or example_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.communicate()


async def read_until(proc: asyncio.subprocess.Process, text: str) -> str:
    """Read the child's stdout until a line containing ``text``; return that line."""
    assert proc.stdout is not None
    seen = []
    async with asyncio.timeout(STEP_TIMEOUT):
        while True:
            line = (await proc.stdout.readline()).decode()
            assert line, f"the example ended before printing {text!r}; it printed {seen}"
            seen.append(line)
            if text in line:
                return line


async def finish(proc: asyncio.subprocess.Process) -> tuple[str, str]:
    """Wait for the child to exit; its remaining stdout and stderr."""
    async with asyncio.timeout(STEP_TIMEOUT):
        stdout, stderr = await proc.communicate()
    return stdout.decode(), stderr.decode()


def assert_clean(stderr: str) -> None:
    """No traceback, warning-turned-error, or unclosed session on the way out."""
    for trouble in ("Traceback", "Exception ignored", "Unclosed", "Warning"):
        assert trouble not in stderr, stderr


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("bulk_refresh", "996 of 1000 applied, 4 failed, 0 not attempted"),
        ("worker_pool", "40 applied, 0 failed, 0 not sent"),
        ("observability", "retries: {'POST': 2}"),
    ],
)
async def test_example_runs_as_a_script(name: str, expected: str, tmp_path: Path) -> None:
    """``python examples/<name>.py`` exits 0, prints its summary, and shuts down cleanly."""
    async with spawned(name, cwd=tmp_path) as proc:
        stdout, stderr = await finish(proc)

    assert (0, True) == (proc.returncode, expected in stdout), stdout + stderr
    assert_clean(stderr)


async def test_bulk_refresh_script_writes_its_failures_file(tmp_path: Path) -> None:
    """The script leaves one failures line per ID missing from its sandbox."""
    async with spawned("bulk_refresh", "failures.jsonl", cwd=tmp_path) as proc:
        await finish(proc)

    lines = (tmp_path / "failures.jsonl").read_text().splitlines()
    assert [404] * 4 == [json.loads(text)["error"]["status"] for text in lines]


async def test_worker_pool_script_stops_gracefully_on_sigint(tmp_path: Path) -> None:
    """SIGINT mid-run: queued updates finish, the rest are not sent, exit 0."""
    async with spawned(
        "worker_pool", "--updates", "200", "--workers", "4", "--latency", "0.05", cwd=tmp_path
    ) as proc:
        await read_until(proc, ": applied")
        proc.send_signal(signal.SIGINT)
        stdout, stderr = await finish(proc)

    summary = re.search(r"(\d+) applied, (\d+) failed, (\d+) not sent", stdout)
    assert summary is not None, stdout + stderr
    applied, failed, not_sent = map(int, summary.groups())
    assert (0, 0, 200) == (proc.returncode, failed, applied + not_sent)
    assert (applied - 1, True) == (stdout.count(": applied"), not_sent > 0)
    assert "stopping: finishing the queued updates" in stdout
    assert_clean(stderr)


async def post_pin(url: str, **pin: Any) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http, http.post(f"{url}/pins", json=pin) as response:
        return response.status, await response.json()


async def stop_service(proc: asyncio.subprocess.Process) -> tuple[str, str]:
    proc.send_signal(signal.SIGINT)
    return await finish(proc)


async def test_web_service_script_with_credentials(sandbox: Sandbox, tmp_path: Path) -> None:
    """With credentials in the env it uses that account: a POST lands in its store; exit 0."""
    env = example_env(
        LUIGISBOX_TRACKER_ID=sandbox.tracker_id,
        LUIGISBOX_PRIVATE_KEY=sandbox.private_key,
        LUIGISBOX_BASE_URL=sandbox.url,
    )
    async with spawned("web_service", "--port", "0", cwd=tmp_path, env=env) as proc:
        line = await read_until(proc, "listening on ")
        url = line.split("listening on ")[1].strip()
        status, answer = await post_pin(url, item="/p/1", pinned_item="/p/2", position=1)
        stdout, stderr = await stop_service(proc)

    assert (201, 0) == (status, proc.returncode), stderr
    assert [(1, "/p/2")] == item_pins(sandbox.store[answer["id"]])
    assert "stopping" in stdout
    assert_clean(stderr)


async def test_web_service_script_without_credentials(tmp_path: Path) -> None:
    """Without credentials it serves from its own sandbox: a pin reads back; exit 0."""
    async with spawned("web_service", "--port", "0", cwd=tmp_path) as proc:
        sandbox_line = await read_until(proc, "using a local sandbox at ")
        url = (await read_until(proc, "listening on ")).split("listening on ")[1].strip()
        status, answer = await post_pin(url, item="/p/1", pinned_item="/p/2", position=1)
        async with aiohttp.ClientSession() as http, http.get(
            f"{url}/pins/{answer['id']}"
        ) as response:
            stored = await response.json()
        _, stderr = await stop_service(proc)

    assert (201, 0) == (status, proc.returncode), stderr
    assert ("/p/1", [(1, "/p/2")]) == (stored["target_identity"], item_pins(stored))
    assert "http://127.0.0.1:" in sandbox_line
    assert_clean(stderr)

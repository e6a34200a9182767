"""Throttled-server benchmark (issue 16): how much of what an API admits a bulk push uses.

Run from the repository root: ``python benchmarks/bench_throttled.py`` (``--quick`` for a
smoke test in well under a minute; see benchmarks/README.md).

Each scenario starts a fresh benchmarks/throttled_server.py (its own process, its own
core) that answers PUTs in 50 ms and refuses with 429 beyond its limit, and a fresh client
process (another core) that pushes the same signed PUTs: the library at its defaults, the
library with concurrency 64, a hand-written aiohttp baseline and, against an in-flight
limit, an aiohttp client told the limit (what the server can deliver to any client). The
server counts what it applied and refused, per 100 ms; the parent turns that into goodput,
percentage of capacity, 429s per applied update, items not applied and, after a capacity
change, the time back to 90 % of the new capacity. Then three library processes share one
limit (fairness). It prints markdown tables, writes a JSON of every run and plots the
changing-capacity runs.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import hmac
import io
import json
import math
import os
import platform
import random
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
import uuid
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from email.utils import formatdate
from importlib.metadata import version
from pathlib import Path
from typing import Any

from bench_bulk import (
    CONTENT_TYPE,
    PATH_PREFIX,
    PRIVATE_KEY,
    SEED,
    TRACKER,
    choose_cores,
    iter_specs,
    json_ready,
    library_state,
    pin_self,
    spawned,
    to_update,
)
from throttled_server import LimitSpec, Schedule

HERE = Path(__file__).resolve().parent
SERVER = HERE / "throttled_server.py"

CLIENTS = {
    "lib": "library, defaults",
    "lib-c64": "library, concurrency=64",
    "baseline": "aiohttp baseline",
    "lib-c64-pool16": "library, concurrency=64, default pool",
    "told": "aiohttp, told the in-flight limit",
}
DEFAULT_CLIENTS = ("lib", "lib-c64", "baseline", "told")

#: The hand-written baseline: what a careful user writes without a library.
BASELINE_CONCURRENCY = 64
BASELINE_MAX_ATTEMPTS = 10
BASELINE_BACKOFF = (0.5, 2.0, 30.0)  # initial, multiplier, cap: the library's defaults
BASELINE_RETRYABLE = frozenset({408, 429, 500, 502, 503, 504})

RECOVERY_SHARE = 0.9  # "back to 90 % of the new capacity"


# -- scenarios --------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    """One server behaviour and how many updates each client pushes against it."""

    name: str
    title: str
    limit: str  # the server's --limit
    retry_after: str  # the server's --retry-after ("none": no header)
    items: int

    def capacity(self, latency: float) -> Schedule | None:
        return LimitSpec.parse(self.limit).capacity(latency)


#: Updates per client run, sized so a client using the whole capacity runs 10-30 s
#: (the library's current defaults take longer), and a smoke-test size for --quick.
FULL_ITEMS = {"nolimit": 5000, "inflight": 6000, "bucket": 3000, "changing": 6000}
QUICK_ITEMS = {"nolimit": 200, "inflight": 300, "bucket": 150, "changing": 450}


SCENARIO_NAMES = ("nolimit", "inflight-ra", "inflight-nora", "bucket-ra", "bucket-nora",
                  "changing-ra", "changing-nora")


def build_scenarios(args: argparse.Namespace) -> dict[str, Scenario]:
    """The scenarios of SCENARIO_NAMES, from the command line's parameters."""
    sizes = dict.fromkeys(FULL_ITEMS, args.items) if args.items \
        else QUICK_ITEMS if args.quick else FULL_ITEMS
    rates = " then ".join(f"{p.split(':')[0]}/s" for p in args.phases.split(","))
    each = Schedule.parse(args.phases).phases[0][1]
    limits = [
        ("inflight", f"{args.inflight} in flight", f"inflight={args.inflight}"),
        ("bucket", f"token bucket {args.rate:g}/s", f"rate={args.rate:g}"),
        ("changing", f"{rates}, {each:g} s each", f"rate={args.phases}"),
    ]
    refusals = [("ra", args.retry_after, f"429 + Retry-After: {args.retry_after}"),
                ("nora", "none", "429 only")]
    scenarios = [Scenario("nolimit", f"no limit, {args.latency * 1000:g} ms", "none", "none",
                          sizes["nolimit"])]
    for kind, what, limit in limits:
        for suffix, retry_after, how in refusals:
            scenarios.append(Scenario(f"{kind}-{suffix}", f"{what}, {how}", limit, retry_after,
                                      sizes[kind]))
    return {s.name: s for s in scenarios}


# -- the clients, each in its own child process -----------------------------------------


def tagged(cid: uuid.UUID, tag: int) -> uuid.UUID:
    """Put ``tag`` in the first hex digit, so the server can tell fairness processes apart."""
    return uuid.UUID(int=(cid.int & ~(0xF << 124)) | (tag << 124))


def prepare(client: str, n: int, seed: int, tag: int) -> list[Any]:
    specs = [(tagged(cid, tag), spec) for cid, spec in iter_specs(n, seed)]
    if client.startswith("lib"):
        return [to_update(cid, spec) for cid, spec in specs]
    return [(PATH_PREFIX + str(cid), json_ready(spec)) for cid, spec in specs]


async def push_lib(base: str, updates: list[Any], client_name: str) -> dict[str, Any]:
    """The library as a user writes it."""
    from luigis_async import BatchUpdater, LuigisBoxClient

    url, key = base, PRIVATE_KEY
    if client_name == "lib":  # the defaults: what issue 16's targets are about
        async with LuigisBoxClient(TRACKER, key, base_url=url) as client:
            report = await BatchUpdater(client).run(updates)
    elif client_name == "lib-c64":  # as in the table: a pool as large as the batch
        async with LuigisBoxClient(TRACKER, key, base_url=url, max_connections=64) as client:
            report = await BatchUpdater(client, concurrency=64).run(updates)
    else:  # lib-c64-pool16: a concurrency above the default pool of 16
        async with LuigisBoxClient(TRACKER, key, base_url=url) as client:
            report = await BatchUpdater(client, concurrency=64).run(updates)
    errors = Counter(type(r.error).__name__ for r in report.failed)
    return {
        "succeeded": report.succeeded,
        "failed": len(report.failed),
        "not_attempted": len(report.not_attempted),
        "errors": dict(errors),
        "stop_reason": getattr(report, "stop_reason", None),
    }


async def push_told(base: str, jobs: list[tuple[str, dict[str, Any]]], window: int
                    ) -> dict[str, Any]:
    """What the server can deliver to a client: the in-flight limit is told, so exactly
    that many PUTs are in flight from the first instant, and a refused one goes to the back
    of the queue at once (no wait holds a place). The library's goodput is also given as
    a share of this one's."""
    import aiohttp

    key = PRIVATE_KEY.encode()
    queue: deque[tuple[str, bytes]] = deque(
        (path, json.dumps(body, separators=(",", ":")).encode()) for path, body in jobs)
    statuses: Counter[str] = Counter()
    connector = aiohttp.TCPConnector(limit=window)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def place() -> None:
            # One place: sends until the queue is empty (a refused item is put back, so
            # the place that took it last sends it again if nobody else does).
            while queue:
                path, data = queue.popleft()
                try:
                    async with session.put(base + path, data=data,
                                           headers=sign(path, key)) as response:
                        await response.read()
                        status: int | None = response.status
                except (aiohttp.ClientError, TimeoutError):
                    status = None
                statuses[str(status)] += 1
                if status is None or status == 429 or status >= 500:
                    queue.append((path, data))

        await asyncio.gather(*(place() for _ in range(window)))
    succeeded = statuses.get("204", 0) + statuses.get("200", 0)
    return {"succeeded": succeeded, "failed": len(jobs) - succeeded, "not_attempted": 0,
            "errors": {}, "statuses": dict(statuses)}


def sign(path: str, key: bytes) -> dict[str, str]:
    """Headers of one attempt: a fresh Date and its HMAC, as the API documents."""
    date = formatdate(usegmt=True)
    to_sign = f"PUT\n{CONTENT_TYPE}\n{date}\n{path}".encode()
    signature = base64.b64encode(hmac.new(key, to_sign, hashlib.sha256).digest()).decode()
    return {
        "Date": date,
        "Content-Type": CONTENT_TYPE,
        "Authorization": f"ApiAuth {TRACKER}:{signature}",
    }


def full_jitter(attempt: int) -> float:
    """Sleep before retry ``attempt`` (1-based): uniform 0 .. min(cap, initial * mult^(n-1))."""
    initial, multiplier, cap = BASELINE_BACKOFF
    return random.uniform(0, min(cap, initial * multiplier ** (attempt - 1)))


def retry_after_seconds(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


async def push_baseline(base: str, jobs: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """One session, a semaphore of 64 held through an item's retries, per-attempt
    signing, full-jitter backoff, Retry-After honoured per request, 10 attempts at most."""
    import aiohttp

    key = PRIVATE_KEY.encode()
    statuses: Counter[str] = Counter()
    semaphore = asyncio.Semaphore(BASELINE_CONCURRENCY)
    connector = aiohttp.TCPConnector(limit=BASELINE_CONCURRENCY)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def attempt(path: str, data: bytes) -> tuple[int | None, float | None]:
            try:
                async with session.put(base + path, data=data, headers=sign(path, key)) as r:
                    await r.read()
                    return r.status, retry_after_seconds(r.headers.get("Retry-After"))
            except (aiohttp.ClientError, TimeoutError):
                return None, None

        async def put(path: str, body: dict[str, Any]) -> bool:
            data = json.dumps(body, separators=(",", ":")).encode()
            async with semaphore:
                for n in range(1, BASELINE_MAX_ATTEMPTS + 1):
                    status, retry_after = await attempt(path, data)
                    statuses[str(status)] += 1
                    if status is not None and 200 <= status < 300:
                        return True
                    if status is not None and status not in BASELINE_RETRYABLE:
                        return False
                    if n < BASELINE_MAX_ATTEMPTS:
                        await asyncio.sleep(retry_after if retry_after is not None
                                            else full_jitter(n))
            return False

        ok = await asyncio.gather(*(put(path, body) for path, body in jobs))
    return {
        "succeeded": sum(ok),
        "failed": len(ok) - sum(ok),
        "not_attempted": 0,
        "errors": {"gave up": len(ok) - sum(ok)} if not all(ok) else {},
        "statuses": dict(statuses),
    }


def worker_main(args: argparse.Namespace) -> None:
    """A child: build the items, say READY, wait for ``GO <port>``, push, print RESULT."""
    pin_self(args.cpu)
    if args.library_path:  # ahead of the working tree that bench_bulk put first
        sys.path.insert(0, args.library_path)
    items = prepare(args.worker, args.n, args.seed, args.tag)
    print("READY", flush=True)
    go = sys.stdin.readline().split()
    if len(go) != 2 or go[0] != "GO":
        raise SystemExit(f"expected 'GO <port>', got {go!r}")
    base = f"http://127.0.0.1:{go[1]}"
    is_lib = args.worker.startswith("lib")
    cpu0, start_wall, t0 = time.process_time(), time.time(), time.perf_counter()
    result = asyncio.run(push_lib(base, items, args.worker) if is_lib
                         else push_told(base, items, args.window) if args.worker == "told"
                         else push_baseline(base, items))
    result.update(
        client=args.worker, n=args.n, tag=args.tag,
        wall_s=time.perf_counter() - t0, cpu_s=time.process_time() - cpu0,
        start_wall=start_wall, end_wall=time.time(), timed_out=False,
        library=sys.modules["luigis_async"].__file__ if is_lib else None,
    )
    print("RESULT " + json.dumps(result), flush=True)


# -- running them (the parent) ----------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """One measured run: a fresh server and its client children, released together."""

    name: str  # the scenario's, or "fairness"
    server: tuple[str, ...]
    clients: tuple[str, ...]
    n: int
    library: str | None = None  # a directory holding luigis_async, or the installed one
    window: int = 0  # what the "told" client is told: the server's in-flight limit


def server_command(args: argparse.Namespace, limit: str, retry_after: str, cpu: int | None,
                   *, tags: bool = False) -> list[str]:
    command = [
        sys.executable, str(SERVER), "--exit-on-stdin-eof", "--limit", limit,
        "--retry-after", retry_after, "--latency", str(args.latency),
        "--burst", str(args.burst), "--bucket", str(args.bucket),
    ]
    if args.reject_latency is not None:
        command += ["--reject-latency", str(args.reject_latency)]
    if cpu is not None:
        command += ["--cpu", str(cpu)]
    return command + (["--tags"] if tags else [])


def client_command(job: Job, client: str, tag: int, cpu: int | None) -> list[str]:
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", client,
               "--n", str(job.n), "--seed", str(SEED), "--tag", str(tag)]
    if job.library:
        command += ["--library-path", job.library]
    if client == "told":
        command += ["--window", str(job.window)]
    return command + (["--cpu", str(cpu)] if cpu is not None else [])


def expect_line(proc: subprocess.Popen[str], word: str) -> list[str]:
    assert proc.stdout is not None
    line = proc.stdout.readline().split()
    if not line or line[0] != word:
        raise RuntimeError(f"child did not say {word} (said {line!r}, exit {proc.poll()})")
    return line


def fetch_stats(port: int) -> dict[str, Any]:
    """The server's counters; no proxy (an environment proxy must not reroute 127.0.0.1)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"http://127.0.0.1:{port}/_stats", timeout=30) as response:
        stats: dict[str, Any] = json.load(response)
        return stats


def collect(proc: subprocess.Popen[str], deadline: float, client: str, n: int,
            tag: int, started: float) -> dict[str, Any]:
    """The child's RESULT; else a record of how it ended (killed at the deadline, or
    crashed: its traceback is on stderr), so one broken run does not end the benchmark."""
    timed_out = False
    try:
        out, _ = proc.communicate(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        timed_out = True
    for line in out.splitlines():
        if line.startswith("RESULT "):
            result: dict[str, Any] = json.loads(line[len("RESULT "):])
            return result
    crashed = None if timed_out else proc.returncode
    if crashed is not None:
        print(f"  !! {client} client exited {crashed} without a result (see stderr)",
              flush=True)
    return {"client": client, "n": n, "tag": tag, "timed_out": timed_out, "crashed": crashed,
            "wall_s": time.monotonic() - started, "end_wall": time.time(),
            "succeeded": None, "failed": None, "not_attempted": None, "errors": {}}


def run_job(job: Job, cpu: int | None, timeout: float
            ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Start the server and the clients together (the clients build their items
    meanwhile), release the clients at once, then collect their results and the server's
    counts; every process ends with the job."""
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(spawned(list(job.server)))
        children = [stack.enter_context(spawned(client_command(job, client, tag, cpu)))
                    for tag, client in enumerate(job.clients)]
        port = int(expect_line(server, "PORT")[1])
        for child in children:
            expect_line(child, "READY")
        started = time.monotonic()
        for child in children:
            assert child.stdin is not None
            child.stdin.write(f"GO {port}\n")
            child.stdin.flush()
        results = [collect(child, started + timeout, client, job.n, tag, started)
                   for tag, (child, client) in enumerate(zip(children, job.clients,
                                                             strict=True))]
        return results, fetch_stats(port)


def run_jobs(jobs: list[Job], cpu: int | None, timeout: float, parallel: int
             ) -> Iterator[tuple[Job, list[dict[str, Any]], dict[str, Any]]]:
    """Each job, one after another; or ``parallel`` at once (for --quick: faster, but the
    runs then share the cores and disturb each other)."""
    if parallel <= 1:
        for job in jobs:
            yield job, *run_job(job, cpu, timeout)
        return
    pool = ThreadPoolExecutor(parallel)
    try:
        futures = {pool.submit(run_job, job, cpu, timeout): job for job in jobs}
        for future in as_completed(futures):
            yield futures[future], *future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# -- what the numbers mean (pure) --------------------------------------------------------


def recovery_times(series: list[int], bucket: float, schedule: Schedule,
                   window: float) -> list[float | None]:
    """After each change of rate: from when ``window`` seconds of applied updates first
    reach 90 % of the new rate, in seconds after the change; None if never in that phase."""
    width = max(1, round(window / bucket))
    times: list[float | None] = []
    for (rate, seconds), start in list(zip(schedule.phases, schedule.starts(), strict=True))[1:]:
        first = round(start / bucket)
        end = len(series) if math.isinf(seconds) else round((start + seconds) / bucket)
        need = RECOVERY_SHARE * rate * width * bucket
        found = next((k for k in range(first, end - width + 1)
                      if sum(series[k:k + width]) >= need), None)
        times.append(None if found is None else found * bucket - start)
    return times


def summarize(scenario: Scenario, client: dict[str, Any], server: dict[str, Any],
              args: argparse.Namespace) -> dict[str, Any]:
    """One run's figures; the server's counts are the truth, the client's a cross-check."""
    wall = client["wall_s"]
    applied = server["applied"]
    capacity = scenario.capacity(args.latency)
    limit = LimitSpec.parse(scenario.limit)
    admissible = capacity.integral(0.0, wall) if capacity else None
    changes = capacity is not None and len(capacity.phases) > 1
    return {
        "applied": applied,
        "goodput": applied / wall,
        "capacity": admissible / wall if admissible else None,
        "pct_capacity": 100 * applied / admissible if admissible else None,
        "refused": server["refused"],
        "refused_per_applied": server["refused"] / applied if applied else None,
        "not_applied": scenario.items - server["distinct_applied"],
        "wall_s": wall,
        "recovery_s": recovery_times(server["applied_series"], server["bucket_s"], capacity,
                                     args.recovery_window) if changes and capacity else None,
        "server_cpu_pct": 100 * server["cpu_s"] / server["active_s"]
        if server["active_s"] else None,
        "client_cpu_pct": 100 * client["cpu_s"] / wall if "cpu_s" in client else None,
        "peak_in_flight": server["max_open"],
        # An in-flight limit's places busy over the run: what it admitted, counting the time
        # the server itself spends per request (beyond its sleep), which the nominal
        # capacity (N / latency) does not.
        "slots_busy_pct": 100 * server["held_s"] / (limit.inflight * wall)
        if limit.kind == "inflight" and "held_s" in server else None,
        "client_says_applied": client["succeeded"],
        "errors": client.get("errors", {}),
        "stop_reason": client.get("stop_reason"),
        "timed_out": client["timed_out"],
        "crashed": client.get("crashed"),
    }


def median_summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians of every number over rounds (the first run's other fields)."""
    merged = dict(runs[0])
    for key, value in runs[0].items():
        values = [r[key] for r in runs]
        if isinstance(value, int | float) and not isinstance(value, bool) \
                and all(isinstance(v, int | float) for v in values):
            merged[key] = statistics.median(values)
        elif key == "recovery_s" and value is not None:
            merged[key] = [None if any(v is None for v in column) else statistics.median(column)
                           for column in zip(*values, strict=True)]
    merged["rounds"] = len(runs)
    return merged


def fairness_summary(results: list[dict[str, Any]], server: dict[str, Any], rate: float,
                     items: int) -> dict[str, Any]:
    """Shares over the window in which every process was still pushing, and the total."""
    bucket = server["bucket_s"]
    origin = server["origin_wall"] or min(r["end_wall"] for r in results)  # None: no request
    common = max(0, int((min(r["end_wall"] for r in results) - origin) / bucket))
    window = common * bucket
    counts = [sum(server["tag_series"].get(format(r["tag"], "x"), [])[:common]) for r in results]
    total = sum(counts)
    fair = total / len(results)
    whole = max(r["end_wall"] for r in results) - origin
    return {
        "processes": len(results),
        "rate": rate,
        "window_s": window,
        "goodput": total / window if window else None,
        "pct_capacity": 100 * total / (rate * window) if window else None,
        "share_of_fair_pct": [100 * c / fair if fair else None for c in counts],
        "whole_run_s": whole,
        "whole_run_goodput": server["applied"] / whole if whole else None,
        "refused_per_applied": server["refused"] / server["applied"] if server["applied"]
        else None,
        "not_applied": items * len(results) - server["distinct_applied"],
        "walls_s": [r["wall_s"] for r in results],
        "server_cpu_pct": 100 * server["cpu_s"] / server["active_s"]
        if server["active_s"] else None,
    }


# -- output -----------------------------------------------------------------------------


def fmt(value: float | None, spec: str = ",.0f", suffix: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{suffix}"


def fmt_recovery(times: list[float | None] | None) -> str:
    if times is None:
        return "-"
    return ", ".join("never" if t is None else f"{t:.1f}" for t in times)


def markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def results_table(scenarios: dict[str, Scenario],
                  summaries: dict[str, dict[str, dict[str, Any]]]) -> str:
    header = ["scenario", "client", "capacity/s", "applied/s", "% of capacity",
              "% of told the limit", "429s per applied", "not applied", "wall s",
              "back to 90 % after changes, s", "peak in flight", "places busy", "server CPU %"]
    rows = []
    for name, by_client in summaries.items():
        for client, s in by_client.items():
            late = " (timed out)" if s["timed_out"] else \
                f" (client crashed, exit {s['crashed']})" if s.get("crashed") is not None else ""
            rows.append([
                scenarios[name].title, CLIENTS[client], fmt(s["capacity"]), fmt(s["goodput"]),
                fmt(s["pct_capacity"], ".0f", " %"), fmt(s.get("pct_of_told"), ".0f", " %"),
                fmt(s["refused_per_applied"], ".2f"),
                f"{s['not_applied']:,.0f} of {scenarios[name].items:,}{late}",
                fmt(s["wall_s"], ".1f"), fmt_recovery(s["recovery_s"]),
                fmt(s["peak_in_flight"]), fmt(s.get("slots_busy_pct"), ".0f", " %"),
                fmt(s["server_cpu_pct"], ".0f"),
            ])
    return markdown(header, rows)


def goodput_table(scenarios: dict[str, Scenario],
                  summaries: dict[str, dict[str, dict[str, Any]]], clients: Sequence[str]) -> str:
    """The issue's layout: one row per scenario, applied/s (% of capacity) per client."""
    rows = []
    for name, by_client in summaries.items():
        cells = []
        for client in clients:
            s = by_client.get(client)
            pct = "" if s is None or s["pct_capacity"] is None else f" ({s['pct_capacity']:.0f} %)"
            cells.append("-" if s is None else f"{s['goodput']:,.0f}/s{pct}")
        rows.append([scenarios[name].title, *cells])
    return markdown(["server", *(CLIENTS[c] for c in clients)], rows)


def fairness_table(f: dict[str, Any], client: str) -> str:
    shares = ", ".join(fmt(s, ".0f", " %") for s in f["share_of_fair_pct"])
    rows = [[
        f"{f['processes']} x {CLIENTS[client]}, token bucket {f['rate']:g}/s",
        fmt(f["goodput"]), fmt(f["pct_capacity"], ".0f", " %"), shares,
        fmt(f["window_s"], ".1f"), fmt(f["refused_per_applied"], ".2f"),
        f"{f['not_applied']:,}", ", ".join(f"{w:.1f}" for w in f["walls_s"]),
    ]]
    return markdown(["fairness", "total applied/s", "% of capacity",
                     "each process, % of a fair third", "window s (all pushing)",
                     "429s per applied", "not applied", "walls s"], rows)


def compact_json(document: Any) -> str:
    """Indented JSON, but each list of numbers (a time series) on one line."""
    text = json.dumps(document, indent=1)
    return re.sub(r'\[\s+([^\[\]{}"]*?)\s+\]', lambda m: f"[{' '.join(m.group(1).split())}]",
                  text)


def per_second(series: list[int], bucket: float) -> list[int]:
    width = max(1, round(1 / bucket))
    return [sum(series[i:i + width]) for i in range(0, len(series), width)]


def plot(path: Path, panels: list[tuple[Scenario, dict[str, dict[str, Any]]]],
         clients: Sequence[str], args: argparse.Namespace, state: str) -> None:
    """Applied updates per second of each client, over the server's capacity."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(panels), 1, figsize=(10, 3.8 * len(panels)), squeeze=False)
    for ax, (scenario, servers) in zip(axes[:, 0], panels, strict=True):
        longest = 0
        for client in (c for c in clients if c in servers):
            counts = per_second(servers[client]["applied_series"], servers[client]["bucket_s"])
            longest = max(longest, len(counts))
            ax.step(range(len(counts) + 1), [*counts, counts[-1] if counts else 0],
                    where="post", label=CLIENTS[client], linewidth=1.6)
        capacity = scenario.capacity(args.latency)
        if capacity is not None:
            starts = [t for t in capacity.starts() if t < longest]
            rates = [capacity.rate_at(t) for t in starts]
            ax.step([*starts, longest], [*rates, rates[-1]], "k--", where="post",
                    linewidth=1, label="server capacity")
        ax.set_title(scenario.title, fontsize=10)
        ax.set_xlabel("seconds since the first request")
        ax.set_ylabel("applied updates per second")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(loc="upper right", fontsize=8)
    fig.suptitle(f"Goodput against a changing capacity ({state})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# -- the orchestration ---------------------------------------------------------------------


@contextlib.contextmanager
def library_at(rev: str | None) -> Iterator[tuple[str | None, str]]:
    """The installed luigis_async, or the one committed at ``rev``, exported to a temporary
    directory: a before/after comparison needs no checkout of the working tree."""
    if rev is None:
        yield None, library_state()
        return
    git = ["git", "-C", str(HERE.parent)]
    commit = subprocess.run([*git, "rev-parse", "--short", rev], capture_output=True,
                            text=True, check=True).stdout.strip()
    archive = subprocess.run([*git, "archive", commit, "luigis_async"], capture_output=True,
                             check=True).stdout
    with tempfile.TemporaryDirectory(prefix="bench-throttled-lib-") as tmp:
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(tmp, filter="data")
        yield tmp, f"luigis_async at {commit} (--library-rev {rev}, exported from git)"


def print_header(args: argparse.Namespace, pinning: str, state: str) -> None:
    reject = args.latency if args.reject_latency is None else args.reject_latency
    print(f"machine: {os.cpu_count()} cores ({len(os.sched_getaffinity(0))} usable), "
          f"{platform.machine()}, python {platform.python_version()}, "
          f"aiohttp {version('aiohttp')}")
    print(f"library: {state}")
    print(f"pinning: {pinning}")
    print(f"server: 204 after {args.latency * 1000:g} ms, 429 after {reject * 1000:g} ms; "
          f"a token bucket holds {args.burst:g} s of its rate; a fresh server and client "
          "process per run")
    if args.quick:
        print("QUICK mode: tiny runs to check the instrument works; the numbers mean nothing")
    if args.parallel > 1:
        print(f"parallel: {args.parallel} runs at once, sharing the cores")
    print("note: wall-clock numbers on a shared machine are noisy; the server's own CPU % is "
          "in the table (well under 100 means it is not the bottleneck)\n", flush=True)


def plan(args: argparse.Namespace, scenarios: dict[str, Scenario], cpu: int | None,
         library: str | None) -> list[Job]:
    """Every (scenario, client) pair for each round, clients alternating; then fairness."""
    jobs = []
    for name, scenario in scenarios.items():
        server = tuple(server_command(args, scenario.limit, scenario.retry_after, cpu))
        limit = LimitSpec.parse(scenario.limit)
        clients = [c for c in args.clients if c != "told" or limit.kind == "inflight"]
        for _ in range(args.rounds):
            jobs += [Job(name, server, (client,), scenario.items, library,
                         args.told_window or limit.inflight)
                     for client in clients]
    if "fairness" in args.scenarios:
        server = tuple(server_command(args, f"rate={args.fair_rate:g}", args.retry_after, cpu,
                                      tags=True))
        clients = (args.fair_client,) * args.fair_processes
        jobs.append(Job("fairness", server, clients, args.fair_items, library))
    return jobs


def run_all(args: argparse.Namespace, scenarios: dict[str, Scenario],
            cores: tuple[int | None, int | None], library: str | None
            ) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Run the plan; every run's raw data and figures, and the medians per pair."""
    server_cpu, client_cpu = cores
    measured: dict[str, Any] = {
        name: {"scenario": asdict(s), "runs": {c: [] for c in args.clients}}
        for name, s in scenarios.items()
    }
    fairness = None
    jobs = plan(args, scenarios, server_cpu, library)
    for job, results, stats in run_jobs(jobs, client_cpu, args.run_timeout, args.parallel):
        if job.name == "fairness":
            summary = fairness_summary(results, stats, args.fair_rate, args.fair_items)
            fairness = {"clients": results, "server": stats, "summary": summary}
            shares = ", ".join(fmt(s, ".0f", " %") for s in summary["share_of_fair_pct"])
            print(f"  fairness: {fmt(summary['pct_capacity'], '.0f')} % of capacity, "
                  f"each process {shares} of a third", flush=True)
            continue
        (result,) = results
        summary = summarize(scenarios[job.name], result, stats, args)
        runs = measured[job.name]["runs"][result["client"]]
        runs.append({"client": result, "server": stats, "summary": summary})
        print(f"  {job.name} {result['client']} (round {len(runs)}): "
              f"{summary['goodput']:,.0f} applied/s, {summary['not_applied']} not applied, "
              f"{summary['wall_s']:.1f} s", flush=True)
    for m in measured.values():
        m["runs"] = {c: rs for c, rs in m["runs"].items() if rs}
        m["summary"] = {c: median_summary([r["summary"] for r in rs])
                        for c, rs in m["runs"].items()}
        told = m["summary"].get("told")
        for s in m["summary"].values():
            s["pct_of_told"] = 100 * s["goodput"] / told["goodput"] if told else None
    return measured, fairness


def outputs(args: argparse.Namespace) -> tuple[Path, Path]:
    """Where the JSON and the plot go: benchmarks/ for a full run, a temp dir for --quick."""
    default = Path(tempfile.gettempdir()) / "bench_throttled_quick" if args.quick else HERE
    out_dir = Path(args.out_dir) if args.out_dir else default
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = "throttled-quick" if args.quick else "throttled"
    return (Path(args.json) if args.json else out_dir / f"{stem}.json",
            Path(args.plot) if args.plot else out_dir / f"{stem}.png")


def report(args: argparse.Namespace, scenarios: dict[str, Scenario], measured: dict[str, Any],
           fairness: dict[str, Any] | None, state: str) -> None:
    summaries = {name: m["summary"] for name, m in measured.items()}
    json_path, png_path = outputs(args)
    if summaries:
        rounds = f"medians of {args.rounds} rounds" if args.rounds > 1 else "one round"
        print(f"\n## Results ({rounds}; {state})\n")
        print(results_table(scenarios, summaries))
        print("\n" + goodput_table(scenarios, summaries, args.clients))
    if fairness is not None:
        print("\n" + fairness_table(fairness["summary"], args.fair_client))
    panels = [(scenarios[name], {c: runs[0]["server"] for c, runs in m["runs"].items()})
              for name, m in measured.items() if name.startswith("changing")]
    if panels:
        plot(png_path, panels, args.plot_clients, args, state)
        print(f"\nwrote {png_path}")
    meta = {k: v for k, v in vars(args).items() if k not in ("worker",)}
    document = {"library": state, "args": meta, "machine": platform.platform(),
                "scenarios": measured, "fairness": fairness}
    json_path.write_text(compact_json(document) + "\n")
    print(f"wrote {json_path}")


def split(text: str) -> list[str]:
    return [x for x in text.split(",") if x]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    names = [*SCENARIO_NAMES, "fairness"]
    p.add_argument("--quick", action="store_true",
                   help="tiny runs of everything (well under a minute): a smoke test")
    p.add_argument("--scenarios", type=split, default=names,
                   help=f"comma-separated, from {','.join(names)} (default all)")
    p.add_argument("--clients", type=split, default=list(DEFAULT_CLIENTS),
                   help=f"comma-separated, from {','.join(CLIENTS)} "
                        f"(default {','.join(DEFAULT_CLIENTS)})")
    p.add_argument("--rounds", type=int, default=1, help="runs of each pair; medians (1)")
    p.add_argument("--items", type=int, default=0, help="updates per run, every scenario")
    p.add_argument("--latency", type=float, default=0.05, help="server latency, s (0.05)")
    p.add_argument("--reject-latency", type=float, default=None,
                   help="seconds before a 429 (default: the latency)")
    p.add_argument("--retry-after", default="1", help="Retry-After in the -ra scenarios (1)")
    p.add_argument("--inflight", type=int, default=32, help="in-flight limit (32)")
    p.add_argument("--rate", type=float, default=200, help="token bucket rate (200)")
    p.add_argument("--phases", default=None,
                   help="changing capacity, rate:seconds,... (300:10,100:10,300:10; "
                        "quick 300:1,100:1,300:1)")
    p.add_argument("--burst", type=float, default=0.1,
                   help="token bucket size in seconds of its rate (0.1)")
    p.add_argument("--bucket", type=float, default=0.1, help="time series resolution (0.1 s)")
    p.add_argument("--recovery-window", type=float, default=None,
                   help="seconds of goodput that must reach 90 %% (1; quick 0.3)")
    p.add_argument("--fair-rate", type=float, default=300, help="fairness limit (300/s)")
    p.add_argument("--fair-processes", type=int, default=3)
    p.add_argument("--fair-items", type=int, default=0,
                   help="updates per fairness process (3000; quick 200)")
    p.add_argument("--fair-client", choices=[c for c in CLIENTS if c != "told"],
                   default="lib")
    p.add_argument("--told-window", type=int, default=0,
                   help="in flight for the 'told' client (default: the in-flight limit)")
    p.add_argument("--plot-clients", type=split, default=["lib", "baseline"])
    p.add_argument("--run-timeout", type=float, default=300,
                   help="kill a client run after this many seconds (300)")
    p.add_argument("--out-dir", help="for the JSON and PNG (benchmarks/; quick: a temp dir)")
    p.add_argument("--json", help="results file (OUT_DIR/throttled.json)")
    p.add_argument("--plot", help="plot file (OUT_DIR/throttled.png)")
    p.add_argument("--no-pin", action="store_true", help="do not pin processes to cores")
    p.add_argument("--library-rev", help="measure luigis_async as committed at this git "
                                         "revision (default: the installed working tree)")
    p.add_argument("--parallel", type=int, default=0,
                   help="runs at once (1; quick 6): faster, but they disturb each other")
    # internal: a child process running one client
    p.add_argument("--worker", choices=list(CLIENTS), help=argparse.SUPPRESS)
    p.add_argument("--n", type=int, help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=SEED, help=argparse.SUPPRESS)
    p.add_argument("--tag", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--cpu", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--library-path", help=argparse.SUPPRESS)
    p.add_argument("--window", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    for given, known in ((args.scenarios, names), (args.clients, CLIENTS),
                         (args.plot_clients, CLIENTS)):
        if set(given) - set(known):
            p.error(f"unknown: {', '.join(sorted(set(given) - set(known)))}")
    args.phases = args.phases or ("300:1,100:1,300:1" if args.quick
                                  else "300:10,100:10,300:10")
    args.recovery_window = args.recovery_window or (0.3 if args.quick else 1.0)
    args.fair_items = args.fair_items or (200 if args.quick else 3000)
    args.parallel = args.parallel or (6 if args.quick else 1)
    return args


def main() -> None:
    args = parse_args()
    if args.worker:
        worker_main(args)
        return
    server_cpu, client_cpu, pinning = choose_cores(args)
    started = time.perf_counter()
    scenarios = {n: s for n, s in build_scenarios(args).items() if n in args.scenarios}
    with library_at(args.library_rev) as (library, state):
        print_header(args, pinning, state)
        measured, fairness = run_all(args, scenarios, (server_cpu, client_cpu), library)
    report(args, scenarios, measured, fairness, state)
    print(f"\ntotal benchmark time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()

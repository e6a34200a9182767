"""Bulk create benchmark (issue 13): 100,000 creates, bulk vs one create per request.

Run from the repository root: ``python benchmarks/bench_bulk_create.py`` (``--quick`` for a
smoke test; see benchmarks/README.md).

Against benchmarks/throttled_server.py with 50 ms latency that admits 5 requests in flight
(429 + ``Retry-After: 1`` beyond), a fresh client process pushes the same customizations
either through ``bulk_create`` (5,000 NDJSON lines per request, the library's defaults) or
one ``POST /scope`` each through ``BatchUpdater`` at its defaults with ``CreateRequest``
items. One create per request cannot beat 5 / 50 ms = 100 creates/s, so 100,000 would take
over 1,000 s: it runs a smaller count and the table extrapolates it linearly, labelled as
such. The server's counts (requests, 429s, customizations created and their distinct keys)
are the truth; the client's report is a cross-check. It prints a markdown table and writes
a JSON of every run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from collections import Counter
from importlib.metadata import version
from pathlib import Path
from typing import Any

from bench_bulk import (
    PRIVATE_KEY,
    SEED,
    TRACKER,
    choose_cores,
    iter_specs,
    pin_self,
    spawned,
    to_update,
)
from bench_throttled import (
    collect,
    compact_json,
    expect_line,
    fetch_stats,
    fmt,
    library_at,
    markdown,
    median_summary,
    server_command,
    split,
)
from throttled_server import BULK_LINE_LATENCY

HERE = Path(__file__).resolve().parent

CLIENTS = {
    "bulk": "bulk_create (defaults: 5,000 lines per request, 4 in flight)",
    "single": "BatchUpdater, one create per request (defaults)",
}
FULL = {"creates": 100_000, "single_creates": 10_000}
QUICK = {"creates": 10_000, "single_creates": 300}


# -- the client, in its own child process ------------------------------------------------


def build(n: int, seed: int) -> list[Any]:
    """bench_bulk's customizations (2-5 pins with dates, 1-3 tags), each with a target of its
    own, so the server's count of distinct natural keys shows a create applied twice."""
    return [to_update(cid, {**spec, "target_identity": f"/p/bench-{i}"}).customization
            for i, (cid, spec) in enumerate(iter_specs(n, seed))]


async def push(client_name: str, base: str, customizations: list[Any]) -> dict[str, Any]:
    """The library as a user writes it, at its defaults."""
    from luigis_async import BatchReport, BatchUpdater, CreateRequest, LuigisBoxClient, bulk_create

    report: BatchReport
    async with LuigisBoxClient(TRACKER, PRIVATE_KEY, base_url=base) as client:
        if client_name == "bulk":
            report = bulk = await bulk_create(client, customizations)
            extra = {"split_requests": bulk.split_requests, "lookups": bulk.lookups}
        else:
            report = await BatchUpdater(client).run(CreateRequest(c) for c in customizations)
            extra = {}
    return {
        "succeeded": report.succeeded,
        "failed": len(report.failed),
        "not_attempted": len(report.not_attempted),
        "errors": dict(Counter(type(r.error).__name__ for r in report.failed)),
        "requests_sent": report.requests_sent,
        "retries": report.retries,
        "stop_reason": report.stop_reason,
        **extra,
    }


def waited_for_a_core() -> float | None:
    """Seconds this process's main thread has been runnable but not running (from
    /proc/self/schedstat): what the other load on a shared machine cost it."""
    try:
        return int(Path("/proc/self/schedstat").read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return None


def worker_main(args: argparse.Namespace) -> None:
    """A child: build the items, say READY, wait for ``GO <port>``, push, print RESULT."""
    pin_self(args.cpu)
    if args.library_path:  # ahead of the working tree that bench_bulk put first
        sys.path.insert(0, args.library_path)
    t0 = time.perf_counter()
    customizations = build(args.n, SEED)
    prep = time.perf_counter() - t0
    print("READY", flush=True)
    go = sys.stdin.readline().split()
    if len(go) != 2 or go[0] != "GO":
        raise SystemExit(f"expected 'GO <port>', got {go!r}")
    cpu0, wait0, t0 = time.process_time(), waited_for_a_core(), time.perf_counter()
    result = asyncio.run(push(args.worker, f"http://127.0.0.1:{go[1]}", customizations))
    wait1 = waited_for_a_core()
    result.update(
        client=args.worker, n=args.n, prep_s=prep, timed_out=False,
        wall_s=time.perf_counter() - t0, cpu_s=time.process_time() - cpu0,
        waited_s=None if wait0 is None or wait1 is None else wait1 - wait0,
        library=sys.modules["luigis_async"].__file__,
    )
    print("RESULT " + json.dumps(result), flush=True)


# -- running it (the parent) ---------------------------------------------------------------


def run_one(args: argparse.Namespace, client: str, n: int, line_latency: float,
            cores: tuple[int | None, int | None], library: str | None
            ) -> tuple[dict[str, Any], dict[str, Any]]:
    """A fresh server and client process; release the client once its items are built."""
    server_cpu, client_cpu = cores
    server = [*server_command(args, f"inflight={args.inflight}", args.retry_after, server_cpu),
              "--bulk-line-latency", str(line_latency)]
    worker = [sys.executable, str(Path(__file__).resolve()), "--worker", client, "--n", str(n)]
    worker += ["--library-path", library] if library else []
    worker += ["--cpu", str(client_cpu)] if client_cpu is not None else []
    with spawned(server) as server_proc, spawned(worker) as child:
        port = int(expect_line(server_proc, "PORT")[1])
        expect_line(child, "READY")
        started = time.monotonic()
        assert child.stdin is not None
        child.stdin.write(f"GO {port}\n")
        child.stdin.flush()
        result = collect(child, started + args.run_timeout, client, n, 0, started)
        return result, fetch_stats(port)


def summarize(client: dict[str, Any], server: dict[str, Any], target: int) -> dict[str, Any]:
    """One run's figures, and for fewer creates than ``target`` the linear extrapolation."""
    n, wall = client["n"], client["wall_s"]
    scale = target / n
    return {
        "creates": n,
        "requests": server["requests"],
        "refused": server["refused"],
        "too_large": server["too_large"],
        "created": server["created"],
        "distinct_created": server["distinct_created"],
        "client_says_created": client["succeeded"],
        "client_requests_sent": client.get("requests_sent"),
        "wall_s": wall,
        "extrapolated": scale != 1,
        "wall_s_at_target": wall * scale,
        "requests_at_target": server["requests"] * scale,
        "peak_in_flight": server["max_open"],
        "server_cpu_pct": 100 * server["cpu_s"] / server["active_s"]
        if server["active_s"] else None,
        "client_cpu_s": client.get("cpu_s"),
        "client_waited_s": client.get("waited_s"),
        "prep_s": client.get("prep_s"),
        "timed_out": client["timed_out"],
        "crashed": client.get("crashed"),
    }


def plan(args: argparse.Namespace) -> list[tuple[str, str, int, float]]:
    """(row, client, creates, per-line cost) per run, clients alternating over rounds."""
    rows = []
    for client in args.clients:
        if client == "bulk":
            rows += [(f"bulk, {cost * 1e6:g} us/line", "bulk", args.creates, cost)
                     for cost in args.line_costs]
        else:
            rows.append(("single", "single", args.single_creates, args.line_costs[0]))
    rounds: int = args.rounds
    return rows * rounds


def label(row: str, line_cost: float) -> str:
    if row == "single":
        return CLIENTS["single"]
    return f"{CLIENTS['bulk']}, server {line_cost * 1e6:g} us per line"


def table(summaries: dict[str, dict[str, Any]], costs: dict[str, float], target: int) -> str:
    header = ["client", "creates", "requests", "429s", "created (server)", "wall s",
              "creates/s", f"wall s for {target:,}", "peak in flight", "server CPU %",
              "client CPU s", "client waited for a core, s"]
    rows = []
    for row, s in summaries.items():
        broken = " (timed out)" if s["timed_out"] else \
            f" (client crashed, exit {s['crashed']})" if s.get("crashed") is not None else ""
        duplicates = s["created"] - s["distinct_created"]
        created = f"{s['created']:,}" + (f" ({duplicates:,} twice)" if duplicates else "")
        at_target = (f"extrapolated to {target:,}: {s['wall_s_at_target']:,.0f} s "
                     f"(~{s['requests_at_target']:,.0f} requests)" if s["extrapolated"]
                     else f"{s['wall_s']:,.1f} (measured)")
        rows.append([
            label(row, costs[row]) + broken, f"{s['creates']:,}", f"{s['requests']:,.0f}",
            f"{s['refused']:,.0f}", created, f"{s['wall_s']:,.1f}",
            fmt(s["created"] / s["wall_s"] if s["wall_s"] else None), at_target,
            fmt(s["peak_in_flight"]), fmt(s["server_cpu_pct"], ".0f"),
            fmt(s["client_cpu_s"], ".1f"), fmt(s["client_waited_s"], ".1f"),
        ])
    return markdown(header, rows)


def comparison(summaries: dict[str, dict[str, Any]]) -> str | None:
    """How many times faster and fewer requests bulk is, at the target count."""
    single = summaries.get("single")
    if single is None:
        return None
    lines = []
    for row, s in summaries.items():
        if row != "single":
            lines.append(
                f"{row}: {single['wall_s_at_target'] / s['wall_s_at_target']:,.0f} x faster, "
                f"{single['requests_at_target'] / s['requests']:,.0f} x fewer requests "
                f"than one create per request")
    return "\n".join(lines)


def print_header(args: argparse.Namespace, pinning: str, state: str) -> None:
    print(f"machine: {os.cpu_count()} cores ({len(os.sched_getaffinity(0))} usable), "
          f"{platform.machine()}, python {platform.python_version()}, "
          f"aiohttp {version('aiohttp')}")
    print(f"library: {state}")
    print(f"pinning: {pinning}")
    print(f"server: {args.latency * 1000:g} ms per request, at most {args.inflight} in "
          f"flight, then 429 + Retry-After: {args.retry_after}; a bulk request takes "
          f"{args.latency * 1000:g} ms + "
          + " or ".join(f"{c * 1e6:g} us" for c in args.line_costs) + " per line")
    if args.quick:
        print("QUICK mode: small runs to check the instrument works; the numbers mean nothing")
    print("note: wall-clock numbers on a shared machine are noisy\n", flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small runs: a smoke test")
    p.add_argument("--creates", type=int, default=0,
                   help=f"creates to push, bulk ({FULL['creates']:,}; quick {QUICK['creates']:,})")
    p.add_argument("--single-creates", type=int, default=0,
                   help="creates one per request, extrapolated to --creates "
                        f"({FULL['single_creates']:,}; quick {QUICK['single_creates']:,})")
    p.add_argument("--clients", type=split, default=list(CLIENTS),
                   help=f"comma-separated, from {','.join(CLIENTS)} (default both)")
    p.add_argument("--line-costs", type=lambda t: [float(x) for x in split(t)],
                   default=[BULK_LINE_LATENCY, 10 * BULK_LINE_LATENCY],
                   help="the server's seconds per bulk line, one bulk row each "
                        f"({BULK_LINE_LATENCY:g},{10 * BULK_LINE_LATENCY:g})")
    p.add_argument("--rounds", type=int, default=1, help="runs of each row; medians (1)")
    p.add_argument("--latency", type=float, default=0.05, help="server latency, s (0.05)")
    p.add_argument("--reject-latency", type=float, default=None,
                   help="seconds before a 429 (default: the latency)")
    p.add_argument("--inflight", type=int, default=5, help="in-flight limit (5)")
    p.add_argument("--retry-after", default="1", help="Retry-After on a 429, or none (1)")
    p.add_argument("--run-timeout", type=float, default=1800,
                   help="kill a client run after this many seconds (1800)")
    p.add_argument("--json", help="results file (benchmarks/bulk_create.json; quick: temp dir)")
    p.add_argument("--no-pin", action="store_true", help="do not pin processes to cores")
    p.add_argument("--library-rev", help="measure luigis_async as committed at this git "
                                         "revision (default: the installed working tree)")
    # internal: a child process running one client
    p.add_argument("--worker", choices=list(CLIENTS), help=argparse.SUPPRESS)
    p.add_argument("--n", type=int, help=argparse.SUPPRESS)
    p.add_argument("--cpu", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--library-path", help=argparse.SUPPRESS)
    # bench_throttled.server_command's token bucket and time series: unused by inflight=N
    p.set_defaults(burst=0.1, bucket=0.1)
    args = p.parse_args(argv)
    if set(args.clients) - set(CLIENTS):
        p.error(f"unknown clients: {', '.join(sorted(set(args.clients) - set(CLIENTS)))}")
    sizes = QUICK if args.quick else FULL
    args.creates = args.creates or sizes["creates"]
    args.single_creates = args.single_creates or sizes["single_creates"]
    return args


def main() -> None:
    args = parse_args()
    if args.worker:
        worker_main(args)
        return
    server_cpu, client_cpu, pinning = choose_cores(args)
    started = time.perf_counter()
    runs: dict[str, list[dict[str, Any]]] = {}
    costs: dict[str, float] = {}
    with library_at(args.library_rev) as (library, state):
        print_header(args, pinning, state)
        for row, client, n, cost in plan(args):
            result, stats = run_one(args, client, n, cost, (server_cpu, client_cpu), library)
            summary = summarize(result, stats, args.creates)
            runs.setdefault(row, []).append({"client": result, "server": stats,
                                             "summary": summary})
            costs[row] = cost
            print(f"  {row}: {summary['created']:,} created of {n:,}, "
                  f"{summary['requests']:,} requests, {summary['refused']:,} 429s, "
                  f"{summary['wall_s']:.1f} s", flush=True)
    summaries = {row: median_summary([r["summary"] for r in rs]) for row, rs in runs.items()}
    rounds = f"medians of {args.rounds} rounds" if args.rounds > 1 else "one round"
    print(f"\n## Results ({rounds}; {state})\n")
    print(table(summaries, costs, args.creates))
    if (ratios := comparison(summaries)) is not None:
        print("\n" + ratios)
    default = Path(tempfile.gettempdir()) / "bulk_create-quick.json" if args.quick \
        else HERE / "bulk_create.json"
    path = Path(args.json) if args.json else default
    meta = {k: v for k, v in vars(args).items() if k != "worker"}
    document = {"library": state, "args": meta, "machine": platform.platform(),
                "summaries": summaries, "runs": runs}
    path.write_text(compact_json(document) + "\n")
    print(f"wrote {path}")
    print(f"\ntotal benchmark time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()

"""Bulk PUT benchmark: this library's BatchUpdater against hand-written aiohttp and httpx.

Run from the repository root: ``python benchmarks/bench_bulk.py`` (see benchmarks/README.md).

A fast local server (benchmarks/fast_server.py, its own process, pinned to its own core)
answers ``204`` to everything, so only the client is measured. Each variant runs in a fresh
child process (pinned to another core), which builds its N requests before timing and then
measures only the push: CPU time of the process (``time.process_time``), wall time, peak RSS.
Variants alternate (A B C A B C ...) for ``--rounds`` rounds; the table shows medians.

Modes (combinable): the default comparison; ``--memory`` (1,000,000 streamed updates,
peak RSS at 100,000 and at the end); ``--profile`` (pyinstrument + cProfile reports of the
library's push, and a cProfile diff against raw aiohttp). With ``--memory`` or ``--profile``
the comparison runs only if ``--bench`` is given too.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import gc
import hashlib
import hmac
import json
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from email.utils import formatdate
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:  # `python benchmarks/bench_bulk.py` puts only benchmarks/ there
    sys.path.insert(0, str(ROOT))

TRACKER = "1234-5678"
PRIVATE_KEY = "bench-private-key-3f9a1c07d2e84b6a"
CONTENT_TYPE = "application/json; charset=utf-8"  # what the library sends and signs
PATH_PREFIX = f"/v1/recommender/pin/{TRACKER}/scope/"
SEED = 20250120
WARMUP_SEED = SEED + 1
VARIANTS = {
    "lib": "luigis_async BatchUpdater",
    "lib-stdlib": "luigis_async, stdlib json",
    "aiohttp": "raw aiohttp",
    "httpx": "httpx",
    "aiohttp-pool": "raw aiohttp, worker pool",
}
#: asyncio reads sockets with recv(256 KiB). Under glibc's default, *dynamic* mmap threshold
#: that buffer is, depending on the heap's layout at start-up, either carved from the heap or
#: mmap()ed, shrunk with mremap() and munmap()ed on every single response: three syscalls and
#: page faults per request, 15-20 us on this kind of VM. Which of the two a process gets is
#: luck (it flipped with PYTHONHASHSEED), so it would make the comparison bimodal. Fixing the
#: thresholds makes every variant take the heap path, so the code, not the luck, is measured.
MALLOC_TUNING = {"MALLOC_MMAP_THRESHOLD_": "1048576", "MALLOC_TRIM_THRESHOLD_": "268435456"}

MODELS = ("basket", "similar_items", "personalized", "trending_now")
TAGS = ("summer-sale", "homepage", "campaign-42", "b2b", "clearance", "new-arrivals", "vip")
BASE_TIME = datetime(2025, 1, 1, tzinfo=UTC)


# -- the requests: plain data shared by every variant ----------------------------------


def iter_specs(n: int, seed: int) -> Iterator[tuple[uuid.UUID, dict[str, Any]]]:
    """N deterministic customizations as plain data: 2-5 pins with dates, 1-3 tags."""
    rng = random.Random(seed)
    for _ in range(n):
        cid = uuid.UUID(int=rng.getrandbits(128), version=4)
        pins = []
        for position in range(1, rng.randint(2, 5) + 1):
            start = BASE_TIME + timedelta(hours=rng.randrange(24 * 180))
            pin: dict[str, Any] = {"position": position}
            if rng.random() < 0.2:
                pin["pin_type"] = "criteria"
                pin["pin_criteria"] = {"brand": rng.choice(("Acme", "Globex", "Initech"))}
            else:
                pin["pin_type"] = "item"
                pin["pin_identity"] = f"/p/{rng.randrange(10**7)}"
            pin["active_from"] = start
            pin["active_to"] = start + timedelta(days=rng.randint(1, 60))
            pins.append(pin)
        spec = {
            "model": rng.choice(MODELS),
            "target_type": "item",
            "target_identity": f"/p/{rng.randrange(10**7)}",
            "pin_definitions": pins,
            "tags": rng.sample(TAGS, rng.randint(1, 3)),
        }
        yield cid, spec


def _iso(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def json_ready(spec: dict[str, Any]) -> dict[str, Any]:
    """The request body as a hand-writer prepares it: a dict of JSON values, dates as text."""
    pins = []
    for pin in spec["pin_definitions"]:
        out = dict(pin)
        out["active_from"] = _iso(pin["active_from"])
        out["active_to"] = _iso(pin["active_to"])
        pins.append(out)
    return {
        "model": spec["model"],
        "target_type": spec["target_type"],
        "pin_definitions": pins,
        "target_identity": spec["target_identity"],
        "tags": list(spec["tags"]),
    }


def to_update(cid: uuid.UUID, spec: dict[str, Any]) -> Any:
    """The same request as the library's validated model."""
    from luigis_async import Customization, CustomizationUpdate, PinDefinition

    pins = [PinDefinition(**pin) for pin in spec["pin_definitions"]]
    customization = Customization(
        spec["model"], spec["target_type"], target_identity=spec["target_identity"],
        pin_definitions=pins, tags=spec["tags"],
    )
    return CustomizationUpdate(cid, customization)


def prepare(variant: str, n: int, seed: int) -> list[Any]:
    if variant.startswith("lib"):
        return [to_update(cid, spec) for cid, spec in iter_specs(n, seed)]
    return [(PATH_PREFIX + str(cid), json_ready(spec)) for cid, spec in iter_specs(n, seed)]


def check_bodies_equivalent(n: int = 2000) -> bool:
    """The library's bodies and the hand-written ones: the same JSON, the same length.

    (Key order may differ: the library's converter orders keys its own way.)
    """
    from luigis_async.convert import dumps

    for cid, spec in iter_specs(n, SEED):
        ours = dumps(to_update(cid, spec).customization)
        theirs = json.dumps(json_ready(spec), separators=(",", ":")).encode()
        if len(ours) != len(theirs) or json.loads(ours) != json.loads(theirs):
            return False
    return True


# -- the three clients -----------------------------------------------------------------

Push = Callable[[list[Any]], Any]


@contextlib.asynccontextmanager
async def open_lib(base: str, concurrency: int) -> AsyncIterator[Push]:
    """The library with its defaults (retry, validation, adaptive pacing)."""
    from luigis_async import BatchUpdater, LuigisBoxClient

    async with LuigisBoxClient(
        TRACKER, PRIVATE_KEY, base_url=base, max_connections=concurrency
    ) as client:

        async def push(items: list[Any]) -> int:
            report = await BatchUpdater(client, concurrency=concurrency).run(items)
            return report.succeeded

        yield push


@contextlib.asynccontextmanager
async def open_aiohttp(base: str, concurrency: int) -> AsyncIterator[Push]:
    """What a competent user writes with aiohttp, hmac and json."""
    import aiohttp

    key = PRIVATE_KEY.encode()
    auth_prefix = f"ApiAuth {TRACKER}:"
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        semaphore = asyncio.Semaphore(concurrency)

        async def put(path: str, body: dict[str, Any]) -> int:
            async with semaphore:
                date = formatdate(usegmt=True)
                to_sign = f"PUT\n{CONTENT_TYPE}\n{date}\n{path}".encode()
                signature = base64.b64encode(hmac.new(key, to_sign, hashlib.sha256).digest())
                headers = {
                    "Date": date,
                    "Content-Type": CONTENT_TYPE,
                    "Authorization": auth_prefix + signature.decode(),
                }
                data = json.dumps(body, separators=(",", ":")).encode()
                async with session.put(base + path, data=data, headers=headers) as response:
                    await response.read()
                    return response.status

        async def push(jobs: list[Any]) -> int:
            statuses = await asyncio.gather(*(put(path, body) for path, body in jobs))
            return sum(1 for status in statuses if 200 <= status < 300)

        yield push


@contextlib.asynccontextmanager
async def open_httpx(base: str, concurrency: int) -> AsyncIterator[Push]:
    """The same hand-written client on httpx.AsyncClient."""
    import httpx

    key = PRIVATE_KEY.encode()
    auth_prefix = f"ApiAuth {TRACKER}:"
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    # trust_env=False: a proxy variable in the environment must not reroute 127.0.0.1.
    async with httpx.AsyncClient(limits=limits, trust_env=False) as client:
        semaphore = asyncio.Semaphore(concurrency)

        async def put(path: str, body: dict[str, Any]) -> int:
            async with semaphore:
                date = formatdate(usegmt=True)
                to_sign = f"PUT\n{CONTENT_TYPE}\n{date}\n{path}".encode()
                signature = base64.b64encode(hmac.new(key, to_sign, hashlib.sha256).digest())
                headers = {
                    "Date": date,
                    "Content-Type": CONTENT_TYPE,
                    "Authorization": auth_prefix + signature.decode(),
                }
                data = json.dumps(body, separators=(",", ":")).encode()
                response = await client.put(base + path, content=data, headers=headers)
                return response.status_code

        async def push(jobs: list[Any]) -> int:
            statuses = await asyncio.gather(*(put(path, body) for path, body in jobs))
            return sum(1 for status in statuses if 200 <= status < 300)

        yield push


@contextlib.asynccontextmanager
async def open_aiohttp_pool(base: str, concurrency: int) -> AsyncIterator[Push]:
    """Raw aiohttp again, but `concurrency` workers pulling from one iterator (no task and
    no semaphore wait per request): the cheapest hand-written shape, for reference."""
    import aiohttp

    key = PRIVATE_KEY.encode()
    auth_prefix = f"ApiAuth {TRACKER}:"
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker(jobs: Iterator[tuple[str, dict[str, Any]]]) -> int:
            ok = 0
            for path, body in jobs:
                date = formatdate(usegmt=True)
                to_sign = f"PUT\n{CONTENT_TYPE}\n{date}\n{path}".encode()
                signature = base64.b64encode(hmac.new(key, to_sign, hashlib.sha256).digest())
                headers = {
                    "Date": date,
                    "Content-Type": CONTENT_TYPE,
                    "Authorization": auth_prefix + signature.decode(),
                }
                data = json.dumps(body, separators=(",", ":")).encode()
                async with session.put(base + path, data=data, headers=headers) as response:
                    await response.read()
                    ok += 200 <= response.status < 300
            return ok

        async def push(jobs: list[Any]) -> int:
            shared = iter(jobs)
            return sum(await asyncio.gather(*(worker(shared) for _ in range(concurrency))))

        yield push


OPENERS = {
    "lib": open_lib,
    "lib-stdlib": open_lib,
    "aiohttp": open_aiohttp,
    "httpx": open_httpx,
    "aiohttp-pool": open_aiohttp_pool,
}


# -- measuring inside a child process --------------------------------------------------

_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def proc_cpu(pid: int) -> float | None:
    """CPU seconds (user + system) another process has used, from /proc."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _CLK_TCK
    except (OSError, IndexError, ValueError):
        return None


def maxrss_mb() -> float:
    """Peak RSS of this process so far, in MB (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb() -> float:
    """Current RSS in MB."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * _PAGE / 2**20
    except OSError:
        return float("nan")


def pin_self(cpu: int | None) -> list[int] | None:
    if cpu is None or not hasattr(os, "sched_setaffinity"):
        return None
    try:
        os.sched_setaffinity(0, {cpu})
    except OSError:
        return None
    return sorted(os.sched_getaffinity(0))


async def run_variant(args: argparse.Namespace) -> dict[str, Any]:
    variant = args.worker
    base = f"http://127.0.0.1:{args.port}"
    started = time.perf_counter()
    jobs = prepare(variant, args.n, SEED)
    warm = prepare(variant, args.warmup, WARMUP_SEED)
    prep = time.perf_counter() - started
    async with OPENERS[variant](base, args.concurrency) as push:
        if warm:
            await push(warm)  # connections open, first-call caches filled
        del warm
        gc.collect()
        profiler = start_profiler(args.profiler)
        rss_before = maxrss_mb()
        faults0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        server0 = proc_cpu(args.server_pid) if args.server_pid else None
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        ok = await push(jobs)
        wall = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        server1 = proc_cpu(args.server_pid) if args.server_pid else None
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults0
        rss_after = maxrss_mb()
        stop_profiler(profiler, args)
    server_cpu = None if server0 is None or server1 is None else server1 - server0
    return {
        "variant": variant,
        "n": args.n,
        "ok": ok,
        "prep_s": prep,
        "wall_s": wall,
        "cpu_s": cpu,
        "server_cpu_s": server_cpu,
        "peak_rss_mb": rss_after,
        "push_rss_growth_mb": rss_after - rss_before,
        "minor_faults": faults,
        "affinity": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
    }


def start_profiler(kind: str | None) -> Any:
    if kind == "pyinstrument":
        from pyinstrument import Profiler

        # async_mode="disabled": sample the real stack (event loop included), i.e. CPU.
        sampler = Profiler(interval=0.0002, async_mode="disabled")
        sampler.start()
        return sampler
    if kind == "cprofile":
        import cProfile

        tracer = cProfile.Profile()
        tracer.enable()
        return tracer
    return None


def stop_profiler(profiler: Any, args: argparse.Namespace) -> None:
    if profiler is None:
        return
    out = Path(args.profile_out)
    if args.profiler == "pyinstrument":
        profiler.stop()
        out.with_suffix(".html").write_text(profiler.output_html())
        text = profiler.output_text(unicode=True, color=False, show_all=False)
        flat = profiler.output_text(unicode=True, color=False, flat=True, flat_time="self")
        out.with_suffix(".txt").write_text(text + "\n\n== flat, self time ==\n" + flat)
    else:
        import pstats

        profiler.disable()
        profiler.dump_stats(str(out.with_suffix(".prof")))
        with open(out.with_suffix(".txt"), "w") as f:
            stats = pstats.Stats(profiler, stream=f)
            stats.sort_stats("tottime").print_stats(60)
            stats.sort_stats("cumulative").print_stats(60)


async def run_memory(args: argparse.Namespace) -> dict[str, Any]:
    """BatchUpdater.run over a generator: peak RSS after `sample` items and at the end."""
    from luigis_async import BatchUpdater, LuigisBoxClient

    samples: dict[int, tuple[float, float]] = {}
    checkpoints = {args.memory_sample, args.memory_items}
    count = 0
    progress_every = max(1, args.memory_items // 10)

    def on_result(_: Any) -> None:
        nonlocal count
        count += 1
        if count in checkpoints:
            samples[count] = (maxrss_mb(), rss_mb())
        if count % progress_every == 0:
            print(f"  ... {count:,} items", file=sys.stderr, flush=True)

    def updates() -> Iterator[Any]:
        for cid, spec in iter_specs(args.memory_items, SEED):
            yield to_update(cid, spec)

    base = f"http://127.0.0.1:{args.port}"
    gc.collect()
    start = (maxrss_mb(), rss_mb())
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    async with LuigisBoxClient(
        TRACKER, PRIVATE_KEY, base_url=base, max_connections=args.concurrency
    ) as client:
        updater = BatchUpdater(client, concurrency=args.concurrency, on_result=on_result)
        report = await updater.run(updates())
    return {
        "items": args.memory_items,
        "succeeded": report.succeeded,
        "failed": len(report.failed),
        "wall_s": time.perf_counter() - t0,
        "cpu_s": time.process_time() - cpu0,
        "start": start,
        "samples": {str(k): v for k, v in sorted(samples.items())},
    }


def worker_main(args: argparse.Namespace) -> None:
    if args.worker == "lib-stdlib":
        sys.modules["orjson"] = None  # type: ignore[assignment]  # the library falls back
    pin_self(args.cpu)
    gc.collect()
    result = asyncio.run(run_memory(args) if args.worker == "memory" else run_variant(args))
    print("RESULT " + json.dumps(result), flush=True)


# -- the orchestrating parent ----------------------------------------------------------


@contextlib.contextmanager
def spawned(command: list[str]) -> Iterator[subprocess.Popen[str]]:
    """Start a child with pipes; always end it (by its own pid) and close the pipes."""
    proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()


@contextlib.contextmanager
def fast_server(cpu: int | None) -> Iterator[tuple[int, int]]:
    """Start benchmarks/fast_server.py; always terminate it, whatever happens here."""
    command = [sys.executable, str(HERE / "fast_server.py"), "--exit-on-stdin-eof"]
    if cpu is not None:
        command += ["--cpu", str(cpu)]
    with spawned(command) as proc:
        assert proc.stdout is not None
        line = proc.stdout.readline().split()
        if len(line) != 4 or line[0] != "PORT":
            raise RuntimeError(f"fast server did not start (said {line!r})")
        yield int(line[1]), proc.pid


def run_child(args: argparse.Namespace, worker: str, port: int, server_pid: int,
              cpu: int | None, extra: Sequence[str] = (), *, malloc_tuning: bool = True
              ) -> dict[str, Any]:
    command = [
        sys.executable, str(Path(__file__).resolve()), "--worker", worker,
        "--port", str(port), "--server-pid", str(server_pid),
        "--n", str(args.n), "--concurrency", str(args.concurrency),
        "--warmup", str(args.warmup),
        "--memory-items", str(args.memory_items), "--memory-sample", str(args.memory_sample),
        *extra,
    ]
    if cpu is not None:
        command += ["--cpu", str(cpu)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p
    ))
    if malloc_tuning and args.malloc_tuning:
        env.update(MALLOC_TUNING)
    # stderr is inherited: warnings and the memory run's progress show as they happen.
    done = subprocess.run(
        command, stdout=subprocess.PIPE, text=True, env=env, timeout=args.child_timeout
    )
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            result: dict[str, Any] = json.loads(line[len("RESULT "):])
            return result
    raise RuntimeError(f"{worker} child failed (exit {done.returncode}):\n{done.stdout}")


def versions() -> dict[str, str]:
    found = {}
    for name in ("aiohttp", "httpx", "sniffio", "attrs", "cattrs", "orjson", "pyinstrument"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "-"
    return found


def library_state() -> str:
    """The commit measured, and whether luigis_async/ had uncommitted changes."""
    try:
        head = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--", "luigis_async"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "luigis_async (not a git checkout)"
    return f"luigis_async at {head}" + (" + uncommitted changes" if dirty else "")


def choose_cores(args: argparse.Namespace) -> tuple[int | None, int | None, str]:
    if args.no_pin or not hasattr(os, "sched_getaffinity"):
        return None, None, "not pinned"
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        return None, None, f"not pinned (only core {allowed} allowed)"
    server, client = allowed[0], allowed[-1]
    return server, client, f"server on core {server}, client on core {client}"


def print_header(args: argparse.Namespace, pinning: str) -> None:
    v = versions()
    print(
        f"machine: {os.cpu_count()} cores ({len(os.sched_getaffinity(0))} usable), "
        f"{platform.machine()}, {platform.system()} {platform.release()}"
    )
    print(
        f"python {platform.python_version()} ({platform.python_implementation()}), "
        f"aiohttp {v['aiohttp']}, httpx {v['httpx']}, attrs {v['attrs']}, "
        f"cattrs {v['cattrs']}, orjson {v['orjson']} "
        "(the library encodes with it when installed, the `fast` extra; lib-stdlib blocks it)"
    )
    print(f"library: {library_state()}")
    print(f"pinning: {pinning}")
    if args.malloc_tuning:
        tuning = " ".join(f"{k}={v}" for k, v in MALLOC_TUNING.items())
        print(
            f"allocator: {tuning} for every client child of the comparison and profiles\n"
            "           (without it asyncio's 256 KiB recv buffer is mmap/mremap/munmap-ed "
            "per response in some processes\n           and not others: a 15-20 us/request "
            "coin flip; --no-malloc-tuning to see it)"
        )
    if v["httpx"] != "-" and v["sniffio"] == "-":
        print(
            "note: sniffio is not installed (recent anyio no longer pulls it in), so httpcore "
            "retries a failing `import sniffio`\n      on every request; `pip install sniffio` "
            "makes the httpx numbers fairer to httpx"
        )


def fmt_row(cells: list[str], widths: list[int]) -> str:
    return "  ".join(
        c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
    )


def run_bench(args: argparse.Namespace, port: int, server_pid: int, cpu: int | None) -> None:
    variants = args.variants
    print(
        f"\n== bulk PUT: n={args.n:,} requests, concurrency={args.concurrency}, "
        f"{args.rounds} rounds alternating {' '.join(variants)}, warm-up {args.warmup} "
        f"requests per child (untimed) =="
    )
    print(
        "lib items are CustomizationUpdate objects built and validated before timing (like "
        "a user's prepared data);\nraw aiohttp/httpx send json.dumps of prepared dicts, hmac "
        "+ base64 + formatdate per request; bodies are the same JSON and size: "
        f"{'yes' if check_bodies_equivalent() else 'NO'}"
    )
    results: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
    for round_no in range(1, args.rounds + 1):
        cells = []
        for variant in variants:
            r = run_child(args, variant, port, server_pid, cpu)
            if r["ok"] != args.n:
                raise RuntimeError(f"{variant}: only {r['ok']} of {args.n} requests succeeded")
            results[variant].append(r)
            cells.append(f"{variant} {r['wall_s']:.2f}s {r['cpu_s'] / r['n'] * 1e6:.0f}us/req")
        print(f"round {round_no}: " + " | ".join(cells), flush=True)

    def med(variant: str, key: Callable[[dict[str, Any]], float]) -> float:
        return float(statistics.median(key(r) for r in results[variant]))

    def cpu_us(r: dict[str, Any]) -> float:
        return float(r["cpu_s"] / r["n"] * 1e6)

    header = [
        "variant", "wall s", "req/s", "CPU us/req", "client CPU%", "server CPU%",
        "peak RSS MB", "push +RSS MB", "faults/req", "prep s",
    ]
    rows = []
    for variant in variants:
        rs = results[variant]
        server = [
            r["server_cpu_s"] / r["wall_s"] * 100 for r in rs if r["server_cpu_s"] is not None
        ]
        rows.append([
            VARIANTS[variant],
            f"{med(variant, lambda r: r['wall_s']):.2f}",
            f"{med(variant, lambda r: r['n'] / r['wall_s']):,.0f}",
            f"{med(variant, cpu_us):.1f}",
            f"{med(variant, lambda r: r['cpu_s'] / r['wall_s'] * 100):.0f}",
            f"{statistics.median(server):.0f}" if server else "-",
            f"{med(variant, lambda r: r['peak_rss_mb']):.1f}",
            f"{med(variant, lambda r: r['push_rss_growth_mb']):.1f}",
            f"{med(variant, lambda r: r['minor_faults'] / r['n']):.2f}",
            f"{med(variant, lambda r: r['prep_s']):.2f}",
        ])
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    print("\nmedians over rounds:")
    print(fmt_row(header, widths))
    print(fmt_row(["-" * w for w in widths], widths))
    for row in rows:
        print(fmt_row(row, widths))
    print("\nspread (min..max over rounds):")
    for v in variants:
        cpus = [cpu_us(r) for r in results[v]]
        walls = [r["wall_s"] for r in results[v]]
        print(
            f"  {VARIANTS[v]}: CPU {min(cpus):.1f}..{max(cpus):.1f} us/req, "
            f"wall {min(walls):.2f}..{max(walls):.2f} s"
        )
    if "lib" in results:
        print()
        for other in (v for v in variants if v != "lib"):
            cpu_ratio = med("lib", cpu_us) / med(other, cpu_us)
            wall_ratio = med("lib", lambda r: r["wall_s"]) / med(other, lambda r: r["wall_s"])
            print(
                f"ratio library / {VARIANTS[other]}: CPU per request {cpu_ratio:.2f}x, "
                f"wall time {wall_ratio:.2f}x"
            )
    busiest = max(
        (r["server_cpu_s"] / r["wall_s"] * 100 for rs in results.values() for r in rs
         if r["server_cpu_s"] is not None),
        default=None,
    )
    if busiest is not None:
        print(
            f"server busiest run: {busiest:.0f}% of its core "
            f"({'not the bottleneck' if busiest < 80 else 'CLOSE TO SATURATION: results suspect'})"
        )


def run_memory_bench(args: argparse.Namespace, port: int, server_pid: int,
                     cpu: int | None) -> None:
    print(
        f"\n== memory: BatchUpdater.run over a generator of {args.memory_items:,} updates, "
        f"concurrency={args.concurrency} =="
    )
    r = run_child(args, "memory", port, server_pid, cpu, malloc_tuning=False)
    samples = {int(k): v for k, v in r["samples"].items()}
    print(
        f"{r['succeeded']:,} succeeded, {r['failed']} failed in {r['wall_s']:.1f} s "
        f"({r['items'] / r['wall_s']:,.0f} items/s, {r['cpu_s'] / r['items'] * 1e6:.0f} us CPU "
        f"per item incl. building it)"
    )
    peak0, current0 = r["start"]
    print(f"before the run:   peak RSS {peak0:7.1f} MB, current RSS {current0:7.1f} MB")
    for count, (peak, current) in sorted(samples.items()):
        print(f"after {count:>9,}: peak RSS {peak:7.1f} MB, current RSS {current:7.1f} MB")
    if args.memory_sample in samples and args.memory_items in samples:
        diff = samples[args.memory_items][0] - samples[args.memory_sample][0]
        verdict = "flat (target <= 20 MB)" if diff <= 20 else "GROWS: over the 20 MB target"
        print(
            f"peak RSS difference {args.memory_items:,} vs {args.memory_sample:,}: "
            f"{diff:+.1f} MB -> {verdict}"
        )


def run_profile(args: argparse.Namespace, port: int, server_pid: int, cpu: int | None) -> None:
    out = Path(args.profile_dir)
    out.mkdir(parents=True, exist_ok=True)
    print(f"\n== profile: n={args.n:,}, concurrency={args.concurrency} ==")
    written = []
    runs = [("lib", "pyinstrument"), ("lib", "cprofile"), ("aiohttp", "cprofile")]
    for variant, profiler in runs:
        stem = out / f"profile-{variant}-{profiler}"
        r = run_child(args, variant, port, server_pid, cpu,
                      ["--profiler", profiler, "--profile-out", str(stem)])
        print(
            f"{variant} under {profiler}: {r['cpu_s'] / r['n'] * 1e6:.0f} us CPU/req "
            f"(profiler overhead included)"
        )
        suffixes = (".html", ".txt") if profiler == "pyinstrument" else (".txt", ".prof")
        written += [stem.with_suffix(s) for s in suffixes]
    for path in written:
        print(f"wrote {path}")
    summarise_cprofile(out / "profile-lib-cprofile.prof", out / "profile-aiohttp-cprofile.prof",
                       args.n)


def _short(key: tuple[str, int, str]) -> str:
    filename, line, name = key
    if filename == "~":
        return name
    parts = Path(filename).parts
    for anchor in ("site-packages", "luigis_async", "benchmarks"):
        if anchor in parts:
            i = parts.index(anchor)
            parts = parts[i + 1:] if anchor == "site-packages" else parts[i:]
            break
    else:
        parts = parts[-2:]
    return f"{'/'.join(parts)}:{line}({name})"


def summarise_cprofile(lib_path: Path, raw_path: Path, n: int) -> None:
    import pstats

    lib = pstats.Stats(str(lib_path)).stats  # type: ignore[attr-defined]
    raw = pstats.Stats(str(raw_path)).stats  # type: ignore[attr-defined]
    total_lib = sum(v[2] for v in lib.values()) / n * 1e6
    total_raw = sum(v[2] for v in raw.values()) / n * 1e6
    print(f"\ncProfile total (inflated by the profiler): lib {total_lib:.0f} us/req, "
          f"raw aiohttp {total_raw:.0f} us/req")
    ours = sorted(
        ((k, v) for k, v in lib.items() if "luigis_async" in k[0]), key=lambda kv: -kv[1][2]
    )
    print("\nluigis_async functions by own time (cProfile tottime), per request:")
    print(f"  {'own us':>7} {'cum us':>7} {'calls':>6}  function")
    for key, (_, nc, tt, ct, _) in ours[:15]:
        print(f"  {tt / n * 1e6:7.2f} {ct / n * 1e6:7.2f} {nc / n:6.2f}  {_short(key)}")
    raw_by_name = {_short(k): v for k, v in raw.items()}
    extra = []
    for key, (_, nc, tt, _, _) in lib.items():
        if "luigis_async" in key[0] or "benchmarks" in key[0]:
            continue
        other = raw_by_name.get(_short(key))
        rnc, rtt = (other[1], other[2]) if other else (0, 0.0)
        if (nc - rnc) / n >= 0.5 or (tt - rtt) / n * 1e6 >= 0.5:
            extra.append((tt / n * 1e6 - rtt / n * 1e6, nc / n, rnc / n, tt / n * 1e6,
                          rtt / n * 1e6, _short(key)))
    extra.sort(reverse=True)
    print("\nother code (aiohttp, asyncio, stdlib, attrs, cattrs ...) the library spends more "
          "on than raw aiohttp, per request:")
    print(f"  {'+own us':>7} {'lib us':>7} {'raw us':>7} {'lib n':>6} {'raw n':>6}  function")
    for diff, lnc, rnc, ltt, rtt, name in extra[:25]:
        print(f"  {diff:7.2f} {ltt:7.2f} {rtt:7.2f} {lnc:6.2f} {rnc:6.2f}  {name}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Bulk PUT benchmark: luigis_async vs raw aiohttp vs httpx."
    )
    parser.add_argument("--n", type=int, default=20_000, help="requests per run (20000)")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight (16)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (3)")
    parser.add_argument("--warmup", type=int, default=200,
                        help="untimed requests per child before the push (200)")
    parser.add_argument("--variants", default="lib,aiohttp,httpx",
                        type=lambda s: [v for v in s.split(",") if v],
                        help="comma-separated, from lib,aiohttp,httpx,aiohttp-pool "
                             "(default lib,aiohttp,httpx)")
    parser.add_argument("--bench", action="store_true",
                        help="run the comparison too when --memory or --profile is given")
    parser.add_argument("--memory", action="store_true", help="run the memory benchmark")
    parser.add_argument("--memory-items", type=int, default=1_000_000)
    parser.add_argument("--memory-sample", type=int, default=100_000)
    parser.add_argument("--profile", action="store_true",
                        help="profile the library's push (pyinstrument + cProfile)")
    parser.add_argument("--profile-dir", default=str(HERE),
                        help="where profile reports go (benchmarks/)")
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to cores")
    parser.add_argument(
        "--no-malloc-tuning", dest="malloc_tuning", action="store_false",
        help="run the comparison and profiles under glibc's default (bimodal) malloc "
             "thresholds; see MALLOC_TUNING",
    )
    parser.add_argument("--child-timeout", type=float, default=1800.0)
    # internal: a child process running one variant
    parser.add_argument("--worker", choices=[*VARIANTS, "memory"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--server-pid", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--cpu", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--profiler", choices=["pyinstrument", "cprofile"], help=argparse.SUPPRESS)
    parser.add_argument("--profile-out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    unknown = set(args.variants) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variants: {', '.join(sorted(unknown))}")
    return args


def main() -> None:
    args = parse_args()
    if args.worker:
        worker_main(args)
        return
    server_cpu, client_cpu, pinning = choose_cores(args)
    print_header(args, pinning)
    started = time.perf_counter()
    with fast_server(server_cpu) as (port, server_pid):
        if args.bench or not (args.memory or args.profile):
            run_bench(args, port, server_pid, client_cpu)
        if args.profile:
            run_profile(args, port, server_pid, client_cpu)
        if args.memory:
            run_memory_bench(args, port, server_pid, client_cpu)
    print(f"\ntotal benchmark time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()

"""stdin is read in a thread: a producer that pauses never blocks the event loop.

A request in flight is signed (its ``Date`` set) before it is sent; had the loop waited on
stdin, the request would have gone out stale (the API allows about 5 s) and the server
would have refused the credentials. Signals are handled while the input is idle too.
"""

from __future__ import annotations

import asyncio
import signal

import pytest

from luigis_async.sandbox import Faults, Sandbox

from .cli_helpers import applied, line, seed, start, wait_for_stderr


@pytest.mark.slow
@pytest.mark.parametrize(("concurrency", "latency"), [(8, 0.0), (32, 0.05)])
async def test_a_producer_pausing_seven_seconds_between_lines(
    sandbox: Sandbox, concurrency: int, latency: float
) -> None:
    """Line 1 is applied while stdin is idle; after a real 7 s pause the rest follow: exit 0,
    all applied, and the server refused no request."""
    sandbox.faults = Faults(latency=1.0, latency_seconds=latency)
    seed(sandbox, range(1, 4))
    proc = await start(
        sandbox, "push", "-", "-vv", "--concurrency", str(concurrency),
        stdin=asyncio.subprocess.PIPE,
    )
    assert proc.stdin is not None
    proc.stdin.write(line(1).encode() + b"\n")
    await proc.stdin.drain()
    await wait_for_stderr(proc, b": applied")  # while the producer has not written more

    await asyncio.sleep(7)  # the producer's pause: what is under test, not a synchronisation
    proc.stdin.write(f"{line(2)}\n{line(3)}\n".encode())
    proc.stdin.close()
    _, stderr = await proc.communicate()

    assert 0 == proc.returncode, stderr.decode()
    assert {1, 2, 3} == applied(sandbox, range(1, 4))
    assert [] == [r.status for r in sandbox.requests if r.status == 401]


@pytest.mark.parametrize(
    ("signum", "status"),
    [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)],
    ids=["INT", "TERM", "HUP"],
)
async def test_a_signal_is_handled_while_stdin_is_idle(
    sandbox: Sandbox, signum: int, status: int
) -> None:
    """The signal is not held until the producer writes again: the run ends at once with
    128 + the signal, the line read applied, no failures file (nothing else was read)."""
    seed(sandbox, [1])
    proc = await start(sandbox, "push", "-", "-vv", stdin=asyncio.subprocess.PIPE)
    assert proc.stdin is not None
    proc.stdin.write(line(1).encode() + b"\n")
    await proc.stdin.drain()
    await wait_for_stderr(proc, b": applied")

    proc.send_signal(signum)  # stdin stays open: the producer is merely idle
    assert proc.stderr is not None
    async with asyncio.timeout(10):
        stderr = await proc.stderr.read()  # until the command exits
        await proc.wait()
    proc.stdin.close()

    assert status == proc.returncode, stderr.decode()
    assert {1} == applied(sandbox, [1])
    assert b"everything read was applied" in stderr

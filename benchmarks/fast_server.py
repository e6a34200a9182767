"""A deliberately dumb, fast HTTP/1.1 server for the benchmarks: ``204`` to every request.

It verifies nothing (no signature, no JSON, not even the method): it only splits the byte
stream into requests by ``Content-Length`` and answers each with a fixed ``204``, so the
client, not the server, is what a benchmark measures. Raw ``asyncio.Protocol``, keep-alive,
no chunked bodies (none of the benchmarked clients sends them for a known-length body).

Run as ``python benchmarks/fast_server.py [--port 0] [--cpu 0]``: it prints
``PORT <n> PID <pid>`` on stdout once listening, and exits on SIGTERM/SIGINT or, with
``--exit-on-stdin-eof``, when its stdin pipe closes (so it dies with the process that
started it, even one killed by SIGKILL).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys

RESPONSE = b"HTTP/1.1 204 No Content\r\nServer: fast\r\n\r\n"
_CONTENT_LENGTH = b"\ncontent-length:"
_CONNECTION_CLOSE = b"\nconnection: close"


class FastHTTP(asyncio.Protocol):
    """One keep-alive connection: count complete requests, answer them in one write."""

    __slots__ = ("buf", "transport")

    def __init__(self) -> None:
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        start = 0
        done = 0
        close = False
        while True:
            end = buf.find(b"\r\n\r\n", start)
            if end < 0:
                break
            head = bytes(buf[start:end]).lower()
            i = head.find(_CONTENT_LENGTH)
            if i >= 0:
                i += len(_CONTENT_LENGTH)
                j = head.find(b"\r\n", i)
                length = int(head[i:] if j < 0 else head[i:j])
            else:
                length = 0
            stop = end + 4 + length
            if stop > len(buf):
                break  # the body has not fully arrived yet
            start = stop
            done += 1
            if _CONNECTION_CLOSE in head:
                close = True
                break
        if start:
            del buf[:start]
        if done:
            assert self.transport is not None
            self.transport.write(RESPONSE * done)
            if close:
                self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


async def stop_signal(*, watch_stdin: bool) -> asyncio.Future[None]:
    """A future done on SIGTERM, SIGINT or (with ``watch_stdin``) when stdin closes, so a
    server dies with the benchmark that holds its stdin."""
    loop = asyncio.get_running_loop()
    stop: asyncio.Future[None] = loop.create_future()

    def finish() -> None:
        if not stop.done():
            stop.set_result(None)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, finish)

    class _StdinWatch(asyncio.Protocol):
        def connection_lost(self, exc: Exception | None) -> None:
            finish()

    if watch_stdin:
        await loop.connect_read_pipe(_StdinWatch, sys.stdin)
    return stop


async def serve(host: str, port: int, *, watch_stdin: bool = False) -> None:
    loop = asyncio.get_running_loop()
    stop = await stop_signal(watch_stdin=watch_stdin)
    server = await loop.create_server(FastHTTP, host, port, backlog=1024, reuse_address=True)
    bound = server.sockets[0].getsockname()[1]
    print(f"PORT {bound} PID {os.getpid()}", flush=True)
    async with server:
        await stop
    server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--cpu", type=int, default=None, help="pin to this core if allowed")
    parser.add_argument(
        "--exit-on-stdin-eof", action="store_true",
        help="exit when stdin closes (the benchmark passes a pipe it holds open)",
    )
    args = parser.parse_args()
    if args.cpu is not None and hasattr(os, "sched_setaffinity"):
        try:
            os.sched_setaffinity(0, {args.cpu})
        except OSError as exc:
            print(f"fast_server: could not pin to core {args.cpu}: {exc}", file=sys.stderr)
    asyncio.run(serve(args.host, args.port, watch_stdin=args.exit_on_stdin_eof))


if __name__ == "__main__":
    main()

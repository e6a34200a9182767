"""An aiohttp.web service that pins items through one LuigisBoxClient shared by all handlers.

The lifecycle a long-running service wants: the client (and with it one connection pool)
is opened once, in a cleanup context, when the app starts; every handler borrows it from
``request.app[CLIENT]``; it is closed when the app stops, after the last request. Never
open a client per request: each would pay a new TCP and TLS handshake.

    python examples/web_service.py [--host 127.0.0.1] [--port 8080]

With ``LUIGISBOX_TRACKER_ID`` and ``LUIGISBOX_PRIVATE_KEY`` in the environment it talks to
the real service (``LUIGISBOX_BASE_URL`` overrides the address); otherwise it starts a
local sandbox that lives as long as the app. Then::

    curl -X POST localhost:8080/pins -d '{"item": "/p/1", "pinned_item": "/p/2", "position": 1}'
    curl -X PUT localhost:8080/pins/<id> -d '{"item": "/p/1", "pinned_item": "/p/3", "position": 1}'
    curl localhost:8080/pins/<id>

Ctrl-C (or SIGTERM) stops it gracefully: requests in flight finish, then the client closes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from luigis_async import (
    DEFAULT_BASE_URL,
    APIError,
    Customization,
    InvalidCustomizationError,
    LuigisBoxClient,
    LuigisBoxError,
    NotFoundError,
    PinDefinition,
    RateLimitError,
    converter,
)
from luigis_async.sandbox import Sandbox


@dataclass(frozen=True)
class Account:
    """Where the client connects, and as whom."""

    tracker_id: str
    private_key: str
    base_url: str = DEFAULT_BASE_URL


#: The one client of this app, opened and closed by ``client_context``.
CLIENT = web.AppKey("client", LuigisBoxClient)
#: Where ``client_context`` connects.
ACCOUNT = web.AppKey("account", Account)
#: The local sandbox, when the app runs without credentials.
SANDBOX = web.AppKey("sandbox", Sandbox)

#: A web request should not hang on a slow upstream as long as a batch job may.
UPSTREAM_TIMEOUT = 10.0

routes = web.RouteTableDef()


async def client_context(app: web.Application) -> AsyncIterator[None]:
    """Open the shared client when the app starts; close it when the app stops."""
    account = app[ACCOUNT]
    async with LuigisBoxClient(
        account.tracker_id,
        account.private_key,
        base_url=account.base_url,
        timeout=UPSTREAM_TIMEOUT,
    ) as client:
        app[CLIENT] = client
        yield


async def sandbox_context(app: web.Application) -> AsyncIterator[None]:
    """Run a local sandbox for the app's lifetime and point the client at it."""
    async with Sandbox(host="127.0.0.1") as sandbox:
        app[SANDBOX] = sandbox
        app[ACCOUNT] = Account(sandbox.tracker_id, sandbox.private_key, sandbox.url)
        yield


async def _pin_request(request: web.Request) -> Customization:
    """The customization a pin request asks for; InvalidCustomizationError if it is bad."""
    try:
        body: Any = await request.json()
    except ValueError:
        raise InvalidCustomizationError("body: must be JSON") from None
    if not isinstance(body, dict):
        raise InvalidCustomizationError("body: must be a JSON object")
    missing = [key for key in ("item", "pinned_item", "position") if key not in body]
    if missing:
        raise InvalidCustomizationError(f"body: missing {', '.join(missing)}")
    pin = PinDefinition(
        position=body["position"], pin_type="item", pin_identity=body["pinned_item"]
    )
    return Customization(
        body.get("model", "basket"), "item", target_identity=body["item"], pin_definitions=[pin]
    )


@routes.post("/pins")
async def create_pin(request: web.Request) -> web.Response:
    """Create a customization that pins ``pinned_item`` for ``item``; 201 with its ID."""
    customization = await _pin_request(request)
    created = await request.app[CLIENT].create_customization(customization)
    return web.json_response({"id": str(created.id)}, status=201)


@routes.put("/pins/{customization_id}")
async def put_pin(request: web.Request) -> web.Response:
    """Replace the customization with one pinning ``pinned_item`` (a PUT replaces it all)."""
    customization = await _pin_request(request)
    customization_id = request.match_info["customization_id"]
    await request.app[CLIENT].update_customization(customization_id, customization)
    return web.json_response({"id": customization_id})


@routes.get("/pins/{customization_id}")
async def get_pin(request: web.Request) -> web.Response:
    """The customization as the API stores it."""
    stored = await request.app[CLIENT].get_customization(request.match_info["customization_id"])
    return web.json_response(converter.unstructure(stored))


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Map the library's exceptions to this service's answers; the key is never in them."""
    try:
        return await handler(request)
    except InvalidCustomizationError as exc:  # the caller's input: rejected before sending
        return _error(400, str(exc))
    except NotFoundError:
        return _error(404, "no such customization")
    except RateLimitError as exc:  # still throttled after the client's retries
        retry_after = {"Retry-After": str(round(exc.retry_after))} if exc.retry_after else None
        return _error(503, "Luigi's Box is throttling us; try again later", retry_after)
    except APIError as exc:
        return _error(502, f"Luigi's Box answered {exc.status}: {exc.reason}")
    except LuigisBoxError as exc:  # transport errors, after retries
        return _error(504, f"Luigi's Box did not answer: {exc}")


def _new_app(*contexts: Callable[[web.Application], AsyncIterator[None]]) -> web.Application:
    app = web.Application(middlewares=[errors_middleware])
    app.cleanup_ctx.extend([*contexts, client_context])
    app.add_routes(routes)
    return app


def build_app(*, tracker_id: str, private_key: str, base_url: str) -> web.Application:
    """The service, talking to the API at ``base_url`` with these credentials."""
    app = _new_app()
    app[ACCOUNT] = Account(tracker_id, private_key, base_url)
    return app


def build_sandbox_app() -> web.Application:
    """The service, talking to a local sandbox that starts and stops with it."""
    return _new_app(sandbox_context)


async def main() -> None:
    parser = argparse.ArgumentParser(description="Pin items through Luigi's Box over HTTP.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    args = parser.parse_args()

    tracker_id = os.environ.get("LUIGISBOX_TRACKER_ID")
    private_key = os.environ.get("LUIGISBOX_PRIVATE_KEY")
    if tracker_id and private_key:
        base_url = os.environ.get("LUIGISBOX_BASE_URL", DEFAULT_BASE_URL)
        app = build_app(tracker_id=tracker_id, private_key=private_key, base_url=base_url)
    else:
        app = build_sandbox_app()

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)

    runner = web.AppRunner(app)
    await runner.setup()  # runs the cleanup contexts' startup halves: the client opens here
    try:
        site = web.TCPSite(runner, args.host, args.port)
        await site.start()
        host, port = runner.addresses[0][:2]
        if SANDBOX in app:
            print(f"using a local sandbox at {app[SANDBOX].url} (no LUIGISBOX_* credentials)")
        print(f"listening on http://{host}:{port}", flush=True)
        await stop.wait()
        print("stopping", flush=True)
    finally:
        await runner.cleanup()  # finishes requests in flight, then closes the client


if __name__ == "__main__":
    asyncio.run(main())

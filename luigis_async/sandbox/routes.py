"""The API's endpoints as thin aiohttp handlers over the store.

``ENDPOINTS`` is the one table of what the sandbox serves (method, path, whether it writes,
the content type it signs); each handler checks the tracker in the path, hands the parsed
body to the store and turns its answer into JSON. ``errors`` turns every refusal into the
API's error body, the router's own 404 and 405 included.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Protocol

import attrs
from aiohttp import web
from aiohttp.typedefs import Handler

from luigis_async.auth import CONTENT_TYPE, NDJSON_CONTENT_TYPE
from luigis_async.sandbox.bulk import STRATEGIES
from luigis_async.sandbox.queries import ExportQuery, InvalidFilter, ListQuery
from luigis_async.sandbox.store import Refused, Store
from luigis_async.sandbox.validation import InvalidCustomization
from luigis_async.sandbox.wire import error_response, request_body

__all__ = ["API_PREFIX", "ENDPOINTS", "Endpoint", "Routes", "Tracker", "errors"]

#: Every route lives under this path.
API_PREFIX: Final = "/v1/recommender/pin/{tracker_id}"


@attrs.frozen
class Endpoint:
    """One route of the API: method, path under ``API_PREFIX``, and how it is handled."""

    method: str
    path: str
    #: A lost acknowledgement applies it before answering 503.
    writes: bool = False
    #: The exact Content-Type the request must send and sign.
    content_type: str = CONTENT_TYPE


#: Every endpoint by route name; route names are what ``respond_next(route=...)`` takes.
ENDPOINTS: Final[Mapping[str, Endpoint]] = {
    "create": Endpoint("POST", "/scope", writes=True),
    "get": Endpoint("GET", "/scope/{customization_id}"),
    "update": Endpoint("PUT", "/scope/{customization_id}", writes=True),
    "delete": Endpoint("DELETE", "/scope/{customization_id}", writes=True),
    "list": Endpoint("POST", "/scopes"),
    "export": Endpoint("POST", "/scopes/export"),
    "bulk": Endpoint("POST", "/scopes/_bulk", writes=True, content_type=NDJSON_CONTENT_TYPE),
    "summary": Endpoint("GET", "/summary"),
}


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer every refusal with the API's error body."""
    try:
        return await handler(request)
    except Refused as exc:
        return error_response(exc.status, exc.reason, exc.details)
    except InvalidCustomization as exc:
        return error_response(exc.status, exc.reason, exc.details)
    except InvalidFilter as exc:
        return error_response(422, "Invalid filter", exc.details)
    except web.HTTPException as exc:  # the router's own 404 and 405
        response = error_response(exc.status, exc.reason)
        if "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        return response


def _json_object() -> dict[str, Any]:
    body = request_body()
    if body.errors:
        raise Refused(400, body.errors[1])
    if not isinstance(body.value, dict):
        raise Refused(400, "Request body must be a JSON object")
    return body.value


class Tracker(Protocol):
    """Whose API this is: paths naming another tracker are 404 "Tracker not found"."""

    @property
    def tracker_id(self) -> str: ...


class Routes:
    """The handlers of one sandbox over its store."""

    def __init__(self, store: Store, tracker: Tracker) -> None:
        self.store = store
        self.tracker = tracker

    def table(self) -> list[web.RouteDef]:
        handlers: dict[str, Handler] = {
            "create": self._create,
            "get": self._get,
            "update": self._update,
            "delete": self._delete,
            "list": self._list,
            "export": self._export,
            "bulk": self._bulk,
            "summary": self._summary,
        }
        # allow_head=False: aiohttp would answer HEAD for every GET; the API does not.
        return [
            web.RouteDef(
                endpoint.method,
                API_PREFIX + endpoint.path,
                handlers[name],
                {"name": name, **({"allow_head": False} if endpoint.method == "GET" else {})},
            )
            for name, endpoint in ENDPOINTS.items()
        ]

    def _tracker(self, request: web.Request) -> None:
        if request.match_info["tracker_id"] != self.tracker.tracker_id:
            raise Refused(404, "Tracker not found")

    def _existing_id(self, request: web.Request) -> str:
        self._tracker(request)
        return self.store.existing_id(request.match_info["customization_id"])

    async def _create(self, request: web.Request) -> web.StreamResponse:
        self._tracker(request)
        key = self.store.add(_json_object())
        return web.json_response(self.store.customizations[key], status=201)

    async def _get(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self.store.customizations[self._existing_id(request)])

    async def _update(self, request: web.Request) -> web.StreamResponse:
        body = _json_object()
        self.store.put(self._existing_id(request), self.store.checked(body))
        return web.Response(status=204)

    async def _delete(self, request: web.Request) -> web.StreamResponse:
        del self.store.customizations[self._existing_id(request)]
        return web.Response(status=204)

    async def _list(self, request: web.Request) -> web.StreamResponse:
        self._tracker(request)
        body = request_body()
        if body.errors:
            raise Refused(400, body.errors[1])
        return web.json_response(self.store.list_page(ListQuery.parse(request.query, body.value)))

    async def _export(self, request: web.Request) -> web.StreamResponse:
        self._tracker(request)
        return web.json_response(self.store.export(ExportQuery.parse(request.query)))

    async def _bulk(self, request: web.Request) -> web.StreamResponse:
        self._tracker(request)
        strategy = request.query.get("conflict_strategy", STRATEGIES[0])
        if strategy not in STRATEGIES:
            details = {"conflict_strategy": [f"Must be one of: {', '.join(STRATEGIES)}"]}
            raise Refused(422, "Invalid parameter", details)
        body = request_body()
        self.store.bulk_create(body.value, strategy, size=body.raw_size, not_json=body.errors)
        return web.json_response({})

    async def _summary(self, request: web.Request) -> web.StreamResponse:
        self._tracker(request)
        return web.json_response(self.store.summary())

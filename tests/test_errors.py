"""The exception tree, and what the client raises for answers a real server rarely gives."""

from __future__ import annotations

import inspect
import pickle
import types
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses
from yarl import URL

import luigis_async
from luigis_async import (
    APIError,
    AuthenticationError,
    BadRequestError,
    ClientClosedError,
    ConfigurationError,
    ConflictError,
    Customization,
    DecodingError,
    EventLoopError,
    InvalidCustomizationError,
    LuigisBoxClient,
    LuigisBoxError,
    NotFoundError,
    PayloadTooLargeError,
    RateLimitError,
    RedirectError,
    RequestTimeoutError,
    RetryPolicy,
    ServerError,
    StoredCustomization,
    TransportError,
    UnprocessableEntityError,
)
from luigis_async import errors as errors_module
from luigis_async.errors import api_error_for

TRACKER_ID = "1234-5678"
PRIVATE_KEY = "pk-very-secret-do-not-log-4f9a"
CUSTOMIZATION_ID = "199620b4-df1a-46e8-ab59-9e9ed9af7106"
PATH = f"/v1/recommender/pin/{TRACKER_ID}/scope/{CUSTOMIZATION_ID}"
BASE_URL = "http://127.0.0.1:9"
SCOPE_URL = BASE_URL + PATH
CREATE_URL = f"{BASE_URL}/v1/recommender/pin/{TRACKER_ID}/scope"
#: The update page's documented error body.
SEED_ERROR = {
    "reason": "Invalid pin definition provided",
    "exception_details": {
        "pin_definitions": ["Missing required field: position"],
        "target_type": ["Must be one of: item, criteria, all"],
    },
}
HTML_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)
HTML_502_REASON = (
    "<html> <head><title>502 Bad Gateway</title></head> <body> "
    "<center><h1>502 Bad Gateway</h1></center> <hr><center>nginx</center> </body> </html>"
)


# -- api_error_for -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (404, NotFoundError),
        (422, UnprocessableEntityError),
        (429, RateLimitError),
        (500, ServerError),
        (502, ServerError),
        (503, ServerError),
        (504, ServerError),
        (418, APIError),
        (409, ConflictError),
        (413, PayloadTooLargeError),
        (301, RedirectError),
        (307, RedirectError),
    ],
)
def test_api_error_for_picks_the_class(status: int, cls: type[APIError]) -> None:
    """Each documented status maps to its class; an unknown 4xx to plain APIError."""
    error = api_error_for(status, SEED_ERROR, "", method="PUT", path=PATH)
    assert cls is type(error)


@pytest.mark.parametrize("status", [400, 401, 404, 422, 429, 500, 502, 503, 418])
def test_api_error_for_keeps_the_answer(status: int) -> None:
    """The error carries status, reason, details, method and path of the failed request."""
    error = api_error_for(status, SEED_ERROR, "ignored", method="PUT", path=PATH)
    expected = (
        status,
        "Invalid pin definition provided",
        {
            "pin_definitions": ["Missing required field: position"],
            "target_type": ["Must be one of: item, criteria, all"],
        },
        "PUT",
        PATH,
    )
    assert expected == (
        error.status,
        error.reason,
        error.exception_details,
        error.method,
        error.path,
    )


def test_api_error_str_has_everything() -> None:
    """str(error) names method, path, status, reason and every detail."""
    error = api_error_for(422, SEED_ERROR, "", method="PUT", path=PATH)
    expected = (
        f"PUT {PATH} -> 422: Invalid pin definition provided "
        "(pin_definitions: Missing required field: position; "
        "target_type: Must be one of: item, criteria, all)"
    )
    assert expected == str(error)


def test_api_error_str_without_details() -> None:
    """Without details str(error) is method, path, status and reason."""
    error = api_error_for(404, {"reason": "Customization not found"}, "", method="GET", path=PATH)
    assert f"GET {PATH} -> 404: Customization not found" == str(error)


def test_html_body_gives_a_readable_reason() -> None:
    """A non-JSON (HTML) body becomes the reason, whitespace collapsed."""
    error = api_error_for(502, None, HTML_502, method="GET", path=PATH)
    assert (HTML_502_REASON, {}) == (error.reason, error.exception_details)


def test_long_non_json_body_is_cut() -> None:
    """A long non-JSON body gives a reason of at most 200 characters."""
    error = api_error_for(500, None, "x" * 10_000, method="GET", path=PATH)
    assert "x" * 200 == error.reason


@pytest.mark.parametrize(("payload", "text"), [(None, ""), (None, "  \r\n\t "), ({}, "")])
def test_empty_body_reason(payload: Any, text: str) -> None:
    """An empty body still gives a reason that says what happened."""
    error = api_error_for(500, payload, text, method="GET", path=PATH)
    assert "HTTP 500 with an empty body" == error.reason


@pytest.mark.parametrize(
    ("payload", "text"),
    [
        ({"error": "oops"}, '{"error": "oops"}'),
        ({"reason": None}, '{"reason": null}'),
        (["oops"], '["oops"]'),
        ("oops", '"oops"'),
    ],
)
def test_json_without_reason_falls_back_to_body(payload: Any, text: str) -> None:
    """JSON without a usable reason uses the body text as the reason."""
    error = api_error_for(400, payload, text, method="POST", path=PATH)
    assert text == error.reason


def test_non_string_reason_is_stringified() -> None:
    """A reason that is not a string is shown as text."""
    error = api_error_for(400, {"reason": 42}, "", method="POST", path=PATH)
    assert "42" == error.reason


@pytest.mark.parametrize(
    ("details", "expected"),
    [
        ({"position": "Missing required field"}, {"position": ["Missing required field"]}),
        ({"position": ["a", "b"]}, {"position": ["a", "b"]}),
        ({"position": 5}, {"position": ["5"]}),
        ({"position": [1, None]}, {"position": ["1", "None"]}),
        ({3: "x"}, {"3": ["x"]}),
        (["not", "a", "mapping"], {}),
        ("text", {}),
        (None, {}),
    ],
)
def test_details_normalised_to_lists_of_strings(details: Any, expected: dict[str, Any]) -> None:
    """exception_details always maps field names to lists of messages."""
    payload = {"reason": "Invalid", "exception_details": details}
    error = api_error_for(422, payload, "", method="PUT", path=PATH)
    assert expected == error.exception_details


def test_retry_after_and_headers_kept() -> None:
    """The parsed Retry-After and the response headers travel on the error."""
    error = api_error_for(
        429, None, "", method="GET", path=PATH, headers={"Retry-After": "3"}, retry_after=3.0
    )
    assert (3.0, {"Retry-After": "3"}) == (error.retry_after, error.headers)


def test_api_error_defaults() -> None:
    """Without headers or Retry-After the error has empty headers and no wait."""
    error = api_error_for(500, None, "", method="GET", path=PATH)
    assert (None, {}, 1) == (error.retry_after, error.headers, error.attempts)


# -- the tree ------------------------------------------------------------------------

EXCEPTION_CLASSES = [
    getattr(errors_module, name)
    for name in errors_module.__all__
    if isinstance(getattr(errors_module, name), type)
]


@pytest.mark.parametrize("cls", EXCEPTION_CLASSES, ids=lambda cls: cls.__name__)
def test_every_error_is_a_luigis_box_error(cls: type[Exception]) -> None:
    """Every exception class of the library derives from LuigisBoxError."""
    assert True is issubclass(cls, LuigisBoxError)


@pytest.mark.parametrize(
    ("cls", "base"),
    [
        (InvalidCustomizationError, ValueError),
        (ConfigurationError, ValueError),
        (ClientClosedError, RuntimeError),
        (EventLoopError, RuntimeError),
        (RequestTimeoutError, TransportError),
        (RedirectError, APIError),
        (ConflictError, APIError),
        (PayloadTooLargeError, APIError),
        (BadRequestError, APIError),
        (AuthenticationError, APIError),
        (NotFoundError, APIError),
        (UnprocessableEntityError, APIError),
        (RateLimitError, APIError),
        (ServerError, APIError),
    ],
)
def test_error_bases(cls: type[Exception], base: type[Exception]) -> None:
    """The tree drawn in the errors docstring holds."""
    assert True is issubclass(cls, base)


def _examples() -> list[LuigisBoxError]:
    """One instance of every error class, with every attribute set."""
    made: list[LuigisBoxError] = []
    for cls in EXCEPTION_CLASSES:
        if issubclass(cls, APIError):
            error: LuigisBoxError = cls(
                409, "Conflict", method="POST", path="/p", exception_details={"f": ["m"]},
                headers={"Retry-After": "2"},
            )
        elif issubclass(cls, TransportError):
            error = cls("dropped", method="PUT", path="/p", connect_failed=True)
        elif cls is DecodingError:
            error = DecodingError(
                "expected JSON", status=200, content_type="text/html", body=b"<html>",
                method="GET", path="/p",
            )
        else:
            error = cls("message")
        error.attempts = 3
        made.append(error)
    return made


@pytest.mark.parametrize("error", _examples(), ids=lambda e: type(e).__name__)
def test_every_error_pickles_with_its_attributes(error: LuigisBoxError) -> None:
    """An error crosses a process boundary intact: class, message and attributes."""
    copy = pickle.loads(pickle.dumps(error))

    assert (type(error), str(error), vars(error)) == (type(copy), str(copy), vars(copy))


def test_transport_error_fields_and_str() -> None:
    """A TransportError names method and path; connect_failed defaults to False."""
    error = TransportError("timed out after 30.0s", method="POST", path=PATH)
    expected = (f"POST {PATH}: timed out after 30.0s", "POST", PATH, False)
    assert expected == (str(error), error.method, error.path, error.connect_failed)


# -- the client, against a mocked aiohttp --------------------------------------------


class _Response(aiohttp.ClientResponse):
    """aioresponses 0.7.9 omits ``stream_writer``, which aiohttp >= 3.14 requires."""

    def __init__(self, method: str, url: URL, **kwargs: Any) -> None:
        kwargs.setdefault("stream_writer", types.SimpleNamespace(output_size=0))
        super().__init__(method, url, **kwargs)


_NEEDS_STREAM_WRITER = "stream_writer" in inspect.signature(aiohttp.ClientResponse).parameters
RESPONSE = {"response_class": _Response} if _NEEDS_STREAM_WRITER else {}
STORED = {
    "id": CUSTOMIZATION_ID,
    "model": "basket",
    "target_type": "all",
    "pin_definitions": [],
    "created_at": "2025-01-20T12:00:00Z",
}
NEW = Customization("basket", "all")


@pytest.fixture
def mocked() -> Iterator[aioresponses]:
    with aioresponses() as mock:
        yield mock


@pytest.fixture
def sleeps() -> list[float]:
    return []


def make_client(sleeps: list[float], **policy: Any) -> LuigisBoxClient:
    """A client whose retries record their sleeps instead of waiting."""

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    retry = RetryPolicy(sleep=sleep, random=lambda: 1.0, **policy)
    return LuigisBoxClient(TRACKER_ID, PRIVATE_KEY, base_url=BASE_URL, retry=retry)


def calls(mock: aioresponses, method: str, url: str) -> int:
    return len(mock.requests.get((method, URL(url)), []))


async def test_non_json_502_gives_server_error_with_readable_reason(
    mocked: aioresponses, sleeps: list[float]
) -> None:
    """An HTML 502 from a proxy surfaces as ServerError whose reason is the page text."""
    mocked.get(SCOPE_URL, status=502, body=HTML_502, content_type="text/html", **RESPONSE)
    async with make_client(sleeps, max_attempts=1) as client:
        with pytest.raises(ServerError) as info:
            await client.get_customization(CUSTOMIZATION_ID)
    expected = (502, HTML_502_REASON, "GET", PATH, 1)
    error = info.value
    assert expected == (error.status, error.reason, error.method, error.path, error.attempts)


async def test_json_error_body_is_parsed(mocked: aioresponses, sleeps: list[float]) -> None:
    """A documented JSON error body gives the reason and details on the error."""
    mocked.put(SCOPE_URL, status=422, payload=SEED_ERROR, **RESPONSE)
    async with make_client(sleeps) as client:
        with pytest.raises(UnprocessableEntityError) as info:
            await client.update_customization(CUSTOMIZATION_ID, NEW)
    expected = ("Invalid pin definition provided", SEED_ERROR["exception_details"])
    assert expected == (info.value.reason, info.value.exception_details)


async def test_connection_error_gives_transport_error_with_cause(
    mocked: aioresponses, sleeps: list[float]
) -> None:
    """A dropped connection surfaces as TransportError chained to the aiohttp error."""
    cause = aiohttp.ClientConnectionError("Connection reset by peer")
    mocked.get(SCOPE_URL, exception=cause)
    async with make_client(sleeps, max_attempts=1) as client:
        with pytest.raises(TransportError) as info:
            await client.get_customization(CUSTOMIZATION_ID)
    error = info.value
    expected = (cause, "GET", PATH, False, 1)
    assert expected == (
        error.__cause__,
        error.method,
        error.path,
        error.connect_failed,
        error.attempts,
    )


async def test_connect_timeout_marks_connect_failed(
    mocked: aioresponses, sleeps: list[float]
) -> None:
    """A connect timeout means the server never saw the request: connect_failed is True."""
    cause = aiohttp.ConnectionTimeoutError("connect timed out")
    mocked.get(SCOPE_URL, exception=cause)
    async with make_client(sleeps, max_attempts=1) as client:
        with pytest.raises(TransportError) as info:
            await client.get_customization(CUSTOMIZATION_ID)
    assert (cause, True) == (info.value.__cause__, info.value.connect_failed)


@pytest.mark.parametrize(
    "cause",
    [TimeoutError(), aiohttp.SocketTimeoutError("read timed out")],
    ids=["total-timeout", "read-timeout"],
)
async def test_timeout_gives_transport_error(
    mocked: aioresponses, sleeps: list[float], cause: Exception
) -> None:
    """A timeout after sending surfaces as TransportError chained to it, not connect_failed."""
    mocked.get(SCOPE_URL, exception=cause)
    async with make_client(sleeps, max_attempts=1) as client:
        with pytest.raises(TransportError) as info:
            await client.get_customization(CUSTOMIZATION_ID)
    assert (cause, False) == (info.value.__cause__, info.value.connect_failed)


async def test_get_503_is_retried_then_succeeds(mocked: aioresponses, sleeps: list[float]) -> None:
    """A GET answered 503 is retried after the backoff and returns the next answer."""
    mocked.get(SCOPE_URL, status=503, body="busy", **RESPONSE)
    mocked.get(SCOPE_URL, status=200, payload=STORED, **RESPONSE)
    async with make_client(sleeps) as client:
        stored = await client.get_customization(CUSTOMIZATION_ID)
    expected = (2, [0.5], CUSTOMIZATION_ID)
    assert expected == (calls(mocked, "GET", SCOPE_URL), sleeps, str(stored.id))


async def test_get_503_retries_run_out(mocked: aioresponses, sleeps: list[float]) -> None:
    """A GET that keeps failing is tried max_attempts times, then the last error surfaces."""
    mocked.get(SCOPE_URL, status=503, body="busy", repeat=True, **RESPONSE)
    async with make_client(sleeps, max_attempts=3) as client:
        with pytest.raises(ServerError) as info:
            await client.get_customization(CUSTOMIZATION_ID)
    expected = (3, [0.5, 1.0], 3)
    assert expected == (calls(mocked, "GET", SCOPE_URL), sleeps, info.value.attempts)


async def test_create_503_is_not_retried(mocked: aioresponses, sleeps: list[float]) -> None:
    """A create answered 503 may have been applied, so it is not retried."""
    mocked.post(CREATE_URL, status=503, body="busy", repeat=True, **RESPONSE)
    async with make_client(sleeps) as client:
        with pytest.raises(ServerError) as info:
            await client.create_customization(NEW)
    expected = (1, [], 1)
    assert expected == (calls(mocked, "POST", CREATE_URL), sleeps, info.value.attempts)


async def test_create_dropped_connection_is_not_retried(
    mocked: aioresponses, sleeps: list[float]
) -> None:
    """A create whose connection dropped after sending may have been applied: not retried."""
    mocked.post(CREATE_URL, exception=aiohttp.ServerDisconnectedError(), repeat=True)
    async with make_client(sleeps) as client:
        with pytest.raises(TransportError):
            await client.create_customization(NEW)
    assert (1, []) == (calls(mocked, "POST", CREATE_URL), sleeps)


async def test_create_429_is_retried(mocked: aioresponses, sleeps: list[float]) -> None:
    """A create answered 429 was surely not applied, so it is retried."""
    mocked.post(CREATE_URL, status=429, payload={"reason": "Too many requests"}, **RESPONSE)
    mocked.post(CREATE_URL, status=201, payload=STORED, **RESPONSE)
    async with make_client(sleeps) as client:
        stored = await client.create_customization(NEW)
    expected = (2, [0.5], CUSTOMIZATION_ID)
    assert expected == (calls(mocked, "POST", CREATE_URL), sleeps, str(stored.id))


async def test_create_429_waits_retry_after(mocked: aioresponses, sleeps: list[float]) -> None:
    """A 429 with Retry-After is retried after exactly that many seconds."""
    mocked.post(CREATE_URL, status=429, headers={"Retry-After": "2"}, body="", **RESPONSE)
    mocked.post(CREATE_URL, status=201, payload=STORED, **RESPONSE)
    async with make_client(sleeps) as client:
        await client.create_customization(NEW)
    assert [2.5] == sleeps  # Retry-After: 2, plus the most jitter (a quarter)


async def test_create_connect_timeout_is_retried(mocked: aioresponses, sleeps: list[float]) -> None:
    """A create that never reached the server (connect failed) is retried."""
    mocked.post(CREATE_URL, exception=aiohttp.ConnectionTimeoutError("connect timed out"))
    mocked.post(CREATE_URL, status=201, payload=STORED, **RESPONSE)
    async with make_client(sleeps) as client:
        stored = await client.create_customization(NEW)
    assert (2, StoredCustomization) == (calls(mocked, "POST", CREATE_URL), type(stored))


# -- the private key never leaks -----------------------------------------------------

FAILURES = {
    "400": {"status": 400, "payload": SEED_ERROR},
    "401": {"status": 401, "payload": {"reason": "Invalid signature"}},
    "404": {"status": 404, "payload": {"reason": "Not found"}},
    "422": {"status": 422, "payload": SEED_ERROR},
    "429": {"status": 429, "body": "", "headers": {"Retry-After": "3600"}},
    "500": {"status": 500, "body": ""},
    "502": {"status": 502, "body": HTML_502, "content_type": "text/html"},
    "503": {"status": 503, "body": "busy"},
    "dropped": {"exception": aiohttp.ClientConnectionError("reset")},
    "connect": {"exception": aiohttp.ConnectionTimeoutError("connect timed out")},
}


@pytest.mark.parametrize("failure", FAILURES.values(), ids=FAILURES.keys())
async def test_errors_never_show_the_private_key(
    mocked: aioresponses, sleeps: list[float], failure: dict[str, Any]
) -> None:
    """Neither str nor repr of a raised error contains the private key."""
    extra = RESPONSE if "exception" not in failure else {}
    mocked.get(SCOPE_URL, **failure, **extra)
    async with make_client(sleeps, max_attempts=1) as client:
        with pytest.raises(LuigisBoxError) as info:
            await client.get_customization(CUSTOMIZATION_ID)
    shown = (str(info.value), repr(info.value), repr(vars(info.value)))
    assert [] == [text for text in shown if PRIVATE_KEY in text]


@pytest.mark.parametrize("state", ["unopened", "open", "closed"])
async def test_client_repr_never_shows_the_private_key(state: str) -> None:
    """repr(client) in every lifecycle state shows the tracker, never the key."""
    client = LuigisBoxClient(TRACKER_ID, PRIVATE_KEY, base_url=BASE_URL)
    if state != "unopened":
        await client.__aenter__()
    if state == "closed":
        await client.close()
    expected = f"<LuigisBoxClient tracker_id='1234-5678' {state} {BASE_URL}>"
    try:
        assert expected == repr(client)
    finally:
        await client.close()


async def test_private_key_never_sent(mocked: aioresponses, sleeps: list[float]) -> None:
    """The key signs the request but is not itself in any header sent."""
    mocked.get(SCOPE_URL, status=200, payload=STORED, **RESPONSE)
    async with make_client(sleeps) as client:
        await client.get_customization(CUSTOMIZATION_ID)
    (request,) = mocked.requests[("GET", URL(SCOPE_URL))]
    headers = request.kwargs["headers"]
    assert [] == [name for name, value in headers.items() if PRIVATE_KEY in value]


def test_package_exports_the_error_tree() -> None:
    """Every exception class is importable from the package root."""
    assert [] == [
        cls.__name__
        for cls in EXCEPTION_CLASSES
        if getattr(luigis_async, cls.__name__, None) is not cls
    ]

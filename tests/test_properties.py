"""Property-based tests: the schema round-trips, client and sandbox agree, signing holds."""

from __future__ import annotations

import json
import string
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from luigis_async import (
    Customization,
    InvalidCustomizationError,
    PinDefinition,
    StoredCustomization,
    converter,
)
from luigis_async.auth import CONTENT_TYPE, Signer, http_date, sign
from luigis_async.convert import dumps, structure_customization
from luigis_async.sandbox.validation import check

from .helpers import authentication_failure

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

text = st.text(min_size=1, max_size=20).filter(lambda s: s.strip() != "")
json_scalars = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=10)
json_values = st.recursive(
    json_scalars | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
json_objects = st.dictionaries(st.text(max_size=8), json_values, max_size=4)
offsets = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
aware = st.datetimes(
    min_value=datetime(2000, 1, 2), max_value=datetime(2099, 12, 30), timezones=offsets
)


@st.composite
def pins(draw: st.DrawFn) -> PinDefinition:
    pin_type = draw(st.sampled_from(["item", "criteria"]))
    start = draw(st.none() | aware)
    end = draw(st.none() | aware)
    if start is not None and end is not None and start > end:
        start, end = end, start
    return PinDefinition(
        position=draw(st.integers(-1, 1000)),
        pin_type=pin_type,
        pin_identity=draw(text) if pin_type == "item" else draw(st.none() | text),
        pin_criteria=draw(json_objects)
        if pin_type == "criteria"
        else draw(st.none() | json_objects),
        widget_id=draw(st.none() | st.text(max_size=10)),
        is_block_pin=draw(st.none() | st.booleans()),
        is_bundle_pin=draw(st.none() | st.booleans()),
        active_from=start,
        active_to=end,
    )


@st.composite
def customizations(draw: st.DrawFn) -> Customization:
    target_type = draw(st.sampled_from(["item", "criteria", "all"]))
    return Customization(
        draw(text),
        target_type,
        target_identity=draw(text) if target_type == "item" else draw(st.none() | text),
        target_criteria=(
            draw(json_objects) if target_type == "criteria" else draw(st.none() | json_objects)
        ),
        target_metadata=draw(st.none() | json_objects),
        tags=draw(st.lists(st.text(max_size=10), max_size=4)),
        pin_definitions=draw(st.lists(pins(), max_size=5)),
    )


@SETTINGS
@given(customizations())
def test_any_valid_customization_survives_json(customization: Customization) -> None:
    """unstructure -> JSON text -> parse -> structure gives back an equal model."""
    wire = json.loads(dumps(customization))

    assert customization == structure_customization(wire)


@SETTINGS
@given(customizations(), st.uuids(), aware)
def test_any_stored_customization_survives_json(
    customization: Customization, cid: Any, created: datetime
) -> None:
    """The same holds for what the server returns, read-only fields included."""
    fields = {f.name: getattr(customization, f.name) for f in attrs.fields(Customization)}
    stored = StoredCustomization(
        **fields,
        id=cid,
        created_at=created,
        creator="x",
        available=True,
    )
    wire = json.loads(json.dumps(converter.unstructure(stored)))

    assert stored == structure_customization(wire, StoredCustomization)


# Bodies from "almost valid" parts: each field drawn from good and bad values alike.
maybe_text = st.none() | st.just("") | st.just("  ") | text | st.integers() | st.booleans()
maybe_object = st.none() | json_objects | st.lists(st.integers(), max_size=2) | st.text(max_size=3)
maybe_date = (
    st.none()
    | aware.map(lambda d: d.isoformat())
    | st.datetimes(min_value=datetime(2000, 1, 1)).map(lambda d: d.isoformat())
    | st.sampled_from(["soon", "2025-13-01T00:00:00Z", "2025-02-01T00:00:00Z", ""])
    | st.integers()
)
raw_pins = st.fixed_dictionaries(
    {},
    optional={
        "position": st.integers(-3, 5) | st.booleans() | st.floats(-2, 5) | st.text(max_size=2),
        "pin_type": st.sampled_from(["item", "criteria", "ITEM", "", "other"]) | st.integers(),
        "pin_identity": maybe_text,
        "pin_criteria": maybe_object,
        "widget_id": maybe_text,
        "is_block_pin": st.none() | st.booleans() | st.integers(0, 1) | st.just("true"),
        "is_bundle_pin": st.none() | st.booleans() | st.just("false"),
        "active_from": maybe_date,
        "active_to": maybe_date,
    },
)
raw_bodies = st.fixed_dictionaries(
    {},
    optional={
        "model": maybe_text,
        "target_type": st.sampled_from(["item", "criteria", "all", "none"]) | st.integers(),
        "target_identity": maybe_text,
        "target_criteria": maybe_object,
        "target_metadata": maybe_object,
        "tags": st.none() | st.lists(st.text(max_size=4) | st.integers(), max_size=3) | text,
        "pin_definitions": st.none() | st.lists(raw_pins | st.integers(), max_size=3) | st.just({}),
        "unknown_field": json_values,
    },
)


@st.composite
def mutated_bodies(draw: st.DrawFn) -> dict[str, Any]:
    """A valid body with one field (top-level or in a pin) replaced, removed, or kept."""
    body: dict[str, Any] = json.loads(dumps(draw(customizations())))
    raw = draw(raw_bodies)
    target = body
    if body["pin_definitions"] and draw(st.booleans()):
        target = draw(st.sampled_from(body["pin_definitions"]))
        raw = draw(raw_pins)
    action = draw(st.sampled_from(["keep", "replace", "remove"]))
    if action == "replace" and raw:
        name = draw(st.sampled_from(sorted(raw)))
        target[name] = raw[name]
    elif action == "remove" and target:
        del target[draw(st.sampled_from(sorted(target)))]
    return body


@pytest.mark.slow
@settings(max_examples=1000, deadline=None)
@given(raw_bodies | mutated_bodies())
def test_client_validation_and_the_sandbox_agree(body: dict[str, Any]) -> None:
    """A body is valid for the client's models exactly when the sandbox accepts it."""
    try:
        structure_customization(json.loads(json.dumps(body)))
        client_accepts = True
    except InvalidCustomizationError:
        client_accepts = False

    assert (check(body) == {}) == client_accepts, check(body)


methods = st.sampled_from(["GET", "PUT", "POST", "DELETE"])
paths = st.builds(
    lambda tracker, rest: f"/v1/recommender/pin/{tracker}/{rest}",
    st.text(string.ascii_letters + string.digits + "-", min_size=1, max_size=12),
    st.text(string.ascii_letters + string.digits + "/-%._~", max_size=60),
)
keys = st.text(min_size=1, max_size=64)
instants = st.integers(0, 4_000_000_000)


@SETTINGS
@given(methods, paths, instants, keys)
def test_the_sandbox_accepts_every_client_signature(
    method: str, path: str, now: int, key: str
) -> None:
    """Whatever the method, path, date and key, the verifier accepts the Signer's headers."""
    tracker = path.split("/")[4]
    headers = Signer(tracker, key, clock=lambda: now).headers(method, path)

    failure = authentication_failure(
        method=method,
        path=path,
        headers=headers,
        tracker_id=tracker,
        private_key=key,
        now=float(now),
        max_skew=5.0,
    )

    assert failure is None


@SETTINGS
@given(
    methods,
    paths,
    instants,
    keys,
    st.sampled_from(["method", "path", "date", "key", "content_type"]),
    st.data(),
)
def test_changing_any_signed_component_is_rejected(
    method: str, path: str, now: int, key: str, component: str, data: st.DataObject
) -> None:
    """A signature made with any one component changed never verifies."""
    tracker = path.split("/")[4]
    parts = {
        "method": method,
        "path": path,
        "date": http_date(now),
        "key": key,
        "content_type": CONTENT_TYPE,
    }
    changed = dict(parts)
    if component == "method":
        changed["method"] = data.draw(methods.filter(lambda m: m != method))
    elif component == "path":
        changed["path"] = path + data.draw(st.sampled_from(["/", "x", "%2F"]))
    elif component == "date":
        changed["date"] = http_date(now + data.draw(st.integers(1, 4)))
    elif component == "key":
        changed["key"] = data.draw(keys.filter(lambda k: k != key))
    else:
        changed["content_type"] = "application/json"
    signature = sign(
        changed["key"], changed["method"], changed["content_type"], changed["date"], changed["path"]
    )
    assume(signature != sign(key, method, CONTENT_TYPE, http_date(now), path))

    failure = authentication_failure(
        method=method,
        path=path,
        headers={
            "Content-Type": CONTENT_TYPE,
            "Date": http_date(now),
            "Authorization": f"ApiAuth {tracker}:{signature}",
        },
        tracker_id=tracker,
        private_key=key,
        now=float(now),
        max_skew=5.0,
    )

    assert failure is not None and "signature" in failure.lower()


def test_a_signature_example_by_hand() -> None:
    """The properties above are not vacuous: one fixed case, computed independently."""
    now = datetime(2025, 1, 20, 12, tzinfo=UTC).timestamp()
    headers = Signer("1234-5678", "k", clock=lambda: now).headers("PUT", "/v1/x")
    assert "Mon, 20 Jan 2025 12:00:00 GMT" == headers["Date"]
    assert (
        f"ApiAuth 1234-5678:{sign('k', 'PUT', CONTENT_TYPE, headers['Date'], '/v1/x')}"
        == (headers["Authorization"])
    )


@SETTINGS
@given(customizations())
def test_both_json_encoders_write_the_same_json(customization: Customization) -> None:
    """With or without the fast extra, the body on the wire is the same JSON (floats may be
    spelled differently, e.g. 1e-05 and 0.00001)."""
    orjson = pytest.importorskip("orjson")
    from luigis_async.jsonenc import _dumps_stdlib

    body = converter.unstructure(customization, Customization)

    assert json.loads(_dumps_stdlib(body)) == json.loads(orjson.dumps(body))

"""Validation of a raw customization body (create and update), as the API does it.

Deliberately independent of the client's attrs models: the sandbox is the referee the
client's own validation is tested against, so it must not share that code (or its bugs).
Every broken rule adds a message under its field's path (``pin_definitions[2].position``);
a body with any pin error is a 422, otherwise a 400, as the real service answers.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

__all__ = [
    "CONFIG_REASON",
    "PIN_REASON",
    "READ_ONLY_FIELDS",
    "InvalidCustomization",
    "check",
    "validated",
]

CONFIG_REASON = "Invalid configuration provided"
PIN_REASON = "Invalid pin definition provided"
#: Fields the server sets; ignored (and never stored) when a client sends them.
READ_ONLY_FIELDS = frozenset({"id", "created_at", "creator", "available"})

TARGET_TYPES = ("item", "criteria", "all")
PIN_TYPES = ("item", "criteria")
_MISSING = "Missing required field"

Errors = dict[str, list[str]]
Add = Callable[[str, str], None]


class InvalidCustomization(ValueError):
    """A body that breaks a rule; ``status`` and ``reason`` are what the API answers."""

    def __init__(self, details: Errors) -> None:
        self.details = details
        pin_error = any(path.startswith("pin_definitions[") for path in details)
        self.status, self.reason = (422, PIN_REASON) if pin_error else (400, CONFIG_REASON)
        text = "; ".join(f"{path}: {', '.join(msgs)}" for path, msgs in details.items())
        super().__init__(f"{self.reason} ({text})")


def validated(body: Mapping[str, Any]) -> dict[str, Any]:
    """The body as it is stored: a copy without null and read-only fields.

    Raises:
        InvalidCustomization: listing every broken rule.
    """
    if not isinstance(body, Mapping):
        raise InvalidCustomization({"body": ["Must be a JSON object"]})
    errors = check(body)
    if errors:
        raise InvalidCustomization(errors)
    stored = _without_nulls(body)
    pins = stored["pin_definitions"]
    stored["pin_definitions"] = [_without_nulls(pin) for pin in pins]
    return copy.deepcopy(stored)


def _without_nulls(fields: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None and k not in READ_ONLY_FIELDS}


def check(body: Mapping[str, Any]) -> Errors:
    """Every broken rule, as ``{field path: [message, ...]}``; empty when valid."""
    errors: Errors = {}

    def add(path: str, message: str) -> None:
        errors.setdefault(path, []).append(message)

    _string(body, "model", "model", add, required=True)
    target_type = body.get("target_type")
    _choice(target_type, "target_type", TARGET_TYPES, add)
    _string(body, "target_identity", "target_identity", add, required=target_type == "item")
    _object(body, "target_criteria", "target_criteria", add, required=target_type == "criteria")
    _object(body, "target_metadata", "target_metadata", add, required=False)
    tags = body.get("tags")
    if tags is not None and not (
        isinstance(tags, list) and all(isinstance(tag, str) for tag in tags)
    ):
        add("tags", "Must be an array of strings")
    pins = body.get("pin_definitions")
    if pins is None:
        add("pin_definitions", _MISSING)
    elif not isinstance(pins, list):
        add("pin_definitions", "Must be an array of pin objects")
    else:
        for index, pin in enumerate(pins):
            _check_pin(pin, f"pin_definitions[{index}]", add)
    return errors


def _check_pin(pin: Any, path: str, add: Add) -> None:
    if not isinstance(pin, Mapping):
        add(path, "Must be a JSON object")
        return
    position = pin.get("position")
    if position is None:
        add(f"{path}.position", _MISSING)
    elif type(position) is not int or position < -1:
        add(f"{path}.position", "Must be an integer >= -1")
    pin_type = pin.get("pin_type")
    _choice(pin_type, f"{path}.pin_type", PIN_TYPES, add)
    _string(pin, "pin_identity", f"{path}.pin_identity", add, required=pin_type == "item")
    _object(pin, "pin_criteria", f"{path}.pin_criteria", add, required=pin_type == "criteria")
    _string(pin, "widget_id", f"{path}.widget_id", add, required=False, empty_ok=True)
    for flag in ("is_block_pin", "is_bundle_pin"):
        if pin.get(flag) is not None and not isinstance(pin[flag], bool):
            add(f"{path}.{flag}", "Must be a boolean")
    active_from = _datetime(pin.get("active_from"), f"{path}.active_from", add)
    active_to = _datetime(pin.get("active_to"), f"{path}.active_to", add)
    if active_from is not None and active_to is not None and active_from > active_to:
        add(f"{path}.active_to", "Must not be before active_from")


def _choice(value: Any, path: str, choices: tuple[str, ...], add: Add) -> None:
    if value is None:
        add(path, _MISSING)
    elif value not in choices:
        add(path, f"Must be one of: {', '.join(choices)}")


def _string(
    fields: Mapping[str, Any],
    name: str,
    path: str,
    add: Add,
    *,
    required: bool,
    empty_ok: bool = False,
) -> None:
    value = fields.get(name)
    if value is None:
        if required:
            add(path, _MISSING)
    elif not isinstance(value, str):
        add(path, "Must be a string")
    elif not value.strip() and not empty_ok:
        add(path, "Must be a non-blank string")


def _object(fields: Mapping[str, Any], name: str, path: str, add: Add, *, required: bool) -> None:
    value = fields.get(name)
    if value is None:
        if required:
            add(path, _MISSING)
    elif not isinstance(value, dict):
        add(path, "Must be a JSON object")


def _datetime(value: Any, path: str, add: Add) -> datetime | None:
    """The parsed date-time, or None when absent or invalid (then an error is added)."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        add(path, "Must be an ISO 8601 date-time with a timezone, e.g. 2025-02-01T00:00:00Z")
        return None
    return parsed

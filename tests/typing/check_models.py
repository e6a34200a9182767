"""What type checkers accept and refuse in the models: checked by mypy and pyright in CI.

Not a pytest module (pytest collects ``test_*.py`` only). Each refused call carries a
``# type: ignore[code]``: with ``warn_unused_ignores`` (part of mypy's ``--strict``) and
pyright's ``reportUnnecessaryTypeIgnoreComment``, a call that a checker wrongly *accepts*
leaves an unused ignore, and the check fails.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, assert_type

from luigis_async import (
    Customization,
    CustomizationUpdate,
    DeleteRequest,
    PinDefinition,
    PinType,
    StoredCustomization,
    TargetType,
)
from luigis_async.models import PinTypeValue, TargetTypeValue

WHEN = datetime(2025, 2, 1, tzinfo=UTC)
PIN = PinDefinition(position=1, pin_type="item", pin_identity="/p/555")


def accepted() -> None:
    """The documented calls type-check, with the enum or its string value."""
    Customization("basket", "item", target_identity="/p/1", pin_definitions=[PIN])
    Customization("basket", TargetType.CRITERIA, target_criteria={"brand": ["Fender"]})
    Customization(model="basket", target_type="all", tags=["a", "b"])
    Customization("basket", "all", tags=("a",), target_metadata={"note": 1})
    PinDefinition(position=2, pin_type=PinType.CRITERIA, pin_criteria={"brand": "Roland"})
    PinDefinition(position=1, pin_type="item", pin_identity="/p/1", active_from=WHEN)
    PinDefinition(position=1, pin_type="item", pin_identity="/p/1", active_to=None)
    StoredCustomization("basket", "all", id=uuid.uuid4(), created_at=WHEN)
    StoredCustomization("basket", "all", id="199620b4-df1a-46e8-ab59-9e9ed9af7106")
    CustomizationUpdate("199620b4-df1a-46e8-ab59-9e9ed9af7106", Customization("b", "all"))
    DeleteRequest(uuid.uuid4())
    kind: TargetTypeValue = "criteria"
    Customization("basket", kind, target_criteria={"brand": "Fender"})
    pin_kind: PinTypeValue = "item"
    PinDefinition(position=1, pin_type=pin_kind, pin_identity="/p/1")


def attribute_types(stored: StoredCustomization) -> None:
    """Attributes read back with precise types: enums, not strings; read-only mappings."""
    assert_type(stored.target_type, TargetType)
    assert_type(stored.target_criteria, Mapping[str, Any] | None)
    assert_type(stored.target_metadata, Mapping[str, Any] | None)
    assert_type(stored.tags, tuple[str, ...])
    assert_type(stored.pin_definitions, tuple[PinDefinition, ...])
    assert_type(stored.id, uuid.UUID | None)
    assert_type(stored.created_at, datetime | None)
    pin = stored.pin_definitions[0]
    assert_type(pin.pin_type, PinType)
    assert_type(pin.pin_criteria, Mapping[str, Any] | None)
    assert_type(pin.active_from, datetime | None)


def refused(stored: StoredCustomization, name: str) -> None:
    """Calls that fail at run time are type errors."""
    # Only model and target_type are positional: criteria, identity, pins are keywords.
    Customization("basket", "criteria", {"brand": "Fender"})  # type: ignore[call-arg, dict-item]
    Customization("basket", "item", "/p/1")  # type: ignore[call-arg, arg-type]
    # Every field of a pin is a keyword.
    PinDefinition(1, "item", "/p/1")  # type: ignore[call-arg]
    # A misspelt kind, a kind of the other enum, or any str.
    Customization("basket", "itme", target_identity="/p/1")  # type: ignore[arg-type]
    PinDefinition(position=1, pin_type="all", pin_identity="/p/1")  # type: ignore[arg-type]
    PinDefinition(position=1, pin_type=TargetType.ITEM, pin_identity="/p/1")  # type: ignore[arg-type]
    Customization("basket", name)  # type: ignore[arg-type]
    # Dates are datetimes, not strings.
    PinDefinition(position=1, pin_type="item", pin_identity="/p/1", active_from="2025-02-01")  # type: ignore[arg-type]
    StoredCustomization("basket", "all", created_at="2025-02-01T00:00:00Z")  # type: ignore[arg-type]
    # Criteria are JSON objects; pins are PinDefinitions; tags are strings.
    Customization("basket", "criteria", target_criteria=["brand"])  # type: ignore[arg-type]
    Customization("basket", "all", pin_definitions=[{"position": 1}])  # type: ignore[list-item]
    Customization("basket", "all", tags=[1, 2])  # type: ignore[list-item]
    # The criteria a model holds are read-only.
    stored.target_criteria["brand"] = "Gibson"  # type: ignore[index]
    # Models are frozen.
    stored.model = "other"  # type: ignore[misc]

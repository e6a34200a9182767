"""Demo data: what a sandbox holds when a command runs against ``--sandbox``.

``demo_customizations`` are realistic and seeded (the example file and
``export --sandbox`` use them): a music-gear shop's carts, product details and category
pages with 1-5 pins each, some pins scheduled (``active_from`` / ``active_to``), some
customizations tagged by campaign. The same seed always gives the same customizations,
IDs included. ``seed_placeholders`` gives ``push --sandbox`` something to update, and
``seed_sync_demo`` gives a ``sync --sandbox`` plan every kind of change.
"""

from __future__ import annotations

import random
import threading
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import attrs

from luigis_async.convert import converter, format_datetime
from luigis_async.models import Customization, PinDefinition
from luigis_async.sandbox.server import Sandbox

__all__ = [
    "DEFAULT_SEED",
    "PLACEHOLDER",
    "demo_customizations",
    "seed_demo_customizations",
    "seed_placeholders",
    "seed_sync_demo",
]

DEFAULT_SEED: Final = 2025

#: Each model with the target types it is usually configured for.
_MODELS: Final = {
    "basket": ("item", "all"),
    "item_detail_complements": ("item",),
    "item_detail_alternatives": ("item",),
    "category_bestsellers": ("criteria",),
    "homepage_trending": ("all",),
    "last_seen_similar": ("item", "criteria"),
}
_CATEGORIES: Final = (
    "Electric guitars", "Acoustic guitars", "Bass guitars", "Amplifiers", "Effects pedals",
    "Drums", "Keyboards", "Microphones", "Headphones", "Studio monitors", "Cables", "Strings",
)
_BRANDS: Final = (
    "Fender", "Gibson", "Ibanez", "Yamaha", "Roland", "Boss", "Marshall", "Shure",
    "Sennheiser", "Korg", "Ernie Ball", "Audio-Technica",
)
_TAGS: Final = (
    "summer-sale", "black-friday", "new-arrivals", "clearance", "brand-week", "manual",
    "merchandising", "christmas",
)
_EPOCH: Final = datetime(2025, 1, 1, tzinfo=UTC)


def _product(rng: random.Random) -> str:
    return f"/p/{rng.randint(10_000, 99_999)}"


def _criteria(rng: random.Random) -> dict[str, Any]:
    criteria: dict[str, Any] = {"category": [rng.choice(_CATEGORIES)]}
    if rng.random() < 0.4:
        criteria["brand"] = sorted(rng.sample(_BRANDS, rng.randint(1, 2)))
    return criteria


def _pin(rng: random.Random, position: int) -> dict[str, Any]:
    pin: dict[str, Any] = {"position": position}
    if rng.random() < 0.75:
        pin |= {"pin_type": "item", "pin_identity": _product(rng)}
    else:
        pin |= {"pin_type": "criteria", "pin_criteria": {"brand": [rng.choice(_BRANDS)]}}
    if rng.random() < 0.3:
        start = _EPOCH + timedelta(days=rng.randint(0, 540), hours=rng.choice((0, 6, 9)))
        pin["active_from"] = format_datetime(start)
        if rng.random() < 0.8:
            pin["active_to"] = format_datetime(start + timedelta(days=rng.randint(3, 60)))
    return pin


def _body(rng: random.Random) -> dict[str, Any]:
    model = rng.choice(sorted(_MODELS))
    target_type = rng.choice(_MODELS[model])
    body: dict[str, Any] = {"model": model, "target_type": target_type}
    if target_type == "item":
        body["target_identity"] = _product(rng)
    elif target_type == "criteria":
        body["target_criteria"] = _criteria(rng)
    positions = sorted(rng.sample(range(1, 11), rng.randint(1, 5)))
    body["pin_definitions"] = [_pin(rng, position) for position in positions]
    body["tags"] = sorted(rng.sample(_TAGS, rng.choice((0, 0, 1, 1, 2))))
    return body


def demo_customizations(
    count: int, *, seed: int = DEFAULT_SEED
) -> Iterator[tuple[str, dict[str, Any]]]:
    """``count`` pairs of (customization ID, API body), the same for the same seed."""
    rng = random.Random(seed)
    for _ in range(count):
        yield str(uuid.UUID(int=rng.getrandbits(128), version=4)), _body(rng)


def seed_demo_customizations(sandbox: Sandbox, count: int, *, seed: int = DEFAULT_SEED) -> None:
    """Store ``count`` demo customizations under their IDs."""
    for customization_id, body in demo_customizations(count, seed=seed):
        sandbox.add(body, customization_id)


#: The body a sandbox holds for each ID of a file before ``push --sandbox`` replaces it.
PLACEHOLDER: Final[Mapping[str, Any]] = {
    "model": "placeholder",
    "target_type": "all",
    "pin_definitions": [],
}


def seed_placeholders(
    sandbox: Sandbox, ids: Iterable[str], stop: threading.Event | None = None
) -> int:
    """Store ``PLACEHOLDER`` under each new ID, so a push has something to update.

    Returns how many were added; stops early once ``stop`` is set (from another thread).
    """
    added = 0
    for key in ids:
        if stop is not None and stop.is_set():
            break
        if key not in sandbox.store:
            sandbox.add(PLACEHOLDER, key)
            added += 1
    return added


#: Products no demo desired set uses: the demo's are /p/10000 to /p/99999.
_OTHER_PINS: Final = (PinDefinition(position=1, pin_type="item", pin_identity="/p/9996"),)
_RETIRED: Final = Customization(
    "basket", "item", target_identity="/p/9999", pin_definitions=_OTHER_PINS, tags=("christmas",)
)
_HAND_MADE: Final = (
    Customization(
        "item_detail_complements",
        "item",
        target_identity="/p/9998",
        pin_definitions=_OTHER_PINS,
        tags=("manual",),
    ),
    Customization(
        "category_bestsellers",
        "criteria",
        target_criteria={"category": ["Drums"]},
        pin_definitions=[
            PinDefinition(position=1, pin_type="criteria", pin_criteria={"brand": ["Roland"]})
        ],
        tags=("merchandising",),
    ),
)


def seed_sync_demo(sandbox: Sandbox, desired: Sequence[Customization], managed_tag: str) -> None:
    """Give a demo sync plan every kind of change.

    Managed copies of the first desired customizations, two with other bodies (updates)
    and one equal (unchanged); one managed customization no longer desired (a delete with
    ``--prune``); and two made by hand, without the tag, that sync never touches.
    """

    def add(customization: Customization) -> None:
        sandbox.add(converter.unstructure(customization, Customization))

    def managed(customization: Customization, **changes: Any) -> Customization:
        tags = tuple(tag for tag in customization.tags if tag != managed_tag)
        return attrs.evolve(customization, **{"tags": (*tags, managed_tag), **changes})

    edits: list[dict[str, Any]] = [
        {"pin_definitions": _OTHER_PINS},
        {"tags": (managed_tag, "clearance")},
        {},
    ]
    for customization, changes in zip(desired, edits, strict=False):
        add(managed(customization, **changes))
    add(managed(_RETIRED))
    for customization in _HAND_MADE:
        add(customization)

"""Realistic, seeded demo customizations: the example file and ``export --sandbox`` use them.

A music-gear shop: carts, product details and category pages with 1-5 pins each, some
pins scheduled (``active_from`` / ``active_to``), some customizations tagged by campaign.
The same seed always gives the same customizations, IDs included.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from luigis_async.convert import format_datetime

__all__ = ["DEFAULT_SEED", "demo_customizations"]

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

"""Write ``examples/pins.jsonl``: 1,000 realistic pin updates and 5 deliberately bad lines.

Deterministic (seeded): running it again writes the same file. The bad lines show the
failures file at work; each breaks one rule, as its comment below says.

    python examples/make_pins.py [PATH]

It imports the package's demo generator: run it where ``luigis_async`` is importable
(installed, e.g. ``pip install -e .``, or from the repository root with ``PYTHONPATH=.``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from luigis_async.sandbox.demo import demo_customizations

COUNT = 1_000
SEED = 2025
#: Line number (1-based, in the written file) -> how that line is broken.
BROKEN = {
    87: "truncated JSON",
    241: "missing target_identity",
    432: "bool position",
    655: "bad UUID",
    903: "naive datetime",
}


def _line(customization_id: str, body: dict[str, Any]) -> str:
    return json.dumps({"customization_id": customization_id, "customization": body})


def _broken(kind: str, customization_id: str, body: dict[str, Any]) -> str:
    if kind == "truncated JSON":  # cut off mid-line, as by a failed copy
        text = _line(customization_id, body)
        return text[: len(text) // 2]
    if kind == "missing target_identity":  # an item target needs its identity
        body = {**body, "target_type": "item"}
        body.pop("target_identity", None)
    elif kind == "bool position":  # true is not a position, though Python says 1 == True
        pins = [dict(pin) for pin in body["pin_definitions"]]
        pins[0]["position"] = True
        body = {**body, "pin_definitions": pins}
    elif kind == "bad UUID":  # only UUIDs name a customization
        customization_id = "summer-sale-basket-7"
    elif kind == "naive datetime":  # no timezone: when would the pin start?
        pins = [dict(pin) for pin in body["pin_definitions"]]
        pins[0]["active_from"] = "2025-06-01T00:00:00"
        body = {**body, "pin_definitions": pins}
    return _line(customization_id, body)


def main(path: Path) -> None:
    updates = demo_customizations(COUNT + len(BROKEN), seed=SEED)
    with path.open("w", encoding="utf-8", newline="\n") as out:
        for number, (customization_id, body) in enumerate(updates, start=1):
            kind = BROKEN.get(number)
            if kind is not None:
                out.write(_broken(kind, customization_id, body) + "\n")
            else:
                out.write(_line(customization_id, body) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("pins.jsonl"))

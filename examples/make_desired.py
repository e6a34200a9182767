"""Write ``examples/desired.jsonl``: 50 desired customizations for ``luigis-async sync``.

One API body per line, no IDs: a nightly job's view of what the pins should be. Every
line has its own (model, target), as sync requires. Deterministic (seeded): running it
again writes the same file.

    python examples/make_desired.py [PATH]
    luigis-async sync examples/desired.jsonl --managed-tag managed:nightly --sandbox --yes

It imports the package's demo generator: run it where ``luigis_async`` is importable
(installed, e.g. ``pip install -e .``, or from the repository root with ``PYTHONPATH=.``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from luigis_async.convert import structure_customization
from luigis_async.reconcile import natural_key
from luigis_async.sandbox.demo import demo_customizations

COUNT = 50
SEED = 2026


def main(path: Path) -> None:
    seen = set()
    with path.open("w", encoding="utf-8", newline="\n") as out:
        for _, body in demo_customizations(10 * COUNT, seed=SEED):
            key = natural_key(structure_customization(body))
            if key in seen:  # e.g. a second "homepage_trending all": sync would refuse it
                continue
            seen.add(key)
            out.write(json.dumps(body) + "\n")
            if len(seen) == COUNT:
                return
    raise AssertionError(f"fewer than {COUNT} distinct targets in the demo data")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("desired.jsonl"))

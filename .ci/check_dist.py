"""Check the built artefacts: LICENSE and py.typed are in both the sdist and the wheel.

    python .ci/check_dist.py DIST_DIR
"""

from __future__ import annotations

import sys
import tarfile
import zipfile
from pathlib import Path

REQUIRED = ("LICENSE", "luigis_async/py.typed", "luigis_async/_version.py")


def names(artefact: Path) -> list[str]:
    """Member paths, without the sdist's top folder or the wheel's .dist-info prefix."""
    if artefact.suffix == ".whl":
        with zipfile.ZipFile(artefact) as wheel:
            return [n.split(".dist-info/licenses/")[-1] for n in wheel.namelist()]
    with tarfile.open(artefact) as sdist:
        return [n.split("/", 1)[-1] for n in sdist.getnames()]


def main(dist: Path) -> int:
    artefacts = sorted([*dist.glob("*.whl"), *dist.glob("*.tar.gz")])
    problems = [] if len(artefacts) == 2 else [f"expected one wheel and one sdist: {artefacts}"]
    for artefact in artefacts:
        present = set(names(artefact))
        problems += [f"{artefact.name}: no {path}" for path in REQUIRED if path not in present]
        print(f"{artefact.name}: " + ", ".join(p for p in REQUIRED if p in present))
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))

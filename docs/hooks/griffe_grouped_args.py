"""Griffe extension: ``a, b, c: shared description`` in an ``Args:`` section documents each.

The package's docstrings group parameters that share a description, which reads well in
source and in ``help()``; griffe's Google-style parser takes the group for one parameter
named ``"a, b, c"`` and warns that it is not in the signature. This splits such an entry
into one per name before parsing, so each name is still checked against the signature:
a misspelt or removed parameter still fails the strict build.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_SECTION = re.compile(r"^(?P<indent>\s*)(?:Args|Arguments|Parameters|Keyword Args):\s*$")
_GROUP = re.compile(r"^(?P<indent>\s+)(?P<names>\**\w+(?:,\s*\**\w+)+):(?P<rest>.*)$")


def _split_groups(text: str) -> str:
    lines = text.splitlines()
    out: list[str] = []
    section_indent: int | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        indent = len(line) - len(line.lstrip())
        if (heading := _SECTION.match(line)) is not None:
            section_indent = len(heading["indent"])
        elif line.strip() and section_indent is not None and indent <= section_indent:
            section_indent = None
        group = _GROUP.match(line) if section_indent is not None else None
        if group is None:
            out.append(line)
            i += 1
            continue
        continued = []
        i += 1
        while i < len(lines) and (
            not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent
        ):
            continued.append(lines[i])
            i += 1
        for name in re.split(r",\s*", group["names"]):
            out.append(f"{group['indent']}{name}:{group['rest']}")
            out.extend(continued)
    return "\n".join(out)


class GroupedArgs(griffe.Extension):
    """Splits grouped ``Args:`` entries of every docstring griffe reads."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None and "," in obj.docstring.value:
            obj.docstring.value = _split_groups(obj.docstring.value)

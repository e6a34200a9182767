"""Preloading a sandbox from a JSON Lines file: ``--seed-file FILE.jsonl``.

Each line is either a bare API body (``{"model": ..., "target_type": ..., ...}``, stored
under a new ID) or the shape ``luigis-async push`` reads and ``export`` writes,
``{"customization_id": "<uuid>", "customization": {...}}`` (stored under that ID; other
keys, like a failures file's ``error``, are ignored). Blank lines are skipped.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from typing import Any

from luigis_async.sandbox.server import Sandbox

__all__ = ["SeedFileError", "parse_seed_line", "seed_from_file", "seed_from_lines"]


class SeedFileError(ValueError):
    """A seed file that cannot be loaded; the message names the file and line."""


def parse_seed_line(text: str) -> tuple[str | None, dict[str, Any]]:
    """One line as (customization ID or None, API body).

    Raises:
        ValueError: not JSON, not an object, or a push line without its ID or body.
    """
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ValueError("must be a JSON object: an API body, or a push line")
    if "customization" not in value:
        return None, value
    customization_id, body = value.get("customization_id"), value["customization"]
    if not isinstance(customization_id, str):
        raise ValueError("a line with 'customization' needs a 'customization_id' string")
    if not isinstance(body, dict):
        raise ValueError("'customization' must be a JSON object")
    return customization_id, body


def seed_from_lines(sandbox: Sandbox, lines: Iterable[str], source: str = "seed") -> int:
    """Add every line's customization to ``sandbox``; all of them or, on an error, none.

    Returns:
        How many customizations were added.

    Raises:
        SeedFileError: naming ``source`` and the 1-based line number, and what is wrong.
    """
    added: list[str] = []
    try:
        for number, text in enumerate(lines, start=1):
            if not text.strip():
                continue
            try:
                customization_id, body = parse_seed_line(text)
                added.append(sandbox.add(body, customization_id))
            except ValueError as exc:
                raise SeedFileError(f"{source} line {number}: {exc}") from None
    except BaseException:
        for key in added:
            del sandbox.store[key]
        raise
    return len(added)


def seed_from_file(sandbox: Sandbox, path: str | os.PathLike[str]) -> int:
    """``seed_from_lines`` over a UTF-8 file. Raises: SeedFileError, unreadable files too."""
    try:
        with open(path, encoding="utf-8") as file:
            return seed_from_lines(sandbox, file, os.fspath(path))
    except (OSError, UnicodeDecodeError) as exc:
        raise SeedFileError(f"cannot read seed file {os.fspath(path)}: {exc}") from None

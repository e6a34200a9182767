"""JSON Lines in and out: the files ``luigis-async push``, ``sync`` and ``export`` use.

``push`` reads one update per line, ``{"customization_id": "<uuid>", "customization":
{<API body>}}``, as ``export`` writes them; ``sync`` reads one bare API body per line
(no ID: sync matches by model and target), and refuses unknown fields there, where a
typo would silently drop a field from the desired state.

Reading is lazy (one line in memory at a time, so a file of any size streams in flat
memory) and never raises for a bad line: each line comes back with its 1-based number,
its original text and either what it holds or the reason it is invalid. A UTF-8 BOM,
CRLF endings and blank lines are tolerated; blank lines still count in the line numbers.

A line that does not end applied is written to a failures file as the original object
plus ``"error": {"line": N, "reason": "..."}`` (``{"raw": "<text>", "error": ...}`` when it
is not a JSON object), so that file can be fixed and pushed again: ``push`` ignores
``error``. ``sync`` refuses it: a failures file is only part of a desired set.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Final, Self

import attrs

from .convert import converter, structure_customization
from .errors import InvalidCustomizationError
from .models import Customization, CustomizationUpdate

__all__ = [
    "INVALID_BODY",
    "INVALID_JSON",
    "INVALID_UPDATE",
    "FailuresFile",
    "Line",
    "LineError",
    "ParsedBody",
    "ParsedLine",
    "dump_update",
    "failure_record",
    "parse_body",
    "parse_update",
    "read_bodies",
    "read_lines",
    "read_updates",
]

_BOM: Final = b"\xef\xbb\xbf"
#: The kinds of a bad line, for grouping them in a summary.
INVALID_JSON: Final = "invalid JSON"
INVALID_UPDATE: Final = "invalid update"
INVALID_BODY: Final = "invalid customization"
#: The fields a desired body may have: the writable ones.
_BODY_FIELDS: Final = frozenset(field.name for field in attrs.fields(Customization))


@attrs.frozen
class Line:
    """One non-blank input line: its number, its text (no line ending) and where it ends.

    ``end`` is the byte offset just past this line, i.e. how much of the input has been
    consumed, for progress.
    """

    number: int
    text: str
    end: int
    #: Set when the bytes were not UTF-8; ``text`` then holds them decoded with U+FFFD.
    decode_error: str | None = None


class LineError(Exception):
    """Why a line is not an update; ``kind`` is INVALID_JSON or INVALID_UPDATE."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        #: The whole message, e.g. ``invalid JSON: Expecting value (column 1)``.
        self.reason = str(self)


@attrs.frozen
class ParsedLine:
    """A line and what it holds: ``update`` when valid, else ``error``."""

    line: Line
    update: CustomizationUpdate | None
    error: LineError | None


@attrs.frozen
class ParsedBody:
    """A line of a desired set and what it holds: ``customization`` when valid, else ``error``."""

    line: Line
    customization: Customization | None
    error: LineError | None


def read_lines(stream: IO[bytes]) -> Iterator[Line]:
    """The non-blank lines of a binary stream, lazily."""
    end = 0
    for number, raw in enumerate(stream, start=1):
        end += len(raw)
        if number == 1 and raw.startswith(_BOM):
            raw = raw[len(_BOM) :]
        raw = raw.rstrip(b"\r\n")
        if not raw.strip():
            continue
        try:
            yield Line(number, raw.decode("utf-8"), end)
        except UnicodeDecodeError as exc:
            text = raw.decode("utf-8", "replace")
            yield Line(number, text, end, f"not UTF-8 ({exc.reason} at byte {exc.start})")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _loads(text: str) -> Any:
    """Strict JSON: NaN and Infinity, which Python's json accepts, are refused."""
    return json.loads(text, parse_constant=_reject_constant)


def _object(line: Line, kind: str, expected: str) -> dict[str, Any]:
    """The JSON object on ``line``; LineError (INVALID_JSON, or ``kind``) if it is not one."""
    if line.decode_error is not None:
        raise LineError(INVALID_JSON, line.decode_error)
    try:
        data = _loads(line.text)
    except json.JSONDecodeError as exc:
        raise LineError(INVALID_JSON, f"{exc.msg} (column {exc.colno})") from None
    except ValueError as exc:
        raise LineError(INVALID_JSON, str(exc)) from None
    if not isinstance(data, dict):
        raise LineError(kind, f"expected a JSON object {expected}, got {type(data).__name__}")
    return data


def parse_update(line: Line) -> CustomizationUpdate:
    """The update on ``line``.

    Raises:
        LineError: naming the field and the rule, e.g.
            ``invalid update: customization.pin_definitions[0]: position: must be an int``.
    """
    data = _object(line, INVALID_UPDATE, "with customization_id and customization")
    for key in ("customization_id", "customization"):
        if key not in data:
            raise LineError(INVALID_UPDATE, f"{key}: missing")
    try:
        body: Customization = structure_customization(data["customization"])
    except InvalidCustomizationError as exc:
        raise LineError(INVALID_UPDATE, f"customization: {exc}") from None
    try:
        return CustomizationUpdate(data["customization_id"], body)
    except InvalidCustomizationError as exc:
        raise LineError(INVALID_UPDATE, str(exc)) from None


def parse_body(line: Line) -> Customization:
    """The customization body on ``line``: writable fields only.

    Raises:
        LineError: e.g. ``invalid customization: unknown field 'tag'``; an ``id`` (an export
            line) or an ``error`` (a failures file) is refused with a hint.
    """
    data = _object(line, INVALID_BODY, "(a customization body)")
    unknown = sorted(set(data) - _BODY_FIELDS)
    if unknown:
        names = ", ".join(repr(name) for name in unknown)
        hint = ""
        if {"id", "customization_id"} & set(unknown):
            hint = " (a desired body has no ID: sync matches by model and target)"
        elif "error" in unknown:
            hint = " (a failures file is a report, not a desired set)"
        plural = "s" if len(unknown) > 1 else ""
        raise LineError(INVALID_BODY, f"unknown field{plural} {names}{hint}")
    try:
        return structure_customization(data)
    except InvalidCustomizationError as exc:
        raise LineError(INVALID_BODY, str(exc)) from None


def read_updates(stream: IO[bytes]) -> Iterator[ParsedLine]:
    """Every non-blank line of ``stream`` parsed, lazily; a bad line never stops the rest."""
    for line in read_lines(stream):
        try:
            yield ParsedLine(line, parse_update(line), None)
        except LineError as exc:
            yield ParsedLine(line, None, exc)


def read_bodies(stream: IO[bytes]) -> Iterator[ParsedBody]:
    """``read_updates`` for a desired set: one customization body per line."""
    for line in read_lines(stream):
        try:
            yield ParsedBody(line, parse_body(line), None)
        except LineError as exc:
            yield ParsedBody(line, None, exc)


def _dumps(record: Any) -> str:
    return json.dumps(record, ensure_ascii=False)


def failure_record(line: Line, reason: str) -> str:
    """The failures-file line for ``line``: its object plus ``error`` (any old one replaced)."""
    try:
        data = _loads(line.text) if line.decode_error is None else None
    except ValueError:
        data = None
    record = (
        {key: value for key, value in data.items() if key != "error"}
        if isinstance(data, dict)
        else {"raw": line.text}
    )
    record["error"] = {"line": line.number, "reason": reason}
    return _dumps(record)


def dump_update(customization_id: uuid.UUID | str, customization: Customization) -> str:
    """One line in the shape ``read_updates`` reads: the ID and the writable body."""
    body = converter.unstructure(customization, Customization)
    return _dumps({"customization_id": str(customization_id), "customization": body})


class FailuresFile:
    """The failures file of one run, created (truncating any old one) at the first failure.

    A run that fails nothing leaves no file, and removes one left by an earlier run:
    pushing that stale file again would overwrite newer data with old.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        #: How many records were written.
        self.count = 0
        self._file: IO[str] | None = None

    def write(self, line: Line, reason: str) -> None:
        """Record that ``line`` was not applied, and why."""
        self._write(failure_record(line, reason))

    def write_record(self, record: dict[str, Any]) -> None:
        """Record a failure that has no input line (e.g. a delete a sync planned)."""
        self._write(_dumps(record))

    def _write(self, text: str) -> None:
        if self._file is None:
            self._file = self.path.open("w", encoding="utf-8", newline="\n")
        self._file.write(text + "\n")
        self.count += 1

    def write_all(self, lines: Iterable[Line], reason: str) -> None:
        """Record every one of ``lines`` with the same reason."""
        for line in lines:
            self.write(line, reason)

    def close(self, *, completed: bool = True) -> None:
        """Flush and close; after a ``completed`` run that failed nothing, remove a stale file.

        A run that broke off before the end (an exception) leaves an old file alone.
        """
        if self._file is not None:
            self._file.close()
            self._file = None
        elif completed and self.count == 0 and self.path.is_file():
            os.remove(self.path)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close(completed=exc is None)

"""JSON Lines in and out: the files ``luigis-async push``, ``sync`` and ``export`` use.

``push`` reads one update per line, ``{"customization_id": "<uuid>", "customization":
{<API body>}}``, as ``export`` writes them; ``sync`` reads one bare API body per line
(no ID: sync matches by model and target), and refuses unknown fields there, where a
typo would silently drop a field from the desired state.

Reading is lazy and bounded (``LineSplitter`` holds at most ``MAX_LINE_BYTES`` of a line,
so a file of any size, or a line of any length, streams in flat memory) and never raises
for a bad line: each line comes back with its 1-based number, its original text and either
what it holds or the reason it is invalid. A UTF-8 BOM, CRLF endings and blank lines are
tolerated; blank lines still count in the line numbers. Hostile lines are that line's
failure, never the run's: bytes that are not UTF-8, a line over ``MAX_LINE_BYTES``,
nesting deeper than ``MAX_DEPTH``, lone surrogate escapes, integers outside 64 bits and
numbers that overflow a double are refused while the line is parsed.

A line that does not end applied is written to a failures file as the original object
plus ``"error": {"line": N, "reason": "..."}`` (``{"raw": "<text>", "error": ...}`` when it
is not a JSON object), so that file can be fixed and pushed again: ``push`` ignores
``error``. ``sync`` refuses it: a failures file is only part of a desired set. The file
stays valid UTF-8 JSON Lines whatever the input held.

Why here, at the top level, when the command line (``cli/``) is its main user: these are
the files of the library's users too, and this module is their documented public reader
and writer (the API reference has a page for it): ``read_updates`` reads an exported or
a failures file (each valid line's ``update`` can go to a ``BatchUpdater``),
``dump_update`` writes the lines ``push`` reads, with no need of the ``cli`` extra. It
builds only on ``models``, ``convert`` and ``errors``, and nothing but ``cli/`` imports it
(the sandbox's ``--seed-file`` parses the little it reads itself, in ``sandbox/seed.py``).
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
import stat
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
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
    "MAX_DEPTH",
    "MAX_LINE_BYTES",
    "FailuresFile",
    "Line",
    "LineError",
    "LineSplitter",
    "ParsedBody",
    "ParsedLine",
    "dump_update",
    "failure_record",
    "parse_body",
    "parse_update",
    "read_blocks",
    "read_bodies",
    "read_lines",
    "read_updates",
    "to_parsed_body",
    "to_parsed_line",
]

_BOM: Final = b"\xef\xbb\xbf"
#: The kinds of a bad line, for grouping them in a summary.
INVALID_JSON: Final = "invalid JSON"
INVALID_UPDATE: Final = "invalid update"
INVALID_BODY: Final = "invalid customization"
#: The fields a desired body may have: the writable ones.
_BODY_FIELDS: Final = frozenset(field.name for field in attrs.fields(Customization))
#: A longer line is refused unread: no body the API takes is near this size.
MAX_LINE_BYTES: Final = 8 * 1024 * 1024
#: How much of a refused over-long line the failures file keeps, to recognise it by.
KEPT_OF_LONG_LINE: Final = 1024
#: Deeper JSON is refused: a body nests about 6 levels, and every JSON library in the
#: path (the encoders, the server's parser) has a recursion limit somewhere above this.
MAX_DEPTH: Final = 64
#: Integers outside a signed 64-bit range are refused anywhere in a body: the API's
#: numbers are positions, and a JSON encoder or server may reject or truncate more.
MIN_INT: Final = -(2**63)
MAX_INT: Final = 2**63 - 1
#: How much is read at a time; also what one read of a pipe returns at most.
BLOCK_BYTES: Final = 64 * 1024
#: A ``\\uD800``-``\\uDFFF`` escape: maybe half of a pair, maybe a lone surrogate.
_SURROGATE_ESCAPE: Final = re.compile(r"\\u[dD][89a-fA-F]")


@attrs.frozen
class Line:
    """One non-blank input line: its number, its text (no line ending) and where it ends.

    ``end`` is the byte offset just past this line, i.e. how much of the input has been
    consumed, for progress.
    """

    number: int
    text: str
    end: int
    #: Set when the line cannot be read as text (not UTF-8, or over MAX_LINE_BYTES);
    #: ``text`` then holds what can be shown of it (U+FFFD for bytes that are not UTF-8).
    decode_error: str | None = None


class LineError(Exception):
    """Why a line is not an update; ``kind`` is INVALID_JSON or INVALID_UPDATE."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        #: The whole message, e.g. ``invalid JSON: Expecting value (column 1)``.
        self.reason: str = str(self)


@attrs.frozen
class ParsedLine:
    """A line and what it holds: ``update`` when valid, else ``error``."""

    line: Line
    update: CustomizationUpdate | None
    error: LineError | None
    #: An invalid line's failures-file record, made where the line was parsed (a reader's
    #: thread), so the event loop never parses a large line again to write it.
    record: str | None = attrs.field(default=None, repr=False, eq=False)


@attrs.frozen
class ParsedBody:
    """A line of a desired set and what it holds: ``customization`` when valid, else ``error``."""

    line: Line
    customization: Customization | None
    error: LineError | None


class LineSplitter:
    """Blocks of bytes in, complete non-blank lines out, holding at most one line's bytes.

    A line longer than ``max_bytes`` is not kept: only its first ``KEPT_OF_LONG_LINE``
    bytes are, and it comes out with ``decode_error`` saying how long it was.
    """

    def __init__(self, max_bytes: int = MAX_LINE_BYTES) -> None:
        self.max_bytes = max_bytes
        self.number: int = 0  # lines seen, blank ones included
        self.end: int = 0  # bytes consumed by the lines seen
        self._partial: list[bytes] = []
        self._partial_size = 0  # the whole partial line's size, kept or not

    def feed(self, block: bytes) -> list[Line]:
        """The lines that ``block`` completes."""
        pieces = block.split(b"\n")
        lines: list[Line] = []
        for piece in pieces[:-1]:
            if self._partial_size or len(piece) > self.max_bytes:
                self._keep(piece)
                raw, size = b"".join(self._partial), self._partial_size
                self._partial, self._partial_size = [], 0
            else:
                raw, size = piece, len(piece)
            self._emit(raw, size, size + 1, lines)
        if pieces[-1]:
            self._keep(pieces[-1])
        return lines

    def finish(self) -> list[Line]:
        """The last line, when the input does not end with a newline."""
        lines: list[Line] = []
        if self._partial_size:
            raw, size = b"".join(self._partial), self._partial_size
            self._partial, self._partial_size = [], 0
            self._emit(raw, size, size, lines)
        return lines

    def _keep(self, piece: bytes) -> None:
        """Hold ``piece`` of an unfinished line; of a line over the limit, only its start."""
        self._partial_size += len(piece)
        if self._partial_size <= self.max_bytes:
            self._partial.append(piece)
            return
        kept = b"".join(self._partial)
        if len(kept) < KEPT_OF_LONG_LINE:
            kept += piece[: KEPT_OF_LONG_LINE - len(kept)]
        self._partial = [kept[:KEPT_OF_LONG_LINE]]

    def _emit(self, raw: bytes, size: int, consumed: int, lines: list[Line]) -> None:
        """Count a line of ``size`` bytes (``consumed`` with its newline); keep it unless blank."""
        self.number += 1
        self.end += consumed
        if self.number == 1 and raw.startswith(_BOM):
            raw = raw[len(_BOM) :]
        if size > self.max_bytes:
            text = raw[:KEPT_OF_LONG_LINE].decode("utf-8", "replace")
            why = f"line too long: {size:,} bytes, at most {self.max_bytes:,} (its start is kept)"
            lines.append(Line(self.number, text, self.end, why))
            return
        raw = raw.rstrip(b"\r\n")
        if not raw.strip():
            return
        try:
            lines.append(Line(self.number, raw.decode("utf-8"), self.end))
        except UnicodeDecodeError as exc:
            text = raw.decode("utf-8", "replace")
            why = f"not UTF-8 ({exc.reason} at byte {exc.start})"
            lines.append(Line(self.number, text, self.end, why))


def read_blocks(stream: IO[bytes]) -> Iterator[bytes]:
    """Blocks of ``stream`` until its end; one read of a pipe returns what is there."""
    read = getattr(stream, "read1", None) or stream.read
    while block := read(BLOCK_BYTES):
        yield block


def read_lines(stream: IO[bytes], max_bytes: int = MAX_LINE_BYTES) -> Iterator[Line]:
    """The non-blank lines of a binary stream, lazily, at most ``max_bytes`` held."""
    splitter = LineSplitter(max_bytes)
    for block in read_blocks(stream):
        yield from splitter.feed(block)
    yield from splitter.finish()


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _bounded_int(text: str) -> int:
    """A JSON integer within 64 bits (checked by length first: ``int`` of a huge text is slow)."""
    value = int(text) if len(text) <= 21 else None
    if value is None or not MIN_INT <= value <= MAX_INT:
        shown = text if len(text) <= 24 else f"{text[:20]}... ({len(text)} digits)"
        raise ValueError(f"integer out of range (64 bits at most): {shown}")
    return value


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        shown = text if len(text) <= 24 else text[:20] + "..."
        raise ValueError(f"number out of range: {shown}")
    return value


def _deep(text: str) -> bool:
    """Whether ``text`` may nest deeper than MAX_DEPTH (it has more brackets than that)."""
    return text.count("[") + text.count("{") > MAX_DEPTH


def _check_tree(data: Any, *, depth: bool, surrogates: bool) -> None:
    """Refuse nesting deeper than MAX_DEPTH, and strings that are not valid Unicode."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, level = stack.pop()
        if isinstance(value, dict):
            children: Iterable[Any] = [*value.keys(), *value.values()]
        elif isinstance(value, list):
            children = value
        else:
            if surrogates and isinstance(value, str) and not value.isascii():
                try:
                    value.encode("utf-8")
                except UnicodeEncodeError as exc:
                    raise ValueError(
                        f"lone surrogate {value[exc.start]!r} in a string: not valid Unicode"
                    ) from None
            continue
        if depth and level > MAX_DEPTH:
            raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
        stack.extend((child, level + 1) for child in children)


def _loads(text: str) -> Any:
    """Strict JSON within what the API takes.

    Refused: NaN and Infinity (which Python's json accepts), integers outside 64 bits,
    numbers that overflow a double, nesting deeper than MAX_DEPTH, lone surrogates.

    Raises:
        ValueError: saying which.
    """
    try:
        data = json.loads(
            text,
            parse_constant=_reject_constant,
            parse_int=_bounded_int,
            parse_float=_finite_float,
        )
    except RecursionError:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels") from None
    # Cheap tests on the text first: the walk is needed only for a few unusual lines.
    deep = _deep(text)
    surrogates = _SURROGATE_ESCAPE.search(text) is not None
    if deep or surrogates:
        _check_tree(data, depth=deep, surrogates=surrogates)
    return data


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


def _unexpected(kind: str, exc: Exception) -> LineError:
    """A line that broke validation itself (a bug) fails alone: the run goes on."""
    return LineError(kind, f"could not be read: {type(exc).__name__}: {exc}")


def to_parsed_line(line: Line) -> ParsedLine:
    """``line`` parsed as an update (with its failure record if invalid); never raises for
    what the line holds."""
    try:
        return ParsedLine(line, parse_update(line), None)
    except LineError as exc:
        error = exc
    except Exception as exc:  # one line's problem, whatever it is
        error = _unexpected(INVALID_UPDATE, exc)
    checked = error.kind != INVALID_JSON  # only its content was wrong: it is a JSON object
    return ParsedLine(line, None, error, failure_record(line, error.reason, checked=checked))


def to_parsed_body(line: Line) -> ParsedBody:
    """``line`` parsed as a desired body; never raises for what the line holds."""
    try:
        return ParsedBody(line, parse_body(line), None)
    except LineError as exc:
        return ParsedBody(line, None, exc)
    except Exception as exc:  # one line's problem, whatever it is
        return ParsedBody(line, None, _unexpected(INVALID_BODY, exc))


def read_updates(stream: IO[bytes]) -> Iterator[ParsedLine]:
    """Every non-blank line of ``stream`` parsed, lazily; a bad line never stops the rest."""
    return map(to_parsed_line, read_lines(stream))


def read_bodies(stream: IO[bytes]) -> Iterator[ParsedBody]:
    """``read_updates`` for a desired set: one customization body per line."""
    return map(to_parsed_body, read_lines(stream))


def _dumps(record: Any) -> str:
    """JSON that is always valid UTF-8: a lone surrogate (say, in a server's message) is
    written as its ``\\uXXXX`` escape instead of failing the write."""
    text = json.dumps(record, ensure_ascii=False)
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return json.dumps(record)
    return text


@functools.lru_cache(maxsize=256)
def _reason_json(reason: str) -> str:
    return _dumps(reason)


def _stdlib_syntax(text: str) -> object:
    return json.loads(text, parse_constant=_reject_constant)


try:  # the `fast` extra: orjson checks strict JSON syntax several times faster
    import orjson  # type: ignore[import-not-found, unused-ignore]

    _check_syntax: Callable[[str], object] = orjson.loads
except ImportError:  # pragma: no cover - depends on the installed extras
    _check_syntax = _stdlib_syntax


def _is_json(text: str) -> bool:
    """Whether ``text`` is strict JSON (RFC 8259, no NaN) that any reader takes."""
    try:
        _check_syntax(text)
    except (ValueError, RecursionError):
        return False
    return True


def _splice(line: Line, error: str, checked: bool) -> str | None:
    """The line's own text with ``error`` added as its last field, when that is valid JSON.

    Much cheaper than parsing and dumping the line again. ``checked``: the line is already
    known to be a JSON object. None when it does not apply (not an object, not JSON, or an
    ``error`` field already there).
    """
    text = line.text.strip()
    if not (text.startswith("{") and text.endswith("}")) or '"error"' in text:
        return None
    if not checked and (_deep(text) or not _is_json(text)):
        return None  # the slow path parses it, within MAX_DEPTH, or keeps it raw
    inner = text[1:-1].strip()
    return "{" + (inner + ", " if inner else "") + '"error": ' + error + "}"


def failure_record(line: Line, reason: str, *, checked: bool = False) -> str:
    """The failures-file line for ``line``: its object plus ``error`` (any old one replaced).

    ``checked``: the line is known to hold a JSON object (it was parsed), so it is not
    checked again.
    """
    error = '{"line": ' + str(line.number) + ', "reason": ' + _reason_json(reason) + "}"
    if line.decode_error is None and (spliced := _splice(line, error, checked)) is not None:
        return spliced
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
    """The failures file of one run.

    Opened at the first failure (truncating any old one), unless ``adopt`` hands it a file
    opened and checked before the run. A run that fails nothing leaves no file, and removes
    one left by an earlier run: pushing that stale file again would overwrite newer data
    with old.

    Writes never raise: the first ``OSError`` (a full disk) is kept in ``error``, and every
    record from then on is counted in ``unwritten``, so the caller can stop the run. Safe
    to write from two threads (the event loop, and the reader accounting for the rest).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        #: How many records were written (handed to the file).
        self.count: int = 0
        #: The first write error, if any; after it nothing more is written.
        self.error: OSError | None = None
        #: Records not written because of ``error``.
        self.unwritten: int = 0
        self._file: IO[str] | None = None
        self._regular = True
        self._closed = False
        self._lock = threading.Lock()

    def adopt(self, file: IO[str]) -> None:
        """Write to ``file``, already opened (and emptied) by the caller."""
        self._file = file
        try:
            self._regular = stat.S_ISREG(os.fstat(file.fileno()).st_mode)
        except (OSError, ValueError):
            self._regular = False

    def write(self, line: Line, reason: str, *, checked: bool = False) -> None:
        """Record that ``line`` was not applied, and why (``checked``: see failure_record)."""
        self._write(failure_record(line, reason, checked=checked))

    def write_record(self, record: dict[str, Any]) -> None:
        """Record a failure that has no input line (e.g. a delete a sync planned)."""
        self._write(_dumps(record))

    def write_parsed(self, item: ParsedLine) -> None:
        """Record an invalid line, with the record made when it was parsed if there is one."""
        assert item.error is not None
        if item.record is not None:
            self._write(item.record)
        else:
            self.write(item.line, item.error.reason, checked=item.error.kind != INVALID_JSON)

    def _write(self, text: str) -> None:
        with self._lock:
            if self.error is not None or self._closed:
                self.unwritten += 1
                return
            try:
                if self._file is None:
                    self._file = self.path.open("w", encoding="utf-8", newline="\n")
                self._file.write(text + "\n")
            except OSError as exc:
                self.error = exc
                self.unwritten += 1
                return
            self.count += 1

    def write_all(self, lines: Iterable[Line], reason: str) -> None:
        """Record every one of ``lines`` with the same reason."""
        for line in lines:
            self.write(line, reason)

    def sync(self) -> None:
        """Flush and, for a regular file, fsync: what was written survives a power cut.

        Slow on a busy disk: run it off the event loop. A failure is kept in ``error``.
        """
        with self._lock:
            if self._file is None or self.error is not None or self._closed:
                return
            try:
                self._file.flush()
                if self._regular:
                    os.fsync(self._file.fileno())
            except OSError as exc:
                self.error = exc

    def close(self, *, completed: bool = True) -> None:
        """Flush and close; after a ``completed`` run that failed nothing, remove a stale file.

        A run that broke off before the end (an exception) leaves an old file alone.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            file, self._file = self._file, None
            if file is not None:
                try:
                    file.close()
                except OSError as exc:
                    self.error = self.error or exc
            stale = file is None and completed and self.path.is_file()
            ours_and_empty = file is not None and self.count == 0 and self._regular
            if (stale or ours_and_empty) and self.error is None and self.unwritten == 0:
                self.path.unlink(missing_ok=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close(completed=exc is None)

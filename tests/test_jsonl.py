"""JSON Lines in and out: lazy reading with line numbers, reasons, failure records."""

from __future__ import annotations

import io
import json
import uuid
from pathlib import Path

import pytest

from luigis_async import Customization, converter
from luigis_async.jsonl import (
    INVALID_BODY,
    INVALID_JSON,
    INVALID_UPDATE,
    FailuresFile,
    Line,
    LineError,
    LineSplitter,
    dump_update,
    failure_record,
    parse_body,
    parse_update,
    read_bodies,
    read_lines,
    read_updates,
)

from .helpers import item_customization

ID = "1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b"
BODY = {"model": "basket", "target_type": "all", "pin_definitions": []}


def _line(text: str, number: int = 1) -> Line:
    return Line(number, text, len(text) + 1)


def test_read_lines_numbers_lines_and_skips_blank_ones() -> None:
    """Blank lines are skipped but counted; BOM and CRLF are stripped; ends are byte offsets."""
    data = b"\xef\xbb\xbfa\r\n\r\n  \nb\n\xc3\xa9"
    assert [(1, "a", 6), (4, "b", 13), (5, "\u00e9", 15)] == [
        (line.number, line.text, line.end) for line in read_lines(io.BytesIO(data))
    ]


def test_read_lines_keeps_a_line_that_is_not_utf8() -> None:
    """Bytes that are not UTF-8 come back replaced, with the reason, not as an exception."""
    (line,) = read_lines(io.BytesIO(b'{"a": "\xff"}\n'))
    assert ('{"a": "\ufffd"}', "not UTF-8 (invalid start byte at byte 7)") == (
        line.text, line.decode_error
    )


def test_parse_update_builds_the_update() -> None:
    """A valid line gives its ID and its body as a Customization; other keys are ignored."""
    text = json.dumps({"customization_id": ID, "customization": BODY, "error": {"line": 3}})
    update = parse_update(_line(text))
    assert (uuid.UUID(ID), Customization("basket", "all")) == (
        update.customization_id, update.customization
    )


@pytest.mark.parametrize(
    ("text", "kind", "reason"),
    [
        ("{", INVALID_JSON, "invalid JSON: Expecting property name enclosed in double quotes"),
        ('{"a": NaN}', INVALID_JSON, "invalid JSON: NaN is not valid JSON"),
        ("[1]", INVALID_UPDATE, "invalid update: expected a JSON object with customization_id"),
        ('{"customization": {}}', INVALID_UPDATE, "invalid update: customization_id: missing"),
        (
            json.dumps({"customization_id": ID}),
            INVALID_UPDATE,
            "invalid update: customization: missing",
        ),
        (
            json.dumps({"customization_id": "x", "customization": BODY}),
            INVALID_UPDATE,
            "invalid update: customization_id: must be a UUID, got 'x'",
        ),
        (
            json.dumps({"customization_id": ID, "customization": {**BODY, "target_type": "item"}}),
            INVALID_UPDATE,
            "invalid update: customization: target_identity: required",
        ),
        (
            json.dumps({"customization_id": ID, "customization": []}),
            INVALID_UPDATE,
            "invalid update: customization: expected a JSON object, got list",
        ),
    ],
)
def test_parse_update_says_why_a_line_is_not_an_update(text: str, kind: str, reason: str) -> None:
    """Each broken rule gives its kind and a reason naming the field."""
    with pytest.raises(LineError) as caught:
        parse_update(_line(text))
    assert (kind, reason) == (caught.value.kind, caught.value.reason[: len(reason)])


def test_read_updates_continues_past_bad_lines() -> None:
    """A bad line never stops the rest: each comes back with its update or its error."""
    good = json.dumps({"customization_id": ID, "customization": BODY})
    parsed = list(read_updates(io.BytesIO(f"oops\n{good}\n".encode())))
    assert [(1, False), (2, True)] == [(p.line.number, p.update is not None) for p in parsed]


def test_parse_body_builds_the_customization() -> None:
    """A desired line is a bare API body: every writable field, no ID."""
    customization = item_customization(5, tags=("sale",))
    text = json.dumps(converter.unstructure(customization, Customization))
    assert customization == parse_body(_line(text))


@pytest.mark.parametrize(
    ("text", "kind", "reason"),
    [
        ("{", INVALID_JSON, "invalid JSON: Expecting property name enclosed in double quotes"),
        ("[1]", INVALID_BODY, "invalid customization: expected a JSON object (a customization "
         "body), got list"),
        (json.dumps({**BODY, "tag": ["x"]}), INVALID_BODY,
         "invalid customization: unknown field 'tag'"),
        (json.dumps({**BODY, "id": ID, "creator": "app"}), INVALID_BODY,
         "invalid customization: unknown fields 'creator', 'id' (a desired body has no ID: "
         "sync matches by model and target)"),
        (json.dumps({**BODY, "error": {"line": 2}}), INVALID_BODY,
         "invalid customization: unknown field 'error' (a failures file is a report, not a "
         "desired set)"),
        (json.dumps({"customization_id": ID, "customization": BODY}), INVALID_BODY,
         "invalid customization: unknown fields 'customization', 'customization_id' (a desired "
         "body has no ID"),
        (json.dumps({**BODY, "target_type": "item"}), INVALID_BODY,
         "invalid customization: target_identity: required"),
    ],
)
def test_parse_body_says_why_a_line_is_not_a_body(text: str, kind: str, reason: str) -> None:
    """Unknown fields are refused, with a hint for an export line or a failures file."""
    with pytest.raises(LineError) as caught:
        parse_body(_line(text))
    assert (kind, reason) == (caught.value.kind, caught.value.reason[: len(reason)])


def test_read_bodies_continues_past_bad_lines() -> None:
    """Like read_updates: each line comes back with its customization or its error."""
    parsed = list(read_bodies(io.BytesIO(f"oops\n\n{json.dumps(BODY)}\n".encode())))
    assert [(1, False), (3, True)] == [
        (p.line.number, p.customization is not None) for p in parsed
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"customization_id": "x", "error": {"line": 9}}', {"customization_id": "x"}),
        ("not json", {"raw": "not json"}),
        ("[1, 2]", {"raw": "[1, 2]"}),
    ],
)
def test_failure_record_keeps_the_original(text: str, expected: dict[str, object]) -> None:
    """The record is the original object (or its raw text) with a fresh error field."""
    record = json.loads(failure_record(_line(text, 7), "why"))
    assert {**expected, "error": {"line": 7, "reason": "why"}} == record


def test_dump_update_round_trips() -> None:
    """What dump_update writes, parse_update reads back to the same update."""
    customization = item_customization(5, tags=("sale",))
    update = parse_update(_line(dump_update(ID, customization)))
    assert (uuid.UUID(ID), customization) == (update.customization_id, update.customization)


def test_failures_file_is_created_at_the_first_failure(tmp_path: Path) -> None:
    """No failure, no file; and a stale file from an earlier run is removed."""
    path = tmp_path / "f.jsonl"
    path.write_text("stale\n")
    with FailuresFile(path):
        pass
    assert not path.exists()
    with FailuresFile(path) as failures:
        failures.write(_line("x", 2), "why")
    assert ['{"raw": "x", "error": {"line": 2, "reason": "why"}}'] == path.read_text().splitlines()


def test_failures_file_takes_records_without_a_line(tmp_path: Path) -> None:
    """A failure with no input line (a planned delete) is written as the record given."""
    path = tmp_path / "f.jsonl"
    with FailuresFile(path) as failures:
        failures.write_record({"delete": ID, "error": {"reason": "why"}})
    assert (1, [{"delete": ID, "error": {"reason": "why"}}]) == (
        failures.count, [json.loads(text) for text in path.read_text().splitlines()]
    )


def test_failures_file_keeps_a_stale_file_when_the_run_broke_off(tmp_path: Path) -> None:
    """A run that raised before failing anything leaves an earlier failures file alone."""
    path = tmp_path / "f.jsonl"
    path.write_text("earlier\n")
    with pytest.raises(RuntimeError), FailuresFile(path):
        raise RuntimeError("boom")
    assert "earlier\n" == path.read_text()


# -- hostile lines: each is that line's failure, never the run's ------------------------

def _update_with(criteria: str) -> str:
    """An update whose one pin has ``criteria`` as its (opaque) criteria object."""
    pin = f'{{"position": 1, "pin_type": "criteria", "pin_criteria": {criteria}}}'
    body = f'{{"model": "basket", "target_type": "all", "pin_definitions": [{pin}]}}'
    return f'{{"customization_id": "{ID}", "customization": {body}}}'


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (_update_with('{"a": "\\ud800"}'), "invalid JSON: lone surrogate '\\ud800'"),
        (_update_with('{"\\udfff": 1}'), "invalid JSON: lone surrogate '\\udfff'"),
        (_update_with('{"a": ' + "[" * 1000 + "]" * 1000 + "}"), "invalid JSON: nested deeper"),
        (_update_with('{"a": ' + "[" * 100 + "]" * 100 + "}"), "invalid JSON: nested deeper"),
        (_update_with('{"a": 9223372036854775808}'), "invalid JSON: integer out of range"),
        (_update_with('{"a": 18446744073709551616}'), "invalid JSON: integer out of range"),
        (_update_with('{"a": -9223372036854775809}'), "invalid JSON: integer out of range"),
        (_update_with('{"a": ' + "9" * 5000 + "}"), "invalid JSON: integer out of range"),
        (_update_with('{"a": 1e400}'), "invalid JSON: number out of range"),
    ],
    ids=["surrogate", "surrogate key", "1000 deep", "100 deep", "2**63", "2**64", "-2**63-1",
         "5000 digits", "1e400"],
)
def test_hostile_values_are_refused_while_parsing(text: str, reason: str) -> None:
    """Values the API cannot take are the line's parse error, named, not an exception later."""
    with pytest.raises(LineError) as caught:
        parse_update(_line(text))
    assert reason == caught.value.reason[: len(reason)]


@pytest.mark.parametrize(
    "criteria",
    ['{"a": "\\ud83d\\ude00"}', '{"a": 9223372036854775807, "b": -9223372036854775808}',
     '{"a": ' + "[" * 55 + "]" * 55 + "}", '{"a": 1.5e300}'],
    ids=["surrogate pair", "int64 bounds", "60 deep", "big float"],
)
def test_awkward_but_valid_values_parse(criteria: str) -> None:
    """A surrogate pair, the int64 bounds, 60 levels and a large float are all accepted."""
    assert parse_update(_line(_update_with(criteria))).customization_id == uuid.UUID(ID)


def test_a_line_over_the_limit_is_refused_unread() -> None:
    """A line longer than the limit comes back as one refused line, its start kept."""
    data = b"short\n" + b"x" * 5000 + b"\nafter\n"
    lines = list(read_lines(io.BytesIO(data), max_bytes=1000))
    assert [(1, "short", None), (3, "after", None)] == [
        (line.number, line.text, line.decode_error) for line in (lines[0], lines[2])
    ]
    assert (2, 1024, "line too long: 5,000 bytes, at most 1,000") == (
        lines[1].number, len(lines[1].text), (lines[1].decode_error or "")[:41]
    )
    assert len(data) == lines[-1].end


def test_lines_split_across_blocks_come_out_whole() -> None:
    """A line arriving one byte at a time is the same line, with the same end offset."""
    splitter = LineSplitter(max_bytes=100)
    data = b'\xef\xbb\xbf{"a": 1}\r\n\n{"b": 2}'
    lines = [line for byte in data for line in splitter.feed(bytes([byte]))]
    lines += splitter.finish()
    assert [(1, '{"a": 1}', 13), (3, '{"b": 2}', 22)] == [
        (line.number, line.text, line.end) for line in lines
    ]


@pytest.mark.parametrize(
    "raw",
    [b'{"a": "\\ud800", "x": 1}', b'{"a": "\x00"}', b'\x00\x00\x00', b'{"a": "\xff\xfe"}',
     b'{"a": NaN}', b"[" * 2000 + b"]" * 2000, b'{"a": ' + b"[" * 900 + b"]" * 900 + b"}",
     b'{"a": 1} trailing'],
    ids=["surrogate", "NUL in string", "NULs", "not UTF-8", "NaN", "2000 deep", "900 deep",
         "trailing"],
)
def test_failure_records_are_always_valid_utf8_json(raw: bytes, tmp_path: Path) -> None:
    """Whatever a line holds, its failures-file record is strict JSON in valid UTF-8."""
    (line,) = read_lines(io.BytesIO(raw + b"\n"))
    path = tmp_path / "f.jsonl"
    with FailuresFile(path) as failures:
        failures.write(line, "why \udcff")  # a reason can hold a lone surrogate too
    text = path.read_bytes().decode("utf-8")  # strict: raises if not UTF-8
    record = json.loads(text, parse_constant=lambda name: pytest.fail(name))
    assert ({"line": 1, "reason": "why \udcff"}, 1) == (record["error"], text.count("\n"))


def test_a_valid_object_keeps_its_exact_text() -> None:
    """A JSON object line gets the error appended to its own text, not re-encoded."""
    text = '{"customization_id": "x",  "n": 1.50, "s": "\\u00e9"}'
    assert text[:-1] + ', "error": {"line": 7, "reason": "why"}}' == failure_record(
        _line(text, 7), "why"
    )


def test_failures_file_keeps_the_first_write_error(tmp_path: Path) -> None:
    """A full disk does not raise: the error is kept, and later records are counted."""
    failures = FailuresFile(tmp_path / "unused.jsonl")
    failures.adopt(open("/dev/full", "w", encoding="utf-8", buffering=1))  # noqa: SIM115
    failures.write(_line('{"a": 1}'), "why")
    failures.write(_line('{"a": 2}'), "why")
    failures.close()
    assert (28, 2) == (failures.error.errno if failures.error else None, failures.unwritten)

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

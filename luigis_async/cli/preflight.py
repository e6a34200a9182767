"""Before the first request: the files a job writes can be written, and none is its input.

A failures file that cannot be created (a missing or read-only directory, a full disk)
would otherwise be found at the first failure, after lines were sent; one that is the
input (a hard link, or stdin redirected from it) would be truncated while it is read. So
both the failures file and the journal are opened, written and compared with the input
(by device and inode) before anything is sent; any problem is a usage error, exit 2.

The failures file is emptied here too, so a failures file from an earlier run never
survives into this one looking like its output.
"""

from __future__ import annotations

import io
import logging
import os
import stat
from pathlib import Path
from typing import IO, Any, Final, Literal

import attrs
import click

from ..jsonl import FailuresFile
from .journal import Journal, JournalError, now_iso
from .outcome import EXIT_USAGE
from .resume import Fingerprint, JournalState, read_journal

__all__ = [
    "InputFile",
    "PreflightError",
    "ResumeMode",
    "open_failures",
    "open_lines_journal",
    "open_sync_journal",
]

log: Final[logging.Logger] = logging.getLogger("luigis_async.cli")

#: How the journal of a push is opened: afresh, to resume, or discarding an old one.
ResumeMode = Literal["fresh", "resume", "restart"]

FileId = tuple[int, int]


class PreflightError(click.ClickException):
    """A file the job must write is unusable: exit 2, nothing sent."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str) -> None:
        super().__init__(f"{message}; nothing was sent")


def _identity(fd: int) -> FileId | None:
    try:
        info = os.fstat(fd)
    except OSError:
        return None
    return info.st_dev, info.st_ino


def _path_identity(path: Path) -> FileId | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_dev, info.st_ino


@attrs.define
class InputFile:
    """The input of a job: the stream, what it is, and how to recognise it again."""

    stream: IO[bytes]
    name: str  # the path as given, or "stdin"
    identity: FileId | None
    #: Set for a regular file (stdin redirected from one included).
    fingerprint: Fingerprint | None

    @classmethod
    def of(cls, stream: IO[bytes], name: str) -> InputFile:
        try:
            fd = stream.fileno()
        except (OSError, AttributeError, ValueError, io.UnsupportedOperation):
            return cls(stream, name, None, None)
        return cls(stream, name, _identity(fd), Fingerprint.of(fd, _offset(fd)))

    def is_(self, identity: FileId | None) -> bool:
        return identity is not None and identity == self.identity


def _offset(fd: int) -> int:
    try:
        return os.lseek(fd, 0, os.SEEK_CUR)
    except OSError:
        return 0


def open_failures(path: Path, source: InputFile) -> FailuresFile:
    """The failures file, opened, emptied and written to once; never the input.

    Raises:
        PreflightError: it cannot be created or written, or it is the input.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise PreflightError(f"cannot write the failures file {path}: {exc.strerror}") from None
    file = os.fdopen(fd, "w", encoding="utf-8", newline="\n")
    try:
        if source.is_(_identity(fd)):
            raise PreflightError(
                f"the failures file {path} is the input {source.name} (the same file, by "
                "device and inode): it would be emptied while it is read. Choose another "
                "--failures-out"
            )
        _probe(fd)
    except BaseException:
        file.close()
        raise
    failures = FailuresFile(path)
    failures.adopt(file)
    return failures


def _probe(fd: int) -> None:
    """Empty a regular file and write to it once: a full disk shows up here, not later.

    Anything else (``/dev/null``, a pipe) gets one newline, which JSON Lines readers skip.
    """
    try:
        regular = stat.S_ISREG(os.fstat(fd).st_mode)
        if regular:
            os.ftruncate(fd, 0)
        os.write(fd, b"\n")
        if regular:
            os.fsync(fd)
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
    except OSError as exc:
        raise PreflightError(f"cannot write the failures file: {exc.strerror}") from None


def _check_journal_path(path: Path, source: InputFile, failures: FailuresFile) -> None:
    """Refuse a journal that is the input or the failures file: it would be replaced."""
    identity = _path_identity(path)
    if source.is_(identity):
        raise PreflightError(
            f"the journal {path} is the input {source.name} (the same file, by device and "
            "inode). Choose another --journal"
        )
    if identity is not None and identity == _path_identity(failures.path):
        raise PreflightError(f"the journal {path} is the failures file. Choose another --journal")


def _read(path: Path) -> JournalState | None:
    try:
        return read_journal(path)
    except JournalError as exc:
        raise PreflightError(f"{exc}. Choose another --journal, or remove it") from None
    except OSError as exc:
        raise PreflightError(f"cannot read the journal {path}: {exc.strerror}") from None


def _create(path: Path, header: dict[str, Any]) -> Journal:
    try:
        return Journal.create(path, header)
    except OSError as exc:
        raise PreflightError(f"cannot write the journal {path}: {exc.strerror}") from None


def open_lines_journal(
    path: Path,
    source: InputFile,
    failures: FailuresFile,
    *,
    command: str,
    mode: ResumeMode,
    again: str,
) -> tuple[Journal, JournalState | None]:
    """The journal of a push or import (``command``), and (with ``--resume``) what the
    earlier run applied.

    ``again`` is the command to show for resuming, e.g. ``luigis-async push pins.jsonl``.

    Raises:
        PreflightError: an unfinished run's journal without --resume or --restart, a
            journal of another input, or one that cannot be written.
    """
    _check_journal_path(path, source, failures)
    state = _read(path)
    if state is not None and state.command != command:
        raise PreflightError(
            f"{path} is the journal of an unfinished {state.command or 'other'} run. "
            "Choose another --journal"
        )
    if state is not None and state.applied.count == 0:
        state = None  # nothing to skip: the same as no journal
    header = {"command": command, "input": _fingerprint_json(source), "path": source.name}
    if mode == "resume":
        return _resume(path, source, state, header)
    if state is not None and mode != "restart":
        raise PreflightError(
            f"found the journal of an unfinished {command} at {path} ({state.describe()}): "
            f"to send only the lines not applied yet, run `{again} --resume`; to start "
            "afresh and send every line again, `--restart`"
        )
    return _create(path, header), None


def _fingerprint_json(source: InputFile) -> dict[str, Any] | None:
    return source.fingerprint.to_json() if source.fingerprint is not None else None


def _resume(
    path: Path, source: InputFile, state: JournalState | None, header: dict[str, Any]
) -> tuple[Journal, JournalState | None]:
    """Append to the journal of the same input; refuse another input or a pipe."""
    if source.fingerprint is None:
        raise PreflightError(
            f"--resume needs the input as a regular file ({source.name} is not one), so "
            "that it can be checked to be the same input; write it to a file first"
        )
    if state is None:
        log.warning("no journal at %s: nothing to resume, sending every line", path)
        return _create(path, header), None
    recorded = Fingerprint.from_json(state.header.get("input"))
    if recorded != source.fingerprint:
        then = f"{recorded.size:,} bytes" if recorded is not None else "unknown"
        raise PreflightError(
            f"the journal {path} records a run of another input ({then} then, "
            f"{source.fingerprint.size:,} bytes now, or other content): resuming it would "
            "skip the wrong lines. To send every line of this input, --restart"
        )
    marker = {"resumed": now_iso(), "pid": os.getpid(), "applied_before": state.applied.count}
    try:
        journal = Journal.reopen(path, state.torn_at, marker)
    except OSError as exc:
        raise PreflightError(f"cannot write the journal {path}: {exc.strerror}") from None
    log.info("resuming: %s per the journal %s", state.describe(), path)
    return journal, state


def open_sync_journal(
    path: Path, source: InputFile, failures: FailuresFile, *, managed_tag: str
) -> Journal:
    """The journal of a sync, replacing one an unfinished sync left (after saying so).

    A sync needs no --resume: it plans from what the server holds on every run, so
    running it again after a kill is the resume. Its journal records the writes applied,
    so that what a killed run did is known.

    Raises:
        PreflightError: it cannot be written, or is another command's unfinished journal.
    """
    _check_journal_path(path, source, failures)
    state = _read(path)
    if state is not None and state.command != "sync" and state.applied_count:
        raise PreflightError(
            f"{path} is the journal of an unfinished {state.command or 'other'} run. "
            "Choose another --journal"
        )
    if state is not None and state.command == "sync" and (state.applied_count or state.failed):
        log.warning(
            "an earlier sync was cut short (journal %s: %s); this one plans afresh from "
            "what the server holds, which includes those writes",
            path, state.describe(),
        )
    header = {
        "command": "sync",
        "input": _fingerprint_json(source),
        "path": source.name,
        "managed_tag": managed_tag,
    }
    return _create(path, header)

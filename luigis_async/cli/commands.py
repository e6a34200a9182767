"""The click commands: options in, one job run, a summary and an exit code out.

A thin shell. The jobs live in ``push.py``, ``sync.py`` (both run by ``job.py``, and
both started by ``run.py``) and ``export.py``, the file format in ``luigis_async.jsonl``,
the input's thread in ``reader.py``, the checks before the first request in
``preflight.py``, the journal in ``journal.py``, where requests go in ``connect.py``,
terminal output in ``progress.py`` and ``plan.py``, exit codes in ``outcome.py``, signals
in ``signals.py``. Exit codes: 0 all done, 1 something failed, 2 usage or credential
error (or a file that cannot be written), 128 + the signal when stopped by one (130
Ctrl-C, 143 SIGTERM, 129 SIGHUP).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shlex
import signal
import stat
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, Final, NoReturn, TypeVar
from urllib.parse import urlsplit

import click

from .._version import __version__
from ..batch import DEFAULT_CONCURRENCY
from ..config import DEFAULT_BASE_URL, ENV_BASE_URL
from ..errors import AuthenticationError, LuigisBoxError
from ..jsonl import read_updates
from ..models import TargetType
from ..retry import DEFAULT_MAX_ATTEMPTS, RetryPolicy
from ..sandbox import Faults, Sandbox
from ..sandbox.__main__ import main as sandbox_main
from ..sandbox.demo import demo_customizations
from .connect import (
    ENV_PRIVATE_KEY,
    ENV_TRACKER_ID,
    SANDBOX_TRACKER_ID,
    Credentials,
    MissingCredentialsError,
    SandboxTarget,
    connect,
)
from .export import ExportFilters, count, export
from .job import JobSummary
from .journal import JournalState
from .outcome import EXIT_FAILED, EXIT_INTERRUPTED
from .preflight import (
    InputFile,
    ResumeMode,
    open_failures,
    open_push_journal,
    open_sync_journal,
)
from .progress import Output, level_for, output
from .push import dry_run
from .run import Batch, CredentialError, PushRun, SyncRun
from .signals import signal_name
from .sync import SyncSummary

__all__ = ["cli"]

log = logging.getLogger("luigis_async.cli")

#: Where ``push -`` writes its failures unless told otherwise.
STDIN_FAILURES: Final = Path("push-failed.jsonl")
#: Where ``sync -`` writes its failures unless told otherwise.
STDIN_SYNC_FAILURES: Final = Path("sync-failed.jsonl")
#: The journals of ``push -`` and ``sync -`` when stdin is a regular file (a pipe has none
#: unless ``--journal`` names one: it could never be resumed).
STDIN_JOURNAL: Final = Path("push.journal")
STDIN_SYNC_JOURNAL: Final = Path("sync.journal")
#: How many demo customizations ``export --sandbox`` starts with.
DEMO_EXPORT_COUNT: Final = 250

_F = TypeVar("_F", bound=Callable[..., Any])


def _faults(ctx: click.Context, param: click.Parameter, value: str | None) -> Faults | None:
    if value is None:
        return None
    try:
        return Faults.parse(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _faults_spec(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """A valid fault spec, kept as text for the sandbox server's own parser."""
    _faults(ctx, param, value)
    return value


def _base_url(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise click.BadParameter(f"must be an http(s) URL, e.g. {DEFAULT_BASE_URL}")
    return value


def _common(command: _F) -> _F:
    """Verbosity, shared by every command."""
    command = click.option(
        "-q", "--quiet", is_flag=True, help="Errors only: no progress, no summary."
    )(command)
    return click.option(
        "-v", "--verbose", count=True, help="Debug logging, one line per input line."
    )(command)


def _target_options(command: _F) -> _F:
    """Where the requests go: the API (credentials from the environment) or a sandbox."""
    for option in reversed(
        [
            click.option(
                "--base-url",
                metavar="URL",
                callback=_base_url,
                help="The API's base URL (default: the live service).",
            ),
            click.option(
                "--tracker-id",
                metavar="ID",
                help=f"Tracker ID (default: ${ENV_TRACKER_ID}). The private key is read "
                f"only from ${ENV_PRIVATE_KEY}, never from an option.",
            ),
            click.option(
                "--sandbox",
                "use_sandbox",
                is_flag=True,
                help="Run against an in-process sandbox: no account needed.",
            ),
            click.option(
                "--faults",
                metavar="SPEC",
                callback=_faults,
                help="With --sandbox: inject faults, e.g. '503=0.1,429=0.05,seed=7'.",
            ),
        ]
    ):
        command = option(command)
    return command


def _batch_options(command: _F) -> _F:
    """How hard to push the API: shared by every command that writes."""
    for option in reversed(
        [
            click.option(
                "--concurrency", type=click.IntRange(min=1), default=DEFAULT_CONCURRENCY,
                show_default=True, help="Requests in flight at most.",
            ),
            click.option(
                "--rate", type=click.FloatRange(min=0, min_open=True), metavar="R",
                help="Requests per second at most (default: unlimited).",
            ),
            click.option(
                "--max-attempts", type=click.IntRange(min=1), default=DEFAULT_MAX_ATTEMPTS,
                show_default=True, help="Attempts per request, retries included.",
            ),
        ]
    ):
        command = option(command)
    return command


def _target(
    base_url: str | None, tracker_id: str | None, use_sandbox: bool, faults: Faults | None
) -> Credentials | SandboxTarget:
    if use_sandbox:
        if base_url is not None:
            raise click.UsageError("--base-url and --sandbox exclude each other")
        return SandboxTarget(tracker_id or SANDBOX_TRACKER_ID, faults or Faults())
    if faults is not None:
        raise click.UsageError("--faults needs --sandbox")
    try:
        return Credentials.from_env(
            tracker_id, base_url or os.environ.get(ENV_BASE_URL) or DEFAULT_BASE_URL
        )
    except MissingCredentialsError as exc:
        raise CredentialError(str(exc)) from None


def _check_directory(path: Path, option: str) -> None:
    """Refuse at once an output path whose directory is missing, not after the work."""
    if not path.resolve().parent.is_dir():
        raise click.BadParameter(f"no such directory: {path.parent}", param_hint=option)


def _failures_path(file: Path, failures_out: Path | None, for_stdin: Path) -> Path:
    """``--failures-out``, else FILE.failed.jsonl (``for_stdin`` for ``-``); never FILE."""
    stdin = str(file) == "-"
    path = failures_out or (for_stdin if stdin else file.with_name(file.name + ".failed.jsonl"))
    if not stdin and path.resolve() == file.resolve():
        raise click.UsageError("--failures-out must not be FILE itself")
    _check_directory(path, "--failures-out")
    return path


def _journal_option(command: _F) -> _F:
    return click.option(
        "--journal", "journal_out", type=click.Path(dir_okay=False, path_type=Path),
        metavar="PATH",
        help="Where each finished line is recorded, for --resume after a kill (default: "
        "FILE.journal; for stdin: ./push.journal, none for a pipe).",
    )(command)


def _journal_path(
    file: Path, given: Path | None, source: InputFile, for_stdin: Path
) -> Path | None:
    """``--journal``, else FILE.journal; for stdin ``for_stdin``, or none for a pipe."""
    if given is not None:
        return given
    if str(file) != "-":
        return file.with_name(file.name + ".journal")
    return for_stdin if source.fingerprint is not None else None


def _size(stream: IO[bytes]) -> int | None:
    """The bytes left to read when that is cheap to know (a regular file), else None."""
    try:
        info = os.fstat(stream.fileno())
        return info.st_size - stream.tell() if stat.S_ISREG(info.st_mode) else None
    except (OSError, AttributeError, ValueError):
        return None


@contextlib.contextmanager
def _input(file: Path) -> Iterator[IO[bytes]]:
    """The input, unbuffered: the reader's thread reads it in blocks of its own.

    For stdin, the raw file under ``sys.stdin.buffer``: a thread waiting in a read there
    holds no buffer lock that the interpreter's exit would then wait for.
    """
    if str(file) == "-":
        yield getattr(sys.stdin.buffer, "raw", sys.stdin.buffer)
        return
    with file.open("rb", buffering=0) as stream:
        yield stream


def _run(main: Any) -> Any:
    """``asyncio.run``, where a Ctrl-C that the job could not handle still exits 130."""
    try:
        return asyncio.run(main)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        raise SystemExit(EXIT_INTERRUPTED) from None


def _finish(
    ctx: click.Context, summary: JobSummary, quiet: bool, *, again: str, retry: str
) -> NoReturn:
    """Print the summary, then what stopped the run and how to go on; exit.

    ``again`` resumes the run from its journal; ``retry`` pushes the failures file.
    """
    if not quiet:
        click.echo(summary.format())
    if summary.auth_error is not None:
        raise CredentialError(f"the server rejected the credentials: {summary.auth_error}")
    for message in _what_next(summary, again=again, retry=retry, quiet=quiet):
        click.echo(message, err=True)
    ctx.exit(summary.exit_code)


def _what_next(summary: JobSummary, *, again: str, retry: str, quiet: bool) -> list[str]:
    """Why the run did not finish, and what to run next (``retry``: the whole advice)."""
    journal = summary.journal_path
    resume = f"; to finish the job: {again}" if journal is not None else ""
    failures = summary.failures_path
    if summary.failures_error is not None:
        kept = f"the journal {journal} records every line applied" if journal else "no journal"
        return [
            f"could not write the failures file {failures}: {summary.failures_error} "
            f"({summary.failures_unwritten:,} records missing from it); {kept}{resume}"
        ]
    if summary.journal_error is not None:
        return [f"could not write the journal {journal}: {summary.journal_error}{resume}"]
    if summary.interrupted:
        by = f" ({signal_name(summary.signal_number)})" if summary.signal_number else ""
        where = (
            f"what was not applied is in {failures}"
            if summary.failures_written
            else "everything read was applied"
        )
        return [f"interrupted{by}: {where}{resume}"]
    if summary.input_error is not None:
        return [f"could not read the whole input: {summary.input_error}{resume}"]
    if summary.stop_reason is not None and journal is not None:
        return [f"stopped ({summary.stop_reason}): the journal {journal} is kept{resume}"]
    if summary.failures_written and not quiet:
        return [retry]
    return []


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="luigis-async")
def cli() -> None:
    """Bulk jobs for Luigi's Box recommender pin customizations.

    Credentials come from the environment: LUIGISBOX_TRACKER_ID and
    LUIGISBOX_PRIVATE_KEY. Try any command without an account with --sandbox.
    """


@cli.command("push")
@click.argument(
    "file", type=click.Path(exists=True, dir_okay=False, allow_dash=True, path_type=Path)
)
@_batch_options
@click.option(
    "--failures-out", type=click.Path(dir_okay=False, path_type=Path), metavar="PATH",
    help="Where lines not applied go (default: FILE.failed.jsonl; "
    f"for stdin: ./{STDIN_FAILURES}).",
)
@_journal_option
@click.option(
    "--resume", is_flag=True,
    help="Skip the lines the journal says a killed or stopped run applied; push the rest.",
)
@click.option(
    "--restart", is_flag=True,
    help="Discard the journal of an unfinished run and push every line again.",
)
@click.option("--dry-run", "dry", is_flag=True, help="Validate every line; send nothing.")
@_target_options
@_common
@click.pass_context
def push_command(
    ctx: click.Context,
    file: Path,
    concurrency: int,
    rate: float | None,
    max_attempts: int,
    failures_out: Path | None,
    journal_out: Path | None,
    resume: bool,
    restart: bool,
    dry: bool,
    base_url: str | None,
    tracker_id: str | None,
    use_sandbox: bool,
    faults: Faults | None,
    verbose: int,
    quiet: bool,
) -> None:
    """Apply the updates in FILE (JSON Lines; - reads stdin).

    Each line is {"customization_id": "<uuid>", "customization": {<API body>}}; an
    "error" field is ignored, so a failures file can be fixed and pushed again. Every
    line not applied is written to the failures file with its line number and reason;
    every line finished, to the journal, so that after a kill --resume pushes the rest.
    """
    stdin = str(file) == "-"
    if use_sandbox and stdin:
        raise click.UsageError(
            "--sandbox needs a FILE, not stdin: it reads FILE first to seed the sandbox"
        )
    if resume and restart:
        raise click.UsageError("--resume and --restart exclude each other")
    if dry and (resume or restart or journal_out is not None):
        raise click.UsageError(
            "--dry-run sends nothing: --journal, --resume and --restart do not apply"
        )
    mode: ResumeMode = "resume" if resume else "restart" if restart else "fresh"
    failures_path = _failures_path(file, failures_out, STDIN_FAILURES)
    target = None if dry else _target(base_url, tracker_id, use_sandbox, faults)
    again = shlex.join(
        ["luigis-async", "push", str(file)]
        + (["--journal", str(journal_out)] if journal_out is not None else [])
    )
    with output(level_for(verbose, quiet)) as out, _input(file) as stream:
        source = InputFile.of(stream, "stdin" if stdin else str(file))
        with open_failures(failures_path, source) as failures:
            if target is None:
                with out.progress("dry run", _size(stream), "bytes") as tracker:
                    summary = dry_run(read_updates(stream), failures, tracker)
            else:
                journal_path = _journal_path(file, journal_out, source, STDIN_JOURNAL)
                if journal_path is None and mode != "fresh":
                    raise click.UsageError(
                        "--resume and --restart need a journal: stdin is a pipe, so give "
                        "--journal PATH (and for --resume, the input as a regular file)"
                    )
                journal, state = (
                    open_push_journal(journal_path, source, failures, mode=mode, again=again)
                    if journal_path is not None
                    else (None, None)
                )
                batch = Batch(target, RetryPolicy(max_attempts=max_attempts), concurrency, rate)
                run = PushRun(
                    batch, source, failures, journal, _skip(state), None if stdin else file
                )
                summary = _run(run.run(out, _size(stream)))
    _finish(
        ctx, summary, quiet,
        again=f"{again} --resume",
        retry=f"fix them and push again: luigis-async push {failures_path}",
    )


def _skip(state: JournalState | None) -> Callable[[int], bool] | None:
    return state.applied.__contains__ if state is not None else None


def _managed_tag(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if not value.strip():
        raise click.BadParameter("must not be empty")
    return value


def _stdin_is_terminal() -> bool:
    """Whether a person could answer a question (a test may pretend so)."""
    return sys.stdin.isatty()


@contextlib.contextmanager
def _default_sigint() -> Iterator[None]:
    """Ctrl-C raises KeyboardInterrupt at once, even inside ``asyncio.run``.

    ``asyncio.run``'s own handler only cancels the main task, which a prompt blocking the
    loop would notice only after the answer.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _confirm(question: str) -> bool | None:
    """Ask on the terminal: yes, no, or None for Ctrl-C (or the end of input)."""
    with _default_sigint():
        try:
            return click.confirm(question, default=False, err=True)
        except click.Abort:
            return None


@cli.command("sync")
@click.argument(
    "file", type=click.Path(exists=True, dir_okay=False, allow_dash=True, path_type=Path)
)
@click.option(
    "--managed-tag", required=True, metavar="T", callback=_managed_tag,
    help="Only customizations tagged T are changed or deleted; all sync writes carry T.",
)
@click.option(
    "--prune", is_flag=True, help="Delete the managed customizations FILE no longer holds."
)
@click.option(
    "--allow-empty", is_flag=True,
    help="With --prune, accept an empty FILE: delete every customization tagged T.",
)
@click.option("--plan-only", is_flag=True, help="Print the plan; write nothing.")
@click.option(
    "-y", "--yes", is_flag=True,
    help="Apply without asking (required when stdin is not a terminal).",
)
@_batch_options
@click.option(
    "--failures-out", type=click.Path(dir_okay=False, path_type=Path), metavar="PATH",
    help="Where invalid lines and writes not applied go (default: FILE.failed.jsonl; "
    f"for stdin: ./{STDIN_SYNC_FAILURES}).",
)
@click.option(
    "--journal", "journal_out", type=click.Path(dir_okay=False, path_type=Path),
    metavar="PATH",
    help="Where each write applied is recorded while the sync runs (default: "
    "FILE.journal). A killed sync needs no --resume: run it again, it plans afresh.",
)
@_target_options
@_common
@click.pass_context
def sync_command(
    ctx: click.Context,
    file: Path,
    managed_tag: str,
    prune: bool,
    allow_empty: bool,
    plan_only: bool,
    yes: bool,
    concurrency: int,
    rate: float | None,
    max_attempts: int,
    failures_out: Path | None,
    journal_out: Path | None,
    base_url: str | None,
    tracker_id: str | None,
    use_sandbox: bool,
    faults: Faults | None,
    verbose: int,
    quiet: bool,
) -> None:
    """Make the customizations tagged T match FILE (JSON Lines; - reads stdin).

    Each line is one customization body as the API takes it, without an ID; it matches
    an existing customization by model and target. Prints the plan (creates, updates
    with their field diffs, deletes), asks, then applies it. Customizations without the
    tag T are never touched. Any invalid line refuses the whole file, before any request.

    With --sandbox the sandbox starts with a few managed customizations (some out of
    date, one no longer desired) and two made by hand.
    """
    stdin = str(file) == "-"
    failures_path = _failures_path(file, failures_out, STDIN_SYNC_FAILURES)
    if not (plan_only or yes) and (stdin or not _stdin_is_terminal()):
        raise click.UsageError(
            "refusing to write without a confirmation, and stdin is not a terminal to ask "
            "on: pass --yes to apply the plan, or --plan-only to print it"
        )
    target = _target(base_url, tracker_id, use_sandbox, faults)
    batch = Batch(target, RetryPolicy(max_attempts=max_attempts), concurrency, rate)
    with output(level_for(verbose, quiet)) as out, _input(file) as stream:
        source = InputFile.of(stream, "stdin" if stdin else str(file))
        with open_failures(failures_path, source) as failures:
            journal_path = _journal_path(file, journal_out, source, STDIN_SYNC_JOURNAL)
            journal = (
                open_sync_journal(journal_path, source, failures, managed_tag=managed_tag)
                if journal_path is not None and not plan_only
                else None
            )
            run = SyncRun(
                batch, source, failures, journal, managed_tag, prune, allow_empty, plan_only,
                confirm=None if yes else _confirm, verbose=bool(verbose), quiet=quiet,
            )
            outcome: SyncSummary | int = _run(run.run(out))
    if isinstance(outcome, int):
        ctx.exit(outcome)
    again = shlex.join(["luigis-async", "sync", str(file), "--managed-tag", managed_tag])
    _finish(
        ctx, outcome, quiet,
        again=f"{again} (it plans afresh from what the server holds)",
        retry=f"the writes not applied are in {failures_path}; to retry them, sync again "
        f"({again}): it plans afresh from what the server holds",
    )


@cli.command("export")
@click.option("--model", "models", multiple=True, metavar="M", help="Only this model (repeatable).")
@click.option("--tag", "tags", multiple=True, metavar="T", help="Only with this tag (repeatable).")
@click.option(
    "--target-type", type=click.Choice([t.value for t in TargetType]), help="Only this target type."
)
@click.option(
    "-o", "--output", "path", required=True, metavar="PATH",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    help="Where to write the JSON Lines (- for stdout).",
)
@_target_options
@_common
@click.pass_context
def export_command(
    ctx: click.Context,
    models: tuple[str, ...],
    tags: tuple[str, ...],
    target_type: str | None,
    path: Path,
    base_url: str | None,
    tracker_id: str | None,
    use_sandbox: bool,
    faults: Faults | None,
    verbose: int,
    quiet: bool,
) -> None:
    """Write every matching customization to PATH as JSON Lines that push reads.

    With --sandbox the sandbox starts with a few hundred demo customizations.
    """
    if str(path) != "-":
        _check_directory(path, "--output")
    target = _target(base_url, tracker_id, use_sandbox, faults)
    filters = ExportFilters(models, tags, target_type)

    def seed(sandbox: Sandbox) -> None:
        for customization_id, body in demo_customizations(DEMO_EXPORT_COUNT):
            sandbox.add(body, customization_id)

    async def run_export(out: Output, out_file: IO[str]) -> tuple[int, float]:
        async with connect(target, seed=seed, max_connections=4) as client:
            total = await count(client, filters)
            with out.progress("export", total, "items") as tracker:
                return await export(client, filters, out_file, tracker)

    with output(level_for(verbose, quiet)) as out:
        try:
            with _output_file(path) as out_file:
                written, elapsed = _run(run_export(out, out_file))
        except AuthenticationError as exc:
            raise CredentialError(f"the server rejected the credentials: {exc.reason}") from None
        except LuigisBoxError as exc:
            log.error("export failed: %s", exc)
            ctx.exit(EXIT_FAILED)
        log.info(
            "exported %d customizations to %s in %.2f s",
            written, "stdout" if str(path) == "-" else path, elapsed,
        )


@contextlib.contextmanager
def _output_file(path: Path) -> Iterator[IO[str]]:
    """Stdout for ``-``; else a ``.part`` file renamed into place only when complete."""
    if str(path) == "-":
        yield sys.stdout
        return
    part = path.with_name(path.name + ".part")
    try:
        with part.open("w", encoding="utf-8", newline="\n") as file:
            yield file
        part.replace(path)
    finally:
        part.unlink(missing_ok=True)


@cli.command("sandbox")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=0, show_default=True,
    help="Port to bind; 0 picks a free one.",
)
@click.option(
    "--faults", "spec", default="", metavar="SPEC", callback=_faults_spec,
    help="Fault injection, e.g. '429=0.1,503=0.1,drop=0.03,latency=0.05:2.0,seed=7'.",
)
@click.option("--tracker-id", default=SANDBOX_TRACKER_ID, show_default=True, help="Tracker ID.")
@click.pass_context
def sandbox_command(ctx: click.Context, host: str, port: int, spec: str, tracker_id: str) -> None:
    """Serve a local sandbox of the API until Ctrl-C, printing its URL, tracker ID and key.

    The key is generated afresh for each run: it is the sandbox's own, not yours.
    """
    argv = ["--host", host, "--port", str(port), "--faults", spec, "--tracker-id", tracker_id]
    ctx.exit(sandbox_main(argv))


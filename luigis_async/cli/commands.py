"""The click commands: options in, one job run, a summary and an exit code out.

A thin shell. The jobs live in ``push.py``, ``sync.py`` (both run by ``job.py``) and
``export.py``, the file format in ``luigis_async.jsonl``, where requests go in
``connect.py``, terminal output in ``progress.py`` and ``plan.py``, exit codes and Ctrl-C
in ``outcome.py``. Exit codes: 0 all done, 1 something failed, 2 usage or credential
error, 130 interrupted by Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import stat
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, Final, NoReturn, TypeVar
from urllib.parse import urlsplit

import click

from .. import __version__
from ..batch import DEFAULT_CONCURRENCY
from ..client import DEFAULT_BASE_URL, ENV_BASE_URL
from ..errors import AuthenticationError, LuigisBoxError
from ..jsonl import FailuresFile, read_bodies, read_updates
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
from .outcome import EXIT_AUTH, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK
from .plan import PREVIEW, plan_rows, print_plan
from .progress import Output, level_for, output
from .push import PushSummary, dry_run, push, seed_sandbox
from .sync import Desired, SyncSummary, apply, read_desired, seed_demo

__all__ = ["cli"]

log = logging.getLogger("luigis_async.cli")

#: Where ``push -`` writes its failures unless told otherwise.
STDIN_FAILURES: Final = Path("push-failed.jsonl")
#: Where ``sync -`` writes its failures unless told otherwise.
STDIN_SYNC_FAILURES: Final = Path("sync-failed.jsonl")
#: How many demo customizations ``export --sandbox`` starts with.
DEMO_EXPORT_COUNT: Final = 250

_F = TypeVar("_F", bound=Callable[..., Any])


class CredentialError(click.ClickException):
    """Missing or rejected credentials: exit 2, like a usage error."""

    exit_code = EXIT_AUTH


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


def _size(stream: IO[bytes]) -> int | None:
    """The bytes left to read when that is cheap to know (a regular file), else None."""
    try:
        info = os.fstat(stream.fileno())
        return info.st_size - stream.tell() if stat.S_ISREG(info.st_mode) else None
    except (OSError, AttributeError, ValueError):
        return None


@contextlib.contextmanager
def _input(file: Path) -> Iterator[IO[bytes]]:
    if str(file) == "-":
        yield sys.stdin.buffer
        return
    with file.open("rb") as stream:
        yield stream


def _run(main: Any) -> Any:
    """``asyncio.run``, where a Ctrl-C that the job could not handle still exits 130."""
    try:
        return asyncio.run(main)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        raise SystemExit(EXIT_INTERRUPTED) from None


def _finish(
    ctx: click.Context, summary: JobSummary, quiet: bool, *, interrupted: str, retry: str
) -> NoReturn:
    """Print the summary, then ``interrupted`` or how to ``retry`` the failures; exit."""
    if not quiet:
        click.echo(summary.format())
    if summary.auth_error is not None:
        raise CredentialError(f"the server rejected the credentials: {summary.auth_error}")
    if summary.interrupted:
        click.echo(interrupted, err=True)
    elif summary.failures_written and not quiet:
        click.echo(retry, err=True)
    ctx.exit(summary.exit_code)


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
    line not applied is written to the failures file with its line number and reason.
    """
    if use_sandbox and str(file) == "-":
        raise click.UsageError(
            "--sandbox needs a FILE, not stdin: it reads FILE first to seed the sandbox"
        )
    failures_path = _failures_path(file, failures_out, STDIN_FAILURES)
    target = None if dry else _target(base_url, tracker_id, use_sandbox, faults)
    retry = RetryPolicy(max_attempts=max_attempts)
    level = level_for(verbose, quiet)

    async def run_push(out: Output, stream: IO[bytes], failures: FailuresFile) -> PushSummary:
        assert target is not None
        seed = None
        if isinstance(target, SandboxTarget):

            def seed(sandbox: Sandbox) -> None:
                with file.open("rb") as again:
                    seed_sandbox(sandbox, read_updates(again))

        async with connect(target, seed=seed, retry=retry, max_connections=concurrency) as client:
            with out.progress("push", _size(stream), "bytes") as tracker:
                return await push(
                    client, read_updates(stream), failures, tracker,
                    concurrency=concurrency, rate=rate,
                )

    with output(level) as out, _input(file) as stream, FailuresFile(failures_path) as failures:
        if target is None:
            with out.progress("dry run", _size(stream), "bytes") as tracker:
                summary = dry_run(read_updates(stream), failures, tracker)
        else:
            summary = _run(run_push(out, stream, failures))
    _finish(
        ctx, summary, quiet,
        interrupted=f"interrupted: the lines not applied are in {failures_path}",
        retry=f"fix them and push again: luigis-async push {failures_path}",
    )


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
@_target_options
@_common
@click.pass_context
def sync_command(
    ctx: click.Context,
    file: Path,
    managed_tag: str,
    prune: bool,
    plan_only: bool,
    yes: bool,
    concurrency: int,
    rate: float | None,
    max_attempts: int,
    failures_out: Path | None,
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
    retry = RetryPolicy(max_attempts=max_attempts)
    sandboxes: list[Sandbox] = []

    async def run_sync(out: Output, desired: Desired, failures: FailuresFile) -> SyncSummary | int:
        """Plan, show, ask, apply: the summary, or an exit code if nothing was applied."""

        def seed(sandbox: Sandbox) -> None:
            seed_demo(sandbox, desired.customizations, managed_tag)
            sandboxes.append(sandbox)

        async with connect(target, seed=seed, retry=retry, max_connections=concurrency) as client:
            try:
                plan = await client.plan_sync(
                    desired.customizations, managed_tag=managed_tag, prune=prune
                )
            except AuthenticationError as exc:
                raise CredentialError(
                    f"the server rejected the credentials: {exc.reason}"
                ) from None
            except LuigisBoxError as exc:
                log.error("could not plan: %s", exc)
                return EXIT_FAILED
            if not quiet:
                print_plan(plan_rows(plan, None if verbose else PREVIEW))
            writes = len(plan.create) + len(plan.update) + len(plan.delete)
            if plan_only or not writes:
                return EXIT_OK
            if not yes:
                answer = _confirm(f"Apply these {writes:,} writes?")
                if answer is None:  # Ctrl-C: the prompt's line is still open
                    click.echo("\ninterrupted: nothing applied", err=True)
                    return EXIT_INTERRUPTED
                if not answer:
                    click.echo("nothing applied", err=True)
                    return EXIT_FAILED
            with out.progress("sync", writes, "items") as tracker:
                summary = await apply(
                    client, plan, desired.lines, failures, tracker,
                    concurrency=concurrency, rate=rate,
                )
            for sandbox in sandboxes:
                tagged = sum(managed_tag in c["tags"] for c in sandbox.store.values())
                log.info(
                    "the sandbox now holds %d customizations tagged %s and %d without the "
                    "tag, untouched", tagged, managed_tag, len(sandbox.store) - tagged,
                )
            return summary

    with output(level_for(verbose, quiet)) as out, FailuresFile(failures_path) as failures:
        with _input(file) as stream:
            desired = read_desired(read_bodies(stream), failures)
        empty_prune = prune and not desired.lines_read
        if desired.refused or empty_prune:
            outcome: SyncSummary | int = EXIT_FAILED
        else:
            outcome = _run(run_sync(out, desired, failures))
    if empty_prune:
        raise click.ClickException(
            f"{file} holds no customizations: with --prune that would delete every "
            f"customization tagged {managed_tag}; nothing was sent"
        )
    if desired.refused:
        click.echo(
            f"refusing to sync: {desired.refused:,} of {desired.lines_read:,} lines are "
            "invalid or repeat a key, and a plan from part of the desired set could delete "
            f"good customizations. Nothing was sent. Every such line is in {failures_path}:",
            err=True,
        )
        for problem in desired.problems:
            click.echo(f"  {problem}", err=True)
    if isinstance(outcome, int):
        ctx.exit(outcome)
    again = f"luigis-async sync {file} --managed-tag {managed_tag}"
    _finish(
        ctx, outcome, quiet,
        interrupted=f"interrupted: the writes not applied are in {failures_path}",
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


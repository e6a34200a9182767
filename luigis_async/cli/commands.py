"""The click commands: option groups in, one job run, a summary and an exit code out.

A thin shell. The shared options arrive as one object per group (``options.py``); push
and import run in ``lines_command.py``, sync in ``sync_command.py``, export in
``export.py``; the jobs themselves in ``push.py``, ``importer.py`` and ``sync.py`` (on
``job.py``). Exit codes: ``options.EXIT_CODES``, shown at the end of each ``--help``.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final, cast

import click

from .._version import __version__
from ..bulk import MAX_BULK_LINES, ConflictStrategy
from ..models import TargetType
from ..sandbox import Faults
from ..sandbox.cli import run as serve_sandbox
from ..sandbox.server import DEFAULT_TRACKER_ID
from .export import ExportFilters, export_to
from .lines_command import IMPORT, PUSH, LinesKind, lines_command
from .options import (
    EXIT_CODES,
    FAULTS,
    BatchOptions,
    FileOptions,
    TargetOptions,
    batch_options,
    check_directory,
    file_options,
    parse_faults,
    target_options,
    verbosity_options,
)
from .progress import Verbosity
from .run import run_loop
from .sync_command import SyncOptions, sync_command, sync_options

__all__ = ["cli"]

_FILE: Final = click.Path(exists=True, dir_okay=False, allow_dash=True, path_type=Path)
_EPILOG: Final = f"{EXIT_CODES}\n\n{FAULTS}"


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=EXIT_CODES,
)
@click.version_option(__version__, prog_name="luigis-async")
def cli() -> None:
    """Bulk jobs for Luigi's Box recommender pin customizations.

    Credentials come from the environment: LUIGISBOX_TRACKER_ID (or --tracker-id) and
    LUIGISBOX_PRIVATE_KEY, which is never an option. LUIGISBOX_BASE_URL (or --base-url)
    points a command at another host. Try any command without an account: --sandbox.
    """


def _lines_command(
    kind: LinesKind, short_help: str, *extra: Callable[[Any], Any]
) -> Callable[[Callable[..., None]], click.Command]:
    """The options push and import share (``extra`` after ``--dry-run``), as a command."""

    def decorate(command: Any) -> click.Command:
        options: list[Callable[[Any], Any]] = [
            click.pass_context,
            verbosity_options,
            target_options,
            file_options(command=kind.name, resume=True),
            batch_options,
            *extra,
            click.option("--dry-run", "dry", is_flag=True, help="Check every line; send nothing."),
            click.argument("file", type=_FILE),
        ]
        for option in options:
            command = option(command)
        return cli.command(kind.name, short_help=short_help, epilog=_EPILOG)(command)

    return decorate


@_lines_command(PUSH, "Apply the updates in a JSON Lines file, one PUT per line.")
def push_command(
    ctx: click.Context, file: Path, dry: bool, batch: BatchOptions, files: FileOptions,
    target: TargetOptions, verbosity: Verbosity,
) -> None:
    """Apply the updates in FILE (JSON Lines; - reads stdin).

    Each line is {"customization_id": "<uuid>", "customization": {<API body>}}; an
    "error" field is ignored, so a failures file can be fixed and pushed again. Every
    line not applied is written to the failures file with its line number and reason;
    every line finished, to the journal, so that after a kill --resume pushes the rest.

    With --sandbox the sandbox starts with a placeholder under each ID of FILE.
    """
    lines_command(
        ctx, PUSH, file, dry=dry, batch=batch, files=files, target=target, verbosity=verbosity
    )


@_lines_command(
    IMPORT,
    "Create the customizations in a JSON Lines file, up to 5,000 per request.",
    click.option(
        "--conflict", type=click.Choice(["raise", "ignore", "override"]), default="raise",
        show_default=True,
        help="For a line whose model and target exist already: raise (the line fails with "
        "409), ignore (keep the existing one) or override (replace its definition, keep "
        "its id).",
    ),
    click.option(
        "--chunk-size", type=click.IntRange(1, MAX_BULK_LINES), default=MAX_BULK_LINES,
        show_default=True, help="Lines per bulk request.",
    ),
)
def import_command(
    ctx: click.Context, file: Path, dry: bool, conflict: str, chunk_size: int,
    batch: BatchOptions, files: FileOptions, target: TargetOptions, verbosity: Verbosity,
) -> None:
    """Create the customizations in FILE (JSON Lines; - reads stdin), in bulk.

    Each line is one customization body as the API takes it, without an ID (the shape
    sync reads); an "error" field is ignored, so a failures file can be fixed and
    imported again. Up to 5,000 lines go in one request; a request the server refuses is
    split until the refused lines stand alone, so every line ends applied, or in the
    failures file with its line number and reason. At most 4 requests are in flight
    (fewer with --concurrency). No IDs come back: tag the lines to find them (export
    --tag). After a kill, --resume sends the lines not journaled.
    """
    kind = IMPORT.configured(conflict=cast(ConflictStrategy, conflict), chunk_size=chunk_size)
    lines_command(
        ctx, kind, file, dry=dry, batch=batch, files=files, target=target, verbosity=verbosity
    )


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


@cli.command(
    "sync",
    short_help="Make the customizations with a managed tag match a JSON Lines file.",
    epilog=_EPILOG,
)
@click.argument("file", type=_FILE)
@sync_options
@batch_options
@file_options(command="sync", resume=False)
@target_options
@verbosity_options
@click.pass_context
def sync(
    ctx: click.Context, file: Path, sync: SyncOptions, batch: BatchOptions,
    files: FileOptions, target: TargetOptions, verbosity: Verbosity,
) -> None:
    """Make the customizations tagged T match FILE (JSON Lines; - reads stdin).

    Each line is one customization body as the API takes it, without an ID; it matches
    an existing customization by model and target. Prints the plan (creates, updates
    with their field diffs, deletes), asks, then applies it. Customizations without the
    tag T are never touched. Any invalid line refuses the whole file, before any request.

    With --sandbox the sandbox starts with a few managed customizations (some out of
    date, one no longer desired) and two made by hand.
    """
    sync_command(
        ctx, file, sync, batch=batch, files=files, target=target, verbosity=verbosity,
        interactive=_stdin_is_terminal(), confirm=_confirm,
    )


@cli.command(
    "export",
    short_help="Write the matching customizations as JSON Lines that push reads.",
    epilog=_EPILOG,
)
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
@target_options
@verbosity_options
def export_command(
    models: tuple[str, ...], tags: tuple[str, ...], target_type: str | None, path: Path,
    target: TargetOptions, verbosity: Verbosity,
) -> None:
    """Write every matching customization to PATH as JSON Lines that push reads.

    With --sandbox the sandbox starts with a few hundred demo customizations.
    """
    if str(path) != "-":
        check_directory(path, "--output")
    export_to(path, ExportFilters(models, tags, target_type), target, verbosity, run=run_loop)


@cli.command(
    "sandbox",
    short_help="Serve a local stand-in for the API until Ctrl-C.",
    epilog="\b\nExit codes: 0 after Ctrl-C; 1 when it cannot listen (say, the port is "
    f"taken); 2 for a bad option or seed file.\n\n{FAULTS}",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=0, show_default=True,
    help="Port to bind; 0 picks a free one.",
)
@click.option("--tracker-id", default=DEFAULT_TRACKER_ID, show_default=True, help="Tracker ID.")
@click.option(
    "--private-key", metavar="KEY",
    help="The sandbox's own key, printed for you to export [default: a new random one].",
)
@click.option(
    "--max-skew", type=click.FloatRange(min=0), default=5.0, show_default=True,
    help="Seconds a request's Date may differ from the sandbox's clock.",
)
@click.option("--faults", metavar="SPEC", callback=parse_faults, help="Inject faults (below).")
@click.option(
    "--seed-file", metavar="FILE.jsonl", type=click.Path(exists=True, dir_okay=False),
    help="Customizations to start with: one API body, or one push line, per line.",
)
@click.pass_context
def sandbox_command(
    ctx: click.Context, host: str, port: int, tracker_id: str, private_key: str | None,
    max_skew: float, faults: Faults | None, seed_file: str | None,
) -> None:
    """Serve a local sandbox of the API until Ctrl-C.

    It prints its URL, tracker ID and key, and the export lines that point luigis-async
    (or any LuigisBoxClient) at it, ready to paste into another shell.
    """
    ctx.exit(
        serve_sandbox(
            host=host, port=port, tracker_id=tracker_id, private_key=private_key,
            max_skew=max_skew, faults=faults, seed_file=seed_file,
        )
    )

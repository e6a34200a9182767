"""The options the commands share, in groups: each group arrives as one small frozen object.

A command declares the groups it takes (``@target_options``, ``@batch_options``,
``@file_options(...)``, ``@verbosity_options``); click parses and checks each option as
usual, and the command receives one object per group (``target``, ``batch``, ``files``,
``verbosity``) instead of a dozen parameters. Each object knows what its options mean
together (``TargetOptions.resolve``, ``FileOptions.failures_path``, ...).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit

import attrs
import click

from ..batch import DEFAULT_CONCURRENCY
from ..config import DEFAULT_BASE_URL, ENV_BASE_URL, ENV_PRIVATE_KEY, ENV_TRACKER_ID
from ..retry import DEFAULT_MAX_ATTEMPTS, RetryPolicy
from ..sandbox import Faults
from .connect import Credentials, MissingCredentialsError, SandboxTarget
from .preflight import InputFile, ResumeMode
from .probe import TargetError
from .progress import Verbosity

__all__ = [
    "BatchOptions",
    "CredentialError",
    "FileOptions",
    "TargetOptions",
    "batch_options",
    "check_directory",
    "file_options",
    "group",
    "parse_faults",
    "target_options",
    "verbosity_options",
]

F = TypeVar("F", bound=Callable[..., Any])

#: Exit codes, as every writing command's help ends with them.
EXIT_CODES: Final = """\b
Exit codes:
  0    everything applied
  1    something not applied (see the failures file), or a file not written to its end
  2    usage error, missing credentials, a key the server rejects, an unusable file
  3    the API unreachable (no answer), or failing (5xx, 429) at the preflight
  4    the API does not know the tracker ID (404)
  5    something else answers at the base URL (an HTML page, a redirect)
  130  interrupted by Ctrl-C (143 SIGTERM, 129 SIGHUP: 128 + the signal)"""

#: The ``--faults`` grammar (``Faults.parse``), for the help of every command that has it.
FAULTS: Final = """\b
--faults SPEC (with a sandbox): comma-separated KEY=VALUE, e.g.
'503=0.1,429=0.05,drop=0.02,latency=0.2:0.5,seed=7'
  429 500 502 503 504  share of requests answered with that status (0 to 1)
  drop                 share of connections closed without an answer
  lost_ack             share of writes applied, then answered 503
  latency=P:SECONDS    share of requests delayed by SECONDS
  retry_after=S        Retry-After of the injected 429 and 503 (none: no header)
  max_in_flight=N      at most N requests served at once, 429 beyond
  seed=N               the random seed: the same faults on every run"""


class CredentialError(TargetError):
    """Missing or rejected credentials: exit 2, like a usage error."""


def group(name: str, build: Callable[..., Any], params: list[click.Option]) -> Callable[[F], F]:
    """Add ``params`` to a command; it receives them as one ``build(**values)`` called
    ``name``."""
    names = [param.name for param in params]

    def decorate(command: F) -> F:
        @functools.wraps(command)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            kwargs[name] = build(**{key: kwargs.pop(key) for key in names})
            return command(*args, **kwargs)

        # click lists a command's parameters in the reverse order of this memo.
        memo = list(getattr(command, "__click_params__", []))
        wrapper.__click_params__ = memo + params[::-1]  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate


def parse_faults(ctx: click.Context, param: click.Parameter, value: str | None) -> Faults | None:
    """The ``--faults`` callback: the parsed spec, or a usage error naming what is wrong."""
    if value is None:
        return None
    try:
        return Faults.parse(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _from_environment(name: str) -> bool:
    """Whether the running command's option ``name`` came from its environment variable
    (a ``LUIGISBOX_BASE_URL`` left set does not contradict ``--sandbox``)."""
    ctx = click.get_current_context(silent=True)
    source = ctx.get_parameter_source(name) if ctx is not None else None
    return source is click.core.ParameterSource.ENVIRONMENT


def _base_url(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise click.BadParameter(f"must be an http(s) URL, e.g. {DEFAULT_BASE_URL}")
    return value


@attrs.frozen
class TargetOptions:
    """Where the requests go: the API (credentials from the environment) or a sandbox."""

    base_url: str | None = None
    tracker_id: str | None = None
    sandbox: bool = False
    faults: Faults | None = None
    preflight: bool = True

    def resolve(self) -> Credentials | SandboxTarget:
        """The target these options name.

        Raises:
            click.UsageError: contradictory options.
            CredentialError: the environment lacks the tracker ID or the key.
        """
        if self.sandbox:
            if self.base_url is not None and not _from_environment("base_url"):
                raise click.UsageError("--base-url and --sandbox exclude each other")
            default = SandboxTarget()
            return SandboxTarget(self.tracker_id or default.tracker_id, self.faults or Faults())
        if self.faults is not None:
            raise click.UsageError("--faults needs --sandbox")
        try:
            return Credentials.from_env(self.tracker_id, self.base_url or DEFAULT_BASE_URL)
        except MissingCredentialsError as exc:
            raise CredentialError(str(exc)) from None


def target_options(command: F) -> F:
    """``--base-url``, ``--tracker-id``, ``--sandbox``, ``--faults``, ``--no-preflight``."""
    return group("target", TargetOptions, [
        click.Option(
            ["--base-url"], metavar="URL", callback=_base_url, envvar=ENV_BASE_URL,
            show_envvar=True, help=f"The API's base URL [default: {DEFAULT_BASE_URL}].",
        ),
        click.Option(
            ["--tracker-id"], metavar="ID", envvar=ENV_TRACKER_ID, show_envvar=True,
            help=f"Tracker ID. The private key is read only from ${ENV_PRIVATE_KEY}, "
            "never from an option (where shell history and ps would show it).",
        ),
        click.Option(
            ["--sandbox"], is_flag=True,
            help="Run against an in-process sandbox: no account needed.",
        ),
        click.Option(
            ["--faults"], metavar="SPEC", callback=parse_faults,
            help="With --sandbox: inject faults (grammar below).",
        ),
        click.Option(
            ["--preflight/--no-preflight"], default=True,
            help="First check with one request that the API answers, knows the tracker "
            "and takes the key [default: check].",
        ),
    ])(command)


@attrs.frozen
class BatchOptions:
    """How hard to push the API."""

    concurrency: int = DEFAULT_CONCURRENCY
    rate: float | None = None
    max_attempts: int = DEFAULT_MAX_ATTEMPTS

    @property
    def retry(self) -> RetryPolicy:
        return RetryPolicy(max_attempts=self.max_attempts)


def batch_options(command: F) -> F:
    """``--concurrency``, ``--rate``, ``--max-attempts``."""
    return group("batch", BatchOptions, [
        click.Option(
            ["--concurrency"], type=click.IntRange(min=1), default=DEFAULT_CONCURRENCY,
            show_default=True, help="Requests in flight at most (pacing finds the "
            "server's capacity below it).",
        ),
        click.Option(
            ["--rate"], type=click.FloatRange(min=0, min_open=True), metavar="R",
            help="Requests per second at most [default: unlimited].",
        ),
        click.Option(
            ["--max-attempts"], type=click.IntRange(min=1), default=DEFAULT_MAX_ATTEMPTS,
            show_default=True, help="Attempts per request, retries included.",
        ),
    ])(command)


@attrs.frozen
class FileOptions:
    """Where a job writes what it did not apply, and its journal."""

    failures_out: Path | None = None
    journal: Path | None = None
    resume: bool = False
    restart: bool = False

    @property
    def mode(self) -> ResumeMode:
        """How the journal is opened, once ``--resume`` and ``--restart`` are checked."""
        if self.resume and self.restart:
            raise click.UsageError("--resume and --restart exclude each other")
        return "resume" if self.resume else "restart" if self.restart else "fresh"

    def failures_path(self, file: Path, for_stdin: str) -> Path:
        """``--failures-out``, else FILE.failed.jsonl (``for_stdin`` for ``-``); never FILE."""
        stdin = str(file) == "-"
        path = self.failures_out or (
            Path(for_stdin) if stdin else file.with_name(file.name + ".failed.jsonl")
        )
        if not stdin and path.resolve() == file.resolve():
            raise click.UsageError("--failures-out must not be FILE itself")
        check_directory(path, "--failures-out")
        return path

    def journal_path(self, file: Path, source: InputFile, for_stdin: str) -> Path | None:
        """``--journal``, else FILE.journal; for stdin ``for_stdin``, or none for a pipe."""
        if self.journal is not None:
            return self.journal
        if str(file) != "-":
            return file.with_name(file.name + ".journal")
        return Path(for_stdin) if source.fingerprint is not None else None


def check_directory(path: Path, option: str) -> None:
    """Refuse at once an output path whose directory is missing, not after the work."""
    if not path.resolve().parent.is_dir():
        raise click.BadParameter(f"no such directory: {path.parent}", param_hint=option)


def file_options(*, command: str, resume: bool) -> Callable[[F], F]:
    """``--failures-out`` and ``--journal``; with ``resume``, ``--resume`` and ``--restart``."""
    journal = (
        "Where each finished line is recorded, for --resume after a kill"
        if resume
        else "Where each write applied is recorded while it runs (a killed sync needs no "
        "--resume: the same sync again plans afresh)"
    )
    params = [
        click.Option(
            ["--failures-out"], type=click.Path(dir_okay=False, path_type=Path),
            metavar="PATH", help="Where what is not applied goes [default: "
            f"FILE.failed.jsonl; for stdin: ./{command}-failed.jsonl].",
        ),
        click.Option(
            ["--journal"], type=click.Path(dir_okay=False, path_type=Path), metavar="PATH",
            help=f"{journal} [default: FILE.journal; for stdin: ./{command}.journal, none "
            "for a pipe].",
        ),
    ]
    if resume:
        params += [
            click.Option(
                ["--resume"], is_flag=True,
                help="Skip the lines the journal says a killed or stopped run applied; "
                "send the rest.",
            ),
            click.Option(
                ["--restart"], is_flag=True,
                help="Discard the journal of an unfinished run and send every line again.",
            ),
        ]
    return group("files", FileOptions, params)


def verbosity_options(command: F) -> F:
    """``-v`` (repeatable) and ``-q``."""
    return group("verbosity", Verbosity, [
        click.Option(
            ["-v", "--verbose"], count=True,
            help="-v: also log each retry (INFO); -vv: DEBUG, every request and every line.",
        ),
        click.Option(["-q", "--quiet"], is_flag=True, help="Errors only: no progress, no summary."),
    ])(command)

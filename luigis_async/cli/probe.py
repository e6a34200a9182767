"""Is the API there, and is it ours? Asked once before any line, and watched during a run.

A wrong base URL, a wrong tracker ID or a wrong key fails every request of a job the same
way; reported line by line, it looks like a file full of bad lines. So before the first
line a command sends one cheap signed request (``GET /summary``) and tells apart, each
with its own message and exit code:

==========================  =====================================================  ====
unreachable or failing      no answer (refused, DNS, TLS, timeout), or 5xx/429      3
wrong tracker               404 from the API (JSON)                                 4
key rejected                401                                                     2
not the API                 a 2xx that is not the API's JSON, a redirect, a 404     5
                            page that is not JSON
==========================  =====================================================  ====

``--no-preflight`` skips the request. During a run, the same diagnosis stops the job
early (fail fast) when the first ``FAIL_FAST_AFTER`` requests all failed with the same
one of these (a 401 at once), instead of after a hundred.
"""

from __future__ import annotations

from collections import Counter
from typing import Final

import attrs
import click

from ..batch import UpdateResult
from ..client import LuigisBoxClient
from ..config import ENV_BASE_URL, ENV_PRIVATE_KEY, ENV_TRACKER_ID
from ..errors import (
    APIError,
    AuthenticationError,
    DecodingError,
    LuigisBoxError,
    NotFoundError,
    RateLimitError,
    RedirectError,
    ServerError,
    TransportError,
    header,
)
from .outcome import EXIT_AUTH, EXIT_NO_TRACKER, EXIT_NOT_API, EXIT_UNREACHABLE

__all__ = [
    "FAIL_FAST_AFTER",
    "Diagnosis",
    "TargetError",
    "Watch",
    "Where",
    "diagnose",
    "failed",
    "preflight",
    "target_error",
]

#: Requests that must all fail the same way before a run stops (a 401 stops it at once).
FAIL_FAST_AFTER: Final = 5


class TargetError(click.ClickException):
    """The API cannot be used as configured; ``target_error`` gives the right exit code."""

    exit_code = EXIT_AUTH


#: A TargetError class per exit code (click reads a class attribute).
_ERRORS: Final[dict[int, type[TargetError]]] = {
    code: type(f"TargetError{code}", (TargetError,), {"exit_code": code})
    for code in (EXIT_AUTH, EXIT_UNREACHABLE, EXIT_NO_TRACKER, EXIT_NOT_API)
}


def target_error(message: str, exit_code: int) -> TargetError:
    """A ``TargetError`` that makes the command exit with ``exit_code`` (2 to 5)."""
    return _ERRORS[exit_code](message)


@attrs.frozen
class Where:
    """Where the requests go, for the messages."""

    base_url: str
    tracker_id: str

    @classmethod
    def of(cls, client: LuigisBoxClient) -> Where:
        return cls(client.base_url, client.tracker_id)


@attrs.frozen
class Diagnosis:
    """What a failed request says about the whole target: an exit code, what is wrong
    (short enough to be the reason of every line not attempted), and what to check."""

    exit_code: int
    problem: str
    advice: str

    @property
    def message(self) -> str:
        return f"{self.problem}; {self.advice}"


def _is_json(error: APIError) -> bool:
    content_type = (header(error.headers, "Content-Type") or "").partition(";")[0].strip()
    return content_type.lower() == "application/json" or content_type.endswith("+json")


_URL_HINT: Final = f"check --base-url (or ${ENV_BASE_URL})"


def diagnose(error: LuigisBoxError, where: Where, *, preflight: bool = False) -> Diagnosis | None:
    """What ``error`` says about the target; None when it may be one line's problem.

    ``preflight``: the error answers the summary request (or another read of the whole
    target), so any failure is the target's.
    """
    return _refused(error, where) or _unavailable(error, where, preflight=preflight)


def _refused(error: LuigisBoxError, where: Where) -> Diagnosis | None:
    """A rejected key, or an answer that is not the API's."""
    if isinstance(error, AuthenticationError):
        return Diagnosis(
            EXIT_AUTH,
            f"the server rejected the credentials: {error.reason}",
            f"check ${ENV_PRIVATE_KEY} (the key of tracker {where.tracker_id}) and that "
            "this machine's clock is right",
        )
    foreign_404 = isinstance(error, NotFoundError) and not _is_json(error)
    if foreign_404 or isinstance(error, RedirectError | DecodingError):
        return Diagnosis(
            EXIT_NOT_API,
            f"{where.base_url} does not answer like the Luigi's Box API ({error})",
            _URL_HINT,
        )
    return None


def _unavailable(error: LuigisBoxError, where: Where, *, preflight: bool) -> Diagnosis | None:
    """No such tracker, no answer at all, or (at the preflight) the API failing."""
    if isinstance(error, NotFoundError) and (preflight or "tracker" in error.reason.lower()):
        return Diagnosis(
            EXIT_NO_TRACKER,
            f"the API at {where.base_url} does not know tracker {where.tracker_id} "
            f"(404: {error.reason})",
            f"check --tracker-id (or ${ENV_TRACKER_ID})",
        )
    if isinstance(error, TransportError) and (preflight or error.connect_failed):
        return Diagnosis(
            EXIT_UNREACHABLE,
            f"cannot reach the API at {where.base_url} ({error}, {error.attempts} attempts)",
            f"{_URL_HINT}, and the network",
        )
    if not preflight:
        return None
    if isinstance(error, ServerError | RateLimitError):
        return Diagnosis(
            EXIT_UNREACHABLE,
            f"the API at {where.base_url} is failing ({error}, {error.attempts} attempts)",
            "try again later",
        )
    return Diagnosis(EXIT_NOT_API, f"unexpected answer from {where.base_url} ({error})", _URL_HINT)


class Watch:
    """A run's answers, watched for what they say about the target: a rejected key at
    once, or the first ``FAIL_FAST_AFTER`` failures all saying the same (no such
    tracker, no answer, not the API) with no other answer before them."""

    def __init__(self, where: Where) -> None:
        self.where = where
        self._healthy = False  # an answer came that was not the target's fault
        self._alarms: Counter[int] = Counter()  # the first failures' diagnoses, by code

    def see(self, result: UpdateResult) -> Diagnosis | None:
        """The diagnosis to stop the run on, when ``result`` completes one."""
        if result.error is None:
            self._healthy = self._healthy or result.ok
            return None
        diagnosis = diagnose(result.error, self.where)
        if diagnosis is None:
            self._healthy = True
        elif diagnosis.exit_code == EXIT_AUTH:
            return diagnosis
        elif not self._healthy:
            self._alarms[diagnosis.exit_code] += 1
            if len(self._alarms) == 1 and self._alarms[diagnosis.exit_code] >= FAIL_FAST_AFTER:
                return diagnosis
        return None


def failed(doing: str, error: LuigisBoxError, where: Where) -> TargetError:
    """The error to exit with when a read-only step (a plan, an export) fails: any failure
    there is the target's, e.g. ``could not plan: cannot reach the API at ...``."""
    diagnosis = diagnose(error, where, preflight=True)
    assert diagnosis is not None
    return target_error(f"could not {doing}: {diagnosis.message}", diagnosis.exit_code)


async def preflight(client: LuigisBoxClient) -> None:
    """One signed ``GET /summary``; returns if the API answers as it should.

    Raises:
        TargetError: with the message and exit code of what is wrong; nothing was sent.
    """
    try:
        await client.summary()
    except LuigisBoxError as error:
        diagnosis = diagnose(error, Where.of(client), preflight=True)
        assert diagnosis is not None
        raise target_error(
            f"{diagnosis.message}. Nothing was sent (--no-preflight skips this check)",
            diagnosis.exit_code,
        ) from None

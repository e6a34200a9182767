"""RetryPolicy, the retry budget, and the pure backoff / Retry-After arithmetic.

The sleep before retry ``n`` (1-based) is uniform in ``0 .. min(max_backoff,
initial_backoff * multiplier ** (n - 1))`` ("full jitter"): with the defaults
0.5 s -> 0..0.5, 0..1, 0..2, 0..4, ... capped at 0..30 s. A ``Retry-After`` from the server
on 429/503 replaces the backoff, plus up to a quarter of it again (so refused requests do
not all come back in the same instant: 1 s -> 1..1.25 s), unless it is longer than
``max_retry_after``: then the error surfaces at once instead of parking the caller.

A 429 says "slower", not "failed": it is retried however many times it comes (the batch's
pacer slows down meanwhile), never counts toward ``max_attempts`` and never spends the
retry budget. Only other failures, ``deadline`` or a stopping batch end a request.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from email.utils import parsedate_to_datetime
from typing import Any

import attrs

from .errors import APIError, ConfigurationError, LuigisBoxError, TransportError

__all__ = [
    "DEFAULT_INITIAL_BACKOFF",
    "DEFAULT_MAX_ATTEMPTS",
    "DEFAULT_MAX_BACKOFF",
    "DEFAULT_MAX_RETRY_AFTER",
    "DEFAULT_MULTIPLIER",
    "ALWAYS_RETRYABLE_STATUSES",
    "IDEMPOTENT_RETRYABLE_STATUSES",
    "RetryBudget",
    "RetryPolicy",
    "is_throttle",
    "parse_retry_after",
]

DEFAULT_MAX_ATTEMPTS = 5
DEFAULT_INITIAL_BACKOFF = 0.5
DEFAULT_MULTIPLIER = 2.0
DEFAULT_MAX_BACKOFF = 30.0
DEFAULT_MAX_RETRY_AFTER = 60.0

#: The server surely did not act on these: safe to retry any request, even a create.
ALWAYS_RETRYABLE_STATUSES = frozenset({408, 429})
#: The server may have acted: retried only for idempotent requests.
IDEMPOTENT_RETRYABLE_STATUSES = frozenset({502, 503, 504})
#: A Retry-After is waited out plus up to this fraction of it again, so the refused
#: requests of one moment do not all come back in the same instant.
RETRY_AFTER_JITTER = 0.25
#: Statuses whose ``Retry-After`` header is honoured.
RETRY_AFTER_STATUSES = frozenset({429, 503})


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or HTTP date).

    Args:
        value: the header's value, or None when there was none.
        now: the current time (epoch seconds), to turn a date into a wait.

    Returns:
        The wait in seconds; ``None`` when absent or malformed; a date in the past gives
        ``0.0``.
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        return max(0.0, when.timestamp() - now)
    if seconds != seconds or seconds in (float("inf"), float("-inf")):
        return None
    return max(0.0, seconds)


def _positive(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if value < 0:
        raise ConfigurationError(f"{attribute.name} must be >= 0, got {value!r}")


def _at_least(bound: float) -> Callable[[object, attrs.Attribute[Any], Any], None]:
    def check(_: object, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value < bound:
            raise ConfigurationError(f"{attribute.name} must be >= {bound}, got {value!r}")

    return check


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """When and how long to wait before trying a failed request again.

    ``sleep`` and ``random`` are injectable so tests run instantly and deterministically.

    Args:
        max_attempts: the most attempts per request, throttles (429) not counted.
        initial_backoff: the ceiling of the first jittered sleep, in seconds.
        multiplier: how much the ceiling grows with each retry.
        max_backoff: the highest ceiling, in seconds.
        max_retry_after: a longer ``Retry-After`` is not waited out: the error surfaces.
        retry_500: whether a 500 is retried (idempotent requests only).
        deadline: seconds from a request's first attempt after which no retry starts.
        sleep: how to wait (``asyncio.sleep``).
        random: a float in ``[0, 1)`` for the jitter (``random.random``).
        clock: the clock ``deadline`` is measured with (``time.monotonic``).

    Raises:
        ConfigurationError: a count below 1, a negative time, or a multiplier below 1
            (a ``ValueError`` too).
    """

    max_attempts: int = attrs.field(default=DEFAULT_MAX_ATTEMPTS, validator=_at_least(1))
    initial_backoff: float = attrs.field(default=DEFAULT_INITIAL_BACKOFF, validator=_positive)
    multiplier: float = attrs.field(default=DEFAULT_MULTIPLIER, validator=_at_least(1.0))
    max_backoff: float = attrs.field(default=DEFAULT_MAX_BACKOFF, validator=_positive)
    max_retry_after: float = attrs.field(default=DEFAULT_MAX_RETRY_AFTER, validator=_positive)
    retry_500: bool = True
    #: Seconds from a request's first attempt after which no retry starts (None: no bound).
    deadline: float | None = attrs.field(
        default=None, validator=attrs.validators.optional(_positive)
    )
    sleep: Callable[[float], Awaitable[None]] = attrs.field(
        default=asyncio.sleep, eq=False, repr=False
    )
    random: Callable[[], float] = attrs.field(default=random.random, eq=False, repr=False)
    #: The clock ``deadline`` is measured with (tests inject one that ``sleep`` advances).
    clock: Callable[[], float] = attrs.field(default=time.monotonic, eq=False, repr=False)

    def backoff_ceiling(self, retry_number: int) -> float:
        """The upper bound of the jittered sleep before retry ``retry_number``.

        Args:
            retry_number: which retry, 1-based.

        Returns:
            ``min(max_backoff, initial_backoff * multiplier ** (retry_number - 1))``.
        """
        exponent = min(retry_number - 1, 64)
        return min(self.max_backoff, self.initial_backoff * self.multiplier**exponent)

    def backoff(self, retry_number: int) -> float:
        """A full-jitter sleep: uniform in ``0 .. backoff_ceiling(retry_number)``.

        Args:
            retry_number: which retry, 1-based.

        Returns:
            The seconds to sleep.
        """
        return self.random() * self.backoff_ceiling(retry_number)

    def is_retryable(self, error: LuigisBoxError, *, idempotent: bool) -> bool:
        """Whether this failure may be retried at all (ignoring attempts left).

        Args:
            error: what the attempt ended with.
            idempotent: whether the request may be applied twice harmlessly; if not, only
                a failure the server surely did not act on is retryable.

        Returns:
            True for a connection that never opened, a 408 or 429, and (idempotent
            requests only) any transport error, a 502, 503, 504 and, with ``retry_500``,
            a 500.
        """
        if isinstance(error, TransportError):
            return idempotent or error.connect_failed
        if isinstance(error, APIError):
            if error.status in ALWAYS_RETRYABLE_STATUSES:
                return True
            if error.status in IDEMPOTENT_RETRYABLE_STATUSES or (
                error.status == 500 and self.retry_500
            ):
                return idempotent
        return False

    def delay(self, error: LuigisBoxError, attempt: int, *, idempotent: bool) -> float | None:
        """Seconds to wait before the next attempt, or ``None`` to give up now.

        Args:
            error: what the attempt ended with.
            attempt: the attempts that failed this way so far (1 after the first):
                throttles (429) and other failures are counted apart, and only the others
                are bounded by ``max_attempts``.
            idempotent: as for ``is_retryable``.

        Returns:
            The server's ``Retry-After`` plus jitter when it sent one, else a backoff;
            ``None`` when the error is not retryable, the attempts are spent, or the
            ``Retry-After`` exceeds ``max_retry_after``.
        """
        throttled = is_throttle(error)
        if not throttled and (
            attempt >= self.max_attempts or not self.is_retryable(error, idempotent=idempotent)
        ):
            return None
        if isinstance(error, APIError) and error.retry_after is not None:
            if error.retry_after > self.max_retry_after:
                return None
            return error.retry_after * (1.0 + self.random() * RETRY_AFTER_JITTER)
        return self.backoff(attempt)


def is_throttle(error: LuigisBoxError) -> bool:
    """A 429: the server asks for a slower pace; nothing failed.

    Args:
        error: any error of this library.

    Returns:
        True when ``error`` is an ``APIError`` with status 429.
    """
    return isinstance(error, APIError) and error.status == 429


class RetryBudget:
    """A token bucket shared by a client that stops retry storms (botocore's design).

    A retry costs ``retry_cost`` tokens (``timeout_cost`` after a timeout or drop); a first-try
    success refunds 1 and a success after retries refunds ``retry_cost``. With the defaults a
    server failing 25 % of attempts refunds more than it costs (net +0.33 token per item), so
    the bucket never empties; one failing nearly every attempt drains the 500 tokens within
    about 100 retries, after which failures surface at once instead of multiplying load.

    Args:
        capacity: the most tokens the bucket holds; it starts full.
        retry_cost: what a retry after an API error costs.
        timeout_cost: what a retry after a timeout or dropped connection costs.
    """

    __slots__ = ("capacity", "retry_cost", "timeout_cost", "tokens")

    #: The most tokens the bucket holds (it starts full).
    capacity: float
    #: Tokens a retry after an API error costs, and a success after retries refunds.
    retry_cost: float
    #: Tokens a retry after a timeout or a dropped connection costs.
    timeout_cost: float
    #: Tokens left now.
    tokens: float

    def __init__(
        self, capacity: float = 500.0, *, retry_cost: float = 5.0, timeout_cost: float = 10.0
    ) -> None:
        self.capacity = capacity
        self.retry_cost = retry_cost
        self.timeout_cost = timeout_cost
        self.tokens = capacity

    def __repr__(self) -> str:
        return f"<RetryBudget {self.tokens:.0f}/{self.capacity:.0f} tokens>"

    def withdraw(self, error: LuigisBoxError) -> bool:
        """Take the cost of retrying after ``error``.

        A throttle costs nothing: the budget guards a failing server, not a busy one.

        Args:
            error: the failure about to be retried.

        Returns:
            True when the retry may go ahead (the cost was taken); False when too few
            tokens are left (nothing is taken).
        """
        if is_throttle(error):
            return True
        cost = self.timeout_cost if isinstance(error, TransportError) else self.retry_cost
        if cost > self.tokens:
            return False
        self.tokens -= cost
        return True

    def refund(self, *, retried: bool) -> None:
        """Give tokens back after a success, up to ``capacity``.

        Args:
            retried: whether the success came after retries (refunds ``retry_cost``; a
                first-try success refunds 1).
        """
        self.tokens = min(self.capacity, self.tokens + (self.retry_cost if retried else 1.0))

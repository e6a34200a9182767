"""Retry arithmetic: pure predicates and formulas, with time and randomness injected."""

from __future__ import annotations

import random

import attrs
import pytest

from luigis_async import APIError, RetryBudget, RetryPolicy, TransportError
from luigis_async.errors import LuigisBoxError, api_error_for
from luigis_async.retry import (
    DEFAULT_INITIAL_BACKOFF,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_MAX_BACKOFF,
    DEFAULT_MAX_RETRY_AFTER,
    DEFAULT_MULTIPLIER,
    parse_retry_after,
)

#: Mon, 20 Jan 2025 12:00:00 GMT
NOW = 1737374400.0


def api_error(status: int, retry_after: float | None = None) -> APIError:
    return api_error_for(status, None, "", method="GET", path="/x", retry_after=retry_after)


def transport_error(*, connect_failed: bool) -> TransportError:
    return TransportError("boom", method="POST", path="/x", connect_failed=connect_failed)


# -- parse_retry_after ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", 0.0),
        ("1", 1.0),
        ("1.5", 1.5),
        (" 3 ", 3.0),
        ("120", 120.0),
        ("-5", 0.0),
        ("Mon, 20 Jan 2025 12:00:30 GMT", 30.0),
        ("Mon, 20 Jan 2025 13:00:00 GMT", 3600.0),
        ("Mon, 20 Jan 2025 12:00:00 GMT", 0.0),
        ("Mon, 20 Jan 2025 11:59:00 GMT", 0.0),
        ("Sun, 01 Jan 2000 00:00:00 GMT", 0.0),
        ("soon", None),
        ("", None),
        ("   ", None),
        (None, None),
        ("nan", None),
        ("inf", None),
        ("-inf", None),
        ("5 seconds", None),
        ("Mon, 32 Foo 2025 99:00:00 GMT", None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    """Retry-After as seconds or an HTTP date gives a wait; malformed gives None."""
    assert expected == parse_retry_after(value, NOW)


# -- backoff -------------------------------------------------------------------------


def test_default_constants() -> None:
    """The documented defaults: 5 attempts, 0.5 s doubling to 30 s, Retry-After up to 60 s."""
    expected = (5, 0.5, 2.0, 30.0, 60.0)
    actual = (
        DEFAULT_MAX_ATTEMPTS,
        DEFAULT_INITIAL_BACKOFF,
        DEFAULT_MULTIPLIER,
        DEFAULT_MAX_BACKOFF,
        DEFAULT_MAX_RETRY_AFTER,
    )
    assert expected == actual


@pytest.mark.parametrize(
    ("retry_number", "expected"),
    [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 8.0), (6, 16.0), (7, 30.0), (8, 30.0)],
)
def test_backoff_ceiling_defaults(retry_number: int, expected: float) -> None:
    """With the defaults the ceiling doubles from 0.5 s and caps at 30 s."""
    assert expected == RetryPolicy().backoff_ceiling(retry_number)


@pytest.mark.parametrize(
    ("policy", "retry_number", "expected"),
    [
        (RetryPolicy(initial_backoff=1.0, multiplier=3.0, max_backoff=10.0), 1, 1.0),
        (RetryPolicy(initial_backoff=1.0, multiplier=3.0, max_backoff=10.0), 2, 3.0),
        (RetryPolicy(initial_backoff=1.0, multiplier=3.0, max_backoff=10.0), 3, 9.0),
        (RetryPolicy(initial_backoff=1.0, multiplier=3.0, max_backoff=10.0), 4, 10.0),
        (RetryPolicy(initial_backoff=0.25, multiplier=1.0), 1, 0.25),
        (RetryPolicy(initial_backoff=0.25, multiplier=1.0), 9, 0.25),
        (RetryPolicy(initial_backoff=0.0), 5, 0.0),
        (RetryPolicy(max_backoff=0.0), 1, 0.0),
        (RetryPolicy(), 10_000, 30.0),
    ],
)
def test_backoff_ceiling_custom(policy: RetryPolicy, retry_number: int, expected: float) -> None:
    """Custom initial/multiplier/max give the ceiling min(max, initial * mult ** (n - 1))."""
    assert expected == policy.backoff_ceiling(retry_number)


@pytest.mark.parametrize(
    ("draw", "retry_number", "expected"),
    [
        (0.0, 1, 0.0),
        (0.0, 7, 0.0),
        (1.0, 1, 0.5),
        (1.0, 4, 4.0),
        (1.0, 8, 30.0),
        (0.5, 1, 0.25),
        (0.5, 3, 1.0),
        (0.5, 8, 15.0),
    ],
)
def test_backoff_uses_injected_random(draw: float, retry_number: int, expected: float) -> None:
    """The full-jitter sleep is the injected random draw times the ceiling."""
    policy = RetryPolicy(random=lambda: draw)
    assert expected == policy.backoff(retry_number)


@pytest.mark.parametrize(
    "overrides",
    [
        {"max_attempts": 0},
        {"initial_backoff": -1.0},
        {"multiplier": 0.5},
        {"max_backoff": -0.1},
        {"max_retry_after": -1.0},
    ],
)
def test_policy_rejects_nonsense(overrides: dict[str, float]) -> None:
    """A policy with no attempts, a negative wait or a shrinking multiplier is refused."""
    with pytest.raises(ValueError):
        RetryPolicy(**overrides)


def test_policy_is_immutable() -> None:
    """A RetryPolicy cannot be changed in place."""
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        RetryPolicy().max_attempts = 3  # type: ignore[misc]


# -- is_retryable --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "idempotent", "expected"),
    [
        (408, True, True),
        (408, False, True),
        (429, True, True),
        (429, False, True),
        (500, True, True),
        (500, False, False),
        (502, True, True),
        (502, False, False),
        (503, True, True),
        (503, False, False),
        (504, True, True),
        (504, False, False),
        (400, True, False),
        (400, False, False),
        (401, True, False),
        (401, False, False),
        (404, True, False),
        (404, False, False),
        (422, True, False),
        (422, False, False),
        (418, True, False),
        (501, True, False),
    ],
)
def test_is_retryable_status(status: int, idempotent: bool, expected: bool) -> None:
    """408/429 always retry; 500/502/503/504 only when idempotent; 4xx errors never."""
    assert expected == RetryPolicy().is_retryable(api_error(status), idempotent=idempotent)


@pytest.mark.parametrize(
    ("status", "idempotent", "expected"),
    [(500, True, False), (500, False, False), (503, True, True), (429, False, True)],
)
def test_is_retryable_without_retry_500(status: int, idempotent: bool, expected: bool) -> None:
    """retry_500=False stops retries of 500 only."""
    policy = RetryPolicy(retry_500=False)
    assert expected == policy.is_retryable(api_error(status), idempotent=idempotent)


@pytest.mark.parametrize(
    ("connect_failed", "idempotent", "expected"),
    [(False, True, True), (True, True, True), (True, False, True), (False, False, False)],
)
def test_is_retryable_transport(connect_failed: bool, idempotent: bool, expected: bool) -> None:
    """A transport error retries when idempotent, or when the connection never opened."""
    error = transport_error(connect_failed=connect_failed)
    assert expected == RetryPolicy().is_retryable(error, idempotent=idempotent)


def test_is_retryable_other_errors() -> None:
    """A library error that is neither transport nor API (e.g. bad input) is not retried."""
    assert False is RetryPolicy().is_retryable(LuigisBoxError("x"), idempotent=True)


# -- delay ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attempt", "expected"), [(1, 0.5), (2, 1.0), (4, 4.0), (5, None), (6, None)]
)
def test_delay_gives_up_at_max_attempts(attempt: int, expected: float | None) -> None:
    """delay is the backoff while attempts remain and None once max_attempts were made."""
    policy = RetryPolicy(random=lambda: 1.0)
    assert expected == policy.delay(api_error(503), attempt, idempotent=True)


@pytest.mark.parametrize(
    ("max_attempts", "attempt", "expected"), [(1, 1, None), (2, 1, 0.5), (2, 2, None)]
)
def test_delay_custom_max_attempts(max_attempts: int, attempt: int, expected: float | None) -> None:
    """max_attempts counts the first try: 1 never retries."""
    policy = RetryPolicy(max_attempts=max_attempts, random=lambda: 1.0)
    assert expected == policy.delay(api_error(503), attempt, idempotent=True)


@pytest.mark.parametrize("throttles", [1, 5, 50, 500])
def test_a_throttle_is_retried_whatever_max_attempts_says(throttles: int) -> None:
    """A 429 is "slower", not a failure: max_attempts never makes it give up."""
    policy = RetryPolicy(max_attempts=2, random=lambda: 1.0)
    expected = min(30.0, 0.5 * 2 ** (throttles - 1))
    assert expected == policy.delay(api_error(429), throttles, idempotent=False)


@pytest.mark.parametrize(
    ("status", "retry_after", "expected"),
    [
        (429, 0.0, 0.0),
        (429, 7.0, 7.875),
        (503, 2.5, 2.8125),
        (429, 60.0, 67.5),
        (429, 60.5, None),
        (503, 3600.0, None),
        (429, None, 0.25),
    ],
)
def test_delay_honours_retry_after(
    status: int, retry_after: float | None, expected: float | None
) -> None:
    """Retry-After (plus up to a quarter again: here an eighth) replaces the backoff,
    unless longer than max_retry_after (then give up)."""
    policy = RetryPolicy(random=lambda: 0.5)
    assert expected == policy.delay(api_error(status, retry_after), 1, idempotent=True)


def test_delay_custom_max_retry_after() -> None:
    """A lower max_retry_after gives up on a wait the default would accept."""
    policy = RetryPolicy(max_retry_after=5.0)
    assert None is policy.delay(api_error(429, 6.0), 1, idempotent=True)


@pytest.mark.parametrize(
    ("error", "idempotent"),
    [
        (api_error(400), True),
        (api_error(503, retry_after=1.0), False),
        (transport_error(connect_failed=False), False),
    ],
    ids=["400", "503-create", "dropped-create"],
)
def test_delay_none_when_not_retryable(error: LuigisBoxError, idempotent: bool) -> None:
    """A non-retryable failure gets no delay, even with a Retry-After."""
    assert None is RetryPolicy().delay(error, 1, idempotent=idempotent)


# -- RetryBudget ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (api_error(503), 495.0),
        (api_error(429), 500.0),
        (transport_error(connect_failed=False), 490.0),
        (transport_error(connect_failed=True), 490.0),
    ],
    ids=["503", "429", "drop", "connect"],
)
def test_budget_withdraw_cost(error: LuigisBoxError, expected: float) -> None:
    """A retry costs 5 tokens, 10 after a transport error, nothing after a throttle."""
    budget = RetryBudget()
    budget.withdraw(error)
    assert expected == budget.tokens


@pytest.mark.parametrize(
    ("tokens", "error", "expected"),
    [
        (5.0, api_error(503), (True, 0.0)),
        (4.9, api_error(503), (False, 4.9)),
        (0.0, api_error(503), (False, 0.0)),
        (10.0, transport_error(connect_failed=False), (True, 0.0)),
        (9.0, transport_error(connect_failed=False), (False, 9.0)),
    ],
)
def test_budget_withdraw_when_low(
    tokens: float, error: LuigisBoxError, expected: tuple[bool, float]
) -> None:
    """withdraw returns False and takes nothing when the tokens do not cover the cost."""
    budget = RetryBudget()
    budget.tokens = tokens
    granted = budget.withdraw(error)
    assert expected == (granted, budget.tokens)


@pytest.mark.parametrize(
    ("tokens", "retried", "expected"),
    [
        (100.0, False, 101.0),
        (100.0, True, 105.0),
        (499.5, False, 500.0),
        (497.0, True, 500.0),
        (500.0, True, 500.0),
    ],
)
def test_budget_refund(tokens: float, retried: bool, expected: float) -> None:
    """A success refunds 1 (5 after retries), never above capacity."""
    budget = RetryBudget()
    budget.tokens = tokens
    budget.refund(retried=retried)
    assert expected == budget.tokens


def test_budget_custom_costs() -> None:
    """Capacity and costs are configurable."""
    budget = RetryBudget(20.0, retry_cost=2.0, timeout_cost=7.0)
    budget.withdraw(api_error(503))
    budget.withdraw(transport_error(connect_failed=True))
    assert 11.0 == budget.tokens


def test_budget_starts_full() -> None:
    """A new budget holds its whole capacity."""
    assert 500.0 == RetryBudget().tokens


def test_budget_repr() -> None:
    """repr shows tokens out of capacity."""
    assert "<RetryBudget 500/500 tokens>" == repr(RetryBudget())


@attrs.frozen
class Simulation:
    granted: int
    denied: int
    refunded: float
    lowest: float


def simulate(failure_rate: float, *, items: int = 10_000, seed: int = 20250120) -> Simulation:
    """Run items through policy + budget against a server failing each attempt at random."""
    rng = random.Random(seed)
    policy = RetryPolicy(random=rng.random)
    budget = RetryBudget()
    error = api_error(503)
    granted = denied = 0
    refunded = 0.0
    lowest = budget.tokens
    for _ in range(items):
        attempt = 1
        while rng.random() < failure_rate:
            if policy.delay(error, attempt, idempotent=True) is None:
                break
            if not budget.withdraw(error):
                denied += 1
                break
            granted += 1
            attempt += 1
            lowest = min(lowest, budget.tokens)
        else:
            before = budget.tokens
            budget.refund(retried=attempt > 1)
            refunded += budget.tokens - before
    return Simulation(granted, denied, refunded, lowest)


def test_budget_never_runs_dry_at_25_percent_failures() -> None:
    """At 25 % failed attempts over 10,000 items every wanted retry is granted."""
    result = simulate(0.25)
    assert 0 == result.denied
    assert result.granted > 3_000


def test_budget_stays_well_above_empty_at_25_percent_failures() -> None:
    """At 25 % failures refunds outpace costs: the bucket never dips below half."""
    assert simulate(0.25).lowest > RetryBudget().capacity / 2


def test_budget_bounds_retries_at_95_percent_failures() -> None:
    """At 95 % failures the retries granted are only what capacity plus refunds pay for."""
    budget = RetryBudget()
    result = simulate(0.95)
    affordable = (budget.capacity + result.refunded) / budget.retry_cost
    assert budget.capacity / budget.retry_cost <= result.granted <= affordable
    assert affordable < 400


def test_budget_denies_most_retries_at_95_percent_failures() -> None:
    """At 95 % failures nearly every item after the bucket drains fails at once."""
    result = simulate(0.95)
    assert result.denied > 9_000

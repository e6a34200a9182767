"""Seeded fault injection: which requests the sandbox answers badly, and how.

Retry, throttling and adaptive-concurrency code is only tested if the server misbehaves,
and only debuggable if it misbehaves the same way every run. So every authenticated
request draws, in arrival order, one number per fault kind from a single
``random.Random(seed)``: always all of them, so the n-th request sees the same numbers
whatever the rates are. The first error fault whose number falls under its rate wins (in
the order of ``Faults.error_rates``), so a later kind is slightly thinned by the earlier
ones; latency is drawn separately and may come on top of an error.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import attrs

__all__ = ["Decision", "FaultInjector", "Faults"]


def _probability(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{attribute.name} must be a probability in [0, 1], got {value!r}")


def _non_negative(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value >= 0.0:
        raise ValueError(f"{attribute.name} must be >= 0, got {value!r}")


def _positive_or_none(
    instance: object, attribute: attrs.Attribute[int | None], value: int | None
) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"{attribute.name} must be an integer >= 1 or None, got {value!r}")


def _rate() -> Any:
    return attrs.field(default=0.0, validator=_probability)


@attrs.frozen(kw_only=True)
class Faults:
    """How often the sandbox misbehaves; all off by default.

    Rates are per-request probabilities in ``[0, 1]``.

    Args:
        seed: seeds the random source, so a run's faults repeat.
        rate_429, rate_500, rate_502, rate_503, rate_504: answer with that status.
        drop: close the connection without an answer.
        lost_ack: apply a write (create, update, delete) and then answer 503, so the
            client cannot know it succeeded (a read just gets the 503).
        latency: delay a request by ``latency_seconds``.
        latency_seconds: the delay of ``latency``.
        retry_after: the ``Retry-After`` header sent with injected 429s and 503s (None:
            no header).
        max_in_flight: serve at most this many requests at once: one arriving while that
            many are already being served gets 429 at once (no latency), like the real
            per-tracker concurrency limit. None: no limit.

    Raises:
        ValueError: a rate outside ``[0, 1]``, a negative ``latency_seconds``, or a
            ``max_in_flight`` below 1.
    """

    seed: int = 0
    rate_429: float = _rate()
    rate_500: float = _rate()
    rate_502: float = _rate()
    rate_503: float = _rate()
    rate_504: float = _rate()
    drop: float = _rate()
    lost_ack: float = _rate()
    latency: float = _rate()
    latency_seconds: float = attrs.field(default=0.0, validator=_non_negative)
    retry_after: str | None = "0"
    max_in_flight: int | None = attrs.field(default=None, validator=_positive_or_none)

    def error_rates(self) -> tuple[tuple[str, float], ...]:
        """The error faults in precedence order.

        Returns:
            ``(fault name, rate)`` pairs, e.g. ``("429", 0.1)``.
        """
        return (
            ("429", self.rate_429),
            ("500", self.rate_500),
            ("502", self.rate_502),
            ("503", self.rate_503),
            ("504", self.rate_504),
            ("drop", self.drop),
            ("lost_ack", self.lost_ack),
        )

    def describe(self) -> str:
        """What differs from no faults, for a log line.

        The seed comes last: it matters only with the rest.

        Returns:
            E.g. ``rate_503=0.1, seed=7``; ``none`` if nothing differs.
        """
        default = Faults()
        names = sorted((field.name for field in attrs.fields(type(self))), key="seed".__eq__)
        changed = [
            f"{name}={value!r}"
            for name in names
            if (value := getattr(self, name)) != getattr(default, name)
        ]
        return ", ".join(changed) or "none"

    @classmethod
    def parse(cls, spec: str) -> Faults:
        """Build from a CLI string like ``429=0.1,drop=0.03,latency=0.05:2.0,seed=7``.

        Keys: ``429 500 502 503 504 drop lost_ack`` (rates), ``latency=P:SECONDS``,
        ``latency_seconds``, ``retry_after`` (seconds, or ``none``: an HTTP-date would
        clash with the commas, pass it to the constructor instead), ``seed``,
        ``max_in_flight``; the attribute names (``rate_429``) work too.

        Args:
            spec: comma-separated ``KEY=VALUE`` items.

        Returns:
            The faults.

        Raises:
            ValueError: naming the offending item.
        """
        kwargs: dict[str, Any] = {}
        for raw_item in spec.split(","):
            item = raw_item.strip()
            if not item:
                continue
            key, sep, value = (part.strip() for part in item.partition("="))
            if not sep or not value:
                raise ValueError(f"bad fault {item!r} in {spec!r}: expected KEY=VALUE")
            name = _ALIASES.get(key, key)
            parse_value = _PARSERS.get(name)
            if parse_value is None:
                known = ", ".join([*_ALIASES, *(k for k in _PARSERS if k not in _ALIASES.values())])
                raise ValueError(f"unknown fault {key!r} in {spec!r}; known: {known}")
            try:
                parsed = parse_value(value)
            except ValueError as exc:
                raise ValueError(f"bad value for {key!r} in {spec!r}: {exc}") from None
            if clash := parsed.keys() & kwargs.keys():
                raise ValueError(f"{', '.join(sorted(clash))} given twice in {spec!r}")
            kwargs.update(parsed)
        try:
            return cls(**kwargs)
        except ValueError as exc:
            raise ValueError(f"bad fault spec {spec!r}: {exc}") from None


def _parse_latency(value: str) -> dict[str, Any]:
    rate, sep, seconds = value.partition(":")
    parsed: dict[str, Any] = {"latency": float(rate)}
    if sep:
        parsed["latency_seconds"] = float(seconds)
    return parsed


def _parse_retry_after(value: str) -> dict[str, Any]:
    return {"retry_after": None if value.lower() == "none" else value}


_ALIASES = {
    "429": "rate_429",
    "500": "rate_500",
    "502": "rate_502",
    "503": "rate_503",
    "504": "rate_504",
}


def _as(name: str, kind: Callable[[str], Any]) -> Callable[[str], dict[str, Any]]:
    return lambda value: {name: kind(value)}


#: How each ``Faults.parse`` key turns its text into constructor arguments.
_PARSERS: dict[str, Callable[[str], dict[str, Any]]] = {
    **{name: _as(name, float) for name in (*_ALIASES.values(), "drop", "lost_ack")},
    "latency": _parse_latency,
    "latency_seconds": _as("latency_seconds", float),
    "retry_after": _parse_retry_after,
    "seed": _as("seed", int),
    "max_in_flight": _as("max_in_flight", int),
}


@attrs.frozen
class Decision:
    """What to do to one request: an error fault name (or None) and a delay in seconds."""

    error: str | None = None
    delay: float = 0.0


class FaultInjector:
    """Turns a ``Faults`` and its seeded random source into one decision per request."""

    __slots__ = ("_random", "faults")

    def __init__(self, faults: Faults) -> None:
        self.faults: Faults = faults
        self._random = random.Random(faults.seed)

    def decide(self) -> Decision:
        """Draw this request's numbers (always all of them) and pick its faults."""
        rates = self.faults.error_rates()
        *error_draws, latency_draw = [self._random.random() for _ in range(len(rates) + 1)]
        hits = [name for (name, rate), x in zip(rates, error_draws, strict=True) if x < rate]
        delay = self.faults.latency_seconds if latency_draw < self.faults.latency else 0.0
        return Decision(hits[0] if hits else None, delay)

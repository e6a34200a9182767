"""The stop signals a command receives while it runs: SIGINT (Ctrl-C), SIGTERM and SIGHUP.

``timeout``, systemd, Docker, Kubernetes and CI cancellation send SIGTERM; a closed
terminal sends SIGHUP. All three are handled on the event loop, never as an exception
raised into whatever code happens to run, so no signal can interrupt the writing of a
failures file or a journal: the first asks the job to stop (the requests in flight
finish), the second to cancel the requests in flight, later ones are only logged. The
exit status is 128 + the first signal's number, as a shell reports a process it stopped:
130 for SIGINT, 143 for SIGTERM, 129 for SIGHUP.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Final

__all__ = ["HANDLED", "Listener", "Signals", "exit_status", "signal_name"]

log: Final[logging.Logger] = logging.getLogger("luigis_async.cli")

#: The signals that stop a job gracefully.
HANDLED: Final = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

#: Called with how many signals have arrived so far and the latest one.
Listener = Callable[[int, int], object]


def signal_name(signum: int) -> str:
    """``SIGTERM`` for 15."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def exit_status(signum: int) -> int:
    """128 + the signal's number: what a shell shows for a process a signal stopped."""
    return 128 + signum


class Signals:
    """Records the stop signals of one command and passes each to the current listener."""

    def __init__(self) -> None:
        self.received: list[int] = []
        self._listener: Listener | None = None

    @property
    def first(self) -> int | None:
        """The first signal received, which decides the exit status."""
        return self.received[0] if self.received else None

    @contextmanager
    def installed(self) -> Iterator[Signals]:
        """Handle the signals on the running loop while the block runs, where possible.

        Signal handlers exist only in the main thread on Unix; elsewhere (e.g. a test
        runner's worker thread) the signals keep their default behaviour.
        """
        loop = asyncio.get_running_loop()
        installed: list[int] = []
        for signum in HANDLED:
            try:
                loop.add_signal_handler(signum, self.receive, signum)
            except (NotImplementedError, RuntimeError, ValueError) as exc:
                log.debug("signal handling unavailable here: %s", exc)
                break
            installed.append(signum)
        try:
            yield self
        finally:
            for handled in installed:
                loop.remove_signal_handler(handled)

    @contextmanager
    def listening(self, listener: Listener) -> Iterator[None]:
        """Send signals to ``listener`` while the block runs; one already received first."""
        previous, self._listener = self._listener, listener
        try:
            if self.received:
                listener(len(self.received), self.received[-1])
            yield
        finally:
            self._listener = previous

    def receive(self, signum: int) -> None:
        """Record ``signum`` and tell the listener (a test may call this directly)."""
        self.received.append(signum)
        if self._listener is not None:
            self._listener(len(self.received), signum)
        else:  # no job is running: starting, or closing its files
            log.warning("%s received", signal_name(signum))

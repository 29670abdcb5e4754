"""What the process is asked from outside: SIGTERM/SIGINT (stop), SIGHUP (reload the config).

The handlers only set events; the main thread acts on them between waits: a stop request lets
the step in flight finish and starts no new one (Engine.should_stop reads `stop`), a reload runs
on the main thread, never inside a signal handler.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from types import FrameType


class Signals:
    """The stop, reload and wake-up events the handlers set and the main loop waits on."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.stop = threading.Event()  # set by SIGTERM/SIGINT or request_stop()
        self.wake = threading.Event()  # the main loop has a signal to handle
        self.hup = threading.Event()  # SIGHUP: re-read the config
        self._monotonic = monotonic

    def handle(self, signum: int, frame: FrameType | None) -> None:
        """The signal handler: note what was asked and wake the main loop."""
        del frame
        if signum == signal.SIGHUP:
            self.hup.set()
        else:
            self.stop.set()
        self.wake.set()

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self.handle)

    def request_stop(self) -> None:
        """Stop as SIGTERM does (the demo's --duration, tests)."""
        self.stop.set()
        self.wake.set()

    def take_hup(self) -> bool:
        """Was a reload asked since the last call (and no stop)? Clears the request."""
        if self.hup.is_set() and not self.stop.is_set():
            self.hup.clear()
            return True
        return False

    def wait(self, seconds: float) -> None:
        """Sleep up to `seconds`, woken early by any signal."""
        self.wake.wait(seconds)
        self.wake.clear()

    def sleep(
        self, seconds: float, *, tick: Callable[[], None], reload: Callable[[], object]
    ) -> None:
        """Sleep `seconds` unless stopped, calling `tick` at least once a second and `reload`
        on SIGHUP meanwhile (the start-up wait: alive, and reloadable, while it waits)."""
        deadline = self._monotonic() + seconds
        while not self.stop.is_set():
            left = deadline - self._monotonic()
            if left <= 0:
                return
            tick()
            self.wake.wait(min(left, 1.0))
            if self.hup.is_set():
                self.hup.clear()
                reload()
            self.wake.clear()

"""One way to wait between tries: an exponential `Backoff` schedule and the `retrying` loop.

Every loop in the service that tries again (the Bybit client, the pending-secret write, a key's
next try after a failed step, a due key that did not move, start-up waiting for Vault and Bybit)
takes its delays from a `Backoff`; the loops that simply sleep and try again run `retrying`.

    attempt      1        2         3          4 ...
    ceiling    first   2*first   4*first   ... cap
    delay      somewhere in [max(floor, ceiling * (1 - jitter)), ceiling], picked by `draw`

`draw` (0..1) is given by the caller: `random.random()` where any spread will do, a hash of the
key's name where two replicas must agree on the same moment. Nothing here reads a clock or sleeps
by itself: the sleep is injected, so tests run the whole schedule on a manual clock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

MAX_DOUBLINGS = 30  # 2**30 times `first` is past any cap in use; keeps the float finite


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delays that double from `first` up to `cap` seconds, jittered down by up to `jitter`."""

    first: float  # seconds: the ceiling after the first failure
    cap: float  # seconds: no delay is ever longer
    jitter: float = 0.0  # 0 = exactly the ceiling; 1 = anywhere from `floor` to the ceiling
    floor: float = 0.0  # seconds: no jittered delay is shorter (never above the ceiling)

    def __post_init__(self) -> None:
        if not 0 < self.first <= self.cap:
            msg = f"Backoff needs 0 < first <= cap, got first={self.first} cap={self.cap}"
            raise ValueError(msg)
        if not 0.0 <= self.jitter <= 1.0:
            msg = f"Backoff jitter is a fraction in [0, 1], got {self.jitter}"
            raise ValueError(msg)

    def ceiling(self, attempt: int) -> float:
        """The longest delay after `attempt` failures (1 after the first)."""
        doublings = min(max(attempt - 1, 0), MAX_DOUBLINGS)
        return min(self.cap, self.first * float(2**doublings))

    def delay(self, attempt: int, draw: float = 1.0) -> float:
        """The delay after `attempt` failures; `draw` in [0, 1] picks it inside the jitter band."""
        top = self.ceiling(attempt)
        low = min(top, max(self.floor, top * (1.0 - self.jitter)))
        return low + (top - low) * min(max(draw, 0.0), 1.0)


def retrying(
    backoff: Backoff,
    *,
    sleep: Callable[[float], None],
    tries: int | None = None,
    draw: Callable[[], float] = lambda: 1.0,
) -> Iterator[int]:
    """Yield attempt numbers 1, 2, ... sleeping the backoff before each one after the first.

    The caller breaks out (or returns) on success; `tries=None` tries until the caller stops.

        for attempt in retrying(Backoff(1, 4), sleep=clock.sleep, tries=3):
            try:
                return write()
            except StoreUnavailable:
                log.warning("write.retried", attempt=attempt)
    """
    attempt = 1
    while True:
        yield attempt
        if tries is not None and attempt >= tries:
            return
        sleep(backoff.delay(attempt, draw()))
        attempt += 1

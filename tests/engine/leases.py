"""What the lease tests share: a monotonic clock a test moves, and the default lease timing."""

from __future__ import annotations

from datetime import timedelta

from rotator.lease import LeaseSettings

SETTINGS = LeaseSettings(
    lease_duration=timedelta(seconds=60),
    renew_deadline=timedelta(seconds=40),
    retry_period=timedelta(seconds=15),
)


class Mono:
    """A monotonic clock that moves only when told to (a frozen process's clock stands still)."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t

"""Planning across two clocks: the host's, and Bybit's, which stamps `createdAt` and `expiredAt`.

The Bybit client measures the offset (Bybit's clock minus ours) and signs with the corrected time,
so requests work on a host whose clock is off. Expiry is planned on the host clock, so a Bybit
timestamp is first converted to it. The rule (docs/rotation.md, "Clocks"): a key is planned to
expire at the *earlier* of Bybit's `expiredAt` read as host time and `expiredAt` converted with the
measured offset. A host clock that runs behind then rotates early, never late; one that runs ahead
loses nothing either. `rotator_bybit_clock_offset_seconds` and `rotator check` show the offset.
"""

from __future__ import annotations

from datetime import datetime, timedelta

# Above this, the host clock needs fixing (NTP): the alert and `rotator check` say so.
CLOCK_OFFSET_WARN = timedelta(seconds=30)


def planning_expiry(reported: datetime | None, offset: timedelta) -> datetime | None:
    """Bybit's `expiredAt` on the host clock, on the safe side: the earlier of the raw value and
    the value corrected by `offset` (Bybit's clock minus the host's)."""
    if reported is None:
        return None
    return reported - max(offset, timedelta(0))


def offset_is_large(offset: timedelta, limit: timedelta = CLOCK_OFFSET_WARN) -> bool:
    """True when the host clock is off from Bybit's by more than `limit` either way."""
    return abs(offset) > limit

"""Durations as people write them in config: `14d`, `24h`, `90s`, `1h30m`, `500ms`."""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS = {
    "w": timedelta(weeks=1),
    "d": timedelta(days=1),
    "h": timedelta(hours=1),
    "m": timedelta(minutes=1),
    "s": timedelta(seconds=1),
    "ms": timedelta(milliseconds=1),
}
_PART = re.compile(r"(\d+)(ms|w|d|h|m|s)")
_WHOLE = re.compile(r"(?:\d+(?:ms|w|d|h|m|s))+")
_MAX_DIGITS = 12  # 999,999,999,999 ms is 31 years: more digits is a typo, not a duration


def parse_duration(text: str) -> timedelta:
    """Parse `1d12h`-style text. Raises ValueError with the accepted form on anything else."""
    compact = text.strip().replace(" ", "")
    if not _WHOLE.fullmatch(compact):
        raise ValueError(
            f"{text[:40]!r} is not a duration; write a number and a unit, like 14d, 24h, 90s or "
            "1h30m (units: w, d, h, m, s, ms)"
        )
    parts = _PART.findall(compact)
    if any(len(n) > _MAX_DIGITS for n, _ in parts):
        raise ValueError(f"{text[:40]!r} is far too long a duration; write something like 14d")
    try:
        return sum((int(n) * _UNITS[u] for n, u in parts), timedelta())
    except OverflowError:
        raise ValueError(
            f"{text[:40]!r} is far too long a duration; write something like 14d"
        ) from None


def format_duration(delta: timedelta, *, units: int | None = None) -> str:
    """The inverse of parse_duration, shortest form: 1d12h, 90s, 0s. Negative gets a minus sign.

    With `units`, only that many of the largest non-zero units, the rest dropped (a rough size for
    people: `units=2` shows 62d3h7m as 62d3h); the result then no longer parses back exactly.
    """
    if delta < timedelta(0):
        return "-" + format_duration(-delta, units=units)
    ms = delta // timedelta(milliseconds=1)
    out = []
    for unit in ("d", "h", "m", "s", "ms"):
        size = _UNITS[unit] // timedelta(milliseconds=1)
        n, ms = divmod(ms, size)
        if n:
            out.append(f"{n}{unit}")
    return "".join(out[:units]) or "0s"

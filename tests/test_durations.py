"""The one duration formatter: exact in config messages, the two largest units in CLI tables."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st
from rotator.cli.output import fmt_relative
from rotator.durations import format_duration

NOW = datetime(2026, 3, 1, tzinfo=UTC)


def test_units_keeps_the_largest_non_zero_units() -> None:
    """`units=2` shows the two largest units that are not zero, whatever lies between them."""
    delta = timedelta(days=62, hours=3, minutes=7, seconds=5)
    assert format_duration(delta) == "62d3h7m5s"
    assert format_duration(delta, units=2) == "62d3h"
    assert format_duration(timedelta(days=1, minutes=5, seconds=9), units=2) == "1d5m"
    assert format_duration(-delta, units=1) == "-62d"
    assert format_duration(timedelta(0), units=2) == "0s"


def test_relative_times_as_the_cli_prints_them() -> None:
    """Whole seconds, two units, `in`/`ago`, and `now` within a second."""
    assert fmt_relative(None, NOW) == "-"
    assert fmt_relative(NOW + timedelta(milliseconds=999), NOW) == "now"
    assert fmt_relative(NOW + timedelta(seconds=1, milliseconds=900), NOW) == "in 1s"
    assert fmt_relative(NOW - timedelta(minutes=5, seconds=12, milliseconds=5), NOW) == "5m12s ago"
    assert fmt_relative(NOW + timedelta(days=75, hours=22, minutes=1), NOW) == "in 75d22h"


def _two_largest_units(delta: timedelta) -> str:
    """What `rotator status` printed before durations.format_duration served it: the oracle."""
    seconds = int(abs(delta).total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{n}{u}" for n, u in ((days, "d"), (hours, "h"), (minutes, "m"), (secs, "s")) if n]
    return "".join(parts[:2]) or "0s"


@given(st.timedeltas(min_value=timedelta(days=-3650), max_value=timedelta(days=3650)))
def test_relative_times_are_unchanged(delta: timedelta) -> None:
    """fmt_relative prints what the CLI's own formatter printed, for any span up to ten years."""
    text = fmt_relative(NOW + delta, NOW)
    if abs(delta) < timedelta(seconds=1):
        assert text == "now"
    elif delta > timedelta(0):
        assert text == f"in {_two_largest_units(delta)}"
    else:
        assert text == f"{_two_largest_units(delta)} ago"

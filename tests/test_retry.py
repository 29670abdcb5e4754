"""The one backoff schedule and retry loop every retrying loop in the service uses."""

from __future__ import annotations

import pytest
from rotator.retry import Backoff, retrying


def test_ceiling_doubles_from_first_up_to_cap() -> None:
    backoff = Backoff(first=1.0, cap=10.0)
    assert [backoff.ceiling(n) for n in range(1, 7)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert backoff.ceiling(0) == 1.0  # no failure yet counts as the first
    assert backoff.ceiling(10_000) == 10.0  # no overflow on a very long streak


def test_no_jitter_is_exactly_the_ceiling_whatever_the_draw() -> None:
    backoff = Backoff(first=0.5, cap=30.0)
    assert backoff.delay(3, 0.0) == backoff.delay(3, 1.0) == 2.0


def test_full_jitter_spans_floor_to_ceiling() -> None:
    backoff = Backoff(first=30.0, cap=3600.0, jitter=1.0, floor=30.0)
    assert backoff.delay(4, 0.0) == 30.0
    assert backoff.delay(4, 1.0) == 240.0
    assert backoff.delay(4, 0.5) == 135.0
    assert backoff.delay(4, 7.0) == 240.0  # an out-of-range draw is clamped, never past the cap


def test_partial_jitter_only_shortens() -> None:
    backoff = Backoff(first=2.0, cap=60.0, jitter=0.25)
    assert backoff.delay(2, 0.0) == 3.0
    assert backoff.delay(2, 1.0) == 4.0


@pytest.mark.parametrize(
    ("first", "cap", "jitter"), [(0.0, 1.0, 0.0), (2.0, 1.0, 0.0), (1.0, 2.0, 1.5)]
)
def test_nonsense_schedules_are_refused(first: float, cap: float, jitter: float) -> None:
    with pytest.raises(ValueError, match="Backoff"):
        Backoff(first=first, cap=cap, jitter=jitter)


def test_retrying_sleeps_between_tries_never_after_the_last() -> None:
    slept: list[float] = []
    tried = list(retrying(Backoff(first=1.0, cap=4.0), sleep=slept.append, tries=4))
    assert tried == [1, 2, 3, 4]
    assert slept == [1.0, 2.0, 4.0]


def test_retrying_stops_when_the_caller_breaks() -> None:
    slept: list[float] = []
    for attempt in retrying(Backoff(first=1.0, cap=4.0), sleep=slept.append):
        if attempt == 2:
            break
    assert slept == [1.0]


def test_retrying_uses_the_callers_draw() -> None:
    slept: list[float] = []
    draws = iter([0.0, 1.0])
    backoff = Backoff(first=8.0, cap=8.0, jitter=1.0)
    list(retrying(backoff, sleep=slept.append, tries=3, draw=lambda: next(draws)))
    assert slept == [0.0, 8.0]

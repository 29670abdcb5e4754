"""The due plan without a server: when each key is next due, and the back-off of a stalled key."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st
from rotator.daemon.due import MIN_DUE_GAP, DuePlan, stall_backoff, stalled
from rotator.key_report import KeyReport

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
INTERVAL = timedelta(minutes=10)


def report(name="bot1", account="main", *, next_at=NOW, moved=False) -> KeyReport:
    return KeyReport(
        name=name, account=account, sub_uid=2001, state="idle", next_at=next_at, completed=moved
    )


def the_old_gap(streak: int, interval: timedelta) -> timedelta:
    """The formula the daemon used before rotator.retry (kept here as the reference)."""
    return min(MIN_DUE_GAP * (2 ** min(streak, 16)), interval)


@given(
    streak=st.integers(min_value=1, max_value=80),
    interval_s=st.integers(min_value=1, max_value=86_400),
)
def test_the_stall_backoff_keeps_the_old_numbers(streak, interval_s):
    """2 s, 4 s, ... after 1, 2, ... stalled runs, at most 2**16 s and the reconcile interval."""
    interval = timedelta(seconds=interval_s)
    gap = stall_backoff(interval).delay(streak)
    assert gap == the_old_gap(streak, interval).total_seconds()


def test_a_stalled_key_backs_off_and_a_moving_one_does_not():
    """Due and nothing moved: 2 s, 4 s, 8 s later; once it moves, the gap is MIN_DUE_GAP again."""
    plan = DuePlan()
    for gap_s in (2, 4, 8):
        assert plan.plan([report()], NOW, INTERVAL) == {"main"}
        assert plan.moments["bot1"] == NOW + timedelta(seconds=gap_s)
    plan.plan([report(moved=True)], NOW, INTERVAL)
    assert plan.moments["bot1"] == NOW + MIN_DUE_GAP
    assert "bot1" not in plan.streaks


def test_a_stalled_key_waits_at_most_one_interval():
    plan = DuePlan()
    for _ in range(30):
        plan.plan([report()], NOW, timedelta(minutes=1))
    assert plan.moments["bot1"] == NOW + timedelta(minutes=1)


def test_the_plan_keeps_future_moments_and_drops_keys_with_nothing_due():
    """A moment ahead is kept as is; a key with nothing due leaves the plan."""
    later = NOW + timedelta(days=3)
    plan = DuePlan()
    accounts = plan.plan(
        [report("a", next_at=later), report("b", "other", next_at=NOW)], NOW, INTERVAL
    )
    assert accounts == {"main", "other"}
    assert plan.moments == {"a": later, "b": NOW + timedelta(seconds=2)}
    plan.plan([report("b", "other", next_at=None)], NOW, INTERVAL)
    assert plan.moments == {"a": later}
    assert plan.streaks == {}


def test_due_by_earliest_and_next():
    plan = DuePlan()
    plan.plan(
        [
            report("a", next_at=NOW + timedelta(hours=2)),
            report("b", next_at=NOW + timedelta(hours=1)),
        ],
        NOW,
        INTERVAL,
    )
    assert plan.due_by(["a", "b", "c"], NOW + timedelta(hours=1)) == ("b",)
    assert plan.due_by(["a", "b"], NOW + timedelta(hours=3)) == ("a", "b")
    assert plan.earliest(["a", "c"]) == NOW + timedelta(hours=2)
    assert plan.earliest(["c"]) is None
    assert plan.next() == ("b", NOW + timedelta(hours=1))
    plan.forget("a")
    plan.forget("b")
    assert plan.next() is None


def test_stalled_is_due_and_unmoved():
    assert stalled(report(), NOW)
    assert not stalled(report(moved=True), NOW)
    assert not stalled(report(next_at=NOW + timedelta(seconds=1)), NOW)
    assert not stalled(report(next_at=None), NOW)
    attempted = KeyReport(
        name="x", account="main", sub_uid=1, state="failed", next_at=NOW, step_attempted=True
    )
    assert not stalled(attempted, NOW)

"""What runs when, as data: the periodic jobs and what a reload removes (no scheduler here;
tests/daemon/test_scheduler.py runs APScheduler itself)."""

from __future__ import annotations

from datetime import timedelta

from rotator.adapters.scheduler import HEARTBEAT_EXECUTOR
from rotator.daemon.jobs import account_executor, left_over, periodic

MIN = timedelta(minutes=1)


def by_id(jobs):
    return {job.job_id: job for job in jobs}


def test_one_reconcile_per_account_on_its_own_pool_and_the_shared_jobs():
    jobs = by_id(
        periodic(
            ["a", "b"], interval=10 * MIN, retry_period=2 * MIN, tracked=False, immediately=True
        )
    )
    assert list(jobs) == ["reconcile:a", "reconcile:b", "probe", "intents", "heartbeat"]
    a = jobs["reconcile:a"]
    assert (a.kind, a.account, a.interval) == ("reconcile", "a", 10 * MIN)
    assert a.jitter == timedelta(seconds=30)  # 1/10 of 10 min is 60 s: capped at 30 s
    assert a.first_run_in == timedelta(0)
    assert a.executor == account_executor("a") == "account:a"
    assert jobs["probe"].interval == timedelta(seconds=30)
    assert jobs["probe"].executor is None
    assert jobs["intents"].interval == timedelta(seconds=5)
    assert jobs["heartbeat"].interval == timedelta(seconds=5)
    assert jobs["heartbeat"].executor == HEARTBEAT_EXECUTOR


def test_short_intervals_and_tracked_keys():
    """Short intervals are kept as they are; reminders run first one jitter after a start."""
    interval = timedelta(seconds=20)
    jobs = by_id(
        periodic(
            ["a"],
            interval=interval,
            retry_period=timedelta(seconds=2),
            tracked=True,
            immediately=False,
        )
    )
    assert jobs["reconcile:a"].first_run_in is None  # one interval from now
    assert jobs["reconcile:a"].jitter == timedelta(seconds=2)
    assert jobs["probe"].interval == interval
    assert jobs["intents"].interval == timedelta(seconds=2)
    assert jobs["reminders"].interval == interval
    assert jobs["reminders"].first_run_in == timedelta(seconds=2)


def test_a_reload_removes_the_jobs_of_accounts_that_left():
    ids = [
        "due:a",
        "due:gone",
        "heartbeat",
        "intents:gone",
        "reconcile:a",
        "reconcile:gone",
        "reminders",
    ]
    assert left_over(ids, ["a"], tracked=True) == ["due:gone", "reconcile:gone"]
    assert left_over(ids, ["a"], tracked=False) == ["due:gone", "reconcile:gone", "reminders"]

"""The APScheduler wiring with short real intervals (the only real waits here, each < 1 s)."""

from __future__ import annotations

import threading
from datetime import timedelta

from rotator.adapters.scheduler import Scheduler, job_kind, now


def test_interval_date_jobs_and_error_listener():
    """An immediate periodic job repeats, a date job fires once, a raising job is counted."""
    events = []
    ran = {"every": 0, "at": 0}
    fired = threading.Event()
    failed = threading.Event()
    sched = Scheduler(
        workers=2, on_job_event=lambda kind, event: (events.append((kind, event)), failed.set())
    )

    def every():
        ran["every"] += 1

    def at():
        ran["at"] += 1
        fired.set()

    def boom():
        raise RuntimeError("job bug")

    sched.every("reconcile:main", every, timedelta(seconds=0.2), first_run=now())
    sched.at("due:bot1", at, now() + timedelta(seconds=0.3))
    sched.at("due:broken", boom, now())
    sched.start()
    try:
        assert fired.wait(2)
        assert failed.wait(2)
        assert sched.running
        assert "reconcile:main" in sched.job_ids()
        assert "due:bot1" not in sched.job_ids()  # a date job is gone once run
        sched.at("due:later", at, now() + timedelta(hours=1))
        assert sched.next_run("due:later") is not None
        sched.remove("due:later")
        sched.remove("due:never-existed")
        assert sched.next_run("due:later") is None
    finally:
        sched.shutdown(wait=True)
    assert ran["every"] >= 2
    assert ran["at"] == 1
    assert events == [("due", "error")]
    assert sched.last_executed_monotonic is not None


def test_job_kind_is_a_bounded_label():
    assert job_kind("due:bot1") == "due"
    assert job_kind("heartbeat") == "heartbeat"

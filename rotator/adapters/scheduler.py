"""APScheduler 3.x, set up once: when reconciles and due steps run (never what they do).

- Always UTC (3.x otherwise schedules in local time).
- `coalesce=True, max_instances=1`: a job that fell behind runs once, never twice at a time.
- `misfire_grace_time=None`: a run that is late (the machine slept, the pool was busy, the clock
  jumped) still runs, at once; with coalescing, hours of downtime become one catch-up run. The
  reconcile is level-triggered, so a late run is always safe and never redundant.
- A listener on EVENT_JOB_ERROR | EVENT_JOB_MISSED logs and counts: apscheduler itself only logs
  a job's exception and carries on.
- The heartbeat job has its own one-thread executor, so long reconciles filling the main pool
  never starve it: the watchdog then measures the scheduler, not the work.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import structlog
from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MISSED,
    JobExecutionEvent,
)
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

log = structlog.get_logger(__name__)

HEARTBEAT_EXECUTOR = "heartbeat"


def job_kind(job_id: str) -> str:
    """A bounded metric label: the part of a job id before ':' (reconcile, due, probe, ...)."""
    return job_id.split(":", 1)[0]


class Scheduler:
    """A BackgroundScheduler with the project's defaults and an error/missed listener."""

    def __init__(
        self,
        *,
        workers: int = 10,
        on_job_event: Callable[[str, str], None] | None = None,
    ) -> None:
        self._on_job_event = on_job_event
        # "Added job", "Running job" at INFO on every run: our own events say what ran and why.
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
        self._sched = BackgroundScheduler(
            timezone=UTC,
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            executors={
                "default": ThreadPoolExecutor(workers),
                HEARTBEAT_EXECUTOR: ThreadPoolExecutor(1),
            },
        )
        self._sched.add_listener(
            self._listen, EVENT_JOB_ERROR | EVENT_JOB_MISSED | EVENT_JOB_EXECUTED
        )
        self.last_executed_monotonic: float | None = None
        self._executors: set[str] = {"default", HEARTBEAT_EXECUTOR}

    # ---- lifecycle
    def start(self) -> None:
        self._sched.start()

    @property
    def running(self) -> bool:
        return bool(self._sched.running)

    def shutdown(self, *, wait: bool) -> None:
        if self._sched.running:
            self._sched.shutdown(wait=wait)

    # ---- jobs
    def every(
        self,
        job_id: str,
        fn: Callable[[], object],
        interval: timedelta,
        *,
        jitter: timedelta = timedelta(0),
        first_run: datetime | None = None,
        executor: str = "default",
    ) -> None:
        """A periodic job (replacing one of the same id); `first_run` None = one interval from
        now, else that moment (use `now()` for an immediate first run)."""
        trigger = IntervalTrigger(
            seconds=max(interval.total_seconds(), 0.001),
            jitter=int(jitter.total_seconds()) or None,
            timezone=UTC,
        )
        kwargs: dict[str, object] = {}
        if first_run is not None:
            kwargs["next_run_time"] = first_run
        self._sched.add_job(
            fn,
            trigger,
            id=job_id,
            name=job_id,
            replace_existing=True,
            executor=executor,
            **kwargs,
        )

    def at(
        self,
        job_id: str,
        fn: Callable[[], object],
        when: datetime,
        *,
        executor: str = "default",
    ) -> None:
        """A one-off job at `when` (replacing one of the same id)."""
        self._sched.add_job(
            fn,
            DateTrigger(run_date=when, timezone=UTC),
            id=job_id,
            name=job_id,
            replace_existing=True,
            executor=executor,
        )

    def ensure_executor(self, alias: str, workers: int = 1) -> str:
        """A thread pool of its own for `alias` (one per account: a hung account never holds
        another's threads). Returns the alias."""
        if alias not in self._executors:
            self._sched.add_executor(ThreadPoolExecutor(workers), alias)
            self._executors.add(alias)
        return alias

    def remove(self, job_id: str) -> None:
        with contextlib.suppress(JobLookupError):
            self._sched.remove_job(job_id)

    def next_run(self, job_id: str) -> datetime | None:
        job = self._sched.get_job(job_id)
        return None if job is None else job.next_run_time

    def job_ids(self) -> list[str]:
        return sorted(job.id for job in self._sched.get_jobs())

    # ---- events
    def _listen(self, event: JobExecutionEvent) -> None:
        kind = job_kind(event.job_id)
        if event.code == EVENT_JOB_EXECUTED:
            self.last_executed_monotonic = time.monotonic()
            return
        if event.code == EVENT_JOB_MISSED:
            log.warning(
                "scheduler.job_missed",
                job=event.job_id,
                scheduled_for=event.scheduled_run_time.isoformat(),
            )
            name = "missed"
        else:
            exc = event.exception
            log.error(
                "scheduler.job_failed",
                job=event.job_id,
                error=type(exc).__name__ if exc is not None else None,
                detail=str(exc)[:300] if exc is not None else None,
            )
            name = "error"
        if self._on_job_event is not None:
            self._on_job_event(kind, name)


def now() -> datetime:
    """The scheduler's own time (wall clock, UTC): jobs fire in real time."""
    return datetime.now(UTC)

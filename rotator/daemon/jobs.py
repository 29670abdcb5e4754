"""What runs when: the scheduler's periodic jobs, as data.

    job                  every                                    on
    reconcile:<account>  reconcile_interval (jitter: 1/10, <= 30 s)  the account's own pool
    probe                reconcile_interval, at most 30 s           the shared pool
    reminders            reconcile_interval (only with [[tracked]])  the shared pool
    intents              leader_election.retry_period, at most 5 s  the shared pool
    heartbeat            5 s                                        a pool of its own

One-off jobs come on top: `due:<account>` at the account's earliest due moment
(rotator/daemon/due.py), `takeover:<account>` when a lease is won, `intents:<account>` when an
operator's intent is pending. Each account has a pool of its own, so one account's hang never
delays another's step.

`periodic` is pure: the daemon turns each entry into a scheduler job that calls what `kind` names.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from rotator.adapters.scheduler import HEARTBEAT_EXECUTOR

HEARTBEAT = timedelta(seconds=5)
PROBE_MAX_INTERVAL = timedelta(seconds=30)
JITTER_MAX = timedelta(seconds=30)
INTENT_POLL_MAX = timedelta(seconds=5)  # how soon a `rotator rotate` is picked up, at most
PER_ACCOUNT = ("reconcile", "due")  # the kinds with one job per account: "<kind>:<account>"


def account_executor(account: str) -> str:
    """The name of the account's own thread pool."""
    return f"account:{account}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Periodic:
    """One periodic job."""

    job_id: str
    kind: str  # reconcile | probe | reminders | intents | heartbeat: what the job calls
    interval: timedelta
    account: str | None = None  # the account a reconcile job runs
    jitter: timedelta = timedelta(0)
    first_run_in: timedelta | None = None  # from now; None: one interval from now
    executor: str | None = None  # None: the shared pool


def periodic(
    accounts: Iterable[str],
    *,
    interval: timedelta,
    retry_period: timedelta,
    tracked: bool,
    immediately: bool,
) -> list[Periodic]:
    """Every periodic job: a reconcile per account (at once if `immediately`), the probe, the
    reminders (with `tracked` keys: first after the first reconcile), the intent poll and the
    heartbeat."""
    jitter = min(interval / 10, JITTER_MAX)
    jobs = [
        Periodic(
            job_id=f"reconcile:{name}",
            kind="reconcile",
            account=name,
            interval=interval,
            jitter=jitter,
            first_run_in=timedelta(0) if immediately else None,
            executor=account_executor(name),
        )
        for name in accounts
    ]
    jobs.append(Periodic(job_id="probe", kind="probe", interval=min(interval, PROBE_MAX_INTERVAL)))
    if tracked:
        jobs.append(
            Periodic(job_id="reminders", kind="reminders", interval=interval, first_run_in=jitter)
        )
    jobs.append(
        Periodic(job_id="intents", kind="intents", interval=min(retry_period, INTENT_POLL_MAX))
    )
    jobs.append(
        Periodic(
            job_id="heartbeat", kind="heartbeat", interval=HEARTBEAT, executor=HEARTBEAT_EXECUTOR
        )
    )
    return jobs


def left_over(job_ids: Iterable[str], accounts: Iterable[str], *, tracked: bool) -> list[str]:
    """The jobs to remove after a reload: the per-account jobs of accounts no longer in the
    config, and the reminders once no key is tracked."""
    known = set(accounts)
    gone = []
    for job_id in job_ids:
        kind, _, account = job_id.partition(":")
        if (kind in PER_ACCOUNT and account not in known) or (
            job_id == "reminders" and not tracked
        ):
            gone.append(job_id)
    return gone

"""When each key is next due: the moments behind the `due:<account>` date jobs.

After every reconcile a key's report says when its next step is due (`KeyReport.next_at`); the
plan keeps that moment, never sooner than `MIN_DUE_GAP` from now. A key that was due and did not
move (another replica claimed it, a step refused to run) backs off instead of spinning:

    stalled runs in a row   1     2     3    ...   16 and more
    gap                     2 s   4 s   8 s  ...   2**16 s (18 h), never past reconcile_interval

The plan is pure: it reads no clock (`now` is an argument) and schedules nothing; the daemon
turns its earliest moment per account into the account's one date job.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from rotator.key_report import KeyReport
from rotator.retry import Backoff

MIN_DUE_GAP = timedelta(seconds=1)  # never plan a due job sooner than this from now
MAX_STALL_DOUBLINGS = 16  # a stalled key waits at most MIN_DUE_GAP * 2**16 (or the interval)


def stall_backoff(interval: timedelta) -> Backoff:
    """The gaps after 1, 2, ... stalled runs: MIN_DUE_GAP * 2**streak, capped at `interval`."""
    gap_s = MIN_DUE_GAP.total_seconds()
    cap_s = min(interval.total_seconds(), gap_s * 2**MAX_STALL_DOUBLINGS)
    return Backoff(first=min(2 * gap_s, cap_s), cap=cap_s)


def stalled(report: KeyReport, now: datetime) -> bool:
    """Was the key due by `now` and yet nothing moved in its run?"""
    return (
        report.next_at is not None
        and report.next_at <= now
        and not report.completed
        and not report.step_attempted
    )


@dataclass
class DuePlan:
    """Each key's next due moment (clock time) and how many of its runs in a row stalled."""

    moments: dict[str, datetime] = field(default_factory=dict)  # key -> next due moment
    streaks: dict[str, int] = field(default_factory=dict)  # key -> stalled runs in a row

    def plan(self, reports: Iterable[KeyReport], now: datetime, interval: timedelta) -> set[str]:
        """Take the moments of `reports` (a key with nothing due leaves the plan); returns the
        accounts whose date job is to be planned again."""
        accounts = set()
        for report in reports:
            accounts.add(report.account)
            when = report.next_at
            if when is None:
                self.forget(report.name)
                continue
            if stalled(report, now):
                streak = self.streaks.get(report.name, 0) + 1
                self.streaks[report.name] = streak
                gap = timedelta(seconds=stall_backoff(interval).delay(streak))
            else:
                self.streaks.pop(report.name, None)
                gap = MIN_DUE_GAP
            self.moments[report.name] = max(when, now + gap)
        return accounts

    def forget(self, key: str) -> None:
        """The key left the plan (nothing due, or it left the config)."""
        self.moments.pop(key, None)
        self.streaks.pop(key, None)

    def earliest(self, keys: Iterable[str]) -> datetime | None:
        """The first due moment among `keys` (the account's date job), None if none is due."""
        return min((self.moments[k] for k in keys if k in self.moments), default=None)

    def due_by(self, keys: Iterable[str], now: datetime) -> tuple[str, ...]:
        """The keys among `keys` due by `now`, in the order given."""
        return tuple(k for k in keys if k in self.moments and self.moments[k] <= now)

    def next(self) -> tuple[str, datetime] | None:
        """The key due first of all, and when."""
        if not self.moments:
            return None
        return min(self.moments.items(), key=lambda item: item[1])

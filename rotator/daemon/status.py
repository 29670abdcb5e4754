"""What the daemon shows of itself: the sd_notify STATUS= line and /status's tracked-key rows.

Both are built from the last reports only; neither asks Vault or Bybit.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from rotator.adapters.status_page import TrackedRow
from rotator.key_report import KeyReport, ReportState
from rotator.reminders import TrackedReport


def bucket(report: KeyReport) -> str:
    """idle, failing (failed or escalated) or rotating (any other state)."""
    if report.state == ReportState.IDLE:
        return "idle"
    failing = report.state in (ReportState.FAILED, ReportState.ESCALATED)
    return "failing" if failing else "rotating"


def status_line(reports: Iterable[KeyReport], next_due: tuple[str, datetime] | None) -> str:
    """`systemctl status`'s line: "3 keys: 1 failing, 2 idle; next: bot1 at ...Z"."""
    counts: dict[str, int] = {}
    total = 0
    for report in reports:
        counts[bucket(report)] = counts.get(bucket(report), 0) + 1
        total += 1
    parts = [f"{n} {b}" for b, n in sorted(counts.items())]
    status = f"{total} keys: {', '.join(parts) or 'none'}"
    if next_due is not None:
        key, when = next_due
        status += f"; next: {key} at {when:%Y-%m-%d %H:%M:%S}Z"
    return status


def tracked_row(report: TrackedReport) -> TrackedRow:
    """A [[tracked]] key's row on /status: its expiry, next and last reminder, or its error."""
    if report.next_point is not None and report.next_at is not None:
        upcoming = f"{report.next_point} days before ({report.next_at:%Y-%m-%d %H:%M}Z)"
    else:
        upcoming = "none left" if report.expires_at is not None else "never expires"
    last = None
    if report.last_sent_at is not None:
        last = f"{report.last_sent_days} days before, at {report.last_sent_at:%Y-%m-%d %H:%M}Z"
    return TrackedRow(
        name=report.name,
        account=report.account,
        kind=report.kind.value,
        expires_at=report.expires_at,
        next_reminder=upcoming if report.error is None else "—",
        last_sent=last,
        error=report.error,
    )

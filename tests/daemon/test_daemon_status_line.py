"""The sd_notify STATUS= line and the /status rows of tracked keys, from reports alone."""

from __future__ import annotations

from datetime import UTC, datetime

from rotator.daemon.status import status_line
from rotator.key_report import KeyReport

NOW = datetime(2026, 3, 1, 12, 0, 5, tzinfo=UTC)


def report(name, state):
    return KeyReport(name=name, account="main", sub_uid=1, state=state)


def test_the_status_line_counts_keys_by_bucket_and_names_the_next():
    reports = [
        report("a", "idle"),
        report("b", "failed"),
        report("c", "escalated"),
        report("d", "handed_off"),
        report("e", "idle"),
    ]
    assert status_line(reports, ("d", NOW)) == (
        "5 keys: 2 failing, 2 idle, 1 rotating; next: d at 2026-03-01 12:00:05Z"
    )
    assert status_line([], None) == "0 keys: none"

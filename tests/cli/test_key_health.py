"""What `rotator status` says of a key: one KeyHealth per report; which ones fail the command."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from rotator.cli.output import HEALTHY, KeyHealth, explain, key_health
from rotator.key_report import KeyReport, ReportState
from rotator.state import RotationReason

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
DAY = timedelta(days=1)


def report(state: ReportState = ReportState.IDLE, **fields: object) -> KeyReport:
    return KeyReport(name="bot", account="main", sub_uid=1, state=state, **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("given", "health"),
    [
        (report(expires_at=NOW + 30 * DAY, next_at=NOW + 16 * DAY), KeyHealth.OK),
        (report(expires_at=NOW + 10 * DAY, next_at=NOW - DAY), KeyHealth.DUE),
        (report(ReportState.HANDED_OFF, expires_at=NOW + 10 * DAY), KeyHealth.IN_FLIGHT),
        (report(ReportState.AWAITING_ACK), KeyHealth.IN_FLIGHT),
        (report(ReportState.FAILED, last_error="Bybit down"), KeyHealth.FAILING),
        (report(last_error="Vault sealed"), KeyHealth.FAILING),
        (report(ReportState.ESCALATED), KeyHealth.ESCALATED),
        (report(ReportState.CREATED, escalated=True), KeyHealth.ESCALATED),
        (report(expires_at=NOW - DAY), KeyHealth.EXPIRED),
    ],
)
def test_each_report_has_one_health(given: KeyReport, health: KeyHealth) -> None:
    assert key_health(given, NOW) is health


def test_only_failing_escalated_and_expired_fail_status() -> None:
    assert {h for h in KeyHealth if not h.is_healthy} == {
        KeyHealth.FAILING,
        KeyHealth.ESCALATED,
        KeyHealth.EXPIRED,
    }
    assert set(HEALTHY) == {h for h in KeyHealth if h.is_healthy}


def test_a_failing_rotation_is_failed_or_escalated() -> None:
    assert {h for h in KeyHealth if h.is_failing} == {KeyHealth.FAILING, KeyHealth.ESCALATED}


def test_every_rotation_reason_reads_as_a_sentence() -> None:
    for reason in RotationReason:
        assert explain(reason) != reason.value
        assert " " in explain(reason)
    assert explain("retrying after: Bybit down") == "retrying after: Bybit down"

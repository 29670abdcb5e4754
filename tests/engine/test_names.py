"""The closed sets of names the engine records and reports (StrEnums), and the failure class of
every error type: values equal the strings Vault records, metrics labels and JSON output carry."""

from __future__ import annotations

import inspect

import pytest
from rotator import errors
from rotator.failures import FailureClass, failure_class
from rotator.key_report import KeyReport, ReportState
from rotator.reports import report_from_record, report_to_record
from rotator.state import RotationReason, Step

EXPECTED = {
    errors.StoreConflict: "conflict",
    errors.StoreUnavailable: "vault",
    errors.StoreDenied: "vault_denied",
    errors.ExchangeUnavailable: "bybit",
    errors.ExchangeProtocolError: "bybit",
    errors.ExchangeRateLimited: "bybit_rate_limit",
    errors.ExchangeClockSkew: "clock_skew",
    errors.ExchangeOutcomeUnknown: "bybit_outcome_unknown",
    errors.ExchangeAuthFailed: "bybit_auth",
    errors.ExchangePermissionDenied: "bybit_permission",
    errors.ExchangeRejected: "bybit_rejected",
    errors.KeyLimitReached: "key_limit",
    errors.VerificationFailed: "verification",
    errors.StateCorrupt: "state_corrupt",
    errors.HandOffFailed: "handoff",
    errors.LeaseLost: "lease_lost",
    errors.TemporaryError: "temporary",
    errors.PermanentError: "permanent",
    errors.ConfigError: "permanent",
    errors.ExchangeError: "permanent",
}


def test_every_error_type_has_its_failure_class():
    """Each error type of rotator/errors.py maps to the label it always had."""
    kinds = [
        c
        for _, c in inspect.getmembers(errors, inspect.isclass)
        if issubclass(c, errors.RotatorError) and c is not errors.RotatorError
    ]
    assert set(kinds) == set(EXPECTED)
    for kind, label in EXPECTED.items():
        assert failure_class(kind("x")) == label, kind.__name__


def test_a_subclass_takes_its_nearest_named_ancestors_class():
    """Mapped by type, not by name: a new subclass of a named error keeps its parent's label."""

    class SlowDown(errors.ExchangeRateLimited):
        pass

    class StoreConflict(errors.PermanentError):  # the same name, another type
        pass

    assert failure_class(SlowDown("x")) is FailureClass.BYBIT_RATE_LIMIT
    assert failure_class(StoreConflict("x")) is FailureClass.PERMANENT


@pytest.mark.parametrize(
    ("enum", "values"),
    [
        (
            ReportState,
            "idle planned created verified promoted handed_off awaiting_ack failed escalated",
        ),
        (
            RotationReason,
            "initial expiring forced password_change active_missing spec_changed",
        ),
        (Step, "planned created verified promoted handed_off"),
    ],
)
def test_names_keep_the_strings_records_carry(enum, values):
    assert [m.value for m in enum] == values.split()
    assert all(m == m.value and f"{m}" == m.value for m in enum)


def test_a_report_read_back_carries_the_enums():
    """A snapshot's report comes back with its state, reason and failure as the named values."""
    report = KeyReport(
        name="a",
        account="main",
        sub_uid=1,
        state=ReportState.FAILED,
        rotation_reason=RotationReason.EXPIRING,
        failure=FailureClass.BYBIT,
    )
    record = report_to_record(report)
    assert (record["state"], record["rotation_reason"], record["failure"]) == (
        "failed",
        "expiring",
        "bybit",
    )
    back = report_from_record(KeyReport, record, "r")
    assert back == report
    assert back.state is ReportState.FAILED
    assert back.rotation_reason is RotationReason.EXPIRING
    assert back.failure is FailureClass.BYBIT

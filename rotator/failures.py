"""The classes of failure a rotation step can end in: a closed set, used as a metric label.

Closed so that `rotator_rotation_failures_total{reason}` can exist at 0 for every class from the
start (an alert on `increase()` cannot see a series' first sample) and so docs can list them.
"""

from __future__ import annotations

import enum

from rotator.errors import (
    ExchangeAuthFailed,
    ExchangeClockSkew,
    ExchangeOutcomeUnknown,
    ExchangePermissionDenied,
    ExchangeProtocolError,
    ExchangeRateLimited,
    ExchangeRejected,
    ExchangeUnavailable,
    HandOffFailed,
    KeyLimitReached,
    LeaseLost,
    RotatorError,
    StateCorrupt,
    StoreConflict,
    StoreDenied,
    StoreUnavailable,
    TemporaryError,
    VerificationFailed,
)


class FailureClass(enum.StrEnum):
    CONFLICT = "conflict"
    VAULT = "vault"
    VAULT_DENIED = "vault_denied"
    BYBIT = "bybit"
    BYBIT_RATE_LIMIT = "bybit_rate_limit"
    CLOCK_SKEW = "clock_skew"
    BYBIT_OUTCOME_UNKNOWN = "bybit_outcome_unknown"
    BYBIT_AUTH = "bybit_auth"
    BYBIT_PERMISSION = "bybit_permission"
    BYBIT_REJECTED = "bybit_rejected"
    KEY_LIMIT = "key_limit"
    VERIFICATION = "verification"
    STATE_CORRUPT = "state_corrupt"
    HANDOFF = "handoff"
    LEASE_LOST = "lease_lost"
    TEMPORARY = "temporary"
    PERMANENT = "permanent"
    BUG = "bug"


_BY_ERROR: dict[type[RotatorError], FailureClass] = {
    StoreConflict: FailureClass.CONFLICT,
    StoreUnavailable: FailureClass.VAULT,
    StoreDenied: FailureClass.VAULT_DENIED,
    ExchangeUnavailable: FailureClass.BYBIT,
    ExchangeProtocolError: FailureClass.BYBIT,
    ExchangeRateLimited: FailureClass.BYBIT_RATE_LIMIT,
    ExchangeClockSkew: FailureClass.CLOCK_SKEW,
    ExchangeOutcomeUnknown: FailureClass.BYBIT_OUTCOME_UNKNOWN,
    ExchangeAuthFailed: FailureClass.BYBIT_AUTH,
    ExchangePermissionDenied: FailureClass.BYBIT_PERMISSION,
    ExchangeRejected: FailureClass.BYBIT_REJECTED,
    KeyLimitReached: FailureClass.KEY_LIMIT,
    VerificationFailed: FailureClass.VERIFICATION,
    StateCorrupt: FailureClass.STATE_CORRUPT,
    HandOffFailed: FailureClass.HANDOFF,
    LeaseLost: FailureClass.LEASE_LOST,
}


def failure_class(exc: RotatorError) -> FailureClass:
    """A bounded label for metrics: the class of the most specific error type in the table (an
    error type the table does not name takes its nearest named ancestor's class)."""
    for kind in type(exc).__mro__:
        found = _BY_ERROR.get(kind)
        if found is not None:
            return found
    return FailureClass.TEMPORARY if isinstance(exc, TemporaryError) else FailureClass.PERMANENT

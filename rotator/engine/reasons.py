"""Whether a key with no rotation in flight must rotate now, and why: a pure decision over its
state record, what Bybit lists for its active key, and `now`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from rotator.drift import DRIFT_ROTATION_MIN_GAP, OnDrift, spec_mismatches
from rotator.model import ExchangeKey, ListedStatus, ManagedKey
from rotator.password_change import awaits_forced_rotation, signalled_change
from rotator.policy import due_for_rotation
from rotator.state import KeyState, RotationReason


@dataclass(frozen=True, slots=True)
class Decision:
    """Why the key rotates now (None: it does not), and when a password change happened as
    this very key's expiry tells (None: it tells nothing)."""

    reason: RotationReason | None
    password_changed_at: datetime | None = None


def rotation_reason(
    key: ManagedKey,
    state: KeyState,
    expiry: datetime | None,
    listed: ExchangeKey | None,
    *,
    forced: bool,
    password_changed_at: datetime | None,
    now: datetime,
) -> Decision:
    """Why `key` must rotate now, if it must: no key yet, its key gone, asked by an operator, a
    password change (seen on this key, or known for the account), its renewal moment, drift."""
    if state.active is None:
        return Decision(RotationReason.INITIAL)
    if listed is None or listed.status == ListedStatus.EXPIRED:
        return Decision(RotationReason.ACTIVE_MISSING)
    if forced:
        return Decision(RotationReason.FORCED)
    signal = signalled_change(
        state.active.expires_at, listed.expires_at, now, key.policy.password_change_grace
    )
    if signal is not None:
        # Bybit says this very key dies within the grace: it rotates whatever the scope.
        return Decision(RotationReason.PASSWORD_CHANGE, signal)
    if due_for_rotation(expiry, f"{key.name}:{state.active.key_id}", key.policy, now):
        forced_by_change = awaits_forced_rotation(
            created_at=state.active.created_at,
            ip_bound=key.spec.is_ip_bound,
            changed_at=password_changed_at,
            scope=key.policy.password_change_scope,
        )
        return Decision(
            RotationReason.PASSWORD_CHANGE if forced_by_change else RotationReason.EXPIRING
        )
    return Decision(RotationReason.SPEC_CHANGED if _drifted(key, state, listed, now) else None)


def _drifted(key: ManagedKey, state: KeyState, listed: ExchangeKey, now: datetime) -> bool:
    """The active key drifted from its spec, the policy rotates on drift, and the last rotation
    is not so recent that a drift surviving it would make the key rotate in a loop."""
    return (
        key.policy.on_drift is OnDrift.ROTATE
        and bool(spec_mismatches(key.spec, listed))
        and (
            state.last_rotation_at is None or now - state.last_rotation_at >= DRIFT_ROTATION_MIN_GAP
        )
    )

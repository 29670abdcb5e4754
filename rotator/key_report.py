"""What a reconcile (or an inspection) reports: per key (`KeyReport`), per account
(`AccountReport`) and per run (`ReconcileResult`).

The CLI tables, the metrics, the notifications and the snapshots in Vault all read these. The
functions below build a key's report from its state record, what Bybit lists and `now`: pure, so a
report says the same whatever part of the engine (or a test) asks.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from rotator.drift import spec_mismatches
from rotator.failures import FailureClass
from rotator.model import ExchangeKey, ManagedKey
from rotator.password_change import awaits_forced_rotation
from rotator.policy import is_escalated, renewal_moment
from rotator.state import KeyState, Rotation, RotationReason, Step

ACK_RECHECK = timedelta(minutes=5)  # how often a missing ack is looked for again


class ReportState(enum.StrEnum):
    """Where a key stands; exactly one is 1 in the `rotator_key_state` metric at a time."""

    IDLE = "idle"  # active key, nothing in flight
    PLANNED = "planned"  # rotation recorded, nothing created yet
    CREATED = "created"  # new key exists on Bybit, secret stored as pending
    VERIFIED = "verified"  # new key checked against the spec
    PROMOTED = "promoted"  # consumers read the new key
    HANDED_OFF = "handed_off"  # hooks done; waiting out the grace, then revoking the old key
    AWAITING_ACK = "awaiting_ack"  # grace over; the old key waits for the consumer's ack
    FAILED = "failed"  # the last attempt failed; retrying with backoff
    ESCALATED = "escalated"  # will not make it before expiry without a human


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyReport:
    """One key after a reconcile (or an inspection): what it is, what is next and why."""

    name: str
    account: str
    sub_uid: int
    state: ReportState
    key_id: str | None = None  # active key id (callers shorten it; never logged in full)
    expires_at: datetime | None = None
    renewal_at: datetime | None = None
    next_action: str = ""  # what happens next: "rotate", "verify new key", "revoke old key", ...
    next_at: datetime | None = None
    reason: str = ""  # why: "expires 2026-03-01, renew 14d before", "retrying after: ..."
    last_error: str | None = None
    escalated: bool = False
    completed: bool = False  # a rotation completed during this run
    failure: FailureClass | None = None  # class of failure during this run (metrics label)
    step_attempted: bool = False
    rotations: int = 0
    last_rotation_at: datetime | None = None
    rotation_reason: RotationReason | None = None  # why the rotation in flight started
    active_created_at: datetime | None = None  # when the active key was created, if known
    # How the active key differs from its spec (rotator/drift.py); () none; None not known.
    drift: tuple[str, ...] | None = None
    # The active key must still be replaced because of a password change; None: not known.
    password_change_pending: bool | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountReport:
    name: str
    master_expires_at: datetime | None = None
    master_ok: bool = False
    password_changed_at: datetime | None = None
    password_change_detected_now: bool = False
    password_change_pending_keys: int = 0  # keys of this run still awaiting the forced rotation
    # Fingerprints of tagged keys no record of the account refers to, left on Bybit after this run
    # (docs/rotation.md, "Orphans"); None: not judged (a run that looked at some keys only).
    orphans: tuple[str, ...] | None = None
    orphans_kept: tuple[str, ...] = ()  # of those, the ones never deleted (unknown name, no age)
    orphans_deleted: tuple[str, ...] = ()  # deleted during this run
    error: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ReconcileResult:
    started_at: datetime
    finished_at: datetime
    keys: tuple[KeyReport, ...]
    accounts: tuple[AccountReport, ...]

    @property
    def next_due(self) -> datetime | None:
        moments = [k.next_at for k in self.keys if k.next_at is not None]
        return min(moments) if moments else None

    @property
    def ok(self) -> bool:
        return all(a.error is None for a in self.accounts)


# ---------------------------------------------------------------------- building reports
NEXT_ACTION = {
    Step.PLANNED: "create new key",
    Step.CREATED: "verify new key",
    Step.VERIFIED: "promote new key",
    Step.PROMOTED: "hand off new key",
    Step.HANDED_OFF: "revoke old key",
}
"""What a rotation at each step does next."""

_BEFORE_PROMOTION = frozenset({Step.PLANNED, Step.CREATED, Step.VERIFIED})


def _report(
    key: ManagedKey,
    record: KeyState,
    expiry: datetime | None,
    now: datetime,
    *,
    state: ReportState,
    next_action: str,
    reason: str,
    next_at: datetime | None = None,
    completed: bool = False,
    rotation_reason: RotationReason | None = None,
    last_error: str | None = None,
    escalated: bool | None = None,
    step_attempted: bool = False,
    failure: FailureClass | None = None,
) -> KeyReport:
    """A key's report: what the state record and the expiry say, plus what the caller decided."""
    active = record.active
    renewal = None
    if expiry is not None and active is not None:
        renewal = renewal_moment(expiry, f"{key.name}:{active.key_id}", key.policy)
    if escalated is None:
        escalated = is_escalated(expiry, key.policy, now) and record.rotation is not None
    return KeyReport(
        name=key.name,
        account=key.account,
        sub_uid=key.spec.sub_uid,
        state=state,
        key_id=active.key_id if active else None,
        expires_at=expiry,
        renewal_at=renewal,
        next_action=next_action,
        next_at=next_at,
        reason=reason,
        last_error=last_error,
        escalated=escalated,
        completed=completed,
        failure=failure,
        step_attempted=step_attempted,
        rotations=record.rotations,
        last_rotation_at=record.last_rotation_at,
        rotation_reason=rotation_reason,
        active_created_at=active.created_at if active else None,
    )


def idle_report(
    key: ManagedKey,
    record: KeyState,
    expiry: datetime | None,
    now: datetime,
    *,
    completed: bool = False,
) -> KeyReport:
    """No rotation in flight: the next one starts at the renewal moment (or never)."""
    if expiry is None:
        return _report(
            key,
            record,
            expiry,
            now,
            state=ReportState.IDLE,
            next_action="none",
            reason="the key never expires (IP-bound)",
            completed=completed,
        )
    report = _report(
        key,
        record,
        expiry,
        now,
        state=ReportState.IDLE,
        next_action="rotate",
        reason=f"expires {expiry:%Y-%m-%d %H:%M}Z; rotation starts before then",
        completed=completed,
    )
    return replace(report, next_at=report.renewal_at)


def due_report(
    key: ManagedKey, record: KeyState, expiry: datetime | None, now: datetime, why: RotationReason
) -> KeyReport:
    """No rotation in flight, but one is due now (an inspection, which starts none)."""
    return _report(
        key,
        record,
        expiry,
        now,
        state=ReportState.IDLE,
        next_action="rotate",
        next_at=now,
        reason=why,
    )


def inflight_report(
    key: ManagedKey,
    record: KeyState,
    expiry: datetime | None,
    now: datetime,
    *,
    note: str | None = None,
    attempted: bool = False,
    failure: FailureClass | None = None,
) -> KeyReport:
    """Where the rotation in flight stands, what it does next and when (or the idle report)."""
    rot = record.rotation
    if rot is None:
        return idle_report(key, record, expiry, now)
    when = rot.next_try or now
    if rot.step is Step.HANDED_OFF and rot.grace_until is not None and rot.next_try is None:
        when = rot.grace_until
    escalated = is_escalated(expiry, key.policy, now) and rot.step in _BEFORE_PROMOTION
    state, reason = _standing(key, record, rot, now, escalated=escalated, note=note)
    return _report(
        key,
        record,
        expiry,
        now,
        state=state,
        next_action=NEXT_ACTION[rot.step],
        next_at=when,
        reason=reason,
        rotation_reason=rot.reason,
        last_error=rot.last_error,
        escalated=escalated,
        step_attempted=attempted,
        failure=failure,
    )


def _standing(
    key: ManagedKey,
    record: KeyState,
    rot: Rotation,
    now: datetime,
    *,
    escalated: bool,
    note: str | None,
) -> tuple[ReportState, str]:
    """The report state of a rotation in flight, and why it stands there (`note`, the caller's
    reason, except in the grace period, which says so itself)."""
    state = ReportState(rot.step.value)
    if rot.last_error and rot.next_try is not None:
        state = ReportState.FAILED
    if escalated:
        state = ReportState.ESCALATED
    if rot.last_error:
        return state, note or f"retrying after: {rot.last_error}"
    if rot.step is not Step.HANDED_OFF:
        return state, note or f"rotation {rot.id} ({rot.reason})"
    if _waits_for_ack(key, record, rot, now):
        return ReportState.AWAITING_ACK, "waiting for the consumer to acknowledge the new key"
    return state, "grace period for consumers of the old key"


def _waits_for_ack(key: ManagedKey, record: KeyState, rot: Rotation, now: datetime) -> bool:
    """The grace is over and the old key waits for the consumer's acknowledgement."""
    return (
        key.ack is not None
        and rot.acked_at is None
        and record.previous is not None
        and rot.grace_until is not None
        and now >= rot.grace_until
    )


def awaiting_ack_report(
    key: ManagedKey,
    record: KeyState,
    expiry: datetime | None,
    now: datetime,
    until: datetime,
) -> KeyReport:
    """The old key waits for the consumer's acknowledgement, and is revoked anyway at `until`."""
    mode = key.ack.mode.value if key.ack else "-"
    return replace(
        inflight_report(key, record, expiry, now),
        state=ReportState.AWAITING_ACK,
        next_action="revoke old key",
        next_at=min(until, now + ACK_RECHECK),
        reason=(
            f"waiting for the consumer to acknowledge the new key (ack {mode}); the old key is "
            f"revoked anyway at {until:%Y-%m-%d %H:%M}Z"
        ),
    )


def unknown_report(key: ManagedKey, error: str, failure: FailureClass | None = None) -> KeyReport:
    """Nothing is known of the key this run (its account or its record could not be read)."""
    return KeyReport(
        name=key.name,
        account=key.account,
        sub_uid=key.spec.sub_uid,
        state=ReportState.FAILED,
        next_action="retry",
        reason=error,
        last_error=error,
        failure=failure,
    )


def fenced_report(key: ManagedKey, why: str) -> KeyReport:
    """Another actor holds the key's account: nothing to do here."""
    return KeyReport(
        name=key.name,
        account=key.account,
        sub_uid=key.spec.sub_uid,
        state=ReportState.IDLE,
        next_action="none here",
        reason=why,
    )


def with_signals(
    key: ManagedKey,
    report: KeyReport,
    listing: Iterable[ExchangeKey],
    password_changed_at: datetime | None,
) -> KeyReport:
    """Add what the account's view says about one key: drift, a pending forced rotation."""
    if report.key_id is None:
        return report
    listed = next((item for item in listing if item.key_id == report.key_id), None)
    drift = None if listed is None else tuple(spec_mismatches(key.spec, listed))
    # Until promotion the active key is the old one; a key out of scope that Bybit itself
    # reported dying rotates with reason password_change and counts too.
    pending = awaits_forced_rotation(
        created_at=report.active_created_at,
        ip_bound=key.spec.is_ip_bound and report.rotation_reason != RotationReason.PASSWORD_CHANGE,
        changed_at=password_changed_at,
        scope=key.policy.password_change_scope,
    )
    return replace(report, drift=drift, password_change_pending=pending)

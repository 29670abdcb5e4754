"""What a reconcile (or an inspection) reports: per key (`KeyReport`), per account
(`AccountReport`) and per run (`ReconcileResult`).

The CLI tables, the metrics, the notifications and the snapshots in Vault all read these.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from rotator.failures import FailureClass
from rotator.state import RotationReason


class ReportState(enum.StrEnum):
    """Where a key stands; exactly one is 1 in the `rotator_key_state` metric at a time."""

    IDLE = "idle"  # active key, nothing in flight
    PLANNED = "planned"  # rotation recorded, nothing created yet
    CREATED = "created"  # new key exists on Bybit, secret stored as pending
    VERIFIED = "verified"  # new key checked against the spec
    PROMOTED = "promoted"  # consumers read the new key
    HANDED_OFF = "handed_off"  # hooks done; waiting out the grace period, then revoking the old key
    AWAITING_ACK = (
        "awaiting_ack"  # grace over; the old key waits for the consumer's acknowledgement
    )
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

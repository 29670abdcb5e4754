"""The engine's pure parts on their own: the rotation reason, the report of a key, the named
transitions of the state records. Worked examples, no server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from rotator.engine.reasons import rotation_reason
from rotator.errors import StateCorrupt
from rotator.key_report import ReportState, inflight_report
from rotator.model import ExchangeKey, KeySpec, ListedStatus, ManagedKey, Secret
from rotator.state import (
    AccountState,
    KeyRef,
    KeyState,
    PendingKey,
    Rotation,
    RotationReason,
    Step,
)

NOW = datetime(2026, 3, 1, tzinfo=UTC)
PERMS = (("Wallet", ("AccountTransfer",)),)
KEY = ManagedKey(
    name="alpha",
    account="main",
    spec=KeySpec(sub_uid=2001, read_only=False, permissions=PERMS),
    consumer_path="p/keys/alpha",
    state_path="p/state/alpha",
)
ACTIVE = KeyRef(key_id="ACTIVEKEY01", created_at=NOW - timedelta(days=10))
LISTED = ExchangeKey(
    key_id="ACTIVEKEY01",
    permissions=PERMS,
    created_at=NOW - timedelta(days=10),
    expires_at=NOW + timedelta(days=80),
    status=ListedStatus.VALID,
)


def _reason(state: KeyState, listed: ExchangeKey | None, *, forced: bool = False):
    expiry = listed.expires_at if listed else None
    return rotation_reason(
        KEY, state, expiry, listed, forced=forced, password_changed_at=None, now=NOW
    )


def test_a_key_bybit_no_longer_lists_or_lists_expired_rotates_as_active_missing():
    """The active key gone from Bybit's listing, or listed expired: reason active_missing."""
    state = KeyState(active=ACTIVE)
    assert _reason(state, None).reason is RotationReason.ACTIVE_MISSING
    expired = ExchangeKey(key_id="ACTIVEKEY01", status=ListedStatus.EXPIRED)
    assert _reason(state, expired).reason is RotationReason.ACTIVE_MISSING
    assert _reason(state, LISTED).reason is None  # listed, valid, far from renewal: no rotation
    assert _reason(state, LISTED, forced=True).reason is RotationReason.FORCED
    assert _reason(KeyState(), None).reason is RotationReason.INITIAL


def test_a_report_of_a_key_with_nothing_in_flight_is_the_idle_report():
    """inflight_report on a record without a rotation says idle, what the idle report says."""
    report = inflight_report(KEY, KeyState(active=ACTIVE), None, NOW, note="ignored")
    assert report.state is ReportState.IDLE
    assert report.next_action == "none"


def test_a_record_with_an_unknown_reason_is_corrupt():
    """A rotation reason this version does not know is refused with the path to the field."""
    rot = Rotation.planned(rotation_id="r1", reason=RotationReason.EXPIRING, at=NOW)
    record = KeyState(active=ACTIVE, rotation=rot).to_record()
    assert KeyState.from_record(record).rotation == rot
    record["rotation"]["reason"] = "boredom"
    with pytest.raises(StateCorrupt, match=r"state\.rotation\.reason: unknown reason 'boredom'"):
        KeyState.from_record(record)


def test_a_step_past_create_without_its_pending_key_is_corrupt():
    """pending_key() proves the key a verify or promote acts on, or says the record is corrupt."""
    pending = PendingKey(key_id="NEWKEY0001", secret=Secret("s" * 36), created_at=NOW)
    rot = Rotation.planned(rotation_id="r1", reason=RotationReason.EXPIRING, at=NOW)
    created = rot.as_created(pending, secret_since=3)
    assert created.pending_key() is pending
    assert (created.step, created.secret_since, created.attempts) == (Step.CREATED, 3, 0)
    with pytest.raises(StateCorrupt, match="at step created but holds no pending key"):
        Rotation(
            id="r1", reason=RotationReason.EXPIRING, step=Step.CREATED, started_at=NOW
        ).pending_key()


def test_an_earlier_password_change_does_not_replace_a_later_one():
    """with_password_change keeps the latest change known."""
    later = AccountState(password_changed_at=NOW)
    assert later.with_password_change(NOW - timedelta(days=1)) is later
    assert later.with_password_change(NOW).password_changed_at == NOW
    assert later.with_password_change(NOW + timedelta(hours=1)).password_changed_at == NOW + (
        timedelta(hours=1)
    )
    assert AccountState().with_password_change(NOW).password_changed_at == NOW


def test_transitions_reset_what_a_new_step_starts_without():
    """A failure counts and frees the claim; moving on to hand-off starts with a clean slate."""
    rot = Rotation.planned(rotation_id="r1", reason=RotationReason.EXPIRING, at=NOW)
    claimed = rot.claimed(by="a", at=NOW)
    assert (claimed.attempts, claimed.claimed_by) == (1, "a")
    failed = claimed.as_failed(error="boom", retry_at=NOW + timedelta(minutes=1))
    assert (failed.failures, failed.last_error, failed.claimed_by, failed.claimed_at) == (
        1,
        "boom",
        None,
        None,
    )
    handed = failed.as_handed_off(grace_until=NOW, forced=False, acked_at=None)
    assert (handed.step, handed.attempts, handed.failures, handed.next_try, handed.last_error) == (
        Step.HANDED_OFF,
        0,
        0,
        None,
        None,
    )
    state = KeyState(active=ACTIVE, rotation=handed)
    done = state.as_completed(handed, NOW)
    assert (done.rotation, done.previous, done.rotations, done.last_rotation_at) == (
        None,
        None,
        1,
        NOW,
    )
    first = KeyState(rotation=Rotation.planned(rotation_id="r0", reason="initial", at=NOW))
    assert first.as_completed(first.rotation, NOW).rotations == 0  # a first key is no rotation

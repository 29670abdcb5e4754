"""The protocol's steps, each a function over the rotation it acts on (docs/rotation.md):

    PLANNED ─create─▶ CREATED ─verify─▶ VERIFIED ─promote─▶ PROMOTED ─hand off─▶ HANDED_OFF
                                                       grace (and ack) over ─revoke─▶ done

Every step records its result with check-and-set before the next side effect, and a step that
causes a side effect first claims it (rotator/engine/claims.py). `take_step` runs the one the
rotation stands at and says how it ended (a `StepOutcome`); a failure raises, for the key's run
(rotator/engine/key_run.py) to record.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import structlog

from rotator.drift import spec_mismatches
from rotator.engine.claims import claim
from rotator.engine.guarded_delete import guarded_delete
from rotator.engine.parts import AccountRun, Parts
from rotator.errors import (
    ExchangeAuthFailed,
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
from rotator.key_report import KeyReport, awaiting_ack_report, inflight_report
from rotator.model import (
    MAX_KEYS_PER_ACCOUNT,
    AckMode,
    Credentials,
    ExchangeKey,
    KeySpec,
    ManagedKey,
    fingerprint,
    permissions_as_dict,
)
from rotator.policy import RotationPolicy, grace_end
from rotator.progress import Progress, ProgressKind
from rotator.retry import Backoff, retrying
from rotator.state import KeyRef, KeyState, PendingKey, Rotation, Step, parse_note

log = structlog.get_logger(__name__)

PENDING_WRITE_TRIES = 4  # storing a fresh secret: tries before the new key is deleted again
PENDING_WRITE_BACKOFF = Backoff(first=1.0, cap=4.0)  # seconds between those tries: 1, 2, 4


@dataclass(frozen=True, slots=True)
class StepOutcome:
    """How a step ended without failing: the rotation moved on (and `completed`, if the old key
    is revoked), or the key's run ends here with `report` (waiting for the grace or an ack)."""

    completed: bool = False
    report: KeyReport | None = None


def take_step(
    run: AccountRun,
    key: ManagedKey,
    state: KeyState,
    rot: Rotation,
    version: int,
    *,
    expiry: datetime | None,
    now: datetime,
) -> StepOutcome:
    """Run the step the rotation `rot` (of `state`, at `version`) stands at."""
    match rot.step:
        case Step.PLANNED:
            create(run, key, state, rot, version)
        case Step.CREATED:
            verify(run, key, state, rot, version)
        case Step.VERIFIED:
            promote(run.parts, key, state, rot, version)
        case Step.PROMOTED:
            hand_off(run.parts, key, state, rot, version, now)
        case Step.HANDED_OFF:
            return after_grace(run, key, state, rot, version, expiry=expiry, now=now)
    return StepOutcome()


# ---------------------------------------------------------------------- create
def create(run: AccountRun, key: ManagedKey, state: KeyState, rot: Rotation, version: int) -> None:
    """Sweep the keys an earlier try left unstored, then create the new key and store its secret
    as pending (nothing else happens before it is in Vault)."""
    parts = run.parts
    state, rot, version = claim(parts, key, state, rot, version)
    remaining = sweep_unstored(run, key, state, rot)
    if len(remaining) >= MAX_KEYS_PER_ACCOUNT:
        raise KeyLimitReached(
            f"sub UID {key.spec.sub_uid} already holds {len(remaining)} API keys, Bybit's "
            f"limit is {MAX_KEYS_PER_ACCOUNT}: delete keys nobody uses (Bybit web UI: API "
            "management) and the rotation will continue"
        )
    run.forget_listing(key.spec.sub_uid)
    parts.authority.fence_strict()
    created = parts.exchange.create_sub_key(run.master, key.spec, note=rot.note(key.name))
    pending = PendingKey(key_id=created.key_id, secret=created.secret, created_at=parts.clock.now())
    log.info("rotation.key_created", rotation_id=rot.id, key_fp=fingerprint(created.key_id))
    parts.observer(
        Progress(
            kind=ProgressKind.KEY_CREATED,
            key=key.name,
            account=key.account,
            rotation_id=rot.id,
            key_fp=fingerprint(created.key_id),
        )
    )
    listed = tuple(remaining)
    new_state = state.with_rotation(rot.as_created(pending, secret_since=version + 1))
    store_pending(run, key, new_state, version, created.key_id)
    # Bybit's listing now is the fresh one minus the stale keys deleted above, plus the new
    # key; the new key joins the cached copy once verified (until then it is not judged).
    run.listings[key.spec.sub_uid] = listed


def sweep_unstored(
    run: AccountRun, key: ManagedKey, state: KeyState, rot: Rotation
) -> list[ExchangeKey]:
    """Delete the keys an earlier try of this rotation (or of this key) created whose secret
    never reached Vault (lost reply, crash): nobody can hold their secret. What stays listed."""
    listing = run.listing(key.spec.sub_uid, fresh=True)
    consumer = run.parts.store.read(key.consumer_path)
    keep = {ref.key_id for ref in (state.active, state.previous) if ref is not None}
    if consumer is not None and isinstance(consumer.data.get("api_key"), str):
        keep.add(consumer.data["api_key"])
    remaining = []
    for item in listing:
        tag = parse_note(item.note)
        stale = tag is not None and (
            tag.rotation_id == rot.id or (tag.key_name == key.name and item.key_id not in keep)
        )
        if stale and guarded_delete(run, key, item.key_id, why="unstored create"):
            log.warning(
                "orphan.deleted",
                key_fp=fingerprint(item.key_id),
                rotation_id=tag.rotation_id if tag else None,
            )
            run.parts.observer(
                Progress(
                    kind=ProgressKind.ORPHAN_DELETED,
                    key=key.name,
                    account=key.account,
                    rotation_id=tag.rotation_id if tag else None,
                    key_fp=fingerprint(item.key_id),
                )
            )
        else:
            remaining.append(item)
    return remaining


def store_pending(
    run: AccountRun, key: ManagedKey, new_state: KeyState, version: int, key_id: str
) -> None:
    """The secret exists only in memory now: get it into Vault, or delete the key on Bybit."""
    parts = run.parts
    for attempt in retrying(PENDING_WRITE_BACKOFF, sleep=parts.sleep, tries=PENDING_WRITE_TRIES):
        try:
            parts.write_state(key, new_state, version)
        except StoreUnavailable as exc:
            log.warning("rotation.pending_write.retried", attempt=attempt, error=exc.message)
        except (StoreConflict, StoreDenied):
            delete_unstored(run, key, key_id)
            raise
        else:
            return
    delete_unstored(run, key, key_id)
    raise StoreUnavailable(
        "the new key's secret could not be written to Vault; the key was deleted on Bybit "
        "and the rotation will be retried"
    )


def delete_unstored(run: AccountRun, key: ManagedKey, key_id: str) -> None:
    """Delete a new key whose secret never reached Vault (nobody can use it)."""
    # Not fenced by the lease: nobody else can hold this key's secret, so deleting it is
    # right whoever holds the account now. The guard still re-reads the records.
    try:
        if guarded_delete(run, key, key_id, why="unstored secret", strict=False):
            log.warning("rotation.unstored_key_deleted", key_fp=fingerprint(key_id))
            run.parts.observer(
                Progress(
                    kind=ProgressKind.ROLLED_BACK,
                    key=key.name,
                    account=key.account,
                    key_fp=fingerprint(key_id),
                )
            )
    except RotatorError as exc:
        # Its note still carries the rotation id: the next create step sweeps it.
        log.error(
            "rotation.unstored_key_delete_failed", key_fp=fingerprint(key_id), error=exc.message
        )


# ---------------------------------------------------------------------- verify
def verify(run: AccountRun, key: ManagedKey, state: KeyState, rot: Rotation, version: int) -> None:
    """Ask Bybit about the new key, signed with the new key: it must match the spec. A key that
    does not is deleted and the rotation goes back to create (same rotation id)."""
    parts = run.parts
    state, rot, version = claim(parts, key, state, rot, version)
    pending = rot.pending_key()
    problem: RotatorError | None = None
    try:
        info = parts.exchange.query_key(Credentials(api_key=pending.key_id, secret=pending.secret))
    except ExchangeAuthFailed as exc:
        problem = exc
    else:
        problems = verification_problems(key.spec, info, key.policy, parts.clock.now())
        if problems:
            problem = VerificationFailed("new key does not match the spec: " + "; ".join(problems))
    if problem is not None:
        # The new key is unusable: delete it, and plan a fresh create (same rotation id).
        if not guarded_delete(
            run, key, pending.key_id, why="failed verification", allow_pending=True
        ):
            raise LeaseLost(
                "the key that failed verification here is live in Vault: another actor "
                "verified and promoted it meanwhile; this process stands down"
            )
        log.error("rotation.verify_failed", error=problem.message, action="new key deleted")
        parts.observer(
            Progress(
                kind=ProgressKind.VERIFY_FAILED,
                key=key.name,
                account=key.account,
                rotation_id=rot.id,
                key_fp=fingerprint(pending.key_id),
                detail=problem.message,
            )
        )
        version = parts.write_state(key, state.with_rotation(rot.as_replanned()), version)
        destroy_secret_versions(parts, key, rot.secret_since, version)
        raise problem
    run.relist(
        key.spec.sub_uid,
        replace(
            info,
            note=info.note or rot.note(key.name),
            created_at=info.created_at or pending.created_at,
        ),
    )
    verified = pending.with_expiry(info.expires_at)
    parts.write_state(key, state.with_rotation(rot.as_verified(verified)), version)
    log.info("rotation.verified", rotation_id=rot.id, key_fp=fingerprint(pending.key_id))
    parts.observer(
        Progress(
            kind=ProgressKind.VERIFIED,
            key=key.name,
            account=key.account,
            rotation_id=rot.id,
            key_fp=fingerprint(pending.key_id),
        )
    )


def verification_problems(
    spec: KeySpec, info: ExchangeKey, policy: RotationPolicy, now: datetime
) -> list[str]:
    """What differs between the spec and what query-api (signed by the new key) reports."""
    problems = spec_mismatches(spec, info)
    if info.is_master:
        problems.append("the new key is a master key")
    if info.user_id is not None and info.user_id != spec.sub_uid:
        problems.append(f"the new key belongs to UID {info.user_id}, wanted {spec.sub_uid}")
    if spec.is_ip_bound:
        if info.expires_at is not None and info.expires_at < now + policy.renew_before:
            problems.append("the IP-bound key expires soon (password change pending?)")
    elif info.expires_at is None:
        problems.append("the unbound key reports no expiry")
    elif info.expires_at <= now + policy.renew_before:
        problems.append(
            f"the new key expires at {info.expires_at:%Y-%m-%d %H:%M}Z, before it would be due "
            "for renewal: lower renew_before or check the account"
        )
    return problems


# ---------------------------------------------------------------------- promote
def promote(parts: Parts, key: ManagedKey, state: KeyState, rot: Rotation, version: int) -> None:
    """Write the verified key where consumers read it; the active key becomes the previous one."""
    pending = rot.pending_key()
    consumer = parts.store.read(key.consumer_path)
    if consumer is not None and consumer.data.get("api_key") == pending.key_id:
        consumer_version = consumer.version  # written before a crash: promotion is idempotent
    else:
        record = consumer_record(key, pending, rot.id)
        parts.authority.fence_strict()
        consumer_version = parts.store.write(
            key.consumer_path, record, cas=consumer.version if consumer else 0
        )
    active = KeyRef(
        key_id=pending.key_id,
        created_at=pending.created_at,
        expires_at=pending.expires_at,
        consumer_version=consumer_version,
    )
    new_version = parts.write_state(key, state.as_promoted(rot, active), version)
    destroy_secret_versions(parts, key, rot.secret_since, new_version)
    log.info(
        "rotation.promoted",
        rotation_id=rot.id,
        key_fp=fingerprint(pending.key_id),
        vault_version=consumer_version,
    )
    parts.observer(
        Progress(
            kind=ProgressKind.PROMOTED,
            key=key.name,
            account=key.account,
            rotation_id=rot.id,
            key_fp=fingerprint(pending.key_id),
            vault_version=consumer_version,
        )
    )


def consumer_record(key: ManagedKey, pending: PendingKey, rotation_id: str) -> dict[str, Any]:
    """What bots read at the key's Vault path."""
    return {
        "api_key": pending.key_id,
        "api_secret": pending.secret.reveal(),
        "created_at": pending.created_at.isoformat(),
        "expires_at": pending.expires_at.isoformat() if pending.expires_at else None,
        "rotation_id": rotation_id,
        "account": key.account,
        "sub_uid": key.spec.sub_uid,
        "read_only": key.spec.read_only,
        "ips": list(key.spec.ips) or ["*"],
        "permissions": permissions_as_dict(key.spec.permissions),
    }


def destroy_secret_versions(parts: Parts, key: ManagedKey, since: int | None, upto: int) -> None:
    """Drop the state versions that held the pending secret: it now lives only where consumers
    read it. Best effort: a failure leaves them readable only under the state path's policy."""
    if since is None or since >= upto:
        return
    try:
        parts.store.destroy_versions(key.state_path, list(range(since, upto)))
    except RotatorError as exc:
        log.warning("state.secret_versions.destroy_failed", error=exc.message)


# ---------------------------------------------------------------------- hand off
def hand_off(
    parts: Parts, key: ManagedKey, state: KeyState, rot: Rotation, version: int, now: datetime
) -> None:
    """Run the key's hand-off hooks; the grace for consumers of the old key starts."""
    previous = state.previous
    forced = False
    state, rot, version = claim(parts, key, state, rot, version)
    consumer = parts.store.read(key.consumer_path)
    if consumer is None:
        raise StoreUnavailable(f"consumer record {key.consumer_path} vanished after promotion")
    try:
        parts.handoff.deliver(key.name, consumer.data, fence=parts.authority.fence_strict)
    except TemporaryError as exc:
        old_expiry = previous.expires_at if previous else None
        if old_expiry is None or now < old_expiry:
            raise
        # The old key is dead anyway: nothing is gained by keeping the rotation open.
        forced = True
        log.critical(
            "handoff.forced",
            error=exc.message,
            action="old key expired before hand-off succeeded; revoking it anyway",
        )
        parts.observer(
            Progress(
                kind=ProgressKind.HANDOFF_FORCED,
                key=key.name,
                account=key.account,
                rotation_id=rot.id,
                detail=exc.message,
            )
        )
    done_at = parts.clock.now()
    until = grace_end(done_at, previous.expires_at, key.policy) if previous else done_at
    hooks_ack = key.ack is not None and key.ack.mode is AckMode.HOOK and not forced
    handed_off = rot.as_handed_off(
        grace_until=until, forced=forced, acked_at=done_at if hooks_ack else None
    )
    parts.write_state(key, state.with_rotation(handed_off), version)
    log.info("rotation.handed_off", rotation_id=rot.id, revoke_after=until.isoformat())
    parts.observer(
        Progress(
            kind=ProgressKind.HANDED_OFF,
            key=key.name,
            account=key.account,
            rotation_id=rot.id,
            at=until,
        )
    )


# ---------------------------------------------------------------------- grace, ack, revoke
def after_grace(
    run: AccountRun,
    key: ManagedKey,
    state: KeyState,
    rot: Rotation,
    version: int,
    *,
    expiry: datetime | None,
    now: datetime,
) -> StepOutcome:
    """Wait out the grace (and the consumer's acknowledgement, if the key asks for one), then
    revoke the old key."""
    if rot.grace_until is not None and now < rot.grace_until:
        return StepOutcome(report=inflight_report(key, state, expiry, now))
    if ack_arrived(run.parts, key, state, rot):
        run.parts.write_state(key, state.with_rotation(rot.as_acked(now)), version)
        return StepOutcome()  # re-read: the next round revokes
    ack_until = ack_deadline(key, state, rot, now)
    if ack_until is not None:
        return StepOutcome(report=awaiting_ack_report(key, state, expiry, now, ack_until))
    revoke(run, key, state, rot, version)
    return StepOutcome(completed=True)


def ack_arrived(parts: Parts, key: ManagedKey, state: KeyState, rot: Rotation) -> bool:
    """The bot wrote the NEW key's id to the key's ack record (and it is not recorded yet)."""
    active = state.active
    if key.ack is None or key.ack.mode is not AckMode.VAULT or active is None:
        return False
    if rot.acked_at is not None or state.previous is None:
        return False
    record = parts.store.read(key.ack.path)
    if record is None or record.data.get("api_key") != active.key_id:
        return False
    log.info("ack.received", key_fp=fingerprint(active.key_id), via="vault")
    return True


def ack_deadline(key: ManagedKey, state: KeyState, rot: Rotation, now: datetime) -> datetime | None:
    """Until when the revoke waits for the consumer's acknowledgement; None: go ahead."""
    previous, active = state.previous, state.active
    if key.ack is None or previous is None or active is None:
        return None
    if rot.acked_at is not None:
        return None
    start = rot.grace_until or now
    until = start + key.ack.max_wait
    if previous.expires_at is not None:
        until = min(until, previous.expires_at)
    if now >= until:
        log.warning(
            "ack.missing",
            key_fp=fingerprint(active.key_id),
            action="revoking the old key without an acknowledgement (ack max_wait over)",
        )
        return None
    return until


def revoke(run: AccountRun, key: ManagedKey, state: KeyState, rot: Rotation, version: int) -> None:
    """Delete the old key on Bybit; the rotation is done."""
    parts = run.parts
    previous = state.previous
    if previous is not None:
        state, rot, version = claim(parts, key, state, rot, version)
        if not guarded_delete(
            run, key, previous.key_id, why="revoke the old key", allow_previous=True
        ):
            raise StateCorrupt(
                f"refusing to revoke the old key {fingerprint(previous.key_id)}: the consumer "
                f"record or the active key at {key.state_path} points at it; fix the records "
                "by hand (rotator status shows them)"
            )
    parts.write_state(key, state.as_completed(rot, parts.clock.now()), version)
    if previous is not None and previous.consumer_version is not None:
        try:
            parts.store.destroy_versions(key.consumer_path, [previous.consumer_version])
        except RotatorError as exc:
            log.warning("consumer.old_version.destroy_failed", error=exc.message)
    log.info(
        "rotation.completed",
        rotation_id=rot.id,
        reason=rot.reason,
        key_fp=fingerprint(state.active.key_id) if state.active else None,
        old_key_fp=fingerprint(previous.key_id) if previous else None,
        duration_s=round((parts.clock.now() - rot.started_at).total_seconds(), 3),
    )
    parts.observer(
        Progress(
            kind=ProgressKind.COMPLETED,
            key=key.name,
            account=key.account,
            rotation_id=rot.id,
            reason=rot.reason,
            key_fp=fingerprint(state.active.key_id) if state.active else None,
            old_key_fp=fingerprint(previous.key_id) if previous else None,
        )
    )

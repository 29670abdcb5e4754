"""What the engine records in Vault, and how records convert to and from KV data.

Two records per managed key (layout: docs/vault-layout.md):
- the consumer record at the key's `vault_path`: what bots read, always a verified key;
- the state record at `<prefix>/state/<name>`: the rotation in flight, written only with
  check-and-set, so its version number is the fence between replicas.
One record per account at `<prefix>/accounts/<name>/state`: password change, master key expiry.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Self

from rotator.errors import StateCorrupt
from rotator.model import Secret

SCHEMA = 1
NOTE_PREFIX = "rotator:"


class Step(enum.StrEnum):
    """Where a rotation stands. Each is recorded before the side effect of the next one."""

    PLANNED = "planned"  # rotation id chosen; next: create (note carries the id)
    CREATED = "created"  # new key exists, its secret is held here as pending; next: verify
    VERIFIED = "verified"  # the new key answered query-api and matches the spec; next: promote
    PROMOTED = "promoted"  # consumers read the new key; next: hand off
    HANDED_OFF = "handed_off"  # hooks done; next: revoke the old key when the grace ends


class RotationReason(enum.StrEnum):
    """Why a rotation started (recorded with it; a log field and a column of rotator status)."""

    INITIAL = "initial"  # no active key yet: the first key is created
    EXPIRING = "expiring"  # the active key reached its renewal moment
    FORCED = "forced"  # an operator asked (rotator rotate)
    PASSWORD_CHANGE = "password_change"  # noqa: S105 (a reason, no password): the key dies soon
    ACTIVE_MISSING = "active_missing"  # Bybit no longer lists the active key (or lists it expired)
    SPEC_CHANGED = "spec_changed"  # the active key drifted from its spec and on_drift = rotate


def _ts(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()


def _dt(value: object, what: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise StateCorrupt(f"{what}: expected a timestamp, got {type(value).__name__}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise StateCorrupt(f"{what}: {value!r} is not an ISO 8601 timestamp") from None
    if parsed.tzinfo is None:
        raise StateCorrupt(f"{what}: timestamp without a time zone")
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:59:59-01:00 lies past the year 9999 in UTC
        raise StateCorrupt(f"{what}: timestamp out of range") from None


def _req_dt(value: object, what: str) -> datetime:
    parsed = _dt(value, what)
    if parsed is None:
        raise StateCorrupt(f"{what} is missing")
    return parsed


def _str(value: object, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise StateCorrupt(f"{what}: expected a non-empty string")
    return value


def _opt_str(value: object, what: str) -> str | None:
    return None if value is None else _str(value, what)


def _int(value: object, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise StateCorrupt(f"{what}: expected an integer")
    return value


def _dict(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise StateCorrupt(f"{what}: expected an object")
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyRef:
    """A key we know by id (no secret): the active one, or the previous one awaiting revocation."""

    key_id: str
    created_at: datetime | None = None
    expires_at: datetime | None = None  # None: never (IP-bound) or not known
    consumer_version: int | None = None  # the consumer record version that holds its secret

    def to_record(self) -> dict[str, Any]:
        return {
            "key_id": self.key_id,
            "created_at": _ts(self.created_at),
            "expires_at": _ts(self.expires_at),
            "consumer_version": self.consumer_version,
        }

    @classmethod
    def from_record(cls, raw: object, what: str) -> Self:
        d = _dict(raw, what)
        version = d.get("consumer_version")
        return cls(
            key_id=_str(d.get("key_id"), f"{what}.key_id"),
            created_at=_dt(d.get("created_at"), f"{what}.created_at"),
            expires_at=_dt(d.get("expires_at"), f"{what}.expires_at"),
            consumer_version=None if version is None else _int(version, f"{what}.consumer_version"),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class PendingKey:
    """A created, not yet promoted key. Its secret lives only here until promotion."""

    key_id: str
    secret: Secret = field(repr=False)
    created_at: datetime
    expires_at: datetime | None = None  # filled by verify

    def to_record(self) -> dict[str, Any]:
        return {
            "key_id": self.key_id,
            "secret": self.secret.reveal(),
            "created_at": _ts(self.created_at),
            "expires_at": _ts(self.expires_at),
        }

    @classmethod
    def from_record(cls, raw: object, what: str) -> Self:
        d = _dict(raw, what)
        return cls(
            key_id=_str(d.get("key_id"), f"{what}.key_id"),
            secret=Secret(_str(d.get("secret"), f"{what}.secret")),
            created_at=_req_dt(d.get("created_at"), f"{what}.created_at"),
            expires_at=_dt(d.get("expires_at"), f"{what}.expires_at"),
        )

    def with_expiry(self, expires_at: datetime | None) -> PendingKey:
        """What verify learnt: the expiry Bybit gives the new key."""
        return replace(self, expires_at=expires_at)


@dataclass(frozen=True, slots=True, kw_only=True)
class Rotation:
    """One rotation in flight."""

    id: str  # also in the new key's Bybit note: rotator:<id>:<key name>
    reason: RotationReason
    step: Step
    started_at: datetime
    pending: PendingKey | None = None
    secret_since: int | None = (
        None  # first state version holding pending's secret (destroyed later)
    )
    attempts: int = 0  # side effects tried at the current step
    failures: int = 0  # consecutive failures (drives backoff)
    next_try: datetime | None = None  # after a failure: not before this
    last_error: str | None = None
    claimed_by: str | None = None  # replica that claimed the current step
    claimed_at: datetime | None = None
    grace_until: datetime | None = None  # HANDED_OFF: revoke the old key from then on
    handoff_forced: bool = False  # hand-off skipped because the old key's expiry forced it
    acked_at: datetime | None = None  # the consumer acknowledged the new key (ack policy)

    def to_record(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "reason": str(self.reason),
            "step": self.step.value,
            "started_at": _ts(self.started_at),
            "pending": None if self.pending is None else self.pending.to_record(),
            "secret_since": self.secret_since,
            "attempts": self.attempts,
            "failures": self.failures,
            "next_try": _ts(self.next_try),
            "last_error": self.last_error,
            "claimed_by": self.claimed_by,
            "claimed_at": _ts(self.claimed_at),
            "grace_until": _ts(self.grace_until),
            "handoff_forced": self.handoff_forced,
            "acked_at": _ts(self.acked_at),
        }

    @classmethod
    def from_record(cls, raw: object, what: str) -> Self:
        d = _dict(raw, what)
        try:
            step = Step(str(d.get("step")))
        except ValueError:
            raise StateCorrupt(f"{what}.step: unknown step {d.get('step')!r}") from None
        try:
            reason = RotationReason(_str(d.get("reason"), f"{what}.reason"))
        except ValueError:
            raise StateCorrupt(f"{what}.reason: unknown reason {d.get('reason')!r}") from None
        pending = d.get("pending")
        since = d.get("secret_since")
        return cls(
            id=_str(d.get("id"), f"{what}.id"),
            reason=reason,
            step=step,
            started_at=_req_dt(d.get("started_at"), f"{what}.started_at"),
            pending=None if pending is None else PendingKey.from_record(pending, f"{what}.pending"),
            secret_since=None if since is None else _int(since, f"{what}.secret_since"),
            attempts=_int(d.get("attempts", 0), f"{what}.attempts"),
            failures=_int(d.get("failures", 0), f"{what}.failures"),
            next_try=_dt(d.get("next_try"), f"{what}.next_try"),
            last_error=_opt_str(d.get("last_error"), f"{what}.last_error"),
            claimed_by=_opt_str(d.get("claimed_by"), f"{what}.claimed_by"),
            claimed_at=_dt(d.get("claimed_at"), f"{what}.claimed_at"),
            grace_until=_dt(d.get("grace_until"), f"{what}.grace_until"),
            handoff_forced=bool(d.get("handoff_forced", False)),
            acked_at=_dt(d.get("acked_at"), f"{what}.acked_at"),
        )

    def note(self, key_name: str) -> str:
        return f"{NOTE_PREFIX}{self.id}:{key_name}"

    # ------------------------------------------------------------ transitions (new records)
    @classmethod
    def planned(cls, *, rotation_id: str, reason: RotationReason, at: datetime) -> Rotation:
        """A rotation just decided: nothing created yet."""
        return cls(id=rotation_id, reason=reason, step=Step.PLANNED, started_at=at)

    def claimed(self, *, by: str, at: datetime) -> Rotation:
        """`by` is about to cause the current step's side effect (one more attempt)."""
        return replace(self, attempts=self.attempts + 1, claimed_by=by, claimed_at=at)

    def _moved_on(self, step: Step) -> Rotation:
        """At `step` with a clean slate: no attempts, no failures, no retry pending."""
        return replace(self, step=step, attempts=0, failures=0, next_try=None, last_error=None)

    def as_created(self, pending: PendingKey, *, secret_since: int) -> Rotation:
        """The new key exists; its secret is held as pending from state version `secret_since`."""
        return replace(self._moved_on(Step.CREATED), pending=pending, secret_since=secret_since)

    def as_replanned(self) -> Rotation:
        """The new key failed verification and was deleted: create again (same rotation id)."""
        return replace(self, step=Step.PLANNED, pending=None)

    def as_verified(self, pending: PendingKey) -> Rotation:
        """The new key (with the expiry Bybit gives it) matches the spec."""
        return replace(self, step=Step.VERIFIED, pending=pending, attempts=0)

    def as_promoted(self) -> Rotation:
        """Consumers read the new key: the pending secret is dropped from the state record."""
        return replace(self, step=Step.PROMOTED, pending=None, attempts=0)

    def as_handed_off(
        self, *, grace_until: datetime, forced: bool, acked_at: datetime | None
    ) -> Rotation:
        """Hooks done (or skipped: `forced`); the old key is revoked from `grace_until` on."""
        return replace(
            self._moved_on(Step.HANDED_OFF),
            grace_until=grace_until,
            handoff_forced=forced,
            acked_at=acked_at,
        )

    def as_acked(self, at: datetime) -> Rotation:
        """The consumer acknowledged the new key."""
        return replace(self, acked_at=at)

    def as_failed(self, *, error: str, retry_at: datetime) -> Rotation:
        """The current step failed once more: retry not before `retry_at`; the claim is freed."""
        return replace(
            self,
            failures=self.failures + 1,
            next_try=retry_at,
            last_error=error,
            claimed_by=None,
            claimed_at=None,
        )

    def pending_key(self) -> PendingKey:
        """The created key this step acts on; a record past create without one is corrupt."""
        if self.pending is None:
            raise StateCorrupt(
                f"rotation {self.id} is at step {self.step.value} but holds no pending key"
            )
        return self.pending


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyState:
    """The state record of one managed key."""

    active: KeyRef | None = None  # what consumers read; None before the first rotation
    previous: KeyRef | None = None  # the replaced key, until it is revoked
    rotation: Rotation | None = None
    last_rotation_at: datetime | None = None
    rotations: int = 0  # completed rotations
    token: int = 0  # the highest fencing token (account lease) that wrote this record

    def to_record(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "token": self.token,
            "active": None if self.active is None else self.active.to_record(),
            "previous": None if self.previous is None else self.previous.to_record(),
            "rotation": None if self.rotation is None else self.rotation.to_record(),
            "last_rotation_at": _ts(self.last_rotation_at),
            "rotations": self.rotations,
        }

    @classmethod
    def from_record(cls, raw: object, what: str = "state") -> Self:
        d = _dict(raw, what)
        if d.get("schema") != SCHEMA:
            raise StateCorrupt(
                f"{what}.schema is {d.get('schema')!r}; this version reads schema {SCHEMA}"
            )
        active, previous, rotation = d.get("active"), d.get("previous"), d.get("rotation")
        return cls(
            active=None if active is None else KeyRef.from_record(active, f"{what}.active"),
            previous=None if previous is None else KeyRef.from_record(previous, f"{what}.previous"),
            rotation=None
            if rotation is None
            else Rotation.from_record(rotation, f"{what}.rotation"),
            last_rotation_at=_dt(d.get("last_rotation_at"), f"{what}.last_rotation_at"),
            rotations=_int(d.get("rotations", 0), f"{what}.rotations"),
            token=_int(d.get("token", 0), f"{what}.token"),
        )

    def with_rotation(self, rotation: Rotation | None) -> KeyState:
        return replace(self, rotation=rotation)

    def with_token(self, token: int) -> KeyState:
        """Stamped by a writer holding fencing token `token` (the record keeps the highest)."""
        return replace(self, token=max(token, self.token))

    def as_promoted(self, rotation: Rotation, active: KeyRef) -> KeyState:
        """`active` is what consumers read now; the key it replaced waits for revocation."""
        return replace(self, active=active, previous=self.active, rotation=rotation.as_promoted())

    def as_adopted(self, active: KeyRef) -> KeyState:
        """A key made elsewhere is active now; the one before is kept as previous (bots may still
        use it), so it is never an orphan while kept."""
        return replace(self, active=active, previous=self.active)

    def as_completed(self, rotation: Rotation, at: datetime) -> KeyState:
        """The old key is revoked: no rotation in flight. A first key is no rotation (count)."""
        counted = rotation.reason != RotationReason.INITIAL
        return replace(
            self,
            previous=None,
            rotation=None,
            last_rotation_at=at,
            rotations=self.rotations + (1 if counted else 0),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountState:
    """What the engine remembers about a master account."""

    password_changed_at: datetime | None = None
    master_key_fp: str | None = None  # fingerprint of the master key id the expiry belongs to
    master_expires_at: datetime | None = None

    def to_record(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "password_changed_at": _ts(self.password_changed_at),
            "master_key_fp": self.master_key_fp,
            "master_expires_at": _ts(self.master_expires_at),
        }

    @classmethod
    def from_record(cls, raw: object, what: str = "account state") -> Self:
        d = _dict(raw, what)
        return cls(
            password_changed_at=_dt(d.get("password_changed_at"), f"{what}.password_changed_at"),
            master_key_fp=_opt_str(d.get("master_key_fp"), f"{what}.master_key_fp"),
            master_expires_at=_dt(d.get("master_expires_at"), f"{what}.master_expires_at"),
        )

    def with_password_change(self, at: datetime) -> AccountState:
        """The login password changed at `at` (a later change wins; an earlier one is known)."""
        if self.password_changed_at is not None and at <= self.password_changed_at:
            return self
        return replace(self, password_changed_at=at)

    def with_master(self, *, key_fp: str, expires_at: datetime | None) -> AccountState:
        """What Bybit reports about the master key now."""
        return replace(self, master_key_fp=key_fp, master_expires_at=expires_at)


@dataclass(frozen=True, slots=True)
class NoteTag:
    rotation_id: str
    key_name: str


def parse_note(note: str) -> NoteTag | None:
    """The tag our creates put in Bybit's `note`, or None for keys we did not create."""
    if not note.startswith(NOTE_PREFIX):
        return None
    rotation_id, sep, key_name = note[len(NOTE_PREFIX) :].partition(":")
    if not sep or not rotation_id or not key_name:
        return None
    return NoteTag(rotation_id=rotation_id, key_name=key_name)

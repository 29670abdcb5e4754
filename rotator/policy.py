"""Pure decisions about time: when a key expires, when to renew it, when to give up waiting.

Every function receives `now`; none reads a clock. All datetimes are aware UTC.

    created ─────────── renewal ──────── latest safe ── grace+retries ── expiry
                 (expiry - renew_before - jitter)  (expiry - grace - retry_budget)

A key is *due* from its renewal moment on. Jitter only ever moves the renewal earlier, and the
renewal never falls after the latest safe moment, so a rotation always has the grace period and the
retry budget before the old key dies. Past the latest safe moment an unfinished rotation escalates.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from rotator.drift import OnDrift
from rotator.password_change import PasswordChangeScope, awaits_forced_rotation
from rotator.retry import Backoff

MIN_BACKOFF = timedelta(seconds=30)
MAX_BACKOFF = timedelta(hours=1)
# A failed step's next try: full jitter between MIN_BACKOFF and the doubling ceiling.
STEP_BACKOFF = Backoff(
    first=MIN_BACKOFF.total_seconds(),
    cap=MAX_BACKOFF.total_seconds(),
    jitter=1.0,
    floor=MIN_BACKOFF.total_seconds(),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class RotationPolicy:
    """How early and how carefully to rotate one key. Each field is a duration."""

    renew_before: timedelta = timedelta(days=14)  # rotate this long before expiry
    grace_period: timedelta = timedelta(hours=24)  # old key lives on after hand-off
    jitter: timedelta = timedelta(hours=6)  # renewal moves earlier by up to this
    retry_budget: timedelta = timedelta(days=2)  # reserved for retries before the grace period
    key_lifetime: timedelta = timedelta(days=90)  # unbound keys when Bybit reports no expiry
    password_change_grace: timedelta = timedelta(days=7)  # keys die this long after a change
    # which keys a password change forces to rotate (rotator/password_change.py)
    password_change_scope: PasswordChangeScope = PasswordChangeScope.ALL
    on_drift: OnDrift = OnDrift.ROTATE  # a live key that differs from its spec: rotate or alert


def effective_expiry(
    *,
    reported: datetime | None,
    created_at: datetime | None,
    ip_bound: bool,
    password_changed_at: datetime | None,
    policy: RotationPolicy,
) -> datetime | None:
    """When the key stops working: Bybit's word first, policy otherwise; None = never.

    A password change caps every key it forces to rotate (created before it, within
    `password_change_scope`) at change + password_change_grace, whether or not Bybit reports it
    yet.
    """
    expiry = reported
    if expiry is None and not ip_bound and created_at is not None:
        expiry = created_at + policy.key_lifetime
    if password_changed_at is not None and awaits_forced_rotation(
        created_at=created_at,
        ip_bound=ip_bound,
        changed_at=password_changed_at,
        scope=policy.password_change_scope,
    ):
        cap = password_changed_at + policy.password_change_grace
        expiry = cap if expiry is None else min(expiry, cap)
    return expiry


def jitter_offset(seed: str, policy: RotationPolicy) -> timedelta:
    """A deterministic offset in [0, jitter): stable across restarts, spread across keys.

    `seed` is the key name plus the active key's id, so every generation of a key gets its own
    offset, and keys created in the same minute renew at different moments.
    """
    if policy.jitter <= timedelta(0):
        return timedelta(0)
    digest = int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8], "big")
    fraction = digest / 2**64
    return timedelta(seconds=policy.jitter.total_seconds() * fraction)


def latest_safe_moment(expiry: datetime, policy: RotationPolicy) -> datetime:
    """After this, a rotation started now might not finish its grace period before expiry."""
    return expiry - policy.grace_period - policy.retry_budget


def renewal_moment(expiry: datetime, seed: str, policy: RotationPolicy) -> datetime:
    """When to start rotating: renew_before (plus jitter) ahead of expiry, never after the latest
    safe moment."""
    planned = expiry - policy.renew_before - jitter_offset(seed, policy)
    return min(planned, latest_safe_moment(expiry, policy))


def due_for_rotation(
    expiry: datetime | None, seed: str, policy: RotationPolicy, now: datetime
) -> bool:
    """True from the renewal moment on; a key that never expires is never due."""
    return expiry is not None and now >= renewal_moment(expiry, seed, policy)


def is_escalated(expiry: datetime | None, policy: RotationPolicy, now: datetime) -> bool:
    """A key still waiting for its rotation past the latest safe moment needs a human's eyes."""
    return expiry is not None and now >= latest_safe_moment(expiry, policy)


def grace_end(
    handed_off_at: datetime, old_expiry: datetime | None, policy: RotationPolicy
) -> datetime:
    """When the old key may be revoked: after the grace period, but never past its own expiry."""
    end = handed_off_at + policy.grace_period
    return end if old_expiry is None else min(end, old_expiry)


def next_retry(attempts: int, seed: str, now: datetime, deadline: datetime | None) -> datetime:
    """Exponential backoff with deterministic full jitter, capped at MAX_BACKOFF and the deadline.

    `attempts` counts failures so far (1 after the first). Past the deadline, retries come at the
    minimum backoff: the key is escalated by then and every try counts.
    """
    digest = int.from_bytes(hashlib.sha256(f"{seed}:{attempts}".encode()).digest()[:8], "big")
    when = now + timedelta(seconds=STEP_BACKOFF.delay(attempts, digest / 2**64))
    if deadline is not None and when > deadline:
        when = max(deadline, now + MIN_BACKOFF) if deadline > now else now + MIN_BACKOFF
    return when

"""Pure decisions about a login password change: did one happen, and which keys must rotate.

What is known (docs/rotation.md, "Password change"; reference §11): Bybit's create-sub-api and
update-sub-api pages say that after the account's login password changes, the *non-permanent*
(IP-unbound) keys stop working 7 days later; the seed guide says API keys in general. They
disagree, so `password_change_scope` is a policy choice: `all` (the default, as the guide says:
every key created before the change rotates) or `unbound` (only IP-unbound keys rotate; a bound
key still rotates if Bybit itself reports it expiring).

Detection never relies on one source: an `expiredAt` that appears on a key that had none, or moves
earlier to within `password_change_grace` of now, is Bybit saying the key dies soon; that is read
per key (sub keys from the sub-apikeys listing, the master from query-api).
"""

from __future__ import annotations

import enum
from datetime import datetime, timedelta

# An expiry reported earlier than the one recorded by more than this counts as moved.
TOLERANCE = timedelta(minutes=1)


class PasswordChangeScope(enum.StrEnum):
    """Which keys a declared or detected password change forces to rotate."""

    ALL = "all"  # every key created before the change (the seed guide)
    UNBOUND = "unbound"  # IP-unbound keys only (Bybit's create-sub-api/update-sub-api pages)


def what_is_known(scope: PasswordChangeScope, dies: str) -> str:
    """One sentence for people: what Bybit's pages and the guide say, and what this config does.
    `dies` is when affected keys stop working, already formatted."""
    done = (
        'password_change_scope = "all": every managed key made before the change is replaced'
        if scope is PasswordChangeScope.ALL
        else 'password_change_scope = "unbound": the unbound managed keys made before the change '
        "are replaced, a bound one only if Bybit reports it expiring"
    )
    return (
        f"Bybit's pages say its IP-unbound keys stop working {dies}, the seed guide says all its "
        f"keys; {done}"
    )


def signalled_change(
    recorded: datetime | None,
    reported: datetime | None,
    now: datetime,
    grace: timedelta,
) -> datetime | None:
    """When the password changed, as far as one key's expiry tells; None if it tells nothing.

    `recorded` is the expiry we knew for this very key, `reported` what Bybit reports now. A
    password change shows as an `expiredAt` that appears (recorded None) or moves earlier, landing
    within `grace` (7 days) of now. An expiry that moves but stays far away (an IP binding removed
    in the web UI gives a bound key a 90-day expiry) is not a password change.
    """
    if reported is None:
        return None
    if recorded is not None and reported >= recorded - TOLERANCE:
        return None
    if reported > now + grace + TOLERANCE:
        return None
    return min(now, reported - grace)


def awaits_forced_rotation(
    *,
    created_at: datetime | None,
    ip_bound: bool,
    changed_at: datetime | None,
    scope: PasswordChangeScope,
) -> bool:
    """True if a password change at `changed_at` forces this key (created at `created_at`) to be
    replaced. A key of unknown age counts as created before it."""
    if changed_at is None:
        return False
    if scope is PasswordChangeScope.UNBOUND and ip_bound:
        return False
    return created_at is None or created_at < changed_at


def signalled_by_master(
    *,
    known_fp: str | None,
    known_expiry: datetime | None,
    known_change: datetime | None,
    master_fp: str,
    reported: datetime | None,
    now: datetime,
    grace: timedelta,
) -> datetime | None:
    """When the password changed, as the master key's expiry tells; None if it tells nothing new.

    Only the same master key (`known_fp`, whose expiry was `known_expiry`) can tell: a new master
    key's expiry says nothing about the old one. A change no later than the one already known
    (`known_change`) is nothing new.
    """
    if known_fp != master_fp:
        return None
    changed_at = signalled_change(known_expiry, reported, now, grace)
    if changed_at is None or (known_change is not None and changed_at <= known_change):
        return None
    return changed_at

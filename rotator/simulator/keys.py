"""The simulator's accounts and keys, and Bybit's lifetime arithmetic over them (ref §5).

`SimKey` and `Account` are the mutable state, only touched under the simulator's lock;
`KeyView` is the frozen, secret-free picture handed to callers.
"""

from __future__ import annotations

import calendar
import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from rotator.model import fingerprint

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

    from rotator.simulator.options import SimulatorOptions
    from rotator.simulator.permissions import PermissionMap

NO_EXPIRY_TEXT = "1970-01-01T00:00:00Z"
"""How Bybit renders `expiredAt` of a key that never expires (ref §3.6, IP-bound example)."""
NO_EXPIRY_DEADLINE_DAY = -2


class KeyStatus(enum.IntEnum):
    """`status` of a `sub-apikeys` item (ref §3.7)."""

    PERMANENT = 1
    EXPIRED = 2
    VALID = 3
    EXPIRING_SOON = 4


@dataclass(slots=True, kw_only=True)
class SimKey:
    """One API key. `secret` is the HMAC secret; RSA keys hold `rsa_public_key` instead."""

    api_key: str
    internal_id: str
    uid: int
    is_master: bool
    secret: str | None
    rsa_public_key_pem: str | None
    rsa_public_key: RSAPublicKey | None
    note: str
    read_only: bool
    permissions: PermissionMap
    ips: tuple[str, ...]  # empty = unbound; rendered as ["*"]
    created_at: datetime
    lifetime_expires_at: datetime | None  # from the unbound lifetime; None while IP-bound
    password_deadline: datetime | None = None  # set by a password change

    @property
    def is_ip_bound(self) -> bool:
        return bool(self.ips)

    @property
    def expires_at(self) -> datetime | None:
        """When the key stops working, or None if never."""
        moments = [m for m in (self.lifetime_expires_at, self.password_deadline) if m is not None]
        return min(moments) if moments else None

    def is_expired(self, now: datetime) -> bool:
        exp = self.expires_at
        return exp is not None and now >= exp


@dataclass(slots=True, kw_only=True)
class Account:
    uid: int
    master_uid: int | None  # None for a master account
    username: str
    sub_uids: list[int] = field(default_factory=list)


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyView:
    """What the in-process API and the control API show of a key: never its secret."""

    api_key: str
    key_fp: str
    internal_id: str
    uid: int
    is_master: bool
    kind: str  # "hmac" | "rsa"
    note: str
    read_only: bool
    permissions: dict[str, tuple[str, ...]]
    ips: tuple[str, ...]  # ("*",) when unbound
    created_at: datetime
    expires_at: datetime | None
    status: KeyStatus
    deadline_day: int

    def to_json(self) -> dict[str, object]:
        return {
            "apiKey": self.api_key,
            "keyFp": self.key_fp,
            "id": self.internal_id,
            "uid": self.uid,
            "isMaster": self.is_master,
            "kind": self.kind,
            "note": self.note,
            "readOnly": self.read_only,
            "permissions": {g: list(v) for g, v in self.permissions.items()},
            "ips": list(self.ips),
            "createdAt": rfc3339(self.created_at),
            "expiredAt": None if self.expires_at is None else rfc3339(self.expires_at),
            "status": int(self.status),
            "deadlineDay": self.deadline_day,
        }


def rfc3339(when: datetime) -> str:
    """Bybit's datetime form: `2023-05-15T03:13:24Z` (UTC, whole seconds)."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def add_months(when: datetime, months: int) -> datetime:
    """Same day and time `months` calendar months later; the day is clamped to the month's end."""
    index = when.month - 1 + months
    year, month = when.year + index // 12, index % 12 + 1
    day = min(when.day, calendar.monthrange(year, month)[1])
    return when.replace(year=year, month=month, day=day)


def lifetime_end(start: datetime, options: SimulatorOptions) -> datetime:
    """When an unbound key created (or unbound) at `start` expires."""
    if options.key_lifetime_months is not None:
        return add_months(start, options.key_lifetime_months)
    return start + options.key_lifetime


def status_of(key: SimKey, now: datetime, options: SimulatorOptions) -> KeyStatus:
    exp = key.expires_at
    if exp is None:
        return KeyStatus.PERMANENT
    if now >= exp:
        return KeyStatus.EXPIRED
    if exp - now < options.expiring_soon:
        return KeyStatus.EXPIRING_SOON
    return KeyStatus.VALID


def deadline_day_of(key: SimKey, now: datetime, options: SimulatorOptions) -> int:
    """`floor(days left)`; -2 for a key that never expires (ref §3.6, §5)."""
    exp = key.expires_at
    if exp is None:
        return NO_EXPIRY_DEADLINE_DAY
    days = (exp - now) // timedelta(days=1)
    return max(days, 0) if options.clamp_deadline_day else days


def expired_at_text(key: SimKey) -> str:
    exp = key.expires_at
    return NO_EXPIRY_TEXT if exp is None else rfc3339(exp)


def view_of(key: SimKey, now: datetime, options: SimulatorOptions) -> KeyView:
    return KeyView(
        api_key=key.api_key,
        key_fp=fingerprint(key.api_key),
        internal_id=key.internal_id,
        uid=key.uid,
        is_master=key.is_master,
        kind="rsa" if key.rsa_public_key is not None else "hmac",
        note=key.note,
        read_only=key.read_only,
        permissions=dict(key.permissions),
        ips=key.ips or ("*",),
        created_at=key.created_at,
        expires_at=key.expires_at,
        status=status_of(key, now, options),
        deadline_day=deadline_day_of(key, now, options),
    )

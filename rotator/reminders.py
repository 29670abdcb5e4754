"""Reminders for keys the service tracks but must not rotate.

Some keys cannot or must not be rotated by the service: the master key (no API mints one), keys
made by hand in the web UI (self-generated RSA keys), keys of accounts with no master key on
file. Each `[[tracked]]` entry reads its key's expiry and sends a reminder at configurable points
(default 14, 7 and 1 days before), each point once per expiry, remembered across restarts:

- master: the expiry the account's reconcile read with query-api (AccountReport.master_expires_at);
- sub_key: the master's `sub-apikeys` listing of the sub UID, the key found by its fingerprint;
- key: query-api signed by the key itself, its record {api_key, api_secret[, kind]} in Vault.

What was sent is a small record in Vault (`<prefix>/reminders/<name>`), written with
check-and-set *before* the reminder goes out: of two writers only one wins and sends, and a crash
between the write and the send loses that one reminder rather than repeating it. A new expiry
(the key was replaced by hand, or a password change moved it) starts a new round. When a key is
first seen late (5 days left), only the most urgent point crossed is sent (the 7-day one) and the
earlier points count as passed.

Before claiming a point, `run` calls the fence its caller gives for the key's account: only the
actor allowed to act for that account sends (LeaseLost: skipped, the holder sends).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from rotator.errors import (
    LeaseLost,
    PermanentError,
    RotatorError,
    StateCorrupt,
    StoreConflict,
    StoreDenied,
    TemporaryError,
)
from rotator.key_report import AccountReport
from rotator.model import Credentials, KeyKind, Secret, fingerprint
from rotator.ports import Exchange, Fence, KeyStore, no_fence

log = structlog.get_logger(__name__)

EXPIRY_TOLERANCE = timedelta(minutes=1)  # expiries closer than this are the same expiry
RECORD_SCHEMA = 1
HELD_ELSEWHERE = "another replica holds the account's lease: it sends the reminders"


class TrackedKind(enum.StrEnum):
    MASTER = "master"
    SUB_KEY = "sub_key"
    KEY = "key"


@dataclass(frozen=True, slots=True, kw_only=True)
class TrackedKey:
    """One `[[tracked]]` entry, with every path resolved."""

    name: str
    account: str
    kind: TrackedKind
    record_path: str  # <prefix>/reminders/<name>
    days_before: tuple[int, ...]  # descending, e.g. (14, 7, 1)
    master_path: str | None = None  # sub_key: the account's master key record
    sub_uid: int | None = None
    key_fp: str | None = None
    credentials_path: str | None = None  # key: the key's own record


@dataclass(frozen=True, slots=True, kw_only=True)
class ReminderRecord:
    """What was sent for one expiry. Stored at `TrackedKey.record_path`; no secret."""

    expires_at: datetime
    sent: tuple[int, ...] = ()  # points (days before) already sent or passed, descending
    last_sent_at: datetime | None = None
    last_sent_days: int | None = None

    @classmethod
    def from_record(cls, data: Mapping[str, object], where: str) -> ReminderRecord:
        try:
            expires = datetime.fromisoformat(str(data["expires_at"]))
            raw_sent = data.get("sent") or []
            sent = tuple(sorted((int(str(d)) for d in _as_list(raw_sent)), reverse=True))
            last = data.get("last_sent_at")
            last_days = data.get("last_sent_days")
            return cls(
                expires_at=expires,
                sent=sent,
                last_sent_at=datetime.fromisoformat(str(last)) if last else None,
                last_sent_days=int(str(last_days)) if last_days is not None else None,
            )
        except (KeyError, TypeError, ValueError):
            raise StateCorrupt(f"reminder record {where} is malformed; delete it") from None

    def to_record(self) -> dict[str, object]:
        return {
            "schema": RECORD_SCHEMA,
            "expires_at": self.expires_at.isoformat(),
            "sent": list(self.sent),
            "last_sent_at": self.last_sent_at.isoformat() if self.last_sent_at else None,
            "last_sent_days": self.last_sent_days,
        }


def _as_list(value: object) -> list[object]:
    if not isinstance(value, list):
        raise TypeError("not a list")
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class Reminder:
    """One reminder to send."""

    key: TrackedKey
    days_before: int  # the point reached
    expires_at: datetime
    days_left: float


@dataclass(frozen=True, slots=True, kw_only=True)
class TrackedReport:
    """One tracked key after a check, for the status page and logs."""

    name: str
    account: str
    kind: TrackedKind
    expires_at: datetime | None = None
    next_point: int | None = None  # the next reminder: days before expiry
    next_at: datetime | None = None
    last_sent_at: datetime | None = None
    last_sent_days: int | None = None
    sent_now: int | None = None  # the point sent during this check
    error: str | None = None


# ---------------------------------------------------------------------------------- decisions
def due_point(
    expires_at: datetime, days_before: Sequence[int], sent: Sequence[int], now: datetime
) -> int | None:
    """The most urgent point already reached and not yet sent, or None."""
    left = expires_at - now
    reached = [d for d in days_before if left <= timedelta(days=d)]
    if not reached or min(reached) in sent:
        return None
    return min(reached)


def next_point(
    expires_at: datetime, days_before: Sequence[int], sent: Sequence[int], now: datetime
) -> tuple[int, datetime] | None:
    """The next point still to come (days before, moment), or None when none is left."""
    waiting = [d for d in days_before if d not in sent and expires_at - timedelta(days=d) > now]
    if not waiting:
        return None
    days = max(waiting)
    return days, expires_at - timedelta(days=days)


def after_sending(
    record: ReminderRecord, point: int, days_before: Sequence[int]
) -> tuple[int, ...]:
    """Points counted as done once `point` is sent: it and every earlier (larger) one."""
    done = set(record.sent) | {d for d in days_before if d >= point}
    return tuple(sorted(done, reverse=True))


# ---------------------------------------------------------------------------------- the check
class Reminders:
    """Reads tracked keys' expiry and sends the reminders that are due."""

    def __init__(self, *, keys: Sequence[TrackedKey], store: KeyStore, exchange: Exchange) -> None:
        self.keys = tuple(keys)
        self.store = store
        self.exchange = exchange

    def run(
        self,
        now: datetime,
        accounts: Mapping[str, AccountReport],
        *,
        send: Callable[[Reminder], None],
        fence_for: Callable[[str], Fence] = lambda _account: no_fence,
    ) -> list[TrackedReport]:
        """Check every tracked key; one key's failure never stops the others."""
        reports = []
        for key in self.keys:
            with structlog.contextvars.bound_contextvars(tracked=key.name, account=key.account):
                try:
                    reports.append(self._check(key, now, accounts, send, fence_for(key.account)))
                except LeaseLost:
                    reports.append(self._report(key, error=HELD_ELSEWHERE))
                except RotatorError as exc:
                    log.warning("reminder.check_failed", error=exc.message)
                    reports.append(self._report(key, error=exc.message))
        return reports

    def _check(
        self,
        key: TrackedKey,
        now: datetime,
        accounts: Mapping[str, AccountReport],
        send: Callable[[Reminder], None],
        fence: Fence,
    ) -> TrackedReport:
        expires_at = self.expiry(key, accounts)
        if expires_at is None:
            return self._report(key)  # never expires (IP-bound, no password change)
        current = self.store.read(key.record_path)
        record = ReminderRecord(expires_at=expires_at)
        if current is not None:
            stored = ReminderRecord.from_record(current.data, key.record_path)
            if abs(stored.expires_at - expires_at) <= EXPIRY_TOLERANCE:
                record = stored
            else:
                log.info("reminder.new_expiry", expires_at=expires_at.isoformat())
                record = ReminderRecord(
                    expires_at=expires_at,
                    last_sent_at=stored.last_sent_at,
                    last_sent_days=stored.last_sent_days,
                )
        point = due_point(expires_at, key.days_before, record.sent, now)
        sent_now = None
        if point is not None:
            try:
                fence()  # only the actor allowed to act for the account claims and sends
            except LeaseLost:
                return self._report(key, expires_at=expires_at, error=HELD_ELSEWHERE)
            claimed = ReminderRecord(
                expires_at=expires_at,
                sent=after_sending(record, point, key.days_before),
                last_sent_at=now,
                last_sent_days=point,
            )
            try:
                self.store.write(
                    key.record_path, claimed.to_record(), cas=current.version if current else 0
                )
            except StoreConflict:
                log.info("reminder.claimed_elsewhere", days_before=point)
                return self._report(key, expires_at=expires_at)
            record, sent_now = claimed, point
            days_left = (expires_at - now).total_seconds() / 86400
            log.warning(
                "reminder.sent",
                days_before=point,
                days_left=round(days_left, 2),
                expires_at=expires_at.isoformat(),
            )
            send(Reminder(key=key, days_before=point, expires_at=expires_at, days_left=days_left))
        upcoming = next_point(expires_at, key.days_before, record.sent, now)
        return TrackedReport(
            name=key.name,
            account=key.account,
            kind=key.kind,
            expires_at=expires_at,
            next_point=upcoming[0] if upcoming else None,
            next_at=upcoming[1] if upcoming else None,
            last_sent_at=record.last_sent_at,
            last_sent_days=record.last_sent_days,
            sent_now=sent_now,
        )

    def expiry(self, key: TrackedKey, accounts: Mapping[str, AccountReport]) -> datetime | None:
        """The key's expiry as Bybit reports it (None: it does not expire)."""
        if key.kind is TrackedKind.MASTER:
            report = accounts.get(key.account)
            if report is None or not report.master_ok:
                reason = report.error if report is not None and report.error else "not read yet"
                raise TemporaryError(f"the master key of {key.account} could not be read: {reason}")
            return report.master_expires_at
        if key.kind is TrackedKind.SUB_KEY:
            assert key.master_path is not None and key.sub_uid is not None  # noqa: S101 (config)
            master = self._credentials(key.master_path, "master key")
            for item in self.exchange.list_sub_keys(master, key.sub_uid):
                if fingerprint(item.key_id) == key.key_fp:
                    return item.expires_at
            raise PermanentError(
                f"sub UID {key.sub_uid} has no key with key_fp {key.key_fp} (deleted or replaced "
                "by hand? update key_fp in [[tracked]])"
            )
        assert key.credentials_path is not None  # noqa: S101 (config gives a default)
        return self.exchange.query_key(self._credentials(key.credentials_path, "key")).expires_at

    def _credentials(self, path: str, what: str) -> Credentials:
        record = self.store.read(path)
        if record is None:
            raise StoreDenied(
                f"no {what} record at Vault path {path}; store {{api_key, api_secret}} there"
            )
        api_key, api_secret = record.data.get("api_key"), record.data.get("api_secret")
        if not isinstance(api_key, str) or not isinstance(api_secret, str) or not api_key:
            raise StateCorrupt(f"the record at {path} needs string fields api_key and api_secret")
        kind = KeyKind.RSA if record.data.get("kind") == "rsa" else KeyKind.HMAC
        return Credentials(api_key=api_key, secret=Secret(api_secret), kind=kind)

    @staticmethod
    def _report(
        key: TrackedKey, *, expires_at: datetime | None = None, error: str | None = None
    ) -> TrackedReport:
        return TrackedReport(
            name=key.name, account=key.account, kind=key.kind, expires_at=expires_at, error=error
        )

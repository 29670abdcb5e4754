"""`MemoryExchange`: Bybit's sub-account key endpoints in memory, as the engine sees them through
`BybitClient` (the `rotator.ports.Exchange` protocol), with the rules the engine relies on:

- a master key manages the keys of its own sub-accounts only; a sub key calling a master-only
  endpoint gets `ExchangePermissionDenied` (10005);
- a request signed by an unknown key, a wrong secret or an expired key gets `ExchangeAuthFailed`
  (10003, 10004, 33004); a key bound to IPs works only from `client_ip`;
- an account holds at most `max_keys_per_uid` (20) keys: one more is `KeyLimitReached`;
- a key without IPs expires `key_lifetime` (90 days) after it was made; a password change
  (`declare_password_change`) ends every key of the account, and of a master's subs, `grace`
  (7 days) later, whichever comes first; expiry is reported to the second, as Bybit does;
- deleting a key that is gone (or not one of the master's subs' keys) is no error, as the
  client makes it; `list_sub_keys` lists oldest first.

Time comes from the injected clock. Failures are injected per operation with `fail_next`, and
`lose_next_create_reply()` makes a create succeed but raise `ExchangeOutcomeUnknown`, as a reply
lost on the wire does; `tamper_next_create` drops a permission from the next created key.
`calls` counts calls per operation.
"""

from __future__ import annotations

import itertools
import random
import string
import threading
from collections import Counter, deque
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from rotator.errors import (
    ExchangeAuthFailed,
    ExchangeOutcomeUnknown,
    ExchangePermissionDenied,
    ExchangeRejected,
    KeyLimitReached,
    RotatorError,
)
from rotator.model import (
    CreatedKey,
    Credentials,
    ExchangeKey,
    KeySpec,
    ListedStatus,
    Permissions,
    Secret,
    SubMember,
    fingerprint,
)
from rotator.testing.faults import Faults

if TYPE_CHECKING:
    from rotator.clock import Clock

OPERATIONS = (
    "create_sub_key",
    "update_sub_key",
    "list_sub_keys",
    "query_key",
    "delete_sub_key",
    "list_sub_members",
    "server_time",
)
MAX_KEYS_PER_UID = 20
KEY_LIFETIME = timedelta(days=90)
PASSWORD_CHANGE_GRACE = timedelta(days=7)
EXPIRING_SOON = timedelta(days=7)
MASTER_PERMISSIONS: Permissions = (("Wallet", ("AccountTransfer", "SubMemberTransfer")),)
_KEY_ALPHABET = string.ascii_uppercase + string.digits
_SECRET_ALPHABET = string.ascii_letters + string.digits


@dataclass(slots=True, kw_only=True)
class _Key:
    key_id: str
    internal_id: int
    uid: int
    secret: str
    is_master: bool
    note: str
    read_only: bool
    permissions: Permissions
    ips: tuple[str, ...]  # () = unbound
    created_at: datetime
    lifetime_end: datetime | None
    password_deadline: datetime | None = None

    @property
    def expires_at(self) -> datetime | None:
        moments = [m for m in (self.lifetime_end, self.password_deadline) if m is not None]
        return min(moments) if moments else None


@dataclass(slots=True)
class _Account:
    uid: int
    master_uid: int | None
    username: str
    sub_uids: list[int] = field(default_factory=list)


class MemoryExchange:
    """A `rotator.ports.Exchange` in memory. Thread-safe."""

    def __init__(
        self,
        *,
        clock: Clock,
        seed: int = 0,
        client_ip: str = "127.0.0.1",
        max_keys_per_uid: int = MAX_KEYS_PER_UID,
        key_lifetime: timedelta = KEY_LIFETIME,
        password_change_grace: timedelta = PASSWORD_CHANGE_GRACE,
    ) -> None:
        self.clock = clock
        self.client_ip = client_ip
        self.max_keys_per_uid = max_keys_per_uid
        self.key_lifetime = key_lifetime
        self.password_change_grace = password_change_grace
        # Key ids and secrets of a fake protect nothing; reproducible runs matter more.
        self._rng = random.Random(seed)  # noqa: S311
        self._lock = threading.Lock()
        self._accounts: dict[int, _Account] = {}
        self._keys: dict[str, _Key] = {}
        self._ids = itertools.count(16651283)
        self._faults = Faults(OPERATIONS)
        self._lose_create_replies = 0
        self._tamper: deque[tuple[str, str]] = deque()
        self.calls: Counter[str] = Counter()

    # ------------------------------------------------------------------ seeding
    def add_account(
        self,
        uid: int,
        api_key: str,
        api_secret: str,
        *,
        sub_uids: tuple[int, ...] | list[int] = (),
        ips: tuple[str, ...] = (),
        created_at: datetime | None = None,
    ) -> None:
        """A master account with its master key (`ips=()`: unbound, so it expires) and subs."""
        with self._lock:
            if uid in self._accounts or any(s in self._accounts for s in sub_uids):
                raise ValueError(f"uid {uid} or one of its subs already exists")
            if api_key in self._keys:
                raise ValueError("api_key already exists")
            self._accounts[uid] = _Account(uid=uid, master_uid=None, username=f"master{uid}")
            for sub in sub_uids:
                self._accounts[sub] = _Account(uid=sub, master_uid=uid, username=f"sub{sub}")
                self._accounts[uid].sub_uids.append(sub)
            self._store_key(
                uid,
                key_id=api_key,
                secret=api_secret,
                is_master=True,
                note="master key",
                read_only=False,
                permissions=MASTER_PERMISSIONS,
                ips=ips,
                now=created_at or self.clock.now(),
            )

    def add_key(
        self,
        uid: int,
        *,
        permissions: Permissions,
        note: str = "",
        read_only: bool = False,
        ips: tuple[str, ...] = (),
        created_at: datetime | None = None,
    ) -> Credentials:
        """A key that already exists on sub `uid` (made in the web UI): its credentials."""
        with self._lock:
            account = self._accounts.get(uid)
            if account is None or account.master_uid is None:
                raise ValueError(f"{uid} is not a sub-account")
            if self._count(uid) >= self.max_keys_per_uid:
                raise ValueError(f"uid {uid} already holds {self.max_keys_per_uid} keys")
            key = self._store_key(
                uid,
                key_id=self._new_key_id(),
                secret=self._random(_SECRET_ALPHABET, 36),
                is_master=False,
                note=note,
                read_only=read_only,
                permissions=permissions,
                ips=ips,
                now=created_at or self.clock.now(),
            )
            return Credentials(api_key=key.key_id, secret=Secret(key.secret))

    def declare_password_change(self, uid: int, at: datetime | None = None) -> None:
        """The login password of `uid` changed at `at`: its keys (and a master's subs' keys)
        stop working `password_change_grace` later, unless they expire sooner."""
        with self._lock:
            account = self._accounts[uid]
            deadline = (at or self.clock.now()) + self.password_change_grace
            uids = {uid, *account.sub_uids}
            for key in self._keys.values():
                if key.uid in uids and (
                    key.password_deadline is None or deadline < key.password_deadline
                ):
                    key.password_deadline = _seconds(deadline)

    # ------------------------------------------------------------------ faults and views
    def fail_next(self, operation: str, error: RotatorError, *, times: int = 1) -> None:
        """The next `times` calls of `operation` (one of OPERATIONS) raise `error`, do nothing."""
        self._faults.fail_next(operation, error, times=times)

    def clear_failures(self) -> None:
        """Drop every failure still waiting (Bybit answers again)."""
        with self._lock:
            self._faults.clear()
            self._lose_create_replies = 0
            self._tamper.clear()

    def lose_next_create_reply(self) -> None:
        """The next create makes its key, then raises `ExchangeOutcomeUnknown` (reply lost)."""
        with self._lock:
            self._lose_create_replies += 1

    def tamper_next_create(self, drop: tuple[str, str]) -> None:
        """The next create makes a key without the permission `drop` = (group, value), as if
        Bybit changed what was asked: verification must catch it."""
        with self._lock:
            self._tamper.append(drop)

    def key_ids(self, uid: int) -> tuple[str, ...]:
        """The live keys of account `uid`, oldest first."""
        with self._lock:
            return tuple(k.key_id for k in self._of(uid))

    def keys_of(self, uid: int) -> tuple[ExchangeKey, ...]:
        """What a listing of `uid` shows, without the checks of `list_sub_keys`."""
        with self._lock:
            now = self.clock.now()
            return tuple(self._listed(k, now) for k in self._of(uid))

    # ------------------------------------------------------------------ Exchange
    def create_sub_key(self, master: Credentials, spec: KeySpec, *, note: str) -> CreatedKey:
        with self._lock:
            self._enter("create_sub_key")
            caller = self._master(master)
            self._own_sub(caller, spec.sub_uid)
            if self._count(spec.sub_uid) >= self.max_keys_per_uid:
                raise KeyLimitReached(
                    f"sub UID {spec.sub_uid} already holds {self.max_keys_per_uid} API keys"
                )
            permissions = spec.permissions
            if self._tamper:
                group, value = self._tamper.popleft()
                permissions = tuple(
                    (g, tuple(v for v in values if (g, v) != (group, value)))
                    for g, values in permissions
                )
                permissions = tuple((g, values) for g, values in permissions if values)
            key = self._store_key(
                spec.sub_uid,
                key_id=self._new_key_id(),
                secret=self._random(_SECRET_ALPHABET, 36),
                is_master=False,
                note=note,
                read_only=spec.read_only,
                permissions=permissions,
                ips=() if spec.ips == ("*",) else tuple(dict.fromkeys(spec.ips)),
                now=self.clock.now(),
            )
            if self._lose_create_replies:
                self._lose_create_replies -= 1
                raise ExchangeOutcomeUnknown(
                    "Bybit create-sub-api: no reply (connection closed); the key may exist"
                )
            return CreatedKey(
                key_id=key.key_id,
                internal_id=str(key.internal_id),
                note=key.note,
                read_only=key.read_only,
                permissions=key.permissions,
                secret=Secret(key.secret),
            )

    def list_sub_keys(self, master: Credentials, sub_uid: int) -> tuple[ExchangeKey, ...]:
        with self._lock:
            self._enter("list_sub_keys")
            self._own_sub(self._master(master), sub_uid)
            now = self.clock.now()
            return tuple(self._listed(k, now) for k in self._of(sub_uid))

    def query_key(self, creds: Credentials) -> ExchangeKey:
        with self._lock:
            self._enter("query_key")
            key = self._authenticate(creds)
            now = self.clock.now()
            account = self._accounts[key.uid]
            return replace(
                self._listed(key, now),
                status=ListedStatus.UNKNOWN,
                user_id=key.uid,
                is_master=key.is_master,
                parent_uid=account.master_uid,
            )

    def update_sub_key(
        self,
        master: Credentials,
        key_id: str,
        *,
        read_only: bool,
        ips: tuple[str, ...],
        permissions: Permissions,
    ) -> ExchangeKey:
        """update-sub-api by the master (as `BybitClient.update_sub_key`, not in the engine's
        port): binding IPs ends the key's lifetime; unbinding a bound key starts a fresh one."""
        with self._lock:
            self._enter("update_sub_key")
            caller = self._master(master)
            target = self._keys.get(key_id)
            if target is None or target.uid not in self._accounts[caller.uid].sub_uids:
                raise ExchangeRejected(
                    "Bybit update-sub-api: apikey is not a key of a sub-account of yours",
                    ret_code=10001,
                )
            bound = () if ips == ("*",) else tuple(dict.fromkeys(ips))
            if bound:
                target.lifetime_end = None
            elif target.ips:
                target.lifetime_end = _seconds(self.clock.now() + self.key_lifetime)
            target.ips = bound
            target.read_only = read_only
            target.permissions = permissions
            # The reply carries no times: the client's record of it has none either.
            return ExchangeKey(
                key_id=target.key_id,
                internal_id=str(target.internal_id),
                note=target.note,
                read_only=target.read_only,
                permissions=target.permissions,
                ips=target.ips or ("*",),
            )

    def delete_sub_key(self, master: Credentials, key_id: str) -> None:
        with self._lock:
            self._enter("delete_sub_key")
            caller = self._master(master, master_only=False)
            if not caller.is_master:
                raise ExchangeRejected(
                    "Bybit delete-sub-api: a sub key may not name another key",
                    ret_code=10001,
                )
            target = self._keys.get(key_id)
            if target is not None and target.uid in self._accounts[caller.uid].sub_uids:
                del self._keys[key_id]

    def list_sub_members(self, master: Credentials) -> tuple[SubMember, ...]:
        with self._lock:
            self._enter("list_sub_members")
            caller = self._master(master)
            return tuple(
                SubMember(uid=uid, username=self._accounts[uid].username)
                for uid in sorted(self._accounts[caller.uid].sub_uids)
            )

    def server_time(self) -> datetime:
        with self._lock:
            self._enter("server_time")
            return self.clock.now()

    # ------------------------------------------------------------------ rules
    def _enter(self, operation: str) -> None:
        self.calls[operation] += 1
        self._faults.raise_next(operation)

    def _authenticate(self, creds: Credentials) -> _Key:
        key = self._keys.get(creds.api_key)
        fp = fingerprint(creds.api_key)
        if key is None:
            raise ExchangeAuthFailed(f"Bybit: key {fp} is invalid", ret_code=10003)
        if creds.secret.reveal() != key.secret:
            raise ExchangeAuthFailed(f"Bybit: signature of key {fp} is wrong", ret_code=10004)
        if key.ips and self.client_ip not in key.ips:
            raise ExchangeAuthFailed(f"Bybit: key {fp} is bound to other IPs", ret_code=10010)
        expires = key.expires_at
        if expires is not None and self.clock.now() >= expires:
            raise ExchangeAuthFailed(f"Bybit: key {fp} has expired", ret_code=33004)
        return key

    def _master(self, creds: Credentials, *, master_only: bool = True) -> _Key:
        key = self._authenticate(creds)
        if master_only and not key.is_master:
            raise ExchangePermissionDenied(
                "Bybit: a sub-account key may not call this endpoint", ret_code=10005
            )
        return key

    def _own_sub(self, caller: _Key, sub_uid: int) -> None:
        account = self._accounts.get(sub_uid)
        if account is None or account.master_uid != caller.uid:
            raise ExchangeRejected(
                f"Bybit: {sub_uid} is not a sub-account of yours", ret_code=10001
            )

    def _of(self, uid: int) -> list[_Key]:
        return sorted((k for k in self._keys.values() if k.uid == uid), key=lambda k: k.internal_id)

    def _count(self, uid: int) -> int:
        return sum(1 for k in self._keys.values() if k.uid == uid)

    def _listed(self, key: _Key, now: datetime) -> ExchangeKey:
        expires = key.expires_at
        if expires is None:
            status, deadline_day = ListedStatus.PERMANENT, None
        else:
            deadline_day = max((expires - now) // timedelta(days=1), 0)
            if now >= expires:
                status = ListedStatus.EXPIRED
            elif expires - now < EXPIRING_SOON:
                status = ListedStatus.EXPIRING_SOON
            else:
                status = ListedStatus.VALID
        return ExchangeKey(
            key_id=key.key_id,
            internal_id=str(key.internal_id),
            note=key.note,
            read_only=key.read_only,
            permissions=key.permissions,
            ips=key.ips or ("*",),
            created_at=key.created_at,
            expires_at=expires,
            deadline_day=deadline_day,
            status=status,
        )

    def _store_key(
        self,
        uid: int,
        *,
        key_id: str,
        secret: str,
        is_master: bool,
        note: str,
        read_only: bool,
        permissions: Permissions,
        ips: tuple[str, ...],
        now: datetime,
    ) -> _Key:
        if key_id in self._keys:
            raise ValueError("api_key already exists")
        created = _seconds(now)
        key = _Key(
            key_id=key_id,
            internal_id=next(self._ids),
            uid=uid,
            secret=secret,
            is_master=is_master,
            note=note,
            read_only=read_only,
            permissions=permissions,
            ips=ips,
            created_at=created,
            lifetime_end=None if ips else _seconds(now + self.key_lifetime),
        )
        self._keys[key_id] = key
        return key

    def _random(self, alphabet: str, length: int) -> str:
        return "".join(self._rng.choice(alphabet) for _ in range(length))

    def _new_key_id(self) -> str:
        while True:
            candidate = self._random(_KEY_ALPHABET, 18)
            if candidate not in self._keys:
                return candidate


def _seconds(when: datetime) -> datetime:
    """Bybit reports times to the second."""
    return when.replace(microsecond=0)


__all__ = ["OPERATIONS", "MemoryExchange"]

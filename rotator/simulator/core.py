"""The simulated Bybit: accounts, keys and the request pipeline, independent of HTTP.

`Simulator.handle()` turns one `HttpRequest` into one `HttpReply`; `server.py` only moves bytes.
All state sits behind one lock, so server threads and a test moving the ManualClock may run at once.
The order of checks on a private request (ref §10, itself UNCONFIRMED):
headers present (10007) -> key exists (10003) -> timestamp (10002) -> signature (10004) ->
IP (10010) -> expired (33004) -> key kind / permission (10005) -> rate (10006) -> params (10001).
"""

from __future__ import annotations

import ipaddress
import itertools
import json
import random
import string
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qsl

from rotator.clock import Clock, SystemClock, to_epoch_ms
from rotator.model import fingerprint
from rotator.simulator import auth
from rotator.simulator.faults import Fault, FaultKind, Faults
from rotator.simulator.keylog import Actor, KeyEvent, KeyEventKind, wall_now
from rotator.simulator.keys import (
    Account,
    KeyView,
    SimKey,
    deadline_day_of,
    expired_at_text,
    lifetime_end,
    rfc3339,
    status_of,
    view_of,
)
from rotator.simulator.options import SimulatorOptions
from rotator.simulator.permissions import (
    DEFAULT_MASTER_PERMISSIONS,
    MANAGE_MASTER,
    MANAGE_SUB_SELF,
    InvalidPermissionsError,
    PermissionMap,
    has_any,
    parse_permissions,
    render_permissions,
)
from rotator.simulator.ratelimit import RateDecision, RateLimiter
from rotator.simulator.requestlog import RequestLogEntry

if TYPE_CHECKING:
    from rotator.simulator.server import SimulatorServer

JsonObject = dict[str, Any]

CONTROL_PREFIX = "/_sim/"
DEFAULT_SUB_PERMISSIONS: PermissionMap = {"ContractTrade": ("Order", "Position")}
_KEY_ALPHABET = string.ascii_uppercase + string.digits
_SECRET_ALPHABET = string.ascii_letters + string.digits


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpRequest:
    method: str
    path: str  # without the query string
    query: str  # raw, as received, without "?"
    headers: Mapping[str, str]  # lower-cased names
    body: bytes
    peer_ip: str


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpReply:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    action: Literal["reply", "close", "hang"] = "reply"
    """"close": drop the connection without replying; "hang": hold it, then drop it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SeededKey:
    """A key added through the in-process API. `api_secret` is None for RSA keys."""

    api_key: str
    api_secret: str | None = field(repr=False)


class BybitError(Exception):
    """A business error: HTTP 200, `retCode` != 0, `result: {}`."""

    def __init__(self, ret_code: int, ret_msg: str) -> None:
        super().__init__(f"{ret_code} {ret_msg}")
        self.ret_code = ret_code
        self.ret_msg = ret_msg


@dataclass(slots=True)
class _Call:
    """What a private request has established so far, for the reply headers and the log."""

    key: SimKey | None = None
    decision: RateDecision | None = None


Handler = Callable[[SimKey, JsonObject, datetime], JsonObject]


class Simulator:
    """A Bybit V5 API-key service in memory. See docs/simulator.md."""

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        options: SimulatorOptions | None = None,
        seed: int = 0,
    ) -> None:
        self.clock: Clock = clock or SystemClock()
        self.options = options or SimulatorOptions()
        # The simulator's key ids and secrets protect nothing; reproducible runs matter more.
        self._rng = random.Random(seed)  # noqa: S311
        self.faults = Faults(random.Random(seed + 1))  # noqa: S311
        self._lock = threading.RLock()
        self._accounts: dict[int, Account] = {}
        self._keys: dict[str, SimKey] = {}
        self._ids = itertools.count(16651283)
        self._limiter = RateLimiter()
        self._log: deque[RequestLogEntry] = deque(maxlen=self.options.request_log_size)
        self._events: deque[KeyEvent] = deque(maxlen=self.options.request_log_size)
        self._event_seq = itertools.count(1)
        self.server: SimulatorServer | None = None  # the latest one `serve()` started
        self._routes: dict[tuple[str, str], tuple[Handler, bool]] = {
            # path -> (handler, master only)
            ("POST", "/v5/user/create-sub-api"): (self._create_sub_api, True),
            ("GET", "/v5/user/query-api"): (self._query_api, False),
            ("GET", "/v5/user/sub-apikeys"): (self._sub_apikeys, True),
            ("POST", "/v5/user/update-sub-api"): (self._update_sub_api, False),
            ("POST", "/v5/user/delete-sub-api"): (self._delete_sub_api, False),
            ("GET", "/v5/user/query-sub-members"): (self._query_sub_members, True),
            ("GET", "/v5/user/submembers"): (self._submembers, True),
        }

    # ------------------------------------------------------------------ time
    def now(self) -> datetime:
        """The server's time: the injected clock plus any injected skew."""
        return self.clock.now() + self.faults.skew_offset

    # ------------------------------------------------------------------ seeding
    def add_account(
        self,
        uid: int,
        api_key: str,
        api_secret: str | None = None,
        *,
        rsa_public_key: str | None = None,
        sub_uids: Iterable[int] = (),
        ips: Sequence[str] | None = None,
        permissions: Mapping[str, Sequence[str]] | None = None,
        read_only: bool = False,
        created_at: datetime | None = None,
        username: str | None = None,
    ) -> None:
        """Add a master account, its master key (HMAC `api_secret` or `rsa_public_key` PEM) and
        its sub-accounts. `ips=None` leaves the master key unbound: it then expires like any
        unbound key. Raises ValueError on duplicates or bad values."""
        subs = list(sub_uids)
        with self._lock:
            taken = [u for u in (uid, *subs) if u in self._accounts]
            if taken or len(set(subs)) != len(subs) or uid in subs:
                raise ValueError(f"uid(s) already exist or repeat: {taken or subs}")
            self._accounts[uid] = Account(
                uid=uid, master_uid=None, username=username or f"master{uid}"
            )
            try:
                self.add_key(
                    uid,
                    api_key=api_key,
                    api_secret=api_secret,
                    rsa_public_key=rsa_public_key,
                    ips=ips,
                    permissions=permissions,
                    read_only=read_only,
                    created_at=created_at,
                    note="master key",
                )
            except ValueError:
                del self._accounts[uid]
                raise
            for sub in subs:
                self.add_sub_account(uid, sub)

    def add_sub_account(
        self, master_uid: int, sub_uid: int, *, username: str | None = None
    ) -> None:
        with self._lock:
            master = self._accounts.get(master_uid)
            if master is None or master.master_uid is not None:
                raise ValueError(f"{master_uid} is not a master account")
            if sub_uid in self._accounts:
                raise ValueError(f"uid {sub_uid} already exists")
            self._accounts[sub_uid] = Account(
                uid=sub_uid, master_uid=master_uid, username=username or f"sub{sub_uid}"
            )
            master.sub_uids.append(sub_uid)

    def add_key(
        self,
        uid: int,
        *,
        api_key: str | None = None,
        api_secret: str | None = None,
        rsa_public_key: str | None = None,
        permissions: Mapping[str, Sequence[str]] | None = None,
        ips: Sequence[str] | None = None,
        read_only: bool = False,
        note: str = "",
        created_at: datetime | None = None,
    ) -> SeededKey:
        """Add a key to an existing account (master or sub), as if made earlier in the web UI.
        Without `api_key`/`api_secret`/`rsa_public_key`, an HMAC key is generated."""
        if api_secret is not None and rsa_public_key is not None:
            raise ValueError("give api_secret or rsa_public_key, not both")
        with self._lock:
            account = self._accounts.get(uid)
            if account is None:
                raise ValueError(f"no account with uid {uid}")
            is_master = account.master_uid is None
            if api_key is not None and (api_key in self._keys or not api_key):
                raise ValueError("api_key is empty or already exists")
            if self._key_count(uid) >= self.options.max_keys_per_uid:
                raise ValueError(f"uid {uid} already holds {self.options.max_keys_per_uid} keys")
            perms = (
                parse_permissions({g: list(v) for g, v in permissions.items()}, master=is_master)
                if permissions is not None
                else dict(DEFAULT_MASTER_PERMISSIONS if is_master else DEFAULT_SUB_PERMISSIONS)
            )
            try:
                bound_ips = _parse_ips(list(ips) if ips is not None else None, self.options)
            except BybitError as exc:
                raise ValueError(exc.ret_msg) from None
            public_key = auth.load_rsa_public_key(rsa_public_key) if rsa_public_key else None
            if public_key is None and api_secret is None:
                api_secret = self._random(_SECRET_ALPHABET, 36)
            key = SimKey(
                api_key=api_key or self._new_key_id(),
                internal_id=str(next(self._ids)),
                uid=uid,
                is_master=is_master,
                secret=api_secret if public_key is None else None,
                rsa_public_key_pem=rsa_public_key,
                rsa_public_key=public_key,
                note=note,
                read_only=read_only,
                permissions=perms,
                ips=bound_ips,
                created_at=created_at or self.now(),
                lifetime_expires_at=None,
            )
            if not key.is_ip_bound:
                key.lifetime_expires_at = lifetime_end(key.created_at, self.options)
            self._keys[key.api_key] = key
            self._key_event(KeyEventKind.CREATED, key, Actor.SEED)
            return SeededKey(api_key=key.api_key, api_secret=key.secret)

    def declare_password_change(self, uid: int, at: datetime | None = None) -> list[KeyView]:
        """The login password of account `uid` changed at `at` (default: now on the sim clock).

        Keys of that account, and, for a master with `password_change_covers_subs`, the keys of
        its sub-accounts too, stop working at min(current expiry, at + grace). With
        `password_change_keys="unbound"`, IP-bound keys are spared. Returns the affected keys."""
        with self._lock:
            account = self._accounts.get(uid)
            if account is None:
                raise ValueError(f"no account with uid {uid}")
            when = at or self.now()
            deadline = when + self.options.password_change_grace
            uids = {uid}
            if account.master_uid is None and self.options.password_change_covers_subs:
                uids.update(account.sub_uids)
            affected = []
            for key in self._keys.values():
                if key.uid not in uids:
                    continue
                if self.options.password_change_keys == "unbound" and key.is_ip_bound:  # noqa: S105
                    continue
                if key.password_deadline is None or deadline < key.password_deadline:
                    key.password_deadline = deadline
                affected.append(view_of(key, self.now(), self.options))
            return affected

    # ------------------------------------------------------------------ reading state
    def keys_of(self, uid: int) -> list[KeyView]:
        """The live (not deleted) keys of one account, oldest first, without secrets."""
        with self._lock:
            now = self.now()
            return [view_of(k, now, self.options) for k in self._keys.values() if k.uid == uid]

    def key(self, api_key: str) -> KeyView | None:
        with self._lock:
            key = self._keys.get(api_key)
            return None if key is None else view_of(key, self.now(), self.options)

    def state(self) -> JsonObject:
        """Accounts and their keys as JSON (no secrets): the control API's `GET /_sim/state`."""
        with self._lock:
            return {
                "accounts": [
                    {
                        "uid": a.uid,
                        "masterUid": a.master_uid,
                        "username": a.username,
                        "subUids": list(a.sub_uids),
                        "keys": [k.to_json() for k in self.keys_of(a.uid)],
                    }
                    for a in self._accounts.values()
                ]
            }

    @property
    def request_log(self) -> list[RequestLogEntry]:
        with self._lock:
            return list(self._log)

    def clear_request_log(self) -> None:
        with self._lock:
            self._log.clear()

    @property
    def key_events(self) -> list[KeyEvent]:
        """Every key create and delete so far, oldest first (see keylog.py)."""
        with self._lock:
            return list(self._events)

    def _key_event(self, kind: KeyEventKind, key: SimKey, by: Actor) -> None:
        # Called under self._lock, right where the key appears or disappears: `seq` is the truth.
        self._events.append(
            KeyEvent(
                seq=next(self._event_seq),
                kind=kind,
                time=self.now(),
                wall_time=wall_now(),
                api_key=key.api_key,
                key_fp=fingerprint(key.api_key),
                uid=key.uid,
                note=key.note,
                by=by,
            )
        )

    def serve(self, host: str = "127.0.0.1", port: int = 0) -> SimulatorServer:
        """Listen on host:port (0: any free port) in a daemon thread. Close it with `.close()`."""
        from rotator.simulator.server import SimulatorServer  # noqa: PLC0415 -- server imports us

        self.server = SimulatorServer.start(self, host, port)
        return self.server

    @property
    def base_url(self) -> str:
        """`http://HOST:PORT` of the server `serve()` started last."""
        if self.server is None:
            raise RuntimeError("the simulator is not serving; call serve() first")
        return self.server.base_url

    # ------------------------------------------------------------------ the pipeline
    def handle(self, request: HttpRequest) -> HttpReply:
        """One request in, one reply out (or an instruction to drop the connection)."""
        if request.path.startswith(CONTROL_PREFIX) or request.path == CONTROL_PREFIX.rstrip("/"):
            from rotator.simulator.control import handle_control  # noqa: PLC0415 -- cycle

            return handle_control(self, request)
        key_header = request.headers.get("x-bapi-api-key")
        key_fp = fingerprint(key_header) if key_header else None
        path = request.path
        fault = self._pre_faults(path)
        if fault is not None and fault.kind is FaultKind.HANG:
            self._record(request, 0, None, key_fp, fault)
            return HttpReply(status=0, action="hang")
        if fault is not None:  # SERVER_ERROR
            self._record(request, fault.status, None, key_fp, fault)
            text = f"{fault.status} simulated server error\n".encode()
            return HttpReply(status=fault.status, body=text, headers=_TEXT)
        reply, ret_code, applied = self._dispatch(request)
        lost = self.faults.take(FaultKind.LOSE_RESPONSE, path)
        if lost is not None:
            self._record(request, 0, ret_code, key_fp, lost)
            return HttpReply(status=0, action="close")
        self._record(request, reply.status, ret_code, key_fp, applied)
        return reply

    def _pre_faults(self, path: str) -> Fault | None:
        delay = self.faults.take(FaultKind.DELAY, path)
        if delay is not None:
            time.sleep(delay.delay_s)
        return self.faults.take(FaultKind.HANG, path) or self.faults.take(
            FaultKind.SERVER_ERROR, path
        )

    def _record(
        self,
        request: HttpRequest,
        status: int,
        ret_code: int | None,
        key_fp: str | None,
        fault: Fault | None,
    ) -> None:
        entry = RequestLogEntry(
            time=self.now(),
            method=request.method,
            path=request.path,
            http_status=status,
            ret_code=ret_code,
            key_fp=key_fp,
            fault=fault.kind.value if fault else None,
        )
        with self._lock:
            self._log.append(entry)

    def _dispatch(self, request: HttpRequest) -> tuple[HttpReply, int | None, Fault | None]:
        if request.method == "GET" and request.path == "/v5/market/time":
            now_ms = to_epoch_ms(self.now())
            result = {"timeSecond": str(now_ms // 1000), "timeNano": str(now_ms * 1_000_000)}
            return self._envelope(0, "OK", result, now_ms, {}), 0, None
        route = self._routes.get((request.method, request.path))
        if route is None:
            now_ms = to_epoch_ms(self.now())
            reply = self._envelope(10017, "route not found", {}, now_ms, {}, status=404)
            return reply, 10017, None
        handler, master_only = route
        call = _Call()
        applied: Fault | None = None
        burst: Fault | None = None
        with self._lock:
            now = self.now()
            now_ms = to_epoch_ms(now)
            try:
                key = self._authenticate(request, now, call)
                self._require_kind(key, master_only=master_only)
                params = _params(request)
                self._check_permission(key, request.path, params)
                burst = self.faults.take(FaultKind.RATE_LIMIT, request.path)
                self._rate_limit(key, request.path, params, now_ms, call, forced=burst is not None)
                if request.path == "/v5/user/create-sub-api":
                    applied = self.faults.take(FaultKind.TAMPER_PERMISSIONS, request.path)
                    params["__tamper__"] = applied
                result = handler(key, params, now)
            except BybitError as exc:
                if exc.ret_code == 10006 and call.decision is not None and burst is not None:
                    applied = burst
                headers = self._limit_headers(call, request.path, now_ms)
                return (
                    self._envelope(exc.ret_code, exc.ret_msg, {}, now_ms, headers),
                    exc.ret_code,
                    applied,
                )
            headers = self._limit_headers(call, request.path, now_ms)
            return self._envelope(0, "", result, now_ms, headers), 0, applied

    @staticmethod
    def _envelope(
        ret_code: int,
        ret_msg: str,
        result: JsonObject,
        now_ms: int,
        headers: dict[str, str],
        *,
        status: int = 200,
    ) -> HttpReply:
        body = {
            "retCode": ret_code,
            "retMsg": ret_msg,
            "result": result,
            "retExtInfo": {},
            "time": now_ms,
        }
        return HttpReply(
            status=status,
            body=json.dumps(body, separators=(",", ":")).encode(),
            headers={"Content-Type": "application/json", **headers},
        )

    # ------------------------------------------------------------------ checks
    def _authenticate(self, request: HttpRequest, now: datetime, call: _Call) -> SimKey:
        headers = request.headers
        api_key = headers.get("x-bapi-api-key")
        timestamp = headers.get("x-bapi-timestamp")
        signature = headers.get("x-bapi-sign")
        if not api_key or timestamp is None or signature is None:
            raise BybitError(10007, "User authentication failed.")
        key = self._keys.get(api_key)
        if key is None:
            raise BybitError(10003, "API key is invalid.")
        call.key = key
        recv_window_text = headers.get("x-bapi-recv-window")
        recv_window = self.options.default_recv_window_ms
        if recv_window_text is not None:
            if not recv_window_text.isdigit():
                raise BybitError(10001, "recv_window must be a positive integer of milliseconds")
            recv_window = int(recv_window_text)
            limit = self.options.max_recv_window_ms
            if limit is not None and recv_window > limit:
                raise BybitError(10001, f"recv_window must not exceed {limit}")
        server_ms = to_epoch_ms(now)
        if not timestamp.isdigit() or not auth.timestamp_accepted(
            int(timestamp), server_ms, recv_window, self.options.future_tolerance_ms
        ):
            raise BybitError(
                10002, auth.recv_window_message(timestamp, server_ms, str(recv_window))
            )
        payload = request.query.encode("latin-1") if request.method == "GET" else request.body
        signed = auth.string_to_sign(timestamp, api_key, recv_window_text or "", payload)
        if not auth.signature_matches(key, signed, signature):
            raise BybitError(10004, auth.sign_error_message(payload))
        if key.is_ip_bound and not _ip_allowed(self.options.client_ip or request.peer_ip, key.ips):
            raise BybitError(10010, "Unmatched IP, please check your API key's bound IP addresses.")
        if key.is_expired(now):
            raise BybitError(self.options.expired_key_ret_code, self.options.expired_key_ret_msg)
        return key

    def _require_kind(self, key: SimKey, *, master_only: bool) -> None:
        if master_only and not key.is_master:
            raise BybitError(self.options.wrong_key_kind_ret_code, _NO_PERMISSION)

    def _check_permission(self, key: SimKey, path: str, params: JsonObject) -> None:
        """ref §3.0: what a key must hold to call a key-management endpoint."""
        if path not in _MANAGING or not self.options.enforce_permissions:
            return
        if key.is_master:
            if not has_any(key.permissions, MANAGE_MASTER):
                raise BybitError(self.options.wrong_key_kind_ret_code, _NO_PERMISSION)
        elif not has_any(key.permissions, MANAGE_SUB_SELF):
            raise BybitError(self.options.wrong_key_kind_ret_code, _NO_PERMISSION)
        writes = path in _WRITES
        if writes and key.read_only and not self.options.read_only_keys_can_manage:
            raise BybitError(self.options.wrong_key_kind_ret_code, _NO_PERMISSION)
        del params

    def _rate_limit(
        self, key: SimKey, path: str, params: JsonObject, now_ms: int, call: _Call, *, forced: bool
    ) -> None:
        limit = self.options.rate_limits.get(path)
        if limit is None:
            return
        uid = self._bucket_uid(key, params)
        if forced:
            call.decision = RateDecision(
                allowed=False, limit=limit, remaining=0, reset_ms=now_ms + 1000
            )
            raise BybitError(10006, "Too many visits!")
        if not self.options.rate_limits_enabled:
            call.decision = self._limiter.peek(uid, path, limit, now_ms)
            return
        call.decision = self._limiter.hit(uid, path, limit, now_ms)
        if not call.decision.allowed:
            raise BybitError(10006, "Too many visits!")

    def _bucket_uid(self, key: SimKey, params: JsonObject) -> int:
        if self.options.rate_limit_bucket == "caller" or not key.is_master:
            return key.uid
        target: object = params.get("subuid") or params.get("subMemberId")
        if isinstance(params.get("apikey"), str):
            other = self._keys.get(params["apikey"])
            target = other.uid if other else None
        try:
            uid = int(str(target))
        except ValueError:
            return key.uid
        return uid if uid in self._accounts else key.uid

    def _limit_headers(self, call: _Call, path: str, now_ms: int) -> dict[str, str]:
        if call.decision is not None:
            return call.decision.headers()
        limit = self.options.rate_limits.get(path)
        if call.key is None or limit is None:
            return {}
        return self._limiter.peek(call.key.uid, path, limit, now_ms).headers()

    # ------------------------------------------------------------------ endpoints
    def _create_sub_api(self, key: SimKey, params: JsonObject, now: datetime) -> JsonObject:
        tamper = params.pop("__tamper__", None)
        sub = self._own_sub(key, params.get("subuid"), "subuid")
        read_only = _read_only(params.get("readOnly"), required=True)
        note = params.get("note", "")
        if not isinstance(note, str):
            raise BybitError(10001, "note must be a string")
        ips = _parse_ips(params.get("ips"), self.options)
        perms = _required_permissions(params.get("permissions"))
        if self.options.auto_add_derivatives:
            perms["Derivatives"] = ("DerivativesTrade",)
        if self._key_count(sub.uid) >= self.options.max_keys_per_uid:
            raise BybitError(self.options.key_limit_ret_code, self.options.key_limit_ret_msg)
        if isinstance(tamper, Fault):
            perms = _drop_permission(perms, tamper.drop)
        new = SimKey(
            api_key=self._new_key_id(),
            internal_id=str(next(self._ids)),
            uid=sub.uid,
            is_master=False,
            secret=self._random(_SECRET_ALPHABET, 36),
            rsa_public_key_pem=None,
            rsa_public_key=None,
            note=note,
            read_only=bool(read_only),
            permissions=perms,
            ips=ips,
            created_at=now,
            lifetime_expires_at=None if ips else lifetime_end(now, self.options),
        )
        self._keys[new.api_key] = new
        self._key_event(KeyEventKind.CREATED, new, Actor.MASTER)
        return {
            "id": new.internal_id,
            "note": new.note,
            "apiKey": new.api_key,
            "readOnly": int(new.read_only),
            "secret": new.secret,
            "permissions": render_permissions(new.permissions, master=False),
        }

    def _query_api(self, key: SimKey, params: JsonObject, now: datetime) -> JsonObject:
        del params
        account = self._accounts[key.uid]
        return {
            "id": key.internal_id,
            "note": key.note,
            "apiKey": key.api_key,
            "readOnly": int(key.read_only),
            "secret": "",
            "permissions": render_permissions(key.permissions, master=key.is_master),
            "ips": list(key.ips or ("*",)),
            "type": 1,
            "deadlineDay": deadline_day_of(key, now, self.options),
            "expiredAt": expired_at_text(key),
            "createdAt": rfc3339(key.created_at),
            "unified": 0,
            "uta": 1,
            "userID": key.uid,
            "inviterID": 0,
            "vipLevel": "No VIP",
            "mktMakerLevel": "0",
            "affiliateID": 0,
            "rsaPublicKey": key.rsa_public_key_pem or "",
            "isMaster": key.is_master,
            "parentUid": str(account.master_uid or 0),
            "kycLevel": "LEVEL_DEFAULT",
            "kycRegion": "",
            "userIDInt64": str(key.uid),
            "inviterIDInt64": "0",
            "affiliateIDInt64": "0",
        }

    def _sub_apikeys(self, key: SimKey, params: JsonObject, now: datetime) -> JsonObject:
        sub = self._own_sub(key, params.get("subMemberId"), "subMemberId")
        limit = _int_param(params.get("limit"), "limit", default=20, low=1, high=20)
        cursor = params.get("cursor") or ""
        if cursor and not cursor.isdigit():
            raise BybitError(10001, "cursor is invalid")
        after = int(cursor) if cursor else 0
        keys = [k for k in self._keys.values() if k.uid == sub.uid and int(k.internal_id) > after]
        keys.sort(key=lambda k: int(k.internal_id))
        page, more = keys[:limit], len(keys) > limit
        items = [
            {
                "id": k.internal_id,
                "ips": list(k.ips or ("*",)),
                "apiKey": k.api_key,
                "note": k.note,
                "status": int(status_of(k, now, self.options)),
                "expiredAt": expired_at_text(k),
                "createdAt": rfc3339(k.created_at),
                "type": 1,
                "permissions": render_permissions(k.permissions, master=False),
                "secret": "******",
                "readOnly": k.read_only,
                "deadlineDay": deadline_day_of(k, now, self.options),
                "flag": "rsa" if k.rsa_public_key is not None else "hmac",
            }
            for k in page
        ]
        return {"result": items, "nextPageCursor": page[-1].internal_id if more else ""}

    def _target_of(self, key: SimKey, params: JsonObject) -> SimKey:
        """The update/delete-sub-api target: `apikey` for a master; a sub key acts on itself."""
        apikey = params.get("apikey")
        if not key.is_master:
            if apikey is not None:
                raise BybitError(
                    self.options.apikey_forbidden_ret_code,
                    "apikey must not be sent when a sub-account key manages itself",
                )
            return key
        if not isinstance(apikey, str) or not apikey:
            raise BybitError(10001, "apikey is required when a master key manages a sub key")
        target = self._keys.get(apikey)
        own_subs = self._accounts[key.uid].sub_uids
        if target is None or target.uid not in own_subs:
            raise BybitError(
                self.options.unknown_sub_ret_code, "apikey is not a key of a sub-account of yours"
            )
        return target

    def _update_sub_api(self, key: SimKey, params: JsonObject, now: datetime) -> JsonObject:
        target = self._target_of(key, params)
        reset = self.options.update_omitted == "reset"
        read_only = _read_only(params.get("readOnly"), required=False)
        if read_only is None and reset:
            read_only = 0
        ips: tuple[str, ...] | None = None
        if "ips" in params:
            ips = _parse_ips(params["ips"], self.options)
        elif reset:
            ips = ()
        raw_perms = params.get("permissions")
        perms = None if raw_perms is None else _required_permissions(raw_perms)
        if perms is not None and self.options.auto_add_derivatives:
            perms["Derivatives"] = ("DerivativesTrade",)
        # validated everything: apply
        if read_only is not None:
            target.read_only = bool(read_only)
        if perms is not None:
            target.permissions = perms
        if ips is not None:
            was_bound = target.is_ip_bound
            target.ips = ips
            if ips:
                target.lifetime_expires_at = None
            elif was_bound or self.options.update_unbound_resets_expiry:
                target.lifetime_expires_at = lifetime_end(now, self.options)
        return {
            "id": target.internal_id,
            "note": target.note,
            "apiKey": target.api_key,
            "readOnly": int(target.read_only),
            "secret": "",
            "permissions": render_permissions(target.permissions, master=False),
            "ips": list(target.ips or ("*",)),
        }

    def _delete_sub_api(self, key: SimKey, params: JsonObject, now: datetime) -> JsonObject:
        del now
        target = self._target_of(key, params)
        del self._keys[target.api_key]
        self._key_event(KeyEventKind.DELETED, target, Actor.MASTER if key.is_master else Actor.SELF)
        return {}

    def _query_sub_members(self, key: SimKey, params: JsonObject, now: datetime) -> JsonObject:
        del params, now
        subs = sorted(self._accounts[key.uid].sub_uids)[:1000]
        return {"subMembers": [self._member(uid) for uid in subs]}

    def _submembers(self, key: SimKey, params: JsonObject, now: datetime) -> JsonObject:
        del now
        size = _int_param(
            params.get("pageSize"),
            "pageSize",
            default=self.options.submembers_default_page_size,
            low=1,
            high=100,
        )
        cursor = params.get("nextCursor") or "0"
        if not cursor.isdigit():
            raise BybitError(10001, "nextCursor is invalid")
        subs = [u for u in sorted(self._accounts[key.uid].sub_uids) if u > int(cursor)]
        page, more = subs[:size], len(subs) > size
        return {
            "subMembers": [self._member(uid) for uid in page],
            "nextCursor": str(page[-1]) if more else "0",
        }

    # ------------------------------------------------------------------ helpers
    def _member(self, uid: int) -> JsonObject:
        account = self._accounts[uid]
        return {
            "uid": str(uid),
            "username": account.username,
            "memberType": 1,
            "status": 1,
            "accountMode": 5,
            "remark": "",
        }

    def _own_sub(self, key: SimKey, raw: object, name: str) -> Account:
        if raw is None or raw == "":
            raise BybitError(10001, f"{name} is required")
        try:
            uid = int(str(raw))
        except ValueError:
            raise BybitError(10001, f"{name} must be an integer") from None
        account = self._accounts.get(uid)
        if account is None or account.master_uid != key.uid:
            raise BybitError(
                self.options.unknown_sub_ret_code, f"{name} is not a sub-account of yours"
            )
        return account

    def _key_count(self, uid: int) -> int:
        return sum(1 for k in self._keys.values() if k.uid == uid)

    def _random(self, alphabet: str, length: int) -> str:
        return "".join(self._rng.choice(alphabet) for _ in range(length))

    def _new_key_id(self) -> str:
        while True:
            candidate = self._random(_KEY_ALPHABET, 18)
            if candidate not in self._keys:
                return candidate


_TEXT = {"Content-Type": "text/plain; charset=utf-8"}
_NO_PERMISSION = "Permission denied, please check your API key permissions."
_MANAGING = frozenset(
    {
        "/v5/user/create-sub-api",
        "/v5/user/update-sub-api",
        "/v5/user/delete-sub-api",
        "/v5/user/query-sub-members",
        "/v5/user/submembers",
    }
)
_WRITES = frozenset(
    {"/v5/user/create-sub-api", "/v5/user/update-sub-api", "/v5/user/delete-sub-api"}
)


def _params(request: HttpRequest) -> JsonObject:
    """GET: the query's parameters (last value wins). POST: the JSON body (an object)."""
    if request.method == "GET":
        return dict(parse_qsl(request.query, keep_blank_values=True))
    if not request.body.strip():
        return {}
    try:
        parsed = json.loads(request.body)
    except (ValueError, UnicodeDecodeError):
        raise BybitError(10001, "body not json") from None
    if not isinstance(parsed, dict):
        raise BybitError(10001, "body must be a JSON object")
    return parsed


def _read_only(raw: object, *, required: bool) -> int | None:
    if raw is None:
        if required:
            raise BybitError(10001, "readOnly is required")
        return None
    if isinstance(raw, bool) or raw not in (0, 1):
        raise BybitError(10001, "readOnly must be 0 or 1")
    return 1 if raw == 1 else 0


def _int_param(raw: object, name: str, *, default: int, low: int, high: int) -> int:
    if raw is None or raw == "":
        return default
    text = str(raw)
    if not text.isdigit() or not low <= int(text) <= high:
        raise BybitError(10001, f"{name} must be an integer from {low} to {high}")
    return int(text)


def _required_permissions(raw: object) -> PermissionMap:
    try:
        return parse_permissions(raw)
    except InvalidPermissionsError as exc:
        raise BybitError(10001, str(exc)) from None


def _drop_permission(perms: PermissionMap, drop: tuple[str, str] | None) -> PermissionMap:
    """The tamper fault: the same permissions with one value missing."""
    group, value = drop or (next(iter(sorted(perms))), "")
    values = perms.get(group, ())
    if not value and values:
        value = values[0]
    out = dict(perms)
    kept = tuple(v for v in values if v != value)
    if kept:
        out[group] = kept
    else:
        out.pop(group, None)
    return out


def _parse_ips(raw: object, options: SimulatorOptions) -> tuple[str, ...]:
    """`ips` as a comma-separated string (preferred) or a list. Omitted or "*" = unbound = ()."""
    if raw is None:
        return ()
    if isinstance(raw, str):
        items = [part.strip() for part in raw.split(",")]
    elif isinstance(raw, list) and all(isinstance(x, str) for x in raw):
        items = [x.strip() for x in raw]
    else:
        raise BybitError(10001, "ips must be a comma-separated string")
    items = [x for x in items if x]
    if items in ([], ["*"]):
        return ()
    if "*" in items:
        raise BybitError(10001, 'ips: "*" cannot be combined with addresses')
    for item in items:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise BybitError(10001, f"ips: {item!r} is not an IP address") from None
    unique = tuple(dict.fromkeys(items))
    if len(unique) > options.max_ips_per_key:
        raise BybitError(
            options.ip_limit_ret_code,
            f"ips: at most {options.max_ips_per_key} IP addresses per key",
        )
    return unique


def _ip_allowed(client_ip: str, bound: tuple[str, ...]) -> bool:
    try:
        address = ipaddress.ip_address(client_ip)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(entry, strict=False) for entry in bound)


__all__ = [
    "BybitError",
    "HttpReply",
    "HttpRequest",
    "SeededKey",
    "Simulator",
]

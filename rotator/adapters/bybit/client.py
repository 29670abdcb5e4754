"""`BybitClient`: Bybit's V5 user endpoints over httpx, implementing `rotator.ports.Exchange`.

One request goes through: the rate limiter (per caller key and endpoint) → `BybitAuth` (signs
the exact bytes sent, timestamp corrected by the measured clock offset) → httpx → the observer
hook → classification (`retcodes`) → parsing (`records`). Temporary failures are retried here with
exponential backoff and full jitter, honouring Bybit's reset timestamp; permanent ones are raised
at once. Only `rotator.errors` exceptions leave this module.

The create rule: POST create-sub-api is not idempotent. It is resent only when the failure proves
Bybit never acted on it: a connection that could not be opened (connect error/timeout, pool
timeout: no byte was sent) or a 10002 / 10006 reply (rejected before execution). Anything else
that is temporary (read/write timeout, dropped connection, 5xx, 10000/10016, HTTP 429/403, a
malformed or incomplete reply) may have created the key, so it becomes `ExchangeOutcomeUnknown`
at once: the engine then finds the key by its note and deletes it before creating again.

The clock: on 10002 the client measures the offset to Bybit's clock (GET /v5/market/time) and
adds it to every later timestamp, then resends.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Self, TypeVar
from urllib.parse import quote

import httpx
import structlog

from rotator.adapters.bybit import records, retcodes
from rotator.adapters.bybit.ratelimit import RateLimiter
from rotator.adapters.bybit.signing import BybitAuth, SigningError
from rotator.clock import from_epoch_ms, to_epoch_ms
from rotator.errors import (
    ExchangeAuthFailed,
    ExchangeClockSkew,
    ExchangeError,
    ExchangeOutcomeUnknown,
    ExchangeProtocolError,
    ExchangeRejected,
    ExchangeUnavailable,
    RotatorError,
    TemporaryError,
)
from rotator.model import (
    SECRET_REGISTRY,
    CreatedKey,
    Credentials,
    ExchangeKey,
    KeySpec,
    Permissions,
    SubMember,
    fingerprint,
    permissions_as_dict,
)
from rotator.retry import Backoff

if TYPE_CHECKING:
    from types import TracebackType

    from rotator.clock import Clock

log = structlog.get_logger(__name__)

T = TypeVar("T")

PATH_TIME = "/v5/market/time"
PATH_CREATE = "/v5/user/create-sub-api"
PATH_QUERY_API = "/v5/user/query-api"
PATH_SUB_KEYS = "/v5/user/sub-apikeys"
PATH_UPDATE = "/v5/user/update-sub-api"
PATH_DELETE = "/v5/user/delete-sub-api"
PATH_SUB_MEMBERS = "/v5/user/query-sub-members"
PATH_SUB_MEMBERS_PAGED = "/v5/user/submembers"

SUB_KEYS_PAGE_SIZE = 20
SUB_MEMBERS_PAGE_SIZE = 100
QUERY_SUB_MEMBERS_CAP = 1000  # query-sub-members returns at most this many: then page instead
MAX_PAGES = 1000  # a cursor chain longer than this is a broken server, not a big account

RATE_LIMIT_FALLBACK = timedelta(seconds=2)  # 10006 / 429 without a usable reset header
IP_BAN_WAIT = timedelta(minutes=10)  # HTTP 403: Bybit lifts IP bans after >= 10 minutes

_NOT_EXECUTED_TRANSPORT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
"""The connection was never established: no byte of the request reached Bybit."""

_GONE_MARKERS = ("not exist", "not found", "no such", "not a key of")
"""retMsg fragments that mean "this apikey is not (any more) a key of your subs" on delete.

Bybit's wording is undocumented; "not a key of" is what the simulator says."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestObservation:
    """One HTTP attempt, for metrics. No key ids, no secrets."""

    endpoint: str  # the path, e.g. "/v5/user/create-sub-api": a bounded label
    http_status: int | None  # None: no response (timeout, connection error)
    ret_code: int | None  # None: no parsable envelope
    limit_remaining: int | None  # X-Bapi-Limit-Status, None when absent
    duration_s: float  # wall time of the attempt, rate-limiter wait excluded


@dataclass(frozen=True, slots=True)
class _Failure:
    error: RotatorError
    not_executed: bool  # True: Bybit provably did not act on this request (safe to resend)


class BybitClient:
    """Bybit V5 user endpoints. Thread-safe: share one instance between threads."""

    def __init__(
        self,
        base_url: str,
        *,
        clock: Clock,
        sleep: Callable[[float], None] = time.sleep,
        recv_window_ms: int = 5000,
        timeout_s: float = 10.0,
        max_retries: int = 4,
        rng: random.Random | None = None,
        transport: httpx.BaseTransport | None = None,
        observer: Callable[[RequestObservation], None] | None = None,
        backoff_base_s: float = 0.5,
        backoff_cap_s: float = 30.0,
        rate_limiter: RateLimiter | None = None,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self._recv_window_ms = recv_window_ms
        self._max_retries = max_retries
        # Jitter only spreads retries; it protects nothing, so a non-crypto PRNG is right.
        self._rng = rng if rng is not None else random.Random()  # noqa: S311 - jitter, not crypto
        self._observer = observer
        # Full jitter: each delay anywhere from 0 to the doubling ceiling (rotator.retry).
        self._backoff = Backoff(first=backoff_base_s, cap=backoff_cap_s, jitter=1.0)
        self._limiter = rate_limiter or RateLimiter(clock=clock, sleep=sleep)
        self._offset = timedelta(0)  # Bybit's clock minus ours, measured after a 10002
        self._offset_lock = threading.Lock()
        self._base_url = base_url
        self._http = httpx.Client(
            base_url=base_url,
            timeout=timeout_s,
            transport=transport,
            follow_redirects=False,
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )

    def __repr__(self) -> str:
        return f"BybitClient({self._base_url!r})"

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ------------------------------------------------------------------ endpoints

    def server_time(self) -> datetime:
        """GET /v5/market/time (public): Bybit's clock, aware UTC."""
        return self._call("GET", PATH_TIME, creds=None, parse=records.server_time)

    def ping(self) -> None:
        """Readiness: Bybit answers market/time. Raises an `Exchange*` error otherwise."""
        self.server_time()

    def create_sub_key(self, master: Credentials, spec: KeySpec, *, note: str) -> CreatedKey:
        """POST create-sub-api. Resent only when provably not executed (see module docstring)."""
        body = {
            "subuid": spec.sub_uid,
            "note": note,
            "readOnly": 1 if spec.read_only else 0,
            "ips": _ips_param(spec.ips),
            "permissions": permissions_as_dict(spec.permissions),
        }
        created = self._call(
            "POST", PATH_CREATE, creds=master, body=body, parse=_ignore_time(records.created_key)
        )
        log.info(
            "bybit.key.created",
            sub_uid=spec.sub_uid,
            key_fp=fingerprint(created.key_id),
            caller_fp=fingerprint(master.api_key),
        )
        return created

    def query_key(self, creds: Credentials) -> ExchangeKey:
        """GET query-api signed by `creds`: what Bybit knows about that very key."""
        return self._call(
            "GET", PATH_QUERY_API, creds=creds, parse=_ignore_time(records.exchange_key)
        )

    def list_sub_keys(self, master: Credentials, sub_uid: int) -> tuple[ExchangeKey, ...]:
        """GET sub-apikeys for one sub UID, following `nextPageCursor` over every page."""
        return self._paginate(
            PATH_SUB_KEYS,
            master,
            {"subMemberId": str(sub_uid), "limit": SUB_KEYS_PAGE_SIZE},
            cursor_param="cursor",
            last_cursors=("",),
            parse=records.key_page,
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
        """POST update-sub-api by the master (`apikey`).

        `readOnly` and `ips` are always sent: whether Bybit keeps or resets an omitted one is
        undocumented. Idempotent (it sets values), so it is retried like a read.
        """
        body = {
            "apikey": key_id,
            "readOnly": 1 if read_only else 0,
            "ips": _ips_param(ips),
            "permissions": permissions_as_dict(permissions),
        }
        return self._call(
            "POST",
            PATH_UPDATE,
            creds=master,
            body=body,
            sensitive=(key_id,),
            parse=_ignore_time(records.exchange_key),
        )

    def delete_sub_key(self, master: Credentials, key_id: str) -> None:
        """POST delete-sub-api by the master (`apikey`). A key that is already gone is deleted.

        "Already gone" is a refusal whose retMsg says the key does not exist (`_GONE_MARKERS`:
        "not exist", "not found", "no such", "not a key of"), or 10003. 10003 is ambiguous: it is
        also what an invalid *master* key gets, so the master is checked with query-api first;
        only if the master is fine does 10003 mean the target.
        Retried like a read: a resent delete of a deleted key lands here too.
        """
        key_fp = fingerprint(key_id)
        try:
            self._call(
                "POST",
                PATH_DELETE,
                creds=master,
                body={"apikey": key_id},
                sensitive=(key_id,),
                parse=lambda _result, _time: None,
            )
        except ExchangeRejected as exc:
            if exc.ret_code == retcodes.INVALID_KEY:
                self.query_key(master)  # raises ExchangeAuthFailed if the master is the problem
            elif type(exc) is not ExchangeRejected or not _says_gone(exc.ret_msg):
                raise  # auth and permission failures are never "already gone"
            log.info("bybit.key.already_deleted", key_fp=key_fp, ret_code=exc.ret_code)
            return
        log.info("bybit.key.deleted", key_fp=key_fp, caller_fp=fingerprint(master.api_key))

    def list_sub_members(
        self, master: Credentials, *, paginated: bool = False
    ) -> tuple[SubMember, ...]:
        """Every sub UID of the master.

        query-sub-members returns at most 1,000; when it returns that many (or `paginated` is
        asked), the paginated submembers endpoint is walked instead.
        """
        if not paginated:
            members, _ = self._call(
                "GET",
                PATH_SUB_MEMBERS,
                creds=master,
                parse=_ignore_time(lambda r: records.member_page(r, cursor_field="nextCursor")),
            )
            if len(members) < QUERY_SUB_MEMBERS_CAP:
                return members
        return self._list_sub_members_paged(master)

    def _list_sub_members_paged(self, master: Credentials) -> tuple[SubMember, ...]:
        return self._paginate(
            PATH_SUB_MEMBERS_PAGED,
            master,
            {"pageSize": str(SUB_MEMBERS_PAGE_SIZE)},
            cursor_param="nextCursor",
            last_cursors=("", "0"),
            parse=lambda r: records.member_page(r, cursor_field="nextCursor"),
        )

    def _paginate(
        self,
        path: str,
        creds: Credentials,
        params: Mapping[str, object],
        *,
        cursor_param: str,
        last_cursors: tuple[str, ...],
        parse: Callable[[object], tuple[tuple[T, ...], str]],
    ) -> tuple[T, ...]:
        """Follow a cursor chain to its end. A repeated cursor or more than MAX_PAGES pages is a
        broken server, not a big account: ExchangeUnavailable rather than an endless loop."""
        items: list[T] = []
        cursor = ""
        seen: set[str] = set()
        for _ in range(MAX_PAGES):
            page_params = dict(params)
            if cursor:
                page_params[cursor_param] = cursor
            page, cursor = self._call(
                "GET", path, creds=creds, params=page_params, parse=_ignore_time(parse)
            )
            items.extend(page)
            if cursor in last_cursors:
                return tuple(items)
            if cursor in seen:
                raise ExchangeUnavailable(f"Bybit {path}: pagination cursor repeated")
            seen.add(cursor)
        raise ExchangeUnavailable(f"Bybit {path}: more than {MAX_PAGES} pages")

    # ------------------------------------------------------------------ clock

    @property
    def clock_offset(self) -> timedelta:
        """Bybit's clock minus ours, as last measured (zero until a 10002 was seen)."""
        with self._offset_lock:
            return self._offset

    def _timestamp_ms(self) -> int:
        return to_epoch_ms(self._clock.now() + self.clock_offset)

    def _to_local(self, bybit_time: datetime) -> datetime:
        return bybit_time - self.clock_offset

    def resync_clock(self) -> timedelta:
        """Measure the offset to Bybit's clock (midpoint of the round trip) and keep it."""
        before = self._clock.now()
        server = self.server_time()
        after = self._clock.now()
        offset = server - (before + (after - before) / 2)
        with self._offset_lock:
            self._offset = offset
        log.info("bybit.clock.resynced", offset_ms=offset // timedelta(milliseconds=1))
        return offset

    # ------------------------------------------------------------------ the request loop

    def _call(
        self,
        method: str,
        endpoint: str,
        *,
        creds: Credentials | None,
        parse: Callable[[object, object], T],
        params: Mapping[str, object] | None = None,
        body: Mapping[str, object] | None = None,
        sensitive: tuple[str, ...] = (),
    ) -> T:
        is_create = endpoint == PATH_CREATE
        key_fp = fingerprint(creds.api_key) if creds is not None else "-"
        hidden = (creds.api_key, *sensitive) if creds is not None else sensitive
        attempt = 0
        while True:
            attempt += 1
            outcome = self._attempt(
                method,
                endpoint,
                creds=creds,
                params=params,
                body=body,
                parse=parse,
                hidden=hidden,
                key_fp=key_fp,
            )
            if not isinstance(outcome, _Failure):
                return outcome
            error = outcome.error
            if isinstance(error, ExchangeClockSkew) and creds is None:
                # An unsigned request has no timestamp to be skewed: resyncing (through this very
                # endpoint) would recurse. Bybit's reference has no 10002 here.
                error = ExchangeProtocolError(
                    f"Bybit {endpoint}: 10002 on an unsigned request",
                    ret_code=error.ret_code,
                    http_status=error.http_status,
                )
            if is_create and isinstance(error, TemporaryError) and not outcome.not_executed:
                error = _outcome_unknown(error, endpoint=endpoint, key_fp=key_fp)
            delay_s = self._retry_delay_s(error, attempt)
            if delay_s is None:
                _log_failure(error, endpoint=endpoint, key_fp=key_fp, attempt=attempt)
                raise error
            log.warning(
                "bybit.request.retried",
                endpoint=endpoint,
                error=type(error).__name__,
                ret_code=getattr(error, "ret_code", None),
                http_status=getattr(error, "http_status", None),
                attempt=attempt,
                delay_s=round(delay_s, 3),
                key_fp=key_fp,
            )
            if isinstance(error, ExchangeClockSkew):
                self.resync_clock()
            if delay_s > 0:
                self._sleep(delay_s)

    def _retry_delay_s(self, error: RotatorError, attempt: int) -> float | None:
        """Seconds to wait before the next attempt, or None: do not retry, raise."""
        if not isinstance(error, TemporaryError) or isinstance(error, ExchangeOutcomeUnknown):
            return None
        if attempt > self._max_retries:
            return None
        if isinstance(error, ExchangeClockSkew):
            return 0.0  # the resync is the fix; a fresh timestamp goes out at once
        jitter_s = self._backoff.delay(attempt, self._rng.random())
        if error.retry_after is None:
            return jitter_s
        wait_s = max(0.0, error.retry_after.total_seconds())
        if wait_s > self._backoff.cap:
            return None  # e.g. a 10-minute IP ban: the caller reschedules with retry_after
        return max(wait_s, jitter_s)

    def _attempt(
        self,
        method: str,
        endpoint: str,
        *,
        creds: Credentials | None,
        params: Mapping[str, object] | None,
        body: Mapping[str, object] | None,
        parse: Callable[[object, object], T],
        hidden: tuple[str, ...],
        key_fp: str,
    ) -> T | _Failure:
        if creds is not None:
            self._limiter.acquire(creds.api_key, endpoint)
        request = self._build_request(method, endpoint, params=params, body=body)
        auth = (
            BybitAuth(creds, recv_window_ms=self._recv_window_ms, timestamp_ms=self._timestamp_ms)
            if creds is not None
            else None
        )
        started = time.perf_counter()
        try:
            response = self._http.send(request, auth=auth or httpx.USE_CLIENT_DEFAULT)
        except SigningError as exc:
            self._observe(endpoint, None, None, None, started)
            return _Failure(
                ExchangeAuthFailed(f"Bybit {endpoint} (key_fp={key_fp}): cannot sign: {exc}"),
                not_executed=True,
            )
        except httpx.HTTPError as exc:
            self._observe(endpoint, None, None, None, started)
            detail = SECRET_REGISTRY.scrub(str(exc))[:200] or "no detail"
            return _Failure(
                ExchangeUnavailable(
                    f"Bybit {endpoint} (key_fp={key_fp}): {type(exc).__name__}: {detail}"
                ),
                not_executed=isinstance(exc, _NOT_EXECUTED_TRANSPORT_ERRORS),
            )
        return self._handle_response(
            response,
            endpoint=endpoint,
            creds=creds,
            parse=parse,
            hidden=hidden,
            key_fp=key_fp,
            started=started,
        )

    def _handle_response(
        self,
        response: httpx.Response,
        *,
        endpoint: str,
        creds: Credentials | None,
        parse: Callable[[object, object], T],
        hidden: tuple[str, ...],
        key_fp: str,
        started: float,
    ) -> T | _Failure:
        remaining = _header_int(response.headers, "X-Bapi-Limit-Status")
        reset_local = self._reset_time(response.headers)
        if creds is not None and remaining == 0 and reset_local is not None:
            self._limiter.close_until(creds.api_key, endpoint, reset_local)

        if not 200 <= response.status_code < 300:
            self._observe(endpoint, response.status_code, None, remaining, started)
            return _Failure(
                retcodes.error_for_http_status(
                    response.status_code,
                    endpoint=endpoint,
                    key_fp=key_fp,
                    retry_after=self._http_retry_after(response.status_code, reset_local),
                ),
                not_executed=False,
            )
        envelope = _envelope(response)
        if envelope is None:
            self._observe(endpoint, response.status_code, None, remaining, started)
            return _Failure(
                ExchangeProtocolError(
                    f"Bybit {endpoint} (key_fp={key_fp}): reply is not a V5 JSON envelope",
                    http_status=response.status_code,
                ),
                not_executed=False,
            )
        ret_code, ret_msg, result, envelope_time = envelope
        self._observe(endpoint, response.status_code, ret_code, remaining, started)
        if ret_code != retcodes.OK:
            retry_after = None
            if ret_code == retcodes.RATE_LIMITED:
                retry_after = self._rate_limit_wait(reset_local)
                if creds is not None:
                    self._limiter.close_until(
                        creds.api_key, endpoint, self._clock.now() + retry_after
                    )
            return _Failure(
                retcodes.error_for_ret_code(
                    ret_code,
                    retcodes.redact_message(ret_msg, sensitive=hidden),
                    endpoint=endpoint,
                    key_fp=key_fp,
                    retry_after=retry_after,
                    is_create=endpoint == PATH_CREATE,
                ),
                not_executed=ret_code in retcodes.NOT_EXECUTED_CODES,
            )
        try:
            return parse(result, envelope_time)
        except records.MalformedReply as exc:
            detail = str(exc)
        except _PARSE_ERRORS as exc:
            # A reply shape no parser rule foresaw: still Bybit's fault, never an internal error.
            # The exception's text may quote the reply: only its class is named.
            detail = f"unreadable result ({type(exc).__name__})"
        return _Failure(
            ExchangeProtocolError(
                f"Bybit {endpoint} (key_fp={key_fp}): malformed result: {detail}",
                ret_code=ret_code,
                http_status=response.status_code,
            ),
            not_executed=False,
        )

    def _reset_time(self, headers: httpx.Headers) -> datetime | None:
        """X-Bapi-Limit-Reset-Timestamp in our clock, or None when absent or out of range."""
        reset = _header_int(headers, "X-Bapi-Limit-Reset-Timestamp")
        if reset is None:
            return None
        try:
            return self._to_local(from_epoch_ms(reset))
        except OverflowError:
            return None

    def _build_request(
        self,
        method: str,
        endpoint: str,
        *,
        params: Mapping[str, object] | None,
        body: Mapping[str, object] | None,
    ) -> httpx.Request:
        """The request with the exact bytes that get signed: a sorted query or compact JSON."""
        if method == "GET":
            query = build_query(params or {})
            url = f"{endpoint}?{query}" if query else endpoint
            return self._http.build_request("GET", url)
        content = json.dumps(dict(body or {}), separators=(",", ":")).encode()
        return self._http.build_request("POST", endpoint, content=content)

    def _rate_limit_wait(self, reset_local: datetime | None) -> timedelta:
        if reset_local is None:
            return RATE_LIMIT_FALLBACK
        wait = reset_local - self._clock.now()
        if wait <= timedelta(0):
            return RATE_LIMIT_FALLBACK
        return wait

    def _http_retry_after(self, status: int, reset_local: datetime | None) -> timedelta | None:
        if status == 403:
            return IP_BAN_WAIT
        if status == 429:
            return self._rate_limit_wait(reset_local)
        return None

    def _observe(
        self,
        endpoint: str,
        http_status: int | None,
        ret_code: int | None,
        remaining: int | None,
        started: float,
    ) -> None:
        if self._observer is None:
            return
        observation = RequestObservation(
            endpoint=endpoint,
            http_status=http_status,
            ret_code=ret_code,
            limit_remaining=remaining,
            duration_s=time.perf_counter() - started,
        )
        try:
            self._observer(observation)
        except Exception:
            log.warning("bybit.observer.failed", endpoint=endpoint, exc_info=True)


def build_query(params: Mapping[str, object]) -> str:
    """`k=v&k=v`, sorted by key, None dropped, values percent-encoded (commas kept)."""
    items = sorted((k, v) for k, v in params.items() if v is not None)
    return "&".join(f"{quote(k, safe='')}={quote(str(v), safe=',')}" for k, v in items)


def _ips_param(ips: tuple[str, ...]) -> str:
    """Bybit's `ips` request field: a comma string, "*" for an unbound key."""
    bound = [ip for ip in ips if ip and ip != "*"]
    return ",".join(bound) if bound else "*"


def _ignore_time(parse: Callable[[object], T]) -> Callable[[object, object], T]:
    return lambda result, _envelope_time: parse(result)


_PARSE_ERRORS = (
    ArithmeticError,  # OverflowError of a date past 9999, a huge number
    LookupError,
    RecursionError,
    TypeError,
    ValueError,
    AttributeError,
)
"""What a parser can raise on a reply of a shape nobody foresaw; each becomes a protocol error."""

_MAX_HEADER_DIGITS = 20


def _header_int(headers: httpx.Headers, name: str) -> int | None:
    value = headers.get(name)
    if value is None:
        return None
    text = value.strip()
    if len(text) > _MAX_HEADER_DIGITS:
        return None
    try:
        return int(text)
    except ValueError:
        return None


def _envelope(response: httpx.Response) -> tuple[int, str, object, object] | None:
    """(retCode, retMsg, result, time) of a V5 envelope, or None if the reply is not one."""
    try:
        data: Any = json.loads(response.content)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, too deep, a 5,000-digit number
        return None
    if not isinstance(data, dict):
        return None
    ret_code = data.get("retCode")
    if isinstance(ret_code, bool) or not isinstance(ret_code, int):
        return None
    ret_msg = data.get("retMsg", "")
    if not isinstance(ret_msg, str):
        ret_msg = str(ret_msg)
    return ret_code, ret_msg, data.get("result"), data.get("time")


def _says_gone(message: str | None) -> bool:
    text = (message or "").lower()
    return any(marker in text for marker in _GONE_MARKERS)


def _outcome_unknown(error: RotatorError, *, endpoint: str, key_fp: str) -> ExchangeOutcomeUnknown:
    ret_code = getattr(error, "ret_code", None)
    http_status = getattr(error, "http_status", None)
    retry_after = getattr(error, "retry_after", None)
    return ExchangeOutcomeUnknown(
        f"Bybit {endpoint} (key_fp={key_fp}): the key may have been created but the reply was "
        f"lost ({error.message}); the rotator finds it by the rotation id in its note and deletes "
        "it before creating again (nobody can hold its secret)",
        ret_code=ret_code,
        ret_msg=getattr(error, "ret_msg", None),
        http_status=http_status,
        retry_after=retry_after,
    )


def _log_failure(error: RotatorError, *, endpoint: str, key_fp: str, attempt: int) -> None:
    log.warning(
        "bybit.request.failed",
        endpoint=endpoint,
        error=type(error).__name__,
        ret_code=error.ret_code if isinstance(error, ExchangeError) else None,
        http_status=error.http_status if isinstance(error, ExchangeError) else None,
        attempt=attempt,
        key_fp=key_fp,
    )

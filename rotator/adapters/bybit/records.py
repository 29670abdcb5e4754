"""Bybit JSON → model records. Tolerant of absent optional fields, strict about wrong types.

Every function raises `MalformedReply` (never KeyError/TypeError/ValueError/OverflowError) when
the reply cannot be read; the client turns that into `ExchangeProtocolError` (or
`ExchangeOutcomeUnknown` for a create), and also catches anything else a parser might raise.
Quirks handled here:

* `readOnly` is a boolean in sub-apikeys and an integer (0/1) everywhere else: both accepted.
* `expiredAt` "1970-01-01T00:00:00Z" or `deadlineDay` -2 is Bybit's rendering of "no expiry":
  `expires_at` and `deadline_day` become None.
* RFC 3339 timestamps become aware UTC datetimes; an unparseable one is malformed (guessing
  "no expiry" would make the daemon miss a rotation).
* `ips` is a list in replies; a comma string is accepted too. Absent = unbound (`("*",)`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from rotator.clock import from_epoch_ms
from rotator.model import (
    CreatedKey,
    ExchangeKey,
    ListedStatus,
    Permissions,
    Secret,
    SubMember,
    normalize_permissions,
)

_EPOCH_ZERO = datetime(1970, 1, 1, tzinfo=UTC)
_NO_DEADLINE = -2


class MalformedReply(Exception):
    """The reply's shape is not what Bybit documents. The message names the field, never a value."""


def as_mapping(value: object, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise MalformedReply(f"{what} is not an object")
    return value


def _str(obj: Mapping[str, Any], field: str, *, default: str = "") -> str:
    value = obj.get(field)
    if value is None:
        return default
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise MalformedReply(f"{field} is not a string")


def _required_str(obj: Mapping[str, Any], field: str) -> str:
    value = _str(obj, field)
    if not value:
        raise MalformedReply(f"{field} is missing or empty")
    return value


def _int(obj: Mapping[str, Any], field: str) -> int | None:
    value = obj.get(field)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise MalformedReply(f"{field} is not an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            raise MalformedReply(f"{field} is not an integer") from None
    raise MalformedReply(f"{field} is not an integer")


def _bool(obj: Mapping[str, Any], field: str) -> bool | None:
    """A boolean that Bybit writes as true/false, 0/1 or "0"/"1" depending on the endpoint."""
    value = obj.get(field)
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if value in (0, 1, "0", "1"):
        return int(value) == 1
    raise MalformedReply(f"{field} is not a boolean")


def _permissions(obj: Mapping[str, Any]) -> Permissions:
    raw = obj.get("permissions")
    if raw is None:
        return ()
    groups = as_mapping(raw, "permissions")
    cleaned: dict[str, list[str]] = {}
    for group, values in groups.items():
        if values is None:
            continue
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise MalformedReply("permissions group is not a list of strings")
        cleaned[str(group)] = values
    return normalize_permissions(cleaned)


def _ips(obj: Mapping[str, Any]) -> tuple[str, ...]:
    raw = obj.get("ips")
    if raw is None:
        return ("*",)
    if isinstance(raw, str):
        items = [part.strip() for part in raw.split(",")]
    elif isinstance(raw, list) and all(isinstance(v, str) for v in raw):
        items = [v.strip() for v in raw]
    else:
        raise MalformedReply("ips is not a list of strings")
    ips = tuple(ip for ip in items if ip)
    return ips or ("*",)


def parse_rfc3339(value: str, field: str) -> datetime:
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise MalformedReply(f"{field} is not an RFC 3339 timestamp") from None
    if when.tzinfo is None:
        raise MalformedReply(f"{field} has no UTC offset")
    try:
        return when.astimezone(UTC)
    except OverflowError:  # e.g. 9999-12-31T23:59:59-01:00 is past the year 9999 in UTC
        raise MalformedReply(f"{field} is out of range") from None


def _timestamp(obj: Mapping[str, Any], field: str) -> datetime | None:
    value = _str(obj, field)
    if not value:
        return None
    return parse_rfc3339(value, field)


def _expiry(obj: Mapping[str, Any]) -> tuple[datetime | None, int | None]:
    deadline_day = _int(obj, "deadlineDay")
    expires_at = _timestamp(obj, "expiredAt")
    if deadline_day == _NO_DEADLINE or expires_at == _EPOCH_ZERO:
        return None, None
    return expires_at, deadline_day


def _status(obj: Mapping[str, Any]) -> ListedStatus:
    value = _int(obj, "status")
    if value is None:
        return ListedStatus.UNKNOWN
    try:
        return ListedStatus(value)
    except ValueError:
        return ListedStatus.UNKNOWN


def exchange_key(raw: object) -> ExchangeKey:
    """One item of sub-apikeys, or the result of query-api / update-sub-api."""
    obj = as_mapping(raw, "key")
    expires_at, deadline_day = _expiry(obj)
    parent_uid = _int(obj, "parentUid")
    user_id = _int(obj, "userID")
    if user_id is None:
        user_id = _int(obj, "userIDInt64")
    return ExchangeKey(
        key_id=_required_str(obj, "apiKey"),
        internal_id=_str(obj, "id"),
        note=_str(obj, "note"),
        read_only=bool(_bool(obj, "readOnly")),
        permissions=_permissions(obj),
        ips=_ips(obj),
        created_at=_timestamp(obj, "createdAt"),
        expires_at=expires_at,
        deadline_day=deadline_day,
        status=_status(obj),
        user_id=user_id,
        is_master=_bool(obj, "isMaster"),
        # "0" is how query-api says "this key belongs to the master": no parent.
        parent_uid=parent_uid or None,
    )


def created_key(raw: object) -> CreatedKey:
    """The result of create-sub-api. Without `apiKey` and `secret` the reply is useless."""
    obj = as_mapping(raw, "result")
    return CreatedKey(
        key_id=_required_str(obj, "apiKey"),
        internal_id=_str(obj, "id"),
        note=_str(obj, "note"),
        read_only=bool(_bool(obj, "readOnly")),
        permissions=_permissions(obj),
        secret=Secret(_required_str(obj, "secret")),
    )


def key_page(raw: object) -> tuple[tuple[ExchangeKey, ...], str]:
    """One sub-apikeys page: its keys and the next cursor ("" when this was the last page)."""
    obj = as_mapping(raw, "result")
    items = obj.get("result")
    if items is None:
        items = []
    if not isinstance(items, list):
        raise MalformedReply("result.result is not a list")
    return tuple(exchange_key(item) for item in items), _str(obj, "nextPageCursor")


def sub_member(raw: object) -> SubMember:
    obj = as_mapping(raw, "subMember")
    uid = _int(obj, "uid")
    if uid is None:
        raise MalformedReply("uid is missing")
    member_type = _int(obj, "memberType")
    status = _int(obj, "status")
    return SubMember(
        uid=uid,
        username=_str(obj, "username"),
        member_type=1 if member_type is None else member_type,
        status=1 if status is None else status,
    )


def member_page(raw: object, *, cursor_field: str) -> tuple[tuple[SubMember, ...], str]:
    """A query-sub-members result (no cursor) or a submembers page (`nextCursor`, "0" = end)."""
    obj = as_mapping(raw, "result")
    items = obj.get("subMembers")
    if items is None:
        items = []
    if not isinstance(items, list):
        raise MalformedReply("result.subMembers is not a list")
    return tuple(sub_member(item) for item in items), _str(obj, cursor_field)


def server_time(raw: object, envelope_time_ms: object) -> datetime:
    """market/time: `timeNano` (ns), else `timeSecond` (s), else the envelope's `time` (ms)."""
    obj = as_mapping(raw, "result")
    try:
        nanos = _int(obj, "timeNano")
        if nanos is not None:
            return _EPOCH_ZERO + timedelta(microseconds=nanos // 1000)
        seconds = _int(obj, "timeSecond")
        if seconds is not None:
            return from_epoch_ms(seconds * 1000)
        if isinstance(envelope_time_ms, int) and not isinstance(envelope_time_ms, bool):
            return from_epoch_ms(envelope_time_ms)
    except OverflowError:  # a 40-digit timeNano: no datetime holds it
        raise MalformedReply("market/time is out of range") from None
    raise MalformedReply("market/time has neither timeNano nor timeSecond")

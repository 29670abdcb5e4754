"""The simulated Bybit's V5 endpoints: what each one does once a request got through the pipeline.

`core.Simulator` owns the state (accounts, keys), authenticates, rate-limits and dispatches; a
handler here receives the authenticated caller's key, the request's parameters and the server's
time, reads and changes the simulator's state through its public methods (under its lock, which
the pipeline holds), and returns the envelope's `result` or raises `BybitError`. `ROUTES` maps
(method, path) to a handler and whether only a master key may call it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rotator.clock import to_epoch_ms
from rotator.simulator.bybit_error import BybitError, JsonObject
from rotator.simulator.faults import Fault
from rotator.simulator.keylog import Actor, KeyEventKind
from rotator.simulator.keys import (
    Account,
    SimKey,
    deadline_day_of,
    expired_at_text,
    rfc3339,
    status_of,
)
from rotator.simulator.permissions import (
    InvalidPermissionsError,
    PermissionMap,
    parse_permissions,
    render_permissions,
)

if TYPE_CHECKING:
    from datetime import datetime

    from rotator.simulator.core import Simulator
    from rotator.simulator.options import SimulatorOptions

Handler = Callable[["Simulator", SimKey, JsonObject, "datetime"], JsonObject]

TAMPER_PARAM = "__tamper__"
"""The pipeline passes a tamper fault to create-sub-api under this parameter name."""


@dataclass(frozen=True, slots=True)
class Route:
    handler: Handler
    master_only: bool


def market_time(now: datetime) -> JsonObject:
    """GET /v5/market/time: public, unsigned."""
    now_ms = to_epoch_ms(now)
    return {"timeSecond": str(now_ms // 1000), "timeNano": str(now_ms * 1_000_000)}


def create_sub_api(sim: Simulator, key: SimKey, params: JsonObject, now: datetime) -> JsonObject:
    """POST create-sub-api: a new key for one of the caller's subs; the secret is in the reply."""
    tamper = params.pop(TAMPER_PARAM, None)
    sub = _own_sub(sim, key, params.get("subuid"), "subuid")
    read_only = _read_only(params.get("readOnly"), required=True)
    note = params.get("note", "")
    if not isinstance(note, str):
        raise BybitError(10001, "note must be a string")
    ips = parse_ips(params.get("ips"), sim.options)
    perms = _required_permissions(params.get("permissions"))
    if sim.options.auto_add_derivatives:
        perms["Derivatives"] = ("DerivativesTrade",)
    if sim.key_count(sub.uid) >= sim.options.max_keys_per_uid:
        raise BybitError(sim.options.key_limit_ret_code, sim.options.key_limit_ret_msg)
    if isinstance(tamper, Fault):
        perms = _drop_permission(perms, tamper.drop)
    new = sim.mint_sub_key(
        sub.uid, note=note, read_only=bool(read_only), permissions=perms, ips=ips, now=now
    )
    return {
        "id": new.internal_id,
        "note": new.note,
        "apiKey": new.api_key,
        "readOnly": int(new.read_only),
        "secret": new.secret,
        "permissions": render_permissions(new.permissions, master=False),
    }


def query_api(sim: Simulator, key: SimKey, params: JsonObject, now: datetime) -> JsonObject:
    """GET query-api: the calling key itself."""
    del params
    account = sim.account(key.uid)
    return {
        "id": key.internal_id,
        "note": key.note,
        "apiKey": key.api_key,
        "readOnly": int(key.read_only),
        "secret": "",
        "permissions": render_permissions(key.permissions, master=key.is_master),
        "ips": list(key.ips or ("*",)),
        "type": 1,
        "deadlineDay": deadline_day_of(key, now, sim.options),
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
        "parentUid": str((account.master_uid if account else None) or 0),
        "kycLevel": "LEVEL_DEFAULT",
        "kycRegion": "",
        "userIDInt64": str(key.uid),
        "inviterIDInt64": "0",
        "affiliateIDInt64": "0",
    }


def sub_apikeys(sim: Simulator, key: SimKey, params: JsonObject, now: datetime) -> JsonObject:
    """GET sub-apikeys: one page of a sub's keys, oldest first, secrets masked."""
    sub = _own_sub(sim, key, params.get("subMemberId"), "subMemberId")
    limit = _int_param(params.get("limit"), "limit", default=20, low=1, high=20)
    cursor = params.get("cursor") or ""
    if cursor and not cursor.isdigit():
        raise BybitError(10001, "cursor is invalid")
    after = int(cursor) if cursor else 0
    keys = [k for k in sim.sim_keys(sub.uid) if int(k.internal_id) > after]
    keys.sort(key=lambda k: int(k.internal_id))
    page, more = keys[:limit], len(keys) > limit
    items = [
        {
            "id": k.internal_id,
            "ips": list(k.ips or ("*",)),
            "apiKey": k.api_key,
            "note": k.note,
            "status": int(status_of(k, now, sim.options)),
            "expiredAt": expired_at_text(k),
            "createdAt": rfc3339(k.created_at),
            "type": 1,
            "permissions": render_permissions(k.permissions, master=False),
            "secret": "******",
            "readOnly": k.read_only,
            "deadlineDay": deadline_day_of(k, now, sim.options),
            "flag": "rsa" if k.rsa_public_key is not None else "hmac",
        }
        for k in page
    ]
    return {"result": items, "nextPageCursor": page[-1].internal_id if more else ""}


def update_sub_api(sim: Simulator, key: SimKey, params: JsonObject, now: datetime) -> JsonObject:
    """POST update-sub-api: change a key's permissions, IPs or read-only flag (validate, then
    apply: a rejected request changes nothing)."""
    target = _target_of(sim, key, params)
    options = sim.options
    reset = options.update_omitted == "reset"
    read_only = _read_only(params.get("readOnly"), required=False)
    if read_only is None and reset:
        read_only = 0
    ips: tuple[str, ...] | None = None
    if "ips" in params:
        ips = parse_ips(params["ips"], options)
    elif reset:
        ips = ()
    raw_perms = params.get("permissions")
    perms = None if raw_perms is None else _required_permissions(raw_perms)
    if perms is not None and options.auto_add_derivatives:
        perms["Derivatives"] = ("DerivativesTrade",)
    # validated everything: apply
    if read_only is not None:
        target.read_only = bool(read_only)
    if perms is not None:
        target.permissions = perms
    if ips is not None:
        sim.rebind(target, ips, now)
    return {
        "id": target.internal_id,
        "note": target.note,
        "apiKey": target.api_key,
        "readOnly": int(target.read_only),
        "secret": "",
        "permissions": render_permissions(target.permissions, master=False),
        "ips": list(target.ips or ("*",)),
    }


def delete_sub_api(sim: Simulator, key: SimKey, params: JsonObject, now: datetime) -> JsonObject:
    """POST delete-sub-api: a master deletes a sub's key by `apikey`; a sub key deletes itself."""
    del now
    target = _target_of(sim, key, params)
    sim.remove_key(target, KeyEventKind.DELETED, Actor.MASTER if key.is_master else Actor.SELF)
    return {}


def query_sub_members(sim: Simulator, key: SimKey, params: JsonObject, now: datetime) -> JsonObject:
    """GET query-sub-members: the caller's first 1,000 sub UIDs."""
    del params, now
    subs = sorted(sim.sub_uids_of(key.uid))[:1000]
    return {"subMembers": [_member(sim, uid) for uid in subs]}


def submembers(sim: Simulator, key: SimKey, params: JsonObject, now: datetime) -> JsonObject:
    """GET submembers: the caller's sub UIDs, a page at a time."""
    del now
    size = _int_param(
        params.get("pageSize"),
        "pageSize",
        default=sim.options.submembers_default_page_size,
        low=1,
        high=100,
    )
    cursor = params.get("nextCursor") or "0"
    if not cursor.isdigit():
        raise BybitError(10001, "nextCursor is invalid")
    subs = [u for u in sorted(sim.sub_uids_of(key.uid)) if u > int(cursor)]
    page, more = subs[:size], len(subs) > size
    return {
        "subMembers": [_member(sim, uid) for uid in page],
        "nextCursor": str(page[-1]) if more else "0",
    }


ROUTES: dict[tuple[str, str], Route] = {
    ("POST", "/v5/user/create-sub-api"): Route(create_sub_api, master_only=True),
    ("GET", "/v5/user/query-api"): Route(query_api, master_only=False),
    ("GET", "/v5/user/sub-apikeys"): Route(sub_apikeys, master_only=True),
    ("POST", "/v5/user/update-sub-api"): Route(update_sub_api, master_only=False),
    ("POST", "/v5/user/delete-sub-api"): Route(delete_sub_api, master_only=False),
    ("GET", "/v5/user/query-sub-members"): Route(query_sub_members, master_only=True),
    ("GET", "/v5/user/submembers"): Route(submembers, master_only=True),
}


# ---------------------------------------------------------------------- parameters and helpers
def _target_of(sim: Simulator, key: SimKey, params: JsonObject) -> SimKey:
    """The update/delete-sub-api target: `apikey` for a master; a sub key acts on itself."""
    apikey = params.get("apikey")
    if not key.is_master:
        if apikey is not None:
            raise BybitError(
                sim.options.apikey_forbidden_ret_code,
                "apikey must not be sent when a sub-account key manages itself",
            )
        return key
    if not isinstance(apikey, str) or not apikey:
        raise BybitError(10001, "apikey is required when a master key manages a sub key")
    target = sim.sim_key(apikey)
    if target is None or target.uid not in sim.sub_uids_of(key.uid):
        raise BybitError(
            sim.options.unknown_sub_ret_code, "apikey is not a key of a sub-account of yours"
        )
    return target


def _member(sim: Simulator, uid: int) -> JsonObject:
    account = sim.account(uid)
    return {
        "uid": str(uid),
        "username": account.username if account else "",
        "memberType": 1,
        "status": 1,
        "accountMode": 5,
        "remark": "",
    }


def _own_sub(sim: Simulator, key: SimKey, raw: object, name: str) -> Account:
    if raw is None or raw == "":
        raise BybitError(10001, f"{name} is required")
    try:
        uid = int(str(raw))
    except ValueError:
        raise BybitError(10001, f"{name} must be an integer") from None
    account = sim.account(uid)
    if account is None or account.master_uid != key.uid:
        raise BybitError(sim.options.unknown_sub_ret_code, f"{name} is not a sub-account of yours")
    return account


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


def parse_ips(raw: object, options: SimulatorOptions) -> tuple[str, ...]:
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


__all__ = ["ROUTES", "TAMPER_PARAM", "Handler", "Route", "market_time", "parse_ips"]

"""Every behaviour of the simulator that the Bybit reference leaves open is an option here.

Defaults are the most likely real behaviour; each field names the reference section
(`/work/shared/reference/bybit-v5-api-keys.md`, "ref §N") whose UNCONFIRMED item it settles.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal

PasswordChangeKeys = Literal["all", "unbound"]
RateLimitBucket = Literal["caller", "target"]
UpdateOmitted = Literal["keep", "reset"]


def _default_rate_limits() -> dict[str, int]:
    # ref §7.1, requests per rolling second, per UID and per endpoint.
    return {
        "/v5/user/create-sub-api": 1,
        "/v5/user/update-sub-api": 5,
        "/v5/user/delete-sub-api": 5,
        "/v5/user/query-api": 10,
        "/v5/user/sub-apikeys": 10,
        "/v5/user/query-sub-members": 10,
        "/v5/user/submembers": 5,
    }


@dataclass(frozen=True, slots=True, kw_only=True)
class SimulatorOptions:
    """How the simulated Bybit behaves where the docs are silent. Durations are on the sim clock."""

    # --- key lifetime (ref §5) ---
    key_lifetime: timedelta = timedelta(days=90)
    """Lifetime of a key without IP binding. The docs say "90 days"."""
    key_lifetime_months: int | None = None
    """When set (e.g. 3), an unbound key instead expires this many *calendar months* after creation,
    same time of day: Bybit's only worked example (2023-02-15 -> 2023-05-15) fits +3 months."""
    expiring_soon: timedelta = timedelta(days=7)
    """`sub-apikeys.status` is 4 when strictly less than this is left (exactly 7 days -> 3)."""
    clamp_deadline_day: bool = True
    """After expiry `deadlineDay` would go negative; Bybit's value is unknown. True reports 0, so a
    negative number keeps meaning only the -2 "no expiry" sentinel."""
    update_unbound_resets_expiry: bool = False
    """Whether `update-sub-api` with `ips="*"` on an already unbound key restarts its lifetime
    (the web UI does, per the FAQ; the API is UNCONFIRMED). A bound->unbound change always starts a
    fresh lifetime from now."""
    update_omitted: UpdateOmitted = "keep"
    """`update-sub-api` without `readOnly`/`ips`: "keep" the current value or "reset" to the
    documented defaults (read-write, unbound). ref §3.9, UNCONFIRMED."""

    # --- password change (ref §5) ---
    password_change_grace: timedelta = timedelta(days=7)
    password_change_keys: PasswordChangeKeys = "all"  # noqa: S105 -- a choice, not a password
    """Which keys die `grace` after a password change: "all" (update-sub-api wording, and
    `deadlineDay` is documented as populated after a change) or only "unbound" ones (create-sub-api
    wording)."""
    password_change_covers_subs: bool = True
    """A change of the *master* account's password also limits its sub-accounts' keys. A sub's own
    password change always affects only that sub's keys."""

    # --- limits and their error codes (ref §5, §6) ---
    max_keys_per_uid: int = 20
    key_limit_ret_code: int = 10001
    key_limit_ret_msg: str = "The number of API keys of this account has reached the limit of 20."
    max_ips_per_key: int = 30
    ip_limit_ret_code: int = 10001
    expired_key_ret_code: int = 33004
    """Some clients report 10003 for expired keys; 33004 is the documented "api key has expired"."""
    expired_key_ret_msg: str = "Your api key has expired."
    wrong_key_kind_ret_code: int = 10005
    """A sub key on a master-only endpoint, or a key lacking a needed permission."""
    apikey_forbidden_ret_code: int = 10001
    """A sub key sending `apikey` to update/delete-sub-api (ref §3.9: "an error", code unknown)."""
    unknown_sub_ret_code: int = 10001
    """A `subuid`/`subMemberId`/`apikey` that is not (a key of) one of the caller's subs."""
    read_only_keys_can_manage: bool = False
    """Whether a read-only master key may create/update/delete keys. UNCONFIRMED; no by default."""
    enforce_permissions: bool = True
    """Require Wallet permissions on key-management endpoints as ref §3.0 lists them."""
    auto_add_derivatives: bool = False
    """ref §3.5: Bybit "adds Derivatives automatically" since 2023-09-18. Off: a key gets exactly
    the permissions asked for, which is what verification after create expects."""
    submembers_default_page_size: int = 100
    """`submembers` without `pageSize` (ref §3.3: UNCONFIRMED)."""

    # --- auth (ref §1) ---
    default_recv_window_ms: int = 5000
    max_recv_window_ms: int | None = None
    """None: no maximum (not documented in V5)."""
    future_tolerance_ms: int = 1000
    """A timestamp may lead the server by strictly less than this (ref §1.3)."""
    client_ip: str | None = None
    """The client address used for IP binding. None: the socket peer (always 127.0.0.1 in tests)."""

    # --- rate limits (ref §7) ---
    rate_limits_enabled: bool = True
    rate_limits: dict[str, int] = field(default_factory=_default_rate_limits)
    rate_limit_bucket: RateLimitBucket = "caller"
    """Whose UID a master acting on a sub is counted against: the "caller" (the master) or the
    "target" sub UID (ref §7.1: UNCONFIRMED)."""

    # --- faults ---
    hang_max_s: float = 30.0
    """A "hang" fault holds the connection at most this long (or until the server closes)."""
    request_log_size: int = 10_000

"""The permissions object of Bybit API keys (ref §4): which groups and values exist, and how
responses render them (every group listed, unused ones as `[]`)."""

from __future__ import annotations

from collections.abc import Mapping

PermissionMap = dict[str, tuple[str, ...]]
"""Group -> sorted values; only non-empty groups are stored."""

SUB_GROUPS: dict[str, frozenset[str]] = {
    "ContractTrade": frozenset({"Order", "Position"}),
    "Spot": frozenset({"SpotTrade"}),
    "Wallet": frozenset({"AccountTransfer", "SubMemberTransferList"}),
    "Options": frozenset({"OptionsTrade"}),
    "Derivatives": frozenset({"DerivativesTrade"}),
    "Exchange": frozenset({"ExchangeHistory"}),
    "Earn": frozenset({"Earn"}),
}
"""What `create-sub-api` / `update-sub-api` accept (ref §3.5, §3.9)."""

SUB_ALWAYS_EMPTY = ("BlockTrade", "Affiliate", "FiatP2P", "FiatConvertBroker", "NFT", "CopyTrading")
"""Groups a sub key's responses list, always as `[]`."""

MASTER_GROUPS: dict[str, frozenset[str]] = {
    "ContractTrade": frozenset({"Order", "Position"}),
    "Spot": frozenset({"SpotTrade"}),
    "Wallet": frozenset({"AccountTransfer", "SubMemberTransfer", "Withdraw"}),
    "Options": frozenset({"OptionsTrade"}),
    "Derivatives": frozenset({"DerivativesTrade"}),
    "Exchange": frozenset({"ExchangeHistory"}),
    "Earn": frozenset({"Earn"}),
    "BlockTrade": frozenset({"BlockTrade"}),
    "Affiliate": frozenset({"Affiliate"}),
    "FiatP2P": frozenset({"FiatP2POrder", "Advertising"}),
    "FiatBitPay": frozenset({"FaitPayOrder"}),
    "FiatConvertBroker": frozenset({"FiatConvertBrokerOrder"}),
    "BitCard": frozenset({"BitCard"}),
    "ByXPost": frozenset({"ByXPost"}),
}
MASTER_ALWAYS_EMPTY = ("FiatGlobalPay", "NFT", "CopyTrading")

DEFAULT_MASTER_PERMISSIONS: PermissionMap = {
    "ContractTrade": ("Order", "Position"),
    "Spot": ("SpotTrade",),
    "Wallet": ("AccountTransfer", "SubMemberTransfer"),
    "Options": ("OptionsTrade",),
    "Derivatives": ("DerivativesTrade",),
    "Exchange": ("ExchangeHistory",),
}
"""A seeded master key's permissions unless the seed says otherwise: enough to manage sub keys."""

MANAGE_MASTER = {"AccountTransfer", "SubMemberTransfer", "Withdraw"}
"""ref §3.0: a master needs one of AT / ST / WD (all in `Wallet`) to manage subs and their keys."""
MANAGE_SUB_SELF = {"AccountTransfer", "SubMemberTransferList"}
"""ref §3.0: a sub key managing itself needs AT or ST."""


class InvalidPermissionsError(ValueError):
    """The permissions object of a request is malformed; the message says which part."""


def parse_permissions(raw: object, *, master: bool = False) -> PermissionMap:
    """Validate a request's permissions object; at least one non-empty group is required."""
    allowed = MASTER_GROUPS if master else SUB_GROUPS
    if not isinstance(raw, Mapping):
        raise InvalidPermissionsError("permissions must be an object of group -> list of values")
    out: PermissionMap = {}
    for group, values in raw.items():
        if group not in allowed:
            raise InvalidPermissionsError(f"unknown permission group {group!r}")
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise InvalidPermissionsError(f"permissions.{group} must be a list of strings")
        bad = sorted(set(values) - allowed[group])
        if bad:
            raise InvalidPermissionsError(f"unknown value(s) {bad} in permissions.{group}")
        if values:
            out[group] = tuple(sorted(set(values)))
    if not out:
        raise InvalidPermissionsError("permissions must name at least one group with a value")
    return out


def render_permissions(perms: PermissionMap, *, master: bool) -> dict[str, list[str]]:
    """The response form: every group present, unused ones as `[]`."""
    groups = list(MASTER_GROUPS) + list(MASTER_ALWAYS_EMPTY) if master else list(SUB_GROUPS)
    if not master:
        groups += list(SUB_ALWAYS_EMPTY)
    return {group: list(perms.get(group, ())) for group in groups}


def has_any(perms: PermissionMap, wanted: set[str]) -> bool:
    return bool(wanted.intersection(perms.get("Wallet", ())))

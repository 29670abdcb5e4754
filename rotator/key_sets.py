"""`sub_uids = "all"` key sets: which sub-accounts they manage, from Bybit's list and Vault.

Used by the daemon (the lease holder, at each full reconcile) and by `rotator plan` (read only).
A sub-account Bybit lists and the set's filters select joins; one the set managed before that
Bybit no longer lists stays (reported as missing): nothing is dropped or deleted on a listing's
word.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from rotator.config import Config, KeySetConfig
from rotator.model import Credentials
from rotator.ports import Exchange, KeyStore


@dataclass(frozen=True, slots=True)
class Membership:
    key_set: str
    sub_uids: tuple[int, ...]  # what the set manages now
    missing: tuple[int, ...]  # managed before, listed by Bybit no more


def members(key_set: KeySetConfig, listed: Mapping[int, str], before: Sequence[int]) -> Membership:
    """The set's sub UIDs given Bybit's list (uid -> username) and what it managed before."""
    missing = sorted({uid for uid in before if uid not in listed})
    joined = {uid for uid, user in listed.items() if key_set.selects(uid, user)}
    return Membership(
        key_set=key_set.name, sub_uids=tuple(sorted(joined | set(missing))), missing=tuple(missing)
    )


def managed_before(cfg: Config, store: KeyStore, key_set: KeySetConfig) -> list[int]:
    """Sub UIDs the set has state records for in Vault (what it managed before this process)."""
    names = store.list_children(f"{cfg.vault.prefix}/state/")
    uids = {key_set.uid_of(n) for n in names if not n.endswith("/")}
    return sorted(uid for uid in uids if uid is not None)


def discover(
    cfg: Config,
    account: str,
    master: Credentials,
    exchange: Exchange,
    store: KeyStore,
    before: Mapping[str, Sequence[int]],
) -> list[Membership]:
    """Every "all" set of `account`: Bybit's list now, against what each managed `before`
    (a set missing from `before` is looked up in Vault's state records)."""
    sets = [s for s in cfg.discovering_sets if s.account == account]
    if not sets:
        return []
    listed = {m.uid: m.username for m in exchange.list_sub_members(master)}
    found = []
    for key_set in sets:
        earlier = before.get(key_set.name)
        if earlier is None:
            earlier = managed_before(cfg, store, key_set)
        found.append(members(key_set, listed, earlier))
    return found

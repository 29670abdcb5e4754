"""`sub_uids = "all"` key sets in the running service: joining the sub-accounts Bybit lists.

At each full reconcile the lease holder lists the master's sub-accounts (rotator/key_sets.py);
a sub-account the set's filters select joins (the daemon rebuilds its engines with the grown
config), one that disappears from the list is reported and its key stays managed: nothing is
deleted or dropped on a listing's word.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import structlog

from rotator import key_sets
from rotator.config import Config
from rotator.daemon.accounts import AccountRuntime
from rotator.errors import ConfigError, RotatorError
from rotator.key_sets import Membership
from rotator.ports import Exchange, KeyStore

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Discovery:
    """What one listing found for an account's "all" sets."""

    memberships: tuple[Membership, ...]
    changed: bool  # some set now manages other sub UIDs than the running config does


def managed_sub_uids(cfg: Config, key_set: str) -> list[int]:
    """The sub UIDs the running config manages for `key_set`, sorted."""
    return sorted(k.sub_uid for k in cfg.keys if k.key_set == key_set)


def discover(
    cfg: Config,
    account: AccountRuntime,
    *,
    exchange: Exchange,
    store: KeyStore,
    before: Mapping[str, Sequence[int]],
) -> Discovery | None:
    """List the account's sub-accounts against what each "all" set managed `before`; None (and
    logged) if the listing failed. Logs the sub-accounts that joined, left or went missing."""
    try:
        master = account.engine.master_credentials(account.name)
        found = key_sets.discover(cfg, account.name, master, exchange, store, before)
    except (ConfigError, RotatorError) as exc:
        log.error("key_set.discovery_failed", account=account.name, error=exc.message)
        return None
    changed = False
    for membership in found:
        if membership.missing:
            log.warning(
                "key_set.subs_missing",
                key_set=membership.key_set,
                sub_uids=list(membership.missing),
                action="no longer listed by Bybit; their keys stay managed, nothing is "
                "deleted: check the sub-accounts, then remove them from the set",
            )
        running = managed_sub_uids(cfg, membership.key_set)
        if list(membership.sub_uids) != running:
            changed = True
            log.info(
                "key_set.joined",
                key_set=membership.key_set,
                joined=sorted(set(membership.sub_uids) - set(running)),
                left=sorted(set(running) - set(membership.sub_uids)),
            )
    return Discovery(memberships=tuple(found), changed=changed)

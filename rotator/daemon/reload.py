"""SIGHUP: the config file read again, and what left the running config.

An invalid file is rejected and the old config keeps running. A valid one keeps the
sub-accounts the `sub_uids = "all"` sets found on Bybit so far; the daemon rebuilds its engines
from it and drops the metric series, plans and reports of the keys and accounts that left.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog

from rotator import config as config_mod
from rotator.config import Config
from rotator.errors import ConfigError, RotatorError

log = structlog.get_logger(__name__)


def reread(path: Path, found: Mapping[str, Sequence[int]]) -> Config:
    """The config in `path`, with the sub UIDs each "all" set has `found` so far."""
    cfg = config_mod.load(path)
    if cfg.discovering_sets:
        cfg = cfg.with_discovered(
            {s.name: list(found.get(s.name, [])) for s in cfg.discovering_sets}
        )
    return cfg


def reload(
    path: Path,
    found: Mapping[str, Sequence[int]],
    *,
    apply: Callable[[Config], object],
    outcome: Callable[[str], None],
) -> bool:
    """Read `path` again and `apply` it; False (logged, the old config running on) if the file
    or applying it fails. `outcome` counts "applied" or "rejected"."""
    try:
        cfg = reread(path, found)
        apply(cfg)
    except (ConfigError, RotatorError) as exc:
        log.error(
            "config.reload_rejected",
            path=str(path),
            error=exc.message,
            action="keeping the running config; fix the file and send SIGHUP again",
        )
        outcome("rejected")
        return False
    outcome("applied")
    log.info("config.reloaded", path=str(path), accounts=len(cfg.accounts), keys=len(cfg.keys))
    return True


@dataclass(frozen=True, slots=True)
class Departed:
    """What a new config no longer has."""

    series: tuple[tuple[str, str, int], ...]  # (key, account, sub UID) labels gone
    keys: tuple[str, ...]  # key names gone altogether (a key may only move)
    accounts: tuple[str, ...]  # account names gone


def departed(old: Config, new: Config) -> Departed:
    """The key labels, key names and accounts of `old` that `new` no longer has."""
    current = {(k.name, k.account, k.sub_uid) for k in new.keys}
    names = {k.name for k in new.keys}
    accounts = {a.name for a in new.accounts}
    gone = [(k.name, k.account, k.sub_uid) for k in old.keys]
    return Departed(
        series=tuple(labels for labels in gone if labels not in current),
        keys=tuple(name for name, *_ in gone if name not in names),
        accounts=tuple(a.name for a in old.accounts if a.name not in accounts),
    )

"""Drift: how a live key differs from the spec the config declares for it.

Compared on what Bybit reports (the sub-apikeys listing for a live key, no extra call; query-api
for a freshly created one): permissions, IP binding, read-only. Someone added a permission in the
web UI, or the operator changed the config: either way the live key is not what the config says.
`[policy] on_drift` decides what happens (docs/rotation.md, "Drift").
"""

from __future__ import annotations

import enum
from datetime import timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rotator.model import ExchangeKey, KeySpec

# Groups Bybit adds to a key on its own (reference §3.5): never a mismatch.
AUTO_ADDED_GROUPS = frozenset({"Derivatives"})
# A key rotated for drift less than this long ago is not rotated for drift again: a drift that
# survives its own rotation is a Bybit quirk or a bug, and rotating in a loop would not fix it.
DRIFT_ROTATION_MIN_GAP = timedelta(days=1)


class OnDrift(enum.StrEnum):
    """What a drifted active key leads to."""

    ROTATE = "rotate"  # rotate to the declared spec (reason spec_changed), and report it
    ALERT = "alert"  # only report it (status, rotator_key_drift, RotatorKeyDrift)


def spec_mismatches(spec: KeySpec, info: ExchangeKey) -> list[str]:
    """What differs between the spec and Bybit's description of a key: permissions, IPs,
    read-only. Empty when the key is what the config declares."""
    problems = []
    wanted = dict(spec.permissions)
    got = dict(info.permissions)
    for group, values in wanted.items():
        missing = set(values) - set(got.get(group, ()))
        if missing:
            problems.append(f"permission {group} lacks {sorted(missing)}")
    for group, values in got.items():
        extra = set(values) - set(wanted.get(group, ()))
        if extra and group not in AUTO_ADDED_GROUPS:
            problems.append(f"unexpected permission {group} {sorted(extra)}")
    if info.read_only != spec.read_only:
        problems.append(f"readOnly is {int(info.read_only)}, wanted {int(spec.read_only)}")
    want_ips = set(spec.ips) if spec.is_ip_bound else {"*"}
    got_ips = set(info.ips) or {"*"}
    if got_ips != want_ips:
        problems.append(f"IPs are {sorted(got_ips)}, wanted {sorted(want_ips)}")
    return problems

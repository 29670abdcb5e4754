"""A virtual-time soak: many keys, months of simulated time, a password change, random faults.

Used by tests/engine/test_soak.py (one simulated year in CI) and bench/soak.py (longer runs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from rig import Rig
from rotator.state import parse_note


@dataclass
class SoakStats:
    reconciles: int = 0
    rotations: dict[str, int] = field(default_factory=dict)
    failures: int = 0
    min_margin: timedelta = timedelta.max  # smallest time-to-expiry of any key consumers read
    virtual_days: float = 0.0
    password_changes_detected: int = 0
    password_change_rotations: int = 0


def soak(
    rig: Rig,
    *,
    keys_per_sub: int,
    days: int,
    fault_rate: float,
    password_change_day: int | None,
    seed_faults: bool = True,
) -> SoakStats:
    for uid in (2001, 2002):
        for i in range(keys_per_sub):
            rig.add_key(f"k{uid}-{i}", uid)
    engine = rig.engine()
    start = rig.clock.now()
    end = start + timedelta(days=days)
    stats = SoakStats()
    if seed_faults and fault_rate > 0:
        rig.sim.faults.server_errors(rate=fault_rate)
    changed = replaced = False
    while rig.clock.now() < end:
        now = rig.clock.now()
        if (
            password_change_day is not None
            and not changed
            and now >= start + timedelta(days=password_change_day)
        ):
            rig.sim.declare_password_change(1000)
            changed = True
        if changed and not replaced and now >= start + timedelta(days=password_change_day + 2):
            # The operator makes a new master key in the web UI and stores it in Vault.
            new = rig.sim.add_key(
                1000,
                ips=["127.0.0.1"],
                permissions={"Wallet": ["AccountTransfer", "SubMemberTransfer"]},
            )
            path = f"{rig.prefix}/accounts/main/master"
            current = rig.store.read(path)
            rig.store.write(
                path,
                {"api_key": new.api_key, "api_secret": new.api_secret},
                cas=current.version if current else 0,
            )
            replaced = True
        result = engine.reconcile()
        stats.reconciles += 1
        stats.failures += sum(1 for k in result.keys if k.failure)
        stats.password_changes_detected += sum(
            1 for a in result.accounts if a.password_change_detected_now
        )
        stats.password_change_rotations += sum(
            1 for k in result.keys if k.rotation_reason == "password_change"
        )
        check_invariants(rig, stats)
        nxt = result.next_due or (now + timedelta(days=1))
        step = min(max(nxt - rig.clock.now(), timedelta(minutes=1)), timedelta(days=2))
        rig.clock.advance(step)
    for key in rig.keys:
        stats.rotations[key.name] = rig.state(key.name).rotations
    stats.virtual_days = (rig.clock.now() - start) / timedelta(days=1)
    return stats


def check_invariants(rig: Rig, stats: SoakStats) -> None:
    """Every key a consumer reads is alive on Bybit and not expired."""
    now = rig.clock.now()
    for key in rig.keys:
        record = rig.store.read(key.consumer_path)
        if record is None:
            continue  # not created yet (first reconcile hit a fault)
        live = rig.sim.key(record.data["api_key"])
        assert live is not None, f"{key.name}: consumers read a key Bybit no longer has"
        if live.expires_at is not None:
            margin = live.expires_at - now
            stats.min_margin = min(stats.min_margin, margin)
            assert margin > timedelta(0), f"{key.name}: consumers read an expired key"


def orphans(rig: Rig) -> list[str]:
    managed = {rig.consumer(k.name)["api_key"] for k in rig.keys}
    return [
        k.api_key
        for uid in (2001, 2002)
        for k in rig.sim.keys_of(uid)
        if parse_note(k.note) and k.api_key not in managed
    ]

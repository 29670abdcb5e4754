"""A lease that needs no Vault, and a ManagedAccount around it, for the daemon's pure parts."""

from __future__ import annotations

from rotator.daemon.accounts import ManagedAccount


class FakeLease:
    """An AccountLease that grants what `free` says; records what it was asked."""

    def __init__(self, *, held=False, free=True, holder=None):
        self.held = held
        self.free = free
        self.holder = holder
        self.asked: list[tuple[bool, float]] = []
        self.released = 0

    def holds(self):
        return self.held

    def step(self, *, may_acquire=True, patience_s=0.0):
        self.asked.append((may_acquire, patience_s))
        if not self.held and may_acquire and self.free:
            self.held = True
        return self.held

    def release(self):
        self.released += 1
        self.held = False


def account(name, lease, *, keys=(), busy_since=None) -> ManagedAccount:
    return ManagedAccount(
        name=name,
        engine=None,
        keys=keys,
        lease=lease,
        intents=None,
        snapshot_path=f"snapshots/{name}",
        busy_since=busy_since,
    )

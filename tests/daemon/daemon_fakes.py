"""A lease that needs no Vault, and a AccountRuntime around it, for the daemon's pure parts."""

from __future__ import annotations

from rotator.daemon.accounts import AccountRuntime
from rotator.errors import LeaseLost
from rotator.ports import Versioned


class FakeLease:
    """An AccountLease that grants what `free` says; records what it was asked."""

    def __init__(self, *, held=False, free=True, holder=None, token=None):
        self.held = held
        self.token = token
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

    def fence(self):
        if not self.held:
            raise LeaseLost("not held")

    def release(self):
        self.released += 1
        self.held = False


def account(name, lease, *, keys=(), busy_since=None) -> AccountRuntime:
    return AccountRuntime(
        name=name,
        engine=None,
        keys=keys,
        lease=lease,
        intents=None,
        snapshot_path=f"snapshots/{name}",
        busy_since=busy_since,
    )


class FakeStore:
    """A KV store of one path's versions, or of one error on every call."""

    def __init__(self, error=None):
        self.data = {}
        self.error = error
        self.writes = 0

    def read(self, path):
        if self.error is not None:
            raise self.error
        return self.data.get(path)

    def write(self, path, data, *, cas):
        current = self.data.get(path)
        assert cas == (current.version if current else 0)
        self.data[path] = Versioned(data=data, version=cas + 1)
        self.writes += 1
        return cas + 1

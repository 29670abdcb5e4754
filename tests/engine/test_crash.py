"""Crash at every step boundary of a rotation, then let a fresh engine reconcile.

A crash is a BaseException raised by a proxy around Vault or Bybit, right before or right after
the N-th side effect (a Vault write or destroy, a Bybit create or delete): the engine cannot catch
it, exactly like a process dying there. Every boundary of a full rotation is covered.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
from rig import Rig
from rotator.model import Credentials

GRACE = timedelta(hours=24)
EFFECTS_PER_ROTATION = 15  # counted below by test_effect_count_is_what_the_matrix_covers


class Crash(BaseException):  # a simulated process death, not an error
    pass


@dataclass
class Journal:
    """What happened, with virtual timestamps, to check the invariants afterwards."""

    crash_at: int | None = None
    crash_after: bool = False
    count: int = 0
    verified: dict[str, datetime] = field(default_factory=dict)  # key id -> first verify
    promoted: dict[str, datetime] = field(default_factory=dict)  # key id -> consumer write
    deleted: dict[str, datetime] = field(default_factory=dict)

    def effect(self, label: str, call):
        self.count += 1
        hit = self.count == self.crash_at
        if hit and not self.crash_after:
            raise Crash(f"before {label}")
        result = call()
        if hit:
            raise Crash(f"after {label}")
        return result


class JournalStore:
    def __init__(self, inner, journal: Journal, clock, consumer_prefix: str) -> None:
        self.inner, self.j, self.clock, self.consumer_prefix = (
            inner,
            journal,
            clock,
            consumer_prefix,
        )

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def write(self, path, data, *, cas):
        def call():
            version = self.inner.write(path, data, cas=cas)
            if path.startswith(self.consumer_prefix):
                self.j.promoted.setdefault(data["api_key"], self.clock.now())
            return version

        return self.j.effect(f"write {path}", call)

    def destroy_versions(self, path, versions):
        return self.j.effect(f"destroy {path}", lambda: self.inner.destroy_versions(path, versions))


class JournalExchange:
    def __init__(self, inner, journal: Journal, clock) -> None:
        self.inner, self.j, self.clock = inner, journal, clock

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def create_sub_key(self, master, spec, *, note):
        return self.j.effect("create", lambda: self.inner.create_sub_key(master, spec, note=note))

    def delete_sub_key(self, master, key_id):
        def call():
            self.inner.delete_sub_key(master, key_id)
            self.j.deleted.setdefault(key_id, self.clock.now())

        return self.j.effect("delete", call)

    def query_key(self, creds: Credentials):
        info = self.inner.query_key(creds)
        self.j.verified.setdefault(creds.api_key, self.clock.now())
        return info


def _journaled_engine(rig: Rig, journal: Journal):
    store = JournalStore(rig.store, journal, rig.clock, f"{rig.prefix}/keys/")
    exchange = JournalExchange(rig.client(), journal, rig.clock)
    return rig.engine(exchange=exchange, store=store)


def _run_to_done(rig: Rig, engine, *, rounds: int = 60) -> None:
    for _ in range(rounds):
        result = engine.reconcile()
        report = result.keys[0]
        if report.state == "idle" and rig.state("alpha").rotations >= 1:
            return
        rig.clock.advance(timedelta(hours=1))
    pytest.fail(f"rotation did not complete: {report}")


def _run_until_crash(rig: Rig, engine) -> None:
    for _ in range(60):
        engine.reconcile()
        rig.clock.advance(timedelta(hours=1))


def _setup(rig: Rig) -> str:
    rig.add_key("alpha")
    rig.engine().reconcile()
    old = rig.consumer("alpha")["api_key"]
    rig.clock.advance(timedelta(days=80))
    return old


def test_effect_count_is_what_the_matrix_covers(rig: Rig):
    """A clean rotation has exactly EFFECTS_PER_ROTATION side effects: the matrix covers each."""
    _setup(rig)
    journal = Journal()
    engine = _journaled_engine(rig, journal)
    _run_to_done(rig, engine)
    assert journal.count == EFFECTS_PER_ROTATION


@pytest.mark.parametrize("after", [False, True], ids=["before", "after"])
@pytest.mark.parametrize("crash_at", range(1, EFFECTS_PER_ROTATION + 1))
def test_crash_anywhere_then_recover(rig: Rig, crash_at: int, after: bool):
    """Die before/after any side effect; a fresh engine converges with every invariant intact."""
    old = _setup(rig)
    journal = Journal(crash_at=crash_at, crash_after=after)
    crashing = _journaled_engine(rig, journal)
    with pytest.raises(Crash):
        _run_until_crash(rig, crashing)

    survivor = Journal()  # a new process: same replica identity, no crash
    survivor.verified, survivor.promoted, survivor.deleted = (
        journal.verified,
        journal.promoted,
        journal.deleted,
    )
    engine = _journaled_engine(rig, survivor)
    _run_to_done(rig, engine)

    # exactly one live managed key, its secret at the consumer path, no orphan
    live = rig.tagged("alpha")
    record = rig.consumer("alpha")
    assert [k.api_key for k in live] == [record["api_key"]]
    assert record["api_key"] != old
    assert rig.works(record)
    assert rig.state("alpha").active.key_id == record["api_key"]
    assert engine.reconcile().accounts[0].orphans == ()
    # consumers never read an unverified key
    for key_id, when in journal.promoted.items():
        assert key_id in journal.verified
        assert journal.verified[key_id] <= when
    # the old key was revoked only after the new one was promoted, and after the grace period
    assert old in journal.deleted
    new_promoted = journal.promoted[record["api_key"]]
    assert journal.deleted[old] >= new_promoted + GRACE


def test_lost_create_with_crash_before_sweep(rig: Rig):
    """Bybit commits a create whose reply is lost, then the process dies: one reconcile later
    the unknowable key is gone and a good one is in place."""
    old = _setup(rig)
    rig.sim.faults.lose_response()
    engine = rig.engine()
    engine.reconcile()  # create lost: OutcomeUnknown recorded
    assert len(rig.tagged("alpha")) == 2
    fresh = rig.engine()
    rig.clock.advance(timedelta(hours=1))
    fresh.reconcile()
    live = {k.api_key for k in rig.tagged("alpha")}
    assert live == {old, rig.consumer("alpha")["api_key"]}

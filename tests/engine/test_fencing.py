"""A second actor that wakes with stale beliefs causes no side effect (issue 12).

Replica A holds the account's lease and is frozen in the middle of a step; replica B takes the
lease over and moves the rotation on; then A wakes. Real OpenBao, the simulator over HTTP, real
leases; only the pause is staged (by the exchange or hand-off A calls at that moment).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from leases import SETTINGS, Mono
from rig import Rig
from rotator.errors import ExchangeAuthFailed, HandOffFailed
from rotator.lease import AccountLease

from fixtures.simulator import MASTER_KEY


class Replica:
    """An engine with its own lease and its own monotonic clock."""

    def __init__(self, rig: Rig, name: str, **engine_kw: Any) -> None:
        self.mono = Mono()
        self.lease = AccountLease(
            store=rig.store,
            path=f"{rig.prefix}/leases/main",
            identity=name,
            settings=SETTINGS,
            clock=rig.clock,
            monotonic=self.mono,
        )
        self.engine = rig.engine(owner=name, **engine_kw)
        self.engine.authorities = {"main": self.lease}

    def take_over(self) -> None:
        """Observe the current holder, wait out its lease, take the account."""
        self.lease.step()
        self.mono.t += SETTINGS.lease_duration.total_seconds()
        assert self.lease.step() is True


class Blind:
    """An authority that never notices it lost: models a pause right after a successful fence
    check, so only the fences *at the store* and the delete guard stand in the way."""

    def __init__(self, token: int) -> None:
        self.token = token

    def fence(self) -> None:
        pass

    def fence_strict(self) -> None:
        pass


class PausingExchange:
    """Runs `during_pause` inside the first call to `method` (for a non-master key), then fails
    or returns as `outcome` says."""

    def __init__(self, inner, method: str, during_pause, outcome=None) -> None:
        self.inner = inner
        self.method = method
        self.during_pause = during_pause
        self.outcome = outcome
        self.fired = False

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if name != self.method:
            return attr

        def wrapped(*args, **kwargs):
            creds = args[0] if args else None
            if self.fired or getattr(creds, "api_key", None) == MASTER_KEY:
                return attr(*args, **kwargs)
            self.fired = True
            self.during_pause()
            if self.outcome is not None:
                raise self.outcome
            return attr(*args, **kwargs)

        return wrapped


class RecordingHandOff:
    def __init__(self, name: str, log: list, before=None, fail: bool = False) -> None:
        self.name = name
        self.log = log
        self.before = before
        self.fail = fail

    def deliver(self, key_name, record, *, fence=None):
        if self.before is not None:
            before, self.before = self.before, None
            before()
        if fence is not None:
            fence()
        if self.fail:
            raise HandOffFailed("command hook did not finish")
        self.log.append((self.name, record["api_key"]))


def _live(rig: Rig) -> set[str]:
    return {k.api_key for k in rig.tagged("alpha")}


@pytest.fixture(name="due")
def _due(rig: Rig):
    """alpha exists, its key is due for rotation; A holds the lease and acted last."""
    rig.add_key("alpha")
    first = Replica(rig, "first")
    first.lease.step()
    first.engine.reconcile()
    first.lease.release()
    rig.clock.advance(timedelta(days=80))
    return rig


def test_stale_verifier_never_deletes_the_key_another_replica_promoted(due: Rig):
    """A freezes in verify; B verifies and promotes; A wakes to a failed query: nothing deleted."""
    rig = due
    b = Replica(rig, "b")

    def b_takes_over_and_promotes() -> None:
        b.take_over()
        report = b.engine.reconcile().keys[0]
        assert report.state == "handed_off"

    a = Replica(rig, "a")
    assert a.lease.step() is True
    a.engine.exchange = PausingExchange(
        a.engine.exchange,
        "query_key",
        b_takes_over_and_promotes,
        outcome=ExchangeAuthFailed("API key is invalid."),
    )
    report = a.engine.reconcile().keys[0]
    consumer = rig.consumer("alpha")
    assert consumer["api_key"] in _live(rig)
    assert rig.works(consumer)
    assert report.failure is None
    assert rig.state("alpha").token == b.lease.token  # A wrote nothing after B
    assert rig.state("alpha").rotation.last_error is None


def test_delete_guard_alone_stops_a_stale_verifier(due: Rig):
    """Even if A's fence check passed just before it froze, the re-read guard refuses."""
    rig = due
    b = Replica(rig, "b")
    a = Replica(rig, "a")
    assert a.lease.step() is True

    def b_takes_over_and_promotes() -> None:
        b.take_over()
        b.engine.reconcile()

    a.engine.authorities = {"main": Blind(token=a.lease.token)}  # A will never notice
    a.engine.exchange = PausingExchange(
        a.engine.exchange,
        "query_key",
        b_takes_over_and_promotes,
        outcome=ExchangeAuthFailed("API key is invalid."),
    )
    report = a.engine.reconcile().keys[0]
    consumer = rig.consumer("alpha")
    assert rig.works(consumer)
    assert report.failure is None
    assert rig.state("alpha").token == b.lease.token


def test_stale_hand_off_delivers_nothing(due: Rig):
    """A freezes before running its hooks; B hands off; A wakes: its hook never runs."""
    rig = due
    deliveries: list = []
    b = Replica(rig, "b", handoff=RecordingHandOff("b", deliveries))
    a = Replica(rig, "a")

    def b_takes_over() -> None:
        b.take_over()
        b.engine.reconcile()

    a.engine.handoff = RecordingHandOff("a", deliveries, before=b_takes_over)
    assert a.lease.step() is True
    report = a.engine.reconcile().keys[0]
    assert [who for who, _ in deliveries] == ["b"]
    assert deliveries[0][1] == rig.consumer("alpha")["api_key"]
    assert report.failure is None
    assert rig.state("alpha").rotation.last_error is None


def test_stale_failure_never_overwrites_the_new_record(due: Rig):
    """A's hook fails after B moved on: A records no failure over B's record, reports none."""
    rig = due
    b = Replica(rig, "b", handoff=RecordingHandOff("b", []))
    a = Replica(rig, "a")

    b_version: list[int] = []

    def b_takes_over() -> None:
        b.take_over()
        b.engine.reconcile()
        b_version.append(rig.store.read(f"{rig.prefix}/state/alpha").version)

    a.engine.handoff = RecordingHandOff("a", [], before=b_takes_over, fail=True)
    assert a.lease.step() is True
    a.engine.authorities = {"main": Blind(token=a.lease.token)}
    report = a.engine.reconcile().keys[0]
    after = rig.store.read(f"{rig.prefix}/state/alpha")
    assert after.version == b_version[0]  # nothing from A after B
    assert after.data["rotation"]["last_error"] is None
    assert after.data["token"] == b.lease.token
    assert report.failure is None


def test_stale_creator_creates_nothing(due: Rig):
    """A loses the lease between its claim and the create: no key is created by A."""
    rig = due
    b = Replica(rig, "b")
    a = Replica(rig, "a")
    assert a.lease.step() is True
    before = _live(rig)
    created: list = []

    class Counting:
        def __init__(self, inner):
            self.inner = inner

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def list_sub_keys(self, *args, **kwargs):
            b.take_over()  # the listing is read between A's claim and its create
            return self.inner.list_sub_keys(*args, **kwargs)

        def create_sub_key(self, *args, **kwargs):
            created.append(args)
            return self.inner.create_sub_key(*args, **kwargs)

    a.engine.exchange = Counting(a.engine.exchange)
    report = a.engine.reconcile().keys[0]
    assert created == []
    assert _live(rig) == before
    assert report.failure is None
    b.engine.reconcile()
    assert len(_live(rig)) == 2  # B did the rotation: old key in grace + one new key


def test_newer_token_in_the_record_fences_an_old_holder(due: Rig):
    """B was frozen holding token t (its own clock stood still, so it still believes); C took
    over and wrote under t+1. B wakes: the record's newer token stops it before any write."""
    rig = due
    b = Replica(rig, "b")
    assert b.lease.step() is True
    c = Replica(rig, "c")
    c.take_over()
    c.engine.reconcile()
    state_version = rig.store.read(f"{rig.prefix}/state/alpha").version
    assert rig.state("alpha").token == c.lease.token > b.lease.token
    report = b.engine.reconcile().keys[0]  # b's local deadline has not passed: it tries
    assert report.failure is None
    assert "newer" in (report.reason or "")
    assert rig.store.read(f"{rig.prefix}/state/alpha").version == state_version


def test_reset_lease_history_does_not_lock_the_holder_out(due: Rig):
    """The lease record was wiped by hand (tokens start over): the holder proven by the lease
    in Vault carries on under the higher token the state records remember."""
    rig = due
    high = rig.state("alpha").token
    rig.store.write(
        f"{rig.prefix}/state/alpha",
        {**rig.store.read(f"{rig.prefix}/state/alpha").data, "token": high + 50},
        cas=rig.store.read(f"{rig.prefix}/state/alpha").version,
    )
    d = Replica(rig, "d")
    assert d.lease.step() is True
    assert d.lease.token < high + 50
    report = d.engine.reconcile().keys[0]
    assert report.state == "handed_off"
    assert rig.state("alpha").token == high + 50


def test_an_unfenced_actor_cannot_act_on_an_account_under_leases(due: Rig):
    """A sole actor (token 0) meets records written under a lease: it stands down."""
    rig = due
    before = rig.store.read(f"{rig.prefix}/state/alpha").version
    report = rig.engine(owner="sole").reconcile().keys[0]
    assert report.failure is None
    assert rig.store.read(f"{rig.prefix}/state/alpha").version == before
    assert len(_live(rig)) == 1


def test_failure_is_recorded_only_on_the_version_this_engine_wrote(rig: Rig):
    """Same token (sole actors): a failure after another writer moved on is not recorded."""
    rig.add_key("alpha")
    rig.engine(owner="first").reconcile()
    rig.clock.advance(timedelta(days=80))
    b = rig.engine(owner="b", handoff=RecordingHandOff("b", []))
    b_version: list[int] = []

    def b_moves_on() -> None:
        rig.clock.advance(timedelta(minutes=6))  # A's claim looks stale to B
        b.reconcile()
        b_version.append(rig.store.read(f"{rig.prefix}/state/alpha").version)

    a = rig.engine(owner="a", handoff=RecordingHandOff("a", [], before=b_moves_on, fail=True))
    report = a.reconcile().keys[0]
    after = rig.store.read(f"{rig.prefix}/state/alpha")
    assert after.version == b_version[0]
    assert after.data["rotation"]["last_error"] is None
    assert report.failure is None

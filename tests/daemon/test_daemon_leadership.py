"""Elections without a server: spread, stuck accounts, the lease loop (leases are fakes here;
tests/daemon/test_daemon.py and tests/ha run them against OpenBao)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from daemon_fakes import FakeLease, FakeStore, account
from rotator.daemon.accounts import account_of
from rotator.daemon.leadership import (
    STUCK_AFTER_S,
    as_result,
    elect,
    is_stuck,
    lease_loop,
    may_notify,
    patience_s,
    read_snapshot,
    write_snapshot,
)
from rotator.errors import StoreUnavailable
from rotator.key_report import AccountReport, KeyReport, ReconcileResult
from structlog.testing import capture_logs

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def in_order(accounts):
    """A shuffle that keeps the order (the real one is random)."""


def test_stuck_means_a_run_longer_than_the_limit():
    assert not is_stuck(None, 10_000.0)
    assert not is_stuck(100.0, 100.0 + STUCK_AFTER_S)
    assert is_stuck(100.0, 100.0 + STUCK_AFTER_S + 0.1)
    assert is_stuck(0.0, 11.0, limit_s=10.0)


def test_patience_grows_with_the_leases_held_when_spreading():
    assert patience_s(held=0, retry_s=2.0, spread=True, holds=False) == 0.0
    assert patience_s(held=3, retry_s=2.0, spread=True, holds=False) == 6.0
    assert patience_s(held=3, retry_s=2.0, spread=False, holds=False) == 0.0
    assert patience_s(held=3, retry_s=2.0, spread=True, holds=True) == 0.0  # renewing: no wait


def test_a_round_spreads_acquires_and_records_when():
    """Each free lease waits one retry period per lease already held; newly held are named."""
    leases = {n: FakeLease(held=n == "a") for n in ("a", "b", "c")}
    accounts = [account(n, lease) for n, lease in leases.items()]
    result = elect(
        accounts, spread=True, may_acquire=True, retry_s=2.0, now=NOW, mono=0.0, shuffle=in_order
    )
    assert result.newly == ("b", "c")
    assert result.leading == {"a": True, "b": True, "c": True}
    assert leases["a"].asked == [(True, 0.0)]
    assert leases["b"].asked == [(True, 2.0)]  # one held before it
    assert leases["c"].asked == [(True, 4.0)]  # two held by then
    assert [a.held_since for a in accounts] == [None, NOW, NOW]


def test_a_stuck_holder_abdicates_and_does_not_take_it_back():
    lease = FakeLease(held=True)
    stuck = account("main", lease, busy_since=0.0)
    with capture_logs() as logs:
        result = elect(
            [stuck],
            spread=False,
            may_acquire=True,
            retry_s=2.0,
            now=NOW,
            mono=STUCK_AFTER_S + 1,
            shuffle=in_order,
        )
    assert lease.released == 1
    assert lease.asked == [(False, 0.0)]
    assert result.leading == {"main": False}
    assert stuck.held_since is None
    assert [e["event"] for e in logs] == ["lease.abdicated"]


def test_a_stopping_replica_takes_no_lease():
    lease = FakeLease()
    elect(
        [account("main", lease)],
        spread=False,
        may_acquire=False,
        retry_s=2.0,
        now=NOW,
        mono=0.0,
        shuffle=in_order,
    )
    assert lease.asked == [(False, 0.0)]
    assert not lease.held


def test_the_lease_loop_survives_a_failed_round_and_reports_new_leases():
    stop = threading.Event()
    rounds = iter([RuntimeError("bug"), ("main",), ()])
    acquired = []

    def one_round():
        step = next(rounds)
        if isinstance(step, Exception):
            raise step
        if not step:
            stop.set()
        return step

    with capture_logs() as logs:
        lease_loop(one_round, acquired=acquired.append, stop=stop, period_s=0.0)
    assert acquired == ["main"]
    assert [e["event"] for e in logs] == ["lease.loop_failed"]


def test_who_notifies_and_who_manages_a_key():
    mine = account("a", FakeLease(held=False, holder="me"), keys=("bot1",))
    theirs = account("b", FakeLease(held=False, holder="them"), keys=("bot2",))
    assert may_notify([mine, theirs], "me")  # held it last (Vault down: nobody renews)
    assert not may_notify([theirs], "me")
    assert may_notify([account("c", FakeLease(held=True))], "me")
    assert account_of([mine, theirs], "bot2") == "b"
    assert account_of([mine, theirs], "bot3") is None


def result_of(name="main"):
    key = KeyReport(name="bot1", account=name, sub_uid=1, state="idle", completed=True)
    return ReconcileResult(
        started_at=NOW, finished_at=NOW, keys=(key,), accounts=(AccountReport(name=name),)
    )


def test_the_holder_writes_its_view_and_a_follower_reads_it():
    """The snapshot drops what only the run knew (completed, failure); a newer holder's
    snapshot is never overwritten; nothing is written without the lease."""
    store = FakeStore()
    holder = account("main", FakeLease(held=True, token=7))
    write_snapshot(store, holder, result_of(), holder="me")
    snap = read_snapshot(store, holder)
    assert (snap.holder, snap.token, snap.written_at) == ("me", 7, NOW)
    assert [k.completed for k in snap.keys] == [False]
    assert as_result(snap).accounts == (snap.account,)
    older = account("main", FakeLease(held=True, token=6))
    write_snapshot(store, older, result_of(), holder="old")
    assert read_snapshot(store, holder).holder == "me"
    write_snapshot(store, account("main", FakeLease(held=False)), result_of(), holder="x")
    assert store.writes == 1


def test_snapshot_errors_are_logged_never_raised():
    store = FakeStore(error=StoreUnavailable("sealed"))
    held = account("main", FakeLease(held=True, token=1))
    with capture_logs() as logs:
        assert read_snapshot(store, held) is None
        write_snapshot(store, held, result_of(), holder="me")
    assert [e["event"] for e in logs] == ["snapshot.read_failed", "snapshot.write_failed"]
    assert read_snapshot(FakeStore(), held) is None  # none written yet

"""Elections without a server: spread, stuck accounts, the lease loop (leases are fakes here;
tests/daemon/test_daemon.py and tests/ha run them against OpenBao)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from daemon_fakes import FakeLease, account
from rotator.daemon.accounts import account_of
from rotator.daemon.leadership import (
    STUCK_AFTER_S,
    elect,
    is_stuck,
    lease_loop,
    may_notify,
    patience_s,
)
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

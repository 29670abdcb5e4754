"""/healthz, /readyz, the start-up wait and the probes, without a server."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from daemon_fakes import FakeLease, account
from rotator.daemon.phase import Phase
from rotator.daemon.probes import (
    HEARTBEAT_STALE_S,
    STARTUP_BACKOFF_MAX_S,
    Probe,
    health,
    is_stale,
    ping,
    readiness,
    wait_for_dependencies,
    watchdog_loop,
)
from rotator.errors import StoreUnavailable
from structlog.testing import capture_logs

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LIMIT = timedelta(minutes=30)


class FakeSd:
    def __init__(self, interval=None):
        self.extended: list[tuple[float, str]] = []
        self.fed = 0
        self.watchdog_interval = interval

    def extend_timeout(self, delay, *, status):
        self.extended.append((delay.total_seconds(), status))

    def watchdog(self):
        self.fed += 1


def the_old_band(attempt: int) -> tuple[float, float]:
    """Start-up's wait before rotator.retry: min(60, 2**(n-1)) x uniform(0.8, 1.2)."""
    delay = min(2.0 ** (attempt - 1), STARTUP_BACKOFF_MAX_S)
    return 0.8 * delay, 1.2 * delay


@pytest.mark.parametrize("draw", [0.0, 0.5, 1.0])
def test_startup_waits_with_the_old_numbers_until_both_answer(draw):
    """Doubling waits within +-20 % (1 s, 2 s, ... 60 s), systemd kept patient, then True."""
    answers = iter([False] * 8 + [True])
    slept = []
    sd = FakeSd()
    beats = []
    with capture_logs() as logs:
        ok = wait_for_dependencies(
            probe=lambda: next(answers),
            unreachable=lambda: [("Vault", "connection refused")],
            sleep=slept.append,
            stopped=lambda: False,
            beat=lambda: beats.append(1),
            sd=sd,
            draw=lambda: draw,
        )
    assert ok is True
    assert len(slept) == 8
    assert len(beats) == 9
    for attempt, wait_s in enumerate(slept, start=1):
        low, high = the_old_band(attempt)
        assert wait_s == pytest.approx(low + (high - low) * draw)
    assert slept[-1] == pytest.approx(48 + 24 * draw)  # capped: 60 s +- 20 %
    assert sd.extended[0] == (
        pytest.approx(slept[0] + 30),
        "waiting for Vault (connection refused)",
    )
    waiting = [e for e in logs if e["event"] == "startup.waiting"]
    assert [e["attempt"] for e in waiting] == list(range(1, 9))
    assert waiting[0]["waiting_for"] == ["Vault"]


def test_startup_wait_ends_false_on_stop():
    stopped = threading.Event()

    def sleep(_wait_s):
        stopped.set()

    ok = wait_for_dependencies(
        probe=lambda: False,
        unreachable=lambda: [("Bybit", "timeout")],
        sleep=sleep,
        stopped=stopped.is_set,
        beat=lambda: None,
        sd=FakeSd(),
    )
    assert ok is False


def test_health_needs_a_running_scheduler_with_a_recent_heartbeat():
    assert health(phase=Phase.STARTING, heartbeat_age_s=999, scheduler_running=False)[0]
    assert health(phase=Phase.STOPPING, heartbeat_age_s=999, scheduler_running=False)[0]
    ok, detail = health(phase=Phase.RUNNING, heartbeat_age_s=1.04, scheduler_running=True)
    assert ok
    assert detail == {"phase": "running", "heartbeat_age_s": 1.0, "scheduler_running": True}
    assert not health(phase=Phase.RUNNING, heartbeat_age_s=1, scheduler_running=False)[0]
    stale = HEARTBEAT_STALE_S + 1
    assert not health(phase=Phase.RUNNING, heartbeat_age_s=stale, scheduler_running=True)[0]


def test_stale_counts_from_the_last_good_run_or_the_takeover():
    assert not is_stale(None, None, NOW, LIMIT)  # just taken: not stale yet
    assert not is_stale(None, NOW - LIMIT, NOW, LIMIT)
    assert is_stale(None, NOW - LIMIT - timedelta(seconds=1), NOW, LIMIT)
    assert is_stale(NOW - LIMIT - timedelta(seconds=1), NOW, NOW, LIMIT)
    assert not is_stale(NOW - LIMIT, NOW - 10 * LIMIT, NOW, LIMIT)


def ready(accounts, **kw):
    args = {
        "phase": Phase.RUNNING,
        "identity": "me",
        "vault": Probe(ok=True),
        "bybit": Probe(ok=False, error="timeout"),
        "elected": True,
        "accounts": accounts,
        "last_ok": {},
        "missing_subs": {},
        "now": NOW,
        "mono": 0.0,
        "limit": LIMIT,
    }
    args.update(kw)
    return readiness(**args)


def test_ready_wants_vault_an_election_and_no_stale_or_stuck_account():
    """Bybit down does not make a replica unready; a stale held account or a stuck one does."""
    held = account("a", FakeLease(held=True, holder="me"))
    other = account("b", FakeLease(held=False, holder="them"))
    accounts = {"a": held, "b": other}
    ok, detail = ready(accounts, last_ok={"a": NOW, "b": NOW - 10 * LIMIT})
    assert ok, detail
    assert detail["held_accounts"] == ["a"]
    assert detail["leaders"] == {"a": "me", "b": "them"}
    assert detail["bybit"] == {"ok": False, "error": "timeout"}
    assert not ready(accounts, phase=Phase.STARTING, last_ok={"a": NOW})[0]
    assert not ready(accounts, vault=Probe(ok=None), last_ok={"a": NOW})[0]
    assert not ready(accounts, elected=False, last_ok={"a": NOW})[0]
    ok, detail = ready(accounts, last_ok={"a": NOW - 2 * LIMIT})
    assert not ok
    assert detail["stale_accounts"] == ["a"]
    other.busy_since = 0.0
    ok, detail = ready(accounts, last_ok={"a": NOW}, mono=10_000.0)
    assert not ok
    assert detail["stuck_accounts"] == ["b"]
    _, detail = ready(accounts, missing_subs={"fleet": [3002], "empty": []})
    assert detail["key_sets_missing_sub_uids"] == {"fleet": [3002]}


def test_ping_records_the_answer_and_never_raises():
    probe = Probe()

    def down():
        raise StoreUnavailable("sealed")

    def bug():
        raise KeyError("x")

    with capture_logs() as logs:
        assert not ping("vault", probe, down, NOW)
        assert (probe.ok, probe.error, probe.at) == (False, "sealed", NOW)
        assert not ping("vault", probe, bug, NOW)
        assert probe.error == "KeyError"
        assert ping("vault", probe, lambda: None, NOW)
        assert (probe.ok, probe.error) == (True, None)
    events = [e["event"] for e in logs]
    assert events == [
        "dependency.unreachable",
        "dependency.unreachable",
        "dependency.reachable_again",
    ]


def test_the_watchdog_is_fed_only_while_healthy():
    stop = threading.Event()
    sd = FakeSd(interval=timedelta(0))
    answers = iter([True, False, True])

    def healthy():
        ok = next(answers)
        if sd.fed == 1 and ok:
            stop.set()
        return ok, {}

    with capture_logs() as logs:
        watchdog_loop(sd, healthy, stop)
    assert sd.fed == 2
    assert [e["event"] for e in logs] == ["watchdog.withheld"]
    watchdog_loop(FakeSd(interval=None), healthy, stop)  # no watchdog: returns at once

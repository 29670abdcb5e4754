"""The daemon in-process on the virtual clock: real simulator over HTTP, real OpenBao.

`tick()` is what the periodic job runs, `run_due(now)` what the date jobs run; the clock moves
only when the test moves it.
"""

from __future__ import annotations

import stat
import threading
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from handoff_world import manual_builder
from rotator.adapters.metrics import Metrics
from rotator.adapters.scheduler import Scheduler
from rotator.config import parse
from rotator.daemon import Daemon

from fixtures.simulator import MASTER_KEY, MASTER_SECRET, MASTER_UID
from fixtures.vault import free_port

CONFIG = """
[bybit]
base_url = "{sim}"
[vault]
address = "{vault}"
prefix = "{prefix}"
[vault.auth]
method = "token"
token_env = "T_DAEMON_VAULT_TOKEN"
[policy]
reconcile_interval = "10m"
grace_period = "1h"
[[accounts]]
name = "main"
[[keys]]
name = "bot1"
account = "main"
sub_uid = 2001
permissions = {{ ContractTrade = ["Order", "Position"] }}
[[keys.hooks]]
type = "file"
path = "{out}/bot1.env"
{extra}
[metrics]
enabled = {metrics}
listen = "127.0.0.1:{port}"
"""
BOT2 = """
[[keys]]
name = "bot2"
account = "main"
sub_uid = 2002
permissions = { Spot = ["SpotTrade"] }
"""


@pytest.fixture(name="world")
def _world(simulator, sim_clock, bao, vault_store, vault_prefix, tmp_path, monkeypatch):  # noqa: PLR0917 (fixtures)
    monkeypatch.setenv("T_DAEMON_VAULT_TOKEN", bao.root_token)
    vault_store.write(
        f"{vault_prefix}/accounts/main/master",
        {"api_key": MASTER_KEY, "api_secret": MASTER_SECRET},
        cas=0,
    )

    def config_text(*, extra: str = BOT2, metrics: bool = False, port: int = 0) -> str:
        return CONFIG.format(
            sim=simulator.base_url,
            vault=bao.address,
            prefix=vault_prefix,
            out=tmp_path,
            extra=extra,
            metrics="true" if metrics else "false",
            port=port or free_port(),
        )

    path = tmp_path / "rotator.toml"
    path.write_text(config_text())
    daemons = []

    def make(**kw) -> Daemon:
        d = Daemon(
            parse(path.read_text(), source=str(path)),
            config_path=path,
            clock=sim_clock,
            metrics=Metrics(),
            builder=manual_builder(sim_clock),
            **kw,
        )
        daemons.append(d)
        return d

    yield {"make": make, "path": path, "text": config_text, "out": tmp_path}
    for d in daemons:
        d.notifier.close()
        d.runtime.close()


def value(d: Daemon, name: str, **labels) -> float | None:
    return d.metrics.registry.get_sample_value(name, labels)


BOT1 = {"key": "bot1", "account": "main", "sub_uid": "2001"}
BOT2_LABELS = {"key": "bot2", "account": "main", "sub_uid": "2002"}


def test_tick_creates_keys_then_due_jobs_rotate_them(world, simulator, sim_clock):
    """Initial keys on the first tick; at the due moment a rotation runs, and after the grace
    period the old key is revoked. Metrics follow every step."""
    d = world["make"]()
    [result] = d.tick()
    assert result.ok
    assert {r.name: r.state for r in result.keys} == {"bot1": "idle", "bot2": "idle"}
    env = world["out"] / "bot1.env"
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    first = env.read_text()
    assert value(d, "rotator_key_state", **BOT1, state="idle") == 1
    assert value(d, "rotator_rotations_completed_total", **BOT1) == 1
    assert (
        value(d, "rotator_last_reconcile_success_timestamp_seconds") == sim_clock.now().timestamp()
    )
    expiry = value(d, "rotator_key_expiry_timestamp_seconds", **BOT1)
    assert expiry == pytest.approx((sim_clock.now() + timedelta(days=90)).timestamp(), abs=5)
    assert (
        value(d, "rotator_bybit_requests_total", endpoint="/v5/user/create-sub-api", ret_code="0")
        == 2
    )

    due = d.due["bot1"]
    assert timedelta(days=69) < due - sim_clock.now() < timedelta(days=77)
    assert d.run_due(min(d.due.values()) - timedelta(seconds=1)) == []  # nothing due yet
    sim_clock.set(due)
    d.run_due(sim_clock.now())
    assert d.reports["bot1"].state == "handed_off"
    assert env.read_text() != first
    assert value(d, "rotator_key_state", **BOT1, state="handed_off") == 1
    assert len(simulator.keys_of(2001)) == 2  # old and new, during the grace period

    sim_clock.set(d.due["bot1"])
    d.run_due(sim_clock.now())
    assert d.reports["bot1"].state == "idle"
    assert d.reports["bot1"].rotations == 1
    assert len(simulator.keys_of(2001)) == 1
    assert value(d, "rotator_rotations_completed_total", **BOT1) == 2


def test_reload_rejects_a_bad_config_and_applies_a_good_one(world):
    """SIGHUP path: a bad file keeps the old config; a good one without bot2 drops its series."""
    d = world["make"]()
    d.tick()
    assert value(d, "rotator_key_state", **BOT2_LABELS, state="idle") == 1
    world["path"].write_text("[[keys]]\nname = 'BAD NAME'\n")
    assert d.reload() is False
    assert value(d, "rotator_config_reloads_total", outcome="rejected") == 1
    assert [k.name for k in d.config.keys] == ["bot1", "bot2"]
    d.tick()  # the old config keeps running

    world["path"].write_text(world["text"](extra=""))
    assert d.reload() is True
    assert [k.name for k in d.config.keys] == ["bot1"]
    assert value(d, "rotator_key_state", **BOT2_LABELS, state="idle") is None
    assert value(d, "rotator_key_expiry_timestamp_seconds", **BOT2_LABELS) is None
    assert value(d, "rotator_rotations_completed_total", **BOT2_LABELS) is None
    assert value(d, "rotator_key_state", **BOT1, state="idle") == 1
    assert "bot2" not in d.reports
    [result] = d.tick()
    assert [r.name for r in result.keys] == ["bot1"]


def test_ready_needs_vault_and_a_recent_reconcile(world, sim_clock):
    d = world["make"]()
    d.phase = "running"
    assert d.ready()[0] is False  # never probed, never reconciled
    assert d.probe() is True
    assert value(d, "rotator_vault_up") == 1
    assert value(d, "rotator_bybit_up") == 1
    assert d.ready()[0] is False
    d.tick()
    ok, detail = d.ready()
    assert ok, detail
    sim_clock.advance(timedelta(minutes=31))  # > 3 x reconcile_interval
    ok, detail = d.ready()
    assert not ok
    assert detail["stale_accounts"] == ["main"]


def test_stop_finishes_no_new_work(world, simulator):
    """After a stop request no reconcile starts (SIGTERM between jobs)."""
    d = world["make"]()
    d.request_stop()
    assert d.reconcile_account("main") is None
    assert simulator.keys_of(2001) == []


def test_startup_waits_for_vault_with_backoff(world, monkeypatch):
    """Vault unreachable: probes keep failing, metrics and /readyz say so, no crash; a stop
    request ends the wait."""
    dead = free_port()
    world["path"].write_text(world["text"]().replace("http://127.0.0.1:", "http://127.0.0.1:", 1))
    text = world["path"].read_text()
    vault_line = next(line for line in text.splitlines() if line.startswith("address"))
    world["path"].write_text(text.replace(vault_line, f'address = "http://127.0.0.1:{dead}"'))
    d = world["make"]()
    waited = []
    thread = threading.Thread(target=lambda: waited.append(d.wait_for_dependencies()))
    thread.start()
    deadline = threading.Event()
    for _ in range(50):
        if d.vault.ok is False:
            break
        deadline.wait(0.05)
    assert d.vault.ok is False
    assert value(d, "rotator_vault_up") == 0
    ok, detail = d.ready()
    assert not ok
    assert detail["vault"]["error"]
    d.request_stop()
    thread.join(5)
    assert waited == [False]


def test_health_listener_serves_metrics_and_probes(world):
    """/metrics, /healthz and /readyz on one listener; 503 while not ready."""
    port = free_port()
    world["path"].write_text(world["text"](metrics=True, port=port))
    d = world["make"]()
    assert d.start_http()
    try:
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/healthz").status_code == 200
        ready = httpx.get(f"{base}/readyz")
        assert ready.status_code == 503
        assert ready.json()["ok"] is False
        d.probe()
        d.tick()
        d.phase = "running"
        assert httpx.get(f"{base}/readyz").status_code == 200
        body = httpx.get(f"{base}/metrics").text
        assert (
            'rotator_key_state{account="main",key="bot1",state="idle",sub_uid="2001"} 1.0' in body
        )
        assert httpx.get(f"{base}/nope").status_code == 404
        # healthz fails once running without a scheduler
        assert httpx.get(f"{base}/healthz").status_code == 503
    finally:
        d.http.close()


def test_handoff_failure_is_counted_and_retried(world, sim_clock):
    """A hook that fails leaves the rotation at hand-off (old key kept), counted by hook kind."""
    out: Path = world["out"]
    d = world["make"]()
    (out / "bot1.env").mkdir()  # the file hook cannot replace a directory
    [result] = d.tick()
    report = next(r for r in result.keys if r.name == "bot1")
    assert report.failure == "handoff"
    assert value(d, "rotator_handoff_failures_total", **BOT1, hook="file") == 1
    assert value(d, "rotator_rotation_failures_total", **BOT1, reason="handoff") == 1
    (out / "bot1.env").rmdir()
    sim_clock.set(d.due["bot1"])
    d.run_due(sim_clock.now())
    assert d.reports["bot1"].state == "idle"
    assert (out / "bot1.env").is_file()


def test_every_key_series_is_on_metrics_at_zero_before_any_rotation(world):
    """/metrics, before the first reconcile: every key's attempt and completion counters and its
    escalated and drift gauges exist at 0, the accounts' orphan and pending-key gauges too; a key
    added by a reload gets them at once."""
    port = free_port()
    world["path"].write_text(world["text"](metrics=True, port=port, extra=""))
    d = world["make"]()
    assert d.start_http()
    try:
        body = httpx.get(f"http://127.0.0.1:{port}/metrics").text
        labels = 'account="main",key="bot1",sub_uid="2001"'
        for name in (
            "rotator_rotation_attempts_total",
            "rotator_rotations_completed_total",
            "rotator_key_escalated",
            "rotator_key_drift",
        ):
            assert f"{name}{{{labels}}} 0.0" in body, name
        assert 'rotator_orphan_keys{account="main"} 0.0' in body
        assert 'rotator_password_change_pending_keys{account="main"} 0.0' in body
        assert 'rotator_scheduler_job_errors_total{event="error",job="due"} 0.0' in body
        world["path"].write_text(world["text"](metrics=True, port=port))
        assert d.reload() is True
        assert value(d, "rotator_rotation_attempts_total", **BOT2_LABELS) == 0
        assert value(d, "rotator_key_drift", **BOT2_LABELS) == 0
    finally:
        d.http.close()


def test_probe_exports_the_clock_offset_to_bybit(world, simulator):
    """The Bybit probe measures Bybit's clock minus ours and exports it."""
    d = world["make"]()
    d.probe()
    assert value(d, "rotator_bybit_clock_offset_seconds") == 0
    simulator.faults.skew(timedelta(seconds=-90))
    try:
        d.probe()
    finally:
        simulator.faults.skew(timedelta(0))
    assert value(d, "rotator_bybit_clock_offset_seconds") == pytest.approx(-90, abs=1)


def test_two_replicas_one_acts_the_other_follows(world, simulator, sim_clock):
    """Replica A holds the lease and acts; B makes no Bybit call, exports A's snapshot (same key
    gauges, rotator_leader 0) and counts nothing; when A stops cleanly, B takes over at once."""
    a = world["make"]()
    b = world["make"]()
    [result] = a.tick()
    assert result.ok
    assert value(a, "rotator_leader", account="main") == 1
    calls = len(simulator.request_log)
    assert b.tick() == []
    assert len(simulator.request_log) == calls  # the follower read Vault only
    assert value(b, "rotator_leader", account="main") == 0
    for name in (
        "rotator_key_expiry_timestamp_seconds",
        "rotator_key_next_renewal_timestamp_seconds",
    ):
        assert value(b, name, **BOT1) == value(a, name, **BOT1)
    assert value(b, "rotator_key_state", **BOT1, state="idle") == 1
    assert value(b, "rotator_rotations_completed_total", **BOT1) in (None, 0)
    assert value(b, "rotator_last_reconcile_success_timestamp_seconds") == value(
        a, "rotator_last_reconcile_success_timestamp_seconds"
    )
    _, detail = b.ready()
    assert detail["held_accounts"] == []
    assert detail["leaders"]["main"] == a.identity

    for lease in a.leases.values():  # what a clean stop does
        lease.release()
    [taken] = b.tick()
    assert taken.ok
    assert value(b, "rotator_leader", account="main") == 1
    assert b.reports["bot1"].state == "idle"


def test_one_due_job_per_account_runs_every_due_key_at_once(world, sim_clock):
    """The scheduler holds one date job per account (not per key), at its earliest due moment;
    when it fires, every key due by then rotates in one reconcile of the account."""
    d = world["make"]()
    d.scheduler = Scheduler(workers=1)
    d.scheduler.start()  # jobs land days ahead: nothing fires during the test
    d.tick()
    assert [j for j in d.scheduler.job_ids() if j.startswith("due:")] == ["due:main"]
    calls = []
    original = d.reconcile_account

    def recording(name, only=None):
        calls.append((name, only))
        return original(name, only)

    d.reconcile_account = recording
    sim_clock.set(max(d.due.values()))
    d._run_due_account("main")
    assert calls == [("main", ("bot1", "bot2"))]
    assert {d.reports[k].state for k in ("bot1", "bot2")} == {"handed_off"}
    assert [j for j in d.scheduler.job_ids() if j.startswith("due:")] == ["due:main"]
    d.scheduler.shutdown(wait=False)


def test_a_stuck_account_is_handed_to_another_replica(world):
    """A run of one account past the stuck limit: the holder releases its lease (and takes it
    no more while stuck); another replica takes the account over on its next round."""
    a = world["make"]()
    b = world["make"]()
    a.tick()
    assert a.leases["main"].holds()
    account = a.accounts["main"]
    account.busy_since = time.monotonic() - 1000  # a run that has hung for 1000 s
    a.elect()
    assert not a.leases["main"].holds()
    assert value(a, "rotator_leader", account="main") == 0
    b.elect(spread=False)
    assert b.leases["main"].holds()
    a.elect()
    assert not a.leases["main"].holds()


ALL_SET = """
[[key_sets]]
name = "fleet"
name_template = "fleet-{sub_uid}"
account = "main"
sub_uids = "all"
exclude = ["2001", "2002"]
permissions = { Spot = ["SpotTrade"] }
"""


def test_key_set_all_joins_new_sub_accounts_and_keeps_vanished_ones(world, simulator):
    """sub_uids = "all": the sub-accounts Bybit lists join at the holder's full reconcile (their
    keys are created); one that vanishes from the list is reported and stays managed."""
    simulator.add_sub_account(MASTER_UID, 3001, username="trader-a")
    world["path"].write_text(world["text"](extra=ALL_SET))
    d = world["make"]()
    d.tick()
    assert "fleet-3001" in d.reports
    assert d.reports["fleet-3001"].state == "idle"
    assert [k.name for k in d.config.keys if k.key_set == "fleet"] == ["fleet-3001"]
    assert len(simulator.keys_of(3001)) == 1
    simulator.add_sub_account(MASTER_UID, 3002, username="trader-b")
    d.tick()
    assert {"fleet-3001", "fleet-3002"} <= set(d.reports)
    assert len(simulator.keys_of(3002)) == 1
    # 3002 disappears from Bybit's list (simulated by hiding it from the master's subs)
    with simulator._lock:
        simulator._accounts[MASTER_UID].sub_uids.remove(3002)
    d.tick()
    assert d.missing_subs["fleet"] == [3002]
    assert "fleet-3002" in {k.name for k in d.config.keys}
    _, detail = d.ready()
    assert detail["key_sets_missing_sub_uids"] == {"fleet": [3002]}
    # a new process (after a clean stop) finds what the set managed from the state records
    for lease in d.leases.values():
        lease.release()
    fresh = world["make"]()
    fresh.tick()
    assert {"fleet-3001", "fleet-3002"} <= {k.name for k in fresh.config.keys}

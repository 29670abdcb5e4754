"""The CLI asks the actor, it does not race it (issue 12): with a daemon holding the account's
lease, `rotate`, `password-changed --rotate-now` and `adopt` queue an intent that the daemon
carries out; with a dead holder the CLI takes the lease over once it lapses.

The daemon here is the real `Daemon` in-process on the same config, its election and intent poll
driven by a thread (the jobs `rotator run` schedules); the CLI runs through click's runner.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cli_env import ALPHA_PERMS, TOKEN_ENV, Cli
from rotator import config as config_mod
from rotator.daemon import Daemon
from rotator.lease import LeaseRecord

FAST_LEASE = """
[leader_election]
lease_duration = "1500ms"
renew_deadline = "1s"
retry_period = "250ms"
"""


class RunningDaemon:
    """The daemon's lease thread and its intent poll, as `rotator run` has them: on two threads,
    so renewals go on while an intent is carried out."""

    def __init__(self, path: Path) -> None:
        self.daemon = Daemon(config_mod.load(path), config_path=path)
        self.stop = threading.Event()
        self.threads = [
            threading.Thread(target=self._loop, args=(self._elect,), daemon=True),
            threading.Thread(target=self._loop, args=(self.daemon.poll_intents,), daemon=True),
        ]

    def _elect(self) -> None:
        self.daemon.elect(spread=False)

    def _loop(self, work) -> None:
        while not self.stop.wait(0.1):
            work()

    def __enter__(self) -> Daemon:
        self.daemon.elect(spread=False)
        for thread in self.threads:
            thread.start()
        return self.daemon

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=10)
        self.daemon.notifier.close()
        self.daemon.runtime.close()


@pytest.fixture(name="config")
def _config(cli: Cli, monkeypatch) -> Path:
    monkeypatch.setenv(TOKEN_ENV, cli.token)
    path = cli.config()
    path.write_text(path.read_text() + FAST_LEASE)
    return path


@pytest.fixture(name="daemon")
def _daemon(config: Path) -> Iterator[Daemon]:
    with RunningDaemon(config) as d:
        yield d


def lease_of(cli: Cli) -> LeaseRecord:
    path = f"{cli.prefix}/leases/main"
    record = cli.store.read(path)
    assert record is not None
    return LeaseRecord.from_record(record.data, path)


def creates(cli: Cli) -> int:
    return sum(
        1 for r in cli.sim.request_log if r.path.endswith("/create-sub-api") and r.ret_code == 0
    )


def test_rotate_is_carried_out_by_the_daemon(cli: Cli, config: Path, daemon: Daemon):
    """One rotation, done under the daemon's lease; the CLI says who did it and exits 0."""
    result = cli.run("rotate", "alpha", config=config)
    assert result.exit_code == 0, result.output
    assert "asked it to do this" in result.stdout
    assert "alpha: rotated." in result.stdout
    assert lease_of(cli).holder == daemon.identity
    state = cli.store.read(f"{cli.prefix}/state/alpha")
    assert state.data["token"] == daemon.leases["main"].token
    assert creates(cli) == 1
    forced = cli.run("rotate", "alpha", "--force", config=config)
    assert forced.exit_code == 0, forced.output
    assert "new key" in forced.stdout
    assert creates(cli) == 2
    assert daemon.reports["alpha"].state == "handed_off"


def test_password_changed_rotate_now_through_the_daemon(cli: Cli, config: Path, daemon: Daemon):
    """Declared and rotated by the holder: one new key per managed key, exit 0."""
    assert cli.run("rotate", "alpha", config=config).exit_code == 0
    assert cli.run("rotate", "beta", config=config).exit_code == 0
    before = creates(cli)
    result = cli.run("password-changed", "--account", "main", "--rotate-now", config=config)
    assert result.exit_code == 0, result.output
    assert "rotation FAILING" not in result.stdout
    assert creates(cli) == before + 2
    account = cli.store.read(f"{cli.prefix}/accounts/main/state")
    assert account.data["password_changed_at"] is not None


def test_adopt_through_the_daemon_leaves_no_secret_in_the_queue(
    cli: Cli, config: Path, daemon: Daemon
):
    """The adopted secret travels in the intent; once done, every queue version holding it is
    destroyed."""
    made = cli.sim.add_key(2001, permissions=ALPHA_PERMS)
    result = cli.run(
        "adopt", "alpha", "--key-id", made.api_key, input=made.api_secret + "\n", config=config
    )
    assert result.exit_code == 0, result.output
    assert cli.consumer("alpha")["api_key"] == made.api_key
    path = f"{cli.prefix}/intents/main"
    latest = cli.store.read(path)
    for version in range(1, latest.version + 1):
        record = cli.store.read_version(path, version)
        assert record is None or made.api_secret not in str(record.data)


def test_no_daemon_the_cli_holds_the_lease_itself(cli: Cli, config: Path):
    """Nobody holds the lease: the CLI takes it for the command and releases it after."""
    result = cli.run("rotate", "alpha", config=config)
    assert result.exit_code == 0, result.output
    assert "asked" not in result.stdout
    lease = lease_of(cli)
    assert lease.released is True
    assert lease.holder.startswith("cli:")


def test_dead_holder_is_taken_over_after_the_lease_lapses(cli: Cli, config: Path):
    """A daemon killed without releasing: the CLI waits out lease_duration, then acts itself."""
    now = datetime.now(UTC)
    ghost = LeaseRecord(
        holder="ghost:1:dead", token=7, acquired_at=now, renewed_at=now, lease_duration_s=1.5
    )
    cli.store.write(f"{cli.prefix}/leases/main", ghost.to_record(), cas=0)
    result = cli.run("rotate", "alpha", config=config)
    assert result.exit_code == 0, result.output
    assert "stopped renewing" in result.stdout
    assert "alpha: rotated." in result.stdout
    state = cli.store.read(f"{cli.prefix}/state/alpha")
    assert state.data["token"] == 8


def test_status_reads_the_holders_snapshot_without_a_bybit_call(
    cli: Cli, config: Path, daemon: Daemon
):
    """After the daemon's full reconcile, status answers from its snapshot: no Bybit request,
    the source and its age shown; --live sweeps."""
    daemon.tick()
    calls = len(cli.sim.request_log)
    result = cli.run("status", "--json", config=config)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert len(cli.sim.request_log) == calls
    [source] = doc["sources"]
    assert source["kind"] == "snapshot"
    assert source["holder"] == daemon.identity
    assert source["stale"] is False
    assert {k["name"] for k in doc["keys"]} == {"alpha", "beta"}
    table = cli.run("status", config=config)
    assert "as recorded by the service" in table.stdout
    live = cli.run("status", "--live", "--json", config=config)
    assert json.loads(live.stdout)["sources"][0]["kind"] == "live"
    assert len(cli.sim.request_log) > calls


def test_status_flags_an_old_snapshot(cli: Cli, config: Path, daemon: Daemon):
    """A snapshot older than 3 reconcile intervals: flagged, exit 1 (is the service running?)."""
    daemon.tick()
    path = f"{cli.prefix}/snapshots/main"
    current = cli.store.read(path)
    old = dict(current.data, written_at="2020-01-01T00:00:00+00:00")
    cli.store.write(path, old, cas=current.version)
    result = cli.run("status", config=config)
    assert result.exit_code == 1
    assert "is `rotator run` running?" in result.stdout

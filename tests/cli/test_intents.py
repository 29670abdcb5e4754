"""The CLI asks the actor, it does not race it (issue 12): with a daemon holding the account's
lease, `rotate`, `password-changed --rotate-now` and `adopt` queue an intent that the daemon
carries out; with a dead holder the CLI takes the lease over once it lapses.

The daemon here is the real `Daemon` in-process on the same config, its election and intent poll
driven by a thread (the jobs `rotator run` schedules); the CLI runs through click's runner.
"""

from __future__ import annotations

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
    def __init__(self, path: Path) -> None:
        self.daemon = Daemon(config_mod.load(path), config_path=path)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self.stop.wait(0.1):
            self.daemon.elect(spread=False)
            self.daemon.poll_intents()

    def __enter__(self) -> Daemon:
        self.daemon.elect(spread=False)
        self.thread.start()
        return self.daemon

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=10)
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

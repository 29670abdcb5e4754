"""`python -m rotator run` as a real process: simulator (in this test, wall clock, 30 s keys),
the session OpenBao, a command hook, a webhook notification channel and an sd_notify socket.

One scenario, about 25 s of real time: keys are created and handed off; SIGHUP with a broken
config is rejected; a rotation starts, SIGTERM arrives while its hand-off command runs, the step
finishes and the process exits 0; a restart completes the rotation (old key revoked). Every log
line, the /metrics text, every notification and the command's argv/env dump are searched for every
secret and key id the simulator ever generated.
"""

from __future__ import annotations

import json
import signal
import socket
import stat
import sys
import threading
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from rotator.clock import SystemClock
from rotator.simulator import Simulator, SimulatorOptions
from rotator.state import parse_note

from fixtures.configs import OBSERVED_DAEMON
from fixtures.processes import RunProcess, daemon_env, wait_for
from fixtures.simulator import MASTER_KEY, MASTER_SECRET, MASTER_UID
from fixtures.vault import free_port

LIFETIME_S = 30
CONFIG = (
    """
[bybit]
base_url = "{sim}"
timeout = "3s"
[vault]
address = "{vault}"
prefix = "{prefix}"
[vault.auth]
method = "token"
token_env = "T_RUN_VAULT_TOKEN"
[policy]
key_lifetime = "30s"
renew_before = "18s"
grace_period = "4s"
jitter = "2s"
retry_budget = "3s"
reconcile_interval = "3s"
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
[[keys.hooks]]
type = "command"
argv = ["{python}", "{hook}", "--key-name-from-env"]
timeout = "20s"
"""
    + OBSERVED_DAEMON
)
HOOK = """
import json, os, sys, time
base = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(base, "calls.log"), "a") as f:
    f.write(json.dumps({"at": "start", "argv": sys.argv, "env": dict(os.environ)}) + "\\n")
if os.path.exists(os.path.join(base, "slow")):
    time.sleep(3)
with open(os.path.join(base, "calls.log"), "a") as f:
    f.write(json.dumps({"at": "end"}) + "\\n")
"""


class Notify:
    """An sd_notify listener: what systemd would receive."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except TimeoutError:
                continue
            except OSError:
                return

    def seen(self, line: str) -> bool:
        return any(line in m.splitlines() for m in self.messages)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture(name="generated")
def _generated():
    """Every random string the simulator makes (key ids and secrets), recorded."""
    return []


@pytest.fixture(name="sim")
def _sim(generated):
    sim = Simulator(
        clock=SystemClock(), options=SimulatorOptions(key_lifetime=timedelta(seconds=LIFETIME_S))
    )
    original = sim._random

    def recording(alphabet: str, length: int) -> str:
        value = original(alphabet, length)
        generated.append(value)
        return value

    sim._random = recording
    sim.add_account(MASTER_UID, MASTER_KEY, MASTER_SECRET, sub_uids=[2001, 2002], ips=["127.0.0.1"])
    server = sim.serve("127.0.0.1", 0)
    yield sim
    server.close()


def test_daemon_process_rotates_reloads_stops_and_resumes(  # noqa: PLR0917 (fixtures)
    sim, generated, bao, vault_store, vault_prefix, tmp_path, capture
):
    vault_store.write(
        f"{vault_prefix}/accounts/main/master",
        {"api_key": MASTER_KEY, "api_secret": MASTER_SECRET},
        cas=0,
    )
    (tmp_path / "hook.py").write_text(HOOK)
    url_file = tmp_path / "notify-url"
    url_file.write_text(capture.url + "/notify")
    port = free_port()
    config = tmp_path / "rotator.toml"
    good = CONFIG.format(
        sim=sim.base_url,
        vault=bao.address,
        prefix=vault_prefix,
        out=tmp_path,
        python=sys.executable,
        hook=tmp_path / "hook.py",
        metrics_port=port,
        notify_url_file=url_file,
    )
    config.write_text(good)
    notify = Notify(tmp_path / "notify.sock")
    env = daemon_env(tmp_path, "T_RUN_VAULT_TOKEN", bao.root_token, NOTIFY_SOCKET=str(notify.path))
    procs: list[RunProcess] = []
    calls = tmp_path / "calls.log"

    def call_lines() -> list[dict]:
        return [json.loads(x) for x in calls.read_text().splitlines()] if calls.exists() else []

    try:
        # ---- 1. start: READY=1, the initial key is created and handed off
        first = RunProcess(tmp_path, config, env, "run1")
        procs.append(first)
        wait_for(lambda: notify.seen("READY=1"), 15, "READY=1")
        env_file = tmp_path / "bot1.env"
        wait_for(lambda: [c for c in call_lines() if c["at"] == "end"], 10, "first hand-off")
        assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
        first_key = env_file.read_text().splitlines()[0].split("=", 1)[1]
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics").text
        assert (
            'rotator_rotations_completed_total{account="main",key="bot1",sub_uid="2001"} 1.0'
            in metrics
        )
        assert "rotator_vault_up 1.0" in metrics
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200

        # ---- 2. SIGHUP with a broken config: rejected, the old one keeps running
        config.write_text(good.replace('name = "bot1"', 'name = "Bot One!"'))
        first.p.send_signal(signal.SIGHUP)
        wait_for(lambda: first.has("config.reload_rejected"), 5, "reload rejected")
        config.write_text(good)
        assert first.p.poll() is None

        # ---- 3. SIGTERM while the rotation's hand-off command runs: the step finishes, exit 0
        (tmp_path / "slow").touch()
        wait_for(
            lambda: len([c for c in call_lines() if c["at"] == "start"]) >= 2,
            LIFETIME_S,
            "the rotation's hand-off",
        )
        first.p.send_signal(signal.SIGTERM)
        assert first.p.wait(30) == 0
        assert notify.seen("STOPPING=1")
        assert [c["at"] for c in call_lines()][-1] == "end"  # the command was not cut short
        assert first.has("daemon.stopped")
        second_key = env_file.read_text().splitlines()[0].split("=", 1)[1]
        assert second_key != first_key
        assert sim.key(first_key) is not None  # not revoked yet: grace period

        # ---- 4. restart: the rotation completes (old key revoked)
        (tmp_path / "slow").unlink()
        second = RunProcess(tmp_path, config, env, "run2")
        procs.append(second)
        wait_for(lambda: sim.key(first_key) is None, 20, "the old key revoked")
        wait_for(lambda: second.has("rotation.completed", reason="expiring"), 5, "completed")
        assert [k.api_key for k in sim.keys_of(2001) if parse_note(k.note)] == [second_key]
        metrics_text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
        assert "rotator_rotations_completed_total" in metrics_text
        second.p.send_signal(signal.SIGTERM)
        assert second.p.wait(30) == 0
    finally:
        for proc in procs:
            proc.kill()
        notify.close()

    # ---- 5. nothing secret anywhere
    secrets_ = [s for s in generated if len(s) >= 8] + [MASTER_SECRET, MASTER_KEY, bao.root_token]
    assert len(generated) >= 4
    texts = {
        "metrics": metrics_text,
        "notifications": "\n".join(r.body.decode() for r in capture.received),
        "command dump": calls.read_text(),
        "sd_notify": "\n".join(notify.messages),
    }
    for proc in procs:
        texts[proc.out.name] = proc.out.read_text()
        texts[proc.err.name] = proc.err.read_text()
    for where, text in texts.items():
        for secret in secrets_:
            assert secret not in text, f"a secret or key id leaked into {where}"
    assert capture.received, "no notification was sent"
    assert {json.loads(r.body)["kind"] for r in capture.received} >= {"rotation_completed"}

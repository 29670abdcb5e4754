"""Real processes for the HA tests: one `rotator simulate`, N `rotator run` replicas on one
OpenBao, a holding proxy in front of Vault, a webhook receiver and the hand-off log.

Nothing here sleeps to make a test pass: every wait polls a real process or server with a bound.

The Vault proxy (`VaultProxy`) is what makes "the actor at step X" catchable: a test arms a hold
on the next Vault write that matches a predicate (the pending-key write, the verified write, the
consumer write of a promotion, the completion after a revoke), the writer blocks inside that
request, the test signals the writer (SIGSTOP or SIGKILL), and later lets the request go on. A
held request that reaches Vault after the pause is exactly a stale actor's late write. The proxy
also counts every request by kind, for bench/ha_vault_ops.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import hvac

from fixtures.configs import OBSERVED_DAEMON
from fixtures.processes import RunProcess, daemon_env, wait_for

MASTER_UID = 1000
MASTER_KEY = "MASTERKEY0000000001"
MASTER_SECRET = "MASTERSECRET00000000000000000000001"
SUB_UID = 2001
KEY_NAME = "bot"
TOKEN_ENV = "T_HA_VAULT_TOKEN"


# ------------------------------------------------------------------------------ simulator
SEED = f"""
[options]
rate_limits_enabled = false

[[accounts]]
uid = {MASTER_UID}
api_key = "{MASTER_KEY}"
api_secret = "{MASTER_SECRET}"
sub_uids = [{SUB_UID}]
ips = ["127.0.0.1"]
"""


class SimProcess:
    """`rotator simulate` on a free loopback port, wall clock, short key lifetime."""

    def __init__(self, tmp: Path, port: int, lifetime: str) -> None:
        seed = tmp / "seed.toml"
        seed.write_text(SEED)
        self.log = tmp / "sim.out"
        with self.log.open("wb") as out:
            self.p = subprocess.Popen(
                [
                    *(sys.executable, "-m", "rotator", "simulate"),
                    *("--listen", f"127.0.0.1:{port}", "--seed", str(seed)),
                    *("--key-lifetime", lifetime),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.url = f"http://127.0.0.1:{port}"
        wait_for(lambda: b"listening" in self.log.read_bytes() or self.p.poll(), 20, "simulator")
        if self.p.poll() is not None:
            raise RuntimeError(f"simulator exited: {self.log.read_text()[-1000:]}")

    def fault(self, **spec: Any) -> None:
        httpx.post(f"{self.url}/_sim/faults", json=spec, timeout=5).raise_for_status()

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.p.pid, signal.SIGKILL)
        self.p.wait(5)


class QuietServer(ThreadingHTTPServer):
    """A loopback server whose callers may be SIGKILLed mid-request: no traceback on stderr."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        del request, client_address


# ------------------------------------------------------------------------------ vault proxy
@dataclass
class Hold:
    """Hold the next Vault write whose path ends with `path_suffix` and whose data matches."""

    path_suffix: str
    match: Callable[[dict[str, Any]], bool]
    caught: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    body: dict[str, Any] | None = None
    client_port: int | None = None  # the writer's local port: `socket_owner` finds its pid


class VaultProxy:
    """A loopback HTTP proxy to OpenBao that can hold one write and counts every request."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.counts: Counter[str] = Counter()
        self.hold: Hold | None = None
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                proxy._maybe_hold(self.command, self.path, body, self.client_address[1])
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() not in {"host", "content-length", "connection"}
                }
                try:
                    reply = httpx.request(
                        self.command,
                        proxy.upstream + self.path,
                        content=body,
                        headers=headers,
                        timeout=30,
                    )
                except httpx.HTTPError:
                    self.send_error(502)
                    return
                skip = {"content-length", "transfer-encoding", "connection", "content-encoding"}
                with contextlib.suppress(OSError):  # the caller was killed meanwhile
                    self.send_response(reply.status_code)
                    for k, v in reply.headers.items():
                        if k.lower() not in skip:
                            self.send_header(k, v)
                    self.send_header("Content-Length", str(len(reply.content)))
                    self.end_headers()
                    self.wfile.write(reply.content)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_LIST = _forward  # noqa: N815

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                del format, args

        self.server = QuietServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        host, port = self.server.server_address[:2]
        self.url = f"http://{host!s}:{port}"

    def _maybe_hold(self, method: str, path: str, body: bytes, client_port: int) -> None:
        path = path.split("?", 1)[0]
        self.counts[classify(method, path)] += 1
        hold = self.hold
        if hold is None or method not in {"POST", "PUT"} or not path.endswith(hold.path_suffix):
            return
        try:
            data = json.loads(body).get("data") or {}
        except ValueError:
            return
        with self._lock:
            if self.hold is not hold or hold.caught.is_set() or not hold.match(data):
                return
            hold.body = data
            hold.client_port = client_port
            hold.caught.set()
        hold.release.wait(120)

    def arm(self, path_suffix: str, match: Callable[[dict[str, Any]], bool]) -> Hold:
        self.hold = Hold(path_suffix=path_suffix, match=match)
        return self.hold

    def disarm(self) -> None:
        hold, self.hold = self.hold, None
        if hold is not None:
            hold.release.set()

    def close(self) -> None:
        self.disarm()
        self.server.shutdown()
        self.server.server_close()


_KINDS = (
    ("/leases/", "lease"),
    ("/intents/", "intent"),
    ("/state/", "state"),
    ("/keys/", "consumer"),
    ("/accounts/", "account"),
    ("/snapshots/", "snapshot"),
)


def classify(method: str, path: str) -> str:
    """`read state`, `write lease`, `destroy consumer`, ... for the request counts."""
    if "/v1/secret/" not in path:
        return f"{method.lower()} {path.split('?', maxsplit=1)[0].removeprefix('/v1/')}"
    op = {"GET": "read", "LIST": "list", "DELETE": "delete"}.get(method, "write")
    if "/destroy/" in path:
        op = "destroy"
    elif "/metadata/" in path:
        op = "metadata" if method in {"GET", "LIST"} else "metadata-write"
    if method == "GET" and "list=true" in path:
        op = "list"
    what = next((name for part, name in _KINDS if part in path), "other")
    return f"{op} {what}"


# ------------------------------------------------------------------------------ webhooks
class Receiver:
    """Records what the daemons POST (notification webhook)."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                with contextlib.suppress(ValueError):
                    receiver.received.append(json.loads(body))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                del format, args

        self.server = QuietServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        host, port = self.server.server_address[:2]
        self.url = f"http://{host!s}:{port}/notify"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# ------------------------------------------------------------------------------ replicas
# Hooks are shell one-liners: they start in milliseconds, so their timeouts fit well below a test's
# renew_deadline (the config refuses hooks whose timeouts add up to it).
#
# The gate: when the marker file exists, note "<daemon pid> <own pid>" and do what the marker says
# to the daemon running it. "stop": SIGSTOP, a paused actor mid hand-off, between this hook and the
# next (the hook closes its output first, so the daemon sees it finish rather than time out).
# "kill": SIGKILL, a dead actor; the gate then lingers while the marker exists (bounded), as a hook
# child that would outlive its daemon without a parent-death signal.
GATE_HOOK = """\
m="$1"; [ -f "$m" ] || exit 0
echo "$PPID $$" >> "$2"
case "$(cat "$m")" in
  stop) exec >/dev/null 2>&1; kill -STOP "$PPID" ;;
  kill) kill -KILL "$PPID"; i=0
        while [ -f "$m" ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done ;;
esac
exit 0
"""

CONFIG = (
    """\
[bybit]
base_url = "{sim}"
timeout = "3s"
max_retries = 1
[vault]
address = "{vault}"
prefix = "{prefix}"
timeout = "5s"
[vault.auth]
method = "token"
token_env = "{token_env}"
[policy]
key_lifetime = "{lifetime}"
renew_before = "{renew_before}"
grace_period = "{grace}"
jitter = "0s"
retry_budget = "1s"
reconcile_interval = "{reconcile}"
[leader_election]
lease_duration = "{lease}"
renew_deadline = "{renew}"
retry_period = "{retry}"
[[accounts]]
name = "main"
[[keys]]
name = "{key}"
account = "main"
sub_uid = {sub_uid}
permissions = {{ ContractTrade = ["Order", "Position"] }}
[[keys.hooks]]
type = "command"
argv = ["/bin/sh", "{tmp}/gate.sh", "{tmp}/gate.marker", "{tmp}/gate.started"]
timeout = "{gate_timeout}"
[[keys.hooks]]
type = "file"
path = "{tmp}/bot.env"
[[keys.hooks]]
type = "command"
argv = ["/bin/sh", "{tmp}/handoff_log.sh", "{tmp}/handoffs.jsonl"]
timeout = "{log_timeout}"
"""
    + OBSERVED_DAEMON
)


@dataclass(frozen=True)
class Timing:
    lease: str = "3s"
    renew: str = "2s"
    retry: str = "500ms"
    # A rotation starts 12 s after a key's creation. The verify step insists the new key outlives
    # its own renewal moment, so an interrupted rotation has 12 s to get past verify (a pause of
    # lease_duration plus a loaded machine fit), and 28 s before the old key expires.
    lifetime: str = "40s"
    renew_before: str = "28s"
    grace: str = "1s"
    reconcile: str = "2s"

    @property
    def lease_s(self) -> float:
        return _seconds(self.lease)

    @property
    def retry_s(self) -> float:
        return _seconds(self.retry)


def _seconds(text: str) -> float:
    if text.endswith("ms"):
        return int(text[:-2]) / 1000
    return float(text.removesuffix("s"))


class Replica(RunProcess):
    """One `rotator run` of the cluster, leading its own process group: teardown kills the group,
    so no hook child survives us."""

    def __init__(self, tmp: Path, n: int, config: Path, env: dict[str, str], port: int) -> None:
        super().__init__(tmp, config, env, f"replica{n}", own_session=True)
        self.n = n
        self.metrics_port = port
        self.stopped = False

    def metric(self, name: str, labels: str) -> float | None:
        try:
            text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2).text
        except httpx.HTTPError:
            return None
        m = re.search(rf"^{name}\{{[^}}]*{labels}[^}}]*\}} (\S+)$", text, re.MULTILINE)
        return float(m.group(1)) if m else None

    def signal(self, sig: int) -> None:
        os.kill(self.pid, sig)
        self.stopped = sig == signal.SIGSTOP

    def teardown(self) -> None:
        self.kill()


class Cluster:
    """One simulator, one Vault prefix behind a proxy, N replicas of `rotator run`."""

    def __init__(
        self,
        *,
        tmp: Path,
        bao: Any,
        prefix: str,
        free_port: Callable[[], int],
        timing: Timing | None = None,
        replicas: int = 3,
    ) -> None:
        self.tmp = tmp
        self.bao = bao
        self.prefix = prefix
        self.timing = timing or Timing()
        self.free_port = free_port
        self.sim = SimProcess(tmp, free_port(), self.timing.lifetime)
        self.proxy = VaultProxy(bao.address)
        self.receiver = Receiver()
        self.vault = hvac.Client(url=bao.address, token=bao.root_token)
        self.vault.secrets.kv.v2.create_or_update_secret(
            path=f"{prefix}/accounts/main/master",
            secret={"api_key": MASTER_KEY, "api_secret": MASTER_SECRET},
            mount_point="secret",
        )
        for rel in (f"state/{KEY_NAME}", f"keys/{KEY_NAME}"):
            # Keep every version's metadata (KV v2 prunes past 10; a rotation writes about 10
            # state versions): the checker reads the whole history afterwards.
            self.vault.secrets.kv.v2.update_metadata(
                path=f"{prefix}/{rel}", max_versions=1000, mount_point="secret"
            )
        (tmp / "gate.sh").write_text(GATE_HOOK)
        from history import HANDOFF_HOOK  # noqa: PLC0415 -- the hook text lives with its reader

        (tmp / "handoff_log.sh").write_text(HANDOFF_HOOK)
        (tmp / "notify-url").write_text(self.receiver.url)
        self.env = daemon_env(tmp, TOKEN_ENV, bao.root_token)
        self.replicas: list[Replica] = []
        self._n = 0
        for _ in range(replicas):
            self.start_replica()

    def config_text(self, metrics_port: int) -> str:
        t = self.timing
        return CONFIG.format(
            sim=self.sim.url,
            vault=self.proxy.url,
            prefix=self.prefix,
            token_env=TOKEN_ENV,
            lifetime=t.lifetime,
            renew_before=t.renew_before,
            grace=t.grace,
            reconcile=t.reconcile,
            lease=t.lease,
            renew=t.renew,
            retry=t.retry,
            key=KEY_NAME,
            sub_uid=SUB_UID,
            tmp=self.tmp,
            gate_timeout=f"{int(_seconds(t.renew) * 500)}ms",
            log_timeout=f"{int(_seconds(t.renew) * 400)}ms",
            metrics_port=metrics_port,
            notify_url_file=self.tmp / "notify-url",
        )

    def write_config(self, name: str, metrics_port: int) -> Path:
        path = self.tmp / name
        path.write_text(self.config_text(metrics_port))
        return path

    def start_replica(self) -> Replica:
        self._n += 1
        port = self.free_port()
        # The same config for every replica but the metrics port (they share one host here).
        config = self.write_config(f"rotator{self._n}.toml", port)
        replica = Replica(self.tmp, self._n, config, self.env, port)
        self.replicas.append(replica)
        return replica

    def by_pid(self, pid: int) -> Replica | None:
        return next((r for r in self.replicas if r.pid == pid), None)

    def live(self) -> list[Replica]:
        return [r for r in self.replicas if r.alive() and not r.stopped]

    # ---- Vault reads, straight to OpenBao (never through the proxy)
    def read(self, rel: str) -> dict[str, Any] | None:
        try:
            resp = self.vault.secrets.kv.v2.read_secret_version(
                path=f"{self.prefix}/{rel}", mount_point="secret", raise_on_deleted_version=False
            )
        except hvac.exceptions.InvalidPath:
            return None
        data = resp["data"]["data"]
        return data if isinstance(data, dict) else None

    def read_version(self, rel: str, version: int) -> dict[str, Any] | None:
        try:
            resp = self.vault.secrets.kv.v2.read_secret_version(
                path=f"{self.prefix}/{rel}",
                version=version,
                mount_point="secret",
                raise_on_deleted_version=False,
            )
        except hvac.exceptions.InvalidPath:
            return None
        data = resp["data"]["data"]
        return data if isinstance(data, dict) else None

    def state(self) -> dict[str, Any] | None:
        return self.read(f"state/{KEY_NAME}")

    def rotation(self) -> dict[str, Any] | None:
        state = self.state()
        return (state or {}).get("rotation")

    def lease(self) -> dict[str, Any] | None:
        return self.read("leases/main")

    def holder_pid(self) -> int | None:
        lease = self.lease()
        if not lease or lease.get("released"):
            return None
        return pid_of(lease.get("holder"))

    def completed(self) -> int:
        """Completed rotations, the initial one included (`rotations` leaves it out)."""
        if self.replicas and not any(r.alive() for r in self.replicas):
            said = self.replicas[-1].err.read_text()[-800:]
            raise RuntimeError(f"every replica exited; the last said: {said}")
        state = self.state() or {}
        return int(state.get("rotations") or 0) + (state.get("last_rotation_at") is not None)

    def close(self) -> None:
        for r in self.replicas:
            r.teardown()
        self.proxy.close()
        self.receiver.close()
        self.sim.stop()


def socket_owner(local_port: int, pids: list[int]) -> int | None:
    """Which of `pids` owns the loopback TCP socket bound to `local_port` (Linux /proc)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as f:  # noqa: PTH123
            for line in f.readlines()[1:]:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == local_port:
                    inodes.add(fields[9])
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    link = str(fd.readlink())
                    if link.startswith("socket:[") and link[8:-1] in inodes:
                        return pid
    return None


def pid_of(identity: object) -> int | None:
    """The pid in a `host:pid:random` identity (None for anything else, e.g. a bare host name)."""
    if not isinstance(identity, str):
        return None
    parts = identity.split(":")
    if len(parts) >= 3 and parts[-2].isdigit():
        return int(parts[-2])
    return None


def replica_logs(cluster: Cluster) -> str:
    return textwrap.indent(
        "\n".join(
            f"replica{r.n} pid {r.pid}: "
            + " | ".join(
                str(e.get("event"))
                for e in r.events()
                if str(e.get("event", "")).startswith(("lease", "rotation", "orphan", "handoff"))
            )[-1500:]
            for r in cluster.replicas
        ),
        "  ",
    )


SLACK_S = 2.5  # two busy cores: process scheduling, Vault round trips


def takeover_once(cluster: Cluster, sig: int = signal.SIGKILL) -> tuple[float, float]:
    """SIGKILL (or `sig`) the lease holder; seconds until another replica holds the lease, and
    until it acts as leader (its rotator_leader gauge is 1 and it has renewed the lease once)."""
    old = wait_for(cluster.holder_pid, 30, "a lease holder", every=0.1)
    victim = cluster.by_pid(old)
    assert victim is not None, f"the lease holder pid {old} is none of the replicas"
    wait_for(lambda: victim.metric("rotator_leader", 'account="main"') == 1.0, 10, "leader gauge")
    killed = time.monotonic()
    victim.signal(sig)
    bound = cluster.timing.lease_s + cluster.timing.retry_s + SLACK_S
    new = wait_for(
        lambda: (pid := cluster.holder_pid()) not in (None, old) and pid,
        bound + 5,
        "another replica to take the lease",
        every=0.02,
    )
    held = time.monotonic() - killed
    successor = cluster.by_pid(new)
    assert successor is not None
    first = (cluster.lease() or {}).get("renewed_at")
    wait_for(
        lambda: (
            successor.metric("rotator_leader", 'account="main"') == 1.0
            and (cluster.lease() or {}).get("renewed_at") != first
        ),
        bound + 5,
        "the successor to act as leader",
        every=0.02,
    )
    acted = time.monotonic() - killed
    victim.p.wait(30)
    cluster.start_replica()
    return held, acted


def collect(cluster: Cluster) -> Any:
    """The run's `History` for the checker, read from outside every process."""
    from history import (  # noqa: PLC0415 -- one direction of import between the helpers
        History,
        handoff_log,
        sim_events,
        sim_faults_applied,
        vault_history,
    )

    consumer, failures, completed = vault_history(cluster.vault, cluster.prefix, KEY_NAME)
    return History(
        key_name=KEY_NAME,
        sub_uid=SUB_UID,
        events=sim_events(cluster.sim.url),
        consumer=consumer,
        handoffs=handoff_log(cluster.tmp / "handoffs.jsonl"),
        notifications=list(cluster.receiver.received),
        state_failures=failures,
        protocol_events=[e for r in cluster.replicas for e in r.events()],
        completed_rotations=completed,
        injected_faults=sim_faults_applied(cluster.sim.url),
        orphan_min_age=timedelta(
            seconds=_seconds(cluster.timing.lease) - _seconds(cluster.timing.renew)
        ),
    )

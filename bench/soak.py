"""Soak benchmark: N keys for D virtual days against the simulator and a real OpenBao.

    .venv/bin/python bench/soak.py --days 1095 --keys-per-sub 10 --fault-rate 0.05

Prints wall time, virtual time, reconciles, rotations and requests; the numbers in docs/rotation.md
come from here. Everything listens on 127.0.0.1 only; nothing waits for real time.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "engine")]

from rig import make_rig  # noqa: E402
from rotator import logs  # noqa: E402
from rotator.adapters.vault import VaultAuth, VaultStore  # noqa: E402
from rotator.clock import ManualClock, SystemClock  # noqa: E402
from rotator.model import Secret  # noqa: E402
from soak_run import orphans, soak  # noqa: E402

from fixtures.simulator import SIM_START, new_simulator  # noqa: E402
from fixtures.vault import start_bao, stop_bao  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--keys-per-sub", type=int, default=10)
    parser.add_argument("--fault-rate", type=float, default=0.03)
    parser.add_argument("--password-change-day", type=int, default=150)
    args = parser.parse_args()
    logs.configure("error", "console", stream=sys.stderr)

    with tempfile.TemporaryDirectory() as home:
        bao = start_bao(Path(home))
        try:
            clock = ManualClock(SIM_START)
            sim = new_simulator(clock)
            server = sim.serve("127.0.0.1", 0)
            store = VaultStore(
                address=bao.address,
                mount="secret",
                auth=VaultAuth(method="token", token=Secret(bao.root_token)),
                clock=SystemClock(),
            )
            rig = make_rig(sim, clock, store, f"bench-{uuid.uuid4().hex[:8]}")
            started = time.perf_counter()
            stats = soak(
                rig,
                keys_per_sub=args.keys_per_sub,
                days=args.days,
                fault_rate=args.fault_rate,
                password_change_day=args.password_change_day,
            )
            wall = time.perf_counter() - started
            requests = len(sim.request_log)
            left = orphans(rig)
            rig.close()
            server.close()
        finally:
            stop_bao(bao)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    keys = 2 * args.keys_per_sub
    print(
        f"keys={keys} virtual_days={stats.virtual_days:.0f} wall_s={wall:.1f} "
        f"virtual_days_per_wall_s={stats.virtual_days / wall:.1f}"
    )
    print(
        f"reconciles={stats.reconciles} rotations={sum(stats.rotations.values())} "
        f"min_rotations_per_key={min(stats.rotations.values())} failures_seen={stats.failures}"
    )
    print(
        f"bybit_requests={requests} (request log keeps the last 10000) "
        f"min_time_to_expiry_days={stats.min_margin.total_seconds() / 86400:.1f}"
    )
    print(f"orphans_left={len(left)} max_rss_mb={rss_mb:.0f}")


if __name__ == "__main__":
    main()

"""Vault operations added by leases and fences, per rotation and per hour at 10,000 keys, next to
today's reconcile cost.

    .venv/bin/python bench/ha_vault_ops.py --replicas 3 --quiet-s 30 --rotating-s 60

Real processes (the tests/ha cluster) behind a counting proxy in front of a throw-away
`bao server -dev`: every request the replicas send is classified (read/write/destroy/list of
lease, state, consumer, account records, token lookups, health). Two phases on one account with
one key:

1. quiet (keys live 1 h: nothing to rotate): the steady cost of leader election (lease reads and
   renewals per retry period) and of reconciles (Vault requests per reconcile);
2. rotating (keys live 24 s, a rotation about every 6 s): the extra requests per completed rotation
   by kind, the lease reads of the fences among them.

Then the model at 10,000 keys with the default settings (lease 60 s / renew 40 s / retry 15 s,
reconcile every 10 min, keys rotated 14 d before a 90 d expiry): lease requests per hour scale with
accounts x replicas / retry_period, fence requests with rotations per hour, reconcile requests with
keys x reconciles per hour. docs/performance.md quotes the output.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "ha")]

from cluster import Cluster, Timing, wait_for  # noqa: E402

from fixtures.vault import free_port, start_bao, stop_bao  # noqa: E402

DEFAULT_RETRY_S = 15.0
DEFAULT_RECONCILE_S = 600.0
ROTATION_PERIOD_H = (90 - 14) * 24  # a key rotates every 76 days by default


def reconciles(cluster: Cluster) -> int:
    return sum(
        1 for r in cluster.replicas for e in r.events() if e.get("event") == "reconcile.completed"
    )


class Phase(NamedTuple):
    counts: Counter[str]
    reconciles: int
    rotations: int
    seconds: float


def measure(cluster: Cluster, seconds: float) -> Phase:
    """Requests by kind, reconciles and completed rotations during a window of `seconds`."""
    before, rec0, done0 = Counter(cluster.proxy.counts), reconciles(cluster), cluster.completed()
    started = time.monotonic()
    deadline = started + seconds
    while time.monotonic() < deadline:  # a measurement window over real processes
        time.sleep(0.5)
    elapsed = time.monotonic() - started
    counts = Counter(cluster.proxy.counts)
    counts.subtract(before)
    return Phase(+counts, reconciles(cluster) - rec0, cluster.completed() - done0, elapsed)


def phase(bao, timing: Timing, replicas: int, seconds: float, tmp: Path):
    cluster = Cluster(
        tmp=tmp,
        bao=bao,
        prefix=f"bench-{uuid.uuid4().hex[:8]}",
        free_port=free_port,
        timing=timing,
        replicas=replicas,
    )
    try:
        wait_for(lambda: cluster.completed() >= 1, 60, "the initial rotation", every=0.2)
        return measure(cluster, seconds)
    finally:
        cluster.close()


def table(title: str, counts: Counter[str], per: float, per_name: str, seconds: float) -> None:
    print(f"\n{title}")
    print(f"| request | count | per {per_name} | per second |")
    print("|---|---|---|---|")
    for kind, n in sorted(counts.items()):
        print(f"| {kind} | {n} | {n / per if per else float('nan'):.2f} | {n / seconds:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--quiet-s", type=float, default=30)
    parser.add_argument("--rotating-s", type=float, default=60)
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--accounts", type=int, default=10)
    args = parser.parse_args()
    # lease 3s / renew 2s / retry 500ms, reconcile every 2s; a rotation about every 6 s
    base = Timing(lifetime="24s", renew_before="18s")
    quiet_t = Timing(lifetime="1h", renew_before="10m")
    with tempfile.TemporaryDirectory() as home:
        bao = start_bao(Path(home))
        try:
            with tempfile.TemporaryDirectory() as tmp:
                quiet_phase = phase(bao, quiet_t, args.replicas, args.quiet_s, Path(tmp))
            with tempfile.TemporaryDirectory() as tmp:
                busy_phase = phase(bao, base, args.replicas, args.rotating_s, Path(tmp))
        finally:
            stop_bao(bao)
    report(args, base, quiet_phase, busy_phase)


def report(args: argparse.Namespace, base: Timing, quiet_phase: Phase, busy_phase: Phase) -> None:
    quiet, q_rec, _, q_s = quiet_phase
    busy, b_rec, rotations, b_s = busy_phase
    retry_s = base.retry_s
    periods = q_s / retry_s
    print(
        f"{args.replicas} replicas, 1 account, 1 key; lease {base.lease} / renew {base.renew} "
        f"/ retry {base.retry}, reconcile every {base.reconcile}"
    )
    table(f"quiet phase: {q_s:.0f}s, {q_rec} reconciles", quiet, q_rec, "reconcile", q_s)
    table(
        f"rotating phase: {b_s:.0f}s, {rotations} rotations, {b_rec} reconciles",
        busy,
        rotations,
        "rotation",
        b_s,
    )

    def steady(suffix: str) -> float:
        """Requests of one record kind per retry period (all replicas, one account)."""
        return sum(n for k, n in quiet.items() if k.endswith(suffix)) / periods

    lease_period, intent_period = steady(" lease"), steady(" intent")
    snapshot_reads = quiet["read snapshot"] / periods
    snapshot_writes = quiet["write snapshot"] / q_rec if q_rec else 0.0
    per_key_reconcile = (quiet["read state"] + quiet["read consumer"]) / q_rec if q_rec else 0.0
    extra = {k: busy[k] - quiet[k] * (b_s / q_s) for k in set(busy) | set(quiet)}
    fence_per_rotation = extra.get("read lease", 0.0) / rotations if rotations else float("nan")
    all_per_rotation = sum(extra.values()) / rotations if rotations else float("nan")
    print(
        f"\nmeasured: per retry period (all {args.replicas} replicas, one account): "
        f"{lease_period:.2f} lease, {intent_period:.2f} intent-queue and {snapshot_reads:.2f} "
        f"snapshot requests; per reconcile: {snapshot_writes:.2f} snapshot writes, "
        f"{per_key_reconcile:.2f} key-record reads per key"
    )
    print(
        f"measured: per rotation, beyond the steady rate: {fence_per_rotation:.1f} lease reads "
        f"(the fences), {all_per_rotation:.1f} Vault requests in all"
    )

    periods_h = 3600 / DEFAULT_RETRY_S
    reconciles_h = 3600 / DEFAULT_RECONCILE_S
    rot_per_h = args.keys / ROTATION_PERIOD_H
    lease_h = lease_period * periods_h * args.accounts
    fence_h = fence_per_rotation * rot_per_h
    other_h = (intent_period + snapshot_reads) * periods_h * args.accounts
    other_h += snapshot_writes * reconciles_h * args.accounts
    reconcile_h = per_key_reconcile * args.keys * reconciles_h
    print(
        f"\nper hour at {args.keys} keys over {args.accounts} accounts, {args.replicas} "
        "replicas, defaults (retry 15s, reconcile 10 min, a rotation per key every 76 d):"
    )
    print("| what | Vault requests per hour |")
    print("|---|---|")
    print(f"| leases: renewals and candidates' reads | {lease_h:,.0f} |")
    print(f"| fences: {rot_per_h:.1f} rotations/h x {fence_per_rotation:.1f} | {fence_h:,.0f} |")
    print(f"| intent queue polls and follower snapshots | {other_h:,.0f} |")
    print(
        f"| reconciles by the lease holder: {per_key_reconcile:.2f}/key x {args.keys} keys x "
        f"{reconciles_h:.0f}/h | {reconcile_h:,.0f} |"
    )
    print(
        f"| reconciles before leases (every replica reconciled) | "
        f"{reconcile_h * args.replicas:,.0f} |"
    )
    if reconcile_h:
        print(
            f"| leases + fences / reconciles (holder only) | "
            f"{(lease_h + fence_h) / reconcile_h:.1%} |"
        )


if __name__ == "__main__":
    main()

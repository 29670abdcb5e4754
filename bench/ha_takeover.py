"""Takeover time: SIGKILL the lease holder of three `rotator run` replicas N times.

    .venv/bin/python bench/ha_takeover.py --kills 10 --lease 3s --renew 2s --retry 500ms

Real processes (the tests/ha cluster: `rotator simulate`, a throw-away `bao server -dev`, three
replicas). For each kill it measures, on the monotonic clock, how long until another replica holds
the lease (the lease record names it) and until it acts as leader (its rotator_leader gauge is 1
and it has renewed the lease once). Prints a table, then median and max against the bound
lease_duration + retry_period. docs/kubernetes.md quotes the numbers.
"""

from __future__ import annotations

import argparse
import signal
import statistics
import sys
import tempfile
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "ha")]

from cluster import Cluster, Timing, takeover_once, wait_for  # noqa: E402

from fixtures.vault import free_port, start_bao, stop_bao  # noqa: E402

SIGNALS = {"kill": signal.SIGKILL, "term": signal.SIGTERM}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--lease", default="3s")
    parser.add_argument("--renew", default="2s")
    parser.add_argument("--retry", default="500ms")
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--signal", choices=["kill", "term"], default="kill")
    args = parser.parse_args()
    timing = Timing(
        lease=args.lease,
        renew=args.renew,
        retry=args.retry,
        lifetime="1h",
        renew_before="10m",  # no rotation during the run: only leadership moves
    )
    with tempfile.TemporaryDirectory() as home, tempfile.TemporaryDirectory() as tmp:
        bao = start_bao(Path(home))
        cluster = Cluster(
            tmp=Path(tmp),
            bao=bao,
            prefix=f"bench-{uuid.uuid4().hex[:8]}",
            free_port=free_port,
            timing=timing,
            replicas=args.replicas,
        )
        rows = []
        try:
            wait_for(lambda: cluster.completed() >= 1, 60, "the initial rotation", every=0.2)
            for n in range(1, args.kills + 1):
                held, acted = takeover_once(cluster, SIGNALS[args.signal])
                rows.append((n, held, acted))
                print(f"kill {n:>2}: lease taken after {held:6.2f}s, acting after {acted:6.2f}s")
        finally:
            cluster.close()
            stop_bao(bao)
    bound = timing.lease_s + timing.retry_s
    print()
    print(
        f"lease_duration={args.lease} renew_deadline={args.renew} retry_period={args.retry}, "
        f"{args.replicas} replicas, {len(rows)} SIG{args.signal.upper()}s; "
        f"bound lease+retry = {bound:.2f}s"
    )
    print("| measure | median (s) | max (s) | min (s) |")
    print("|---|---|---|---|")
    for name, index in (("another replica holds the lease", 1), ("it acts as leader", 2)):
        values = [row[index] for row in rows]
        print(
            f"| {name} | {statistics.median(values):.2f} | {max(values):.2f} | {min(values):.2f} |"
        )


if __name__ == "__main__":
    main()

"""Run one reconcile against the simulator and OpenBao, and SIGKILL this very process right
after Bybit's create returns (before its secret reaches Vault). Used by test_sigkill.py."""

from __future__ import annotations

import json
import os
import signal
import sys
from datetime import datetime, timedelta

from rotator.adapters.bybit import BybitClient
from rotator.adapters.vault import VaultAuth, VaultStore
from rotator.clock import ManualClock, SystemClock
from rotator.model import KeySpec, ManagedAccount, ManagedKey, Secret, normalize_permissions
from rotator.policy import RotationPolicy
from rotator.rotation import Engine


class KillAfterCreate:
    def __init__(self, inner):
        self.inner = inner

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def create_sub_key(self, *args, **kwargs):
        self.inner.create_sub_key(*args, **kwargs)
        sys.stdout.write("created; dying\n")
        sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGKILL)


def main() -> None:
    args = json.loads(sys.argv[1])
    clock = ManualClock(datetime.fromisoformat(args["now"]))
    store = VaultStore(
        address=args["vault"],
        mount="secret",
        auth=VaultAuth(method="token", token=Secret(os.environ["VAULT_TOKEN"])),
        clock=SystemClock(),
    )
    client = BybitClient(
        args["bybit"], clock=clock, sleep=lambda s: clock.advance(timedelta(seconds=s))
    )
    prefix = args["prefix"]
    engine = Engine(
        exchange=KillAfterCreate(client),
        store=store,
        clock=clock,
        accounts=[
            ManagedAccount(
                name="main",
                master_path=f"{prefix}/accounts/main/master",
                state_path=f"{prefix}/accounts/main/state",
            )
        ],
        keys=[
            ManagedKey(
                name="alpha",
                account="main",
                spec=KeySpec(
                    sub_uid=2001,
                    read_only=False,
                    permissions=normalize_permissions(
                        {"ContractTrade": ["Order", "Position"], "Spot": ["SpotTrade"]}
                    ),
                ),
                consumer_path=f"{prefix}/keys/alpha",
                state_path=f"{prefix}/state/alpha",
                policy=RotationPolicy(),
            )
        ],
        owner="test",
    )
    engine.reconcile()
    sys.stdout.write("survived?!\n")


if __name__ == "__main__":
    main()

"""The rig of tests/engine_fast: the Engine over MemoryStore and MemoryExchange on a ManualClock.

The fakes pass the same contract suite as OpenBao and the simulator (tests/contract/), so these
scenarios mean what their twins in tests/engine mean, in milliseconds. Only the Engine's public
constructor and its entry points (reconcile, adopt) are used.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from rotator.clock import ManualClock
from rotator.model import (
    Credentials,
    KeySpec,
    ManagedAccount,
    ManagedKey,
    Secret,
    normalize_permissions,
)
from rotator.policy import RotationPolicy
from rotator.rotation import Engine
from rotator.state import parse_note
from rotator.testing import MemoryExchange, MemoryStore

from fixtures.simulator import MASTER_KEY, MASTER_SECRET, MASTER_UID, SIM_START, SUB_UIDS

PERMS = normalize_permissions({"ContractTrade": ["Order", "Position"], "Spot": ["SpotTrade"]})
PREFIX = "rotator"


def days(n: float) -> timedelta:
    return timedelta(days=n)


@dataclass
class FastRig:
    clock: ManualClock
    exchange: MemoryExchange
    store: MemoryStore
    keys: list[ManagedKey] = field(default_factory=list)

    account = ManagedAccount(
        name="main",
        master_path=f"{PREFIX}/accounts/main/master",
        state_path=f"{PREFIX}/accounts/main/state",
    )

    def add_key(self, name: str, sub_uid: int = 2001, *, ips: tuple[str, ...] = ()) -> ManagedKey:
        key = ManagedKey(
            name=name,
            account="main",
            spec=KeySpec(sub_uid=sub_uid, read_only=False, permissions=PERMS, ips=ips),
            consumer_path=f"{PREFIX}/keys/{name}",
            state_path=f"{PREFIX}/state/{name}",
            policy=RotationPolicy(),
        )
        self.keys.append(key)
        return key

    def engine(self, *, store: Any = None, handoff: Any = None) -> Engine:
        def sleep(seconds: float) -> None:
            self.clock.advance(timedelta(seconds=seconds))

        return Engine(
            exchange=self.exchange,
            store=store or self.store,
            clock=self.clock,
            accounts=[self.account],
            keys=self.keys,
            handoff=handoff,
            owner="test",
            sleep=sleep,
        )

    def consumer(self, name: str) -> dict[str, Any]:
        record = self.store.read(f"{PREFIX}/keys/{name}")
        assert record is not None
        return record.data

    def tagged(self, name: str, sub_uid: int = 2001) -> list[str]:
        """Live key ids on the exchange whose note tags them as `name`'s."""
        return [
            k.key_id
            for k in self.exchange.keys_of(sub_uid)
            if (tag := parse_note(k.note)) and tag.key_name == name
        ]

    def live(self, key_id: str, sub_uid: int = 2001) -> bool:
        return key_id in self.exchange.key_ids(sub_uid)

    def works(self, record: dict[str, Any]) -> bool:
        """The consumer record's key really signs requests."""
        creds = Credentials(api_key=record["api_key"], secret=Secret(record["api_secret"]))
        return self.exchange.query_key(creds).key_id == record["api_key"]


def make_fast_rig() -> FastRig:
    """Master 1000 (bound to 127.0.0.1) with subs 2001 and 2002; its key stored in the store."""
    clock = ManualClock(SIM_START)
    exchange = MemoryExchange(clock=clock)
    exchange.add_account(
        MASTER_UID, MASTER_KEY, MASTER_SECRET, sub_uids=SUB_UIDS, ips=("127.0.0.1",)
    )
    store = MemoryStore()
    store.write(
        f"{PREFIX}/accounts/main/master",
        {"api_key": MASTER_KEY, "api_secret": MASTER_SECRET},
        cas=0,
    )
    return FastRig(clock=clock, exchange=exchange, store=store)

"""A rotation rig: the real simulator over HTTP, the real OpenBao, one virtual clock for both."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from rotator.adapters.bybit import BybitClient
from rotator.adapters.vault import VaultStore
from rotator.clock import ManualClock
from rotator.model import (
    AckPolicy,
    Credentials,
    KeySpec,
    ManagedAccount,
    ManagedKey,
    Secret,
    normalize_permissions,
)
from rotator.policy import RotationPolicy
from rotator.rotation import Engine
from rotator.simulator import Simulator
from rotator.state import KeyState, parse_note

from fixtures.simulator import MASTER_KEY, MASTER_SECRET

PERMS = normalize_permissions({"ContractTrade": ["Order", "Position"], "Spot": ["SpotTrade"]})


def advance(clock: ManualClock):
    def sleep(seconds: float) -> None:
        clock.advance(timedelta(seconds=seconds))

    return sleep


@dataclass
class Rig:
    sim: Simulator
    clock: ManualClock
    store: VaultStore
    prefix: str
    keys: list[ManagedKey] = field(default_factory=list)
    clients: list[BybitClient] = field(default_factory=list)

    @property
    def account(self) -> ManagedAccount:
        return ManagedAccount(
            name="main",
            master_path=f"{self.prefix}/accounts/main/master",
            state_path=f"{self.prefix}/accounts/main/state",
        )

    def add_key(
        self,
        name: str,
        sub_uid: int = 2001,
        *,
        policy: RotationPolicy | None = None,
        ips: tuple[str, ...] = (),
        read_only: bool = False,
        ack: AckPolicy | None = None,
    ) -> ManagedKey:
        key = ManagedKey(
            name=name,
            account="main",
            spec=KeySpec(sub_uid=sub_uid, read_only=read_only, permissions=PERMS, ips=ips),
            consumer_path=f"{self.prefix}/keys/{name}",
            state_path=f"{self.prefix}/state/{name}",
            policy=policy or RotationPolicy(),
            ack=ack,
        )
        self.keys.append(key)
        return key

    def client(self, **kw: Any) -> BybitClient:
        c = BybitClient(
            self.sim.base_url,
            clock=self.clock,
            sleep=advance(self.clock),
            timeout_s=kw.pop("timeout_s", 2.0),
            **kw,
        )
        self.clients.append(c)
        return c

    def engine(self, *, exchange=None, store=None, owner: str = "test", handoff=None) -> Engine:
        return Engine(
            exchange=exchange or self.client(),
            store=store or self.store,
            clock=self.clock,
            accounts=[self.account],
            keys=self.keys,
            handoff=handoff,
            owner=owner,
            sleep=advance(self.clock),
        )

    def state(self, name: str) -> KeyState:
        record = self.store.read(f"{self.prefix}/state/{name}")
        assert record is not None
        return KeyState.from_record(record.data)

    def consumer(self, name: str) -> dict[str, Any]:
        record = self.store.read(f"{self.prefix}/keys/{name}")
        assert record is not None
        return record.data

    def tagged(self, name: str, sub_uid: int = 2001) -> list:
        """Live Bybit keys our notes tag as belonging to `name`."""
        return [
            k
            for k in self.sim.keys_of(sub_uid)
            if (tag := parse_note(k.note)) and tag.key_name == name
        ]

    def works(self, record: dict[str, Any]) -> bool:
        """The consumer record's key really signs requests on Bybit."""
        info = self.client().query_key(
            Credentials(api_key=record["api_key"], secret=Secret(record["api_secret"]))
        )
        return info.key_id == record["api_key"]

    def close(self) -> None:
        for c in self.clients:
            c.close()


def make_rig(
    simulator: Simulator, sim_clock: ManualClock, vault_store: VaultStore, prefix: str
) -> Rig:
    vault_store.write(
        f"{prefix}/accounts/main/master",
        {"api_key": MASTER_KEY, "api_secret": MASTER_SECRET},
        cas=0,
    )
    return Rig(sim=simulator, clock=sim_clock, store=vault_store, prefix=prefix)

"""The contract suite's two worlds: each test runs against the in-memory fake and the real thing.

`store` is a `MemoryStore` or a `VaultStore` on the real OpenBao dev server; `world` is a
`MemoryExchange` or a `BybitClient` talking HTTP to the real simulator. Both worlds are seeded
alike: master UID 1000 (MASTER_KEY, bound to 127.0.0.1) with subs 2001 and 2002, and a second
master, 3000, with sub 4001, on a ManualClock at 2026-01-01.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from rotator.adapters.bybit import BybitClient
from rotator.clock import ManualClock
from rotator.model import Credentials, Permissions, Secret, permissions_as_dict
from rotator.ports import Exchange, KeyStore
from rotator.simulator import Simulator
from rotator.testing import MemoryExchange, MemoryStore
from worlds import OTHER_MASTER_KEY, OTHER_MASTER_SECRET, OTHER_MASTER_UID, OTHER_SUB_UID

from fixtures.simulator import MASTER_KEY, MASTER_SECRET, MASTER_UID, SIM_START, SUB_UIDS


@dataclass
class StoreWorld:
    store: KeyStore
    prefix: str
    soft_delete: Callable[[str], None]
    """KV v2's soft delete of the latest version (not in the port: the engine never deletes)."""

    def path(self, name: str) -> str:
        return f"{self.prefix}/{name}"


@pytest.fixture(name="store_world", params=["memory", "openbao"])
def _store_world(request: pytest.FixtureRequest, vault_prefix: str) -> StoreWorld:
    if request.param == "memory":
        memory = MemoryStore()
        return StoreWorld(store=memory, prefix=vault_prefix, soft_delete=memory.delete_latest)
    vault = request.getfixturevalue("vault_store")

    def soft_delete(path: str) -> None:
        vault._client.secrets.kv.v2.delete_latest_version_of_secret(
            path=path, mount_point=vault.mount
        )

    return StoreWorld(store=vault, prefix=vault_prefix, soft_delete=soft_delete)


@dataclass
class ExchangeWorld:
    exchange: Exchange
    clock: ManualClock
    declare_password_change: Callable[[int, datetime], None]
    add_key: Callable[..., Credentials]
    """A key made outside the rotator (web UI) on a sub: add_key(uid, permissions=, ips=)."""

    sub_uids = SUB_UIDS

    # Built on access, not at import: a Secret made at collection time would stay registered for
    # the whole session, and tests of the redaction registry's empty case would never see it empty.
    @property
    def master(self) -> Credentials:
        return Credentials(api_key=MASTER_KEY, secret=Secret(MASTER_SECRET))

    @property
    def other_master(self) -> Credentials:
        return Credentials(api_key=OTHER_MASTER_KEY, secret=Secret(OTHER_MASTER_SECRET))

    def advance(self, delta: timedelta) -> None:
        self.clock.advance(delta)


def _advance(clock: ManualClock) -> Callable[[float], None]:
    def sleep(seconds: float) -> None:
        clock.advance(timedelta(seconds=seconds))

    return sleep


@pytest.fixture(name="world", params=["memory", "simulator"])
def _world(request: pytest.FixtureRequest) -> Iterator[ExchangeWorld]:
    clock = ManualClock(SIM_START)
    if request.param == "memory":
        fake = MemoryExchange(clock=clock)
        fake.add_account(
            MASTER_UID, MASTER_KEY, MASTER_SECRET, sub_uids=SUB_UIDS, ips=("127.0.0.1",)
        )
        fake.add_account(
            OTHER_MASTER_UID,
            OTHER_MASTER_KEY,
            OTHER_MASTER_SECRET,
            sub_uids=(OTHER_SUB_UID,),
            ips=("127.0.0.1",),
        )

        def fake_key(
            uid: int, *, permissions: Permissions, ips: tuple[str, ...] = ()
        ) -> Credentials:
            return fake.add_key(uid, permissions=permissions, ips=ips)

        yield ExchangeWorld(
            exchange=fake,
            clock=clock,
            declare_password_change=fake.declare_password_change,
            add_key=fake_key,
        )
        return
    sim = Simulator(clock=clock)
    sim.add_account(
        MASTER_UID, MASTER_KEY, MASTER_SECRET, sub_uids=list(SUB_UIDS), ips=["127.0.0.1"]
    )
    sim.add_account(
        OTHER_MASTER_UID,
        OTHER_MASTER_KEY,
        OTHER_MASTER_SECRET,
        sub_uids=[OTHER_SUB_UID],
        ips=["127.0.0.1"],
    )
    server = sim.serve("127.0.0.1", 0)
    client = BybitClient(sim.base_url, clock=clock, sleep=_advance(clock), timeout_s=2.0)

    def sim_key(uid: int, *, permissions: Permissions, ips: tuple[str, ...] = ()) -> Credentials:
        seeded = sim.add_key(
            uid, permissions=permissions_as_dict(permissions), ips=list(ips) or None
        )
        assert seeded.api_secret is not None
        return Credentials(api_key=seeded.api_key, secret=Secret(seeded.api_secret))

    def password_change(uid: int, at: datetime) -> Any:
        return sim.declare_password_change(uid, at)

    try:
        yield ExchangeWorld(
            exchange=client,
            clock=clock,
            declare_password_change=password_change,
            add_key=sim_key,
        )
    finally:
        client.close()
        server.close()

"""What only the fakes have: seeding checks, fault injection and call counters (the contract
suite covers what they share with the real adapters)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from rotator.clock import ManualClock
from rotator.errors import ExchangeUnavailable, StoreUnavailable
from rotator.model import Credentials, KeySpec, Secret
from rotator.testing import MemoryExchange, MemoryStore

START = datetime(2026, 1, 1, tzinfo=UTC)
PERMS = (("Spot", ("SpotTrade",)),)


def test_store_faults_fire_in_order_then_clear():
    """fail_next raises on the named operation, `times` times; clear_failures drops the rest."""
    store = MemoryStore()
    store.fail_next("write", StoreUnavailable("sealed"), times=2)
    with pytest.raises(StoreUnavailable):
        store.write("a", {}, cas=0)
    assert store.read("a") is None
    with pytest.raises(StoreUnavailable):
        store.write("a", {}, cas=0)
    assert store.write("a", {}, cas=0) == 1
    store.fail_next("read", StoreUnavailable("sealed"), times=5)
    store.clear_failures()
    assert store.read("a") is not None
    assert store.operations["write"] == 3
    assert store.paths() == ("a",)
    with pytest.raises(ValueError, match="unknown operation"):
        store.fail_next("delete", StoreUnavailable("x"))


def test_exchange_faults_and_counters():
    """fail_next raises without acting; calls counts every call; unknown operations are refused."""
    clock = ManualClock(START)
    fake = MemoryExchange(clock=clock)
    fake.add_account(1, "MASTER", "SECRET", sub_uids=(2,))
    master = Credentials(api_key="MASTER", secret=Secret("SECRET"))
    fake.fail_next("create_sub_key", ExchangeUnavailable("503"))
    with pytest.raises(ExchangeUnavailable):
        fake.create_sub_key(master, KeySpec(sub_uid=2, read_only=False, permissions=PERMS), note="")
    assert fake.key_ids(2) == ()
    fake.create_sub_key(master, KeySpec(sub_uid=2, read_only=False, permissions=PERMS), note="")
    assert len(fake.key_ids(2)) == 1
    assert fake.calls["create_sub_key"] == 2
    with pytest.raises(ValueError, match="unknown operation"):
        fake.fail_next("modify", ExchangeUnavailable("x"))


def test_exchange_seeding_is_checked():
    """Seeding refuses repeated UIDs, keys on a master, a 21st key and a repeated key id."""
    fake = MemoryExchange(clock=ManualClock(START), max_keys_per_uid=2)
    fake.add_account(1, "MASTER", "SECRET", sub_uids=(2,))
    with pytest.raises(ValueError, match="already exists"):
        fake.add_account(3, "OTHER", "SECRET", sub_uids=(2,))
    with pytest.raises(ValueError, match="not a sub-account"):
        fake.add_key(1, permissions=PERMS)
    fake.add_key(2, permissions=PERMS)
    fake.add_key(2, permissions=PERMS)
    with pytest.raises(ValueError, match="already holds 2 keys"):
        fake.add_key(2, permissions=PERMS)
    with pytest.raises(ValueError, match="api_key already exists"):
        fake.add_account(5, "MASTER", "SECRET")
    fake.add_account(5, "FIVE", "SECRET")  # the refused attempt left no trace

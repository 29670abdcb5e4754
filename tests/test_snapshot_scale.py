"""A snapshot of a fleet goes into the real OpenBao and comes back whole (issue 13: a list of
report objects was refused above ~100 keys, so `rotator status` swept Bybit instead)."""

from __future__ import annotations

import base64
import json
import zlib
from datetime import UTC, datetime, timedelta

import pytest
from rotator.errors import StateCorrupt
from rotator.key_report import AccountReport, KeyReport
from rotator.reports import Snapshot, report_to_record

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def fleet_snapshot(n: int) -> Snapshot:
    return Snapshot(
        account=AccountReport(name="main", master_ok=True, orphans=()),
        keys=tuple(
            KeyReport(
                name=f"k{i}",
                account="main",
                sub_uid=100_000 + i // 10,
                state="idle",
                key_id=f"KEY{i:012d}",
                expires_at=NOW + timedelta(days=90),
                next_at=NOW + timedelta(days=76),
                reason="expires 2026-04-01, renew 14d before",
                drift=(),
                password_change_pending=False,
            )
            for i in range(n)
        ),
        written_at=NOW,
        holder="replica-1",
        token=7,
    )


def test_a_thousand_keys_round_trip_through_openbao(vault_store, vault_prefix):
    snap = fleet_snapshot(1000)
    path = f"{vault_prefix}/snapshots/main"
    vault_store.write(path, snap.to_record(), cas=0)
    current = vault_store.read(path)
    assert current is not None
    assert Snapshot.from_record(current.data, path) == snap


def test_schema_1_snapshots_are_still_read():
    """A snapshot written by the version before (keys as a list) reads the same."""
    snap = fleet_snapshot(3)
    old = snap.to_record() | {"schema": 1, "keys": [report_to_record(k) for k in snap.keys]}
    del old["keys_zlib_b64"]
    assert Snapshot.from_record(old, "old") == snap


@pytest.mark.parametrize(
    "packed",
    [
        "not base64!",
        base64.b64encode(b"not zlib").decode(),
        base64.b64encode(zlib.compress(b"{}")).decode(),
        base64.b64encode(zlib.compress(json.dumps([{"name": "k"}]).encode())).decode(),
    ],
)
def test_a_damaged_snapshot_is_state_corrupt(packed):
    raw = fleet_snapshot(1).to_record() | {"keys_zlib_b64": packed}
    with pytest.raises(StateCorrupt):
        Snapshot.from_record(raw, "snap")

"""The shipped least-privilege policy (deploy/vault/rotator.hcl) is enough for a whole rotation,
and keeps the daemon out of everything else, including writing its own master key."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from rig import Rig
from rotator.adapters.vault import VaultAuth, VaultStore
from rotator.clock import SystemClock
from rotator.errors import StoreDenied
from rotator.model import Secret

POLICY = Path(__file__).resolve().parents[2] / "deploy" / "vault" / "rotator.hcl"


def test_engine_rotates_under_shipped_policy(rig: Rig, bao):
    """A token holding only the shipped policy (prefix substituted) runs a full rotation."""
    text = POLICY.read_text().replace("/rotator/", f"/{rig.prefix}/")
    name = f"rot-{rig.prefix}"
    bao.bao("policy", "write", name, "-", stdin=text)
    token = json.loads(
        bao.bao("token", "create", f"-policy={name}", "-no-default-policy", "-format=json")
    )["auth"]["client_token"]
    store = VaultStore(
        address=bao.address,
        mount="secret",
        auth=VaultAuth(method="token", token=Secret(token)),
        clock=SystemClock(),
    )
    rig.add_key("alpha")
    engine = rig.engine(store=store)
    assert engine.reconcile().keys[0].state == "idle"
    rig.clock.advance(timedelta(days=80))
    assert engine.reconcile().keys[0].state == "handed_off"
    rig.clock.advance(timedelta(days=1, hours=1))
    report = engine.reconcile().keys[0]
    assert report.state == "idle"
    assert report.completed
    assert rig.works(rig.consumer("alpha"))
    # and nothing else
    with pytest.raises(StoreDenied):
        store.read("elsewhere/secret")
    with pytest.raises(StoreDenied):
        store.write(f"{rig.prefix}/accounts/main/master", {"api_key": "x"}, cas=1)
    with pytest.raises(StoreDenied):
        store.destroy_versions(f"{rig.prefix}/accounts/main/master", [1])

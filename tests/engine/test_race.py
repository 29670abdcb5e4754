"""Two replicas on the same key: the CAS on the state record is the fence."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from rig import Rig


class InterleavingStore:
    """Before this replica's first claim write, let the other replica run a whole reconcile."""

    def __init__(self, inner, before_claim) -> None:
        self.inner = inner
        self.before_claim = before_claim
        self.fired = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def write(self, path, data, *, cas):
        rotation = data.get("rotation") if isinstance(data, dict) else None
        if not self.fired and rotation and rotation.get("claimed_by") == "replica-a":
            self.fired = True
            self.before_claim()
        return self.inner.write(path, data, cas=cas)


def test_two_replicas_rotate_once(rig: Rig):
    """Replica A loses the CAS race to replica B: one new key, A backs off and says why."""
    rig.add_key("alpha")
    rig.engine().reconcile()
    old = rig.consumer("alpha")["api_key"]
    rig.clock.advance(timedelta(days=80))
    b = rig.engine(owner="replica-b")
    b_results = []
    a = rig.engine(
        owner="replica-a",
        store=InterleavingStore(rig.store, lambda: b_results.append(b.reconcile())),
    )
    a_report = a.reconcile().keys[0]
    assert "another writer" in a_report.reason
    assert b_results[0].keys[0].state == "handed_off"
    live = {k.api_key for k in rig.tagged("alpha")}
    assert len(live) == 2  # the old key (in its grace period) and exactly one new key
    assert old in live
    assert rig.consumer("alpha")["api_key"] in live
    # both keep reconciling; still exactly one rotation
    rig.clock.advance(timedelta(days=1, hours=1))
    a.reconcile()
    b.reconcile()
    assert [k.api_key for k in rig.tagged("alpha")] == [rig.consumer("alpha")["api_key"]]
    assert rig.state("alpha").rotations == 1


def test_fresh_claim_of_another_replica_is_respected(rig: Rig):
    """A step another replica claimed moments ago is left alone until the claim goes stale."""
    rig.add_key("alpha")
    rig.engine().reconcile()
    rig.clock.advance(timedelta(days=80))
    a = rig.engine(owner="replica-a")
    b = rig.engine(owner="replica-b")

    class DieAfterClaim:
        def __init__(self, inner):
            self.inner = inner

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def create_sub_key(self, *args, **kwargs):
            raise SystemExit("replica A dies right after its claim")

    a.exchange = DieAfterClaim(a.exchange)
    try:
        a.reconcile()
    except SystemExit:
        pass
    report = b.reconcile().keys[0]
    assert "claimed by replica replica-a" in report.reason
    assert len(rig.tagged("alpha")) == 1
    rig.clock.advance(timedelta(minutes=6))  # the claim is stale now
    assert b.reconcile().keys[0].state == "handed_off"

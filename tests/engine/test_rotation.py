"""Whole rotations: the engine against the simulator (HTTP) and OpenBao, on a virtual clock."""

from __future__ import annotations

from datetime import timedelta

import pytest
from rig import Rig, make_rig
from rotator.errors import HandOffFailed, StoreUnavailable, VerificationFailed
from rotator.model import Secret
from rotator.policy import RotationPolicy
from rotator.simulator import SimulatorOptions
from rotator.state import Step

from fixtures.simulator import new_simulator


def days(n: float) -> timedelta:
    return timedelta(days=n)


def test_initial_reconcile_creates_and_stores_verified_keys(rig: Rig):
    """A configured key with no record gets a fresh key whose secret is in Vault and works."""
    rig.add_key("alpha", 2001)
    rig.add_key("beta", 2002)
    result = rig.engine().reconcile()
    assert [k.state for k in result.keys] == ["idle", "idle"]
    for name, uid in (("alpha", 2001), ("beta", 2002)):
        record = rig.consumer(name)
        assert rig.works(record)
        assert [k.api_key for k in rig.tagged(name, uid)] == [record["api_key"]]
        state = rig.state(name)
        assert state.rotation is None
        assert state.active is not None
        assert state.active.key_id == record["api_key"]
        assert record["expires_at"] is not None
    assert result.accounts[0].orphans == ()
    assert result.next_due is not None
    assert result.next_due > rig.clock.now() + days(70)


def test_full_rotation_keeps_old_key_through_grace(rig: Rig):
    """Due keys rotate; the old key lives through the grace period, then is revoked."""
    rig.add_key("alpha")
    engine = rig.engine()
    engine.reconcile()
    old = rig.consumer("alpha")
    rig.clock.advance(days(80))  # inside renew_before (14d) of the 90-day expiry
    result = engine.reconcile()
    report = result.keys[0]
    assert report.state == "handed_off"
    new = rig.consumer("alpha")
    assert new["api_key"] != old["api_key"]
    assert rig.works(new)
    assert rig.works(old), "old key must survive the grace period"
    assert rig.sim.key(old["api_key"]) is not None
    # previous version stays readable until the old key is revoked
    state = rig.state("alpha")
    assert state.previous is not None
    prev = rig.store.read_version(f"{rig.prefix}/keys/alpha", state.previous.consumer_version)
    assert prev is not None
    assert prev.data["api_key"] == old["api_key"]
    rig.clock.advance(timedelta(hours=23))
    assert engine.reconcile().keys[0].state == "handed_off"
    assert rig.sim.key(old["api_key"]) is not None
    rig.clock.advance(timedelta(hours=2))
    result = engine.reconcile()
    assert result.keys[0].state == "idle"
    assert result.keys[0].completed
    assert rig.sim.key(old["api_key"]) is None
    assert [k.api_key for k in rig.tagged("alpha")] == [new["api_key"]]
    # the revoked key's secret is destroyed from the consumer path's history
    assert rig.store.read_version(f"{rig.prefix}/keys/alpha", prev.version) is None
    assert rig.state("alpha").rotations == 1


def test_pending_secret_is_destroyed_from_state_history(rig: Rig):
    """After promotion no version of the state record holds a secret."""
    rig.add_key("alpha")
    rig.engine().reconcile()
    path = f"{rig.prefix}/state/alpha"
    latest = rig.store.read(path)
    assert latest is not None
    for version in range(1, latest.version + 1):
        old = rig.store.read_version(path, version)
        if old is not None:
            rotation = old.data.get("rotation") or {}
            assert not rotation.get("pending"), f"version {version} still holds a secret"


def test_verification_failure_keeps_old_key_and_deletes_new(rig: Rig):
    """A new key with the wrong permissions is deleted; consumers keep the old key."""
    rig.add_key("alpha")
    engine = rig.engine()
    engine.reconcile()
    old = rig.consumer("alpha")
    rig.clock.advance(days(80))
    rig.sim.faults.tamper_permissions(drop=("Spot", "SpotTrade"))
    result = engine.reconcile()
    report = result.keys[0]
    assert report.failure == "verification"
    assert "Spot" in (report.last_error or "")
    assert rig.consumer("alpha")["api_key"] == old["api_key"]
    assert [k.api_key for k in rig.tagged("alpha")] == [old["api_key"]]
    state = rig.state("alpha")
    assert state.rotation is not None
    assert state.rotation.step is Step.PLANNED
    assert state.rotation.pending is None
    # the fault was one-shot: after the backoff the rotation goes through
    rig.clock.advance(timedelta(hours=2))
    report = engine.reconcile().keys[0]
    assert report.state == "handed_off"
    assert rig.consumer("alpha")["api_key"] != old["api_key"]


def test_lost_create_reply_is_swept_and_recreated(rig: Rig):
    """A create whose reply is lost leaves a tagged key; the next attempt deletes it first."""
    rig.add_key("alpha")
    rig.sim.faults.lose_response()
    engine = rig.engine()
    report = engine.reconcile().keys[0]
    assert report.failure == "bybit_outcome_unknown"
    assert len(rig.tagged("alpha")) == 1  # committed on Bybit, secret unknown
    unknown = rig.tagged("alpha")[0].api_key
    rig.clock.advance(timedelta(hours=1))
    report = engine.reconcile().keys[0]
    assert report.state == "idle"
    live = rig.tagged("alpha")
    assert len(live) == 1
    assert live[0].api_key != unknown
    assert rig.works(rig.consumer("alpha"))


def test_key_limit_fails_with_clear_reason(rig: Rig):
    """A sub UID already holding 20 keys: the rotation fails and says what to do."""
    for _ in range(20):
        rig.sim.add_key(2001)
    rig.add_key("alpha")
    report = rig.engine().reconcile().keys[0]
    assert report.failure == "key_limit"
    assert "20" in (report.last_error or "")
    assert "delete keys" in (report.last_error or "")
    assert rig.tagged("alpha") == []


def test_handoff_failure_keeps_old_key_until_it_succeeds(rig: Rig):
    """The old key is not revoked while the hand-off keeps failing."""

    class Flaky:
        fail = True
        calls = 0

        def deliver(self, key_name, record, *, fence=None):
            self.calls += 1
            if self.fail:
                raise HandOffFailed("bot restart failed: exit status 3")

    hook = Flaky()
    rig.add_key("alpha")
    engine = rig.engine(handoff=hook)
    hook.fail = False
    engine.reconcile()
    old = rig.consumer("alpha")
    hook.fail = True
    rig.clock.advance(days(80))
    report = engine.reconcile().keys[0]
    assert report.failure == "handoff"
    for _ in range(5):
        rig.clock.advance(days(1))
        engine.reconcile()
    assert rig.sim.key(old["api_key"]) is not None
    hook.fail = False
    rig.clock.advance(days(1))
    engine.reconcile()
    rig.clock.advance(days(1.1))
    assert engine.reconcile().keys[0].state == "idle"
    assert rig.sim.key(old["api_key"]) is None


def test_password_change_rotates_every_key_at_once(rig: Rig):
    """An expiry appearing on the master key means a password change: all keys rotate now."""
    rig.add_key("alpha", 2001)
    rig.add_key("beta", 2002)
    engine = rig.engine()
    engine.reconcile()
    olds = {n: rig.consumer(n)["api_key"] for n in ("alpha", "beta")}
    rig.clock.advance(days(10))  # far from the 90-day renewal
    rig.sim.declare_password_change(1000)
    result = engine.reconcile()
    assert result.accounts[0].password_change_detected_now
    assert result.accounts[0].password_changed_at is not None
    for report in result.keys:
        assert report.state == "handed_off", report
        assert rig.consumer(report.name)["api_key"] != olds[report.name]
    rig.clock.advance(days(1.1))
    result = engine.reconcile()
    assert [k.state for k in result.keys] == ["idle", "idle"]
    assert not result.accounts[0].password_change_detected_now  # reported once


def test_declared_password_change(rig: Rig):
    """`password-changed` (declare) makes keys created before it due at once."""
    rig.add_key("alpha")
    engine = rig.engine()
    engine.reconcile()
    old = rig.consumer("alpha")["api_key"]
    rig.clock.advance(days(5))
    engine.declare_password_change("main", rig.clock.now())
    report = engine.reconcile().keys[0]
    assert report.state == "handed_off"
    assert rig.consumer("alpha")["api_key"] != old


def test_forced_rotation(rig: Rig):
    """force= rotates a key that is not due (rotator rotate --force)."""
    rig.add_key("alpha")
    engine = rig.engine()
    engine.reconcile()
    old = rig.consumer("alpha")["api_key"]
    report = engine.reconcile(force={"alpha"}).keys[0]
    assert report.state == "handed_off"  # once, and the grace period still protects consumers
    assert rig.consumer("alpha")["api_key"] != old
    assert rig.sim.key(old) is not None
    assert len(rig.tagged("alpha")) == 2


def test_inspect_has_no_side_effect(rig: Rig):
    """inspect() only reads: Vault gets no new version, Bybit sees no write."""
    rig.add_key("alpha")
    engine = rig.engine()
    engine.reconcile()
    rig.clock.advance(days(80))
    before = rig.store.read(f"{rig.prefix}/state/alpha")
    rig.sim.clear_request_log()
    result = engine.inspect()
    assert result.keys[0].next_action == "rotate"
    assert rig.store.read(f"{rig.prefix}/state/alpha").version == before.version
    assert {e.method for e in rig.sim.request_log} == {"GET"}


def test_ip_bound_key_never_due(rig: Rig):
    """An IP-bound key has no expiry and is never rotated by age."""
    rig.add_key("alpha", ips=("127.0.0.1",))
    engine = rig.engine()
    report = engine.reconcile().keys[0]
    assert report.expires_at is None
    assert report.next_action == "none"
    rig.clock.advance(days(400))
    assert engine.reconcile().keys[0].state == "idle"
    assert rig.state("alpha").rotations == 0


@pytest.mark.parametrize("name", ["master_missing"])
def test_missing_master_key_is_reported(rig: Rig, name):
    """No master record in Vault: every key of the account reports how to store it."""
    rig.store.destroy_versions(f"{rig.prefix}/accounts/main/master", [1])
    rig.add_key("alpha")
    result = rig.engine().reconcile()
    assert result.accounts[0].error is not None
    assert "bao kv put" in result.accounts[0].error
    assert result.keys[0].state == "failed"


def test_adopt_existing_key(rig: Rig):
    """A key made by hand is verified with its own secret and stored for consumers."""
    rig.add_key("alpha")
    made = rig.sim.add_key(
        2001, permissions={"ContractTrade": ["Order", "Position"], "Spot": ["SpotTrade"]}
    )
    engine = rig.engine()
    report = engine.adopt("alpha", made.api_key, Secret(made.api_secret))
    assert report.state == "idle"
    assert rig.consumer("alpha")["api_key"] == made.api_key
    assert rig.works(rig.consumer("alpha"))
    assert rig.state("alpha").active.key_id == made.api_key
    # the next reconcile keeps it (no rotation: not due)
    assert engine.reconcile().keys[0].state == "idle"
    assert rig.consumer("alpha")["api_key"] == made.api_key


def test_adopt_refuses_mismatch(rig: Rig):
    """A key whose permissions differ from the config is refused with the difference."""
    rig.add_key("alpha")
    made = rig.sim.add_key(2001, permissions={"Spot": ["SpotTrade"]})
    with pytest.raises(VerificationFailed, match="ContractTrade"):
        rig.engine().adopt("alpha", made.api_key, Secret(made.api_secret))
    assert rig.store.read(f"{rig.prefix}/keys/alpha") is None


def test_password_change_seen_only_on_sub_keys(sim_clock, vault_store, vault_prefix):
    """Bybit expiring only unbound keys, with an IP-bound master: the shrinking expiry of the
    managed keys themselves reveals the change, and they rotate at once."""
    sim = new_simulator(sim_clock, SimulatorOptions(password_change_keys="unbound"))
    server = sim.serve("127.0.0.1", 0)
    rig = make_rig(sim, sim_clock, vault_store, vault_prefix)
    try:
        rig.add_key("alpha")
        engine = rig.engine()
        engine.reconcile()
        old = rig.consumer("alpha")["api_key"]
        rig.clock.advance(days(10))
        sim.declare_password_change(1000)
        result = engine.reconcile()
        assert result.accounts[0].master_expires_at is None  # the master shows nothing
        assert result.accounts[0].password_change_detected_now
        report = result.keys[0]
        assert report.rotation_reason == "password_change"
        assert report.state == "handed_off"
        assert rig.consumer("alpha")["api_key"] != old
        assert not engine.reconcile().accounts[0].password_change_detected_now
    finally:
        rig.close()
        server.close()


class VaultRefusesPending:
    """A Vault that is down exactly when the new key's secret must be stored."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.refused = 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def write(self, path, data, *, cas):
        rotation = data.get("rotation") or {}
        if rotation.get("pending"):
            self.refused += 1
            raise StoreUnavailable("Vault sealed")
        return self.inner.write(path, data, cas=cas)


def test_secret_that_cannot_reach_vault_deletes_the_new_key(rig: Rig):
    """If the pending secret cannot be stored after retries, the new key is deleted on Bybit."""
    rig.add_key("alpha")
    rig.engine().reconcile()
    old = rig.consumer("alpha")["api_key"]
    rig.clock.advance(days(80))
    store = VaultRefusesPending(rig.store)
    report = rig.engine(store=store).reconcile().keys[0]
    assert store.refused == 4
    assert report.failure == "vault"
    assert "deleted on Bybit" in (report.last_error or "")
    assert [k.api_key for k in rig.tagged("alpha")] == [old]
    assert rig.consumer("alpha")["api_key"] == old


def test_failing_rotation_escalates_near_expiry(rig: Rig):
    """A rotation still failing at the latest safe moment is escalated, and keeps retrying."""
    rig.add_key("alpha")
    engine = rig.engine()
    engine.reconcile()
    rig.clock.advance(days(80))
    rig.sim.faults.server_errors(rate=1.0, path="/v5/user/create-sub-api")
    report = engine.reconcile().keys[0]
    assert report.state == "failed"
    assert not report.escalated
    rig.clock.advance(days(7.5))  # 2.5 days left: inside grace (1 d) + retry budget (2 d)
    report = engine.reconcile().keys[0]
    assert report.escalated
    assert report.state == "escalated"
    assert report.next_at is not None
    assert report.next_at - rig.clock.now() <= timedelta(hours=1)
    rig.sim.faults.clear()
    rig.clock.advance(timedelta(hours=1))
    report = engine.reconcile().keys[0]
    assert report.state == "handed_off"
    assert not report.escalated


def test_one_listing_per_sub_uid_per_reconcile(rig: Rig):
    """Expiry comes from one sub-apikeys listing per sub UID, not one call per key."""
    for i in range(4):
        rig.add_key(f"k{i}", 2001)
    engine = rig.engine()
    engine.reconcile()
    rig.sim.clear_request_log()
    engine.reconcile()
    paths = [e.path for e in rig.sim.request_log]
    assert paths.count("/v5/user/sub-apikeys") == 1
    assert paths.count("/v5/user/query-api") == 1  # the master key's own expiry


def test_tagged_keys_of_unmanaged_names_are_reported_not_deleted(rig: Rig):
    """A key we once created for a name no longer in the config is an orphan: reported, kept."""
    stray = rig.sim.add_key(
        2001, note="rotator:0123456789ab:retired-bot", permissions={"Spot": ["SpotTrade"]}
    )
    rig.add_key("alpha")
    result = rig.engine().reconcile()
    assert len(result.accounts[0].orphans) == 1
    assert rig.sim.key(stray.api_key) is not None


def test_one_listing_per_sub_uid_per_rotation_run(rig: Rig):
    """A run lists a sub UID once and applies its own changes to that copy: the first key's run
    lists once (the create step's fresh listing), a rotation twice (the expiry read, then the
    create step's fresh listing), the revoke once. The reports still carry Bybit's expiry of the
    new key and its (empty) drift, from the verified key's query-api answer."""
    rig.add_key("alpha", policy=RotationPolicy(grace_period=timedelta(hours=1)))
    engine = rig.engine()

    def listings() -> int:
        paths = [e.path for e in rig.sim.request_log]
        rig.sim.clear_request_log()
        return paths.count("/v5/user/sub-apikeys")

    rig.sim.clear_request_log()
    first = engine.reconcile().keys[0]
    assert listings() == 1
    assert first.state == "idle"
    live = {k.api_key: k for k in rig.sim.keys_of(2001)}
    assert first.expires_at == live[first.key_id].expires_at
    assert first.drift == ()
    rig.clock.advance(timedelta(days=80))
    rotated = engine.reconcile().keys[0]
    assert listings() == 2
    assert rotated.state == "handed_off"
    assert rotated.key_id != first.key_id
    live = {k.api_key: k for k in rig.sim.keys_of(2001)}
    assert rotated.expires_at == live[rotated.key_id].expires_at
    assert rotated.drift == ()
    rig.clock.advance(timedelta(hours=2))
    revoked = engine.reconcile()
    assert listings() == 1
    assert revoked.keys[0].state == "idle"
    assert {k.api_key for k in rig.sim.keys_of(2001)} == {rotated.key_id}
    assert revoked.accounts[0].orphans == ()

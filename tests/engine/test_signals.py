"""Signals an operator acts on, from whole runs against the simulator and OpenBao: orphans,
password change, drift, clock offset (issue 11)."""

from __future__ import annotations

from datetime import timedelta

from rig import PERMS, Rig, make_rig
from rotator.adapters.bybit import BybitClient
from rotator.clock import ManualClock
from rotator.drift import OnDrift
from rotator.errors import LeaseLost
from rotator.model import KeySpec, Secret
from rotator.orphans import ORPHAN_MIN_AGE
from rotator.password_change import PasswordChangeScope
from rotator.policy import RotationPolicy
from rotator.rotation import Engine
from rotator.simulator import SimulatorOptions
from structlog.testing import capture_logs

from fixtures.simulator import new_simulator


def days(n: float) -> timedelta:
    return timedelta(days=n)


def tag(name: str, rotation_id: str = "0123456789ab") -> str:
    return f"rotator:{rotation_id}:{name}"


def sub_perms() -> dict[str, list[str]]:
    return {group: list(values) for group, values in PERMS}


# ------------------------------------------------------------------------------------ orphans
def test_partial_runs_never_judge_another_keys_live_key_an_orphan(rig: Rig):
    """Two keys on one sub UID: a run that looks at one of them (status NAME, rotate NAME, due
    jobs) reports no orphan and logs no orphans.found; the live key of the other stays."""
    rig.add_key("alpha", 2001)
    rig.add_key("bound", 2001)
    engine = rig.engine()
    engine.reconcile()
    live = rig.consumer("bound")["api_key"]
    rig.clock.advance(ORPHAN_MIN_AGE * 2)
    with capture_logs() as logs:
        for result in (engine.inspect(only=["alpha"]), engine.reconcile(only=["alpha"])):
            assert result.accounts[0].orphans is None
    assert [e for e in logs if e["event"] == "orphans.found"] == []
    assert rig.sim.key(live) is not None
    full = engine.inspect()
    assert full.accounts[0].orphans == ()


def test_unreadable_state_record_means_no_orphan_judgement(rig: Rig):
    """A full run that could not read some key's state record has a partial view: no orphans,
    nothing deleted, even for a key that is really unreferenced."""
    rig.add_key("alpha", 2001)
    rig.add_key("beta", 2001)
    engine = rig.engine()
    engine.reconcile()
    live = rig.consumer("beta")["api_key"]
    current = rig.store.read(f"{rig.prefix}/state/beta")
    rig.store.write(f"{rig.prefix}/state/beta", {"schema": 99}, cas=current.version)
    rig.clock.advance(ORPHAN_MIN_AGE * 2)
    result = engine.reconcile()
    assert result.accounts[0].orphans is None
    assert rig.sim.key(live) is not None


def test_real_orphan_is_deleted_by_one_full_reconcile_once_old_enough(rig: Rig):
    """A tagged key of a configured name that no record refers to (a lost create) is left alone
    while it could be a create in flight, and deleted by the first full reconcile after."""
    rig.add_key("alpha", 2001)
    engine = rig.engine()
    engine.reconcile()
    lost = rig.sim.add_key(2001, note=tag("alpha"), permissions=sub_perms())
    young = engine.reconcile()
    assert young.accounts[0].orphans == ()
    assert rig.sim.key(lost.api_key) is not None
    rig.clock.advance(ORPHAN_MIN_AGE + timedelta(seconds=1))
    assert engine.inspect().accounts[0].orphans != ()  # status: the next reconcile deletes it
    assert rig.sim.key(lost.api_key) is not None
    with capture_logs() as logs:
        result = engine.reconcile()
    assert rig.sim.key(lost.api_key) is None
    assert len(result.accounts[0].orphans_deleted) == 1
    assert result.accounts[0].orphans == ()
    assert any(e["event"] == "orphan.deleted" for e in logs)
    assert rig.works(rig.consumer("alpha"))


def test_orphan_sweep_spares_a_key_any_record_points_at(rig: Rig):
    """The safety rule: a key a consumer record holds is never deleted, though no state record
    names it (the records are re-read right before each delete)."""
    rig.add_key("alpha", 2001)
    rig.add_key("beta", 2002)
    engine = rig.engine()
    engine.reconcile()
    held = rig.sim.add_key(2002, note=tag("beta", "feedfacecafe"), permissions=sub_perms())
    consumer = rig.store.read(f"{rig.prefix}/keys/beta")
    rig.store.write(
        f"{rig.prefix}/keys/beta", consumer.data | {"api_key": held.api_key}, cas=consumer.version
    )
    rig.clock.advance(ORPHAN_MIN_AGE * 2)
    engine.reconcile()
    assert rig.sim.key(held.api_key) is not None


def test_pending_key_of_a_rotation_in_flight_is_no_orphan(rig: Rig):
    """A created, not yet promoted key is referenced by its rotation's pending: never deleted."""
    rig.add_key("alpha", 2001)
    engine = rig.engine()
    engine.reconcile()
    rig.clock.advance(days(80))
    engine.reconcile()  # rotates: handed_off, the old key in its grace period
    state = rig.state("alpha")
    assert state.previous is not None
    rig.clock.advance(ORPHAN_MIN_AGE * 2)
    result = engine.inspect()
    assert result.accounts[0].orphans == ()
    assert rig.sim.key(state.previous.key_id) is not None


def test_tagged_keys_of_unknown_names_are_kept_and_reported(rig: Rig):
    """A key tagged for a name the config does not have: reported as kept, never deleted."""
    stray = rig.sim.add_key(2001, note=tag("retired-bot"), permissions={"Spot": ["SpotTrade"]})
    rig.add_key("alpha")
    engine = rig.engine()
    rig.clock.advance(days(1))
    result = engine.reconcile()
    assert len(result.accounts[0].orphans) == 1
    assert result.accounts[0].orphans_kept == result.accounts[0].orphans
    assert rig.sim.key(stray.api_key) is not None


# ---------------------------------------------------------------------------- password change
def test_password_change_pending_keys_drop_to_zero_once_rotated(rig: Rig):
    """After a declared change every affected key awaits its rotation; once replaced, none do,
    and the change is history (the alert's input clears)."""
    rig.add_key("alpha", 2001)
    rig.add_key("beta", 2002)
    engine = rig.engine()
    engine.reconcile()
    rig.clock.advance(days(5))
    engine.declare_password_change("main", rig.clock.now())
    assert engine.inspect().accounts[0].password_change_pending_keys == 2
    result = engine.reconcile()  # rotates both (promoted, handed off)
    assert result.accounts[0].password_change_pending_keys == 0
    assert all(k.password_change_pending is False for k in result.keys)
    assert result.accounts[0].password_changed_at is not None


def test_unbound_scope_spares_bound_keys(rig: Rig):
    """password_change_scope = "unbound": a declared change rotates the unbound key only."""
    policy = RotationPolicy(password_change_scope=PasswordChangeScope.UNBOUND)
    rig.add_key("free", 2001, policy=policy)
    rig.add_key("bound", 2002, policy=policy, ips=("127.0.0.1",))
    engine = rig.engine()
    engine.reconcile()
    bound = rig.consumer("bound")["api_key"]
    rig.clock.advance(days(5))
    engine.declare_password_change("main", rig.clock.now())
    result = engine.reconcile()
    states = {k.name: k for k in result.keys}
    assert states["free"].state == "handed_off"
    assert states["bound"].state == "idle"
    assert rig.consumer("bound")["api_key"] == bound
    assert result.accounts[0].password_change_pending_keys == 0


def test_all_scope_rotates_bound_keys_too(rig: Rig):
    """The default scope (all, as the seed guide says) rotates the IP-bound key as well."""
    rig.add_key("bound", 2002, ips=("127.0.0.1",))
    engine = rig.engine()
    engine.reconcile()
    bound = rig.consumer("bound")["api_key"]
    rig.clock.advance(days(5))
    engine.declare_password_change("main", rig.clock.now())
    assert engine.reconcile().keys[0].state == "handed_off"
    assert rig.consumer("bound")["api_key"] != bound


def test_far_expiry_appearing_on_a_bound_key_is_drift_not_password_change(
    sim_clock, vault_store, vault_prefix
):
    """An expiry that appears 90 days out (the IP binding was removed in the web UI) is not a
    password change: the key is reported as drifted, no password change is recorded."""
    sim = new_simulator(sim_clock, SimulatorOptions())
    server = sim.serve("127.0.0.1", 0)
    rig = make_rig(sim, sim_clock, vault_store, vault_prefix)
    try:
        rig.add_key(
            "bound", 2001, ips=("127.0.0.1",), policy=RotationPolicy(on_drift=OnDrift.ALERT)
        )
        engine = rig.engine()
        engine.reconcile()
        live = rig.consumer("bound")["api_key"]
        with sim._lock:
            key = sim._keys[live]
            key.ips = ()
            key.lifetime_expires_at = sim.now() + days(90)
        result = engine.reconcile()
        assert result.accounts[0].password_changed_at is None
        assert result.keys[0].drift
        assert result.keys[0].state == "idle"
        assert rig.consumer("bound")["api_key"] == live
    finally:
        rig.close()
        server.close()


# ------------------------------------------------------------------------------------ drift
def respec(rig: Rig, name: str, **changes) -> None:
    i = next(i for i, k in enumerate(rig.keys) if k.name == name)
    old = rig.keys[i]
    spec = KeySpec(
        **{
            "sub_uid": old.spec.sub_uid,
            "read_only": old.spec.read_only,
            "permissions": old.spec.permissions,
            "ips": old.spec.ips,
        }
        | changes
    )
    rig.keys[i] = type(old)(
        name=old.name,
        account=old.account,
        spec=spec,
        consumer_path=old.consumer_path,
        state_path=old.state_path,
        policy=old.policy,
    )


def test_config_change_rotates_to_the_declared_spec(rig: Rig):
    """The operator made the key read-only in the config: the live key drifts, is rotated with
    reason spec_changed, and the new key matches the config."""
    rig.add_key("alpha", 2001)
    rig.engine().reconcile()
    old = rig.consumer("alpha")["api_key"]
    rig.clock.advance(days(2))
    respec(rig, "alpha", read_only=True)
    engine = rig.engine()
    seen = engine.inspect().keys[0]
    assert seen.drift == ("readOnly is 0, wanted 1",)
    result = engine.reconcile()
    report = result.keys[0]
    assert report.rotation_reason == "spec_changed"
    assert report.state == "handed_off"
    new = rig.consumer("alpha")
    assert new["api_key"] != old
    assert new["read_only"] is True
    assert report.drift == ()


def test_drift_with_on_drift_alert_only_reports(rig: Rig):
    """on_drift = alert: the drift is reported, nothing rotates."""
    rig.add_key("alpha", 2001, policy=RotationPolicy(on_drift=OnDrift.ALERT))
    rig.engine().reconcile()
    old = rig.consumer("alpha")["api_key"]
    rig.clock.advance(days(2))
    respec(rig, "alpha", ips=("127.0.0.1",))
    report = rig.engine().reconcile().keys[0]
    assert report.drift == ("IPs are ['*'], wanted ['127.0.0.1']",)
    assert report.state == "idle"
    assert rig.consumer("alpha")["api_key"] == old


def test_no_drift_on_a_fresh_key(rig: Rig):
    """A key the rotator just created matches its spec in the listing: no false drift."""
    rig.add_key("alpha", 2001)
    rig.add_key("bound", 2002, ips=("127.0.0.1",), read_only=True)
    result = rig.engine().reconcile()
    assert [k.drift for k in result.keys] == [(), ()]


def test_drift_rotation_is_not_repeated_within_a_day(rig: Rig):
    """A drift that survives its own rotation (a Bybit quirk) does not rotate in a loop."""
    rig.add_key("alpha", 2001, policy=RotationPolicy(grace_period=timedelta(0)))
    engine = rig.engine()
    engine.reconcile()
    rig.clock.advance(days(2))
    assert engine.reconcile(force={"alpha"}).keys[0].state == "idle"  # rotated just now
    live = rig.consumer("alpha")["api_key"]
    with rig.sim._lock:
        rig.sim._keys[live].read_only = True
    report = engine.reconcile().keys[0]
    assert report.drift
    assert report.state == "idle"
    rig.clock.advance(days(1.1))
    with capture_logs() as logs:
        engine.reconcile()
    assert rig.consumer("alpha")["api_key"] != live
    assert any(e.get("reason") == "spec_changed" for e in logs if e["event"] == "rotation.planned")


# ------------------------------------------------------------------------------------ clocks
def test_host_clock_behind_bybit_plans_expiry_earlier(rig: Rig):
    """With the host clock 3 days behind Bybit's, the key is planned to expire 3 days earlier
    on the host clock than Bybit's expiredAt read as host time; ahead, never later."""
    rig.add_key("alpha", 2001)
    rig.engine().reconcile()
    reported = rig.sim.key(rig.consumer("alpha")["api_key"]).expires_at
    for skew, planned in ((-days(3), reported - days(3)), (days(3), reported)):
        host = ManualClock(rig.clock.now() + skew)
        client = BybitClient(rig.sim.base_url, clock=host, timeout_s=2.0)
        rig.clients.append(client)
        engine = Engine(
            exchange=client, store=rig.store, clock=host, accounts=[rig.account], keys=rig.keys
        )
        assert engine.inspect().keys[0].expires_at == planned
        assert abs(client.clock_offset + skew) < timedelta(seconds=1)


def test_key_replaced_by_adopt_is_kept_until_the_next_rotation(rig: Rig):
    """adopt keeps the key managed before as `previous`: no full reconcile deletes it as an
    orphan while bots may still use it; the reconcile after its next rotation does."""
    rig.add_key("alpha", 2001, policy=RotationPolicy(grace_period=timedelta(0)))
    engine = rig.engine()
    engine.reconcile()
    before = rig.consumer("alpha")["api_key"]
    made = rig.sim.add_key(2001, permissions=sub_perms())
    engine.adopt("alpha", made.api_key, Secret(made.api_secret))
    rig.clock.advance(ORPHAN_MIN_AGE * 2)
    assert engine.reconcile().accounts[0].orphans == ()
    assert rig.sim.key(before) is not None
    engine.reconcile(force={"alpha"})  # rotates; the adopted key is revoked, `before` forgotten
    rig.clock.advance(timedelta(seconds=1))
    engine.reconcile()
    assert rig.sim.key(before) is None


class StrictFenceLost:
    """Holds for state writes (fence) but loses the lease the moment a Bybit side effect is
    proven against the store (fence_strict): a deposed actor about to delete."""

    token = 0

    def fence(self) -> None:
        """Still believes it holds."""

    def fence_strict(self) -> None:
        raise LeaseLost("the lease is held by another replica")


def test_orphan_delete_is_fenced_by_the_lease(rig: Rig):
    """An actor that lost the account's lease deletes no orphan (the fence comes first)."""
    rig.add_key("alpha", 2001)
    rig.engine().reconcile()
    lost = rig.sim.add_key(2001, note=tag("alpha"), permissions=sub_perms())
    rig.clock.advance(ORPHAN_MIN_AGE * 2)
    deposed = Engine(
        exchange=rig.client(),
        store=rig.store,
        clock=rig.clock,
        accounts=[rig.account],
        keys=rig.keys,
        authorities={"main": StrictFenceLost()},
    )
    result = deposed.reconcile()
    assert rig.sim.key(lost.api_key) is not None
    assert result.accounts[0].orphans_deleted == ()

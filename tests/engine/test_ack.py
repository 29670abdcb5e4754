"""Acknowledgement before revoke (issue 14): the old key waits, after the grace period, until the
consumer confirms it runs on the new key; at most `max_wait`, never past the old key's expiry."""

from __future__ import annotations

from datetime import timedelta

from rig import Rig
from rotator.model import AckMode, AckPolicy
from structlog.testing import capture_logs


def ack_policy(rig: Rig, mode: AckMode = AckMode.VAULT, max_wait=timedelta(hours=72)):
    return AckPolicy(mode=mode, max_wait=max_wait, path=f"{rig.prefix}/ack/alpha")


def rotate_to_grace_end(rig: Rig, engine) -> tuple[str, str]:
    engine.reconcile()
    old = rig.consumer("alpha")["api_key"]
    rig.clock.advance(timedelta(days=80))
    assert engine.reconcile().keys[0].state == "handed_off"
    new = rig.consumer("alpha")["api_key"]
    rig.clock.advance(timedelta(hours=25))  # the grace period (24 h) is over
    return old, new


def test_old_key_waits_for_the_bot_to_acknowledge(rig: Rig):
    """No ack: the old key stays, the state says why; the bot's ack of the NEW key releases it."""
    rig.add_key("alpha", ack=ack_policy(rig))
    engine = rig.engine()
    old, new = rotate_to_grace_end(rig, engine)
    report = engine.reconcile().keys[0]
    assert report.state == "awaiting_ack"
    assert "acknowledge" in report.reason
    assert report.next_at is not None
    assert report.next_at <= rig.clock.now() + timedelta(minutes=5)
    assert rig.sim.key(old) is not None
    # an ack of the old key id counts for nothing
    rig.store.write(f"{rig.prefix}/ack/alpha", {"api_key": old}, cas=0)
    assert engine.reconcile().keys[0].state == "awaiting_ack"
    assert rig.sim.key(old) is not None
    rig.store.write(f"{rig.prefix}/ack/alpha", {"api_key": new}, cas=1)
    with capture_logs() as logs:
        done = engine.reconcile().keys[0]
    assert done.state == "idle"
    assert done.completed
    assert rig.sim.key(old) is None
    assert any(e["event"] == "ack.received" for e in logs)


def test_missing_ack_revokes_after_max_wait(rig: Rig):
    """After grace + max_wait the old key is revoked anyway, and the log says so."""
    rig.add_key("alpha", ack=ack_policy(rig, max_wait=timedelta(hours=6)))
    engine = rig.engine()
    old, _ = rotate_to_grace_end(rig, engine)
    assert engine.reconcile().keys[0].state == "awaiting_ack"
    rig.clock.advance(timedelta(hours=4))  # 5 h past the grace period
    assert engine.reconcile().keys[0].state == "awaiting_ack"
    rig.clock.advance(timedelta(hours=1, minutes=1))
    with capture_logs() as logs:
        report = engine.reconcile().keys[0]
    assert report.state == "idle"
    assert rig.sim.key(old) is None
    assert any(e["event"] == "ack.missing" for e in logs)


def test_ack_wait_never_runs_past_the_old_keys_expiry(rig: Rig):
    """max_wait is long, but the old key dies first: revoked at its expiry, not later."""
    rig.add_key("alpha", ack=ack_policy(rig, max_wait=timedelta(days=30)))
    engine = rig.engine()
    old, _ = rotate_to_grace_end(rig, engine)
    old_expiry = rig.state("alpha").previous.expires_at
    report = engine.reconcile().keys[0]
    assert report.state == "awaiting_ack"
    assert report.next_at <= old_expiry
    rig.clock.set(old_expiry)
    assert engine.reconcile().keys[0].state == "idle"
    assert rig.sim.key(old) is None


class Hooks:
    def deliver(self, key_name, record, *, fence=None):
        pass


def test_hook_mode_counts_a_successful_hand_off(rig: Rig):
    """mode hook: the hooks succeeded, so the revoke follows the grace period as usual."""
    rig.add_key("alpha", ack=ack_policy(rig, AckMode.HOOK))
    engine = rig.engine(handoff=Hooks())
    old, _ = rotate_to_grace_end(rig, engine)
    assert rig.state("alpha").rotation.acked_at is not None
    assert engine.reconcile().keys[0].state == "idle"
    assert rig.sim.key(old) is None


def test_inspect_shows_the_wait_without_side_effects(rig: Rig):
    """status (inspect) names the state too, and reads nothing it would act on."""
    rig.add_key("alpha", ack=ack_policy(rig))
    engine = rig.engine()
    rotate_to_grace_end(rig, engine)
    assert engine.inspect().keys[0].state == "awaiting_ack"

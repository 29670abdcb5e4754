"""Whole rotations on the in-memory fakes: the protocol, its failures and its backoff."""

from __future__ import annotations

from datetime import timedelta

from fast_rig import FastRig, days
from rotator.errors import ExchangeUnavailable, HandOffFailed, StoreUnavailable


def test_first_reconcile_creates_and_stores_verified_keys(rig: FastRig):
    """A configured key with no record gets a fresh key whose secret is stored and works."""
    rig.add_key("alpha", 2001)
    rig.add_key("beta", 2002)
    result = rig.engine().reconcile()
    assert [k.state for k in result.keys] == ["idle", "idle"]
    for name, uid in (("alpha", 2001), ("beta", 2002)):
        record = rig.consumer(name)
        assert rig.works(record)
        assert rig.tagged(name, uid) == [record["api_key"]]
        assert record["expires_at"] is not None
    assert result.accounts[0].orphans == ()
    assert result.next_due is not None
    assert result.next_due > rig.clock.now() + days(70)


def test_full_rotation_keeps_the_old_key_through_grace_then_revokes_it(rig: FastRig):
    """Due keys rotate; the old key lives through the grace period, then is revoked and its
    secret destroyed from the consumer path's history."""
    rig.add_key("alpha")
    engine = rig.engine()
    engine.reconcile()
    old = rig.consumer("alpha")
    rig.clock.advance(days(80))
    assert engine.reconcile().keys[0].state == "handed_off"
    new = rig.consumer("alpha")
    assert new["api_key"] != old["api_key"]
    assert rig.works(new)
    assert rig.works(old), "the old key must survive the grace period"
    assert rig.store.read_version("rotator/keys/alpha", 1) is not None
    rig.clock.advance(timedelta(hours=23))
    assert engine.reconcile().keys[0].state == "handed_off"
    assert rig.live(old["api_key"])
    rig.clock.advance(timedelta(hours=2))
    report = engine.reconcile().keys[0]
    assert report.state == "idle"
    assert report.completed
    assert not rig.live(old["api_key"])
    assert rig.tagged("alpha") == [new["api_key"]]
    assert rig.store.read_version("rotator/keys/alpha", 1) is None


def test_a_verification_failure_keeps_the_old_key_and_deletes_the_new(rig: FastRig):
    """A new key with the wrong permissions is deleted; consumers keep the old key; after the
    backoff the rotation goes through."""
    rig.add_key("alpha")
    engine = rig.engine()
    engine.reconcile()
    old = rig.consumer("alpha")
    rig.clock.advance(days(80))
    rig.exchange.tamper_next_create(drop=("Spot", "SpotTrade"))
    report = engine.reconcile().keys[0]
    assert report.failure == "verification"
    assert "Spot" in (report.last_error or "")
    assert rig.consumer("alpha")["api_key"] == old["api_key"]
    assert rig.tagged("alpha") == [old["api_key"]]
    rig.clock.advance(timedelta(hours=2))
    assert engine.reconcile().keys[0].state == "handed_off"
    assert rig.consumer("alpha")["api_key"] != old["api_key"]


def test_a_lost_create_reply_is_swept_and_recreated(rig: FastRig):
    """A create whose reply is lost leaves a tagged key; the next attempt deletes it first."""
    rig.add_key("alpha")
    rig.exchange.lose_next_create_reply()
    engine = rig.engine()
    assert engine.reconcile().keys[0].failure == "bybit_outcome_unknown"
    (unknown,) = rig.tagged("alpha")
    rig.clock.advance(timedelta(hours=1))
    assert engine.reconcile().keys[0].state == "idle"
    (live,) = rig.tagged("alpha")
    assert live != unknown
    assert rig.works(rig.consumer("alpha"))


def test_the_key_limit_fails_with_a_clear_reason(rig: FastRig):
    """A sub UID already holding 20 keys: the rotation fails and says what to do."""
    for _ in range(20):
        rig.exchange.add_key(2001, permissions=())
    rig.add_key("alpha")
    report = rig.engine().reconcile().keys[0]
    assert report.failure == "key_limit"
    assert "20" in (report.last_error or "")
    assert "delete keys" in (report.last_error or "")
    assert rig.tagged("alpha") == []


def test_a_failing_rotation_backs_off_escalates_near_expiry_and_recovers(rig: FastRig):
    """Creates keep failing: retried with backoff, escalated at the latest safe moment, and
    the rotation goes through once Bybit answers again."""
    rig.add_key("alpha")
    engine = rig.engine()
    engine.reconcile()
    rig.clock.advance(days(80))
    rig.exchange.fail_next("create_sub_key", ExchangeUnavailable("Bybit 503"), times=10_000)
    report = engine.reconcile().keys[0]
    assert report.state == "failed"
    assert not report.escalated
    assert report.next_at is not None
    assert report.next_at > rig.clock.now()  # backs off: not retried at once
    rig.clock.advance(days(7.5))  # 2.5 days left: inside grace (1 d) + retry budget (2 d)
    report = engine.reconcile().keys[0]
    assert report.escalated
    assert report.state == "escalated"
    assert report.next_at is not None
    assert report.next_at - rig.clock.now() <= timedelta(hours=1)
    rig.exchange.clear_failures()
    rig.clock.advance(timedelta(hours=1))
    report = engine.reconcile().keys[0]
    assert report.state == "handed_off"
    assert not report.escalated


class RefusesPending:
    """A store that is down exactly when the new key's secret must be stored."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.refused = 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def write(self, path, data, *, cas):
        if (data.get("rotation") or {}).get("pending"):
            self.refused += 1
            raise StoreUnavailable("Vault sealed")
        return self.inner.write(path, data, cas=cas)


def test_a_secret_that_cannot_be_stored_deletes_the_new_key(rig: FastRig):
    """If the pending secret cannot be stored after retries, the new key is deleted."""
    rig.add_key("alpha")
    rig.engine().reconcile()
    old = rig.consumer("alpha")["api_key"]
    rig.clock.advance(days(80))
    store = RefusesPending(rig.store)
    report = rig.engine(store=store).reconcile().keys[0]
    assert store.refused == 4
    assert report.failure == "vault"
    assert "deleted on Bybit" in (report.last_error or "")
    assert rig.tagged("alpha") == [old]
    assert rig.consumer("alpha")["api_key"] == old


def test_a_failing_hand_off_keeps_the_old_key_until_it_succeeds(rig: FastRig):
    """The old key is not revoked while the hand-off keeps failing."""

    class Flaky:
        fail = False

        def deliver(self, key_name, record, *, fence=None):
            if self.fail:
                raise HandOffFailed("bot restart failed: exit status 3")

    hook = Flaky()
    rig.add_key("alpha")
    engine = rig.engine(handoff=hook)
    engine.reconcile()
    old = rig.consumer("alpha")
    hook.fail = True
    rig.clock.advance(days(80))
    assert engine.reconcile().keys[0].failure == "handoff"
    for _ in range(5):
        rig.clock.advance(days(1))
        engine.reconcile()
    assert rig.live(old["api_key"])
    hook.fail = False
    rig.clock.advance(days(1))
    engine.reconcile()
    rig.clock.advance(days(1.1))
    assert engine.reconcile().keys[0].state == "idle"
    assert not rig.live(old["api_key"])


def test_a_password_change_rotates_every_key_at_once(rig: FastRig):
    """An expiry appearing on the master key means a password change: all keys rotate now."""
    rig.add_key("alpha", 2001)
    rig.add_key("beta", 2002)
    engine = rig.engine()
    engine.reconcile()
    olds = {n: rig.consumer(n)["api_key"] for n in ("alpha", "beta")}
    rig.clock.advance(days(10))
    rig.exchange.declare_password_change(1000)
    result = engine.reconcile()
    assert result.accounts[0].password_change_detected_now
    for report in result.keys:
        assert report.state == "handed_off", report
        assert rig.consumer(report.name)["api_key"] != olds[report.name]


def test_forced_rotation(rig: FastRig):
    """force= rotates a key that is not due; the grace period still protects consumers."""
    rig.add_key("alpha")
    engine = rig.engine()
    engine.reconcile()
    old = rig.consumer("alpha")["api_key"]
    assert engine.reconcile(force={"alpha"}).keys[0].state == "handed_off"
    assert rig.consumer("alpha")["api_key"] != old
    assert rig.live(old)
    assert len(rig.tagged("alpha")) == 2


def test_an_ip_bound_key_is_never_due(rig: FastRig):
    """An IP-bound key has no expiry and is never rotated by age."""
    rig.add_key("alpha", ips=("127.0.0.1",))
    engine = rig.engine()
    report = engine.reconcile().keys[0]
    assert report.expires_at is None
    assert report.next_action == "none"
    first = rig.consumer("alpha")["api_key"]
    rig.clock.advance(days(400))
    assert engine.reconcile().keys[0].state == "idle"
    assert rig.consumer("alpha")["api_key"] == first


def test_a_store_outage_acts_on_nothing_and_the_next_run_recovers(rig: FastRig):
    """Vault down for a whole run: the key reports a Vault failure and no key is made on Bybit;
    once Vault answers, the next run creates the key."""
    rig.add_key("alpha")
    engine = rig.engine()
    rig.store.fail_next("read", StoreUnavailable("Vault sealed"), times=1_000)
    report = engine.reconcile().keys[0]
    assert report.state == "failed"
    assert rig.exchange.key_ids(2001) == ()
    assert rig.exchange.calls["create_sub_key"] == 0
    rig.store.clear_failures()
    rig.clock.advance(timedelta(minutes=10))
    assert engine.reconcile().keys[0].state == "idle"
    assert rig.works(rig.consumer("alpha"))


def test_one_listing_per_sub_uid_per_reconcile(rig: FastRig):
    """Expiry comes from one listing per sub UID, not one call per key."""
    for i in range(4):
        rig.add_key(f"k{i}", 2001)
    engine = rig.engine()
    engine.reconcile()
    rig.exchange.calls.clear()
    engine.reconcile()
    assert rig.exchange.calls["list_sub_keys"] == 1
    assert rig.exchange.calls["query_key"] == 1  # the master key's own expiry


def test_inspect_has_no_side_effect(rig: FastRig):
    """inspect() only reads: no store write, no create or delete on the exchange."""
    rig.add_key("alpha")
    engine = rig.engine()
    engine.reconcile()
    rig.clock.advance(days(80))
    rig.store.operations.clear()
    rig.exchange.calls.clear()
    assert engine.inspect().keys[0].next_action == "rotate"
    assert rig.store.operations["write"] == 0
    assert rig.store.operations["destroy"] == 0
    assert rig.exchange.calls["create_sub_key"] == 0
    assert rig.exchange.calls["delete_sub_key"] == 0

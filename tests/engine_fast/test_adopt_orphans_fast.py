"""Adopt and orphan judging on the in-memory fakes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fast_rig import PERMS, FastRig
from rotator.errors import VerificationFailed


def test_adopt_takes_an_existing_key_under_management(rig: FastRig):
    """A key made by hand is verified with its own secret and stored for consumers."""
    rig.add_key("alpha")
    made = rig.exchange.add_key(2001, permissions=PERMS)
    engine = rig.engine()
    assert engine.adopt("alpha", made.api_key, made.secret).state == "idle"
    assert rig.consumer("alpha")["api_key"] == made.api_key
    assert rig.works(rig.consumer("alpha"))
    assert engine.reconcile().keys[0].state == "idle"  # not due: kept
    assert rig.consumer("alpha")["api_key"] == made.api_key


def test_adopt_refuses_a_key_unlike_the_config(rig: FastRig):
    """A key whose permissions differ from the config is refused with the difference."""
    rig.add_key("alpha")
    made = rig.exchange.add_key(2001, permissions=(("Spot", ("SpotTrade",)),))
    with pytest.raises(VerificationFailed, match="ContractTrade"):
        rig.engine().adopt("alpha", made.api_key, made.secret)
    assert rig.store.read("rotator/keys/alpha") is None


def test_a_tagged_key_of_an_unmanaged_name_is_reported_not_deleted(rig: FastRig):
    """A key we once created for a name no longer in the config: reported, kept."""
    stray = rig.exchange.add_key(
        2001, note="rotator:0123456789ab:retired-bot", permissions=(("Spot", ("SpotTrade",)),)
    )
    rig.add_key("alpha")
    result = rig.engine().reconcile()
    assert len(result.accounts[0].orphans) == 1
    assert rig.live(stray.api_key)


def test_a_tagged_key_no_record_knows_is_deleted_within_one_reconcile(rig: FastRig):
    """A key tagged for a managed name that no record refers to (a crash between create and the
    Vault write) is an orphan: spared while a create could still be in flight (15 min), then
    deleted by the next full reconcile."""
    rig.add_key("alpha")
    engine = rig.engine()
    engine.reconcile()
    stray = rig.exchange.add_key(2001, note="rotator:0123456789ab:alpha", permissions=PERMS)
    rig.clock.advance(timedelta(minutes=14))
    engine.reconcile()
    assert rig.live(stray.api_key)
    rig.clock.advance(timedelta(minutes=2))
    result = engine.reconcile()
    assert not rig.live(stray.api_key)
    assert rig.tagged("alpha") == [rig.consumer("alpha")["api_key"]]
    assert result.keys[0].state == "idle"


def test_a_key_made_by_hand_is_never_touched(rig: FastRig):
    """An untagged key on a managed sub UID is not ours: no report, no delete."""
    mine = rig.exchange.add_key(2001, note="my trading bot", permissions=PERMS)
    rig.add_key("alpha")
    result = rig.engine().reconcile()
    assert result.accounts[0].orphans == ()
    assert rig.live(mine.api_key)
